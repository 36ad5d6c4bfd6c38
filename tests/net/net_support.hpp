// SPDX-License-Identifier: BSL-1.0
#pragma once
// Helpers shared by the tests that run nodes on 127.0.0.1.

#include <chrono>
#include <string>
#include <thread>
#include <troupe/net/node.hpp>
#include <vector>

namespace troupe::test {

/// A test node: fast heartbeats and redials, a generous failure detector
/// (under TSan on a loaded 2-core machine a busy shard answers late).
inline net::node_options node_options(std::string name, std::vector<net::endpoint> seeds = {},
                                      std::string cluster = "test", std::string secret = "s3cret") {
  using namespace std::chrono_literals;
  net::node_options o;
  o.name = std::move(name);
  o.cluster = std::move(cluster);
  o.secret = std::move(secret);
  o.seeds = std::move(seeds);
  o.heartbeat = 20ms;
  o.down_after = 3s;
  o.redial_min = 20ms;
  o.redial_max = 200ms;
  return o;
}

/// Polls a condition the nodes reach by themselves (a link coming up), with a bound.
template <class F>
bool eventually(F f, std::chrono::seconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::yield();
  }
  return f();
}

/// True if node n has a link up to `peer`.
inline bool linked(net::node& n, const std::string& peer) {
  auto s = n.state(std::chrono::seconds(2));
  if (!s) return false;
  for (auto& m : s->members)
    if (m.name == peer && m.up) return true;
  return false;
}

}  // namespace troupe::test
