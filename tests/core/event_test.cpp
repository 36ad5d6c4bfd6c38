// SPDX-License-Identifier: BSL-1.0
// troupe::event: a coroutine parked until its actor's own state lets it through.

#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct wait_q {
  std::chrono::milliseconds timeout;
};
struct open_q {};
struct set_twice_q {};
struct state_q {};
struct timeout_probe_q {};
struct gate_state {
  int woken = 0, timed_out = 0;
  bool last_set_result = true;
};

// Parks each wait_q until an open_q arrives (or its timeout passes).
class gate : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  task<bool> handle(wait_q q) {
    troupe::event e;
    waiters_.push_back(&e);
    const bool ok = co_await e.wait_for(q.timeout);
    std::erase(waiters_, &e);
    (ok ? s_.woken : s_.timed_out)++;
    co_return ok;
  }
  void handle(open_q) {
    // Wakes the oldest waiter that has not timed out.
    for (troupe::event* e : waiters_) {
      bool r = e->set();
      s_.last_set_result = r;
      if (r) break;
    }
  }
  task<bool> handle(set_twice_q) {
    troupe::event e;
    e.set();
    const bool first = e.set();               // setting a set event is harmless
    const bool ok = co_await e.wait_for(1h);  // already set: no suspension
    co_return first&& ok&& e.is_set();
  }
  task<bool> handle(timeout_probe_q) {
    troupe::event e;
    const bool ok = co_await e.wait_for(5ms);
    co_return !ok && e.timed_out() && !e.set() && !e.is_set();
  }
  gate_state handle(state_q) const { return s_; }

 private:
  std::vector<troupe::event*> waiters_;
  gate_state s_;
};
}  // namespace

TEST_CASE("an event wakes its waiter when set, and reports a timeout otherwise",
          "[core][event][sim]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::sim(log)};
  auto g = rt.spawn<gate>();

  SECTION("set before the wait: no suspension") {
    CHECK(rt.ask_sync(g, set_twice_q{}, 1s).value());
  }
  SECTION("woken by another handler of the same actor, oldest first") {
    (void)g.tell(wait_q{1000ms});
    (void)g.tell(wait_q{1000ms});
    rt.run_until_idle();
    (void)g.tell(open_q{});
    rt.run_until_idle();
    auto s = rt.ask_sync(g, state_q{}, 1s).value();
    CHECK(s.woken == 1);
    CHECK(s.timed_out == 0);
    rt.advance(1500ms);  // the other one times out
    s = rt.ask_sync(g, state_q{}, 1s).value();
    CHECK(s.woken == 1);
    CHECK(s.timed_out == 1);
  }
  SECTION("a timed-out event refuses set(), so a waker can move on") {
    CHECK(rt.ask_sync(g, timeout_probe_q{}, 1s).value());
  }
  SECTION("stopping the actor cuts a wait short") {
    (void)g.tell(wait_q{1h});
    rt.run_until_idle();
    g.stop();
    rt.run_until_idle();
    CHECK_FALSE(g.alive());
  }
}
