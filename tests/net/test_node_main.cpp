// SPDX-License-Identifier: BSL-1.0
// troupe_test_node: a node in its own process, for the multi-process tests.
// Usage: troupe_test_node NAME PORT [SECRET]
// Listens on 127.0.0.1:PORT (0 = any), publishes a bank as "bank", writes
// "port N\n" to stdout, and runs until its stdin closes (or it is killed).

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <troupe/net/node.hpp>

#include "net/bank_actor.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s NAME PORT [SECRET]\n", argv[0]);
    return 2;
  }
  troupe::runtime_options ro;
  ro.shards = 2;
  troupe::runtime rt{ro};
  troupe::net::node_options o;
  o.name = argv[1];
  o.cluster = "test";
  o.listen = {"127.0.0.1", static_cast<std::uint16_t>(std::atoi(argv[2]))};
  if (argc > 3) o.secret = argv[3];
  o.heartbeat = std::chrono::milliseconds(20);
  o.down_after = std::chrono::milliseconds(3000);
  troupe::net::node n{rt, o};
  auto b = rt.spawn<troupe_test::bank>();
  n.publish(b, "bank");
  std::printf("port %u\n", static_cast<unsigned>(n.port()));
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  return 0;
}
