// SPDX-License-Identifier: BSL-1.0
// The lock-manager (leases, fencing tokens, FIFO waiters, lock-delay) and its
// client (routing by lock name, guards that renew and release).

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <troupe/actors/locks.hpp>

namespace troupe::actors {

namespace {
class lock_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "troupe.lock"; }
  std::string message(int ev) const override {
    switch (static_cast<lock_errc>(ev)) {
      case lock_errc::timeout:
        return "the lock was not free within the wait";
      case lock_errc::busy:
        return "the lock is held (try-lock)";
      case lock_errc::wrong_token:
        return "the token is not the holder's current token (stale or foreign)";
      case lock_errc::not_holder:
        return "the owner does not hold the lock";
      case lock_errc::expired:
        return "the lease had expired; the lock was released";
      case lock_errc::bad_ttl:
        return "the lease TTL must be positive";
      case lock_errc::ttl_too_long:
        return "the lease TTL exceeds the configured maximum";
      case lock_errc::bad_wait:
        return "the wait must not be negative nor above the configured maximum";
      case lock_errc::empty_name:
        return "the lock name is empty";
      case lock_errc::name_too_long:
        return "the lock name exceeds the configured maximum length";
      case lock_errc::mode_mismatch:
        return "the owner holds the lock in the other mode";
      case lock_errc::not_owner:
        return "this node does not serve the lock's slot (the ring is changing; retry)";
      case lock_errc::revoked:
        return "the lock was revoked: its slot moved or its holder's node went down";
      case lock_errc::too_many_waiters:
        return "too many requests are waiting for the lock (or for this node's locks); retry "
               "later";
      case lock_errc::no_majority:
        return "not in the majority: this node has not heard from more than half of the "
               "cluster within its failure window, so it grants and renews no lock";
    }
    return "unknown lock error";
  }
};

// Tokens: the slot's epoch (milliseconds since 2025-01-01 on the wall clock,
// 40 bits: until 2059) above a 24-bit grant counter.
constexpr std::uint64_t token_epoch_base_ms = 1'735'689'600'000ull;  // 2025-01-01T00:00:00Z
constexpr unsigned token_seq_bits = 24;
constexpr std::uint64_t token_seq_max = (1ull << token_seq_bits) - 1;

std::uint64_t wall_epoch_ms(std::chrono::nanoseconds ahead) {
  const auto now = std::chrono::system_clock::now() + ahead;
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  return ms > token_epoch_base_ms ? ms - token_epoch_base_ms : 1;
}

lock_reply reply_error(lock_errc e) { return lock_reply{static_cast<std::uint32_t>(e), 0, 0, 0}; }
}  // namespace

const boost::system::error_category& lock_category() noexcept {
  static const lock_category_impl c;
  return c;
}

std::uint32_t lock_slot(std::string_view name, std::uint32_t slots) noexcept {
  return static_cast<std::uint32_t>(XXH3_64bits(name.data(), name.size()) % slots);
}

std::string lock_slot_key(std::uint32_t slot) { return "troupe.locks/" + std::to_string(slot); }

// ---------------------------------------------------------------------------
// The manager.

struct lock_manager::waiter {
  std::string owner, owner_node;
  lock_mode mode;
  std::int64_t ttl_ns;
  troupe::event ready;
  lock_reply result;  // set by whoever sets `ready`
  std::list<waiter*>::iterator pos;
};

lock_manager::lock_manager(std::string node_name, lock_options o,
                           std::shared_ptr<const net::quorum_view> quorum)
    : node_(std::move(node_name)), quorum_(std::move(quorum)), opts_(std::move(o)) {
  if (quorum_) quorum_losses_ = quorum_->losses();
  if (opts_.slots == 0) throw std::invalid_argument("troupe: lock_options::slots must be > 0");
  if (opts_.max_ttl.count() <= 0)
    throw std::invalid_argument("troupe: lock_options::max_ttl must be positive");
  if (opts_.lock_delay.count() < 0) opts_.lock_delay = opts_.max_ttl;
  slots_.resize(opts_.slots);
}

