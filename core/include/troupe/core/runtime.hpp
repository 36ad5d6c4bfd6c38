// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// runtime: owns the shards, spawns actors, keeps the name registry.
///
/// A runtime starts one thread per shard at construction (none in simulated
/// mode) and stops them in stop() or its destructor. Shutdown is orderly: every
/// actor is stopped, handlers suspended mid-way unwind at their await, queued
/// asks fail with actor_died, and the threads join.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <troupe/core/actor.hpp>
#include <troupe/core/actor_ref.hpp>
#include <troupe/core/detail/shard.hpp>
#include <troupe/core/options.hpp>
#include <tuple>
#include <typeinfo>
#include <unordered_map>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace troupe {

namespace detail {
actor_cell* constructing_cell() noexcept;
void set_constructing_cell(actor_cell* c) noexcept;
/// Where the actor object lives: right after its cell, in the same block.
inline void* storage_of(actor_cell* c) noexcept {
  std::size_t off = (sizeof(actor_cell) + c->type_->align - 1) / c->type_->align * c->type_->align;
  return reinterpret_cast<char*>(c) + off;
}
struct restart_factory {
  virtual ~restart_factory() = default;
  virtual void construct(actor_cell* c) = 0;
};
}  // namespace detail

/// Counters summed over all shards.
struct runtime_stats {
  std::uint64_t messages = 0;
  std::uint64_t dead_letters = 0;
  std::uint64_t dropped = 0;
  std::uint64_t ask_timeouts = 0;
  std::uint64_t wakeups = 0;
  std::size_t live_actors = 0;
  /// Asks awaited in handlers and answered (a reply, or the handler's error),
  /// from send to resumption, on the shard's clock (refreshed every 64 work
  /// items or when idle: tens of microseconds of resolution). To a local
  /// actor, or to a remote one (a proxy, or routed by key). ask_sync is not
  /// counted.
  latency_histogram local_asks, remote_asks;
};

class runtime {
 public:
  /// Starts the shards. Throws startup_error with one clear line when a shard's
  /// io_context cannot start (e.g. io_uring forbidden: it names TROUPE_IO=epoll).
  explicit runtime(runtime_options opts = {});
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Spawns an actor of type T constructed from args, on the calling shard
  /// (shard 0 from outside the runtime). Callable from any thread.
  template <class T, class... Args>
  requires(!std::is_same_v<std::decay_t<Args>, spawn_options> &&
           ...) actor_ref<T> spawn(Args&&... args) {
    return spawn_impl<T>(spawn_options{}, detail::current_cell(), std::forward<Args>(args)...);
  }
  template <class T, class... Args>
  actor_ref<T> spawn(spawn_options opts, Args&&... args) {
    return spawn_impl<T>(std::move(opts), detail::current_cell(), std::forward<Args>(args)...);
  }

  /// Asks from a thread outside the runtime and blocks for the reply (in
  /// simulated mode: runs the scheduler, and the manual clock, until it comes).
  template <class A, class M>
  result<detail::reply_t<A, std::decay_t<M>>> ask_sync(const actor_ref<A>& to, M&& m,
                                                       std::chrono::nanoseconds timeout);

  /// Stops every actor and joins the shards. Idempotent; called by the destructor.
  void stop();
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  unsigned shard_count() const noexcept { return static_cast<unsigned>(shards_.size()); }
  /// The io_context of shard i: Asio objects used inside handlers of actors on
  /// shard i belong there.
  boost::asio::io_context& io(unsigned shard);
  /// The io_context of the calling shard — inside an actor's constructor, of
  /// the shard the actor is being spawned on.
  static boost::asio::io_context& this_io();
  /// Inside a handler: the mailboxes of the actors homed on the calling
  /// shard (a walk over them, for metrics: ask an actor on each shard).
  static mailbox_stats shard_mailboxes();

