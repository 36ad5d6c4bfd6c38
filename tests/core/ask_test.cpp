// SPDX-License-Identifier: BSL-1.0
#include <set>

#include "support.hpp"

using namespace std::chrono_literals;
using troupe::errc;
using troupe::task;

namespace {
struct ping {};
struct never {};
struct die_first {};
struct fail {};
class target : public troupe::actor {
 public:
  int handle(ping) { return 7; }
  // Never replies within any deadline the tests use.
  task<int> handle(never) {
    co_await troupe::sleep_for(1h);
    co_return 0;
  }
  // Stops itself while the request is in flight: the asker must not hang.
  task<int> handle(die_first) {
    stop();
    co_await troupe::sleep_for(1h);
    co_return 1;
  }
  int handle(fail) { throw std::runtime_error("no such account"); }
};

// Asks from inside a handler and reports what the ask completed with.
struct probe {
  troupe::actor_ref<target> t;
  int what;  // 0 ping, 1 never, 2 die_first
  std::chrono::milliseconds timeout;
};
struct last_result {};
class asker : public troupe::actor {
 public:
  task<int> handle(probe p) {
    // One co_await per statement: g++ 12 mishandles co_await inside ?:.
    troupe::result<int> r = make_error_code(errc::actor_dead);
    if (p.what == 0) {
      r = co_await p.t.ask(ping{}, p.timeout);
    } else if (p.what == 1) {
      r = co_await p.t.ask(never{}, p.timeout);
    } else {
      r = co_await p.t.ask(die_first{}, p.timeout);
    }
    last_ = r ? *r : -r.error().value();
    co_return last_;
  }
  int handle(last_result) { return last_; }

 private:
  int last_ = 0;
};
}  // namespace

TEST_CASE("an ask to a stopped actor fails at once with actor_dead", "[core][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto t = rt.spawn<target>();
  t.stop();
  rt.run_until_idle();
  const std::int64_t before = rt.now_ns();
  auto r = rt.ask_sync(t, ping{}, 5s);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::actor_dead);
  CHECK(rt.now_ns() == before);  // no waiting on the clock

  auto a = rt.spawn<asker>();
  auto inner = rt.ask_sync(a, probe{t, 0, 5s}, 10s);
  REQUIRE(inner);
  CHECK(*inner == -static_cast<int>(errc::actor_dead));
  CHECK(rt.now_ns() == before);
}

TEST_CASE("an ask with no reply by its deadline fails with ask_timeout", "[core][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto t = rt.spawn<target>();
  auto a = rt.spawn<asker>();
  const std::int64_t before = rt.now_ns();
  auto r = rt.ask_sync(a, probe{t, 1, 200ms}, 10s);
  REQUIRE(r);
  CHECK(*r == -static_cast<int>(errc::ask_timeout));
  // The deadline is honoured on the shard's clock, to the millisecond tick.
  CHECK(rt.now_ns() - before >= 200'000'000);
  CHECK(rt.now_ns() - before <= 202'000'000);
  CHECK(rt.stats().ask_timeouts == 1);
}

TEST_CASE("a blocking ask from outside times out with ask_timeout", "[core][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 1)};
  auto t = rt.spawn<target>();
  auto r = rt.ask_sync(t, never{}, 50ms);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::ask_timeout);
}

TEST_CASE("an ask whose target stops before replying fails with actor_died", "[core][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto t = rt.spawn<target>();
  auto a = rt.spawn<asker>();
  const std::int64_t before = rt.now_ns();
  auto r = rt.ask_sync(a, probe{t, 2, 10s}, 20s);
  REQUIRE(r);
  CHECK(*r == -static_cast<int>(errc::actor_died));
  CHECK(rt.now_ns() == before);  // promptly, not at the deadline
}