// The shard's cached clock (refreshed every few hand-offs; it lags by
// microseconds at most): a lagging "now" only makes expiry and the end of
// the lock-delay later, never earlier.
std::int64_t lock_manager::now_ns() const {
  troupe::detail::shard* s = troupe::detail::this_shard();
  return s ? s->cached_now_ns() : system().now_ns();
}

boost::system::error_code lock_manager::check(std::string_view name, std::int64_t ttl_ms) const {
  if (name.empty()) return lock_errc::empty_name;
  if (name.size() > opts_.max_name) return lock_errc::name_too_long;
  if (ttl_ms <= 0) return lock_errc::bad_ttl;
  if (ttl_ms > opts_.max_ttl.count()) return lock_errc::ttl_too_long;
  return {};
}

lock_manager::lock_state* lock_manager::find(const std::string& name) {
  auto it = locks_.find(name);
  return it == locks_.end() ? nullptr : &it->second;
}

lock_manager::lock_state& lock_manager::get(const std::string& name, std::uint32_t slot) {
  auto [it, inserted] = locks_.try_emplace(name);
  if (inserted) {
    it->second.name = it->first;
    it->second.slot = slot;
  }
  return it->second;
}

// An idle lock's entry stays for its next use (no allocation per grant);
// idle entries are dropped in bulk once the table has grown past purge_at_.
void lock_manager::forget_if_idle(lock_state& l) {
  if (!l.holders.empty() || !l.queue.empty() || locks_.size() < purge_at_) return;
  purge_idle();
}

void lock_manager::purge_idle() {
  compact_held();
  for (auto it = locks_.begin(); it != locks_.end();) {
    const lock_state& l = it->second;
    if (l.holders.empty() && l.queue.empty() && !l.in_held)
      it = locks_.erase(it);
    else
      ++it;
  }
  purge_at_ = std::max<std::size_t>(4096, 2 * locks_.size());
}

void lock_manager::compact_held() {
  std::erase_if(held_, [](lock_state* l) {
    if (!l->holders.empty()) return false;
    l->in_held = false;
    return true;
  });
}

bool lock_manager::usable(const lock_state& l, std::int64_t now) {
  const slot_state& s = slots_[l.slot];
  return s.owned && now >= s.usable_ns && quorate(now);
}

bool lock_manager::quorate(std::int64_t now) {
  if (!quorum_) return true;
  if (!quorum_->in_majority(now)) return false;
  if (quorum_->losses() != quorum_losses_) {
    // Back in the majority after being out of it: the others may have taken
    // these slots over and granted in them meanwhile.
    quorum_losses_ = quorum_->losses();
    regain_slots(now);
  }
  return true;
}

// Every slot this manager serves starts again as if just gained: no grant
// for lock_delay, a new token epoch. Holders it granted before keep their
// leases (they could not be renewed while it was out of the majority, so
// they end before the others could have granted the lock).
void lock_manager::regain_slots(std::int64_t now) {
  const std::int64_t usable_at = now + std::chrono::nanoseconds(opts_.lock_delay).count();
  const std::uint64_t epoch = wall_epoch_ms(opts_.lock_delay);
  bool any = false;
  for (slot_state& s : slots_) {
    if (!s.owned) continue;
    s.usable_ns = std::max(s.usable_ns, usable_at);
    s.epoch_ms = std::max(epoch, s.epoch_ms + 1);
    s.seq = 0;
    any = true;
  }
  if (any) (void)ref_of(this).tell(delay_over{usable_at});
}

void lock_manager::fail_all_waiters(lock_errc why) {
  for (auto& [name, l] : locks_)
    if (!l.queue.empty()) fail_waiters(l, why);
}

bool lock_manager::free_for(const lock_state& l, lock_mode m) const {
  return l.holders.empty() || (m == lock_mode::shared && l.mode == lock_mode::shared);
}

bool lock_manager::has_live_waiters(const lock_state& l) const {
  for (const waiter* w : l.queue)
    if (!w->ready.timed_out()) return true;
  return false;
}

