// SPDX-License-Identifier: BSL-1.0
// Membership: a node given any one live member joins the whole cluster;
// a node never links to itself; a second process with a taken name is
// refused while the first stays; mutual seeds link once and stay quiet.

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <system_error>
#include <troupe/net/node.hpp>

#include "net/net_support.hpp"
#include "support.hpp"

namespace net = troupe::net;
using namespace std::chrono_literals;
using troupe::test::linked;

namespace {

// Member events as a node's subscribers see them ("up:NAME", "down:NAME").
struct events_actor : troupe::actor {
  struct shared {
    std::mutex m;
    std::vector<std::string> seen;
    std::size_t count(const std::string& what) {
      std::lock_guard l(m);
      return static_cast<std::size_t>(std::count(seen.begin(), seen.end(), what));
    }
  };
  explicit events_actor(std::shared_ptr<shared> s) : s_(std::move(s)) {}
  void handle(const net::member_event& e) {
    std::lock_guard l(s_->m);
    s_->seen.push_back(std::string(e.up ? "up:" : "down:") + e.node);
  }
  std::shared_ptr<shared> s_;
};

// Polls a condition every few milliseconds (the nodes get there by
// themselves; the pause keeps the polling from starving them).
template <class F>
bool poll_until(F f, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

// One node in a runtime of its own, logging into its own sink; every line
// is kept (no repeat suppression), so a test can count them.
struct member {
  troupe::test::log_sink log;
  std::unique_ptr<troupe::runtime> rt;
  std::unique_ptr<net::node> node;
  member(const std::string& name, std::vector<net::endpoint> seeds, std::uint16_t port = 0,
         std::string host = "127.0.0.1") {
    troupe::runtime_options o = troupe::test::threaded(log, 1);
    o.log_repeat_window = 0ms;
    o.min_log_level = troupe::log_level::debug;  // the links' own lines too
    rt = std::make_unique<troupe::runtime>(o);
    net::node_options no = troupe::test::node_options(name, std::move(seeds));
    no.listen = {std::move(host), port};
    node = std::make_unique<net::node>(*rt, no);
    name_ = name;
    node->subscribe(rt->spawn<events_actor>(events));
  }
  std::shared_ptr<events_actor::shared> events = std::make_shared<events_actor::shared>();
  // Frames received on the link to `peer` (heartbeats among them), 0 if not linked.
  std::uint64_t frames_from(const std::string& peer) {
    auto s = node->state(5s);
    if (s)
      for (auto& m : s->members)
        if (m.name == peer && m.up) return m.stats.frames_in;
    return 0;
  }
  // Waits until `n` more frames came from `peer`: a window measured in the
  // peer's heartbeats (20 ms each here), whatever the machine's load.
  bool heard(const std::string& peer, std::uint64_t n) {
    const std::uint64_t from = frames_from(peer);
    return from != 0 && poll_until([&] { return frames_from(peer) >= from + n; });
  }
  std::string dump() {
    std::lock_guard l(log.mutex);
    std::string all;
    for (auto& line : log.lines) all += line + "\n";
    return all;
  }
  std::size_t lines() {
    std::lock_guard l(log.mutex);
    return log.lines.size();
  }
  net::endpoint at() const { return {"127.0.0.1", node->port()}; }
  std::vector<std::string> up() {
    std::vector<std::string> names;
    auto s = node->state(2s);
    if (s)
      for (auto& m : s->members)
        if (m.up) names.push_back(m.name);
    return names;
  }
  ~member() {
    if (std::getenv("TROUPE_TEST_DUMP"))
      for (auto& l : log.lines) std::fprintf(stderr, "[%s] %s\n", name_.c_str(), l.c_str());
  }
  std::string name_;
  std::uint64_t incarnation_of(const std::string& peer) {
    auto s = node->state(2s);
    if (s)
      for (auto& m : s->members)
        if (m.name == peer && m.up) return m.incarnation;
    return 0;
  }
};

// A port nothing listens on now (bound, read, released), for nodes that must
// name each other before either exists.
std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// Every member linked to every other.
bool full_mesh(std::vector<std::unique_ptr<member>>& ms) {
  for (auto& m : ms) {
    std::vector<std::string> want;
    for (auto& o : ms)
      if (o != m) want.push_back(o->node->name());
    std::sort(want.begin(), want.end());
    if (m->up() != want) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a star of seeds forms a full mesh: each node names only the first",
          "[net][membership]") {
  std::vector<std::unique_ptr<member>> ms;
  ms.push_back(std::make_unique<member>("n0", std::vector<net::endpoint>{}));
  const net::endpoint seed = ms[0]->at();
  for (int i = 1; i < 5; ++i)
    ms.push_back(std::make_unique<member>("n" + std::to_string(i), std::vector{seed}));
  REQUIRE(poll_until([&] { return full_mesh(ms); }));
}

TEST_CASE("a chain of seeds forms a full mesh, through a node listening on every address",
          "[net][membership]") {
  // n0 listens on 0.0.0.0: its peers pass on the address they reached it at.
  std::vector<std::unique_ptr<member>> ms;
  ms.push_back(std::make_unique<member>("c0", std::vector<net::endpoint>{}, 0, "0.0.0.0"));
  for (int i = 1; i < 4; ++i)
    ms.push_back(std::make_unique<member>("c" + std::to_string(i), std::vector{ms.back()->at()}));
  REQUIRE(poll_until([&] { return full_mesh(ms); }));
  auto s = ms[3]->node->state(2s).value();
  bool saw_c0 = false;
  for (auto& m : s.members)
    if (m.name == "c0") {
      saw_c0 = true;
      CHECK(m.address.host == "127.0.0.1");
      CHECK(m.address.port == ms[0]->node->port());
    }
  CHECK(saw_c0);
}

TEST_CASE("mutual seeds link once, then the cluster is quiet", "[net][membership]") {
  std::unique_ptr<member> pa_, pb_;
  for (int attempt = 0; !pb_ && attempt < 10; ++attempt) {
    const std::uint16_t pa = free_port(), pb = free_port();
    try {  // another process may take a port between free_port() and the bind
      pa_ = std::make_unique<member>("mutual-a", std::vector<net::endpoint>{{"127.0.0.1", pb}}, pa);
      pb_ = std::make_unique<member>("mutual-b", std::vector<net::endpoint>{{"127.0.0.1", pa}}, pb);
    } catch (const std::system_error&) {
      pa_.reset();
      pb_.reset();
    }
  }
  REQUIRE(pb_);
  member& a = *pa_;
  member& b = *pb_;
  REQUIRE(poll_until([&] { return linked(*a.node, "mutual-b") && linked(*b.node, "mutual-a"); }));
  const std::uint64_t inc_b = a.incarnation_of("mutual-b");
  REQUIRE(inc_b != 0);
  // A second connection is settled inside the handshake: let it finish.
  REQUIRE(a.heard("mutual-b", 5));
  // Then watch 50 heartbeats: a node that kept redialing a linked peer
  // would log each refused duplicate and bounce links (~25 lines/s before).
  const std::size_t lines_a = a.lines(), lines_b = b.lines();
  REQUIRE(a.heard("mutual-b", 50));
  CHECK(a.incarnation_of("mutual-b") == inc_b);
  CHECK(a.events->count("down:mutual-b") == 0);
  CHECK(b.events->count("down:mutual-a") == 0);
  CHECK(a.events->count("up:mutual-b") == 1);
  CHECK(a.lines() == lines_a);
  CHECK(b.lines() == lines_b);
}

TEST_CASE("a quiet, healthy cluster logs nothing for a minute", "[net][membership][quiet]") {
  // Three nodes: two naming each other, the third naming both. Every line
  // any of them logs, debug included, is kept.
  std::vector<std::unique_ptr<member>> ms;
  for (int attempt = 0; ms.size() < 3 && attempt < 10; ++attempt) {
    ms.clear();
    const std::uint16_t pa = free_port(), pb = free_port();
    try {  // another process may take a port between free_port() and the bind
      ms.push_back(
          std::make_unique<member>("quiet-a", std::vector<net::endpoint>{{"127.0.0.1", pb}}, pa));
      ms.push_back(
          std::make_unique<member>("quiet-b", std::vector<net::endpoint>{{"127.0.0.1", pa}}, pb));
      ms.push_back(std::make_unique<member>(
          "quiet-c", std::vector<net::endpoint>{{"127.0.0.1", pa}, {"127.0.0.1", pb}}));
    } catch (const std::system_error&) {
      ms.clear();
    }
  }
  REQUIRE(ms.size() == 3);
  REQUIRE(poll_until([&] { return full_mesh(ms); }));
  REQUIRE(ms[0]->heard("quiet-b", 5));  // duplicate connections settled
  REQUIRE(ms[0]->heard("quiet-c", 5));
  std::vector<std::size_t> lines;
  for (auto& m : ms) lines.push_back(m->lines());
  // A minute, measured in node-b's heartbeats to node-a (every 20 ms here).
  const std::uint64_t from = ms[0]->frames_from("quiet-b");
  REQUIRE(poll_until([&] { return ms[0]->frames_from("quiet-b") >= from + 3000; },
                     std::chrono::seconds(180)));
  for (std::size_t i = 0; i < ms.size(); ++i) {
    INFO(ms[i]->node->name() << " logged:\n" << ms[i]->dump());
    CHECK(ms[i]->lines() == lines[i]);
    CHECK(ms[i]->events->count("down:quiet-a") + ms[i]->events->count("down:quiet-b") +
              ms[i]->events->count("down:quiet-c") ==
          0);
  }
  CHECK(full_mesh(ms));
}

TEST_CASE("a node whose own address is among its seeds never links to itself",
          "[net][membership]") {
  member other{"other", {}};
  std::unique_ptr<member> ps_;
  for (int attempt = 0; !ps_ && attempt < 10; ++attempt) {
    const std::uint16_t ps = free_port();
    try {  // another process may take the port between free_port() and the bind
      ps_ = std::make_unique<member>("selfish",
                                     std::vector<net::endpoint>{{"127.0.0.1", ps}, other.at()}, ps);
    } catch (const std::system_error&) {
    }
  }
  REQUIRE(ps_);
  member& self = *ps_;
  REQUIRE(
      poll_until([&] { return linked(*self.node, "other") && linked(*other.node, "selfish"); }));
  REQUIRE(poll_until([&] { return self.log.contains("is this node itself"); }));
  // Said once: the seed is not dialed again (25 heartbeats of the other's later).
  REQUIRE(self.heard("other", 25));
  CHECK(self.up() == std::vector<std::string>{"other"});
  CHECK(self.log.count("is this node itself") == 1);
  CHECK(self.events->count("up:selfish") == 0);
  CHECK(self.log.count("selfish <-> selfish closed") == 2);  // its two ends, refused, once
}

TEST_CASE("a second process claiming a taken name is refused and the first stays linked",
          "[net][membership]") {
  member hub{"hub", {}};
  member first{"twin", {hub.at()}};
  REQUIRE(poll_until([&] { return linked(*hub.node, "twin"); }));
  const std::uint64_t inc = hub.incarnation_of("twin");
  REQUIRE(inc != 0);
  member second{"twin", {hub.at()}};
  REQUIRE(poll_until([&] { return hub.log.contains("second process named twin"); }));
  REQUIRE(poll_until([&] { return second.log.contains("another process named twin"); }));
  // It keeps trying (with backoff) while the first lives — three refusals
  // seen in the hub's link lines — and each side said so in one line.
  REQUIRE(poll_until([&] {
    return hub.log.count("handshake refused: another process with this node name") >= 3;
  }));
  CHECK(hub.incarnation_of("twin") == inc);
  CHECK(hub.events->count("down:twin") == 0);
  CHECK(first.events->count("down:hub") == 0);
  CHECK(second.events->count("up:hub") == 0);
  CHECK(hub.log.count("second process named twin") == 1);
  CHECK(second.log.count("another process named twin") == 1);

  // Once the first leaves, the second takes the name.
  first.node.reset();
  first.rt.reset();
  REQUIRE(
      poll_until([&] { return linked(*hub.node, "twin") && hub.incarnation_of("twin") != inc; }));
}

TEST_CASE("a member that leaves is forgotten by the members that learned of it",
          "[net][membership]") {
  member a{"stay", {}};
  member c{"learner", {a.at()}};
  auto b = std::make_unique<member>("leaver", std::vector{a.at()});
  REQUIRE(poll_until([&] { return linked(*c.node, "leaver"); }));  // through a's member list
  const std::uint16_t pb = b->node->port();
  b.reset();  // leaves: says so on each link
  auto listed = [](member& m, const std::string& name) {
    auto s = m.node->state(2s);
    if (!s) return true;
    for (auto& x : s->members)
      if (x.name == name) return true;
    return false;
  };
  const bool forgotten = poll_until([&] { return !listed(a, "leaver") && !listed(c, "leaver"); });
  if (!forgotten) UNSCOPED_INFO("stay:\n" << a.dump() << "learner:\n" << c.dump());
  REQUIRE(forgotten);
  // Not dialed again: a node started later on its port is not sought out
  // (watched for 25 heartbeats; redials would come every 20-200 ms).
  member other{"newcomer", {}, pb};
  REQUIRE(a.heard("learner", 25));
  CHECK(other.up().empty());
}
