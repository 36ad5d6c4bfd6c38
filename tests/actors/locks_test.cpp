// SPDX-License-Identifier: BSL-1.0
// The lock-manager: one test per rule, bad input, the client's guards, and a
// history checker over three nodes with a node killed mid-run.

#include <atomic>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <troupe/actors/locks.hpp>

#include "net/net_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::result;
using troupe::task;
namespace net = troupe::net;
namespace actors = troupe::actors;
using actors::lock_errc;

namespace {

net::node_options node_opts(std::string name, std::vector<net::endpoint> seeds = {}) {
  return troupe::test::node_options(std::move(name), std::move(seeds), "locks-test");
}

using troupe::test::eventually;

actors::lock_options fast_locks() {
  actors::lock_options o;
  o.max_ttl = 2s;
  o.lock_delay = 30ms;
  o.sweep = 2ms;
  return o;
}

// One node serving locks, with the manager reachable directly for rule tests.
struct one_node {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node node{rt, node_opts("node-a")};
  actors::router router{node};
  std::vector<actors::lock_event> events;
  std::mutex events_m;
  actors::lock_service service{node, router, with_observer(fast_locks())};
  troupe::actor_ref<actors::lock_manager> m = service.ref();

  actors::lock_options with_observer(actors::lock_options o) {
    o.observer = [this](const actors::lock_event& e) {
      std::lock_guard lock(events_m);
      events.push_back(e);
    };
    return o;
  }
  explicit one_node(actors::lock_options o = fast_locks())
      : service{node, router, with_observer(std::move(o))} {
    // Past the lock-delay of a manager that just started: a try-lock succeeds.
    REQUIRE(eventually([&] { return acquire("probe", "p", 1000, 0).error == 0; }));
    REQUIRE(release("probe", "p", info("probe").tokens.at(0)).error == 0);
  }
  actors::lock_reply acquire(const std::string& name, const std::string& owner, std::int64_t ttl_ms,
                             std::int64_t wait_ms,
                             actors::lock_mode mode = actors::lock_mode::exclusive,
                             std::uint64_t token = 0) {
    return rt
        .ask_sync(m,
                  actors::lock_acquire{name, owner, "node-a", ttl_ms, wait_ms,
                                       static_cast<std::uint8_t>(mode), token},
                  10s)
        .value();
  }
  actors::lock_reply renew(const std::string& name, const std::string& owner, std::uint64_t token,
                           std::int64_t ttl_ms = 1000) {
    return rt.ask_sync(m, actors::lock_renew{name, owner, token, ttl_ms}, 5s).value();
  }
  actors::lock_reply release(const std::string& name, const std::string& owner,
                             std::uint64_t token) {
    return rt.ask_sync(m, actors::lock_release{name, owner, token}, 5s).value();
  }
  actors::lock_info info(const std::string& name) {
    return rt.ask_sync(m, actors::lock_info_q{name}, 5s).value();
  }
  // An acquire that waits, on its own thread.
  std::future<actors::lock_reply> acquire_async(
      std::string name, std::string owner, std::int64_t ttl_ms, std::int64_t wait_ms,
      actors::lock_mode mode = actors::lock_mode::exclusive) {
    return std::async(std::launch::async,
                      [=, this] { return acquire(name, owner, ttl_ms, wait_ms, mode); });
  }
  bool waiters_are(const std::string& name, std::uint32_t n) {
    return eventually([&] { return info(name).waiters == n; });
  }
};

lock_errc err(const actors::lock_reply& r) { return static_cast<lock_errc>(r.error); }

}  // namespace

TEST_CASE("a grant is a lease with a fencing token that strictly increases", "[locks]") {
  one_node n;
  auto a = n.acquire("orders/1", "alice", 1000, 0);
  REQUIRE(a.error == 0);
  CHECK(a.token > 0);
  CHECK(n.release("orders/1", "alice", a.token).error == 0);
  auto b = n.acquire("orders/1", "bob", 1000, 0);
  REQUIRE(b.error == 0);
  CHECK(b.token > a.token);
  // Another lock of the same slot or not: its tokens increase too.
  auto c = n.acquire("orders/2", "carol", 1000, 0);
  REQUIRE(c.error == 0);
  CHECK(n.info("orders/1").holders == std::vector<std::string>{"bob"});
}

TEST_CASE("try-lock fails with busy while held; a waiter times out and leaves the queue",
          "[locks]") {
  one_node n;
  auto a = n.acquire("l", "alice", 1000, 0);
  REQUIRE(a.error == 0);
  CHECK(err(n.acquire("l", "bob", 1000, 0)) == lock_errc::busy);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(err(n.acquire("l", "bob", 1000, 50)) == lock_errc::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 >= 45ms);
  CHECK(n.info("l").waiters == 0);
  CHECK(n.info("l").holders == std::vector<std::string>{"alice"});
}

TEST_CASE("waiters are served FIFO and a release wakes only the head", "[locks]") {
  one_node n;
  auto a = n.acquire("l", "alice", 1000, 0);
  REQUIRE(a.error == 0);
  auto b = n.acquire_async("l", "bob", 1000, 5000);
  REQUIRE(n.waiters_are("l", 1));
  auto c = n.acquire_async("l", "carol", 1000, 5000);
  REQUIRE(n.waiters_are("l", 2));
  REQUIRE(n.release("l", "alice", a.token).error == 0);
  auto gb = b.get();
  REQUIRE(gb.error == 0);
  CHECK(gb.token > a.token);
  // Carol was not woken: still waiting behind bob.
  CHECK(n.info("l").waiters == 1);
  CHECK(n.info("l").holders == std::vector<std::string>{"bob"});
  REQUIRE(n.release("l", "bob", gb.token).error == 0);
  auto gc = c.get();
  REQUIRE(gc.error == 0);
  CHECK(gc.token > gb.token);
}

