// SPDX-License-Identifier: BSL-1.0
// The ring-router on real nodes: placement agreed by every node, routed tells
// and asks, forward-once by epoch, errors, and a 3-node stream through a leave
// and a rejoin where every message is accounted for.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <troupe/actors/router.hpp>
#include <troupe/net/node.hpp>

#include "net/net_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::result;
using troupe::task;
namespace net = troupe::net;
namespace actors = troupe::actors;

struct hit {  // told: recorded where it lands
  std::uint64_t id = 0;
  template <class A>
  void serialize(A& a) {
    a(id);
  }
};
struct where {  // asked: recorded, answered with the node's name
  std::uint64_t id = 0;
  template <class A>
  void serialize(A& a) {
    a(id);
  }
};
std::atomic<int> counted_encodes{0};
struct counted {  // counts every serialization
  int x = 0;
  template <class A>
  void serialize(A& a) {
    counted_encodes.fetch_add(1);
    a(x);
  }
};
TROUPE_REMOTE_MESSAGE(hit, 7101);
TROUPE_REMOTE_MESSAGE(where, 7102);
TROUPE_REMOTE_MESSAGE(counted, 7103);

namespace {

// Where every id landed, across all nodes of a test.
struct ledger {
  std::mutex m;
  std::condition_variable cv;
  std::map<std::uint64_t, std::vector<std::string>> seen;
  std::vector<std::uint64_t> order;  // ids in the order they were recorded
  void record(const std::string& node, std::uint64_t id) {
    std::lock_guard lock(m);
    seen[id].push_back(node);
    order.push_back(id);
    cv.notify_all();
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, 10s, [&] { return seen.size() >= n; });
  }
};

class recorder : public troupe::actor {
 public:
  using remote_messages = net::message_list<hit, where, counted>;
  recorder(std::string node, ledger* l) : node_(std::move(node)), ledger_(l) {}
  void handle(hit h) { ledger_->record(node_, h.id); }
  std::string handle(where w) {
    ledger_->record(node_, w.id);
    return node_;
  }
  int handle(counted c) { return c.x; }

 private:
  std::string node_;
  ledger* ledger_;
};

class other : public troupe::actor {  // published under a name, of the wrong type
 public:
  using remote_messages = net::message_list<hit>;
  void handle(hit) {}
};

// Routed asks issued from a handler on the node's runtime.
struct route_where {
  std::string key;
  std::uint64_t id = 0;
  std::string name = "counter";
};
struct route_counted {
  std::string key;
  int x = 0;
};
// Tells from a handler on the node's shard: routed by key, or to a ref
// (both are encoded straight from the value, with no envelope).
struct route_hits {
  std::vector<std::string> keys;
  std::uint64_t first_id = 0;
};
struct tell_hits {
  troupe::actor_ref<recorder> to;
  std::uint64_t first_id = 0;
  std::uint64_t n = 0;
};
class driver : public troupe::actor {
 public:
  static constexpr bool reentrant = true;  // many asks in flight
  explicit driver(net::node* n) : node_(n) {}
  task<result<std::string>> handle(route_where q) {
    where w{q.id};
    auto call = node_->route_ask<recorder>(q.key, q.name, std::move(w), 5s);
    result<std::string> r = co_await call;
    co_return r;
  }
  bool handle(route_hits q) {
    bool ok = true;
    for (std::size_t i = 0; i < q.keys.size(); ++i) {
      hit h{q.first_id + i};
      if (i % 2 == 0) {
        ok = ok && !node_->route_tell<recorder>(q.keys[i], "counter", h);  // an lvalue: copied
        ok = ok && h.id == q.first_id + i;
      } else {
        ok = ok && !node_->route_tell<recorder>(q.keys[i], "counter", std::move(h));
      }
    }
    return ok;
  }
  bool handle(tell_hits q) {
    bool ok = true;
    for (std::uint64_t i = 0; i < q.n; ++i) ok = ok && !q.to.tell(hit{q.first_id + i});
    return ok;
  }
  task<result<int>> handle(route_counted q) {
    counted c{q.x};
    auto call = node_->route_ask<recorder>(q.key, "counter", std::move(c), 5s);
    result<int> r = co_await call;
    co_return r;
  }

 private:
  net::node* node_;
};

net::node_options options(std::string name, std::vector<net::endpoint> seeds = {}) {
  return troupe::test::node_options(std::move(name), std::move(seeds), "router-test");
}

using troupe::test::eventually;
using troupe::test::linked;

net::route_stats routing(net::node& n) {
  auto s = n.state(5s);
  REQUIRE(s);
  return s->routing;
}