lock_manager::holder& lock_manager::grant(lock_state& l, std::string owner, std::string owner_node,
                                          lock_mode m, std::int64_t ttl_ns, std::int64_t now) {
  slot_state& s = slots_[l.slot];
  if (s.seq == token_seq_max) {  // 16 M grants in one epoch: move the epoch on
    s.epoch_ms = std::max(s.epoch_ms + 1, wall_epoch_ms({}));
    s.seq = 0;
  }
  const std::uint64_t token = (s.epoch_ms << token_seq_bits) | ++s.seq;
  l.mode = m;
  l.holders.push_back(holder{std::move(owner), std::move(owner_node), token, now, now + ttl_ns, 1});
  if (!l.in_held) {
    l.in_held = true;
    held_.push_back(&l);
  }
  ++stats_.grants;
  emit(lock_event::kind::granted, l, l.holders.back(), now);
  ensure_sweeper();
  return l.holders.back();
}

void lock_manager::end_holder(lock_state& l, std::size_t i, lock_event::kind why,
                              std::int64_t now) {
  holder h = std::move(l.holders[i]);
  l.holders.erase(l.holders.begin() + static_cast<std::ptrdiff_t>(i));
  if (why == lock_event::kind::released) ++stats_.releases;
  if (why == lock_event::kind::expired) ++stats_.expiries;
  if (why == lock_event::kind::revoked) ++stats_.revocations;
  emit(why, l, h, now);
}

// Grants to the head of the queue — or to the run of shared requests at its
// head — while the lock allows; wakes exactly those.
void lock_manager::promote(lock_state& l, std::int64_t now) {
  if (!usable(l, now)) return;
  for (auto it = l.queue.begin(); it != l.queue.end();) {
    waiter* w = *it;
    if (w->ready.timed_out()) {  // leaving by itself; it erases its own entry
      ++it;
      continue;
    }
    if (!free_for(l, w->mode)) return;
    holder& h = grant(l, std::move(w->owner), std::move(w->owner_node), w->mode, w->ttl_ns, now);
    w->result = lock_reply{0, h.token, w->ttl_ns / 1'000'000, 1};
    it = l.queue.erase(it);
    w->ready.set();
    if (w->mode == lock_mode::exclusive) return;
  }
}

void lock_manager::expire_due(lock_state& l, std::int64_t now) {
  bool ended = false;
  for (std::size_t i = 0; i < l.holders.size();) {
    if (l.holders[i].expires_ns <= now) {
      end_holder(l, i, lock_event::kind::expired, now);
      ended = true;
    } else {
      ++i;
    }
  }
  if (ended) promote(l, now);
}

void lock_manager::fail_waiters(lock_state& l, lock_errc why) {
  for (auto it = l.queue.begin(); it != l.queue.end();) {
    waiter* w = *it;
    if (w->ready.timed_out()) {
      ++it;
      continue;
    }
    w->result = reply_error(why);
    it = l.queue.erase(it);
    w->ready.set();
  }
}

void lock_manager::emit(lock_event::kind k, const lock_state& l, const holder& h,
                        std::int64_t now) {
  if (!opts_.observer) return;
  opts_.observer(lock_event{k, std::string(l.name), h.owner, h.token, l.mode, now, h.expires_ns});
}

void lock_manager::ensure_sweeper() {
  if (sweeping_) return;
  sweeping_ = true;
  (void)ref_of(this).tell(sweep_tick{});
}

task<void> lock_manager::handle(sweep_tick) {
  while (!held_.empty()) {
    co_await sleep_for(opts_.sweep);
    const std::int64_t now = now_ns();
    compact_held();
    std::vector<std::string> due;
    for (lock_state* l : held_)
      for (const holder& h : l->holders)
        if (h.expires_ns <= now) {
          due.emplace_back(l->name);
          break;
        }
    for (const std::string& name : due)
      if (lock_state* l = find(name)) {
        expire_due(*l, now);
        forget_if_idle(*l);
      }
  }
  sweeping_ = false;
}

task<void> lock_manager::handle(delay_over d) {
  const std::int64_t wait = d.at_ns - now_ns();
  if (wait > 0) co_await sleep_for(std::chrono::nanoseconds(wait));
  const std::int64_t now = now_ns();
  std::vector<std::string> names;
  for (auto& [name, l] : locks_)
    if (!l.queue.empty() && usable(l, now)) names.push_back(name);
  for (const std::string& name : names)
    if (lock_state* l = find(name)) promote(*l, now);
}