TEST_CASE("renew and release need the holder and its current token", "[locks]") {
  one_node n;
  auto a = n.acquire("l", "alice", 1000, 0);
  REQUIRE(a.error == 0);
  CHECK(err(n.release("l", "alice", a.token + 1)) == lock_errc::wrong_token);
  CHECK(err(n.release("l", "mallory", a.token)) == lock_errc::not_holder);
  CHECK(err(n.renew("l", "alice", a.token - 1)) == lock_errc::wrong_token);
  CHECK(err(n.renew("l", "mallory", a.token)) == lock_errc::not_holder);
  // Nothing changed.
  auto i = n.info("l");
  CHECK(i.holders == std::vector<std::string>{"alice"});
  CHECK(i.tokens == std::vector<std::uint64_t>{a.token});
  auto r = n.renew("l", "alice", a.token, 1500);
  CHECK(r.error == 0);
  CHECK(r.token == a.token);
  CHECK(n.release("l", "alice", a.token).error == 0);
  CHECK(err(n.release("l", "alice", a.token)) == lock_errc::expired);  // released already
}

TEST_CASE("expiry releases the lock and grants the next waiter; renewal after it fails",
          "[locks]") {
  one_node n;
  auto a = n.acquire("l", "alice", 60, 0);
  REQUIRE(a.error == 0);
  auto b = n.acquire_async("l", "bob", 1000, 5000);
  auto gb = b.get();
  REQUIRE(gb.error == 0);
  CHECK(gb.token > a.token);
  CHECK(err(n.renew("l", "alice", a.token)) == lock_errc::not_holder);
  std::lock_guard lock(n.events_m);
  bool expired = false;
  for (auto& e : n.events)
    expired |= e.what == actors::lock_event::kind::expired && e.token == a.token;
  CHECK(expired);
}

TEST_CASE("a renewal after the lease ran out is refused with expired", "[locks]") {
  one_node n;
  auto a = n.acquire("l", "alice", 20, 0);
  REQUIRE(a.error == 0);
  // The sweeper releases it (renewing meanwhile would keep it alive).
  REQUIRE(eventually([&] { return n.info("l").holders.empty(); }));
  CHECK(err(n.renew("l", "alice", a.token)) == lock_errc::expired);
  CHECK(err(n.release("l", "alice", a.token)) == lock_errc::expired);
}

TEST_CASE("shared holders coexist; an exclusive request waits and nobody jumps it", "[locks]") {
  one_node n;
  using actors::lock_mode;
  auto a = n.acquire("l", "alice", 1000, 0, lock_mode::shared);
  auto b = n.acquire("l", "bob", 1000, 0, lock_mode::shared);
  REQUIRE(a.error == 0);
  REQUIRE(b.error == 0);
  CHECK(n.info("l").holders.size() == 2);
  auto c = n.acquire_async("l", "carol", 1000, 5000, lock_mode::exclusive);
  REQUIRE(n.waiters_are("l", 1));
  // A shared request behind the waiting writer waits too (FIFO, no starvation).
  CHECK(err(n.acquire("l", "dave", 1000, 0, lock_mode::shared)) == lock_errc::busy);
  auto d = n.acquire_async("l", "dave", 1000, 5000, lock_mode::shared);
  REQUIRE(n.waiters_are("l", 2));
  REQUIRE(n.release("l", "alice", a.token).error == 0);
  CHECK(n.info("l").waiters == 2);
  REQUIRE(n.release("l", "bob", b.token).error == 0);
  auto gc = c.get();
  REQUIRE(gc.error == 0);
  CHECK(n.info("l").waiters == 1);
  REQUIRE(n.release("l", "carol", gc.token).error == 0);
  CHECK(d.get().error == 0);
}

TEST_CASE("an owner may acquire again with its token and a hold count, not in the other mode",
          "[locks]") {
  one_node n;
  const auto ex = actors::lock_mode::exclusive;
  auto a1 = n.acquire("l", "alice", 1000, 0);
  REQUIRE(a1.error == 0);
  auto a2 = n.acquire("l", "alice", 1000, 0, ex, a1.token);
  REQUIRE(a2.error == 0);
  CHECK(a2.token == a1.token);
  CHECK(a2.holds == 2);
  CHECK(err(n.acquire("l", "alice", 1000, 0, actors::lock_mode::shared, a1.token)) ==
        lock_errc::mode_mismatch);
  // The owner's name alone is not a proof: the ordinary answer, no third hold.
  CHECK(err(n.acquire("l", "alice", 1000, 0)) == lock_errc::busy);
  CHECK(err(n.acquire("l", "alice", 1000, 0, ex, a1.token + 1)) == lock_errc::wrong_token);
  CHECK(n.info("l").holders.size() == 1);
  CHECK(n.release("l", "alice", a1.token).holds == 1);
  CHECK(err(n.acquire("l", "bob", 1000, 0)) == lock_errc::busy);
  CHECK(n.release("l", "alice", a1.token).error == 0);
  CHECK(n.acquire("l", "bob", 1000, 0).error == 0);
}

