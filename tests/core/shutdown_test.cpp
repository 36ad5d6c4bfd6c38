// SPDX-License-Identifier: BSL-1.0
#include <future>

#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct nap {};
struct ping {};
class sleeper : public troupe::actor {
 public:
  task<int> handle(nap) {
    co_await troupe::sleep_for(std::chrono::hours(10));
    co_return 1;
  }
  int handle(ping) { return 2; }
};
// Its handler is suspended on an ask that will never be answered in time.
struct chain {
  troupe::actor_ref<sleeper> s;
};
class waiter : public troupe::actor {
 public:
  task<int> handle(chain c) {
    troupe::result<int> r = co_await c.s.ask(nap{}, std::chrono::hours(5));
    co_return r ? *r : -1;
  }
};
}  // namespace

TEST_CASE("stop() with handlers suspended mid-way returns promptly and fails the asks",
          "[core][shutdown]") {
  troupe::test::log_sink sink;
  auto rt = std::make_unique<troupe::runtime>(troupe::test::threaded(sink, 2));
  std::vector<troupe::actor_ref<sleeper>> sleepers;
  std::vector<troupe::actor_ref<waiter>> waiters;
  for (int i = 0; i < 50; ++i) {
    troupe::spawn_options o;
    o.shard = i % 2;
    sleepers.push_back(rt->spawn<sleeper>(o));
    o.shard = (i + 1) % 2;
    waiters.push_back(rt->spawn<waiter>(o));
    (void)sleepers.back().tell(nap{});
  }
  auto outside = std::async(std::launch::async,
                            [&] { return rt->ask_sync(waiters[0], chain{sleepers[1]}, 1h); });
  for (int i = 1; i < 50; ++i) (void)waiters[i].tell(chain{sleepers[i]});
  // sleepers[0] is mid-handler: a ping queues behind its nap.
  REQUIRE(rt->ask_sync(sleepers[0], ping{}, 50ms).error() == troupe::errc::ask_timeout);
  const auto t0 = std::chrono::steady_clock::now();
  rt->stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  auto r = outside.get();
  REQUIRE_FALSE(r);
  CHECK((r.error() == troupe::errc::actor_died || r.error() == troupe::errc::runtime_stopped ||
         r.error() == troupe::errc::actor_dead));
  for (auto& s : sleepers) CHECK(s.addr().reason() == troupe::exit_reason::runtime_shutdown);
  CHECK(rt->stats().live_actors == 0);
  // Refs outlive the runtime's actors safely; sends after stop fail.
  CHECK(sleepers[0].tell(ping{}) == troupe::errc::actor_dead);
  CHECK(rt->ask_sync(sleepers[0], ping{}, 1s).error() == troupe::errc::runtime_stopped);
  rt.reset();
  // Refs outlive the runtime itself: sending or stopping through them is safe.
  CHECK(sleepers[0].tell(ping{}) == troupe::errc::actor_dead);
  sleepers[1].stop();
  CHECK_FALSE(waiters[0].alive());
  CHECK(waiters[0].addr().reason() == troupe::exit_reason::runtime_shutdown);
}

TEST_CASE("spawning after stop() is refused", "[core][shutdown]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 1)};
  rt.stop();
  CHECK_THROWS_AS(rt.spawn<sleeper>(), std::system_error);
}

TEST_CASE("a runtime destroyed with busy actors stops them all", "[core][shutdown]") {
  // ASan/LSan in the debug build also turns any leaked frame, envelope or cell into a failure.
  troupe::test::log_sink sink;
  for (int round = 0; round < 5; ++round) {
    troupe::actor_ref<sleeper> s;
    troupe::actor_ref<waiter> w;
    {
      troupe::runtime rt{troupe::test::threaded(sink, 2)};
      s = rt.spawn<sleeper>();
      troupe::spawn_options o;
      o.shard = 1;
      w = rt.spawn<waiter>(o);
      (void)s.tell(nap{});
      (void)w.tell(chain{s});
      for (int i = 0; i < 1000; ++i) (void)s.tell(ping{});
    }
    CHECK(s.addr().reason() == troupe::exit_reason::runtime_shutdown);
    CHECK(w.addr().reason() == troupe::exit_reason::runtime_shutdown);
  }
}