void lock_manager::handle(ring_changed c) {
  if (!c.table) return;
  const std::int64_t now = now_ns();
  const std::int64_t usable_at = now + std::chrono::nanoseconds(opts_.lock_delay).count();
  const std::uint64_t epoch = wall_epoch_ms(opts_.lock_delay);
  bool gained = false;
  std::vector<bool> lost(slots_.size(), false);
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    result<std::string_view> o = c.table->owner(lock_slot_key(i));
    const bool mine = o && *o == node_;
    slot_state& s = slots_[i];
    if (mine && !s.owned) {
      s.owned = true;
      s.usable_ns = usable_at;
      s.epoch_ms = std::max(epoch, s.epoch_ms + 1);
      s.seq = 0;
      gained = true;
    } else if (!mine && s.owned) {
      s.owned = false;
      lost[i] = true;
    }
  }
  ring_seen_ = true;
  // Locks of slots that moved away: their holders are revoked (renewals now
  // fail with not_owner), their waiters told to retry at the new owner.
  for (auto& [name, l] : locks_) {
    if (!lost[l.slot]) continue;
    while (!l.holders.empty()) end_holder(l, 0, lock_event::kind::revoked, now);
    fail_waiters(l, lock_errc::not_owner);
  }
  if (gained) (void)ref_of(this).tell(delay_over{usable_at});
}

void lock_manager::handle(net::member_event e) {
  if (e.up) return;
  // Out of the majority: nobody waiting here can be granted.
  if (!quorate(now_ns())) fail_all_waiters(lock_errc::no_majority);
  // The node went down: its holders are gone, its waiters cannot take a grant.
  const std::int64_t now = now_ns();
  std::vector<std::string> names;
  for (auto& [name, l] : locks_) names.push_back(name);
  for (const std::string& name : names) {
    lock_state& l = *find(name);
    bool ended = false;
    for (std::size_t i = 0; i < l.holders.size();) {
      if (l.holders[i].owner_node == e.node) {
        end_holder(l, i, lock_event::kind::revoked, now);
        ended = true;
      } else {
        ++i;
      }
    }
    for (auto it = l.queue.begin(); it != l.queue.end();) {
      waiter* w = *it;
      if (w->owner_node == e.node && !w->ready.timed_out()) {
        w->result = reply_error(lock_errc::revoked);
        it = l.queue.erase(it);
        w->ready.set();
      } else {
        ++it;
      }
    }
    if (ended) promote(l, now);
  }
}

