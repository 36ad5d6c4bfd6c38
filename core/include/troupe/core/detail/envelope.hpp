// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Envelopes (one per tell or ask, from the per-thread pool) and ask states
/// (the rendezvous between an asker and the reply, its deadline and its cancel).
///
/// An ask is decided exactly once, by whoever first claims its state: the
/// reply, the deadline, the target's death, or the asker's own stop. The loser
/// does nothing. The asker is always resumed on its own shard.

#include <condition_variable>
#include <mutex>
#include <optional>
#include <troupe/core/detail/cell.hpp>
#include <troupe/core/detail/pool.hpp>
#include <troupe/core/detail/shard.hpp>
#include <troupe/core/detail/timer_wheel.hpp>
#include <troupe/core/error.hpp>
#include <troupe/core/messages.hpp>
#include <troupe/core/remote_codec.hpp>
#include <troupe/core/task.hpp>
#include <type_traits>

namespace troupe::detail {

/// A thread outside the runtime blocked in ask_sync().
struct blocking_waiter {
  std::mutex mutex;
  std::condition_variable cv;
  bool ready = false;
  void signal() {
    std::lock_guard lock(mutex);
    ready = true;
    cv.notify_one();
  }
};

struct ask_state_base : work_item, timer_node, wait_node {
  std::atomic<std::uint32_t> refs_{2};  // the asker's and the envelope's
  /// When set, called instead of resuming a coroutine or waking a thread
  /// (a remote reply: encode the value and send it back over the link).
  void (*on_complete_)(ask_state_base*) noexcept = nullptr;
  std::atomic<bool> done_{false};
  errc error_{};  // set instead of a value when the ask failed
  std::coroutine_handle<> waiter_;
  shard* home_ = nullptr;
  actor_cell* waiter_cell_ = nullptr;
  blocking_waiter* blocking_ = nullptr;
  void (*destroy_)(ask_state_base*) noexcept = nullptr;

  ask_state_base() noexcept {
    work_item::run_ = &resume;
    timer_node::fire_ = &on_timeout;
    wait_node::cancel_ = &on_cancel;
  }
  bool claim() noexcept { return !done_.exchange(true, std::memory_order_acq_rel); }
  /// Resumes the asker (on its shard) or wakes the blocked thread.
  void notify() noexcept {
    if (on_complete_) {
      on_complete_(this);
    } else if (blocking_) {
      blocking_->signal();
    } else {
      home_->submit(static_cast<work_item*>(this));
    }
  }
  void fail(errc e) noexcept {
    if (claim()) {
      error_ = e;
      notify();
    }
  }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy_(this);
  }

  static void resume(work_item* w) noexcept {
    auto* s = static_cast<ask_state_base*>(w);
    resume_in(s->waiter_cell_, s->waiter_);
  }
  static void on_timeout(timer_node* t) noexcept {
    auto* s = static_cast<ask_state_base*>(t);
    if (s->claim()) {
      s->error_ = errc::ask_timeout;
      s->home_->counters().ask_timeouts.fetch_add(1, std::memory_order_relaxed);
      s->home_->schedule(static_cast<work_item*>(s));
    }
  }
  static void on_cancel(wait_node* w) noexcept {
    auto* s = static_cast<ask_state_base*>(w);
    if (s->claim()) {
      s->error_ = errc::runtime_stopped;
      s->home_->schedule(static_cast<work_item*>(s));
    }
  }
};

template <class R>
struct ask_state : ask_state_base {
  std::optional<R> value_;
  ask_state() noexcept {
    destroy_ = [](ask_state_base* b) noexcept { delete static_cast<ask_state*>(b); };
  }
  template <class U>
  void succeed(U&& v) noexcept {
    if (claim()) {
      value_.emplace(std::forward<U>(v));
      notify();
    }
  }
  result<R> take() {
    if (error_ != errc{}) return failure<R>(error_);
    // In place: when R is itself a result<T>, a converting construction would
    // fold the handler's error into the ask's own (indistinguishable from
    // actor_dead and the like). The ask's result holds the reply as it is.
    return result<R>(boost::system::in_place_value, std::move(*value_));
  }
  static void* operator new(std::size_t n) { return pool_allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { pool_deallocate(p, n); }
};

template <>
struct ask_state<void> : ask_state_base {
  ask_state() noexcept {
    destroy_ = [](ask_state_base* b) noexcept { delete static_cast<ask_state*>(b); };
  }
  void succeed() noexcept {
    if (claim()) notify();
  }
  result<void> take() {
    if (error_ != errc{}) return failure<void>(error_);
    return {};
  }
  static void* operator new(std::size_t n) { return pool_allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { pool_deallocate(p, n); }
};

bool is_unwind(const std::exception_ptr& e) noexcept;

/// What a handler of A for M returns, and the reply type an ask gets.
template <class A, class M>
using handler_result_t = decltype(std::declval<A&>().handle(std::declval<M&&>()));

template <class H>
struct reply_of {
  using type = H;
};
template <class R>
struct reply_of<task<R>> {
  using type = R;
};
template <class A, class M>
using reply_t = typename reply_of<handler_result_t<A, M>>::type;

template <class A, class M>
concept handles = requires(A& a, M&& m) {
  a.handle(std::move(m));
};

/// One tell or ask of an M to an A.
template <class A, class M>
struct envelope final : message, completion_hook {
  using handler_type = handler_result_t<A, M>;
  using reply_type = reply_t<A, M>;
  static constexpr bool is_coroutine = is_task<handler_type>::value;

  M msg_;

  template <class U>
  envelope(actor_cell* target, U&& m) : msg_(std::forward<U>(m)) {
    target_ = target;
    run_ = &deliver_from_inbox;
    ops_ = &ops;
    on_done_ = &on_done;
  }