// One member of a test cluster: runtime, node, recorder published as "counter".
struct member {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  std::unique_ptr<net::node> node;
  troupe::actor_ref<recorder> rec;
  troupe::actor_ref<driver> drv;
  member(const std::string& name, ledger& l, std::vector<net::endpoint> seeds = {})
      : node(std::make_unique<net::node>(rt, options(name, std::move(seeds)))) {
    rec = rt.spawn<recorder>(name, &l);
    node->publish(rec, "counter");
    drv = rt.spawn<driver>(node.get());
  }
  result<std::string> where_is(const std::string& key, std::uint64_t id,
                               std::string name = "counter") {
    // (result<result<T>> folds an inner error into the outer one)
    result<result<std::string>> r = rt.ask_sync(drv, route_where{key, id, std::move(name)}, 10s);
    if (!r) return troupe::failure<std::string>(r.error());
    return *r;
  }
};

// Three linked members without routers: tables are installed by hand.
struct linked3 {
  ledger l;
  member a{"node-a", l};
  member b{"node-b", l, {{"127.0.0.1", a.node->port()}}};
  member c{"node-c", l, {{"127.0.0.1", a.node->port()}, {"127.0.0.1", b.node->port()}}};
  linked3() {
    REQUIRE(eventually([&] { return both_up(*a.node) && both_up(*b.node) && both_up(*c.node); }));
  }
  static bool both_up(net::node& n) {  // both peers linked
    auto s = n.state(2s);
    if (!s) return false;
    std::size_t up = 0;
    for (auto& m : s->members) up += m.up;
    return up == 2;
  }
};

// Three linked members, each with a router.
struct cluster3 {
  ledger l;
  member a{"node-a", l};
  member b{"node-b", l, {{"127.0.0.1", a.node->port()}}};
  member c{"node-c", l, {{"127.0.0.1", a.node->port()}, {"127.0.0.1", b.node->port()}}};
  std::unique_ptr<actors::router> ra, rb, rc;
  cluster3() {
    ra = std::make_unique<actors::router>(*a.node);
    rb = std::make_unique<actors::router>(*b.node);
    rc = std::make_unique<actors::router>(*c.node);
    REQUIRE(eventually([&] {
      return ra->members().size() == 3 && rb->members().size() == 3 && rc->members().size() == 3;
    }));
  }
  ~cluster3() {
    rc.reset();
    rb.reset();
    ra.reset();
  }
};

// A placement fixed by hand: every key belongs to one member.
// A digest of 0 says "unknown"; a test may claim one.
class fixed_table final : public net::route_table {
 public:
  explicit fixed_table(std::string owner, std::uint64_t digest = 0)
      : owner_(std::move(owner)), digest_(digest) {}
  result<std::string_view> owner(std::string_view) const override {
    return std::string_view(owner_);
  }
  std::vector<std::string_view> owners(std::string_view, std::size_t) const override {
    return {owner_};
  }
  std::size_t size() const override { return 1; }
  std::uint64_t digest() const noexcept override { return digest_; }

 private:
  std::string owner_;
  std::uint64_t digest_;
};

}  // namespace

TEST_CASE("every node's router places keys alike, and routed asks and tells land on the owner",
          "[router][net][io]") {
  cluster3 k;
  std::map<std::string, int> per_node;
  for (std::uint64_t i = 0; i < 300; ++i) {
    const std::string key = "order/" + std::to_string(i);
    auto owner = k.ra->owner(key);
    REQUIRE(owner);
    REQUIRE(k.rb->owner(key).value() == *owner);
    REQUIRE(k.rc->owner(key).value() == *owner);
    // Asked from node-b: the reply names the node whose recorder took it.
    result<std::string> r = k.b.where_is(key, i);
    REQUIRE(r);
    CHECK(*r == *owner);
    ++per_node[*owner];
  }
  // Every member owns a share of 300 keys.
  CHECK(per_node.size() == 3);
  // Tells from node-c land on the owner too, once each.
  for (std::uint64_t i = 1000; i < 1300; ++i)
    REQUIRE_FALSE(k.rc->tell<recorder>("order/" + std::to_string(i), "counter", hit{i}));
  REQUIRE(k.l.wait_for(600));
  std::lock_guard lock(k.l.m);
  for (std::uint64_t i = 1000; i < 1300; ++i) {
    auto& s = k.l.seen[i];
    REQUIRE(s.size() == 1);
    CHECK(s[0] == k.ra->owner("order/" + std::to_string(i)).value());
  }
}

