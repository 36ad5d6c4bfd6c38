// SPDX-License-Identifier: BSL-1.0
// runtime: shards, spawn bookkeeping, registry, shutdown, simulated mode.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <troupe/core/runtime.hpp>
#include <utility>

#include "internal.hpp"

namespace troupe {

namespace {
// Puts a new cell on its home shard's live list: directly on that shard,
// through its inbox (ordered before any message sent after spawn) elsewhere.
void register_live(detail::actor_cell* c) {
  if (detail::this_shard() == c->home_) {
    c->home_->link_live(c);
  } else {
    detail::post_control(detail::control::live, c, c, exit_reason::none, {});
  }
}
}  // namespace

namespace {
std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
std::uint64_t splitmix(std::uint64_t& s) noexcept {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

runtime::runtime(runtime_options opts) : opts_(std::move(opts)) {
  if (opts_.shards == 0) opts_.shards = std::max(1u, std::thread::hardware_concurrency());
  if (opts_.shards > 1024) throw std::invalid_argument("troupe: at most 1024 shards");
  start_ns_ = steady_ns();
  sim_rng_ = opts_.seed;
  shards_.reserve(opts_.shards);
  for (unsigned i = 0; i < opts_.shards; ++i) {
    shards_.push_back(std::make_unique<detail::shard>(*this, i));
    shards_.back()->seed(splitmix(sim_rng_));
  }
  if (!opts_.simulated) {
    for (auto& s : shards_) s->start_thread();
  }
}

runtime::~runtime() { stop(); }

std::int64_t runtime::now_ns() const noexcept {
  if (opts_.simulated) return manual_ns_.load(std::memory_order_relaxed);
  return steady_ns() - start_ns_;
}

std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
    case log_level::off:
      return "off";
  }
  return "?";
}

std::optional<log_level> parse_log_level(std::string_view s) noexcept {
  for (log_level l : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                      log_level::error, log_level::off})
    if (s == to_string(l)) return l;
  if (s == "warning") return log_level::warn;
  return std::nullopt;
}

void runtime::log(log_level level, std::string_view component, std::string_view message) const {
  if (!log_enabled(level)) return;
  log_record r{level, component, message, 0};
  const std::int64_t window = std::chrono::nanoseconds(opts_.log_repeat_window).count();
  if (level >= log_level::info && window > 0) {
    // One entry per distinct line; the table is pruned of lapsed entries when
    // it grows, and past its cap new lines pass unlimited (a flood of
    // distinct lines is bounded by whoever writes them).
    constexpr std::size_t cap = 4096;
    const std::int64_t now = now_ns();
    std::string key;
    key.reserve(component.size() + 1 + message.size());
    key.append(component).append(1, '\0').append(message);
    std::lock_guard lock(log_mutex_);
    if (log_repeats_.size() >= cap)
      std::erase_if(log_repeats_,
                    [&](const auto& kv) { return now - kv.second.passed_ns >= window; });
    auto it = log_repeats_.find(key);
    if (it != log_repeats_.end()) {
      if (now - it->second.passed_ns < window) {
        ++it->second.held_back;
        return;
      }
      r.suppressed = std::exchange(it->second.held_back, 0);
      it->second.passed_ns = now;
    } else if (log_repeats_.size() < cap) {
      log_repeats_.emplace(std::move(key), log_repeat{now, 0});
    }
  }
  if (opts_.log) {
    opts_.log(r);
    return;
  }
  std::string line = "troupe ";
  line.append(to_string(level)).append(" ").append(component).append(": ").append(message);
  if (r.suppressed != 0)
    line += " (and " + std::to_string(r.suppressed) + " more like it held back)";
  line += '\n';
  std::cerr << line;
}

boost::asio::io_context& runtime::io(unsigned shard) {
  TROUPE_ASSERT(shard < shards_.size(), "no such shard");
  return shards_[shard]->io();
}

boost::asio::io_context& runtime::this_io() {
  detail::shard* s = detail::this_shard();
  // An actor's constructor runs on the spawning thread: give it its home shard's io.
  if (detail::actor_cell* c = detail::constructing_cell()) s = c->home_;
  TROUPE_ASSERT(s != nullptr, "runtime::this_io() called outside a shard");
  return s->io();
}

mailbox_stats runtime::shard_mailboxes() {
  detail::shard* s = detail::this_shard();
  TROUPE_ASSERT(s != nullptr, "runtime::shard_mailboxes() called outside a shard");
  return s->mailboxes();
}