TEST_CASE("waiters are capped per lock and per manager, refused at once and counted", "[locks]") {
  actors::lock_options o = fast_locks();
  o.max_waiters_per_lock = 2;
  o.max_waiters = 3;
  one_node n{o};
  REQUIRE(n.acquire("a", "alice", 2000, 0).error == 0);
  REQUIRE(n.acquire("b", "alice", 2000, 0).error == 0);
  auto w1 = n.acquire_async("a", "w1", 1000, 1500);
  auto w2 = n.acquire_async("a", "w2", 1000, 1500);
  REQUIRE(n.waiters_are("a", 2));
  // A third waiter on "a" is over the per-lock cap: refused without waiting.
  auto t0 = std::chrono::steady_clock::now();
  CHECK(err(n.acquire("a", "w3", 1000, 1500)) == lock_errc::too_many_waiters);
  CHECK(std::chrono::steady_clock::now() - t0 < 1000ms);
  auto w4 = n.acquire_async("b", "w4", 1000, 1500);
  REQUIRE(n.waiters_are("b", 1));
  // Three waiters in the manager: "b" is under its own cap but the total is not.
  CHECK(err(n.acquire("b", "w5", 1000, 1500)) == lock_errc::too_many_waiters);
  CHECK(n.rt.ask_sync(n.m, actors::lock_stats_q{}, 5s).value().waiters_refused == 2);
  // A try-lock is no waiter: still the ordinary answer.
  CHECK(err(n.acquire("a", "w6", 1000, 0)) == lock_errc::busy);
  // The manager keeps serving: the waiters are granted in turn on release.
  REQUIRE(n.release("a", "alice", n.info("a").tokens.at(0)).error == 0);
  auto r1 = w1.get();
  CHECK(r1.error == 0);
  CHECK(n.release("a", "w1", r1.token).error == 0);
  CHECK(w2.get().error == 0);
  REQUIRE(n.release("b", "alice", n.info("b").tokens.at(0)).error == 0);
  CHECK(w4.get().error == 0);
}

TEST_CASE("bad lock requests get a clear error each", "[locks]") {
  one_node n;
  CHECK(err(n.acquire("l", "a", 0, 0)) == lock_errc::bad_ttl);
  CHECK(err(n.acquire("l", "a", -5, 0)) == lock_errc::bad_ttl);
  CHECK(err(n.acquire("l", "a", 2001, 0)) == lock_errc::ttl_too_long);
  CHECK(err(n.acquire("", "a", 100, 0)) == lock_errc::empty_name);
  CHECK(err(n.acquire(std::string(513, 'x'), "a", 100, 0)) == lock_errc::name_too_long);
  CHECK(err(n.acquire("l", "a", 100, -1)) == lock_errc::bad_wait);
  CHECK(err(n.acquire("l", "a", 100, 3'600'001)) == lock_errc::bad_wait);
  CHECK(err(n.acquire("l", "a", 100, INT64_MAX)) == lock_errc::bad_wait);
  CHECK(err(n.acquire("l", "a", INT64_MAX, 0)) == lock_errc::ttl_too_long);
  CHECK(err(n.renew("l", "a", 1, 0)) == lock_errc::bad_ttl);
  CHECK(err(n.release("", "a", 1)) == lock_errc::empty_name);
  CHECK(make_error_code(lock_errc::wrong_token).message().find("token") != std::string::npos);
  // Nothing was granted by any of them.
  CHECK(n.info("l").holders.empty());
}

TEST_CASE("a node out of the majority grants and renews nothing; back in it, it waits again",
          "[locks][majority]") {
  // Two nodes of an expected three: a majority. One leaves: a minority.
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  net::node_options oa = node_opts("node-a");
  oa.expect = 3;
  net::node a{ra, oa};
  actors::router router{a};
  actors::lock_service service{a, router, fast_locks()};
  auto acquire = [&](const std::string& owner, std::int64_t wait_ms = 0) {
    return ra
        .ask_sync(service.ref(), actors::lock_acquire{"m", owner, "node-a", 1000, wait_ms, 0}, 5s)
        .value();
  };
  auto renew = [&](const std::string& owner, std::uint64_t token) {
    return ra.ask_sync(service.ref(), actors::lock_renew{"m", owner, token, 1000}, 5s).value();
  };
  auto release = [&](const std::string& owner, std::uint64_t token) {
    return ra.ask_sync(service.ref(), actors::lock_release{"m", owner, token}, 5s).value();
  };
  // Alone: 1 of 3.
  CHECK(err(acquire("x")) == lock_errc::no_majority);
  CHECK_FALSE(a.quorum()->in_majority(ra.now_ns()));

  auto rb = std::make_unique<troupe::runtime>(troupe::test::threaded(log_b, 1));
  auto b = std::make_unique<net::node>(*rb, node_opts("node-b", {{"127.0.0.1", a.port()}}));
  REQUIRE(eventually([&] { return acquire("x").error == 0; }));  // 2 of 3, past the lock-delay
  const std::uint64_t before =
      ra.ask_sync(service.ref(), actors::lock_info_q{"m"}, 5s).value().tokens.at(0);
  // node-b leaves: node-a is 1 of 3 again.
  b.reset();
  rb.reset();
  REQUIRE(eventually([&] { return err(renew("x", before)) == lock_errc::no_majority; }));
  CHECK(err(acquire("y")) == lock_errc::no_majority);
  CHECK(log_a.contains("not in the majority"));
  CHECK(release("x", before).error == 0);  // releasing is always allowed

  // Back in the majority: the slots start again (the others may have
  // granted in them meanwhile), with a higher token epoch.
  troupe::runtime rb2{troupe::test::threaded(log_b, 1)};
  net::node b2{rb2, node_opts("node-b", {{"127.0.0.1", a.port()}})};
  REQUIRE(eventually([&] { return acquire("z").error == 0; }));
  const std::uint64_t after =
      ra.ask_sync(service.ref(), actors::lock_info_q{"m"}, 5s).value().tokens.at(0);
  CHECK(after > before);
  CHECK((after >> 24) > (before >> 24));  // a new epoch, not just the next grant
}

