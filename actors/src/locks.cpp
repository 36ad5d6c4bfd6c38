// SPDX-License-Identifier: BSL-1.0
// The lock-manager (leases, fencing tokens, FIFO waiters, lock-delay) and its
// client (routing by lock name, guards that renew and release).

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
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
      case lock_errc::recovering:
        return "the lock's slot is recovering: it just moved to this node, which grants in it "
               "once the members that served it have handed it over, or once every lease a "
               "vanished owner may have granted has run out (retry)";
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

lock_reply reply_error(lock_errc e) {
  lock_reply r;
  r.error = static_cast<std::uint32_t>(e);
  return r;
}
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
                           std::shared_ptr<const net::quorum_view> quorum, net::node* n)
    : node_(std::move(node_name)), net_(n), quorum_(std::move(quorum)), opts_(std::move(o)) {
  if (quorum_) quorum_losses_ = quorum_->losses();
  if (opts_.slots == 0) throw std::invalid_argument("troupe: lock_options::slots must be > 0");
  if (opts_.max_ttl.count() <= 0)
    throw std::invalid_argument("troupe: lock_options::max_ttl must be positive");
  if (opts_.lock_delay.count() < 0) opts_.lock_delay = opts_.max_ttl;
  slots_.resize(opts_.slots);
  if (!opts_.lease_file.empty()) {
    // "troupe-lease-mark <ms since 2025-01-01>": leases of this node's
    // previous life end by then. Missing: a fresh data dir, nothing to wait for.
    std::ifstream in(opts_.lease_file);
    if (in) {
      std::string tag;
      std::int64_t ms = -1;
      in >> tag >> ms;
      if (tag != "troupe-lease-mark" || ms < 0) {
        lease_note_ = "lease file " + opts_.lease_file +
                      " is not a lease mark; waiting the lock-delay as if it said now";
        lease_mark_ms_ = static_cast<std::int64_t>(wall_epoch_ms(opts_.lock_delay));
      } else {
        lease_mark_ms_ = ms;
      }
    }
  }
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
  return s.owned && s.resolved && now >= s.usable_ns && quorate(now);
}

lock_reply lock_manager::recovering(std::uint32_t slot, std::int64_t now) const {
  const slot_state& s = slots_[slot];
  lock_reply r = reply_error(lock_errc::recovering);
  // Resolved: it grants at usable_ns. Not yet: at least until the horizons
  // known so far (0: none known, a hand-off a round trip away).
  const std::int64_t at =
      s.resolved ? s.usable_ns : std::max({s.horizon_ns, floor_ns_, previous_life_ns_});
  if (at > now) r.ttl_ms = (at - now) / 1'000'000 + 1;
  return r;
}

bool lock_manager::quorate(std::int64_t now) {
  if (!quorum_) return true;
  if (!quorum_->in_majority(now)) return false;
  if (quorum_->losses() != quorum_losses_) {
    // Back in the majority after being out of it: the others may have taken
    // these slots over and granted in them meanwhile. Every slot it owns is
    // claimed again (holders it granted before keep their leases: they could
    // not be renewed while it was out, so they end before the others could
    // have granted the lock).
    quorum_losses_ = quorum_->losses();
    for (slot_state& s : slots_)
      if (s.owned) unresolve(s, now);
    ensure_claims();
  }
  return true;
}

// ---------------------------------------------------------------------------
// Moving slots. A manager that gains a slot serves it once every other member
// of its ring has said that its own ring gives the slot to the claimer and
// that it does not serve it — handing over the slot's leases with that
// answer — and once the leases of owners that vanished without a word may
// have run out (docs/locks.md, "Moving slots").

static bool majority_rule(const std::shared_ptr<const net::quorum_view>& q) {
  return q && q->expect() > 0;
}

std::vector<std::string> lock_manager::peers() const {
  std::vector<std::string> out;
  if (!table_ || !net_) return out;
  for (std::string& m : table_->get().members())
    if (m != node_ && !left_.contains(m)) out.push_back(std::move(m));
  return out;
}

void lock_manager::unresolve(slot_state& s, std::int64_t) {
  s.resolved = false;
  s.waiting = peers();
  s.losses = quorum_ ? quorum_->losses() : 0;
}

