// SPDX-License-Identifier: BSL-1.0
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {

struct deposit {
  std::string account;
  std::int64_t cents;
};
struct balance {
  std::string account;
};
struct which_thread {};

class bank : public troupe::actor {
 public:
  task<void> handle(deposit d) {
    cents_[d.account] += d.cents;
    co_return;
  }
  task<std::int64_t> handle(balance b) { co_return cents_[b.account]; }
  std::thread::id handle(which_thread) { return std::this_thread::get_id(); }

 private:
  std::unordered_map<std::string, std::int64_t> cents_;
};

struct record {
  int sender;
  int seq;
};
struct get_log {};
class recorder : public troupe::actor {
 public:
  void handle(record r) { log_.push_back(r); }
  std::vector<record> handle(get_log) { return log_; }

 private:
  std::vector<record> log_;
};

// Forwards each number to a recorder, from inside its own handler.
struct forward_n {
  troupe::actor_ref<recorder> to;
  int sender;
  int count;
};
class sender : public troupe::actor {
 public:
  void handle(forward_n f) {
    for (int i = 0; i < f.count; ++i) (void)f.to.tell(record{f.sender, i});
  }
};

// A middleman asks the bank from inside its handler and adds one.
struct relay {
  troupe::actor_ref<bank> b;
  std::string account;
};
class middleman : public troupe::actor {
 public:
  task<std::int64_t> handle(relay r) {
    balance q{r.account};  // a local, not a temporary inside co_await (g++ 12)
    troupe::result<std::int64_t> v = co_await r.b.ask(std::move(q), 1s);
    co_return v ? *v + 1 : -1;
  }
};

// Non-reentrant by default: a handler that sleeps holds the next message back.
struct slow {
  int id;
};
struct trace {};
class serial : public troupe::actor {
 public:
  task<void> handle(slow s) {
    events_.push_back("begin " + std::to_string(s.id));
    co_await troupe::sleep_for(10ms);
    events_.push_back("end " + std::to_string(s.id));
  }
  std::vector<std::string> handle(trace) { return events_; }

 protected:
  std::vector<std::string> events_;
};
class interleaving : public serial {
 public:
  static constexpr bool reentrant = true;
  using serial::handle;
};

}  // namespace

TEST_CASE("tell then ask: the bank example works", "[core][actor]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink)};
  auto b = rt.spawn<bank>();
  CHECK_FALSE(b.tell(deposit{"alice", 500}));
  CHECK_FALSE(b.tell(deposit{"alice", 250}));
  auto c = rt.ask_sync(b, balance{"alice"}, 2s);
  REQUIRE(c);
  CHECK(*c == 750);
}

TEST_CASE("handlers run on the actor's home shard thread", "[core][actor]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 2)};
  troupe::spawn_options on1;
  on1.shard = 1;
  auto a = rt.spawn<bank>(on1);
  auto t1 = rt.ask_sync(a, which_thread{}, 2s);
  auto t2 = rt.ask_sync(a, which_thread{}, 2s);
  REQUIRE(t1);
  REQUIRE(t2);
  CHECK(*t1 == *t2);
  CHECK(*t1 != std::this_thread::get_id());
  auto b = rt.spawn<bank>();  // shard 0 from outside the runtime
  auto t3 = rt.ask_sync(b, which_thread{}, 2s);
  REQUIRE(t3);
  CHECK(*t3 != *t1);
}

TEST_CASE("spawning on a shard that does not exist is an error", "[core][actor]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink, 2)};
  troupe::spawn_options o;
  o.shard = 5;
  CHECK_THROWS_AS(rt.spawn<bank>(o), std::invalid_argument);
}

TEST_CASE("a handler can ask another actor and use the reply", "[core][actor][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto b = rt.spawn<bank>();
  auto m = rt.spawn<middleman>();
  (void)b.tell(deposit{"bob", 41});
  auto r = rt.ask_sync(m, relay{b, "bob"}, 1s);
  REQUIRE(r);
  CHECK(*r == 42);
}

TEST_CASE("one sender's messages arrive in send order, same shard", "[core][actor][order]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto rec = rt.spawn<recorder>();
  std::vector<troupe::actor_ref<sender>> senders;
  for (int s = 0; s < 4; ++s) senders.push_back(rt.spawn<sender>());
  for (int s = 0; s < 4; ++s) (void)senders[s].tell(forward_n{rec, s, 500});
  rt.run_until_idle();
  auto log = rt.ask_sync(rec, get_log{}, 1s);
  REQUIRE(log);
  REQUIRE(log->size() == 2000);
  std::vector<int> next(4, 0);
  for (auto& r : *log) {
    CHECK(r.seq == next[r.sender]);
    next[r.sender] = r.seq + 1;
  }
}

TEST_CASE("one sender's messages arrive in send order across shards", "[core][actor][order]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 2)};
  troupe::spawn_options o1;
  o1.shard = 1;
  auto rec = rt.spawn<recorder>(o1);
  auto s0 = rt.spawn<sender>();
  auto s1 = rt.spawn<sender>(o1);
  (void)s0.tell(forward_n{rec, 0, 20000});
  (void)s1.tell(forward_n{rec, 1, 20000});
  for (int i = 0; i < 20000; ++i) (void)rec.tell(record{2, i});  // from this thread
  // Each sender's messages arrive in order; wait until all have arrived.
  std::vector<record> log;
  for (int tries = 0; tries < 2000 && log.size() < 60000; ++tries) {
    auto l = rt.ask_sync(rec, get_log{}, 2s);
    REQUIRE(l);
    log = std::move(*l);
    if (log.size() < 60000) std::this_thread::yield();
  }
  REQUIRE(log.size() == 60000);
  std::vector<int> next(3, 0);
  for (auto& r : log) {
    REQUIRE(r.seq == next[r.sender]);
    next[r.sender] = r.seq + 1;
  }
}

TEST_CASE("an actor handles one message at a time by default", "[core][actor][reentrancy]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto a = rt.spawn<serial>();
  (void)a.tell(slow{1});
  (void)a.tell(slow{2});
  rt.advance(50ms);
  auto t = rt.ask_sync(a, trace{}, 1s);
  REQUIRE(t);
  CHECK(*t == std::vector<std::string>{"begin 1", "end 1", "begin 2", "end 2"});
}

TEST_CASE("a reentrant actor interleaves handlers at suspension points",
          "[core][actor][reentrancy]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto a = rt.spawn<interleaving>();
  (void)a.tell(slow{1});
  (void)a.tell(slow{2});
  rt.advance(50ms);
  auto t = rt.ask_sync(a, trace{}, 1s);
  REQUIRE(t);
  REQUIRE(t->size() == 4);
  CHECK((*t)[0] == "begin 1");
  CHECK((*t)[1] == "begin 2");
}

TEST_CASE("an actor stops itself and later sends fail with actor_dead", "[core][actor]") {
  struct quit {};
  struct quitter : troupe::actor {
    void handle(quit) { stop(); }
  };
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto q = rt.spawn<quitter>();
  (void)q.tell(quit{});
  rt.run_until_idle();
  CHECK_FALSE(q.alive());
  CHECK(q.tell(quit{}) == troupe::errc::actor_dead);
}