TEST_CASE("a manager grants nothing during its lock-delay", "[locks]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node node{rt, node_opts("node-a")};
  actors::router router{node};
  actors::lock_options o = fast_locks();
  o.lock_delay = 300ms;
  const auto started = std::chrono::steady_clock::now();
  actors::lock_service service{node, router, o};
  auto try_lock = [&] {
    return rt.ask_sync(service.ref(), actors::lock_acquire{"l", "a", "node-a", 100, 0, 0}, 5s)
        .value();
  };
  // Until the router's ring reached the manager, the slot is not_owner; then busy.
  auto first = try_lock();
  CHECK((err(first) == lock_errc::not_owner || err(first) == lock_errc::busy));
  auto waited =
      rt.ask_sync(service.ref(), actors::lock_acquire{"l", "a", "node-a", 100, 2000, 0}, 5s)
          .value();
  REQUIRE(waited.error == 0);
  CHECK(std::chrono::steady_clock::now() - started >= 300ms);
}

// --- the client: guards --------------------------------------------------------

namespace {
struct take {
  std::string name;
  std::chrono::milliseconds ttl, wait;
};
struct drop {
  std::string name;
};
struct status_q {
  std::string name;
};
struct guard_status {
  bool held = false, lost = true;
  std::uint64_t token = 0;
  std::uint32_t holds = 0;
};
// Holds guards between messages, as a real holder would.
class holder_actor : public troupe::actor {
 public:
  explicit holder_actor(actors::locks* l) : locks_(l) {}
  task<result<std::uint64_t>> handle(take t) {
    auto call = locks_->acquire(t.name, t.ttl, t.wait);
    result<actors::lock_guard> g = co_await std::move(call);
    if (!g) co_return troupe::failure<std::uint64_t>(g.error());
    const std::uint64_t token = g->token();
    guards_[t.name].push_back(std::move(*g));
    co_return token;
  }
  void handle(drop d) {
    auto& v = guards_[d.name];
    if (!v.empty()) v.pop_back();  // the guard's destructor releases
  }
  guard_status handle(status_q q) {
    auto& v = guards_[q.name];
    if (v.empty()) return {};
    return {v.back().held(), v.back().lost(), v.back().token(), v.back().holds()};
  }

 private:
  actors::locks* locks_;
  std::map<std::string, std::vector<actors::lock_guard>> guards_;
};
}  // namespace

TEST_CASE("a guard releases on scope exit, keeps its lease alive, and says when it is lost",
          "[locks][client]") {
  one_node n;
  actors::locks client{n.node};
  auto h = n.rt.spawn<holder_actor>(&client);
  auto t = n.rt.ask_sync(h, take{"g", 90ms, 0ms}, 10s).value();
  REQUIRE(t);
  // Held well past its TTL: the guard renews it every ttl/3.
  auto t_end = std::chrono::steady_clock::now() + 400ms;
  while (std::chrono::steady_clock::now() < t_end) {
    auto s = n.rt.ask_sync(h, status_q{"g"}, 5s).value();
    REQUIRE(s.held);
    REQUIRE_FALSE(s.lost);
    std::this_thread::yield();
  }
  CHECK(n.info("g").tokens == std::vector<std::uint64_t>{*t});
  // Someone forces the lease away (a release with the holder's token, as an
  // operator would): the next renewal fails and the guard reports it lost.
  auto i = n.info("g");
  REQUIRE(n.release("g", i.holders.at(0), *t).error == 0);
  REQUIRE(eventually([&] { return n.rt.ask_sync(h, status_q{"g"}, 5s).value().lost; }));
  // Dropping a guard releases the lock.
  (void)n.rt.ask_sync(h, drop{"g"}, 5s);
  auto t2 = n.rt.ask_sync(h, take{"g2", 1000ms, 0ms}, 10s).value();
  REQUIRE(t2);
  (void)n.rt.ask_sync(h, drop{"g2"}, 5s);
  REQUIRE(eventually([&] { return n.info("g2").holders.empty(); }));
}

TEST_CASE("a holder acquiring again through the client is reentrant (its token goes along)",
          "[locks][client]") {
  one_node n;
  actors::locks l{n.node};
  auto h = n.rt.spawn<holder_actor>(&l);
  auto t1 = n.rt.ask_sync(h, take{"r", 1000ms, 0ms}, 5s).value();
  auto t2 = n.rt.ask_sync(h, take{"r", 1000ms, 0ms}, 5s).value();
  REQUIRE(t1);
  REQUIRE(t2);
  CHECK(*t1 == *t2);
  CHECK(n.rt.ask_sync(h, status_q{"r"}, 5s).value().holds == 2);
  CHECK(n.info("r").holders.size() == 1);
  // Both guards released: the lock is free again.
  (void)n.rt.ask_sync(h, drop{"r"}, 5s);
  CHECK(n.info("r").holders.size() == 1);  // one hold left
  (void)n.rt.ask_sync(h, drop{"r"}, 5s);
  CHECK(eventually([&] { return n.info("r").holders.empty(); }));
}

TEST_CASE("the holder actor's death releases its locks at once", "[locks][client]") {
  one_node n;
  actors::locks client{n.node};
  auto h = n.rt.spawn<holder_actor>(&client);
  REQUIRE(n.rt.ask_sync(h, take{"d", 2000ms, 0ms}, 10s).value());
  auto waiter = n.acquire_async("d", "bob", 1000, 5000);
  REQUIRE(n.waiters_are("d", 1));
  h.stop();
  auto g = waiter.get();  // long before the 2 s lease would have ended
  CHECK(g.error == 0);
}