TEST_CASE("tells made on the node's shard reach their owner once each, in order to a ref",
          "[router][net][io]") {
  cluster3 k;
  // Routed, from node-b's own shard: owners on all three nodes, node-b included.
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back("shard/" + std::to_string(i));
  auto sent = k.b.rt.ask_sync(k.b.drv, route_hits{keys, 5000}, 10s);
  REQUIRE(sent);
  CHECK(*sent);
  REQUIRE(k.l.wait_for(300));
  {
    std::lock_guard lock(k.l.m);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto& s = k.l.seen[5000 + i];
      REQUIRE(s.size() == 1);
      CHECK(s[0] == k.rb->owner(keys[i]).value());
    }
  }
  // Direct, from node-b's shard to node-c's recorder: all arrive, in order.
  auto ref = k.b.node->remote_sync<recorder>("node-c", "counter", 5s);
  REQUIRE(ref);
  auto told = k.b.rt.ask_sync(k.b.drv, tell_hits{*ref, 9000, 500}, 10s);
  REQUIRE(told);
  CHECK(*told);
  REQUIRE(k.l.wait_for(800));
  std::lock_guard lock(k.l.m);
  for (std::uint64_t i = 9000; i < 9500; ++i) {
    auto& s = k.l.seen[i];
    REQUIRE(s.size() == 1);
    CHECK(s[0] == "node-c");
  }
  std::vector<std::uint64_t> direct;
  for (std::uint64_t id : k.l.order)
    if (id >= 9000) direct.push_back(id);
  CHECK(std::is_sorted(direct.begin(), direct.end()));
}

TEST_CASE("a routed message placed on its own node is delivered without serialization",
          "[router][net][io]") {
  ledger l;
  member a{"node-a", l};
  actors::router r{*a.node};
  REQUIRE(eventually([&] { return r.members().size() == 1; }));
  counted_encodes = 0;
  for (int i = 0; i < 50; ++i) {
    auto got = a.rt.ask_sync(a.drv, route_counted{"k" + std::to_string(i), i}, 10s);
    REQUIRE(got);
    REQUIRE(*got);
    CHECK(**got == i);
  }
  CHECK(counted_encodes.load() == 0);
  CHECK(routing(*a.node).sent == 50);
}

TEST_CASE("a node with a newer table forwards once; an older one delivers", "[router][net][io]") {
  linked3 k;
  ledger& l = k.l;
  member& a = k.a;
  member& b = k.b;
  member& c = k.c;
  // node-a: epoch 1, keys on node-b. node-b: epoch 2, keys on node-c.
  // node-c: epoch 1, keys on node-b (so a second hop would bounce back).
  a.node->set_route_table(std::make_shared<fixed_table>("node-b"));
  b.node->set_route_table(std::make_shared<fixed_table>("node-c"));
  b.node->set_route_table(std::make_shared<fixed_table>("node-c"));
  c.node->set_route_table(std::make_shared<fixed_table>("node-b"));
  REQUIRE(eventually([&] { return routing(*b.node).epoch == 2; }));

  // a -> b (newer, names c) -> c, which delivers: a second hop never happens.
  result<std::string> r = a.where_is("x", 1);
  REQUIRE(r);
  CHECK(*r == "node-c");
  CHECK(routing(*b.node).forwarded == 1);
  CHECK(routing(*c.node).forwarded == 0);
  REQUIRE_FALSE(a.node->route_tell<recorder>("x", "counter", hit{2}));
  REQUIRE(l.wait_for(2));
  {
    std::lock_guard lock(l.m);
    CHECK(l.seen[1] == std::vector<std::string>{"node-c"});
    CHECK(l.seen[2] == std::vector<std::string>{"node-c"});
  }
  CHECK(routing(*b.node).forwarded == 2);

  // node-a's table becomes newer than node-b's (Lamport: past every epoch it
  // saw): node-b, the older, trusts the sender and delivers.
  a.node->set_route_table(std::make_shared<fixed_table>("node-b"));
  a.node->set_route_table(std::make_shared<fixed_table>("node-b"));
  REQUIRE(eventually([&] { return routing(*a.node).epoch == 3; }));
  r = a.where_is("y", 3);
  REQUIRE(r);
  CHECK(*r == "node-b");
  CHECK(routing(*b.node).forwarded == 2);
  // node-b saw epoch 3 in that frame: its next table outranks it.
  b.node->set_route_table(std::make_shared<fixed_table>("node-c"));
  REQUIRE(eventually([&] { return routing(*b.node).epoch == 4; }));
  r = a.where_is("z", 4);
  REQUIRE(r);
  CHECK(*r == "node-c");
}

