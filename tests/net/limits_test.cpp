// SPDX-License-Identifier: BSL-1.0
// The caps on what a peer, or a connection that has not authenticated, can
// make a node hold (docs/security.md): each refuses, is counted, and leaves
// the node serving its other peers.

#include <atomic>
#include <map>
#include <thread>
#include <troupe/net/node.hpp>

#include "net/bank_actor.hpp"
#include "net/net_support.hpp"
#include "net/raw_peer.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::result;
using troupe::task;
namespace net = troupe::net;
using troupe::test::eventually;
using troupe::test::linked;
using troupe::test::raw_peer;

namespace {

net::node_options options(std::string name, std::vector<net::endpoint> seeds = {}) {
  return troupe::test::node_options(std::move(name), std::move(seeds));
}

net::limit_stats limits_of(net::node& n) { return n.state(5s).value().limits; }

std::optional<net::link_stats> link_to(net::node& n, const std::string& peer) {
  for (auto& m : n.state(5s).value().members)
    if (m.name == peer && m.up) return m.stats;
  return std::nullopt;
}

// A node `other` linked to the node under test, with a remote ref to its bank:
// the proof that the node keeps serving its real peers.
struct real_peer {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node n;
  troupe::actor_ref<troupe_test::bank> bank;
  real_peer(std::string name, unsigned short port)
      : n{rt, options(std::move(name), {{"127.0.0.1", port}})} {}
  // True once linked to `to` and a deposit and a balance went through.
  bool serves(const std::string& to, std::int64_t cents) {
    if (!eventually([&] { return linked(n, to); })) return false;
    result<troupe::actor_ref<troupe_test::bank>> r =
        n.remote_sync<troupe_test::bank>(to, "bank", 5s);
    if (!r) return false;
    bank = *r;
    const std::string account = "acct-" + std::to_string(cents);
    if (bank.tell(deposit{account, cents})) return false;
    result<std::int64_t> b = rt.ask_sync(bank, balance{account}, 5s);
    return b && *b == cents;
  }
};

// The node under test, with a published bank.
struct guarded {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node n;
  troupe::actor_ref<troupe_test::bank> bank = rt.spawn<troupe_test::bank>();
  explicit guarded(net::node_options o) : n{rt, std::move(o)} { n.publish(bank, "bank"); }
};

// Every key belongs to one member.
class fixed_table final : public net::route_table {
 public:
  explicit fixed_table(std::string owner) : owner_(std::move(owner)) {}
  result<std::string_view> owner(std::string_view) const override {
    return std::string_view(owner_);
  }
  std::vector<std::string_view> owners(std::string_view, std::size_t) const override {
    return {owner_};
  }
  std::size_t size() const override { return 1; }

 private:
  std::string owner_;
};

// Asks the bank under a routing key, from inside the runtime.
struct routed_balance {
  net::node* n;
  std::string key;
};
struct asker : troupe::actor {
  task<boost::system::error_code> handle(routed_balance q) {
    auto call = q.n->route_ask<troupe_test::bank>(q.key, "bank", balance{"x"}, 2s);
    result<std::int64_t> r = co_await call;
    co_return r ? boost::system::error_code{} : r.error();
  }
};

// Sends a heartbeat every 20 ms (and never reads) until stopped or refused.
struct heartbeats {
  std::atomic<bool> stop{false};
  std::thread t;
  explicit heartbeats(raw_peer& p) {
    t = std::thread([this, &p] {
      while (!stop.load()) {
        try {
          p.send({net::frame_kind::heartbeat, 0, 0, 0, 0}, "");
        } catch (const std::exception&) {
          return;  // the node closed the connection
        }
        std::this_thread::sleep_for(20ms);  // the peer's own pace, not a wait for the node
      }
    });
  }
  ~heartbeats() {
    stop = true;
    t.join();
  }
};

}  // namespace