TEST_CASE("asks queued behind a stopping actor fail with actor_died", "[core][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto t = rt.spawn<target>();
  auto a = rt.spawn<asker>();
  (void)t.tell(never{});  // keeps the target busy for an hour
  rt.run_until_idle();
  (void)a.tell(probe{t, 0, 10s});  // the asker's ping now waits in the target's mailbox
  rt.run_until_idle();
  t.stop();
  rt.run_until_idle();
  auto r = rt.ask_sync(a, last_result{}, 1s);
  REQUIRE(r);
  CHECK(*r == -static_cast<int>(errc::actor_died));
}

TEST_CASE("an ask whose handler throws fails with handler_failed", "[core][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto t = rt.spawn<target>();
  auto r = rt.ask_sync(t, fail{}, 1s);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::handler_failed);
  CHECK(sink.contains("no such account"));
}

TEST_CASE("the four ask failures are distinct error codes", "[core][ask]") {
  std::set<int> codes{static_cast<int>(errc::actor_dead), static_cast<int>(errc::ask_timeout),
                      static_cast<int>(errc::actor_died), static_cast<int>(errc::handler_failed)};
  CHECK(codes.size() == 4);
  CHECK(troupe::make_error_code(errc::ask_timeout).message() ==
        "no reply within the ask's deadline");
  CHECK(std::string(troupe::make_error_code(errc::actor_dead).category().name()) == "troupe");
}

namespace {
struct is_open {};
class flag_actor : public troupe::actor {
 public:
  bool handle(is_open) { return true; }
};
}  // namespace

TEST_CASE("an ask whose reply type is bool carries both values and errors", "[core][ask]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto f = rt.spawn<flag_actor>();
  auto r = rt.ask_sync(f, is_open{}, 1s);
  REQUIRE(r);
  CHECK(*r == true);
  f.stop();
  rt.run_until_idle();
  auto dead = rt.ask_sync(f, is_open{}, 1s);
  REQUIRE_FALSE(dead);
  CHECK(dead.error() == errc::actor_dead);
}

namespace {
struct checked_q {
  int x = 0;
};
// A handler whose reply is itself a result: an expected failure of its own.
struct validator : troupe::actor {
  troupe::result<int> handle(checked_q q) {
    if (q.x < 0) return troupe::failure<int>(errc::name_not_found);
    return q.x * 2;
  }
};
}  // namespace

TEST_CASE("a reply that is a result keeps its own error apart from the ask's", "[core][ask]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::sim(log)};
  auto v = rt.spawn<validator>();
  troupe::result<troupe::result<int>> ok = rt.ask_sync(v, checked_q{21}, 1s);
  REQUIRE(ok);
  CHECK(ok->value() == 42);
  troupe::result<troupe::result<int>> refused = rt.ask_sync(v, checked_q{-1}, 1s);
  REQUIRE(refused);  // the ask itself succeeded: the handler answered
  REQUIRE_FALSE(*refused);
  CHECK(refused->error() == errc::name_not_found);
  v.stop();
  rt.run_until_idle();
  troupe::result<troupe::result<int>> dead = rt.ask_sync(v, checked_q{1}, 1s);
  REQUIRE_FALSE(dead);  // the ask failed: nobody answered
  CHECK(dead.error() == errc::actor_dead);
}

TEST_CASE("answered asks are timed into the local-ask histogram; timeouts are not",
          "[ask][metrics]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto t = rt.spawn<target>();
  auto a = rt.spawn<asker>();
  for (int i = 0; i < 5; ++i) REQUIRE(rt.ask_sync(a, probe{t, 0, 1s}, 5s).value() == 7);
  REQUIRE(rt.ask_sync(a, probe{t, 1, 20ms}, 5s).value() == -static_cast<int>(errc::ask_timeout));
  const troupe::runtime_stats s = rt.stats();
  // The five asks from the handler: answered, local. ask_sync is not counted.
  CHECK(s.local_asks.count() == 5);
  CHECK(s.remote_asks.count() == 0);
  CHECK(s.local_asks.sum_seconds >= 0);
  CHECK(s.local_asks.sum_seconds < 1.0);
  CHECK(s.ask_timeouts == 1);
}
