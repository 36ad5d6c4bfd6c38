// SPDX-License-Identifier: BSL-1.0
// The shard loop: inbox, run queue, timers, io poll; spin, then park.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <troupe/config.hpp>
#include <troupe/core/runtime.hpp>

#include "internal.hpp"
#if TROUPE_IO_URING
#include <liburing.h>

#include <boost/asio/detail/io_uring_service.hpp>
#endif

#include <chrono>
#include <memory>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TROUPE_CPU_RELAX() _mm_pause()
#else
#define TROUPE_CPU_RELAX() ((void)0)
#endif

namespace troupe::detail {

void set_this_shard(shard* s) noexcept { tls_this_shard = s; }

void run_queue::grow() {
  std::vector<work_item*> bigger(items_.size() * 2);
  for (std::size_t i = 0; i < size(); ++i) bigger[i] = items_[(head_ + i) & mask_];
  tail_ = size();
  head_ = 0;
  items_.swap(bigger);
  mask_ = items_.size() - 1;
}

struct shard::work_guard {
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> g;
};

shard::shard(runtime& rt, unsigned index)
    : rt_(rt),
      index_(index),
      io_(std::make_unique<boost::asio::io_context>(1)),
      timers_(rt.now_ns()) {
#if TROUPE_IO_URING
  // Asio creates its io_uring lazily; create it now so a host that forbids
  // io_uring is reported at start-up, in one line, with the way out.
  try {
    boost::asio::use_service<boost::asio::detail::io_uring_service>(*io_);
  } catch (const boost::system::system_error& e) {
    throw startup_error("troupe: io_uring is unavailable on this host (" + std::string(e.what()) +
                        "); allow io_uring (kernel.io_uring_disabled=0, seccomp) or rebuild with "
                        "-DTROUPE_IO=epoll");
  }
  ring_ = last_io_uring_created();
#endif
  simulated_ = rt.simulated();
  clock_ns_ = rt.now_ns();
  guard_ = std::make_unique<work_guard>(work_guard{boost::asio::make_work_guard(*io_)});
}

shard::~shard() {
  guard_.reset();
  io_.reset();
}

std::int64_t shard::now_ns() const noexcept { return rt_.now_ns(); }

std::int64_t shard::refresh_clock() noexcept {
  clock_ns_ = rt_.now_ns();
  items_since_clock_ = 0;
  return clock_ns_;
}

namespace {
void bump_size(std::atomic<std::size_t>& v, int d) noexcept {
  v.store(v.load(std::memory_order_relaxed) + static_cast<std::size_t>(d),
          std::memory_order_relaxed);
}
}  // namespace

void shard::link_live(actor_cell* c) noexcept {
  c->live_prev_ = nullptr;
  c->live_next_ = live_head_;
  if (live_head_) live_head_->live_prev_ = c;
  live_head_ = c;
  bump_size(live_count_, +1);
}

mailbox_stats shard::mailboxes() const {
  mailbox_stats m;
  for (const actor_cell* c = live_head_; c; c = c->live_next_) {
    m.queued += c->mailbox_len_;
    if (c->mailbox_len_ > m.deepest) {
      m.deepest = c->mailbox_len_;
      m.deepest_type = c->type_->name;
    }
  }
  return m;
}

void shard::unlink_live(actor_cell* c) noexcept {
  if (c->live_prev_)
    c->live_prev_->live_next_ = c->live_next_;
  else if (live_head_ == c)
    live_head_ = c->live_next_;
  else
    return;  // never linked (stopped before its registration arrived)
  if (c->live_next_) c->live_next_->live_prev_ = c->live_prev_;
  c->live_prev_ = c->live_next_ = nullptr;
  bump_size(live_count_, -1);
}

void shard::stop_all_actors() noexcept {
  shutting_down_ = true;
  // Collect first: stopping unlinks cells from the live list.
  std::vector<actor_addr> all;
  all.reserve(live_count());
  for (actor_cell* c = live_head_; c; c = c->live_next_) all.emplace_back(c);
  for (actor_addr& a : all) a.cell()->stop(exit_reason::runtime_shutdown);
}

bool shard::drain_inbox() {
  if (inbox_.empty_relaxed()) return false;
  work_item* list = inbox_.take_all();
  if (!list) return false;
  while (list) {
    work_item* next = list->next_;
    list->run_(list);
    list = next;
  }
  return true;
}

bool shard::step(std::size_t budget) {
  bool worked = drain_inbox();
  std::size_t n = 0;
  const bool shuffle = rt_.simulated();
  while (n < budget && !runq_.empty()) {
    if (shuffle && runq_.size() > 1) runq_.bring_to_front(rng_() % runq_.size());
    work_item* w = runq_.pop();
    w->run_(w);
    ++n;
  }
  // Reading the clock costs tens of ns here: do it when idle or every 64 items
  // (timers have 1 ms resolution; asks arm deadlines from this cached time).
  items_since_clock_ += n;
  if (n == 0 || items_since_clock_ >= 64 || shuffle) {
    refresh_clock();
    if (timers_.size() != 0 && timers_.expire(clock_ns_) != 0) worked = true;
  }
  if (n == 0 || (++poll_tick_ & 15) == 0) {
    if (io_->poll() != 0) worked = true;
  }
  return worked || n != 0;
}

void shard::wake() noexcept {
  if (sleeping_.exchange(false, std::memory_order_seq_cst)) {
    try {
      boost::asio::post(*io_, [] {});
    } catch (...) {
      // Out of memory while waking: the shard still wakes at its next timer.
    }
  }
}

void shard::request_exit() noexcept {
  exit_.store(true, std::memory_order_seq_cst);
  try {
    boost::asio::post(*io_, [] {});
  } catch (...) {
  }
}

bool shard::io_pending() const noexcept {
#if TROUPE_IO_URING
  // Two loads from the ring the kernel shares with us: a completion waiting,
  // or task work (a socket became ready) that the next poll enters the
  // kernel to run. Posts from other threads arrive as completions too.
  if (ring_)
    return ::io_uring_cq_ready(ring_) != 0 || (__atomic_load_n(ring_->sq.kflags, __ATOMIC_RELAXED) &
                                               (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
#endif
  return false;
}

void shard::park() {
  sleeping_.store(true, std::memory_order_seq_cst);
  if (!inbox_.empty() || exit_.load(std::memory_order_seq_cst)) {
    sleeping_.store(false, std::memory_order_seq_cst);
    return;
  }
  // Parks in run_one(), woken by I/O, a post, or this shard's park timer at
  // the next troupe timer's deadline. Not run_one_for: in Asio 1.26 (Boost
  // 1.81) with io_uring, run_one_for's own timeout is an io_uring timeout
  // whose user_data is a timespec on run_one_for's stack; when it fires after
  // run_one_for returned (seen after the process was stopped and continued:
  // every deadline passes at once), its completion is taken for an
  // operation at that stale stack address and the shard jumps into garbage.
  // A steady_timer's wait is an operation Asio owns.
  if (auto next = timers_.next_deadline_ns()) {
    // One per shard thread (park runs on it alone), gone when the thread
    // ends, before the shard destroys its io_context.
    thread_local std::unique_ptr<boost::asio::steady_timer> park_timer;
    if (!park_timer) park_timer = std::make_unique<boost::asio::steady_timer>(*io_);
    const std::int64_t wait = std::max<std::int64_t>(*next - now_ns(), 0);
    park_timer->expires_after(std::chrono::nanoseconds(wait));  // an earlier wait ends, aborted
    park_timer->async_wait([](const boost::system::error_code&) {});
  }
  io_->run_one();
  sleeping_.store(false, std::memory_order_seq_cst);
  refresh_clock();
  bump(counters_.wakeups);
}

void shard::loop() {
  set_this_shard(this);
  const std::int64_t spin_ns = std::chrono::nanoseconds(rt_.options().spin).count();
  bool shutting_down = false;
  std::int64_t give_up_ns = 0;
  for (;;) {
    if (exit_.load(std::memory_order_relaxed)) {
      if (!shutting_down) {
        shutting_down = true;
        give_up_ns = now_ns() + std::chrono::nanoseconds(std::chrono::seconds(5)).count();
        stop_all_actors();
      }
      if (live_count() == 0 && runq_.empty() && inbox_.empty()) break;
      if (now_ns() > give_up_ns) {
        rt_.log(log_level::warn, "runtime",
                "shard " + std::to_string(index_) + " gave up waiting for " +
                    std::to_string(live_count()) + " actor(s) whose handlers did not unwind");
        break;
      }
    }
    if (step(256)) continue;
    // Idle: spin a short while (a wake-up costs far more than a busy hand-off),
    // watching the inbox and (io_uring) the ring on every turn, and timers
    // and the io_context every 64th. Every 64th turn also yields the CPU: when
    // the peer we wait for (another shard, or the other end of a socket) is
    // queued on this very CPU, spinning would only delay it until we park;
    // with nothing else to run, the yield is one cheap syscall.
    const std::int64_t spin_until = clock_ns_ + spin_ns;
    bool found = false;
    for (unsigned i = 1;; ++i) {
      TROUPE_CPU_RELAX();
      if (!inbox_.empty() || exit_.load(std::memory_order_relaxed)) {
        found = true;
        break;
      }
      if ((i & 63) == 0 || io_pending()) {
        if (step(256)) {
          found = true;
          break;
        }
        if (clock_ns_ >= spin_until) break;
        if ((i & 63) == 0) std::this_thread::yield();
      }
    }
    if (!found) park();
  }
  set_this_shard(nullptr);
}

void shard::start_thread() {
  thread_ = std::thread([this] { loop(); });
}

void shard::join() {
  if (thread_.joinable()) thread_.join();
}

void shard::teardown() noexcept {
  // Runs on the stopping thread after every shard thread has joined, posing as
  // this shard: items still queued are delivered to dead actors (so asks fail
  // and envelopes are freed) instead of leaking.
  set_this_shard(this);
  for (int round = 0; round < 1000 && has_work(); ++round) {
    drain_inbox();
    while (!runq_.empty()) {
      work_item* w = runq_.pop();
      w->run_(w);
    }
  }
  set_this_shard(nullptr);
}

}  // namespace troupe::detail