TEST_CASE("a frame over the handshake limit closes the connection before its body is buffered",
          "[net][limits][io]") {
  net::node_options o = options("node-b");
  o.handshake_timeout = 30s;  // a node that waited for the body would answer only then
  guarded b{o};
  {
    raw_peer r{b.n.port()};
    // A length prefix of 15 MiB (below the 16 MiB frame limit after
    // authentication), the hello kind and no flags; the body never comes.
    r.send_raw(std::string("\x00\x00\xf0\x00\x01\x00", 6));
    const std::string why = r.goodbye();
    INFO(why);
    CHECK(why.find("a frame longer than the 4096 bytes allowed before authentication") !=
          std::string::npos);
  }
  CHECK(limits_of(b.n).handshake_too_large == 1);
  CHECK(b.log.contains("closed: handshake refused: a frame longer than the 4096 bytes"));
  real_peer a{"node-a", b.n.port()};
  CHECK(a.serves("node-b", 42));
}

TEST_CASE("connections beyond max_handshakes are closed at once; idle ones time out",
          "[net][limits][io]") {
  net::node_options o = options("node-b");
  o.max_handshakes = 4;
  o.handshake_timeout = 1500ms;
  guarded b{o};
  real_peer a{"node-a", b.n.port()};
  REQUIRE(a.serves("node-b", 1));  // linked before the flood

  std::vector<std::unique_ptr<raw_peer>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<raw_peer>(b.n.port()));
  REQUIRE(eventually([&] { return limits_of(b.n).handshakes == 4; }));
  for (int i = 0; i < 6; ++i) {
    raw_peer extra{b.n.port()};
    // Closed unread and unanswered; a connection that had been let in would
    // hear "handshake timed out" after 1.5 s instead.
    CHECK(extra.goodbye() == "closed");
    CHECK(extra.bytes_read() == 0);
  }
  CHECK(limits_of(b.n).handshakes_refused == 6);
  CHECK(b.log.count("connections are authenticating; closing new ones at once") == 1);
  // The linked peer is served throughout.
  CHECK(a.rt.ask_sync(a.bank, balance{"acct-1"}, 5s).value() == 1);

  // The idle connections are closed at the handshake timeout...
  for (auto& r : idle)
    CHECK(r->goodbye().find("handshake timed out after 1500 ms") != std::string::npos);
  CHECK(eventually([&] { return limits_of(b.n).handshakes == 0; }));
  CHECK(limits_of(b.n).handshake_timeouts == 4);
  // ...and a new peer links.
  real_peer c{"node-c", b.n.port()};
  CHECK(c.serves("node-b", 7));
}

