// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The lock-manager: leased, fenced, fair locks sharded over the cluster.
///
/// Lock names hash into `slots` slots; the ring-router places each slot on a
/// node (key "troupe.locks/<slot>"), whose lock_manager actor — published as
/// "troupe.locks" — grants its locks. A client's `locks` handle routes each
/// request to the slot's owner:
///
///   troupe::actors::lock_service service{node, router};   // on every node
///   troupe::actors::locks locks{node};                     // where clients run
///   ...inside a handler:
///   auto call = locks.acquire("orders/42", 10s, 2s);
///   result<lock_guard> g = co_await std::move(call);
///   if (g) use(g->token());     // fencing token: hand it to the resource
///   // released when g goes out of scope; renewed every ttl/3 meanwhile;
///   // g->lost() turns true if the lease could not be kept.
///
/// Semantics per lock name (docs/locks.md has the full statement):
/// - a grant is a lease with a TTL (at most lock_options::max_ttl) and a
///   fencing token that strictly increases per name across every grant —
///   also across manager restarts and slot moves (the token's high bits are
///   the slot's epoch, a wall-clock millisecond count taken when the manager
///   began serving the slot);
/// - waiters queue FIFO; a release wakes only the head (or the run of shared
///   requests at the head); wait = 0 is a try-lock; a waiter whose wait runs
///   out leaves the queue with lock_errc::timeout;
/// - renew and release need the holder's owner and current token; anything
///   else is a clear error and changes nothing;
/// - a reentrant acquire needs them too: an acquire that carries the
///   holder's owner and current token adds a hold; an acquire that names a
///   holder's owner without its token gets the lock's ordinary answer (busy,
///   a place in the queue, a grant when free) — never that holder's hold;
///   one that carries a token that is not the owner's current one is
///   refused with wrong_token;
/// - waiters are capped per lock (max_waiters_per_lock) and per manager
///   (max_waiters); an acquire that would wait past a cap is refused with
///   too_many_waiters at once, and waits are at most max_wait;
/// - expiry, the holder actor's death, and the holder's node going down
///   release at once (the next waiter is granted);
/// - shared (read) and exclusive (write) modes; an owner that holds a lock
///   may acquire it again in the same mode with its token (a hold count;
///   one release each);
/// - a manager that starts serving a slot (at start, or when the ring gives
///   it the slot) grants nothing in it for `lock_delay` (default max_ttl), so
///   a lease granted by the slot's previous owner has ended first;
/// - with the majority rule (net::node_options::expect), a manager whose node
///   is not in the majority grants and renews nothing (no_majority), and
///   fails its waiters, so the side of a partition with the majority may take
///   its slots over after the lock-delay (docs/locks.md, docs/cluster.md).

#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <troupe/actors/router.hpp>
#include <troupe/core.hpp>
#include <troupe/net/node.hpp>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace troupe::actors {

enum class lock_mode : std::uint8_t { exclusive = 0, shared = 1 };

/// Why a lock request was refused.
enum class lock_errc {
  timeout = 1,       ///< the wait ran out before the lock was free
  busy,              ///< try-lock (wait 0): the lock is held
  wrong_token,       ///< renew / release / reentrant acquire: not the holder's current token
  not_holder,        ///< renew / release by an owner that does not hold the lock
  expired,           ///< renew after the lease expired (the lock was released)
  bad_ttl,           ///< a TTL of zero or less
  ttl_too_long,      ///< a TTL above lock_options::max_ttl
  bad_wait,          ///< a negative wait, or one above lock_options::max_wait
  empty_name,        ///< an empty lock name
  name_too_long,     ///< a name longer than lock_options::max_name bytes
  mode_mismatch,     ///< a reentrant acquire in the other mode
  not_owner,         ///< this node does not serve the lock's slot (the ring is changing)
  revoked,           ///< the lock's slot moved away, or its holder's node went down
  too_many_waiters,  ///< the lock, or the manager, has as many waiters as its cap allows
  no_majority,       ///< this node is not in the majority (net::node_options::expect)
  recovering,        ///< the lock's slot is recovering: its previous owner's leases may still run
};
const boost::system::error_category& lock_category() noexcept;
inline boost::system::error_code make_error_code(lock_errc e) noexcept {
  return {static_cast<int>(e), lock_category()};
}

