// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// orchestrator: the actor that runs sagas, durably.
///
/// Spawn one per store, on any shard:
///
///   auto types = std::make_shared<troupe::saga::registry>();
///   types->add(order_definition);
///   auto store = std::make_shared<troupe::saga::sqlite_store>(
///       troupe::saga::sqlite_store_options{.path = data_dir + "/sagas.db"});
///   auto orch = rt.spawn<troupe::saga::orchestrator>(
///       troupe::saga::orchestrator_options{.store = store, .types = types});
///   rt.ask_sync(orch, troupe::saga::recover{}, 30s);  // resume what a crash left
///   auto r = co_await orch.ask(start_saga{...}, 5s);  // or ask_sync from outside
///
/// The orchestrator is reentrant: all its sagas run interleaved on its shard,
/// each as one long handler (run_saga) that suspends at every store write and
/// every step. Each action or compensation attempt runs as a separate handler
/// the saga asks with the step's timeout, so a hung participant costs the saga
/// a timeout, not the orchestrator. Every transition is written to the store
/// and awaited before the next action starts (see docs/saga.md).

#include <array>
#include <boost/unordered/unordered_flat_map.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <troupe/core.hpp>
#include <troupe/saga/definition.hpp>
#include <troupe/saga/record.hpp>
#include <troupe/saga/store.hpp>
#include <unordered_map>
#include <vector>

namespace troupe::saga {

struct orchestrator_options {
  std::shared_ptr<saga_store> store;
  std::shared_ptr<const registry> types;
  /// Sagas running at once; more wait in `pending`, up to max_queued.
  std::size_t max_active = 10'000;
  /// Sagas waiting for a running slot (new starts and starts being stored);
  /// a start beyond it is refused with saga_errc::overloaded. Sagas resumed
  /// by recover are not refused.
  std::size_t max_queued = 10'000;
  /// Events kept per saga (the most recent); older ones are counted in history_dropped.
  std::size_t history_cap = 64;
  /// Names this orchestrator in the idempotency keys its steps receive:
  /// "<name>/<saga id>/<step>" (empty: "<saga id>/<step>"). Saga ids are
  /// unique per store only, so orchestrators with their own stores that
  /// share participants (one per node of a cluster) each need a distinct name.
  std::string name{};
  /// Called on the orchestrator's shard once a saga's final state is durable.
  std::function<void(const saga_record&)> on_finished{};
};

// --- messages ---

/// Starts a saga of `type` with a JSON `input`. With an idempotency key that
/// exists: the existing saga (created = false), or saga_errc::idempotency_conflict
/// when its type or input differ. unknown_saga_type / malformed_input for bad requests.
/// Replies once the saga is durably stored (pending).
struct start_saga {
  std::string type;
  std::string input;
  std::string idempotency_key{};
};
struct started {
  std::uint64_t id = 0;
  bool created = true;
};
/// Moves a pending or running saga to compensating (durably, before the
/// reply). A running step finishes its current attempt first; a backoff wait
/// is cut short. saga_errc::not_running when it already finished, not_found.
struct cancel_saga {
  std::uint64_t id = 0;
};
/// One saga as stored (state, steps, capped history); saga_errc::not_found.
struct get_saga {
  std::uint64_t id = 0;
};
/// Sagas in a state, by id, at most `limit`, those with an id above `after`
/// only (a page after the one that ended with saga `after`).
struct list_sagas {
  saga_state state = saga_state::running;
  std::size_t limit = 100;
  std::uint64_t after = 0;
};
/// Completes when the saga has finished (its final record) or after `timeout`
/// (saga_errc::wait_timeout). Ask with a longer timeout than this one.
struct wait_saga {
  std::uint64_t id = 0;
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
};
/// Counters of one orchestrator since it started: its sagas now by state,
/// those that finished by final state, and how long step calls took.
struct get_stats {};
struct orchestrator_stats {
  std::uint64_t pending = 0, running = 0, compensating = 0;  ///< here now (gauges)
  std::uint64_t completed = 0, compensated = 0, stuck = 0;   ///< finished here (counters)
  /// Step calls (actions, compensations, two-phase calls), each attempt.
  latency_histogram steps;
  std::uint64_t step_failures = 0;   ///< attempts that returned an error
  std::uint64_t starts_refused = 0;  ///< starts refused with overloaded (max_queued)
};

/// Reloads every unfinished saga from the store and resumes it; replies with
/// how many. A step logged as started but not finished runs again with the
/// same idempotency key. Sagas already running here are left alone.
struct recover {};

namespace detail {
struct join;
struct waiter;
struct run_saga {
  std::uint64_t id;
};
/// One attempt of a step's coroutine. Small on purpose: the handler builds
/// the step_call (its strings) itself, so neither the asking coroutine's
/// frame nor the message carries them.
struct run_call {
  const saga_type* type;
  std::shared_ptr<context_base> ctx;  // the action may outlive its saga (after a timeout)
  std::uint64_t saga;
  std::uint32_t step;
  std::uint32_t participant;
  std::uint32_t attempt;
  step_op op;
};
/// The reply of a run_call (result<error_code> is ambiguous in Boost.System).
struct call_outcome {
  step_result ec;
};
struct run_member {
  std::uint64_t saga;
  std::size_t step;
  bool forward;
  std::shared_ptr<join> j;
};
}  // namespace detail

class orchestrator : public troupe::actor {
 public:
  static constexpr bool reentrant = true;