task<lock_reply> lock_manager::handle(lock_acquire q) {
  if (auto ec = check(q.name, q.ttl_ms)) co_return reply_error(static_cast<lock_errc>(ec.value()));
  if (q.wait_ms < 0 || q.wait_ms > opts_.max_wait.count())
    co_return reply_error(lock_errc::bad_wait);
  if (q.mode > 1) co_return reply_error(lock_errc::mode_mismatch);
  if (!quorate(now_ns())) {
    fail_all_waiters(lock_errc::no_majority);
    co_return reply_error(lock_errc::no_majority);
  }
  const lock_mode mode = static_cast<lock_mode>(q.mode);
  std::int64_t now = now_ns();
  lock_state* known = find(q.name);  // a lock used before knows its slot
  const std::uint32_t slot = known ? known->slot : lock_slot(q.name, opts_.slots);
  if (!slots_[slot].owned) co_return reply_error(lock_errc::not_owner);
  const std::int64_t ttl_ns = q.ttl_ms * 1'000'000;
  lock_state& l = known ? *known : get(q.name, slot);
  expire_due(l, now);
  // Reentrant: the owner already holds it, and proves it with its token.
  // Without a token the owner string alone earns nothing: the request is
  // answered as anyone's would be.
  if (q.token != 0) {
    for (holder& h : l.holders) {
      if (h.owner != q.owner || h.token != q.token) continue;
      if (l.mode != mode) co_return reply_error(lock_errc::mode_mismatch);
      ++h.holds;
      h.expires_ns = std::max(h.expires_ns, now + ttl_ns);
      emit(lock_event::kind::renewed, l, h, now);
      co_return lock_reply{0, h.token, (h.expires_ns - now) / 1'000'000, h.holds};
    }
    forget_if_idle(l);
    co_return reply_error(lock_errc::wrong_token);
  }
  if (usable(l, now) && free_for(l, mode) && !has_live_waiters(l)) {
    holder& h = grant(l, std::move(q.owner), std::move(q.owner_node), mode, ttl_ns, now);
    co_return lock_reply{0, h.token, q.ttl_ms, 1};
  }
  if (q.wait_ms == 0) {
    forget_if_idle(l);
    co_return reply_error(lock_errc::busy);
  }
  if (stats_.waiters >= opts_.max_waiters || l.queue.size() >= opts_.max_waiters_per_lock) {
    forget_if_idle(l);
    ++stats_.waiters_refused;
    co_return reply_error(lock_errc::too_many_waiters);
  }
  // Park in the FIFO queue until promoted, failed, or out of time.
  const std::string name = q.name;  // l may not outlive the wait under its own name
  waiter w{std::move(q.owner), std::move(q.owner_node), mode, ttl_ns, {}, {}, {}};
  w.pos = l.queue.insert(l.queue.end(), &w);
  // Whoever wakes a waiter takes it off the queue; a waiter that leaves
  // otherwise — its wait ran out, or the manager is stopping and the handler
  // unwinds — takes itself off.
  struct unlist {
    lock_manager* m;
    const std::string& name;
    waiter& w;
    ~unlist() {
      if (w.ready.is_set()) return;
      if (lock_state* ls = m->find(name)) ls->queue.erase(w.pos);
      --m->stats_.waiters;
    }
  };
  ++stats_.waiters;
  bool woken = false;
  {
    unlist off{this, name, w};
    woken = co_await w.ready.wait_for(std::chrono::milliseconds(q.wait_ms));
    if (woken) --stats_.waiters;
  }
  stats_.waits.observe(std::chrono::nanoseconds(now_ns() - now));
  if (woken) co_return w.result;
  ++stats_.timeouts;
  if (lock_state* ls = find(name)) {
    promote(*ls, now_ns());  // a shared run may have been waiting behind it
    forget_if_idle(*ls);
  }
  co_return reply_error(lock_errc::timeout);
}

// Renew and release: the holder a request names (its lock and index), or
// the error that says why there is none.
lock_manager::lock_state* lock_manager::find_hold(const std::string& name, std::uint64_t token,
                                                  const std::string& owner, std::size_t& index,
                                                  lock_reply& error) {
  lock_state* l = find(name);
  if (!slots_[l ? l->slot : lock_slot(name, opts_.slots)].owned) {
    error = reply_error(lock_errc::not_owner);
    return nullptr;
  }
  if (!l) {
    error = reply_error(lock_errc::expired);
    return nullptr;
  }
  for (std::size_t i = 0; i < l->holders.size(); ++i) {
    if (l->holders[i].token != token) continue;
    if (l->holders[i].owner != owner) break;
    index = i;
    return l;
  }
  bool owns_another = false;
  for (const holder& h : l->holders) owns_another |= h.owner == owner;
  error = reply_error(owns_another         ? lock_errc::wrong_token
                      : l->holders.empty() ? lock_errc::expired
                                           : lock_errc::not_holder);
  return nullptr;
}

lock_reply lock_manager::handle(lock_renew q) {
  if (auto ec = check(q.name, q.ttl_ms)) return reply_error(static_cast<lock_errc>(ec.value()));
  std::size_t i = 0;
  lock_reply error;
  lock_state* l = find_hold(q.name, q.token, q.owner, i, error);
  if (!l) return error;
  const std::int64_t now = now_ns();
  holder& h = l->holders[i];
  if (h.expires_ns <= now) {
    end_holder(*l, i, lock_event::kind::expired, now);
    promote(*l, now);
    forget_if_idle(*l);
    return reply_error(lock_errc::expired);
  }
  if (!quorate(now)) return reply_error(lock_errc::no_majority);  // the lease runs out as it is
  h.expires_ns = now + q.ttl_ms * 1'000'000;
  emit(lock_event::kind::renewed, *l, h, now);
  return lock_reply{0, h.token, q.ttl_ms, h.holds};
}

