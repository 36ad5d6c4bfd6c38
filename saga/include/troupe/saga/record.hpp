// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// saga_record: what the store keeps of one saga — its state, its context,
/// each step's status, attempts, last error and times, and its capped event
/// history. Queries return it as is.
///
/// State machine (docs/saga.md):
///
///   pending -> running -> completed
///                 \-> compensating -> compensated
///                                  \-> stuck
///
/// pending, running and compensating are *unfinished*: a restarted
/// orchestrator resumes them.

#include <cstdint>
#include <string>
#include <string_view>
#include <troupe/core/error.hpp>
#include <vector>

namespace troupe::saga {

enum class saga_state : std::uint8_t {
  pending = 0,   ///< stored, waiting for a free slot (orchestrator_options::max_active)
  running,       ///< forward execution
  compensating,  ///< a step failed for good (or a cancel came): undoing completed steps
  completed,     ///< every step completed
  compensated,   ///< every completed step was compensated
  stuck,         ///< a compensation kept failing: an operator must resolve it
};
/// pending, running or compensating.
constexpr bool unfinished(saga_state s) noexcept { return s < saga_state::completed; }
std::string_view to_string(saga_state s) noexcept;

enum class step_status : std::uint8_t {
  pending = 0,   ///< not started
  running,       ///< an attempt was logged as started (it runs again after a crash)
  completed,     ///< the action succeeded
  failed,        ///< the action failed for good; the saga compensates
  compensating,  ///< a compensation attempt was logged as started
  compensated,   ///< the compensation succeeded
  stuck,         ///< the compensation kept failing
};
std::string_view to_string(step_status s) noexcept;

/// The phase of a two-phase (try/confirm/cancel) step.
enum class tcc_phase : std::uint8_t { none = 0, trying, confirming, cancelling };

enum class event_kind : std::uint8_t {
  created = 0,
  started,
  step_started,
  step_failed,  ///< one attempt failed (retried unless it was the last)
  step_completed,
  step_gave_up,  ///< the step failed for good
  cancel_requested,
  compensating,
  compensation_started,
  compensation_failed,
  compensation_completed,
  completed,
  compensated,
  stuck,
  recovered,  ///< a restarted orchestrator resumed the saga
  prepared,   ///< two-phase: every participant's try succeeded; confirm is decided
  confirmed,
  cancelled,  ///< two-phase: a try failed; every participant was cancelled
};
std::string_view to_string(event_kind k) noexcept;

struct step_state {
  std::string name;
  step_status status = step_status::pending;
  tcc_phase phase = tcc_phase::none;
  std::uint32_t attempts = 0;               ///< action attempts started
  std::uint32_t compensation_attempts = 0;  ///< compensation attempts started
  std::string last_error;                   ///< empty when no attempt failed
  std::int64_t started_ns = 0;              ///< wall clock (ns since the epoch), first attempt
  std::int64_t finished_ns = 0;             ///< wall clock, when it completed or failed for good
};

struct saga_event {
  std::int64_t at_ns = 0;  ///< wall clock
  event_kind kind = event_kind::created;
  std::int32_t step = -1;  ///< step index, -1 for the saga itself
  std::uint32_t attempt = 0;
  std::string detail;
};

struct saga_record {
  std::uint64_t id = 0;
  std::string type;
  std::string idempotency_key;  ///< empty: none
  saga_state state = saga_state::pending;
  std::uint64_t input_hash = 0;  ///< of the encoded input, to tell a repeated start from a conflict
  std::string context;           ///< the encoded context (the definition's cereal binary form)
  std::string error;             ///< why it compensated or got stuck
  bool cancel_requested = false;
  std::int64_t created_ns = 0;   ///< wall clock
  std::int64_t updated_ns = 0;   ///< wall clock
  std::int64_t deadline_ns = 0;  ///< wall clock; 0 = none
  std::vector<step_state> steps;
  std::vector<saga_event> history;    ///< the most recent events, oldest first (capped)
  std::uint32_t history_dropped = 0;  ///< older events dropped by the cap
};

/// The record's stored form (versioned, little-endian). decode_record fails with
/// saga_errc::bad_record on anything that does not decode in full.
std::string encode_record(const saga_record& r);
result<saga_record> decode_record(std::string_view bytes);

}  // namespace troupe::saga
