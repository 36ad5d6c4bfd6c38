// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// actor_cell: the runtime's record of one actor (mailbox, scheduling state,
/// reference count), allocated together with the actor object itself.
/// message: the envelope every tell and ask travels in.

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <string>
#include <troupe/core/detail/work_item.hpp>
#include <troupe/core/error.hpp>
#include <troupe/core/options.hpp>
#include <typeinfo>

namespace troupe {

class actor;
class runtime;

/// Why an actor stopped.
enum class exit_reason : std::uint8_t {
  none = 0,          ///< still running
  normal,            ///< stop() was called
  failure,           ///< a handler threw and the supervisor stopped it
  restart_limit,     ///< a handler threw once more than the restart intensity allows
  linked,            ///< a linked actor stopped abnormally
  parent_stopped,    ///< its parent stopped
  runtime_shutdown,  ///< runtime::stop()
  node_down,         ///< (proxies) the link to the actor's node went down
};

/// True for reasons that propagate over links.
constexpr bool is_abnormal(exit_reason r) noexcept {
  return r == exit_reason::failure || r == exit_reason::restart_limit || r == exit_reason::linked ||
         r == exit_reason::node_down;
}

const char* to_string(exit_reason r) noexcept;

namespace detail {

class shard;
struct actor_cell;
struct cell_extras;

struct message;
struct ask_state_base;

/// Per (actor type, message type): what the runtime can do with an envelope.
struct message_ops {
  /// Runs the handler; called on the target's shard during its turn.
  void (*invoke)(message*, actor_cell*);
  /// Drops the message: an ask is completed with `why`; the envelope is freed.
  void (*discard)(message*, errc why) noexcept;
  // --- for proxies of remote actors; null / 0 when the types have no codec ---
  std::uint32_t wire_type;                           ///< remote_codec<M>::type_id
  void (*encode)(const message*, std::string& out);  ///< the message's payload
  bool is_ask_capable;                               ///< the reply type has a codec too
  /// For an ask: decodes the reply payload and completes the ask; false if
  /// the payload is malformed (the ask then fails with errc::bad_reply).
  bool (*complete)(message*, std::string_view payload) noexcept;
};

/// A message in transit or queued in a mailbox.
struct message : work_item {
  actor_cell* target_ = nullptr;
  const message_ops* ops_ = nullptr;
  /// The ask this message carries, if any (completed by reply, error or drop).
  ask_state_base* ask_base_ = nullptr;
};

/// Where messages to a proxy cell (a local stand-in for a remote actor) go.
/// Called on the proxy's home shard, in send order.
class remote_sink {
 public:
  virtual ~remote_sink() = default;
  virtual void forward(actor_cell* proxy, message* m) noexcept = 0;
  /// A tell made on the proxy's home shard, straight from the caller's value
  /// (no envelope): `encode(value, out)` appends its payload of type
  /// `wire_type`. What forward() would do with an envelope of it, in the
  /// same order; a tell that cannot go out is dropped as forward() drops it.
  virtual void forward_value(actor_cell* proxy, std::uint32_t wire_type,
                             void (*encode)(const void* value, std::string& out),
                             const void* value) noexcept = 0;
};

/// A suspended await inside a handler, registered so stop() can cut it short.
struct wait_node {
  wait_node* prev_ = nullptr;
  wait_node* next_ = nullptr;
  void (*cancel_)(wait_node*) noexcept = nullptr;
};

struct down_sink;

/// Static, per actor type: how the runtime manipulates an actor it only knows
/// by its cell.
struct actor_type_info {
  const char* name;
  std::size_t size;
  std::size_t align;
  void (*destroy)(actor*) noexcept;
  /// Sends a down_msg / exit_msg to an actor of this type; null when the type
  /// has no handler for it.
  void (*send_down)(actor_cell* to, actor_cell* who, exit_reason, std::string what);
  void (*send_exit)(actor_cell* to, actor_cell* who, exit_reason, std::string what);
  bool reentrant;
};

/// The runtime's half of an actor. Fields without "atomic" are only touched by
/// the home shard's thread.
struct actor_cell : work_item {
  enum flag : std::uint8_t {
    scheduled = 1,          // in the run queue
    busy = 2,               // a non-reentrant handler is in flight
    in_turn = 4,            // the shard is inside run_turn for this cell
    stopping = 8,           // stop requested; waiting for in-flight handlers
    restart_pending = 16,   // a restart waits for in-flight handlers
    instance_live = 32,     // the actor object is constructed
    release_deferred = 64,  // stopped while queued or in its turn: the turn releases
  };