TEST_CASE("client-side bad input is refused before anything is sent", "[locks][client]") {
  one_node n;
  actors::locks client{n.node};
  auto h = n.rt.spawn<holder_actor>(&client);
  auto r = n.rt.ask_sync(h, take{"", 100ms, 0ms}, 5s).value();
  REQUIRE_FALSE(r);
  CHECK(r.error() == lock_errc::empty_name);
  r = n.rt.ask_sync(h, take{"x", 0ms, 0ms}, 5s).value();
  REQUIRE_FALSE(r);
  CHECK(r.error() == lock_errc::bad_ttl);
  r = n.rt.ask_sync(h, take{"x", 100ms, -1ms}, 5s).value();
  REQUIRE_FALSE(r);
  CHECK(r.error() == lock_errc::bad_wait);
  r = n.rt.ask_sync(h, take{"x", 5000ms, 0ms}, 5s).value();  // over the managers' max_ttl
  REQUIRE_FALSE(r);
  CHECK(r.error() == lock_errc::ttl_too_long);
}

// --- three nodes: placement, node death, and the history checker ------------------

namespace {
struct cluster_member {
  troupe::test::log_sink log;
  std::unique_ptr<troupe::runtime> rt;
  std::unique_ptr<net::node> node;
  std::unique_ptr<actors::router> router;
  std::unique_ptr<actors::lock_service> service;
  std::unique_ptr<actors::locks> client, client_no_renew;
  cluster_member(const std::string& name, std::vector<net::endpoint> seeds, actors::lock_options o,
                 std::size_t expect = 0) {
    rt = std::make_unique<troupe::runtime>(troupe::test::threaded(log, 1));
    net::node_options no = node_opts(name, std::move(seeds));
    no.expect = expect;
    node = std::make_unique<net::node>(*rt, no);
    router = std::make_unique<actors::router>(*node);
    service = std::make_unique<actors::lock_service>(*node, *router, std::move(o));
    client = std::make_unique<actors::locks>(*node);
    actors::lock_client_options no_renew;
    no_renew.keep_alive = false;
    client_no_renew = std::make_unique<actors::locks>(*node, no_renew);
  }
  // Stops the runtime first: no goodbye to the peers, links just drop.
  void kill() {
    rt->stop();
    client_no_renew.reset();
    client.reset();
    service.reset();
    router.reset();
    node.reset();
    rt.reset();
  }
  ~cluster_member() {
    client_no_renew.reset();
    client.reset();
    service.reset();
    router.reset();
    node.reset();
  }
};

// Every grant, renewal and end the managers reported, on one clock.
struct history {
  struct interval {
    std::string manager;
    std::uint64_t token;
    std::int64_t from_ns;
    std::int64_t to_ns;  // end event, else the lease's last expiry
    bool ended = false;
    bool continued = false;  // taken over from the slot's previous owner (same lease)
  };
  std::mutex m;
  std::map<std::string, std::vector<interval>> by_lock;
  std::size_t grants = 0, expiries = 0, revocations = 0, releases = 0;
  static std::int64_t clock() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  actors::lock_options options_for(const std::string& manager) {
    actors::lock_options o;
    o.max_ttl = 300ms;  // lock-delay = max_ttl
    o.sweep = 2ms;
    o.observer = [this, manager](const actors::lock_event& e) {
      const std::int64_t now = clock();
      const std::int64_t expires = now + (e.expires_ns - e.at_ns);
      std::lock_guard lock(m);
      auto& v = by_lock[e.name];
      using k = actors::lock_event::kind;
      if (e.what == k::granted || e.what == k::taken_over) {
        grants += e.what == k::granted;
        v.push_back({manager, e.token, now, expires, false, e.what == k::taken_over});
        return;
      }
      for (auto it = v.rbegin(); it != v.rend(); ++it) {
        if (it->token != e.token || it->manager != manager || it->ended) continue;
        if (e.what == k::renewed) {
          it->to_ns = expires;
        } else {
          it->to_ns = now;
          it->ended = true;
          expiries += e.what == k::expired;
          revocations += e.what == k::revoked;
          releases += e.what == k::released;
        }
        break;
      }
    };
    return o;
  }
};

struct run_clients {
  std::uint64_t seed;
  std::atomic<bool>* stop;
  std::atomic<int>* finished;
  std::atomic<std::uint64_t>* acquired;  // fresh grants: the lease's first hold
  std::atomic<std::uint64_t>* reentered;
};
class lock_client : public troupe::actor {
 public:
  lock_client(actors::locks* renewing, actors::locks* not_renewing)
      : renewing_(renewing), not_renewing_(not_renewing) {}
  task<void> handle(run_clients r) {
    std::mt19937_64 rng(r.seed);
    while (!r.stop->load()) {
      const std::string name = "res/" + std::to_string(rng() % 6);
      // One request in five holds past its TTL without renewing: an expiry.
      const bool overstay = rng() % 5 == 0;
      actors::locks* l = overstay ? not_renewing_ : renewing_;
      auto call = l->acquire(name, 60ms, 150ms);
      result<actors::lock_guard> g = co_await std::move(call);
      if (g) {
        // A client's release and its next acquire may travel through its
        // two lock clients (two keepers) and reach the manager in either
        // order; an acquire that overtakes the release of the same lock is
        // reentrant (holds 2), a renewal of that lease, not a grant.
        (g->holds() == 1 ? r.acquired : r.reentered)->fetch_add(1);
        co_await troupe::sleep_for(overstay ? 90ms : std::chrono::milliseconds(rng() % 15));
        g->release();
      } else {
        co_await troupe::sleep_for(5ms);  // back off before trying again
      }
    }
    r.finished->fetch_add(1);
  }

 private:
  actors::locks* renewing_;
  actors::locks* not_renewing_;
};
}  // namespace