TEST_CASE(
    "a peer that never reads: sends fail with link_congested, memory stays bounded, and "
    "the link is closed as a slow consumer",
    "[net][limits][io]") {
  constexpr std::size_t cap = 256 * 1024;
  net::node_options o = options("node-b");
  o.max_outbound = cap;
  o.down_after = 3s;  // also how long the buffer may stay full with nothing taken
  guarded b{o};
  real_peer a{"node-a", b.n.port()};
  REQUIRE(a.serves("node-b", 5));

  raw_peer sink{b.n.port(), "sink"};
  REQUIRE(sink.handshake("s3cret").empty());
  heartbeats beat{sink};  // alive, but it never reads
  REQUIRE(eventually([&] { return linked(b.n, "sink"); }));
  b.n.set_route_table(std::make_shared<fixed_table>("sink"));

  // Routed tells of 64 KiB to the sink until the loopback socket buffers
  // are full and the link's own buffer reaches its cap.
  const std::string big(64 * 1024, 'x');
  std::size_t sent = 0;
  while (limits_of(b.n).link_congested == 0 && sent < 4096) {
    for (int i = 0; i < 32; ++i, ++sent)
      REQUIRE_FALSE(b.n.route_tell<troupe_test::bank>("k", "bank", deposit{big, 1}));
  }
  INFO("sent " << sent << " tells of 64 KiB");
  REQUIRE(limits_of(b.n).link_congested > 0);

  // An ask that cannot be queued fails at once with the distinct error.
  auto who = b.rt.spawn<asker>();
  const auto t0 = std::chrono::steady_clock::now();
  boost::system::error_code ec = b.rt.ask_sync(who, routed_balance{&b.n, "k"}, 5s).value();
  CHECK(ec == troupe::errc::link_congested);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);  // not at the ask's 2 s deadline
  CHECK(ec.message().find("not reading") != std::string::npos);

  // More sends do not grow the buffer past the cap (plus the frame that reached it).
  for (int i = 0; i < 64; ++i)
    REQUIRE_FALSE(b.n.route_tell<troupe_test::bank>("k", "bank", deposit{big, 1}));
  std::optional<net::link_stats> st = link_to(b.n, "sink");
  REQUIRE(st);
  CHECK(st->queued_bytes >= cap / 2);
  CHECK(st->queued_bytes < cap + big.size() + 1024);
  CHECK(st->congested >= 64);
  CHECK(limits_of(b.n).link_congested >= 65);

  // The node keeps serving its real peer.
  CHECK(a.rt.ask_sync(a.bank, balance{"acct-5"}, 5s).value() == 5);

  // Full, and nothing taken for down_after: closed as a slow consumer.
  CHECK(eventually([&] { return limits_of(b.n).slow_consumers == 1; }, 20s));
  CHECK_FALSE(linked(b.n, "sink"));
  CHECK(b.log.contains("closed: peer is not reading"));
  CHECK(a.rt.ask_sync(a.bank, balance{"acct-5"}, 5s).value() == 5);
}

TEST_CASE("the peer table returns to its size after peers come and go, and is capped",
          "[net][limits][io]") {
  net::node_options o = options("node-b");
  o.max_peers = 3;
  guarded b{o};
  real_peer a{"node-a", b.n.port()};
  REQUIRE(a.serves("node-b", 3));
  REQUIRE(limits_of(b.n).peers == 1);

  for (int i = 0; i < 20; ++i) {
    raw_peer r{b.n.port(), "churn-" + std::to_string(i)};
    REQUIRE(r.handshake("s3cret").empty());
    REQUIRE(eventually([&] { return linked(b.n, "churn-" + std::to_string(i)); }));
  }  // each closes as it goes
  CHECK(eventually([&] { return limits_of(b.n).peers == 1; }));

  // Two more fill the cap; a third is refused once it has authenticated.
  raw_peer p1{b.n.port(), "p1"}, p2{b.n.port(), "p2"}, p3{b.n.port(), "p3"};
  REQUIRE(p1.handshake("s3cret").empty());
  REQUIRE(p2.handshake("s3cret").empty());
  REQUIRE(eventually([&] { return linked(b.n, "p1") && linked(b.n, "p2"); }));
  // (The goodbye may overtake the welcome: the refusal comes as the link goes up.)
  std::string why = p3.handshake("s3cret");
  if (why.empty()) why = p3.goodbye();
  CHECK(why.find("too many peers: 3 are linked") != std::string::npos);
  CHECK(limits_of(b.n).peers_refused == 1);
  CHECK(limits_of(b.n).peers == 3);
  CHECK(a.rt.ask_sync(a.bank, balance{"acct-3"}, 5s).value() == 3);
}

