// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// actor_ref<A>: a typed, counted reference to an actor of type A; tell and ask.

#include <chrono>
#include <troupe/core/actor_addr.hpp>
#include <troupe/core/detail/envelope.hpp>
#include <type_traits>

namespace troupe {

namespace detail {

/// How an ask's envelope leaves: straight to the target's mailbox.
struct direct_dispatch {
  static constexpr bool direct = true;
  void operator()(message* e) const noexcept { (void)send(e); }
};

/// The awaitable an ask returns. Sends on suspension; resumes with result<R>.
/// `Dispatch` hands the envelope on (direct_dispatch: to the target; a router
/// hands it to its node, which picks the target by key). `target` is what the
/// ask is checked against for liveness before it is sent.
template <class A, class M, class Dispatch = direct_dispatch>
class [[nodiscard]] ask_awaiter {
 public:
  using reply_type = reply_t<A, M>;

  template <class U>
  ask_awaiter(actor_addr target, U&& m, std::chrono::nanoseconds timeout, Dispatch d = {},
              boost::system::error_code refused = {})
      : target_(std::move(target)),
        msg_(std::forward<U>(m)),
        timeout_(timeout),
        dispatch_(std::move(d)),
        immediate_(refused) {}
  ask_awaiter(const ask_awaiter&) = delete;
  ask_awaiter& operator=(const ask_awaiter&) = delete;

  bool await_ready() noexcept {
    cell_ = current_cell();
    if (cell_ && cell_->unwinding()) return true;
    if (immediate_) return true;  // refused before sending (e.g. a bad routing key)
    if (!target_.alive()) {
      immediate_ =
          Dispatch::direct ? make_error_code(errc::actor_dead) : make_error_code(errc::no_route);
      return true;
    }
    return false;
  }

  void await_suspend(std::coroutine_handle<> h) {
    shard* s = this_shard();
    TROUPE_ASSERT(s != nullptr,
                  "co_await ask() outside a shard; use runtime::ask_sync from other threads");
    auto* st = new ask_state<reply_type>();
    st->waiter_ = h;
    st->home_ = s;
    st->waiter_cell_ = cell_;
    st->deadline_ns_ = s->cached_now_ns() + timeout_.count();
    s->timers().add(st);
    if (cell_) cell_->add_wait(st);
    state_ = st;
    remote_ = !Dispatch::direct || target_.cell()->remote_ != 0;
    auto* e = new envelope<A, M>(Dispatch::direct ? target_.cell() : nullptr, std::move(msg_));
    e->ask_base_ = st;
    dispatch_(e);  // a refused send has already failed the ask and queued the resumption
  }

  result<reply_type> await_resume() {
    if (!state_) {
      if (cell_ && cell_->unwinding()) throw unwind{};
      return failure<reply_type>(immediate_);
    }
    ask_state<reply_type>* st = std::exchange(state_, nullptr);
    st->home_->timers().remove(st);
    if (cell_) cell_->remove_wait(st);
    if (st->error_ == errc{}) {  // answered: how long it took (the deadline is sent + timeout)
      shard_counters& c = st->home_->counters();
      (remote_ ? c.remote_asks : c.local_asks)
          .observe(st->home_->cached_now_ns() - (st->deadline_ns_ - timeout_.count()));
    }
    result<reply_type> r = st->take();
    st->release();
    if (cell_ && cell_->unwinding()) throw unwind{};
    return r;
  }

 private:
  actor_addr target_;  // keeps the cell's memory valid until the send
  M msg_;
  std::chrono::nanoseconds timeout_;
  [[no_unique_address]] Dispatch dispatch_;
  actor_cell* cell_ = nullptr;
  ask_state<reply_type>* state_ = nullptr;
  bool remote_ = false;
  boost::system::error_code immediate_;
};

}  // namespace detail

/// A reference to an actor of type A. Copyable and cheap; keeps the actor's
/// record alive (not the actor: it may stop, and then sends fail with actor_dead).
template <class A>
class actor_ref {
 public:
  actor_ref() noexcept = default;
  explicit actor_ref(actor_addr addr) noexcept : addr_(std::move(addr)) {}

  /// Sends m without waiting for anything. Callable from any thread.
  /// An empty code means accepted for delivery; actor_dead or mailbox_full
  /// when refused. A tell that arrives after the target stopped is counted as
  /// a dead letter. From one sender to one receiver, delivery order is send order.
  template <class M>
  boost::system::error_code tell(M&& m) const {
    using msg_t = std::decay_t<M>;
    static_assert(detail::handles<A, msg_t>,
                  "troupe: this actor type has no handle() for the message type");
    detail::actor_cell* c = addr_.cell();
    if (!c) return make_error_code(errc::actor_dead);
    if constexpr (remote_message<msg_t>) {
      // A remote actor's proxy on this shard: encoded from m at once, with no
      // envelope (the order is the same: a proxy's messages are forwarded as
      // they are sent).
      if (c->remote_ && c->home_ == detail::this_shard() && c->capacity_ == 0 && c->alive()) {
        detail::proxy_sink(c)->forward_value(
            c, remote_codec<msg_t>::type_id,
            [](const void* v, std::string& out) {
              remote_codec<msg_t>::encode(*static_cast<const msg_t*>(v), out);
            },
            &m);
        return {};
      }
    }
    return detail::send(new detail::envelope<A, msg_t>(c, std::forward<M>(m)));
  }

  /// Sends m and awaits the handler's reply, at most `timeout`. Only inside a
  /// coroutine running on a shard (a handler, or runtime::ask_sync elsewhere).
  /// Completes with the reply, or errc::actor_dead (target already stopped),
  /// ask_timeout, actor_died (stopped before replying), handler_failed,
  /// mailbox_full or message_dropped. The asker resumes on its own shard.
  ///
  /// g++ 12 miscompiles a temporary with a non-trivial destructor (a message
  /// holding a std::string) that lives across a suspension inside a co_await
  /// expression. Bind such a message to a local first:
  ///   balance q{"alice"};  auto c = co_await bank.ask(std::move(q), 200ms);
  /// or split the call:  auto call = bank.ask(balance{"alice"}, 200ms);  auto c = co_await call;
  template <class M>
  auto ask(M&& m, std::chrono::nanoseconds timeout) const {
    using msg_t = std::decay_t<M>;
    static_assert(detail::handles<A, msg_t>,
                  "troupe: this actor type has no handle() for the message type");
    return detail::ask_awaiter<A, msg_t>(addr_, std::forward<M>(m), timeout);
  }

  const actor_addr& addr() const noexcept { return addr_; }
  operator const actor_addr&() const noexcept { return addr_; }
  explicit operator bool() const noexcept { return static_cast<bool>(addr_); }
  bool alive() const noexcept { return addr_.alive(); }
  std::uint64_t id() const noexcept { return addr_.id(); }
  void stop() const { addr_.stop(); }

  friend bool operator==(const actor_ref& a, const actor_ref& b) noexcept {
    return a.addr_ == b.addr_;
  }

 private:
  actor_addr addr_;
};

}  // namespace troupe
