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
  busy,              ///< try-lock (wait 0): the lock is held, or its slot is in its lock-delay
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
};
const boost::system::error_category& lock_category() noexcept;
inline boost::system::error_code make_error_code(lock_errc e) noexcept {
  return {static_cast<int>(e), lock_category()};
}

struct lock_options {
  std::chrono::milliseconds max_ttl{60'000};
  /// Grants wait this long in a slot the manager just began to serve; must be
  /// at least max_ttl plus the clock drift between nodes (default: max_ttl).
  std::chrono::milliseconds lock_delay{-1};
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
  enum class kind : std::uint8_t { granted, renewed, released, expired, revoked } what;
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
  std::int64_t ttl_ms = 0;  ///< lease left (a relative time: clocks differ)
  std::uint32_t holds = 0;
  template <class A>
  void serialize(A& a) {
    a(error, token, ttl_ms, holds);
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

/// Counters of one manager.
struct lock_stats {
  std::uint64_t grants = 0, releases = 0, expiries = 0, revocations = 0, timeouts = 0;
  std::uint64_t held = 0, waiters = 0;
  std::uint64_t waiters_refused = 0;  ///< acquires refused with too_many_waiters
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
  using remote_messages = net::message_list<lock_acquire, lock_renew, lock_release, lock_info_q>;

  /// `quorum`: the node's majority view (net::node::quorum()); null: no rule.
  lock_manager(std::string node_name, lock_options o,
               std::shared_ptr<const net::quorum_view> quorum = nullptr);

  task<lock_reply> handle(lock_acquire q);
  lock_reply handle(lock_renew q);
  lock_reply handle(lock_release q);
  lock_info handle(lock_info_q q);
  lock_stats handle(lock_stats_q) const;
  void handle(ring_changed c);
  void handle(net::member_event e);

  struct sweep_tick {};
  struct delay_over {
    std::int64_t at_ns;
  };
  task<void> handle(sweep_tick);
  task<void> handle(delay_over d);

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
    std::int64_t usable_ns = 0;  // steady clock: grants from then on
    std::uint64_t epoch_ms = 0;  // wall clock ms since 2025-01-01 (token high bits)
    std::uint64_t seq = 0;       // grants in this epoch (token low bits)
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
  void regain_slots(std::int64_t now);

  std::string node_;
  std::shared_ptr<const net::quorum_view> quorum_;
  std::uint64_t quorum_losses_ = 0;  // quorum_->losses() when last in the majority
  lock_options opts_;
  std::vector<slot_state> slots_;
  std::unordered_map<std::string, lock_state> locks_;
  std::vector<lock_state*> held_;  // locks with holders (and some without, till compacted)
  std::size_t purge_at_ = 4096;    // idle entries are kept for reuse up to about this
  bool sweeping_ = false;
  bool ring_seen_ = false;
  lock_stats stats_;
};

/// Runs a node's lock manager: spawns it on the node's shard, publishes it
/// as "troupe.locks", and feeds it the router's ring and the node's
/// membership. Destroy it before the router and the node.
class lock_service {
 public:
  lock_service(net::node& n, router& r, lock_options o = {});
  ~lock_service();
  lock_service(const lock_service&) = delete;
  lock_service& operator=(const lock_service&) = delete;
  const actor_ref<lock_manager>& ref() const noexcept { return actor_; }

 private:
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
