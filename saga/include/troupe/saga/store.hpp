// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// saga_store: where an orchestrator keeps its sagas, durably.
///
/// The store is an engine, not a codec: it keeps one row per saga — the id,
/// the idempotency key (unique when present), the state (for recovery and
/// listing) and an opaque record (saga_record, encoded by the orchestrator).
/// An operation's task completes once its effect is durable; the orchestrator
/// awaits it before the saga's next action starts. Operations complete in
/// the order they were issued. A store serves one orchestrator at a time.
///
/// Implementations: memory_store (a map; for tests and for sagas that need
/// no durability) and sqlite_store (WAL, group commit). Another engine
/// (PostgreSQL) implements the same six operations.

#include <cstdint>
#include <optional>
#include <string>
#include <troupe/core/error.hpp>
#include <troupe/core/task.hpp>
#include <troupe/saga/record.hpp>
#include <vector>

namespace troupe::saga {

/// One saga's row.
struct stored_saga {
  std::uint64_t id = 0;
  std::string key;  ///< idempotency key; empty = none (not unique)
  saga_state state = saga_state::pending;
  std::string record;  ///< encode_record() bytes
};

/// Counters for benchmarks and operators.
struct store_stats {
  std::uint64_t writes = 0;   ///< create + save operations made durable
  std::uint64_t commits = 0;  ///< transactions (group commits)
  std::uint64_t fsyncs = 0;   ///< fsync/fdatasync calls the engine made (0 for memory)
};

class saga_store {
 public:
  virtual ~saga_store() = default;

  /// A fresh saga id, larger than every id the store holds. Any thread.
  virtual std::uint64_t next_id() = 0;
  /// Inserts s unless s.key is non-empty and already taken; then completes
  /// with the existing row instead (and inserts nothing).
  virtual task<result<std::optional<stored_saga>>> create(stored_saga s) = 0;
  /// Replaces the state and record of an existing saga.
  virtual task<boost::system::error_code> save(std::uint64_t id, saga_state state,
                                               std::string record) = 0;
  /// One saga, or saga_errc::not_found.
  virtual task<result<stored_saga>> load(std::uint64_t id) = 0;
  /// Sagas in `state` whose id is above `after`, by id, at most `limit`.
  virtual task<result<std::vector<stored_saga>>> list(saga_state state, std::size_t limit,
                                                      std::uint64_t after) = 0;
  /// Every pending, running or compensating saga, by id (what recovery resumes).
  virtual task<result<std::vector<stored_saga>>> unfinished() = 0;

  virtual store_stats stats() const = 0;
};

}  // namespace troupe::saga