std::int64_t lock_manager::vanished_lease_ns() const {
  const std::int64_t delay = std::chrono::nanoseconds(opts_.lock_delay).count();
  const std::int64_t drift = delay - std::chrono::nanoseconds(opts_.max_ttl).count();
  return std::max(delay, peer_ttl_ns_ + drift);
}

void lock_manager::ensure_claims() {
  if (claiming_) return;
  for (const slot_state& s : slots_)
    if (s.owned && !s.resolved) {
      claiming_ = true;
      (void)ref_of(this).tell(claim_tick{});
      return;
    }
}

void lock_manager::try_resolve(std::uint32_t slot, std::int64_t now) {
  slot_state& s = slots_[slot];
  if (!s.owned || s.resolved || !s.waiting.empty()) return;
  if (!quorate(now)) return;  // may unresolve it again
  if (s.resolved || !s.waiting.empty()) return;
  if (quorum_ && quorum_->losses() != s.losses) {
    unresolve(s, now);
    return;
  }
  s.resolved = true;
  s.usable_ns = std::max({now, s.horizon_ns, floor_ns_, previous_life_ns_});
  s.epoch_ms = std::max(wall_epoch_ms(opts_.lock_delay), s.epoch_ms + 1);
  s.seq = 0;
  (void)ref_of(this).tell(delay_over{s.usable_ns});
}

task<void> lock_manager::handle(claim_tick) {
  for (;;) {
    const std::int64_t now = now_ns();
    bool pending = false;
    std::unordered_set<std::string> ask;
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
      try_resolve(i, now);
      const slot_state& s = slots_[i];
      if (!s.owned || s.resolved) continue;
      pending = true;
      for (const std::string& p : s.waiting) ask.insert(p);
    }
    if (!pending) break;
    for (const std::string& p : ask) {
      peer_claim& pc = claims_[p];
      if (pc.in_flight) continue;
      pc.in_flight = true;
      (void)ref_of(this).tell(claim_to{p});
    }
    co_await sleep_for(std::chrono::milliseconds(5));
  }
  claiming_ = false;
}

task<void> lock_manager::handle(claim_to c) {
  const std::string peer = c.peer;
  std::vector<std::uint32_t> want;
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    const slot_state& s = slots_[i];
    if (s.owned && !s.resolved &&
        std::find(s.waiting.begin(), s.waiting.end(), peer) != s.waiting.end())
      want.push_back(i);
  }
  if (want.empty() || !net_) {
    claims_[peer].in_flight = false;
    co_return;
  }
  const auto timeout = std::chrono::seconds(2);
  bool retry = false;
  // The peer stopped answering (down, or stalled): fall back to waiting out
  // the lock-delay from the gain for what it might have granted.
  auto unreachable = [&](std::int64_t now) {
    for (std::uint32_t i : want) {
      slot_state& s = slots_[i];
      std::erase(s.waiting, peer);
      s.horizon_ns = std::max(s.horizon_ns, s.gained_ns + vanished_lease_ns());
      try_resolve(i, now);
    }
  };
  // No lock manager there (a node that serves no locks): nothing to hand over.
  auto nothing_there = [&](std::int64_t now) {
    for (std::uint32_t i : want) {
      std::erase(slots_[i].waiting, peer);
      try_resolve(i, now);
    }
  };
  if (!claims_[peer].have_ref) {
    auto call = net_->remote<lock_manager>(peer, lock_manager_name, timeout);
    result<actor_ref<lock_manager>> r = co_await std::move(call);
    if (!r) {
      if (r.error() == errc::name_not_found)
        nothing_there(now_ns());
      else
        unreachable(now_ns());
      claims_[peer].in_flight = false;
      co_return;
    }
    claims_[peer].ref = *r;
    claims_[peer].have_ref = true;
  }
  lock_claim q{node_, opts_.max_ttl.count(), table_ ? table_->digest() : 0, want};
  auto call = claims_[peer].ref.ask(std::move(q), timeout);
  result<lock_claim_reply> rep = co_await call;
  const std::int64_t now = now_ns();
  peer_claim& pc = claims_[peer];
  if (!rep) {
    pc.have_ref = false;  // looked up again next time
    if (rep.error() == errc::actor_dead)
      retry = true;  // the peer's manager restarted: ask the new one
    else
      unreachable(now);
  } else {
    peer_ttl_ns_ = std::max(
        peer_ttl_ns_, std::chrono::nanoseconds(
                          std::chrono::milliseconds(std::max<std::int64_t>(0, rep->max_ttl_ms)))
                          .count());
    for (const lock_handed_slot& h : rep->slots) {
      if (h.slot >= slots_.size()) continue;
      if (h.state != lock_handed_slot::released) {
        retry = true;
        continue;
      }
      take_over(h, now);
      std::erase(slots_[h.slot].waiting, peer);
      try_resolve(h.slot, now);
    }
  }
  if (retry) {
    // Its ring does not agree yet: ask again a little later. Rings agree
    // within a few heartbeats; a minute without says why slots wait.
    pc.backoff = std::min(std::max(pc.backoff * 2, std::chrono::milliseconds(5)),
                          std::chrono::milliseconds(250));
    if (++pc.refusals == 240)
      system().log(log_level::warn, "locks",
                   "slots claimed from " + peer +
                       " still wait after a minute: its ring is not this node's (a link "
                       "between other members down, or different ring options?)");
    co_await sleep_for(pc.backoff);
  } else {
    pc.backoff = std::chrono::milliseconds(0);
    pc.refusals = 0;
  }
  claims_[peer].in_flight = false;
}