struct lock_options {
  std::chrono::milliseconds max_ttl{60'000};
  /// How long a lease granted by a node that vanished (crashed, or cut off)
  /// may still run after this node saw it go: a slot taken over from such a
  /// node grants nothing for this long. At least max_ttl plus the clock
  /// drift between nodes (default: max_ttl). Also the wait of a first start
  /// without the majority rule (net::node_options::expect = 0), which cannot
  /// know whether others serve the slots it believes are its own.
  std::chrono::milliseconds lock_delay{-1};
  /// A file (in the node's data dir) where the manager keeps a high-water
  /// mark of the leases it granted, so that after a restart it waits only
  /// for those that can still run. Empty: none (a restart then relies on
  /// the others having seen it go).
  std::string lease_file;
  std::chrono::milliseconds sweep{5};  ///< how often expired leases are looked for
  std::uint32_t slots = 256;
  std::size_t max_name = 512;
  /// The longest wait an acquire may ask for (longer: bad_wait).
  std::chrono::milliseconds max_wait{3'600'000};
  /// Requests waiting for one lock at once; one more gets too_many_waiters.
  std::size_t max_waiters_per_lock = 1024;
  /// Requests waiting at once in this manager, over all its locks.
  std::size_t max_waiters = 65'536;
  /// Called on the manager's shard for every grant, renewal, release and
  /// expiry (an audit trail; tests check histories with it).
  std::function<void(const struct lock_event&)> observer;
};

/// One change of a lock, as the manager saw it (steady-clock nanoseconds).
struct lock_event {
  /// handed_over: the lease moved to the slot's new owner (a planned move),
  /// which reports it as taken_over; the lease and its token go on there.
  enum class kind : std::uint8_t {
    granted,
    renewed,
    released,
    expired,
    revoked,
    handed_over,
    taken_over
  } what;
  std::string name;
  std::string owner;
  std::uint64_t token = 0;
  lock_mode mode = lock_mode::exclusive;
  std::int64_t at_ns = 0;       ///< when it happened
  std::int64_t expires_ns = 0;  ///< granted / renewed: when the lease ends
};

// --- the wire messages (clients to managers) ----------------------------------

struct lock_acquire {
  std::string name, owner, owner_node;
  std::int64_t ttl_ms = 0, wait_ms = 0;
  std::uint8_t mode = 0;
  /// 0: a new hold. Otherwise the owner's current token: a reentrant acquire.
  std::uint64_t token = 0;
  template <class A>
  void serialize(A& a) {
    a(name, owner, owner_node, ttl_ms, wait_ms, mode, token);
  }
};
struct lock_renew {
  std::string name, owner;
  std::uint64_t token = 0;
  std::int64_t ttl_ms = 0;
  template <class A>
  void serialize(A& a) {
    a(name, owner, token, ttl_ms);
  }
};
struct lock_release {
  std::string name, owner;
  std::uint64_t token = 0;
  template <class A>
  void serialize(A& a) {
    a(name, owner, token);
  }
};
struct lock_reply {
  std::uint32_t error = 0;  ///< a lock_errc; 0 = done
  std::uint64_t token = 0;
  /// Lease left (a relative time: clocks differ); with `recovering`, how long
  /// the slot is known to recover for (0: not known yet, retry shortly).
  std::int64_t ttl_ms = 0;
  std::uint32_t holds = 0;
  std::string manager;  ///< the node whose manager answered
  template <class A>
  void serialize(A& a) {
    a(error, token, ttl_ms, holds, manager);
  }
};
struct lock_info_q {
  std::string name;
  template <class A>
  void serialize(A& a) {
    a(name);
  }
};
struct lock_info {
  std::uint32_t error = 0;
  std::vector<std::string> holders;
  std::vector<std::uint64_t> tokens;
  std::uint8_t mode = 0;
  std::uint32_t waiters = 0;
  template <class A>
  void serialize(A& a) {
    a(error, holders, tokens, mode, waiters);
  }
};

// --- between managers: the hand-off of slots -----------------------------------

/// One lease of a slot on its way to the slot's next owner.
struct lock_handed_lease {
  std::string name, owner, owner_node;
  std::uint64_t token = 0;
  std::int64_t left_ns = 0;  ///< lease left when sent
  std::uint32_t holds = 0;
  std::uint8_t mode = 0;
  template <class A>
  void serialize(A& a) {
    a(name, owner, owner_node, token, left_ns, holds, mode);
  }
};
/// A manager's answer for one slot another manager claims.
struct lock_handed_slot {
  enum : std::uint8_t { released = 0, still_owner = 1, not_yours = 2 };
  std::uint32_t slot = 0;
  std::uint8_t state = released;
  std::uint64_t epoch_ms = 0;   ///< the highest token epoch it used in the slot
  std::int64_t horizon_ns = 0;  ///< leases it cannot hand over may run this much longer
  std::vector<lock_handed_lease> leases;
  template <class A>
  void serialize(A& a) {
    a(slot, state, epoch_ms, horizon_ns, leases);
  }
};
/// "These slots are mine now": sent by a manager that gained slots to every
/// other member of its ring; each releases a slot (handing its leases over)
/// only when it does not serve it and its own ring is the claimer's (same
/// digest: same members, so every member that might serve it was asked).
struct lock_claim {
  std::string from;
  std::int64_t max_ttl_ms = 0;
  std::uint64_t ring_digest = 0;
  std::vector<std::uint32_t> slots;
  template <class A>
  void serialize(A& a) {
    a(from, max_ttl_ms, ring_digest, slots);
  }
};
struct lock_claim_reply {
  std::int64_t max_ttl_ms = 0;
  std::vector<lock_handed_slot> slots;
  template <class A>
  void serialize(A& a) {
    a(max_ttl_ms, slots);
  }
};
/// A manager leaving (its node stops): every lease it holds, sent to the
/// member that owns the lease's slot once it is gone (empty for the others).
struct lock_leaving {
  std::string from;
  std::int64_t max_ttl_ms = 0;
  std::vector<lock_handed_slot> slots;
  template <class A>
  void serialize(A& a) {
    a(from, max_ttl_ms, slots);
  }
};

/// Counters of one manager.
struct lock_stats {
  std::uint64_t grants = 0, releases = 0, expiries = 0, revocations = 0, timeouts = 0;
  std::uint64_t held = 0, waiters = 0;
  std::uint64_t waiters_refused = 0;  ///< acquires refused with too_many_waiters
  std::uint64_t handed_over = 0;      ///< leases handed to a slot's next owner
  std::uint64_t taken_over = 0;       ///< leases taken over from a slot's previous owner
  std::uint32_t recovering = 0;       ///< slots it owns that do not grant yet
  /// How long the acquires that queued waited, granted or not.
  latency_histogram waits;
};
struct lock_stats_q {};

}  // namespace troupe::actors

