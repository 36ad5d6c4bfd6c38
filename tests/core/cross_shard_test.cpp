// SPDX-License-Identifier: BSL-1.0
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct ball {
  int left;
};
struct hits {};
class player : public troupe::actor {
 public:
  void handle(troupe::actor_ref<player> p) { partner_ = std::move(p); }
  void handle(ball b) {
    ++hits_;
    if (b.left > 0) (void)partner_.tell(ball{b.left - 1});
  }
  int handle(hits) { return hits_; }

 private:
  troupe::actor_ref<player> partner_;
  int hits_ = 0;
};

struct add {
  int n;
};
struct total {};
class summer : public troupe::actor {
 public:
  void handle(add a) {
    sum_ += a.n;
    ++count_;
  }
  std::pair<long, long> handle(total) { return {sum_, count_}; }

 private:
  long sum_ = 0;
  long count_ = 0;
};

struct relay_ask {
  troupe::actor_ref<summer> s;
};
class remote_asker : public troupe::actor {
 public:
  task<long> handle(relay_ask r) {
    long last = 0;
    for (int i = 0; i < 1000; ++i) {
      (void)r.s.tell(add{1});
      troupe::result<std::pair<long, long>> t = co_await r.s.ask(total{}, 5s);
      if (!t) co_return -1;
      last = t->second;
    }
    co_return last;
  }
};
}  // namespace

TEST_CASE("two actors on two shards play 100000 exchanges without loss", "[core][cross_shard]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 2)};
  troupe::spawn_options o0, o1;
  o0.shard = 0;
  o1.shard = 1;
  auto a = rt.spawn<player>(o0);
  auto b = rt.spawn<player>(o1);
  (void)a.tell(b);
  (void)b.tell(a);
  (void)a.tell(ball{100000});
  // The last hit lands on whichever side; wait on the observable total.
  int total_hits = 0;
  for (int i = 0; i < 1000000 && total_hits < 100001; ++i) {
    total_hits = rt.ask_sync(a, hits{}, 5s).value() + rt.ask_sync(b, hits{}, 5s).value();
    if (total_hits < 100001) std::this_thread::yield();
  }
  CHECK(total_hits == 100001);
}

TEST_CASE("tells from many threads all arrive", "[core][cross_shard]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 2)};
  auto s = rt.spawn<summer>();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25000; ++i) (void)s.tell(add{2});
    });
  for (auto& t : threads) t.join();
  // Everything sent before this ask, from the threads that joined, is counted
  // once the summer has caught up; its count can only grow to 100000.
  long count = 0;
  for (int i = 0; i < 1000000 && count < 100000; ++i) {
    count = rt.ask_sync(s, total{}, 5s).value().second;
    if (count < 100000) std::this_thread::yield();
  }
  auto t = rt.ask_sync(s, total{}, 5s).value();
  CHECK(t.second == 100000);
  CHECK(t.first == 200000);
}

TEST_CASE("a handler asks an actor on another shard a thousand times", "[core][cross_shard][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 2)};
  troupe::spawn_options o1;
  o1.shard = 1;
  auto s = rt.spawn<summer>(o1);
  auto a = rt.spawn<remote_asker>();
  auto r = rt.ask_sync(a, relay_ask{s}, 30s);
  REQUIRE(r);
  CHECK(*r == 1000);  // each ask saw the tell sent just before it (FIFO across shards)
}

TEST_CASE("an idle runtime parks its shards", "[core][cross_shard]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 2)};
  auto s = rt.spawn<summer>();
  (void)rt.ask_sync(s, total{}, 5s);
  const auto before = rt.stats().wakeups;
  // A round trip from outside, after a pause longer than the spin window,
  // finds shard 0 parked and wakes it. On a loaded machine the shard may not
  // have run out its spin within one pause: keep trying for up to 10 s (the
  // pause paces the attempts; the wake-up counter is the proof).
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  bool woke = false;
  while (!woke && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(5ms);
    REQUIRE(rt.ask_sync(s, total{}, 5s));
    woke = rt.stats().wakeups > before;
  }
  CHECK(woke);
}
