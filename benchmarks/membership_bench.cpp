// SPDX-License-Identifier: BSL-1.0
// membership_converge_ms: 8 nodes on 127.0.0.1, each in a runtime of its
// own (as 8 processes would be), formed through one seed — every node names
// only the first — until every node's ring has all 8 members. The in-run
// baseline is the same 8 nodes given every other node as a seed (a full
// mesh of seeds, nothing to learn from the members). Production defaults
// (heartbeat 250 ms, down after 1.5 s).

#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <system_error>
#include <troupe/actors/router.hpp>
#include <troupe/core.hpp>
#include <troupe/net/node.hpp>

#include "bench.hpp"

namespace net = troupe::net;

namespace {

constexpr int nodes = 8;

std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

struct member {
  std::unique_ptr<troupe::runtime> rt;
  std::unique_ptr<net::node> node;
  std::unique_ptr<troupe::actors::router> router;
};

// Milliseconds from the first node's start until every ring has every member.
double converge_once(bool one_seed);
double converge_ms(bool one_seed) {
  for (int attempt = 0;; ++attempt) {
    try {
      return converge_once(one_seed);
    } catch (const std::system_error&) {  // a port taken between free_port() and the bind
      if (attempt == 9) throw;
    }
  }
}
double converge_once(bool one_seed) {
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < nodes; ++i) ports.push_back(free_port());
  std::vector<member> ms(nodes);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < nodes; ++i) {
    troupe::runtime_options ro;
    ro.shards = 1;
    ro.min_log_level = troupe::log_level::error;  // the full-mesh seeds dial nodes not yet up
    ms[i].rt = std::make_unique<troupe::runtime>(ro);
    net::node_options o;
    o.name = "m" + std::to_string(i);
    o.cluster = "bench";
    o.secret = "bench-secret";
    o.listen = {"127.0.0.1", ports[i]};
    for (int j = 0; j < nodes; ++j)
      if (j != i && (!one_seed || j == 0)) o.seeds.push_back({"127.0.0.1", ports[j]});
    if (one_seed && i == 0) o.seeds.clear();
    ms[i].node = std::make_unique<net::node>(*ms[i].rt, o);
    ms[i].router = std::make_unique<troupe::actors::router>(*ms[i].node);
  }
  for (;;) {
    bool agree = true;
    const std::vector<std::string> first = ms[0].router->members();
    for (auto& m : ms) agree = agree && m.router->members() == first;
    if (agree && first.size() == static_cast<std::size_t>(nodes)) break;
    if (troupe::bench::seconds_since(t0) > 60) {
      std::fprintf(stderr, "membership_bench: no agreement within 60 s\n");
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // polling, not waiting for it
  }
  const double ms_taken = troupe::bench::seconds_since(t0) * 1000;
  for (auto& m : ms) {
    m.router.reset();
    m.node.reset();
    m.rt.reset();
  }
  return ms_taken;
}

}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 7;
  if (a.wants("membership_converge_ms")) {
    // Alternate the two forms run by run, so drift on a shared machine hits both alike.
    std::vector<double> star, mesh;
    for (int r = 0; r < runs; ++r) {
      star.push_back(converge_ms(true));
      mesh.push_back(converge_ms(false));
    }
    std::sort(star.begin(), star.end());
    std::sort(mesh.begin(), mesh.end());
    troupe::bench::report("membership_converge_ms", star[star.size() / 2], "ms",
                          mesh[mesh.size() / 2],
                          "the same 8 nodes seeded with every other node (no member list to learn)",
                          "<= 2000", a, "\"nodes\":8,\"max_ms\":" + std::to_string(star.back()));
  }
}