// Wire ids from troupe's reserved range (TROUPE_REMOTE_MESSAGE refuses them).
#define TROUPE_LOCK_MESSAGE(Type, Id)                             \
  template <>                                                     \
  struct troupe::net::wire_id<troupe::actors::Type> {             \
    static constexpr std::uint32_t value = Id;                    \
    static constexpr const char* name = "troupe::actors::" #Type; \
  };                                                              \
  template <>                                                     \
  struct troupe::remote_codec<troupe::actors::Type>               \
      : troupe::net::detail::wire_codec<troupe::actors::Type> {}
TROUPE_LOCK_MESSAGE(lock_acquire, 0xFFFF0101u);
TROUPE_LOCK_MESSAGE(lock_renew, 0xFFFF0102u);
TROUPE_LOCK_MESSAGE(lock_release, 0xFFFF0103u);
TROUPE_LOCK_MESSAGE(lock_reply, 0xFFFF0104u);
TROUPE_LOCK_MESSAGE(lock_info_q, 0xFFFF0105u);
TROUPE_LOCK_MESSAGE(lock_info, 0xFFFF0106u);
TROUPE_LOCK_MESSAGE(lock_claim, 0xFFFF0107u);
TROUPE_LOCK_MESSAGE(lock_claim_reply, 0xFFFF0108u);
TROUPE_LOCK_MESSAGE(lock_leaving, 0xFFFF0109u);
#undef TROUPE_LOCK_MESSAGE

namespace troupe::actors {

/// The slot of a lock name, and the routing key of a slot.
std::uint32_t lock_slot(std::string_view name, std::uint32_t slots) noexcept;
std::string lock_slot_key(std::uint32_t slot);

/// The name lock managers are published under.
inline constexpr const char* lock_manager_name = "troupe.locks";

/// One node's share of the locks. Use through lock_service.
class lock_manager : public actor {
 public:
  static constexpr bool reentrant = true;  // waiters park while others are served
  static constexpr const char* type_name = "troupe::actors::lock_manager";
  using remote_messages = net::message_list<lock_acquire, lock_renew, lock_release, lock_info_q,
                                            lock_claim, lock_leaving>;

  /// `n`: the node, to hand slots over with the other members' managers
  /// (null: a manager alone, which claims nothing). `quorum`: the node's
  /// majority view (net::node::quorum()); null: no rule.
  lock_manager(std::string node_name, lock_options o,
               std::shared_ptr<const net::quorum_view> quorum = nullptr, net::node* n = nullptr);

