// SPDX-License-Identifier: BSL-1.0
// troupe-node: one troupe node per process (docs/node.md). Applications that
// add their own actors, saga types and routes build their own binary around
// troupe::net::node_main (see examples/order_saga).

#include <troupe/net/node_main.hpp>

int main(int argc, char** argv) { return troupe::net::node_main(argc, argv); }
