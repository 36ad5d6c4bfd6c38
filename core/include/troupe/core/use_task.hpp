// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// use_task: a completion token that lets a handler co_await any Boost.Asio
/// asynchronous operation.
///
///   boost::asio::steady_timer t{troupe::runtime::this_io(), 50ms};
///   boost::system::error_code ec = co_await t.async_wait(troupe::use_task);
///   troupe::result<std::size_t> n = co_await sock.async_read_some(buf, troupe::use_task);
///
/// What the await yields: void() -> void; void(error_code) -> error_code;
/// void(error_code, T) -> result<T>; any other signature -> std::tuple of the
/// arguments. The completion runs on the awaiting shard (it is bound to that
/// shard's executor); use Asio objects of the actor's own shard
/// (runtime::this_io()). If the actor stops while the operation is pending, the
/// operation is cancelled through its cancellation slot and the handler unwinds.

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <coroutine>
#include <optional>
#include <troupe/core/detail/cell.hpp>
#include <troupe/core/detail/shard.hpp>
#include <troupe/core/error.hpp>
#include <tuple>
#include <type_traits>

namespace troupe {

struct use_task_t {};
/// The completion token: `co_await op(args..., troupe::use_task)`.
inline constexpr use_task_t use_task{};

namespace detail {

template <class... Args>
struct asio_yield {
  using type = std::tuple<Args...>;
  static type make(std::tuple<Args...>&& t) { return std::move(t); }
};
template <>
struct asio_yield<> {
  using type = void;
  static void make(std::tuple<>&&) {}
};
template <>
struct asio_yield<boost::system::error_code> {
  using type = boost::system::error_code;
  static type make(std::tuple<boost::system::error_code>&& t) { return std::get<0>(t); }
};
template <class T>
struct asio_yield<boost::system::error_code, T> {
  using type = result<T>;
  static type make(std::tuple<boost::system::error_code, T>&& t) {
    if (std::get<0>(t)) return failure<T>(std::get<0>(t));
    return std::move(std::get<1>(t));
  }
};

template <class Init, class ArgsTuple, class... Results>
class [[nodiscard]] asio_awaiter : wait_node {
  using yield = asio_yield<Results...>;

 public:
  template <class I, class... A>
  explicit asio_awaiter(I&& init, A&&... args)
      : init_(std::forward<I>(init)), args_(std::forward<A>(args)...) {
    wait_node::cancel_ = &cancel;
  }
  // Movable until awaited (Asio returns the awaitable by value).
  asio_awaiter(asio_awaiter&& o) : init_(std::move(o.init_)), args_(std::move(o.args_)) {
    wait_node::cancel_ = &cancel;
  }

  struct handler {
    asio_awaiter* self;
    using executor_type = boost::asio::io_context::executor_type;
    executor_type get_executor() const noexcept { return self->shard_->io().get_executor(); }
    using cancellation_slot_type = boost::asio::cancellation_slot;
    cancellation_slot_type get_cancellation_slot() const noexcept { return self->signal_.slot(); }
    template <class... A>
    void operator()(A&&... a) {
      asio_awaiter* s = self;
      s->results_.emplace(std::forward<A>(a)...);
      resume_in(s->cell_, s->waiter_);
    }
  };

  bool await_ready() noexcept {
    cell_ = current_cell();
    return cell_ && cell_->unwinding();
  }
  void await_suspend(std::coroutine_handle<> h) {
    shard_ = this_shard();
    TROUPE_ASSERT(shard_ != nullptr, "co_await on use_task outside a shard");
    waiter_ = h;
    if (cell_) cell_->add_wait(this);
    std::apply([this](auto&&... a) { std::move(init_)(handler{this}, std::move(a)...); },
               std::move(args_));
  }
  typename yield::type await_resume() {
    if (shard_ && cell_) cell_->remove_wait(this);
    if (cell_ && cell_->unwinding()) throw unwind{};
    return yield::make(std::move(*results_));
  }

 private:
  static void cancel(wait_node* w) noexcept {
    static_cast<asio_awaiter*>(w)->signal_.emit(boost::asio::cancellation_type::all);
  }

  Init init_;
  ArgsTuple args_;
  std::optional<std::tuple<Results...>> results_;
  boost::asio::cancellation_signal signal_;
  actor_cell* cell_ = nullptr;
  shard* shard_ = nullptr;
  std::coroutine_handle<> waiter_;
};

}  // namespace detail
}  // namespace troupe

template <class R, class... Args>
struct boost::asio::async_result<troupe::use_task_t, R(Args...)> {
  template <class Initiation, class... InitArgs>
  static auto initiate(Initiation&& init, troupe::use_task_t, InitArgs&&... args) {
    return troupe::detail::asio_awaiter<
        std::decay_t<Initiation>, std::tuple<std::decay_t<InitArgs>...>, std::decay_t<Args>...>(
        std::forward<Initiation>(init), std::forward<InitArgs>(args)...);
  }
};
