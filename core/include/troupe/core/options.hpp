// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Options for runtimes and for spawned actors.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <troupe/core/log.hpp>

namespace troupe {

/// What a supervisor does when a child's handler throws.
enum class on_failure : std::uint8_t {
  stop,      ///< the child stops with exit_reason::failure (the default)
  restart,   ///< a fresh instance replaces it; the ref stays valid, the mailbox is kept
  escalate,  ///< the child stops and its parent fails in turn
};

/// Supervision of one actor: the directive and the restart intensity bound.
struct supervision {
  on_failure directive = on_failure::stop;
  /// At most max_restarts restarts within `within`; one more and the actor stops
  /// with exit_reason::restart_limit.
  std::uint32_t max_restarts = 3;
  std::chrono::milliseconds within{5000};
};

/// What a bounded mailbox does with a message that does not fit.
enum class overflow : std::uint8_t {
  reject,       ///< the sender gets errc::mailbox_full (tell's return value, or the ask's result)
  drop_oldest,  ///< the oldest queued message is evicted and counted; an evicted ask fails with
                ///< errc::message_dropped
};

struct mailbox_options {
  std::uint32_t capacity = 0;  ///< 0 = unbounded
  overflow policy = overflow::reject;
};

/// How and where to spawn one actor.
struct spawn_options {
  /// Shard index; -1 = the spawner's shard (shard 0 when spawned from outside the runtime).
  int shard = -1;
  supervision supervise{};
  mailbox_options mailbox{};
  /// Register the actor under this name (the spawn fails if it is taken).
  std::string name{};
};

/// A runtime's configuration.
struct runtime_options {
  /// Number of shards (threads); 0 = one per hardware thread.
  unsigned shards = 0;
  /// Deterministic mode: no threads, a manual clock and a seeded scheduling order.
  /// Work only happens inside run_until_idle(), advance() and ask_sync().
  bool simulated = false;
  /// Seed for the simulated scheduler's order.
  std::uint64_t seed = 0;
  /// How long an idle shard spins before it parks (a wake-up costs ~20 µs).
  std::chrono::microseconds spin{50};
  /// Where the runtime and troupe's libraries log (failures, restarts, links,
  /// dead letters). Default: stderr, one line a record:
  /// "troupe <level> <component>: <message>".
  std::function<void(const log_record&)> log{};
  /// Records below this level are dropped before formatting (see
  /// runtime::log_enabled).
  log_level min_log_level = log_level::info;
  /// A repeated (component, message) at info or above passes at most once a
  /// window (log.hpp); zero passes every one.
  std::chrono::milliseconds log_repeat_window{10'000};
};

}  // namespace troupe
