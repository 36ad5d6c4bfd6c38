// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// shard: one thread, one io_context, one run queue. Everything an actor does
/// happens on its home shard's thread.
///
/// A shard's loop: take the cross-shard inbox, run ready work items (actor
/// turns and resumptions), fire due timers, poll the io_context without
/// blocking; when nothing is left, spin for the spin window, then park in the
/// io_context until an I/O completion, a timer or another shard wakes it.

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <troupe/core/detail/cell.hpp>
#include <troupe/core/detail/timer_wheel.hpp>
#include <troupe/core/detail/work_item.hpp>
#include <troupe/core/histogram.hpp>
#include <vector>

namespace boost::asio {
class io_context;
}
struct io_uring;  // liburing's ring (io_uring builds)

namespace troupe {
class runtime;
/// The mailboxes of one shard's actors at one moment (see runtime::shard_mailboxes).
struct mailbox_stats {
  std::uint64_t queued = 0;   ///< messages waiting in all of them
  std::uint32_t deepest = 0;  ///< the longest one
  std::string deepest_type;   ///< the actor type with the longest one (empty if all are empty)
};

}  // namespace troupe

namespace troupe::detail {

/// A growable ring of work items: the run queue.
class run_queue {
 public:
  run_queue() : items_(1024), mask_(1023) {}
  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }
  void push(work_item* w) {
    if (tail_ - head_ == items_.size()) grow();
    items_[tail_++ & mask_] = w;
  }
  work_item* pop() noexcept { return items_[head_++ & mask_]; }
  /// Moves the item at offset k (from the head) to the head; for seeded order.
  void bring_to_front(std::size_t k) noexcept {
    std::swap(items_[head_ & mask_], items_[(head_ + k) & mask_]);
  }

 private:
  void grow();
  std::vector<work_item*> items_;
  std::size_t mask_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

struct shard_counters {
  std::atomic<std::uint64_t> messages{0};  // handler invocations
  std::atomic<std::uint64_t> wakeups{0};   // parks that ended
  std::atomic<std::uint64_t> dead_letters{0};
  std::atomic<std::uint64_t> dropped{0};  // evicted by drop_oldest mailboxes
  std::atomic<std::uint64_t> ask_timeouts{0};
  // Asks awaited in handlers on this shard and answered: sent to a local
  // actor, or to a remote one (a proxy, or routed by key).
  shard_histogram local_asks, remote_asks;
};

class shard {
 public:
  shard(runtime& rt, unsigned index);
  ~shard();
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;

  runtime& rt() noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }
  boost::asio::io_context& io() noexcept { return *io_; }
  timer_wheel& timers() noexcept { return timers_; }
  std::int64_t now_ns() const noexcept;
  /// The clock as last read by this shard's loop (at most ~64 work items old).
  std::int64_t cached_now_ns() const noexcept { return simulated_ ? now_ns() : clock_ns_; }
  std::int64_t refresh_clock() noexcept;
  shard_counters& counters() noexcept { return counters_; }

  /// Queues a ready work item. Only on this shard's thread.
  void schedule(work_item* w) {
    TROUPE_ASSERT(this_shard() == this, "schedule() called off the shard's thread");
    runq_.push(w);
  }
  /// Queues a work item from any thread; wakes the shard if it is parked.
  void post(work_item* w) noexcept {
    inbox_.push(w);
    if (sleeping_.load(std::memory_order_seq_cst)) wake();
  }
  /// schedule() on this shard's thread, post() elsewhere.
  void submit(work_item* w) {
    if (this_shard() == this)
      schedule(w);
    else
      post(w);
  }

  /// Schedules the actor's turn unless it is already queued.
  void schedule_cell(actor_cell* c) {
    if (!c->has(actor_cell::scheduled)) {
      c->set(actor_cell::scheduled);
      schedule(c);
    }
  }

  void link_live(actor_cell* c) noexcept;
  void unlink_live(actor_cell* c) noexcept;
  /// Live actors homed here; readable from any thread (a snapshot).
  std::size_t live_count() const noexcept { return live_count_.load(std::memory_order_relaxed); }
  /// The live actors' mailboxes. Shard thread only.
  mailbox_stats mailboxes() const;

  // --- the loop ---
  void start_thread();
  void join();
  /// One pass: inbox, run queue (bounded), timers, io poll. True if it did anything.
  bool step(std::size_t budget);
  /// Asks the thread to leave its loop once shutdown work is done.
  void request_exit() noexcept;
  /// Stops every live actor on this shard (runtime shutdown). Shard thread only.
  void stop_all_actors() noexcept;
  /// Destroys what a forced shutdown left: frames of handlers that never
  /// resumed, inbox items. After the thread has joined.
  void teardown() noexcept;
  /// True once stop_all_actors() ran: actors registered later stop at once.
  bool shutting_down() const noexcept { return shutting_down_; }
  bool has_work() const noexcept { return !runq_.empty() || !inbox_.empty(); }
  void seed(std::uint64_t s) { rng_.seed(s); }
  std::uint64_t next_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void loop();
  void wake() noexcept;
  bool drain_inbox();
  void park();
  bool io_pending() const noexcept;

  runtime& rt_;
  unsigned index_;
  std::unique_ptr<boost::asio::io_context> io_;
  ::io_uring* ring_ = nullptr;  // the io_context's ring, watched while spinning; null on epoll
  struct work_guard;
  std::unique_ptr<work_guard> guard_;
  run_queue runq_;
  mpsc_inbox inbox_;
  alignas(64) std::atomic<bool> sleeping_{false};
  std::atomic<bool> exit_{false};
  timer_wheel timers_;
  actor_cell* live_head_ = nullptr;
  std::atomic<std::size_t> live_count_{0};  // written by the shard only
  bool shutting_down_ = false;
  shard_counters counters_;
  std::thread thread_;
  std::mt19937_64 rng_;
  std::uint64_t poll_tick_ = 0;
  std::int64_t clock_ns_ = 0;
  bool simulated_ = false;
  std::size_t items_since_clock_ = 0;
  std::atomic<std::uint64_t> next_id_{1};
};

/// Delivers m to its target from any thread: into the mailbox when called on
/// the target's home shard, through the home shard's inbox otherwise.
/// Returns an error (and has discarded m) when the target is dead or full.
/// The common case, an unbounded mailbox on this very shard, is inlined.
inline boost::system::error_code send(message* m) noexcept {
  actor_cell* c = m->target_;
  if (c->home_ == this_shard() && (c->capacity_ | c->remote_) == 0 && c->alive()) {
    c->mailbox_.push(m);
    ++c->mailbox_len_;
    constexpr std::uint8_t hold = actor_cell::scheduled | actor_cell::busy | actor_cell::in_turn |
                                  actor_cell::stopping | actor_cell::restart_pending;
    if ((c->flags_ & hold) == 0) {
      c->flags_ |= actor_cell::scheduled;
      c->home_->schedule(c);
    }
    return {};
  }
  return send_slow(m);
}

}  // namespace troupe::detail
