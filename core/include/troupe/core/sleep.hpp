// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// sleep_for: suspend the calling coroutine on the shard's timer wheel;
/// yield_turn: let the shard run what is queued, then resume.

#include <chrono>
#include <coroutine>
#include <troupe/core/detail/cell.hpp>
#include <troupe/core/detail/shard.hpp>

namespace troupe {

namespace detail {
class [[nodiscard]] sleep_awaiter : work_item, timer_node, wait_node {
 public:
  explicit sleep_awaiter(std::chrono::nanoseconds d) noexcept : d_(d) {
    work_item::run_ = &resume;
    timer_node::fire_ = &fire;
    wait_node::cancel_ = &cancel;
  }
  sleep_awaiter(const sleep_awaiter&) = delete;
  sleep_awaiter& operator=(const sleep_awaiter&) = delete;

  bool await_ready() noexcept {
    cell_ = current_cell();
    return cell_ && cell_->unwinding();
  }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    shard_ = this_shard();
    TROUPE_ASSERT(shard_ != nullptr, "co_await sleep_for() outside a shard");
    waiter_ = h;
    deadline_ns_ = shard_->now_ns() + (d_.count() > 0 ? d_.count() : 0);
    shard_->timers().add(this);
    if (cell_) cell_->add_wait(this);
  }
  void await_resume() {
    if (shard_) {
      shard_->timers().remove(this);
      if (cell_) cell_->remove_wait(this);
    }
    if (cell_ && cell_->unwinding()) throw unwind{};
  }

 private:
  static void resume(work_item* w) noexcept {
    auto* s = static_cast<sleep_awaiter*>(w);
    resume_in(s->cell_, s->waiter_);
  }
  static void fire(timer_node* t) noexcept {
    auto* s = static_cast<sleep_awaiter*>(t);
    s->shard_->schedule(static_cast<work_item*>(s));
  }
  static void cancel(wait_node* w) noexcept {
    auto* s = static_cast<sleep_awaiter*>(w);
    if (s->timer_node::linked_) {
      s->shard_->timers().remove(s);
      s->shard_->schedule(static_cast<work_item*>(s));
    }
  }

  std::chrono::nanoseconds d_;
  actor_cell* cell_ = nullptr;
  shard* shard_ = nullptr;
  std::coroutine_handle<> waiter_;
};

/// Suspends until the shard has run what is already queued (a handler giving
/// way to other actors on its shard); no timer involved.
class [[nodiscard]] yield_awaiter : work_item, wait_node {
 public:
  yield_awaiter() noexcept {
    work_item::run_ = &resume;
    wait_node::cancel_ = &cancel;
  }
  yield_awaiter(const yield_awaiter&) = delete;
  yield_awaiter& operator=(const yield_awaiter&) = delete;

  bool await_ready() noexcept {
    cell_ = current_cell();
    return cell_ && cell_->unwinding();
  }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    shard* s = this_shard();
    TROUPE_ASSERT(s != nullptr, "co_await yield_turn() outside a shard");
    waiter_ = h;
    suspended_ = true;
    s->schedule(static_cast<work_item*>(this));
    if (cell_) cell_->add_wait(this);
  }
  void await_resume() {
    if (cell_) {
      if (suspended_) cell_->remove_wait(this);
      if (cell_->unwinding()) throw unwind{};
    }
  }

 private:
  static void resume(work_item* w) noexcept {
    auto* s = static_cast<yield_awaiter*>(w);
    resume_in(s->cell_, s->waiter_);
  }
  // Already queued: the handler resumes on its own and unwinds then.
  static void cancel(wait_node*) noexcept {}

  actor_cell* cell_ = nullptr;
  std::coroutine_handle<> waiter_;
  bool suspended_ = false;
};
}  // namespace detail

/// Lets the other work already queued on this shard run, then resumes. Only
/// inside a coroutine on a shard. If the actor stops meanwhile, the handler
/// unwinds when it resumes.
inline detail::yield_awaiter yield_turn() noexcept { return detail::yield_awaiter{}; }

/// Suspends for at least d on the calling shard's clock (the manual clock in
/// simulated mode), with 1 ms resolution. Only inside a coroutine on a shard.
/// If the actor stops meanwhile, the await is cut short and the handler unwinds.
inline detail::sleep_awaiter sleep_for(std::chrono::nanoseconds d) noexcept {
  return detail::sleep_awaiter{d};
}

}  // namespace troupe