lock_reply lock_manager::handle(lock_release q) {
  if (q.name.empty()) return reply_error(lock_errc::empty_name);
  std::size_t i = 0;
  lock_reply error;
  lock_state* l = find_hold(q.name, q.token, q.owner, i, error);
  if (!l) return error;
  const std::int64_t now = now_ns();
  holder& h = l->holders[i];
  if (--h.holds > 0) return lock_reply{0, h.token, (h.expires_ns - now) / 1'000'000, h.holds};
  const std::uint64_t token = h.token;
  end_holder(*l, i, lock_event::kind::released, now);
  promote(*l, now);
  forget_if_idle(*l);
  return lock_reply{0, token, 0, 0};
}

lock_info lock_manager::handle(lock_info_q q) {
  lock_info info;
  const std::uint32_t slot = lock_slot(q.name, opts_.slots);
  if (!slots_[slot].owned) {
    info.error = static_cast<std::uint32_t>(lock_errc::not_owner);
    return info;
  }
  if (lock_state* l = find(q.name)) {
    expire_due(*l, now_ns());
    for (const holder& h : l->holders) {
      info.holders.push_back(h.owner);
      info.tokens.push_back(h.token);
    }
    info.mode = static_cast<std::uint8_t>(l->mode);
    for (const waiter* w : l->queue) info.waiters += !w->ready.timed_out();
    forget_if_idle(*l);
  }
  return info;
}

lock_stats lock_manager::handle(lock_stats_q) const {
  lock_stats s = stats_;
  s.held = 0;
  for (const lock_state* l : held_) s.held += l->holders.size();
  return s;
}

// ---------------------------------------------------------------------------
// The service.

lock_service::lock_service(net::node& n, router& r, lock_options o) {
  spawn_options so;
  so.shard = static_cast<int>(n.shard());
  actor_ = n.runtime_ref().spawn<lock_manager>(so, n.name(), std::move(o), n.quorum());
  n.publish(actor_, lock_manager_name);
  r.watch(actor_);
  n.subscribe(actor_);
}

lock_service::~lock_service() { actor_.stop(); }

// ---------------------------------------------------------------------------
// The client: guards, and the keeper actor that sends every request of one
// node's clients (so a release and the next acquire arrive in order), renews
// leases and releases those of holders that stopped.

namespace detail {
/// One lease as the keeper tracks it: shared by the guards of its holds.
struct lease_state {
  std::string name, key, owner;
  std::uint64_t token = 0;
  std::chrono::milliseconds ttl{0};
  std::uint32_t guards = 0;
  bool renewing = false;
  actor_addr holder;
  std::shared_ptr<std::atomic<bool>> lost = std::make_shared<std::atomic<bool>>(false);
};
struct guard_state {
  std::string name, lease_key;
  std::uint64_t token = 0;
  std::uint32_t holds = 1;
  std::shared_ptr<std::atomic<bool>> lost;
  std::atomic<bool> released{false};
  actor_ref<lock_keeper> keeper;
};
struct acquire_q {
  std::string name, owner;
  actor_addr holder;
  std::chrono::milliseconds ttl, wait;
  lock_mode mode;
};
struct acquired {
  std::uint64_t token = 0;
  std::uint32_t holds = 0;
  std::string lease_key;
  std::shared_ptr<std::atomic<bool>> lost;
};
struct release_q {
  std::string lease_key;
};
struct renew_loop_q {
  std::string lease_key;
};
}  // namespace detail

class lock_keeper : public actor {
 public:
  static constexpr bool reentrant = true;  // acquires wait, renewals sleep
  static constexpr const char* type_name = "troupe::actors::lock_keeper";
  lock_keeper(net::node* n, lock_client_options o) : node_(n), opts_(o) {}