  std::atomic<std::uint32_t> refs_{1};  // 1 = the runtime's own, released at stop
  std::atomic<bool> dead_{false};
  std::uint8_t flags_ = 0;
  exit_reason reason_ = exit_reason::none;
  overflow policy_ = overflow::reject;
  std::uint8_t remote_ = 0;  // 1: a proxy of a remote actor (immutable)
  std::uint32_t inflight_ = 0;
  std::uint32_t mailbox_len_ = 0;
  std::uint32_t capacity_ = 0;              // 0 = unbounded
  std::atomic<std::uint32_t> reserved_{0};  // bounded reject mailboxes: queued + in transit
  shard* home_ = nullptr;
  actor* instance_ = nullptr;
  const actor_type_info* type_ = nullptr;
  cell_extras* extras_ = nullptr;  // monitors, links, children, name, restart state
  wait_node* waits_ = nullptr;     // suspended awaits of in-flight handlers
  intrusive_fifo<message> mailbox_;
  actor_cell* live_prev_ = nullptr;  // the home shard's list of live actors
  actor_cell* live_next_ = nullptr;
  std::uint64_t id_ = 0;
  actor_cell* parent_ = nullptr;  // counted; the actor that spawned this one, if any

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) free_cell(this);
  }
  bool alive() const noexcept { return !dead_.load(std::memory_order_acquire); }
  bool has(flag f) const noexcept { return (flags_ & f) != 0; }
  void set(flag f) noexcept { flags_ |= f; }
  void clear(flag f) noexcept { flags_ &= static_cast<std::uint8_t>(~f); }

  static void free_cell(actor_cell* c) noexcept;

  // --- home-shard operations (defined in cell.cpp) ---
  /// Queues a message that reached the home shard; schedules the actor.
  void enqueue(message* m) noexcept;
  /// Runs a coroutine handler until its first suspension (or its end).
  void start_handler(std::coroutine_handle<> h) noexcept { h.resume(); }
  /// Called when a handler (coroutine or plain) has finished.
  void handler_finished() noexcept;
  /// Called when a handler has thrown: supervision first, then handler_finished().
  void handler_failed(std::exception_ptr failure) noexcept;
  /// Stops the actor (once in-flight handlers have unwound).
  void stop(exit_reason why, std::string what = {}) noexcept;
  void on_failure(const std::exception_ptr& e) noexcept;
  void do_restart() noexcept;
  void cancel_waits() noexcept;
  void finish_stop() noexcept;
  void add_wait(wait_node* w) noexcept;
  void remove_wait(wait_node* w) noexcept;
  /// True once stop began: every await inside the actor then unwinds.
  bool unwinding() const noexcept { return has(stopping) || has(restart_pending); }
};

/// Thrown out of an await inside a stopping actor, to unwind its handler.
/// Do not swallow it: every later await throws it again.
struct unwind {};

// Per-thread context, inline so the hot path reads it without a call.
inline thread_local actor_cell* tls_current_cell = nullptr;
inline thread_local shard* tls_this_shard = nullptr;

/// The cell whose handler runs on this thread right now, or null.
inline actor_cell* current_cell() noexcept { return tls_current_cell; }
inline void set_current_cell(actor_cell* c) noexcept { tls_current_cell = c; }

/// The shard whose thread this is (or that a simulated step poses as), or null.
inline shard* this_shard() noexcept { return tls_this_shard; }

/// Resumes a handler's coroutine with its actor as the current cell.
inline void resume_in(actor_cell* c, std::coroutine_handle<> h) noexcept {
  actor_cell* prev = current_cell();
  set_current_cell(c);
  h.resume();
  set_current_cell(prev);
}

/// The general case of send() (shard.hpp): another thread, a bounded mailbox,
/// a dead target.
boost::system::error_code send_slow(message* m) noexcept;

/// Completes a message whose target was found dead, full or stopped: counts it
/// on `count_on` (if any), releases its mailbox reservation (if it held one),
/// fails its ask with `why` and frees it.
void dead_letter(message* m, errc why, shard* count_on, bool reserved) noexcept;

/// Adds one to a counter that only its owning thread writes (no locked RMW).
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

const char* demangled_name(const std::type_info& t);

/// For proxy cells: the remote actor's id on its node, and where messages go.
std::uint64_t proxy_remote_id(const actor_cell* proxy) noexcept;
remote_sink* proxy_sink(const actor_cell* proxy) noexcept;

}  // namespace detail
}  // namespace troupe
