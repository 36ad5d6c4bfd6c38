// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// actor: the base class of every actor.
///
/// An actor is an object with one handle() overload per message type it
/// accepts. A handler is a coroutine returning task<R> (it may co_await asks,
/// timers and Asio operations) or a plain function returning R; R is what an
/// ask receives. An actor runs one handler at a time: while a handler is
/// suspended, later messages wait (declare `static constexpr bool reentrant =
/// true;` to let them interleave at suspension points instead). All handlers
/// run on the actor's home shard.

#include <troupe/core/actor_ref.hpp>
#include <troupe/core/options.hpp>

namespace troupe {

class runtime;

class actor {
 public:
  actor() noexcept;
  actor(const actor&) = delete;
  actor& operator=(const actor&) = delete;

 protected:
  ~actor() = default;

  /// This actor's address (for replies, monitors, registration).
  actor_addr self() const noexcept { return actor_addr{cell_}; }
  /// The runtime this actor lives in.
  runtime& system() const noexcept;
  /// Stops this actor once the running handler returns (reason: normal).
  void stop() noexcept;
  /// Delivers a down_msg to this actor when `other` stops (at once if it has).
  /// This actor's type must have handle(troupe::down_msg).
  void monitor(const actor_addr& other);
  /// Ties lifetimes: when either stops abnormally, the other stops with
  /// exit_reason::linked, unless it traps exits with handle(troupe::exit_msg).
  void link(const actor_addr& other);
  /// Spawns a child on this actor's shard (or opts.shard). This actor
  /// supervises it: the child stops when this actor stops, and a child with
  /// on_failure::escalate makes this actor fail.
  template <class T, class... Args>
  requires(!std::is_same_v<std::decay_t<Args>, spawn_options> &&
           ...) actor_ref<T> spawn(Args&&... args);
  template <class T, class... Args>
  actor_ref<T> spawn(spawn_options opts, Args&&... args);

 private:
  friend class runtime;
  template <class T>
  friend actor_ref<T> ref_of(T* self) noexcept;
  detail::actor_cell* cell_;
};

/// A typed reference to an actor from inside it: `auto me = troupe::ref_of(this);`
template <class T>
actor_ref<T> ref_of(T* self) noexcept {
  return actor_ref<T>{actor_addr{static_cast<actor*>(self)->cell_}};
}

}  // namespace troupe