  task<result<detail::acquired>> handle(detail::acquire_q q) {
    const std::string key = lock_slot_key(lock_slot(q.name, opts_.slots));
    // A slot in motion answers not_owner: try again until the wait is spent.
    const auto deadline = std::chrono::steady_clock::now() + q.wait;
    for (;;) {
      const auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     deadline - std::chrono::steady_clock::now()),
                                 std::chrono::milliseconds(0));
      // This owner's lease of the lock, if it has one: its token makes the
      // acquire reentrant.
      std::uint64_t held = 0;
      if (auto c = current_.find(q.name + '\0' + q.owner); c != current_.end())
        if (auto it = leases_.find(c->second); it != leases_.end() && !it->second.lost->load())
          held = it->second.token;
      lock_acquire a{q.name,        q.owner,      node_->name(),
                     q.ttl.count(), left.count(), static_cast<std::uint8_t>(q.mode),
                     held};
      auto call = node_->route_ask<lock_manager>(key, lock_manager_name, std::move(a),
                                                 left + opts_.reply_margin);
      result<lock_reply> rep = co_await call;
      if (!rep) co_return failure<detail::acquired>(rep.error());
      if (rep->error == static_cast<std::uint32_t>(lock_errc::not_owner) &&
          std::chrono::steady_clock::now() + std::chrono::milliseconds(10) < deadline) {
        co_await sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (rep->error != 0)
        co_return failure<detail::acquired>(make_error_code(static_cast<lock_errc>(rep->error)));
      // One lease per (name, token); a reentrant acquire adds a guard to it.
      std::string lk = q.name;
      lk.push_back('\0');
      lk += std::to_string(rep->token);
      detail::lease_state& l = leases_[lk];
      if (l.guards == 0) {
        l.name = q.name;
        l.key = key;
        l.owner = q.owner;
        l.token = rep->token;
        l.holder = q.holder;
        current_[q.name + '\0' + q.owner] = lk;
      }
      l.ttl = std::max(l.ttl, q.ttl);
      ++l.guards;
      if (q.holder && monitored_.insert(q.holder.id()).second) monitor(q.holder);
      if (opts_.keep_alive && !l.renewing) {
        l.renewing = true;
        (void)ref_of(this).tell(detail::renew_loop_q{lk});
      }
      co_return detail::acquired{rep->token, rep->holds, lk, l.lost};
    }
  }

  task<void> handle(detail::renew_loop_q q) {
    for (;;) {
      auto it = leases_.find(q.lease_key);
      if (it == leases_.end()) co_return;
      const auto period = std::max(it->second.ttl / 3, std::chrono::milliseconds(1));
      co_await sleep_for(period);
      it = leases_.find(q.lease_key);
      if (it == leases_.end()) co_return;  // released meanwhile
      detail::lease_state& l = it->second;
      lock_renew r{l.name, l.owner, l.token, l.ttl.count()};
      std::shared_ptr<std::atomic<bool>> lost = l.lost;
      const std::string name = l.name;
      auto call = node_->route_ask<lock_manager>(l.key, lock_manager_name, std::move(r), l.ttl);
      result<lock_reply> rep = co_await call;
      if (!rep || rep->error != 0) {
        lost->store(true);
        const std::string why = !rep
                                    ? rep.error().message()
                                    : make_error_code(static_cast<lock_errc>(rep->error)).message();
        system().log(log_level::warn, "locks",
                     "lock '" + name + "' lost: renewal failed (" + why + ")");
        if (auto again = leases_.find(q.lease_key); again != leases_.end())
          again->second.renewing = false;
        co_return;
      }
    }
  }

  task<void> handle(detail::release_q q) {
    auto it = leases_.find(q.lease_key);
    if (it == leases_.end()) co_return;
    detail::lease_state& l = it->second;
    lock_release r{l.name, l.owner, l.token};
    const std::string key = l.key, name = l.name;
    if (--l.guards == 0) {
      if (auto c = current_.find(l.name + '\0' + l.owner);
          c != current_.end() && c->second == q.lease_key)
        current_.erase(c);
      leases_.erase(it);  // the renewal loop ends with it
    }
    auto call = node_->route_ask<lock_manager>(key, lock_manager_name, std::move(r),
                                               std::chrono::seconds(5));
    result<lock_reply> rep = co_await call;
    // A lease that expired or was revoked meanwhile needs no line; a release
    // that did not reach the manager does.
    if (!rep)
      system().log(log_level::warn, "locks",
                   "release of lock '" + name + "' failed (" + rep.error().message() +
                       "); the lease ends at its TTL");
  }

  void handle(down_msg d) {
    // A holder stopped: release every hold it had.
    monitored_.erase(d.who.id());
    std::vector<std::string> keys;
    for (auto& [k, l] : leases_)
      if (l.holder.id() == d.who.id())
        for (std::uint32_t i = 0; i < l.guards; ++i) keys.push_back(k);
    for (auto& k : keys) (void)ref_of(this).tell(detail::release_q{k});
  }

 private:
  net::node* node_;
  lock_client_options opts_;
  std::unordered_map<std::string, detail::lease_state> leases_;
  // (name '\0' owner) -> the key in leases_ of that owner's lease of the lock.
  std::unordered_map<std::string, std::string> current_;
  std::unordered_set<std::uint64_t> monitored_;  // holders monitored, until they stop
};