  explicit orchestrator(orchestrator_options opts);
  ~orchestrator();

  task<result<started>> handle(start_saga m);
  task<result<void>> handle(cancel_saga m);
  task<result<saga_record>> handle(get_saga m);
  task<result<std::vector<saga_record>>> handle(list_sagas m);
  task<result<saga_record>> handle(wait_saga m);
  task<result<std::size_t>> handle(recover m);
  orchestrator_stats handle(get_stats);

  // Internal: sent by the orchestrator to itself.
  task<void> handle(detail::run_saga m);
  task<detail::call_outcome> handle(detail::run_call m);
  task<void> handle(detail::run_member m);

 private:
  struct active;
  struct start_plan;
  result<start_plan> plan_start(start_saga& m);
  result<started> settle_start(start_plan& p, result<std::optional<stored_saga>>& created);
  void admit(std::uint64_t id);
  void event(active& s, event_kind k, int step, std::uint32_t attempt, std::string detail = {});
  task<bool> save(active& s);
  task<step_result> call(active& s, std::size_t step, std::size_t participant, step_op op,
                         std::uint32_t attempt, std::chrono::milliseconds timeout);
  task<step_result> run_group(active& s, std::uint32_t group, bool forward);
  task<step_result> run_step(active& s, std::size_t i);
  task<step_result> run_two_phase(active& s, std::size_t i);
  task<step_result> settle_two_phase(active& s, std::size_t i, step_op op);
  task<step_result> compensate_step(active& s, std::size_t i);
  task<void> backoff(active& s, std::chrono::milliseconds d, bool cancellable);
  void finish(active& s);
  void record_step(std::chrono::steady_clock::duration d, bool failed);
  void abandon(active& s);
  void release_slot();
  std::unique_ptr<active> fresh_active();
  void recycle(std::unique_ptr<active> a);

  orchestrator_options opts_;
  boost::unordered_flat_map<std::uint64_t, std::unique_ptr<active>> active_;
  std::size_t running_ = 0;
  std::deque<std::uint64_t> queued_;
  std::size_t starting_ = 0;  // starts between their plan and their store write's end
  static constexpr std::size_t spare_max = 256;
  std::vector<std::unique_ptr<active>> spare_;  // finished sagas' records, for reuse
  orchestrator_stats stats_;  // the finished counters and step latencies; gauges are counted on ask
};

}  // namespace troupe::saga