std::vector<lock_handed_slot> lock_manager::hand_over(const std::vector<std::uint32_t>& slots,
                                                      std::int64_t now) {
  std::vector<lock_handed_slot> out;
  std::vector<std::int32_t> index(slots_.size(), -1);
  for (std::uint32_t i : slots) {
    if (i >= slots_.size() || index[i] >= 0) continue;
    index[i] = static_cast<std::int32_t>(out.size());
    lock_handed_slot h;
    h.slot = i;
    h.epoch_ms = slots_[i].epoch_ms;
    h.horizon_ns =
        std::max<std::int64_t>(0, std::max(slots_[i].horizon_ns, previous_life_ns_) - now);
    out.push_back(std::move(h));
  }
  if (out.empty()) return out;
  compact_held();
  for (lock_state* l : held_) {
    if (index[l->slot] < 0) continue;
    lock_handed_slot& h = out[static_cast<std::size_t>(index[l->slot])];
    fail_waiters(*l, lock_errc::not_owner);
    while (!l->holders.empty()) {
      const holder& x = l->holders.back();
      if (x.expires_ns > now) {
        h.leases.push_back(lock_handed_lease{std::string(l->name), x.owner, x.owner_node, x.token,
                                             x.expires_ns - now, x.holds,
                                             static_cast<std::uint8_t>(l->mode)});
        ++stats_.handed_over;
        end_holder(*l, l->holders.size() - 1, lock_event::kind::handed_over, now);
      } else {
        end_holder(*l, l->holders.size() - 1, lock_event::kind::expired, now);
      }
    }
  }
  compact_held();
  return out;
}

void lock_manager::take_over(const lock_handed_slot& h, std::int64_t now) {
  if (h.slot >= slots_.size()) return;
  slot_state& s = slots_[h.slot];
  s.epoch_ms = std::max(s.epoch_ms, h.epoch_ms);
  const std::int64_t max_horizon = 4 * vanished_lease_ns();  // a bound on a peer's word
  s.horizon_ns =
      std::max(s.horizon_ns, now + std::clamp<std::int64_t>(h.horizon_ns, 0, max_horizon));
  const std::int64_t max_left =
      std::chrono::nanoseconds(opts_.max_ttl).count() + std::max<std::int64_t>(peer_ttl_ns_, 0);
  for (const lock_handed_lease& x : h.leases) {
    // A lease that cannot be this slot's (bad input) is not taken.
    if (x.name.empty() || x.name.size() > opts_.max_name || x.left_ns <= 0 || x.mode > 1 ||
        x.holds == 0 || x.token == 0 || lock_slot(x.name, opts_.slots) != h.slot)
      continue;
    lock_state& l = get(x.name, h.slot);
    const std::int64_t expires = now + std::min(x.left_ns, max_left);
    holder* same = nullptr;
    for (holder& y : l.holders)
      if (y.token == x.token) same = &y;
    if (same) {
      same->expires_ns = std::max(same->expires_ns, expires);
      continue;
    }
    l.mode = static_cast<lock_mode>(x.mode);
    l.holders.push_back(holder{x.owner, x.owner_node, x.token, now, expires, x.holds});
    if (!l.in_held) {
      l.in_held = true;
      held_.push_back(&l);
    }
    ++stats_.taken_over;
    note_lease(expires, now);
    emit(lock_event::kind::taken_over, l, l.holders.back(), now);
  }
  ensure_sweeper();
}

