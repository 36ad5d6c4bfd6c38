// SPDX-License-Identifier: BSL-1.0
// Seeds named by host names: resolved on every dial attempt, each address
// tried in order, failures logged once, and the loopback rule applied to
// what a name resolves to.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <mutex>
#include <troupe/net/node.hpp>

#include "net/net_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace net = troupe::net;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using troupe::test::eventually;
using troupe::test::linked;

namespace {

using endpoints = std::vector<tcp::endpoint>;

net::node_options options(std::string name, std::vector<net::endpoint> seeds = {}) {
  return troupe::test::node_options(std::move(name), std::move(seeds));
}

net::limit_stats limits_of(net::node& n) { return n.state(5s).value().limits; }

tcp::endpoint loopback(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

// A port nothing listens on: bound, then closed again.
unsigned short unused_port() {
  asio::io_context io;
  tcp::acceptor a{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  const unsigned short port = a.local_endpoint().port();
  a.close();
  return port;
}

// Stands in for DNS: answer(n) is what the n-th resolution (from 0) gets.
// Declare it before the runtime whose node calls it.
struct fake_resolver {
  std::function<troupe::result<endpoints>(unsigned)> answer;
  std::atomic<unsigned> calls{0};
  std::mutex m;
  std::vector<std::string> asked;  // "host:port" of each call

  auto fn() {
    return [this](const net::endpoint& seed) {
      {
        std::lock_guard lock(m);
        asked.push_back(seed.host + ":" + std::to_string(seed.port));
      }
      return answer(calls.fetch_add(1));
    };
  }
  bool asked_only(const std::string& seed) {
    std::lock_guard lock(m);
    for (const std::string& a : asked)
      if (a != seed) return false;
    return !asked.empty();
  }
};

}  // namespace

TEST_CASE("a seed's host name is resolved again on each redial until it names a node that is up",
          "[net][node][resolve][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime rb{troupe::test::threaded(log_b, 1)};
  net::node b{rb, options("node-b")};
  const unsigned short up = b.port();
  const unsigned short down = unused_port();
  // The name points at a port where no node is for the first three
  // resolutions (a service that moved), then at node-b.
  fake_resolver fake;
  fake.answer = [&](unsigned n) -> troupe::result<endpoints> {
    return endpoints{loopback(n < 3 ? down : up)};
  };
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  net::node_options o = options("node-a", {{"seed.test", 7000}});
  o.resolve = fake.fn();
  net::node a{ra, o};
  REQUIRE(eventually([&] { return linked(a, "node-b") && linked(b, "node-a"); }));
  CHECK(fake.calls.load() >= 4);
  CHECK(fake.asked_only("seed.test:7000"));
  CHECK(log_a.contains("node-a: dialing seed.test:7000 at 127.0.0.1:" + std::to_string(down) +
                       " failed"));
}

TEST_CASE("a seed name that cannot be resolved is logged once per distinct failure and retried",
          "[net][node][resolve][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime rb{troupe::test::threaded(log_b, 1)};
  net::node b{rb, options("node-b")};
  const unsigned short up = b.port();
  // Three "not found", three "try again", then node-b.
  fake_resolver fake;
  fake.answer = [&](unsigned n) -> troupe::result<endpoints> {
    if (n < 3) return troupe::failure<endpoints>(asio::error::host_not_found);
    if (n < 6) return troupe::failure<endpoints>(asio::error::host_not_found_try_again);
    return endpoints{loopback(up)};
  };
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  net::node_options o = options("node-a", {{"seed.test", 7000}});
  o.resolve = fake.fn();
  net::node a{ra, o};
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));
  CHECK(fake.calls.load() >= 7);
  const std::string line = "node-a: seed seed.test:7000 cannot be resolved (";
  CHECK(log_a.count(line) == 2);
  CHECK(log_a.count(line + boost::system::error_code(asio::error::host_not_found).message()) == 1);
  CHECK(log_a.count(line +
                    boost::system::error_code(asio::error::host_not_found_try_again).message()) ==
        1);
}

TEST_CASE("without a secret a seed name that resolves off this host is not dialed",
          "[net][node][resolve][io]") {
  const std::string refused =
      "node-open: not dialing far.test:7000 at 192.0.2.1:7000: without a cluster secret a node "
      "links to loopback peers only";
  SECTION("the name is resolved again on each redial, and refused with one line") {
    troupe::test::log_sink log;
    fake_resolver fake;
    fake.answer = [](unsigned) -> troupe::result<endpoints> {
      return endpoints{{asio::ip::make_address("192.0.2.1"), 7000}};  // TEST-NET-1
    };
    troupe::runtime rt{troupe::test::threaded(log, 1)};
    net::node_options o = options("node-open", {{"far.test", 7000}});
    o.secret.reset();
    o.resolve = fake.fn();
    net::node n{rt, o};
    REQUIRE(eventually([&] { return fake.calls.load() >= 4; }));
    CHECK(limits_of(n).dials_refused == 1);
    CHECK(log.count(refused) == 1);
    CHECK_FALSE(log.contains("192.0.2.1:7000 failed"));
  }
  SECTION("a loopback address of the same name is dialed, after the refused one") {
    troupe::test::log_sink log, log_b;
    troupe::runtime rb{troupe::test::threaded(log_b, 1)};
    net::node_options ob = options("node-b");
    ob.secret.reset();
    net::node b{rb, ob};
    const unsigned short up = b.port();
    fake_resolver fake;
    fake.answer = [&](unsigned) -> troupe::result<endpoints> {
      return endpoints{{asio::ip::make_address("192.0.2.1"), 7000}, loopback(up)};
    };
    troupe::runtime rt{troupe::test::threaded(log, 1)};
    net::node_options o = options("node-open", {{"far.test", 7000}});
    o.secret.reset();
    o.resolve = fake.fn();
    net::node n{rt, o};
    REQUIRE(eventually([&] { return linked(n, "node-b") && linked(b, "node-open"); }));
    CHECK(limits_of(n).dials_refused == 1);
    CHECK(log.count(refused) == 1);
  }
}

TEST_CASE("seeds and listen endpoints given as localhost link two nodes",
          "[net][node][resolve][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  net::node_options oa = options("node-a");
  oa.listen = {"localhost", 0};
  net::node a{ra, oa};
  troupe::runtime rb{troupe::test::threaded(log_b, 1)};
  net::node b{rb, options("node-b", {{"localhost", a.port()}})};  // the real resolver
  REQUIRE(eventually([&] { return linked(b, "node-a") && linked(a, "node-b"); }));
  CHECK_FALSE(log_b.contains("cannot be resolved"));
}

TEST_CASE("a node whose listen host cannot be resolved says which host and why", "[net][node]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node_options o = options("node-a");
  o.listen = {"nosuch.invalid", 0};  // .invalid never resolves (RFC 6761)
  try {
    net::node n{rt, o};
    FAIL("a node listened on a name that does not resolve");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("--listen host 'nosuch.invalid' cannot be resolved") !=
          std::string::npos);
  }
}