  // --- registry ---
  /// Registers addr under name; errc::name_taken if the name is in use.
  boost::system::error_code register_name(const std::string& name, const actor_addr& addr);
  void unregister_name(const std::string& name);
  /// Looks a name up; name_not_found, or wrong_type when the actor is no T.
  template <class T>
  result<actor_ref<T>> lookup(const std::string& name) const {
    actor_addr a = lookup_addr(name);
    if (!a) return failure<actor_ref<T>>(errc::name_not_found);
    if (a.cell()->type_ != &detail::type_info_for<T>::value)
      return failure<actor_ref<T>>(errc::wrong_type);
    return actor_ref<T>{std::move(a)};
  }
  actor_addr lookup_addr(const std::string& name) const;

  // --- simulated mode ---
  bool simulated() const noexcept { return opts_.simulated; }
  /// Runs ready work until none is left (simulated mode only).
  void run_until_idle();
  /// Moves the manual clock forward, firing due timers (simulated mode only).
  void advance(std::chrono::nanoseconds d);
  /// Nanoseconds on the runtime's clock (steady, or the manual clock).
  std::int64_t now_ns() const noexcept;
  std::uint64_t seed() const noexcept { return opts_.seed; }

  runtime_stats stats() const;
  /// The same counters for one shard (live_actors: the actors living there).
  runtime_stats shard_stats(unsigned shard) const;
  /// Logs a record (log.hpp): dropped below runtime_options::min_log_level,
  /// rate-limited when repeated, then handed to runtime_options::log.
  /// Callable from any thread.
  void log(log_level level, std::string_view component, std::string_view message) const;
  /// An application's line: info, component "app".
  void log(std::string_view line) const { log(log_level::info, "app", line); }
  /// Whether a record at this level would be kept: test before building a
  /// costly message.
  bool log_enabled(log_level level) const noexcept {
    return level >= opts_.min_log_level && level != log_level::off;
  }
  const runtime_options& options() const noexcept { return opts_; }

  detail::shard& shard_at(unsigned i) noexcept { return *shards_[i]; }

  /// For transports: a local stand-in for actor `remote_id` on another node.
  /// Messages sent to it are handed, on `shard`, to `sink` in send order; it
  /// stops (monitors fire) when the transport stops it. Messages and replies
  /// need a remote_codec, or the send fails with errc::not_serializable.
  template <class T>
  actor_ref<T> make_proxy(unsigned shard, detail::remote_sink* sink, std::uint64_t remote_id) {
    return actor_ref<T>{make_proxy_addr(&detail::type_info_for<T>::value, shard, sink, remote_id)};
  }
  actor_addr make_proxy_addr(const detail::actor_type_info* type, unsigned shard,
                             detail::remote_sink* sink, std::uint64_t remote_id);

 private:
  friend class actor;
  template <class T, class... Args>
  actor_ref<T> spawn_impl(spawn_options opts, detail::actor_cell* parent, Args&&... args);
  detail::actor_cell* allocate_cell(const detail::actor_type_info* type, std::size_t bytes,
                                    std::size_t align, const spawn_options& opts);
  void abandon_cell(detail::actor_cell* c) noexcept;
  friend struct detail::actor_cell;
  void unregister_if(const std::string& name, detail::actor_cell* c);
  void finish_spawn(detail::actor_cell* c, spawn_options& opts, detail::actor_cell* parent,
                    std::unique_ptr<detail::restart_factory> factory);
  void wait_blocking(detail::ask_state_base* st, detail::blocking_waiter& w,
                     std::chrono::nanoseconds timeout);
  bool sim_step();

  runtime_options opts_;
  std::vector<std::unique_ptr<detail::shard>> shards_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  std::mutex stop_mutex_;
  std::int64_t start_ns_ = 0;
  std::atomic<std::int64_t> manual_ns_{0};
  mutable std::mutex registry_mutex_;
  std::unordered_map<std::string, actor_addr> registry_;
  std::uint64_t sim_rng_ = 0;
  struct log_repeat {
    std::int64_t passed_ns = 0;   // when a record with this key last passed
    std::uint64_t held_back = 0;  // held back since
  };
  mutable std::mutex log_mutex_;
  mutable std::unordered_map<std::string, log_repeat> log_repeats_;
};

