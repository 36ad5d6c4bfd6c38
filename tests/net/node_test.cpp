#include "support.hpp"

#include <troupe/net/node.hpp>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using troupe::task;
namespace net = troupe::net;

// Messages that cross the wire.
struct deposit {
  std::string account;
  std::int64_t cents = 0;
  template <class A>
  void serialize(A& a) {
    a(account, cents);
  }
};
struct balance {
  std::string account;
  template <class A>
  void serialize(A& a) {
    a(account);
  }
};
struct note {
  int sender = 0;
  int seq = 0;
  template <class A>
  void serialize(A& a) {
    a(sender, seq);
  }
};
struct notes {
  std::vector<int> seqs;
  template <class A>
  void serialize(A& a) {
    a(seqs);
  }
};
struct get_notes {
  template <class A>
  void serialize(A&) {}
};
struct local_only {  // no codec: must never reach the wire
  int x = 0;
};
TROUPE_REMOTE_MESSAGE(deposit, 101);
TROUPE_REMOTE_MESSAGE(balance, 102);
TROUPE_REMOTE_MESSAGE(note, 103);
TROUPE_REMOTE_MESSAGE(notes, 104);
TROUPE_REMOTE_MESSAGE(get_notes, 105);

namespace {

class bank : public troupe::actor {
 public:
  using remote_messages = net::message_list<deposit, balance, note, get_notes>;
  task<void> handle(deposit d) {
    cents_[d.account] += d.cents;
    co_return;
  }
  std::int64_t handle(balance b) { return cents_[b.account]; }
  void handle(note n) { seqs_.push_back(n.seq); }
  notes handle(get_notes) { return notes{seqs_}; }
  void handle(local_only) {}

 private:
  std::unordered_map<std::string, std::int64_t> cents_;
  std::vector<int> seqs_;
};

// Watches proxies and membership; the test waits on what it saw.
struct watch {
  troupe::actor_addr who;
};
class observer : public troupe::actor {
 public:
  struct shared {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::string> events;
    bool saw(const std::string& e) {
      std::unique_lock lock(m);
      return cv.wait_for(lock, 10s, [&] { return std::find(events.begin(), events.end(), e) != events.end(); });
    }
    void add(std::string e) {
      std::lock_guard lock(m);
      events.push_back(std::move(e));
      cv.notify_all();
    }
  };
  explicit observer(shared* s) : s_(s) {}
  void handle(watch w) { monitor(w.who); }
  void handle(troupe::down_msg d) { s_->add(std::string("down:") + troupe::to_string(d.reason)); }
  void handle(net::member_event e) { s_->add((e.up ? "up:" : "gone:") + e.node); }

 private:
  shared* s_;
};

// Blocked in a long handler, so an ask to it stays pending.
struct slow : troupe::actor {
  using remote_messages = net::message_list<balance>;
  task<std::int64_t> handle(balance) {
    co_await troupe::sleep_for(1h);
    co_return 0;
  }
};

net::node_options options(std::string name, std::vector<net::endpoint> seeds = {}, std::string secret = "s3cret") {
  net::node_options o;
  o.name = std::move(name);
  o.cluster = "test";
  o.secret = std::move(secret);
  o.seeds = std::move(seeds);
  o.heartbeat = 20ms;
  o.down_after = 400ms;
  o.redial_min = 20ms;
  o.redial_max = 200ms;
  return o;
}

// Polls a condition the nodes reach by themselves (a link coming up), with a bound.
template <class F>
bool eventually(F f, std::chrono::seconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::yield();
  }
  return f();
}

bool linked(net::node& n, const std::string& peer) {
  auto s = n.state(2s);
  if (!s) return false;
  for (auto& m : s->members)
    if (m.name == peer && m.up) return true;
  return false;
}

}  // namespace