TEST_CASE("history checker: 33 clients on 3 nodes, expiries and a node killed mid-run",
          "[locks][history]") {
  history h;
  cluster_member a{"node-a", {}, h.options_for("node-a")};
  cluster_member b{"node-b", {{"127.0.0.1", a.node->port()}}, h.options_for("node-b")};
  cluster_member c{"node-c",
                   {{"127.0.0.1", a.node->port()}, {"127.0.0.1", b.node->port()}},
                   h.options_for("node-c")};
  REQUIRE(eventually([&] {
    return a.router->members().size() == 3 && b.router->members().size() == 3 &&
           c.router->members().size() == 3;
  }));
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  std::atomic<std::uint64_t> acquired{0}, reentered{0};
  std::uint64_t seed = troupe::test::seed();
  for (cluster_member* m : {&a, &b, &c})
    for (int i = 0; i < 11; ++i) {
      auto cl = m->rt->spawn<lock_client>(m->client.get(), m->client_no_renew.get());
      (void)cl.tell(run_clients{seed++, &stop, &finished, &acquired, &reentered});
    }
  // Run, kill node-c with its clients mid-run, run on.
  REQUIRE(eventually([&] { return acquired.load() >= 150; }, 20s));
  const std::uint64_t before_kill = acquired.load();
  c.kill();
  REQUIRE(eventually([&] { return acquired.load() >= before_kill + 150; }, 20s));
  stop = true;
  REQUIRE(eventually([&] { return finished.load() == 22; }, 20s));

  std::lock_guard lock(h.m);
  std::size_t violations = 0, checked = 0;
  for (auto& [name, v] : h.by_lock) {
    std::sort(v.begin(), v.end(),
              [](const auto& x, const auto& y) { return x.from_ns < y.from_ns; });
    for (std::size_t i = 1; i < v.size(); ++i) {
      // A lease handed over goes on under its token at the slot's next owner.
      if (v[i].continued && v[i].token == v[i - 1].token) continue;
      ++checked;
      // No two leases of one lock overlap (server clock) ...
      if (v[i].from_ns < v[i - 1].to_ns) {
        ++violations;
        UNSCOPED_INFO(name << ": grant " << v[i].token << " by " << v[i].manager << " at "
                           << v[i].from_ns << " inside " << v[i - 1].token << " by "
                           << v[i - 1].manager << " until " << v[i - 1].to_ns);
      }
      // ... and tokens strictly increase in grant order.
      if (v[i].token <= v[i - 1].token) {
        ++violations;
        UNSCOPED_INFO(name << ": token " << v[i].token << " after " << v[i - 1].token);
      }
    }
  }
  std::cout << "lock history: grants " << h.grants << ", releases " << h.releases << ", expiries "
            << h.expiries << ", revocations " << h.revocations << ", reentrant acquires "
            << reentered.load() << ", kills 1, pairs checked " << checked << ", violations "
            << violations << "\n";
  CHECK(violations == 0);
  CHECK(h.grants >= acquired.load());  // every grant a client saw was recorded
  CHECK(h.expiries > 0);
}

TEST_CASE("tokens keep increasing across a manager restart", "[locks]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node node{rt, node_opts("node-a")};
  actors::router router{node};
  auto grant = [&](actors::lock_service& s) {
    actors::lock_reply r;
    REQUIRE(eventually([&] {
      r = rt.ask_sync(s.ref(), actors::lock_acquire{"l", "a", "node-a", 100, 0, 0}, 5s).value();
      return r.error == 0;
    }));
    return r.token;
  };
  std::uint64_t before = 0;
  {
    actors::lock_service first{node, router, fast_locks()};
    before = grant(first);
  }  // the manager stops with the lock still held: its state is gone
  actors::lock_service second{node, router, fast_locks()};
  const std::uint64_t after = grant(second);
  CHECK(after > before);
}

namespace {
// A lock name whose slot `owner` serves in `m`'s ring (the n-th such name).
std::string lock_served_by(const cluster_member& m, const std::string& owner, int nth = 0) {
  for (int i = 0;; ++i) {
    std::string n = "lk/" + std::to_string(i);
    if (m.router->owner(actors::lock_slot_key(actors::lock_slot(n, 256))).value() == owner &&
        nth-- == 0)
      return n;
  }
}
struct event_log {
  std::mutex m;
  std::vector<actors::lock_event> events;
  actors::lock_options with(actors::lock_options o) {
    o.observer = [this](const actors::lock_event& e) {
      std::lock_guard lock(m);
      events.push_back(e);
    };
    return o;
  }
  std::vector<actors::lock_event> of(const std::string& name) {
    std::lock_guard lock(m);
    std::vector<actors::lock_event> out;
    for (const auto& e : events)
      if (e.name == name) out.push_back(e);
    return out;
  }
};
}  // namespace

TEST_CASE("a holder's node going down: its lock is granted again only once the lease ran out",
          "[locks]") {
  event_log ev;
  actors::lock_options o = ev.with(fast_locks());
  cluster_member a{"node-a", {}, o};
  auto b = std::make_unique<cluster_member>(
      "node-b", std::vector<net::endpoint>{{"127.0.0.1", a.node->port()}}, fast_locks());
  REQUIRE(eventually(
      [&] { return a.router->members().size() == 2 && b->router->members().size() == 2; }));
  // A lock that node-a serves, held (2 s lease) by an actor on node-b.
  const std::string name = lock_served_by(a, "node-a");
  auto h = b->rt->spawn<holder_actor>(b->client.get());
  result<std::uint64_t> t;
  REQUIRE(eventually([&] {
    result<result<std::uint64_t>> r = b->rt->ask_sync(h, take{name, 2000ms, 0ms}, 10s);
    if (!r) return false;  // recovering until node-a's first lock-delay is over
    t = *r;
    return static_cast<bool>(t);
  }));
  auto m = a.service->ref();
  auto waiter = std::async(std::launch::async, [&] {
    return a.rt->ask_sync(m, actors::lock_acquire{name, "alice", "node-a", 1000, 8000, 0}, 10s)
        .value();
  });
  REQUIRE(eventually(
      [&] { return a.rt->ask_sync(m, actors::lock_info_q{name}, 5s).value().waiters == 1; }));
  b->kill();
  auto g = waiter.get();
  REQUIRE(g.error == 0);
  CHECK(g.token > *t);
  // Not revoked when node-a saw node-b go (the holder may be alive, cut
  // off): granted to alice once the holder's last lease had run out.
  std::int64_t holder_until = 0, alice_at = 0;
  for (const auto& e : ev.of(name)) {
    if (e.token == *t && (e.what == actors::lock_event::kind::granted ||
                          e.what == actors::lock_event::kind::renewed))
      holder_until = std::max(holder_until, e.expires_ns);
    CHECK_FALSE((e.token == *t && e.what == actors::lock_event::kind::revoked));
    if (e.owner == "alice" && e.what == actors::lock_event::kind::granted) alice_at = e.at_ns;
  }
  CHECK(holder_until > 0);
  CHECK(alice_at >= holder_until);
}