// The lease file: before a lease may end after its mark, the mark moves to
// that end plus a slack of max(max_ttl / 4, 1 s) — one small synced write
// per slack at most under steady grants, and a restart waits at most the
// slack longer than the leases it granted.
void lock_manager::note_lease(std::int64_t expires_ns, std::int64_t now) {
  if (opts_.lease_file.empty()) return;
  const auto ends = static_cast<std::int64_t>(
      wall_epoch_ms(std::chrono::nanoseconds(std::max<std::int64_t>(0, expires_ns - now))));
  if (ends < lease_mark_ms_) return;
  const std::int64_t slack = std::max<std::int64_t>(opts_.max_ttl.count() / 4, 1000);  // ms
  const std::int64_t mark = ends + slack;
  const std::string tmp = opts_.lease_file + ".tmp";
  const std::string text = "troupe-lease-mark " + std::to_string(mark) + "\n";
  std::string error;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = std::strerror(errno);
  } else {
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    ::fsync(fd) == 0;
    if (!ok) error = std::strerror(errno);
    ::close(fd);
    if (ok && ::rename(tmp.c_str(), opts_.lease_file.c_str()) != 0) error = std::strerror(errno);
  }
  if (error.empty()) {
    lease_mark_ms_ = mark;
    if (lease_file_failing_)
      system().log(log_level::info, "locks", "lease file " + opts_.lease_file + " written again");
    lease_file_failing_ = false;
    return;
  }
  if (!lease_file_failing_)
    system().log(log_level::error, "locks",
                 "cannot write the lease file " + opts_.lease_file + " (" + error +
                     "): after a restart this node would not know how long its leases run; "
                     "retrying with every grant");
  lease_file_failing_ = true;
}

lock_claim_reply lock_manager::handle(lock_claim q) {
  peer_ttl_ns_ = std::max(
      peer_ttl_ns_,
      std::chrono::nanoseconds(std::chrono::milliseconds(std::max<std::int64_t>(0, q.max_ttl_ms)))
          .count());
  lock_claim_reply reply;
  reply.max_ttl_ms = opts_.max_ttl.count();
  const std::int64_t now = now_ns();
  std::vector<std::uint32_t> give;
  for (std::uint32_t i : q.slots) {
    if (i >= slots_.size()) continue;
    const slot_state& s = slots_[i];
    std::uint8_t state = lock_handed_slot::released;
    if (!leaving_) {
      if (s.owned)
        state = lock_handed_slot::still_owner;
      else if (!table_ || table_->digest() != q.ring_digest)
        state = lock_handed_slot::not_yours;
    }
    if (state == lock_handed_slot::released)
      give.push_back(i);
    else
      reply.slots.push_back(lock_handed_slot{i, state, 0, 0, {}});
  }
  for (lock_handed_slot& h : hand_over(give, now)) reply.slots.push_back(std::move(h));
  return reply;
}

lock_reply lock_manager::handle(lock_leaving q) {
  if (q.from.empty() || q.from == node_) return reply_error(lock_errc::not_owner);
  peer_ttl_ns_ = std::max(
      peer_ttl_ns_,
      std::chrono::nanoseconds(std::chrono::milliseconds(std::max<std::int64_t>(0, q.max_ttl_ms)))
          .count());
  const std::int64_t now = now_ns();
  left_.insert(q.from);
  for (const lock_handed_slot& h : q.slots)
    if (h.state == lock_handed_slot::released) take_over(h, now);
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    slot_state& s = slots_[i];
    if (std::erase(s.waiting, q.from) > 0) try_resolve(i, now);
  }
  return lock_reply{0, 0, 0, 0, node_};
}