detail::actor_cell* runtime::allocate_cell(const detail::actor_type_info* type, std::size_t,
                                           std::size_t align, const spawn_options& opts) {
  TROUPE_ASSERT(align <= alignof(std::max_align_t), "over-aligned actor types are not supported");
  if (stopping()) throw std::system_error(make_error_code(errc::runtime_stopped), "troupe: spawn");
  detail::actor_cell* parent = detail::current_cell();
  unsigned home;
  if (opts.shard >= 0) {
    if (static_cast<unsigned>(opts.shard) >= shards_.size())
      throw std::invalid_argument("troupe: spawn on shard " + std::to_string(opts.shard) +
                                  ", but the runtime has " + std::to_string(shards_.size()));
    home = static_cast<unsigned>(opts.shard);
  } else if (detail::shard* here = detail::this_shard(); here && &here->rt() == this) {
    home = here->index();
  } else {
    home = parent ? parent->home_->index() : 0;
  }
  void* mem = detail::pool_allocate(detail::cell_block_size(type));
  auto* c = ::new (mem) detail::actor_cell();
  c->type_ = type;
  c->home_ = shards_[home].get();
  c->run_ = &detail::run_turn;
  c->capacity_ = opts.mailbox.capacity;
  c->policy_ = opts.mailbox.policy;
  c->id_ = (static_cast<std::uint64_t>(home) << 48) | c->home_->next_id();
  return c;
}

void runtime::abandon_cell(detail::actor_cell* c) noexcept {
  c->dead_.store(true, std::memory_order_relaxed);
  c->release();
}

void runtime::finish_spawn(detail::actor_cell* c, spawn_options& opts, detail::actor_cell* parent,
                           std::unique_ptr<detail::restart_factory> factory) {
  if (opts.supervise.directive != on_failure::stop || factory || !opts.name.empty()) {
    detail::cell_extras& x = detail::extras_of(c);
    x.sup = opts.supervise;
    x.factory = std::move(factory);
  }
  if (!opts.name.empty()) {
    actor_addr a{c};
    if (auto ec = register_name(opts.name, a)) {
      c->type_->destroy(c->instance_);
      c->clear(detail::actor_cell::instance_live);
      c->extras_->factory.reset();
      c->dead_.store(true, std::memory_order_release);
      a = actor_addr{};
      c->release();  // the runtime's reference; the caller's ref goes with the exception
      throw std::system_error(ec, "troupe: spawn with name '" + opts.name + "'");
    }
    c->extras_->name = opts.name;
  }
  if (parent) {
    parent->add_ref();
    c->parent_ = parent;
    detail::extras_of(parent).children.emplace_back(c);
  }
  register_live(c);
}

actor_addr runtime::make_proxy_addr(const detail::actor_type_info* type, unsigned shard,
                                    detail::remote_sink* sink, std::uint64_t remote_id) {
  TROUPE_ASSERT(sink != nullptr, "a proxy needs a sink");
  spawn_options opts;
  opts.shard = static_cast<int>(shard);
  detail::actor_cell* c = allocate_cell(type, type->size, type->align, opts);
  c->remote_ = 1;
  detail::cell_extras& x = detail::extras_of(c);
  x.sink = sink;
  x.remote_id = remote_id;
  actor_addr a{c};
  register_live(c);
  return a;
}

// --- registry ---

boost::system::error_code runtime::register_name(const std::string& name, const actor_addr& addr) {
  if (name.empty()) throw std::invalid_argument("troupe: register_name with an empty name");
  std::lock_guard lock(registry_mutex_);
  auto [it, inserted] = registry_.try_emplace(name, addr);
  if (!inserted) {
    if (it->second.alive()) return make_error_code(errc::name_taken);
    it->second = addr;  // the previous holder stopped; its entry is stale
  }
  return {};
}

void runtime::unregister_name(const std::string& name) {
  std::lock_guard lock(registry_mutex_);
  registry_.erase(name);
}

void runtime::unregister_if(const std::string& name, detail::actor_cell* c) {
  actor_addr gone;  // released outside the lock
  std::lock_guard lock(registry_mutex_);
  auto it = registry_.find(name);
  if (it != registry_.end() && it->second.cell() == c) {
    gone = std::move(it->second);
    registry_.erase(it);
  }
}

actor_addr runtime::lookup_addr(const std::string& name) const {
  std::lock_guard lock(registry_mutex_);
  auto it = registry_.find(name);
  if (it == registry_.end() || !it->second.alive()) return {};
  return it->second;
}

// --- stop ---

