// SPDX-License-Identifier: BSL-1.0
#include "saga/saga_support.hpp"

using namespace troupe::saga;
using namespace troupe::saga::test;
using troupe::task;

namespace {
std::vector<std::string> seq(std::initializer_list<const char*> l) { return {l.begin(), l.end()}; }

/// A two-phase call that records "<tag>:<participant>" on the ledger, unless
/// the script fails "<tag>:<participant>".
definition<order_ctx>::fn tcc_call(troupe::actor_ref<ledger> lg, std::shared_ptr<script> sc,
                                   std::string tag) {
  return [lg, sc, tag](order_ctx&, step_call call) -> task<step_result> {
    std::string what = tag + ":" + call.participant;
    step_result f = sc->outcome(what, call.attempt);
    if (f) co_return f;
    apply a{call.idempotency_key, what};
    auto ask = lg.ask(std::move(a), 5s);
    auto r = co_await ask;
    if (!r) co_return r.error();
    co_return step_result{};
  };
}

std::shared_ptr<definition<order_ctx>> trip(fixture& f) {
  auto def = std::make_shared<definition<order_ctx>>("trip");
  def->step("s0").action(action_of(f.lg, f.sc)).compensate(compensation_of(f.lg, f.sc));
  auto book = def->two_phase_step("book");
  for (const char* p : {"flight", "hotel"})
    book.participant(p, tcc_call(f.lg, f.sc, "T"), tcc_call(f.lg, f.sc, "F"),
                     tcc_call(f.lg, f.sc, "X"));
  book.compensate(compensation_of(f.lg, f.sc)).compensation_retry(quick_retry());
  def->step("s2").action(action_of(f.lg, f.sc)).retry(quick_retry(1));
  return def;
}
}  // namespace

TEST_CASE("a two-phase step tries every participant, then confirms them all", "[saga][two_phase]") {
  fixture f;
  f.types->add(trip(f));
  f.spawn();
  saga_record r = f.wait(f.start("trip", order_input()).id);
  CHECK(r.state == saga_state::completed);
  CHECK(f.effects() == seq({"A:s0", "T:flight", "T:hotel", "F:flight", "F:hotel", "A:s2"}));
  CHECK(r.steps[1].status == step_status::completed);
  CHECK(r.steps[1].phase == tcc_phase::confirming);
  auto prepared = std::find_if(r.history.begin(), r.history.end(),
                               [](auto& e) { return e.kind == event_kind::prepared; });
  CHECK(prepared != r.history.end());
}

TEST_CASE("a refused try cancels every participant and compensates the steps before",
          "[saga][two_phase]") {
  fixture f;
  f.types->add(trip(f));
  f.spawn();
  f.sc->fail("T:hotel", make_error_code(saga_errc::rejected));
  saga_record r = f.wait(f.start("trip", order_input()).id);
  CHECK(r.state == saga_state::compensated);
  CHECK(f.effects() == seq({"A:s0", "T:flight", "X:flight", "X:hotel", "C:s0"}));
  CHECK(r.steps[1].status == step_status::failed);
  CHECK(r.steps[1].phase == tcc_phase::cancelling);
}

TEST_CASE("a failure after a confirmed two-phase step runs that step's compensation",
          "[saga][two_phase]") {
  fixture f;
  f.types->add(trip(f));
  f.spawn();
  f.sc->fail("s2", make_error_code(saga_errc::rejected));
  saga_record r = f.wait(f.start("trip", order_input()).id);
  CHECK(r.state == saga_state::compensated);
  CHECK(f.effects() ==
        seq({"A:s0", "T:flight", "T:hotel", "F:flight", "F:hotel", "C:book", "C:s0"}));
}

TEST_CASE("a confirm that keeps failing leaves the saga stuck", "[saga][two_phase]") {
  fixture f;
  f.types->add(trip(f));
  f.spawn();
  f.sc->fail("F:hotel", make_error_code(boost::system::errc::io_error));
  saga_record r = f.wait(f.start("trip", order_input()).id);
  CHECK(r.state == saga_state::stuck);
  CHECK(r.steps[1].status == step_status::stuck);
  CHECK(f.effects() == seq({"A:s0", "T:flight", "T:hotel", "F:flight"}));
}

TEST_CASE("after a crash in the confirm phase the decision stands: confirms run again, no try does",
          "[saga][two_phase][recovery]") {
  fixture f;
  auto reached = std::make_shared<std::promise<void>>();
  auto arrived = reached->get_future();
  auto first = std::make_shared<std::atomic<bool>>(true);
  auto def = std::make_shared<definition<order_ctx>>("trip");
  auto book = def->two_phase_step("book");
  auto confirm = tcc_call(f.lg, f.sc, "F");
  book.participant("flight", tcc_call(f.lg, f.sc, "T"), confirm, tcc_call(f.lg, f.sc, "X"));
  book.participant(
      "hotel", tcc_call(f.lg, f.sc, "T"),
      [reached, confirm, first](order_ctx& c, step_call call) -> task<step_result> {
        if (first->exchange(false)) {
          reached->set_value();
          co_await troupe::sleep_for(std::chrono::hours(1));  // the "crash" cuts it here
        }
        auto t = confirm(c, std::move(call));
        co_return co_await std::move(t);
      },
      tcc_call(f.lg, f.sc, "X"));
  book.timeout(1h);
  f.types->add(def);
  f.spawn();
  auto s = f.start("trip", order_input());
  arrived.wait();  // flight is confirmed, hotel's confirm is in flight
  f.orch.stop();
  while (f.orch.alive()) std::this_thread::yield();
  f.spawn();
  auto n = flat(f.rt.ask_sync(f.orch, recover{}, 5s));
  REQUIRE(n);
  CHECK(*n == 1);
  saga_record r = f.wait(s.id);
  CHECK(r.state == saga_state::completed);
  CHECK(f.effects() == seq({"T:flight", "T:hotel", "F:flight", "F:hotel"}));
  CHECK(f.duplicates() == 1);  // flight's confirm ran twice with one key; the ledger kept one
}