task<bool> lock_manager::handle(leave_q) {
  if (leaving_) co_return true;
  leaving_ = true;
  const std::int64_t now = now_ns();
  fail_all_waiters(lock_errc::not_owner);
  for (slot_state& s : slots_) {
    s.owned = false;
    s.resolved = false;
    s.waiting.clear();
  }
  if (!net_ || !table_) co_return true;
  // Each slot to the member that owns it once this node is gone.
  ring without = table_->get();
  (void)without.remove(node_);
  std::unordered_map<std::string, std::vector<std::uint32_t>> next;
  for (std::uint32_t i = 0; i < slots_.size(); ++i)
    if (result<std::string_view> o = without.owner(lock_slot_key(i)))
      next[std::string(*o)].push_back(i);
  bool all = true;
  const auto timeout = std::chrono::seconds(1);
  for (const std::string& p : peers()) {
    lock_leaving msg{node_, opts_.max_ttl.count(), hand_over(next[p], now)};
    auto look = net_->remote<lock_manager>(p, lock_manager_name, timeout);
    result<actor_ref<lock_manager>> r = co_await std::move(look);
    if (!r) {
      all = false;
      continue;
    }
    auto call = r->ask(std::move(msg), timeout);
    result<lock_reply> rep = co_await call;
    if (!rep || rep->error != 0) all = false;
  }
  if (!all)
    system().log(log_level::warn, "locks",
                 "leaving: not every member took this node's leases over; they wait for "
                 "them to run out");
  co_return all;
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
  note_lease(now + ttl_ns, now);
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
    w->result = lock_reply{0, h.token, w->ttl_ns / 1'000'000, 1, node_};
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
  if (!c.table || leaving_) return;
  const std::int64_t now = now_ns();
  std::shared_ptr<const ring_table> before = std::move(table_);
  table_ = c.table;
  if (!before) {
    // The first ring: when serving may start at all. Without the majority
    // rule a node cannot tell a fresh cluster from one it has not reached
    // yet, so it waits the lock-delay once; with it, the claims suffice.
    if (!majority_rule(quorum_))
      floor_ns_ = now + std::chrono::nanoseconds(opts_.lock_delay).count();
    if (lease_mark_ms_ > 0) {
      const auto now_ms = static_cast<std::int64_t>(wall_epoch_ms({}));
      previous_life_ns_ = now + std::max<std::int64_t>(0, lease_mark_ms_ - now_ms) * 1'000'000;
    }
    if (!lease_note_.empty()) system().log(log_level::warn, "locks", lease_note_);
  }
  const ring& r = table_->get();
  // Members new to this ring. Without the majority rule one of them may have
  // served slots this node believes its own (two clusters merging): those
  // are confirmed with it before granting again.
  std::vector<std::string> newcomers;
  if (before && !majority_rule(quorum_))
    for (std::string& m : r.members())
      if (m != node_ && !before->get().contains(m)) newcomers.push_back(std::move(m));
  const std::int64_t vanished = now + vanished_lease_ns();
  std::vector<bool> lost(slots_.size(), false);
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    const std::string key = lock_slot_key(i);
    result<std::string_view> o = table_->owner(key);
    const bool mine = o && *o == node_;
    slot_state& s = slots_[i];
    // An owner that left the ring without handing over: what it granted may
    // run for up to its lease bound from now.
    if (before) {
      result<std::string_view> p = before->owner(key);
      if (p && *p != node_ && !r.contains(*p) && !left_.contains(std::string(*p)))
        s.horizon_ns = std::max(s.horizon_ns, vanished);
    }
    if (mine && !s.owned) {
      s.owned = true;
      s.gained_ns = now;
      unresolve(s, now);
    } else if (mine && !s.resolved) {
      unresolve(s, now);  // ask the members of the new ring
    } else if (mine && !newcomers.empty()) {
      s.resolved = false;
      s.waiting = newcomers;
      s.losses = quorum_ ? quorum_->losses() : 0;
    } else if (!mine && s.owned) {
      s.owned = false;
      s.resolved = false;
      s.waiting.clear();
      lost[i] = true;
    }
  }
  // Slots that moved away: their waiters retry at the new owner; their
  // holders stay, not served here, until the new owner takes them over.
  for (auto& [name, l] : locks_)
    if (lost[l.slot] && !l.queue.empty()) fail_waiters(l, lock_errc::not_owner);
  ensure_claims();
}