void runtime::stop() {
  TROUPE_ASSERT(detail::this_shard() == nullptr || &detail::this_shard()->rt() != this,
                "runtime::stop() called from one of its own shards (it joins them)");
  std::lock_guard lock(stop_mutex_);
  if (stopped_) return;
  stopping_.store(true, std::memory_order_release);
  if (opts_.simulated) {
    for (auto& s : shards_) {
      detail::set_this_shard(s.get());
      s->stop_all_actors();
      detail::set_this_shard(nullptr);
    }
    run_until_idle();
  } else {
    for (auto& s : shards_) s->request_exit();
    for (auto& s : shards_) s->join();
  }
  // Items other shards queued after a shard left its loop.
  for (int round = 0; round < 16; ++round) {
    bool any = false;
    for (auto& s : shards_) {
      if (s->has_work()) {
        any = true;
        s->teardown();
      }
    }
    if (!any) break;
  }
  {
    std::unordered_map<std::string, actor_addr> names;
    std::lock_guard rlock(registry_mutex_);
    names.swap(registry_);
  }
  stopped_ = true;
}

runtime_stats runtime::shard_stats(unsigned shard) const {
  runtime_stats s;
  if (shard >= shards_.size()) return s;
  const auto& sh = shards_[shard];
  auto& c = sh->counters();
  s.messages = c.messages.load(std::memory_order_relaxed);
  s.dead_letters = c.dead_letters.load(std::memory_order_relaxed);
  s.dropped = c.dropped.load(std::memory_order_relaxed);
  s.ask_timeouts = c.ask_timeouts.load(std::memory_order_relaxed);
  s.wakeups = c.wakeups.load(std::memory_order_relaxed);
  s.live_actors = sh->live_count();
  s.local_asks = c.local_asks.snapshot();
  s.remote_asks = c.remote_asks.snapshot();
  return s;
}

runtime_stats runtime::stats() const {
  runtime_stats s;
  for (unsigned i = 0; i < shards_.size(); ++i) {
    runtime_stats one = shard_stats(i);
    s.messages += one.messages;
    s.dead_letters += one.dead_letters;
    s.dropped += one.dropped;
    s.ask_timeouts += one.ask_timeouts;
    s.wakeups += one.wakeups;
    s.live_actors += one.live_actors;
    s.local_asks += one.local_asks;
    s.remote_asks += one.remote_asks;
  }
  return s;
}

// --- blocking asks and simulated mode ---

void runtime::wait_blocking(detail::ask_state_base* st, detail::blocking_waiter& w,
                            std::chrono::nanoseconds timeout) {
  if (opts_.simulated) {
    const std::int64_t deadline = now_ns() + timeout.count();
    for (;;) {
      run_until_idle();
      if (st->done_.load(std::memory_order_acquire)) return;
      std::int64_t next = deadline;
      for (auto& s : shards_)
        if (auto d = s->timers().next_deadline_ns()) next = std::min(next, *d);
      if (next >= deadline) {
        manual_ns_.store(deadline, std::memory_order_relaxed);
        run_until_idle();
        if (st->claim()) {
          st->error_ = errc::ask_timeout;
          shards_[0]->counters().ask_timeouts.fetch_add(1, std::memory_order_relaxed);
        }
        return;
      }
      manual_ns_.store(std::max(next, now_ns()), std::memory_order_relaxed);
    }
  }
  std::unique_lock lock(w.mutex);
  if (!w.cv.wait_for(lock, timeout, [&] { return w.ready; })) {
    if (st->claim()) {
      st->error_ = errc::ask_timeout;
      shards_[0]->counters().ask_timeouts.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    w.cv.wait(lock, [&] { return w.ready; });  // the winner is about to signal
  }
}

bool runtime::sim_step() {
  // Pick, by the seed, one shard that has work and give it one step.
  std::size_t ready[1024];
  std::size_t n = 0;
  for (std::size_t i = 0; i < shards_.size(); ++i)
    if (shards_[i]->has_work()) ready[n++] = i;
  if (n == 0) {
    bool any = false;
    for (auto& s : shards_) {
      detail::set_this_shard(s.get());
      any = s->step(1) || any;  // timers and io
      detail::set_this_shard(nullptr);
    }
    return any;
  }
  detail::shard& s = *shards_[ready[splitmix(sim_rng_) % n]];
  detail::set_this_shard(&s);
  s.step(1);
  detail::set_this_shard(nullptr);
  return true;
}

void runtime::run_until_idle() {
  TROUPE_ASSERT(opts_.simulated, "run_until_idle() is for simulated runtimes");
  TROUPE_ASSERT(detail::this_shard() == nullptr, "run_until_idle() called from a handler");
  while (sim_step()) {
  }
}

void runtime::advance(std::chrono::nanoseconds d) {
  TROUPE_ASSERT(opts_.simulated, "advance() is for simulated runtimes");
  const std::int64_t target = now_ns() + d.count();
  run_until_idle();
  for (;;) {
    std::int64_t next = target;
    for (auto& s : shards_)
      if (auto t = s->timers().next_deadline_ns()) next = std::min(next, *t);
    manual_ns_.store(std::max(next, now_ns()), std::memory_order_relaxed);
    run_until_idle();
    if (next >= target) break;
  }
}

}  // namespace troupe