TEST_CASE("a client marks its guards lost as soon as the manager's node goes down", "[locks]") {
  actors::lock_options o = fast_locks();
  o.max_ttl = 30s;
  o.lock_delay = 30ms;
  auto a = std::make_unique<cluster_member>("node-a", std::vector<net::endpoint>{}, o);
  cluster_member b{"node-b", {{"127.0.0.1", a->node->port()}}, o};
  REQUIRE(eventually(
      [&] { return a->router->members().size() == 2 && b.router->members().size() == 2; }));
  const std::string name = lock_served_by(b, "node-a");
  auto h = b.rt->spawn<holder_actor>(b.client.get());
  REQUIRE(eventually([&] {
    result<result<std::uint64_t>> r = b.rt->ask_sync(h, take{name, 30s, 0ms}, 10s);
    return r && *r;
  }));
  REQUIRE_FALSE(b.rt->ask_sync(h, status_q{name}, 5s).value().lost);
  a->kill();
  // Long before the 30 s lease (or its first renewal at 10 s) could say so.
  CHECK(eventually([&] { return b.rt->ask_sync(h, status_q{name}, 5s).value().lost; }, 5s));
  CHECK(b.log.contains("went down"));
}

TEST_CASE(
    "with the majority rule a fresh cluster grants at once and a joining node takes its "
    "slots over with their leases",
    "[locks][handoff]") {
  // A lock-delay of 30 s: any grant within this test came by hand-off.
  event_log ev;
  actors::lock_options o = fast_locks();
  o.max_ttl = 30s;
  o.lock_delay = 30s;
  const auto started = std::chrono::steady_clock::now();
  cluster_member a{"node-a", {}, ev.with(o), 3};
  cluster_member b{"node-b", {{"127.0.0.1", a.node->port()}}, ev.with(o), 3};
  REQUIRE(eventually(
      [&] { return a.router->members().size() == 2 && b.router->members().size() == 2; }));
  // Hold 24 locks from node-a (renewed every 10 s).
  auto h = a.rt->spawn<holder_actor>(a.client.get());
  std::map<std::string, std::uint64_t> held;
  for (int i = 0; i < 24; ++i) {
    const std::string name = "hand/" + std::to_string(i);
    result<result<std::uint64_t>> r;
    REQUIRE(eventually([&] {
      r = a.rt->ask_sync(h, take{name, 30s, 0ms}, 10s);
      return r && *r;
    }));
    held[name] = **r;
  }
  CHECK(std::chrono::steady_clock::now() - started < 15s);  // not the 30 s lock-delay
  // node-c joins: some slots move to it, with their leases.
  cluster_member c{"node-c", {{"127.0.0.1", b.node->port()}}, ev.with(o), 3};
  REQUIRE(eventually([&] {
    return a.router->members().size() == 3 && b.router->members().size() == 3 &&
           c.router->members().size() == 3;
  }));
  std::size_t moved = 0;
  for (auto& [name, token] : held) {
    if (c.router->owner(actors::lock_slot_key(actors::lock_slot(name, 256))).value() != "node-c")
      continue;
    ++moved;
    // node-c knows the holder and its token; another owner is refused.
    actors::lock_info info;
    REQUIRE(eventually([&] {
      auto i = c.rt->ask_sync(c.service->ref(), actors::lock_info_q{name}, 5s);
      if (!i || i->error != 0 || i->tokens.empty()) return false;
      info = *i;
      return true;
    }));
    CHECK(info.tokens.at(0) == token);
    // (no_majority until node-c's first heartbeat with its links up)
    actors::lock_reply other;
    REQUIRE(eventually([&] {
      other = c.rt->ask_sync(c.service->ref(),
                             actors::lock_acquire{name, "other", "node-c", 1000, 0, 0}, 5s)
                  .value();
      return err(other) != lock_errc::no_majority;
    }));
    CHECK(err(other) == lock_errc::busy);
    CHECK_FALSE(a.rt->ask_sync(h, status_q{name}, 5s).value().lost);
  }
  CHECK(moved > 0);
  // A free lock in node-c's slots is granted at once.
  const std::string fresh = lock_served_by(c, "node-c", 100);
  REQUIRE(eventually([&] {
    auto r = c.rt->ask_sync(c.service->ref(),
                            actors::lock_acquire{fresh, "f", "node-c", 1000, 0, 0}, 5s);
    return r && r->error == 0;
  }));
  CHECK(std::chrono::steady_clock::now() - started < 25s);
  std::lock_guard lock(ev.m);
  std::size_t taken = 0;
  for (const auto& e : ev.events) taken += e.what == actors::lock_event::kind::taken_over;
  CHECK(taken >= moved);
}