lock_guard& lock_guard::operator=(lock_guard&& o) noexcept {
  if (this != &o) {
    release();
    s_ = std::move(o.s_);
  }
  return *this;
}

lock_guard::~lock_guard() { release(); }

std::uint64_t lock_guard::token() const noexcept { return s_ ? s_->token : 0; }
const std::string& lock_guard::name() const noexcept {
  static const std::string none;
  return s_ ? s_->name : none;
}
std::uint32_t lock_guard::holds() const noexcept { return s_ ? s_->holds : 0; }
bool lock_guard::lost() const noexcept { return !s_ || s_->lost->load(); }

void lock_guard::release() {
  if (!s_) return;
  std::shared_ptr<detail::guard_state> g = std::move(s_);
  if (!g->released.exchange(true)) (void)g->keeper.tell(detail::release_q{g->lease_key});
}

locks::locks(net::node& n, lock_client_options o) : node_(n), opts_(o) {
  if (opts_.slots == 0)
    throw std::invalid_argument("troupe: lock_client_options::slots must be > 0");
  spawn_options so;
  so.shard = static_cast<int>(n.shard());
  keeper_ = n.runtime_ref().spawn<lock_keeper>(so, &n, opts_);
}

locks::~locks() { keeper_.stop(); }

task<result<lock_guard>> locks::acquire(std::string name, std::chrono::milliseconds ttl,
                                        std::chrono::milliseconds wait, lock_mode mode) {
  if (name.empty()) co_return failure<lock_guard>(make_error_code(lock_errc::empty_name));
  if (ttl.count() <= 0) co_return failure<lock_guard>(make_error_code(lock_errc::bad_ttl));
  if (wait.count() < 0) co_return failure<lock_guard>(make_error_code(lock_errc::bad_wait));
  detail::acquire_q q{std::move(name), {}, {}, ttl, wait, mode};
  if (troupe::detail::actor_cell* c = troupe::detail::current_cell()) {
    q.holder = actor_addr{c};
    q.owner = node_.name() + "/" + std::to_string(q.holder.id());
  } else {
    static std::atomic<std::uint64_t> anon{0};
    q.owner = node_.name() + "/client-" + std::to_string(anon.fetch_add(1) + 1);
  }
  auto g = std::make_shared<detail::guard_state>();
  g->name = q.name;
  g->keeper = keeper_;
  auto call = keeper_.ask(std::move(q), wait + 2 * opts_.reply_margin);
  result<result<detail::acquired>> rr = co_await call;
  if (!rr) co_return failure<lock_guard>(rr.error());
  result<detail::acquired>& r = *rr;
  if (!r) co_return failure<lock_guard>(r.error());
  g->token = r->token;
  g->holds = r->holds;
  g->lease_key = std::move(r->lease_key);
  g->lost = std::move(r->lost);
  co_return lock_guard{std::move(g)};
}

task<result<lock_info>> locks::info(std::string name) {
  if (name.empty()) co_return failure<lock_info>(make_error_code(lock_errc::empty_name));
  std::string key = lock_slot_key(lock_slot(name, opts_.slots));
  lock_info_q q{std::move(name)};
  auto call =
      node_.route_ask<lock_manager>(key, lock_manager_name, std::move(q), opts_.reply_margin);
  result<lock_info> r = co_await call;
  if (r && r->error != 0)
    co_return failure<lock_info>(make_error_code(static_cast<lock_errc>(r->error)));
  co_return r;
}

}  // namespace troupe::actors