  ask_state<reply_type>* ask() const noexcept {
    return static_cast<ask_state<reply_type>*>(ask_base_);
  }

  static constexpr bool message_remote = remote_message<M>;
  static constexpr bool reply_remote = std::is_void_v<reply_type> || remote_message<reply_type>;
  static constexpr std::uint32_t wire_type() {
    if constexpr (message_remote)
      return remote_codec<M>::type_id;
    else
      return 0;
  }
  static void encode(const message* m, std::string& out) {
    if constexpr (message_remote)
      remote_codec<M>::encode(static_cast<const envelope*>(m)->msg_, out);
  }
  static bool complete(message* m, std::string_view payload) noexcept {
    auto* e = static_cast<envelope*>(m);
    if constexpr (std::is_void_v<reply_type>) {
      if (e->ask()) e->ask()->succeed();
      return true;
    } else if constexpr (remote_message<reply_type>) {
      result<reply_type> r = remote_codec<reply_type>::decode(payload);
      if (!r) return false;
      if (e->ask()) e->ask()->succeed(std::move(*r));
      return true;
    } else {
      return false;
    }
  }
  static const message_ops ops;

  static void* operator new(std::size_t n) { return pool_allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { pool_deallocate(p, n); }

  /// Arrived through the home shard's inbox: queue it (the envelope's transit
  /// reference on the cell is dropped once it is in the mailbox).
  static void deliver_from_inbox(work_item* w) noexcept {
    auto* e = static_cast<envelope*>(w);
    actor_cell* c = e->target_;
    c->enqueue(e);
    c->release();
  }

  static void invoke(message* base, actor_cell* c) {
    auto* e = static_cast<envelope*>(base);
    A& a = static_cast<A&>(*c->instance_);
    if constexpr (is_coroutine) {
      handler_type t;
      try {
        t = a.handle(std::move(e->msg_));
      } catch (...) {  // only a throwing parameter copy gets here
        finish_failed(e, c, std::current_exception());
        return;
      }
      auto h = t.release();
      h.promise().set_hook(e);
      c->start_handler(h);
    } else {
      try {
        if constexpr (std::is_void_v<reply_type>) {
          a.handle(std::move(e->msg_));
          if (e->ask()) e->ask()->succeed();
        } else {
          reply_type r = a.handle(std::move(e->msg_));
          if (e->ask()) e->ask()->succeed(std::move(r));
        }
      } catch (...) {
        finish_failed(e, c, std::current_exception());
        return;
      }
      finish_ok(e, c);
    }
  }

  static void finish_ok(envelope* e, actor_cell* c) noexcept {
    if (e->ask()) e->ask()->release();
    delete e;
    c->handler_finished();
  }

  static void finish_failed(envelope* e, actor_cell* c, std::exception_ptr failure) noexcept {
    const bool unwound = is_unwind(failure);
    if (e->ask()) {
      e->ask()->fail(unwound ? errc::actor_died : errc::handler_failed);
      e->ask()->release();
    }
    delete e;
    if (unwound) {
      c->handler_finished();
    } else {
      c->handler_failed(std::move(failure));
    }
  }

  static void on_done(completion_hook* hook, promise_base* pb) noexcept {
    auto* e = static_cast<envelope*>(hook);
    actor_cell* c = e->target_;
    auto& p = static_cast<promise<reply_type>&>(*pb);
    if (!p.failed()) {
      if (e->ask()) {
        if constexpr (std::is_void_v<reply_type>) {
          e->ask()->succeed();
        } else {
          e->ask()->succeed(p.take());
        }
      }
      finish_ok(e, c);
    } else {
      finish_failed(e, c, p.exception());
    }
  }

  static void discard(message* base, errc why) noexcept {
    auto* e = static_cast<envelope*>(base);
    if (e->ask()) {
      e->ask()->fail(why);
      e->ask()->release();
    }
    delete e;
  }
};

template <class A, class M>
const message_ops envelope<A, M>::ops{
    &envelope::invoke,      &envelope::discard,
    envelope::wire_type(),  envelope::message_remote ? &envelope::encode : nullptr,
    envelope::reply_remote, &envelope::complete};

template <class A, class M>
void send_system(actor_cell* to, M&& m) {
  auto* e = new envelope<A, std::decay_t<M>>(to, std::forward<M>(m));
  (void)send(e);
}

/// The per-type table the runtime keeps a pointer to in every cell.
template <class A>
struct type_info_for {
  static void destroy(actor* a) noexcept { static_cast<A*>(a)->~A(); }
  static void send_down(actor_cell* to, actor_cell* who, exit_reason r, std::string what) {
    if constexpr (handles<A, down_msg>) {
      send_system<A>(to, down_msg{actor_addr{who}, r, std::move(what)});
    }
  }
  static void send_exit(actor_cell* to, actor_cell* who, exit_reason r, std::string what) {
    if constexpr (handles<A, exit_msg>) {
      send_system<A>(to, exit_msg{actor_addr{who}, r, std::move(what)});
    }
  }
  static constexpr bool reentrant() {
    if constexpr (requires { A::reentrant; })
      return A::reentrant;
    else
      return false;
  }
  static const char* type_name() {
    if constexpr (requires { A::type_name; })
      return A::type_name;
    else
      return demangled_name(typeid(A));
  }
  static inline const actor_type_info value{type_name(),
                                            sizeof(A),
                                            alignof(A),
                                            &destroy,
                                            handles<A, down_msg> ? &send_down : nullptr,
                                            handles<A, exit_msg> ? &send_exit : nullptr,
                                            reentrant()};
};

}  // namespace troupe::detail