  task<lock_reply> handle(lock_acquire q);
  lock_reply handle(lock_renew q);
  lock_reply handle(lock_release q);
  lock_info handle(lock_info_q q);
  lock_stats handle(lock_stats_q) const;
  lock_claim_reply handle(lock_claim q);
  lock_reply handle(lock_leaving q);
  void handle(ring_changed c);
  void handle(net::member_event e);

  struct sweep_tick {};
  struct delay_over {
    std::int64_t at_ns;
  };
  struct claim_tick {};
  struct claim_to {
    std::string peer;
  };
  /// Hands every lease to the members that own its slot once this node is
  /// gone, and serves nothing from then on (lock_service's destructor).
  struct leave_q {};
  task<void> handle(sweep_tick);
  task<void> handle(delay_over d);
  task<void> handle(claim_tick);
  task<void> handle(claim_to c);
  task<bool> handle(leave_q);

 private:
  struct holder {
    std::string owner, owner_node;
    std::uint64_t token;
    std::int64_t granted_ns, expires_ns;
    std::uint32_t holds;
  };
  struct waiter;
  struct lock_state {
    std::string_view name;  // the key of locks_
    std::uint32_t slot;
    bool in_held = false;  // listed in held_ (may have no holders left: compacted lazily)
    lock_mode mode = lock_mode::exclusive;
    std::vector<holder> holders;
    std::list<waiter*> queue;
  };
  struct slot_state {
    bool owned = false;
    /// Owned, and every other member has said it no longer serves the slot
    /// (and handed over its leases): grants from usable_ns on.
    bool resolved = false;
    std::int64_t usable_ns = 0;        // steady clock
    std::int64_t gained_ns = 0;        // when the ring gave it to this node
    std::int64_t horizon_ns = 0;       // leases of a vanished owner may run until then
    std::uint64_t epoch_ms = 0;        // wall clock ms since 2025-01-01 (token high bits)
    std::uint64_t seq = 0;             // grants in this epoch (token low bits)
    std::uint64_t losses = 0;          // the quorum's loss count its claim began under
    std::vector<std::string> waiting;  // members yet to release it
  };

  boost::system::error_code check(std::string_view name, std::int64_t ttl_ms) const;
  lock_state* find(const std::string& name);
  lock_state* find_hold(const std::string& name, std::uint64_t token, const std::string& owner,
                        std::size_t& index, lock_reply& error);
  lock_state& get(const std::string& name, std::uint32_t slot);
  void purge_idle();
  void compact_held();
  void forget_if_idle(lock_state& l);
  bool usable(const lock_state& l, std::int64_t now);
  lock_reply recovering(std::uint32_t slot, std::int64_t now) const;
  bool free_for(const lock_state& l, lock_mode m) const;
  bool has_live_waiters(const lock_state& l) const;
  holder& grant(lock_state& l, std::string owner, std::string owner_node, lock_mode m,
                std::int64_t ttl_ns, std::int64_t now);
  void end_holder(lock_state& l, std::size_t i, lock_event::kind why, std::int64_t now);
  void promote(lock_state& l, std::int64_t now);
  void expire_due(lock_state& l, std::int64_t now);
  void fail_waiters(lock_state& l, lock_errc why);
  void fail_all_waiters(lock_errc why);
  void emit(lock_event::kind k, const lock_state& l, const holder& h, std::int64_t now);
  void ensure_sweeper();
  std::int64_t now_ns() const;
  bool quorate(std::int64_t now);
  // The hand-off of slots (docs/locks.md, "Moving slots").
  void unresolve(slot_state& s, std::int64_t now);
  void ensure_claims();
  void try_resolve(std::uint32_t slot, std::int64_t now);
  std::vector<lock_handed_slot> hand_over(const std::vector<std::uint32_t>& slots,
                                          std::int64_t now);
  void take_over(const lock_handed_slot& h, std::int64_t now);
  std::int64_t vanished_lease_ns() const;
  void note_lease(std::int64_t expires_ns, std::int64_t now);
  std::vector<std::string> peers() const;