TEST_CASE("a remote ref tells and asks exactly like a local one", "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 2)};
  troupe::runtime rb{troupe::test::threaded(log_b, 2)};
  net::node b{rb, options("node-b")};
  troupe::spawn_options on1;
  on1.shard = 1;
  auto the_bank = rb.spawn<bank>(on1);
  b.publish(the_bank, "bank");
  net::node a{ra, options("node-a", {{"127.0.0.1", b.port()}})};
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));

  auto remote = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(remote);
  CHECK_FALSE(remote->tell(deposit{"alice", 500}));
  CHECK_FALSE(remote->tell(deposit{"alice", 250}));
  auto c = ra.ask_sync(*remote, balance{"alice"}, 5s);
  REQUIRE(c);
  CHECK(*c == 750);

  SECTION("order holds across the link") {
    for (int i = 0; i < 20000; ++i) (void)remote->tell(note{0, i});
    auto got = ra.ask_sync(*remote, get_notes{}, 10s);
    REQUIRE(got);
    REQUIRE(got->seqs.size() == 20000);
    for (int i = 0; i < 20000; ++i) REQUIRE(got->seqs[i] == i);
  }
  SECTION("an unregistered message type is refused at the sender") {
    CHECK(remote->tell(local_only{}) == troupe::errc::not_serializable);
  }
  SECTION("lookups name their failures") {
    CHECK(a.remote_sync<bank>("node-b", "nobody", 5s).error() == troupe::errc::name_not_found);
    CHECK(a.remote_sync<observer>("node-b", "bank", 5s).error() == troupe::errc::wrong_type);
    CHECK(a.remote_sync<bank>("node-z", "bank", 5s).error() == troupe::errc::node_down);
  }
}

TEST_CASE("a node going down fails pending asks, fires monitors and redials when it is back",
          "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  auto rb = std::make_unique<troupe::runtime>(troupe::test::threaded(log_b, 1));
  auto b = std::make_unique<net::node>(*rb, options("node-b"));
  const unsigned short port = b->port();
  auto the_bank = rb->spawn<bank>();
  b->publish(the_bank, "bank");

  observer::shared seen;
  auto obs = ra.spawn<observer>(&seen);
  net::node a{ra, options("node-a", {{"127.0.0.1", port}})};
  a.subscribe(obs);
  REQUIRE(seen.saw("up:node-b"));
  auto remote = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(remote);
  (void)obs.tell(watch{remote->addr()});

  // node-b dies: its runtime stops, its sockets close.
  b.reset();
  rb.reset();
  REQUIRE(seen.saw("gone:node-b"));
  REQUIRE(seen.saw("down:node_down"));
  CHECK(ra.ask_sync(*remote, balance{"x"}, 5s).error() == troupe::errc::actor_dead);

  // node-b comes back on the same port: node-a redials it.
  troupe::runtime rb2{troupe::test::threaded(log_b, 1)};
  net::node_options again = options("node-b");
  again.listen.port = port;
  net::node b2{rb2, again};
  auto bank2 = rb2.spawn<bank>();
  b2.publish(bank2, "bank");
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));
  auto fresh = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(fresh);
  (void)fresh->tell(deposit{"bob", 9});
  CHECK(ra.ask_sync(*fresh, balance{"bob"}, 5s).value() == 9);
}

TEST_CASE("an ask pending when the link drops fails with node_down, not at its deadline", "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  auto rb = std::make_unique<troupe::runtime>(troupe::test::threaded(log_b, 1));
  net::node_options ob = options("node-b");
  auto b = std::make_unique<net::node>(*rb, ob);
  auto s = rb->spawn<slow>();
  b->publish(s, "slow");
  net::node a{ra, options("node-a", {{"127.0.0.1", b->port()}})};
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));
  auto remote = a.remote_sync<slow>("node-b", "slow", 5s);
  REQUIRE(remote);
  auto pending = std::async(std::launch::async, [&] { return ra.ask_sync(*remote, balance{"x"}, 60s); });
  // Let the ask leave, then kill node-b.
  REQUIRE(eventually([&] {
    auto st = a.state(2s);
    return st && !st->members.empty() && st->members[0].stats.frames_out >= 2;
  }));
  const auto t0 = std::chrono::steady_clock::now();
  b.reset();
  rb.reset();
  auto r = pending.get();
  REQUIRE_FALSE(r);
  CHECK((r.error() == troupe::errc::node_down || r.error() == troupe::errc::actor_died));
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("nodes with different secrets never link", "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  troupe::runtime rb{troupe::test::threaded(log_b, 1)};
  net::node b{rb, options("node-b", {}, "right")};
  net::node a{ra, options("node-a", {{"127.0.0.1", b.port()}}, "wrong")};
  REQUIRE(eventually([&] { return log_b.contains("cluster secret mismatch"); }));
  CHECK(eventually([&] { return log_a.contains("cluster secret mismatch"); }));
  CHECK_FALSE(linked(a, "node-b"));
}

TEST_CASE("a node that cannot listen says which endpoint and why", "[net][node]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node first{rt, options("one")};
  net::node_options o = options("two");
  o.listen.port = first.port();
  try {
    net::node second{rt, o};
    FAIL("binding a port in use succeeded");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(first.port())) != std::string::npos);
  }
}
