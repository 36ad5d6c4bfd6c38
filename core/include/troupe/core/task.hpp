// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// task<T>: the one coroutine type of troupe.
///
/// A task is lazy (nothing runs until it is awaited or started by the runtime),
/// move-only and [[nodiscard]]. Awaiting a task transfers control to it
/// symmetrically and it transfers back when it finishes, so chains of awaits do
/// not grow the stack. Frames come from a per-thread pool, not from malloc.
///
/// Message handlers return task<R>; R is the reply type an ask receives.

#include <coroutine>
#include <exception>
#include <optional>
#include <troupe/core/assert.hpp>
#include <troupe/core/detail/pool.hpp>
#include <type_traits>
#include <utility>
#include <variant>

namespace troupe {

template <class T = void>
class task;

namespace detail {

/// Called when a top-level task (one nobody awaits: a message handler) finishes.
class promise_base;
struct completion_hook {
  /// Runs in the task's final suspend; the frame is destroyed right after, so
  /// the hook reads the result but must not destroy the frame itself.
  void (*on_done_)(completion_hook*, promise_base*) noexcept = nullptr;
};

class promise_base {
 public:
  static void* operator new(std::size_t bytes) { return pool_allocate(bytes); }
  static void operator delete(void* p, std::size_t bytes) noexcept { pool_deallocate(p, bytes); }

  std::suspend_always initial_suspend() const noexcept { return {}; }

  // A task somebody awaits suspends at its end and transfers to its awaiter,
  // who destroys it. A top-level task (a message handler) reports to its hook
  // and does not suspend: its frame is freed as it runs off its end, which is
  // cheaper than a later destroy().
  struct final_awaiter {
    promise_base* p;
    bool await_ready() const noexcept {
      if (p->continuation_ || !p->hook_) return false;
      p->hook_->on_done_(p->hook_, p);
      return true;
    }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<>) const noexcept {
      if (p->continuation_) return p->continuation_;
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {this}; }

  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }
  void set_hook(completion_hook* hook) noexcept { hook_ = hook; }

 private:
  std::coroutine_handle<> continuation_;
  completion_hook* hook_ = nullptr;
};

template <class T>
class promise final : public promise_base {
 public:
  task<T> get_return_object() noexcept;
  void unhandled_exception() noexcept { result_.template emplace<2>(std::current_exception()); }
  template <class U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    result_.template emplace<1>(std::forward<U>(value));
  }
  bool failed() const noexcept { return result_.index() == 2; }
  std::exception_ptr exception() const noexcept {
    return failed() ? std::get<2>(result_) : nullptr;
  }
  T take() {
    if (result_.index() == 2) std::rethrow_exception(std::get<2>(result_));
    TROUPE_ASSERT(result_.index() == 1, "task result read before the task finished");
    return std::move(std::get<1>(result_));
  }

 private:
  std::variant<std::monostate, T, std::exception_ptr> result_;
};

template <>
class promise<void> final : public promise_base {
 public:
  task<void> get_return_object() noexcept;
  void unhandled_exception() noexcept { exception_.emplace(std::current_exception()); }
  void return_void() noexcept {}
  bool failed() const noexcept { return exception_.has_value(); }
  std::exception_ptr exception() const noexcept { return exception_ ? *exception_ : nullptr; }
  void take() {
    if (exception_) std::rethrow_exception(*exception_);
  }

 private:
  // optional: the success path then never calls exception_ptr's out-of-line destructor.
  std::optional<std::exception_ptr> exception_;
};

}  // namespace detail

/// A lazy coroutine producing a T (or an exception). Await it once.
template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : handle_(h) {}
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (handle_) handle_.destroy();
  }

  bool valid() const noexcept { return static_cast<bool>(handle_); }

  /// Gives up ownership of the frame (the runtime starts handlers this way).
  handle_type release() noexcept { return std::exchange(handle_, {}); }

  auto operator co_await() && noexcept {
    struct awaiter {
      handle_type h;
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
        h.promise().set_continuation(caller);
        return h;
      }
      T await_resume() { return h.promise().take(); }
    };
    TROUPE_ASSERT(handle_, "awaiting an empty task");
    return awaiter{handle_};
  }

 private:
  handle_type handle_;
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<promise<T>>::from_promise(*this)};
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<promise<void>>::from_promise(*this)};
}

template <class X>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {
  using value_type = T;
};
}  // namespace detail

}  // namespace troupe