  std::string node_;
  net::node* net_;
  std::shared_ptr<const net::quorum_view> quorum_;
  std::uint64_t quorum_losses_ = 0;  // quorum_->losses() when last in the majority
  lock_options opts_;
  std::vector<slot_state> slots_;
  std::unordered_map<std::string, lock_state> locks_;
  std::vector<lock_state*> held_;  // locks with holders (and some without, till compacted)
  std::size_t purge_at_ = 4096;    // idle entries are kept for reuse up to about this
  bool sweeping_ = false;
  bool claiming_ = false;  // the claim tick runs
  bool leaving_ = false;
  std::shared_ptr<const ring_table> table_;  // the latest ring
  std::int64_t floor_ns_ = 0;          // nothing is granted before (a first start, the lease file)
  std::int64_t peer_ttl_ns_ = 0;       // the largest max TTL heard from another member
  std::int64_t lease_mark_ms_ = 0;     // the lease file's mark (wall ms since 2025-01-01)
  std::int64_t previous_life_ns_ = 0;  // leases of this node's previous life end by then
  std::string lease_note_;             // a line to log once serving starts
  bool lease_file_failing_ = false;
  std::unordered_set<std::string> left_;  // members that handed over and left
  struct peer_claim {
    bool in_flight = false;
    std::chrono::milliseconds backoff{0};
    actor_ref<lock_manager> ref;
    bool have_ref = false;
    std::uint32_t refusals = 0;  // answers in a row that released nothing
  };
  std::unordered_map<std::string, peer_claim> claims_;
  lock_stats stats_;
};

/// Runs a node's lock manager: spawns it on the node's shard, publishes it
/// as "troupe.locks", and feeds it the router's ring and the node's
/// membership. Its destructor hands the manager's leases to the members that
/// own their slots next (a planned leave, bounded by 5 s), then stops it.
/// Destroy it before the router and the node, from outside the runtime.
class lock_service {
 public:
  lock_service(net::node& n, router& r, lock_options o = {});
  ~lock_service();
  lock_service(const lock_service&) = delete;
  lock_service& operator=(const lock_service&) = delete;
  const actor_ref<lock_manager>& ref() const noexcept { return actor_; }

 private:
  net::node& node_;
  actor_ref<lock_manager> actor_;
};

class lock_keeper;
namespace detail {
struct guard_state;
}

/// A held lock. Releases on destruction (or release()); renews its lease
/// every ttl/3 while held (unless the acquire said not to). lost() turns true
/// when a renewal is refused or fails — from then on the holder must stop
/// using what the lock protects. Move-only.
class lock_guard {
 public:
  lock_guard() = default;
  lock_guard(lock_guard&&) noexcept = default;
  lock_guard& operator=(lock_guard&& o) noexcept;
  ~lock_guard();

  /// The fencing token: pass it to the protected resource, which should
  /// refuse requests carrying a smaller token than one it has seen.
  std::uint64_t token() const noexcept;
  const std::string& name() const noexcept;
  /// How many times this owner holds the lock (reentrant acquires).
  std::uint32_t holds() const noexcept;
  /// True once the lease could not be kept (renewal refused, slot moved,
  /// manager unreachable past the lease): stop relying on the lock.
  bool lost() const noexcept;
  bool held() const noexcept { return static_cast<bool>(s_); }
  /// Releases now (also done by the destructor). Idempotent.
  void release();

 private:
  friend class locks;
  explicit lock_guard(std::shared_ptr<detail::guard_state> s) : s_(std::move(s)) {}
  std::shared_ptr<detail::guard_state> s_;
};

struct lock_client_options {
  std::uint32_t slots = 256;  ///< must match the managers' lock_options::slots
  /// Extra time an acquire waits for the manager's reply beyond its wait.
  std::chrono::milliseconds reply_margin{5000};
  bool keep_alive = true;  ///< renew held leases every ttl/3
};

/// A node's client of the lock-managers: routes requests by lock name.
/// acquire() only inside a coroutine on a shard; the calling actor is the
/// holder (its death releases the lock). Destroy before the node.
class locks {
 public:
  explicit locks(net::node& n, lock_client_options o = {});
  ~locks();
  locks(const locks&) = delete;
  locks& operator=(const locks&) = delete;

  /// Waits up to `wait` for the lock (0: try once). Errors: lock_errc (busy,
  /// timeout, bad_ttl, ...), or a routing / transport error (no_route,
  /// node_down, ask_timeout).
  task<result<lock_guard>> acquire(std::string name, std::chrono::milliseconds ttl,
                                   std::chrono::milliseconds wait,
                                   lock_mode mode = lock_mode::exclusive);

  /// The current holders and waiters of a lock (from its manager).
  task<result<lock_info>> info(std::string name);

 private:
  net::node& node_;
  lock_client_options opts_;
  actor_ref<lock_keeper> keeper_;
};

}  // namespace troupe::actors

template <>
struct boost::system::is_error_code_enum<troupe::actors::lock_errc> : std::true_type {};