TEST_CASE("a node that stops hands its leases to the members that serve their slots next",
          "[locks][handoff]") {
  actors::lock_options o = fast_locks();
  o.max_ttl = 30s;
  o.lock_delay = 30s;
  cluster_member a{"node-a", {}, o, 3};
  cluster_member b{"node-b", {{"127.0.0.1", a.node->port()}}, o, 3};
  auto c = std::make_unique<cluster_member>(
      "node-c", std::vector<net::endpoint>{{"127.0.0.1", a.node->port()}}, o, 3);
  REQUIRE(eventually([&] {
    return a.router->members().size() == 3 && b.router->members().size() == 3 &&
           c->router->members().size() == 3;
  }));
  // node-a holds two locks node-c serves.
  const std::string one = lock_served_by(a, "node-c", 0), two = lock_served_by(a, "node-c", 1);
  auto h = a.rt->spawn<holder_actor>(a.client.get());
  std::map<std::string, std::uint64_t> held;
  for (const std::string& name : {one, two}) {
    result<result<std::uint64_t>> r;
    REQUIRE(eventually([&] {
      r = a.rt->ask_sync(h, take{name, 30s, 0ms}, 10s);
      return r && *r;
    }));
    held[name] = **r;
  }
  c.reset();  // a planned stop: the lock service leaves first
  REQUIRE(eventually(
      [&] { return a.router->members().size() == 2 && b.router->members().size() == 2; }));
  for (auto& [name, token] : held) {
    const std::string owner =
        a.router->owner(actors::lock_slot_key(actors::lock_slot(name, 256))).value();
    cluster_member& m = owner == "node-a" ? a : b;
    actors::lock_info info;
    REQUIRE(eventually([&] {
      auto i = m.rt->ask_sync(m.service->ref(), actors::lock_info_q{name}, 5s);
      if (!i || i->error != 0 || i->tokens.empty()) return false;
      info = *i;
      return true;
    }));
    CHECK(info.tokens.at(0) == token);
    CHECK_FALSE(a.rt->ask_sync(h, status_q{name}, 5s).value().lost);  // a leave is no loss
  }
  // Free locks in the moved slots are granted at once (not after 30 s).
  const std::string fresh = lock_served_by(a, "node-a", 50);
  REQUIRE(eventually([&] {
    auto r = a.rt->ask_sync(a.service->ref(),
                            actors::lock_acquire{fresh, "f", "node-a", 1000, 0, 0}, 5s);
    return r && r->error == 0;
  }));
}

TEST_CASE("a slot whose owner crashed answers recovering, with how long, until its leases ran out",
          "[locks][handoff]") {
  actors::lock_options o = fast_locks();
  o.max_ttl = 3s;
  o.lock_delay = 3s;
  cluster_member a{"node-a", {}, o, 3};
  cluster_member b{"node-b", {{"127.0.0.1", a.node->port()}}, o, 3};
  auto c = std::make_unique<cluster_member>(
      "node-c", std::vector<net::endpoint>{{"127.0.0.1", a.node->port()}}, o, 3);
  REQUIRE(eventually([&] {
    return a.router->members().size() == 3 && b.router->members().size() == 3 &&
           c->router->members().size() == 3;
  }));
  const std::string name = lock_served_by(a, "node-c");
  c->kill();
  REQUIRE(eventually(
      [&] { return a.router->members().size() == 2 && b.router->members().size() == 2; }));
  const std::string owner =
      a.router->owner(actors::lock_slot_key(actors::lock_slot(name, 256))).value();
  cluster_member& m = owner == "node-a" ? a : b;
  actors::lock_reply r;
  REQUIRE(eventually([&] {  // not_owner until its manager has the new ring
    r = m.rt->ask_sync(m.service->ref(), actors::lock_acquire{name, "x", owner, 1000, 0, 0}, 5s)
            .value();
    // (and no_majority until a first heartbeat of the node with its links up)
    return err(r) != lock_errc::not_owner && err(r) != lock_errc::no_majority;
  }));
  REQUIRE(err(r) == lock_errc::recovering);
  CHECK(r.ttl_ms > 0);
  CHECK(r.ttl_ms <= 3000 + 1);
  // Then it grants, with no operator.
  REQUIRE(eventually([&] {
    auto g =
        m.rt->ask_sync(m.service->ref(), actors::lock_acquire{name, "x", owner, 1000, 0, 0}, 5s);
    return g && g->error == 0;
  }));
}

TEST_CASE("a manager stopping with waiters parked fails their asks and frees them", "[locks]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node node{rt, node_opts("node-a")};
  actors::router router{node};
  auto service = std::make_unique<actors::lock_service>(node, router, fast_locks());
  auto m = service->ref();
  REQUIRE(eventually([&] {
    auto r = rt.ask_sync(m, actors::lock_acquire{"l", "a", "node-a", 1000, 0, 0}, 5s);
    return r && r->error == 0;
  }));
  auto park = [&](const std::string& owner) {
    return std::async(std::launch::async, [&, owner] {
      return rt.ask_sync(m, actors::lock_acquire{"l", owner, "node-a", 1000, 60'000, 0}, 30s);
    });
  };
  auto waiters_are = [&](std::uint32_t n) {
    return eventually([&] {
      auto i = rt.ask_sync(m, actors::lock_info_q{"l"}, 5s);
      return i && i->waiters == n;
    });
  };
  SECTION("stopped (a crash of the manager): the asks fail with actor_died") {
    auto waiter = park("b");
    REQUIRE(waiters_are(1));
    m.stop();
    auto r = waiter.get();
    REQUIRE_FALSE(r);
    CHECK(r.error() == troupe::errc::actor_died);
  }
  SECTION("its service destroyed (a planned leave): told to ask the slot's next owner") {
    auto waiter = park("b");
    REQUIRE(waiters_are(1));
    service.reset();
    auto r = waiter.get();
    REQUIRE(r);
    CHECK(err(*r) == lock_errc::not_owner);
  }
}