namespace {
// node-b forwards routed asks from "origin" (a sender with an older table)
// to "sink", which never answers.
struct relay_setup {
  guarded b;
  raw_peer sink, origin;
  explicit relay_setup(net::node_options o)
      : b{std::move(o)}, sink{b.n.port(), "sink"}, origin{b.n.port(), "origin"} {
    REQUIRE(sink.handshake("s3cret").empty());
    REQUIRE(origin.handshake("s3cret").empty());
    REQUIRE(eventually([&] { return linked(b.n, "sink") && linked(b.n, "origin"); }));
    b.n.set_route_table(std::make_shared<fixed_table>("sink"));
    REQUIRE(eventually([&] { return b.n.state(5s).value().routing.epoch >= 1; }));
    // Epoch 0, digest 0: older than node-b's table, which therefore decides.
    origin.send({net::frame_kind::route_context, 0, 0, 0, 0}, std::string(5, '\0'));
  }
  // A routed ask for the bank under key "k" (name inline, hops 0).
  void ask(std::uint64_t correlation) {
    std::string payload(
        "\x00\x04"
        "bank\x01k",
        8);
    net::encode(balance{"x"}, payload);
    origin.send({net::frame_kind::routed_ask, 102, 0, 0, correlation}, payload);
  }
};
}  // namespace

TEST_CASE("relays of forwarded asks are swept by age and when their asker's link goes, and capped",
          "[net][limits][io]") {
  net::node_options o = options("node-b");
  o.down_after = 10s;  // the raw peers send no heartbeats
  SECTION("by age, and at the cap") {
    o.max_relays = 3;
    o.relay_timeout = 300ms;
    relay_setup s{o};
    for (std::uint64_t c = 1; c <= 5; ++c) s.ask(c);
    // Three are forwarded to the sink; at the cap the other two are served
    // here, by node-b's own bank (balance 0).
    std::map<std::uint64_t, std::string> answers;
    while (answers.size() < 5) {
      auto f = s.origin.next(20s);
      REQUIRE(f);
      if (f->first.kind == net::frame_kind::reply) {
        answers[f->first.correlation] =
            "balance " + std::to_string(net::decode<std::int64_t>(f->second).value());
      } else {
        REQUIRE(f->first.kind == net::frame_kind::reply_error);
        answers[f->first.correlation] =
            troupe::make_error_code(
                static_cast<troupe::errc>(net::decode<std::uint32_t>(f->second).value()))
                .message();
      }
    }
    const std::string timeout = troupe::make_error_code(troupe::errc::ask_timeout).message();
    const std::map<std::uint64_t, std::string> expected{
        {1, timeout}, {2, timeout}, {3, timeout}, {4, "balance 0"}, {5, "balance 0"}};
    CHECK(answers == expected);
    const net::limit_stats l = limits_of(s.b.n);
    CHECK(l.relays == 0);
    CHECK(l.relays_expired == 3);
    CHECK(l.relays_refused == 2);
  }
  SECTION("when the asker's link goes down") {
    o.relay_timeout = 60s;
    relay_setup s{o};
    for (std::uint64_t c = 1; c <= 3; ++c) s.ask(c);
    REQUIRE(eventually([&] { return limits_of(s.b.n).relays == 3; }));
    s.origin.close();
    CHECK(eventually([&] { return limits_of(s.b.n).relays == 0; }));
    CHECK(limits_of(s.b.n).relays_expired == 0);
    CHECK(linked(s.b.n, "sink"));
  }
}

TEST_CASE("without a secret a node does not dial a peer off this host", "[net][limits][io]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node_options o = options("node-open", {{"192.0.2.1", 7000}});  // TEST-NET-1
  o.secret.reset();
  net::node n{rt, o};
  CHECK(eventually([&] { return limits_of(n).dials_refused == 1; }));
  CHECK(log.count("node-open: not dialing 192.0.2.1:7000: without a cluster secret a node links "
                  "to loopback peers only") == 1);
  CHECK_FALSE(log.contains("dialing 192.0.2.1:7000 failed"));
  // Loopback peers without a secret still link.
  troupe::test::log_sink log2;
  troupe::runtime rt2{troupe::test::threaded(log2, 1)};
  net::node_options o2 = options("node-near", {{"127.0.0.1", n.port()}});
  o2.secret.reset();
  net::node near{rt2, o2};
  CHECK(eventually([&] { return linked(near, "node-open") && linked(n, "node-near"); }));
}