TEST_CASE("a newer table that places keys as the sender's did is not consulted",
          "[router][net][io]") {
  linked3 k;
  member& a = k.a;
  member& b = k.b;
  // node-b's table is newer and names node-c, but claims node-a's digest:
  // node-b takes the digest's word that the placement is the same and
  // delivers. (A real table's digest covers its placement; this one lies so
  // that the skip shows.)
  a.node->set_route_table(std::make_shared<fixed_table>("node-b", 42));
  b.node->set_route_table(std::make_shared<fixed_table>("node-c", 42));
  b.node->set_route_table(std::make_shared<fixed_table>("node-c", 42));
  REQUIRE(eventually([&] { return routing(*b.node).epoch == 2; }));
  result<std::string> r = a.where_is("x", 1);
  REQUIRE(r);
  CHECK(*r == "node-b");
  CHECK(routing(*b.node).forwarded == 0);
  // Another digest on node-b: the table is consulted and the message forwarded.
  b.node->set_route_table(std::make_shared<fixed_table>("node-c", 43));
  REQUIRE(eventually([&] { return routing(*b.node).epoch == 3; }));
  r = a.where_is("y", 2);
  REQUIRE(r);
  CHECK(*r == "node-c");
  CHECK(routing(*b.node).forwarded == 1);
}

TEST_CASE("routing refuses bad keys, names and types with a clear error", "[router][net][io]") {
  ledger l;
  member a{"node-a", l};
  member b{"node-b", l, {{"127.0.0.1", a.node->port()}}};
  auto wrong = b.rt.spawn<other>();
  b.node->publish(wrong, "other");

  // No table yet on node-a: no_route.
  result<std::string> r = a.where_is("k", 1);
  REQUIRE_FALSE(r);
  CHECK(r.error() == troupe::errc::no_route);

  actors::router ra{*a.node};
  actors::router rb{*b.node};
  REQUIRE(eventually([&] { return ra.members().size() == 2 && rb.members().size() == 2; }));

  CHECK(ra.tell<recorder>("", "counter", hit{1}) == net::route_errc::empty_key);
  CHECK(ra.tell<recorder>("k", "", hit{1}) == net::route_errc::bad_name);
  CHECK(ra.tell<recorder>("k", std::string(256, 'n'), hit{1}) == net::route_errc::bad_name);
  CHECK(ra.tell<recorder>(std::string(70000, 'k'), "counter", hit{1}) ==
        net::route_errc::key_too_long);
  r = a.where_is("", 1);
  REQUIRE_FALSE(r);
  CHECK(r.error() == net::route_errc::empty_key);
  CHECK(ra.owner("").error() == actors::ring_errc::empty_key);

  // A name nobody published: name_not_found, counted where it landed; a
  // name published with another actor type: wrong_type.
  std::string on_a, on_b;
  for (int i = 0; (on_a.empty() || on_b.empty()) && i < 1000; ++i) {
    std::string key = "key" + std::to_string(i);
    (ra.owner(key).value() == "node-a" ? on_a : on_b) = key;
  }
  REQUIRE_FALSE(on_a.empty());
  REQUIRE_FALSE(on_b.empty());
  for (const std::string& key : {on_a, on_b}) {
    r = a.where_is(key, 2, "nobody");
    REQUIRE_FALSE(r);
    CHECK(r.error() == troupe::errc::name_not_found);
  }
  CHECK(routing(*a.node).undeliverable == 1);
  CHECK(routing(*b.node).undeliverable == 1);
  CHECK(a.log.contains("found no actor published under that name"));
  r = a.where_is(on_b, 3, "other");  // node-b publishes "other" as another type
  REQUIRE_FALSE(r);
  CHECK(r.error() == troupe::errc::wrong_type);

  // Options: zero points, bad weights.
  actors::router_options bad;
  bad.ring.points = 0;
  CHECK_THROWS_AS(actors::router(*b.node, bad), std::invalid_argument);
  actors::router_options heavy;
  heavy.weights["node-z"] = -1;
  CHECK_THROWS_AS(actors::router(*b.node, heavy), std::invalid_argument);
}

