// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// event: a one-shot wake-up for one coroutine on the same shard, with a
/// deadline — what an actor uses to park a request until its own state lets
/// it through (a lock's waiter queue, a batch being filled).
///
///   troupe::event ready;                         // e.g. in a waiter record
///   bool woken = co_await ready.wait_for(250ms); // false: the deadline passed
///   ...elsewhere, in a handler of the same actor: ready.set();
///
/// Not thread-safe: set() runs on the waiting coroutine's shard (the actor's
/// own handlers do). The event must outlive the wait (keep it in the waiting
/// coroutine's frame). If the actor stops meanwhile, the wait is cut short
/// and the handler unwinds, as with sleep_for.

#include <chrono>
#include <coroutine>
#include <troupe/core/detail/cell.hpp>
#include <troupe/core/detail/shard.hpp>

namespace troupe {

class event;

namespace detail {
class [[nodiscard]] event_awaiter : work_item, timer_node, wait_node {
 public:
  event_awaiter(event& e, std::chrono::nanoseconds timeout) noexcept : e_(e), timeout_(timeout) {
    work_item::run_ = &resume;
    timer_node::fire_ = &fire;
    wait_node::cancel_ = &cancel;
  }
  event_awaiter(const event_awaiter&) = delete;
  event_awaiter& operator=(const event_awaiter&) = delete;

  inline bool await_ready() noexcept;
  inline void await_suspend(std::coroutine_handle<> h) noexcept;
  inline bool await_resume();

 private:
  friend class troupe::event;
  static void resume(work_item* w) noexcept {
    auto* s = static_cast<event_awaiter*>(w);
    resume_in(s->cell_, s->waiter_);
  }
  inline static void fire(timer_node* t) noexcept;
  inline static void cancel(wait_node* w) noexcept;
  // Called by event::set() while suspended.
  void wake() noexcept {
    shard_->timers().remove(this);
    shard_->schedule(static_cast<work_item*>(this));
  }

  event& e_;
  std::chrono::nanoseconds timeout_;
  actor_cell* cell_ = nullptr;
  shard* shard_ = nullptr;
  std::coroutine_handle<> waiter_;
};
}  // namespace detail

class event {
 public:
  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// Sets the event and wakes its waiter, if one is suspended. Returns false
  /// only if the event can no longer be set: its wait already timed out (the
  /// waiter is on its way out and must not be counted as woken).
  bool set() noexcept {
    if (state_ == state::timed_out) return false;
    if (state_ == state::set) return true;
    state_ = state::set;
    if (waiting_) std::exchange(waiting_, nullptr)->wake();
    return true;
  }
  bool is_set() const noexcept { return state_ == state::set; }
  /// True once a wait_for gave up at its deadline (set() then returns false).
  bool timed_out() const noexcept { return state_ == state::timed_out; }

  /// co_await: true when set (at once if already set), false when `timeout`
  /// passed first (1 ms resolution, the shard's clock).
  detail::event_awaiter wait_for(std::chrono::nanoseconds timeout) noexcept {
    return detail::event_awaiter{*this, timeout};
  }

 private:
  friend class detail::event_awaiter;
  enum class state : std::uint8_t { idle, set, timed_out };
  state state_ = state::idle;
  detail::event_awaiter* waiting_ = nullptr;
};

namespace detail {
bool event_awaiter::await_ready() noexcept {
  cell_ = current_cell();
  if (cell_ && cell_->unwinding()) return true;
  return e_.state_ != event::state::idle;
}
void event_awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  shard_ = this_shard();
  TROUPE_ASSERT(shard_ != nullptr, "co_await event::wait_for() outside a shard");
  TROUPE_ASSERT(e_.waiting_ == nullptr, "an event has one waiter at a time");
  waiter_ = h;
  deadline_ns_ = shard_->now_ns() + (timeout_.count() > 0 ? timeout_.count() : 0);
  shard_->timers().add(this);
  if (cell_) cell_->add_wait(this);
  e_.waiting_ = this;
}
bool event_awaiter::await_resume() {
  if (shard_) {
    shard_->timers().remove(this);
    if (cell_) cell_->remove_wait(this);
    if (e_.waiting_ == this) e_.waiting_ = nullptr;  // cut short by a stop
  }
  if (cell_ && cell_->unwinding()) throw unwind{};
  return e_.state_ == event::state::set;
}
void event_awaiter::cancel(wait_node* w) noexcept {
  auto* s = static_cast<event_awaiter*>(w);
  if (s->timer_node::linked_) {
    s->shard_->timers().remove(s);
    if (s->e_.waiting_ == s) s->e_.waiting_ = nullptr;  // a later set() must not wake it again
    s->shard_->schedule(static_cast<work_item*>(s));
  }
}
void event_awaiter::fire(timer_node* t) noexcept {
  auto* s = static_cast<event_awaiter*>(t);
  if (s->e_.state_ == event::state::idle) s->e_.state_ = event::state::timed_out;
  s->e_.waiting_ = nullptr;
  s->shard_->schedule(static_cast<work_item*>(s));
}
}  // namespace detail

}  // namespace troupe