// ---------------------------------------------------------------------------
// Template bodies.

namespace detail {
template <class T, class Tuple>
struct restart_factory_for final : restart_factory {
  Tuple args;
  explicit restart_factory_for(Tuple t) : args(std::move(t)) {}
  void construct(actor_cell* c) override {
    void* where = storage_of(c);
    std::apply([&](const auto&... a) { c->instance_ = ::new (where) T(a...); }, args);
  }
};
}  // namespace detail

template <class T, class... Args>
actor_ref<T> runtime::spawn_impl(spawn_options opts, detail::actor_cell* parent, Args&&... args) {
  static_assert(std::is_base_of_v<actor, T>, "troupe: actor types derive from troupe::actor");
  const detail::actor_type_info* type = &detail::type_info_for<T>::value;
  detail::actor_cell* c = allocate_cell(type, sizeof(T), alignof(T), opts);
  std::unique_ptr<detail::restart_factory> factory;
  if (opts.supervise.directive == on_failure::restart) {
    if constexpr ((std::is_copy_constructible_v<std::decay_t<Args>> && ...)) {
      using tuple_t = std::tuple<std::decay_t<Args>...>;
      factory = std::make_unique<detail::restart_factory_for<T, tuple_t>>(tuple_t(args...));
    } else {
      abandon_cell(c);
      throw std::invalid_argument(
          "troupe: on_failure::restart needs copyable constructor arguments");
    }
  }
  detail::actor_cell* outer = detail::constructing_cell();
  detail::set_constructing_cell(c);
  try {
    c->instance_ = ::new (detail::storage_of(c)) T(std::forward<Args>(args)...);
    c->set(detail::actor_cell::instance_live);
  } catch (...) {
    detail::set_constructing_cell(outer);
    abandon_cell(c);
    throw;
  }
  detail::set_constructing_cell(outer);
  actor_ref<T> ref{actor_addr{c}};
  finish_spawn(c, opts, parent, std::move(factory));
  return ref;
}

template <class A, class M>
result<detail::reply_t<A, std::decay_t<M>>> runtime::ask_sync(const actor_ref<A>& to, M&& m,
                                                              std::chrono::nanoseconds timeout) {
  using msg_t = std::decay_t<M>;
  using reply_type = detail::reply_t<A, msg_t>;
  static_assert(detail::handles<A, msg_t>,
                "troupe: this actor type has no handle() for the message type");
  TROUPE_ASSERT(detail::this_shard() == nullptr,
                "ask_sync() called on a shard thread: co_await ask() instead");
  if (stopping()) return failure<reply_type>(errc::runtime_stopped);
  if (!to.alive()) return failure<reply_type>(errc::actor_dead);
  detail::blocking_waiter w;
  auto* st = new detail::ask_state<reply_type>();
  st->blocking_ = &w;
  auto* e = new detail::envelope<A, msg_t>(to.addr().cell(), std::forward<M>(m));
  e->ask_base_ = st;
  (void)detail::send(e);
  wait_blocking(st, w, timeout);
  result<reply_type> r = st->take();
  st->release();
  return r;
}

template <class T, class... Args>
requires(!std::is_same_v<std::decay_t<Args>, spawn_options> &&
         ...) actor_ref<T> actor::spawn(Args&&... args) {
  return system().template spawn_impl<T>(spawn_options{}, cell_, std::forward<Args>(args)...);
}
template <class T, class... Args>
actor_ref<T> actor::spawn(spawn_options opts, Args&&... args) {
  return system().template spawn_impl<T>(std::move(opts), cell_, std::forward<Args>(args)...);
}

}  // namespace troupe