void lock_manager::handle(net::member_event e) {
  peer_claim& pc = claims_[e.node];
  pc.have_ref = false;  // another process, or none: look its manager up again
  if (e.up) {
    left_.erase(e.node);
    return;
  }
  // Out of the majority: nobody waiting here can be granted.
  if (!quorate(now_ns())) fail_all_waiters(lock_errc::no_majority);
  // The node went down: its waiters cannot take a grant. Its holders keep
  // their leases until they run out (they may be alive, cut off): the
  // holder's client has marked them lost when it saw this node go.
  const std::int64_t now = now_ns();
  for (auto& [name, l] : locks_) {
    bool removed = false;
    for (auto it = l.queue.begin(); it != l.queue.end();) {
      waiter* w = *it;
      if (w->owner_node == e.node && !w->ready.timed_out()) {
        w->result = reply_error(lock_errc::revoked);
        it = l.queue.erase(it);
        w->ready.set();
        removed = true;
      } else {
        ++it;
      }
    }
    if (removed) promote(l, now);  // a shared run may have waited behind it
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
  if (q.token != 0 && !slots_[slot].resolved) co_return recovering(slot, now);
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
      note_lease(now + ttl_ns, now);
      h.expires_ns = std::max(h.expires_ns, now + ttl_ns);
      emit(lock_event::kind::renewed, l, h, now);
      co_return lock_reply{0, h.token, (h.expires_ns - now) / 1'000'000, h.holds, node_};
    }
    forget_if_idle(l);
    co_return reply_error(lock_errc::wrong_token);
  }
  if (usable(l, now) && free_for(l, mode) && !has_live_waiters(l)) {
    holder& h = grant(l, std::move(q.owner), std::move(q.owner_node), mode, ttl_ns, now);
    co_return lock_reply{0, h.token, q.ttl_ms, 1, node_};
  }
  if (q.wait_ms == 0) {
    forget_if_idle(l);
    // Held is said only of a lock that is: a slot that does not grant yet says so.
    if (l.holders.empty() && !usable(l, now) && quorate(now)) co_return recovering(slot, now);
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
  const std::int64_t end = now_ns();
  bool free_but_recovering = false;
  if (lock_state* ls = find(name)) {
    promote(*ls, end);  // a shared run may have been waiting behind it
    free_but_recovering = ls->holders.empty() && !usable(*ls, end) && slots_[ls->slot].owned;
    forget_if_idle(*ls);
  }
  if (free_but_recovering && quorate(end)) co_return recovering(slot, end);
  co_return reply_error(lock_errc::timeout);
}