TEST_CASE("a link binds the first 1024 target names to ids; later names travel inline",
          "[router][net][io]") {
  ledger l;
  member a{"node-a", l};
  member b{"node-b", l, {{"127.0.0.1", a.node->port()}}};
  a.node->set_route_table(std::make_shared<fixed_table>("node-b"));
  REQUIRE(eventually([&] { return routing(*a.node).epoch == 1 && linked(*a.node, "node-b"); }));
  // 1100 names nobody published on node-b, each asked twice (the second time
  // by id where it has one); then the published one, which must still work.
  const int names = 1100;
  for (int round = 0; round < 2; ++round)
    for (int i = 0; i < names; ++i) {
      result<std::string> r = a.where_is("k", 1, "name-" + std::to_string(i));
      REQUIRE_FALSE(r);
      REQUIRE(r.error() == troupe::errc::name_not_found);
    }
  CHECK(routing(*b.node).undeliverable == 2 * names);
  // Logged once per name, for the first 256 names; then one line says the
  // rest go unlogged (the names come from peers: the log must stay bounded).
  CHECK(b.log.count("found no actor published under that name") == 256);
  CHECK(b.log.contains("further names are not logged"));
  result<std::string> r = a.where_is("k", 2);
  REQUIRE(r);
  CHECK(*r == "node-b");
  CHECK(linked(*a.node, "node-b"));
}

namespace {
// Outcomes of a stream of routed asks, by id.
struct board {
  std::mutex m;
  std::condition_variable cv;
  std::map<std::uint64_t, result<std::string>> outcomes;
  std::size_t inflight = 0;
  void done(std::uint64_t id, result<std::string> r) {
    std::lock_guard lock(m);
    outcomes.emplace(id, std::move(r));
    --inflight;
    cv.notify_all();
  }
  bool wait_below(std::size_t n) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, 30s, [&] { return inflight < n; });
  }
};
struct route_one {
  std::string key;
  std::uint64_t id = 0;
};
class streamer : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  streamer(net::node* n, board* b) : node_(n), board_(b) {}
  task<void> handle(route_one q) {
    where w{q.id};
    auto call = node_->route_ask<recorder>(q.key, "counter", std::move(w), 5s);
    result<std::string> r = co_await call;
    board_->done(q.id, std::move(r));
  }

 private:
  net::node* node_;
  board* board_;
};
}  // namespace

TEST_CASE("a routed stream through a node leaving and rejoining: every message accounted for",
          "[router][net][io]") {
  cluster3 k;
  board bd;
  auto s = k.a.rt.spawn<streamer>(k.a.node.get(), &bd);
  constexpr std::uint64_t n = 6000;
  constexpr std::size_t window = 64;
  std::uint64_t rejoined_at = 0;
  for (std::uint64_t id = 0; id < n; ++id) {
    REQUIRE(bd.wait_below(window));
    {
      std::lock_guard lock(bd.m);
      ++bd.inflight;
    }
    REQUIRE_FALSE(s.tell(route_one{"order/" + std::to_string(id), id}));
    if (id == n / 3) {  // node-c leaves with asks in flight
      k.rc.reset();
      k.c.node.reset();
    }
    if (id == 2 * n / 3) {  // and comes back
      k.c.node = std::make_unique<net::node>(
          k.c.rt,
          options("node-c", {{"127.0.0.1", k.a.node->port()}, {"127.0.0.1", k.b.node->port()}}));
      k.c.node->publish(k.c.rec, "counter");
      k.rc = std::make_unique<actors::router>(*k.c.node);
      REQUIRE(eventually([&] {
        return k.ra->members().size() == 3 && k.rb->members().size() == 3 &&
               k.rc->members().size() == 3;
      }));
      rejoined_at = id;
    }
  }
  REQUIRE(bd.wait_below(1));

  std::lock_guard lock_b(bd.m);
  std::lock_guard lock_l(k.l.m);
  REQUIRE(bd.outcomes.size() == n);  // every ask completed: a reply or an error
  std::size_t ok = 0, failed = 0, at_c_after_rejoin = 0;
  for (auto& [id, r] : bd.outcomes) {
    auto& where_seen = k.l.seen[id];
    REQUIRE(where_seen.size() <= 1);  // never delivered twice
    if (r) {
      ++ok;
      REQUIRE(where_seen.size() == 1);  // a reply means it was delivered, there
      CHECK(where_seen[0] == *r);
      if (id > rejoined_at && *r == "node-c") ++at_c_after_rejoin;
    } else {
      ++failed;
      CHECK(r.error() == troupe::errc::node_down);  // only asks pending on the leaving node
    }
  }
  CAPTURE(ok, failed, at_c_after_rejoin, routing(*k.a.node).forwarded,
          routing(*k.b.node).forwarded);
  CHECK(ok + failed == n);
  CHECK(failed <= window);       // at most the asks in flight when node-c left
  CHECK(at_c_after_rejoin > 0);  // the rejoined node owns keys again
}
