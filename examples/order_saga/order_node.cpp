// SPDX-License-Identifier: BSL-1.0
// order-node: troupe-node with the shop's services and the "order" saga
// added (shop.hpp). Every flag of troupe-node works, plus --shop-*.

#include <troupe/net/node_main.hpp>

#include "shop.hpp"

int main(int argc, char** argv) {
  return troupe::net::node_main(argc, argv, {shop::shop_extension()});
}