// Renew and release: the holder a request names (its lock and index), or
// the error that says why there is none.
lock_manager::lock_state* lock_manager::find_hold(const std::string& name, std::uint64_t token,
                                                  const std::string& owner, std::size_t& index,
                                                  lock_reply& error) {
  lock_state* l = find(name);
  const std::uint32_t slot = l ? l->slot : lock_slot(name, opts_.slots);
  if (!slots_[slot].owned) {
    error = reply_error(lock_errc::not_owner);
    return nullptr;
  }
  if (!slots_[slot].resolved) {  // its leases may still be on their way here
    error = recovering(slot, now_ns());
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
  note_lease(now + q.ttl_ms * 1'000'000, now);
  h.expires_ns = now + q.ttl_ms * 1'000'000;
  emit(lock_event::kind::renewed, *l, h, now);
  return lock_reply{0, h.token, q.ttl_ms, h.holds, node_};
}

lock_reply lock_manager::handle(lock_release q) {
  if (q.name.empty()) return reply_error(lock_errc::empty_name);
  std::size_t i = 0;
  lock_reply error;
  lock_state* l = find_hold(q.name, q.token, q.owner, i, error);
  if (!l) return error;
  const std::int64_t now = now_ns();
  holder& h = l->holders[i];
  if (--h.holds > 0)
    return lock_reply{0, h.token, (h.expires_ns - now) / 1'000'000, h.holds, node_};
  const std::uint64_t token = h.token;
  end_holder(*l, i, lock_event::kind::released, now);
  promote(*l, now);
  forget_if_idle(*l);
  return lock_reply{0, token, 0, 0, node_};
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
  const std::int64_t now = now_ns();
  for (const slot_state& x : slots_) s.recovering += x.owned && (!x.resolved || x.usable_ns > now);
  return s;
}

// ---------------------------------------------------------------------------
// The service.

lock_service::lock_service(net::node& n, router& r, lock_options o) : node_(n) {
  spawn_options so;
  so.shard = static_cast<int>(n.shard());
  actor_ = n.runtime_ref().spawn<lock_manager>(so, n.name(), std::move(o), n.quorum(), &n);
  n.publish(actor_, lock_manager_name);
  r.watch(actor_);
  n.subscribe(actor_);
}

lock_service::~lock_service() {
  // A planned leave: the leases go to the members that own their slots next,
  // which serve them at once (a runtime already stopped answers at once).
  (void)node_.runtime_ref().ask_sync(actor_, lock_manager::leave_q{}, std::chrono::seconds(5));
  actor_.stop();
}

// ---------------------------------------------------------------------------
// The client: guards, and the keeper actor that sends every request of one
// node's clients (so a release and the next acquire arrive in order), renews
// leases and releases those of holders that stopped.

namespace detail {
/// One lease as the keeper tracks it: shared by the guards of its holds.
struct lease_state {
  std::string name, key, owner;
  std::string manager;  // the node whose manager last answered for it
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
      l.manager = rep->manager;
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
      if (it == leases_.end() || it->second.lost->load()) co_return;  // released, or lost
      // The lease runs at least until a renewal sent now could have been
      // answered; a slot in motion (not_owner, recovering) is asked again
      // until then.
      const auto lease_end = std::chrono::steady_clock::now() + it->second.ttl - period;
      result<lock_reply> rep = failure<lock_reply>(make_error_code(errc::ask_timeout));
      for (;;) {
        it = leases_.find(q.lease_key);
        if (it == leases_.end()) co_return;
        detail::lease_state& l = it->second;
        lock_renew r{l.name, l.owner, l.token, l.ttl.count()};
        auto call = node_->route_ask<lock_manager>(l.key, lock_manager_name, std::move(r), l.ttl);
        rep = co_await call;
        const bool moving =
            rep && (rep->error == static_cast<std::uint32_t>(lock_errc::not_owner) ||
                    rep->error == static_cast<std::uint32_t>(lock_errc::recovering));
        if (!moving ||
            std::chrono::steady_clock::now() + std::chrono::milliseconds(20) >= lease_end)
          break;
        co_await sleep_for(std::chrono::milliseconds(10));
      }
      it = leases_.find(q.lease_key);
      if (it == leases_.end()) co_return;
      detail::lease_state& l = it->second;
      if (rep && rep->error == 0) {
        l.manager = rep->manager;
        continue;
      }
      const std::string why = !rep ? rep.error().message()
                                   : make_error_code(static_cast<lock_errc>(rep->error)).message();
      mark_lost(l, "renewal failed (" + why + ")");
      co_return;
    }
  }

  /// A lease the holder must stop relying on.
  void mark_lost(detail::lease_state& l, const std::string& why) {
    if (l.lost->exchange(true)) return;
    l.renewing = false;
    system().log(log_level::warn, "locks", "lock '" + l.name + "' lost: " + why);
  }

  /// The link to a manager's node went down: the leases it holds there are
  /// lost now — the manager may grant them again once they run out, and this
  /// client cannot renew them meanwhile. A member that left handed them over.
  void handle(net::member_event e) {
    if (e.up || e.left) return;
    for (auto& [k, l] : leases_)
      if (l.manager == e.node) mark_lost(l, "its manager's node " + e.node + " went down");
  }

  task<void> handle(detail::release_q q) {
    auto it = leases_.find(q.lease_key);
    if (it == leases_.end()) co_return;
    detail::lease_state& l = it->second;
    const std::string key = l.key, name = l.name;
    lock_release r{l.name, l.owner, l.token};
    const bool lost = l.lost->load();
    if (--l.guards == 0) {
      if (auto c = current_.find(l.name + '\0' + l.owner);
          c != current_.end() && c->second == q.lease_key)
        current_.erase(c);
      leases_.erase(it);  // the renewal loop ends with it
    }
    // A slot in motion is asked again for a while; a lease that expired or
    // was revoked meanwhile needs no line; a release that did not reach the
    // manager does.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto call =
          node_->route_ask<lock_manager>(key, lock_manager_name, r, std::chrono::seconds(5));
      result<lock_reply> rep = co_await call;
      if (!rep) {
        if (!lost)
          system().log(log_level::warn, "locks",
                       "release of lock '" + name + "' failed (" + rep.error().message() +
                           "); the lease ends at its TTL");
        co_return;
      }
      const bool moving = rep->error == static_cast<std::uint32_t>(lock_errc::not_owner) ||
                          rep->error == static_cast<std::uint32_t>(lock_errc::recovering);
      if (!moving || std::chrono::steady_clock::now() >= give_up) co_return;
      co_await sleep_for(std::chrono::milliseconds(10));
    }
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
  n.subscribe(keeper_);
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
