// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// node: this process as a member of a troupe cluster.
///
/// A node listens on one TCP endpoint, dials its seeds, and keeps one
/// authenticated link per peer node (link.hpp). Local actors are published
/// under a name; a peer looks them up and gets an actor_ref<T> to a local
/// *proxy* that forwards tells and asks over the link — location transparency:
/// the ref is used exactly like a local one. Messages (and ask replies) that
/// cross the wire need TROUPE_WIRE_MESSAGE; a send of anything else to a
/// remote ref fails at the sender with errc::not_serializable.
///
/// Delivery: from one sender to one remote receiver, in send order, at most
/// once. When a link goes down, asks pending on it fail at once with
/// errc::node_down, the peer's proxies stop with exit_reason::node_down (their
/// monitors fire), later sends through them fail with errc::actor_dead, and
/// the dialing side redials with exponential backoff and jitter. After a
/// reconnect, look the actors up again.
///
/// All of the node's work runs on one shard (node_options::shard).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <troupe/core.hpp>
#include <troupe/net/endpoint.hpp>
#include <troupe/net/frame.hpp>
#include <troupe/net/link.hpp>
#include <troupe/net/route_wire.hpp>
#include <troupe/net/tls.hpp>
#include <troupe/net/wire.hpp>
#include <unordered_map>
#include <vector>

/// Registers Type for the wire (troupe::net::wire_id) and for remote refs
/// (troupe::remote_codec). Use at global namespace scope; Id is a stable,
/// cluster-unique nonzero u32 below 0xFFFF0000.
#define TROUPE_REMOTE_MESSAGE(Type, Id) \
  TROUPE_WIRE_MESSAGE(Type, Id);        \
  template <>                           \
  struct troupe::remote_codec<Type> : ::troupe::net::detail::wire_codec<Type> {}

namespace troupe::net {

namespace detail {
/// remote_codec for a registered wire message.
template <class M>
struct wire_codec {
  static constexpr bool enabled = true;
  static constexpr std::uint32_t type_id = wire_id<M>::value;
  static void encode(const M& m, std::string& out) { ::troupe::net::encode(m, out); }
  static result<M> decode(std::string_view bytes) { return ::troupe::net::decode<M>(bytes); }
};
}  // namespace detail

/// The message types an actor accepts from other nodes:
/// `using remote_messages = troupe::net::message_list<deposit, balance>;`
template <class... Ms>
struct message_list {};

struct node_options {
  std::string name;                ///< this node's name, unique in the cluster
  std::string cluster = "troupe";  ///< peers must use the same cluster name
  /// port 0: an ephemeral port (see node::port()); a host name is resolved
  /// once, in the constructor (resolve_bind: its first IPv4 address, else its first)
  endpoint listen{"127.0.0.1", 0};
  /// Nodes to dial at start, and to redial. A seed named by a host name is
  /// resolved again on every dial attempt, so a peer whose address changed
  /// (a restarted container) is found at the next redial.
  std::vector<endpoint> seeds;
  std::optional<std::string> secret;  ///< shared cluster secret; none = loopback peers only
  std::chrono::milliseconds heartbeat{250};
  /// A peer silent this long is suspected; it is down once its silence is
  /// also unlikely given its past gaps (phi >= phi_threshold), at the latest
  /// after down_max (link_config, arrival_window; docs/cluster.md).
  std::chrono::milliseconds down_after{1500};
  double phi_threshold = 8.0;                 ///< 0: down at down_after, no suspicion
  std::chrono::milliseconds down_max{0};      ///< 0: 4 x down_after
  std::chrono::milliseconds redial_min{100};  ///< first redial delay (then x2, with jitter)
  std::chrono::milliseconds redial_max{5000};
  /// A member that is down this long is no longer dialed (one reached
  /// through a seed always is: the seed is dialed again).
  std::chrono::milliseconds forget_after{300'000};
  /// The cluster's size, for the majority rule (docs/cluster.md): a node
  /// counts as in the majority while it has heard, within down_after, from
  /// more than expect / 2 members, itself included, and its own shard has
  /// not stalled. The lock managers grant and renew only then. 0: no rule
  /// (every node acts alone; a partition may then grant one lock twice).
  std::size_t expect = 0;
  std::uint32_t max_frame = default_max_frame;
  unsigned shard = 0;
  /// Turns a seed's host name (not an IP address, which is dialed as it is)
  /// into the endpoints to dial, in the order they are tried; called on the
  /// node's shard on every dial attempt, and must not block. Empty (the
  /// default): Asio's resolver (getaddrinfo), asynchronously, bounded by
  /// seed_resolve_timeout. Tests put a fake here.
  std::function<result<std::vector<boost::asio::ip::tcp::endpoint>>(const endpoint& seed)> resolve;
  std::chrono::milliseconds seed_resolve_timeout{10'000};  ///< one resolution, at most

  // Caps on what a peer, or a connection that has not authenticated, can
  // make this node hold (docs/security.md).
  std::chrono::milliseconds handshake_timeout{5000};  ///< connect to authenticated, at most
  std::uint32_t handshake_max_frame = default_handshake_max_frame;  ///< bytes per frame until then
  std::size_t max_handshakes = 64;  ///< accepted connections not yet authenticated, at most
  std::size_t max_outbound = default_max_outbound;  ///< per link: bytes waiting to be written
  std::size_t max_peers = 1024;                     ///< peers linked at once
  std::size_t max_relays = 65536;  ///< forwarded asks awaiting their reply, over all links
  std::chrono::milliseconds relay_timeout{120'000};  ///< a forwarded ask's reply, awaited at most
  /// Certificate, key and CA: links speak mutual TLS 1.3 and a peer's
  /// certificate must name the node it claims (tls.hpp). None: plaintext.
  tls_options tls;
};

/// Delivered to subscribers when a peer's link comes up or goes down.
struct member_event {
  std::string node;
  bool up = false;
  std::string reason;  ///< why it went down
  bool left = false;   ///< down because it said it was leaving (a planned stop)
};

/// One peer as the node sees it.
struct member_info {
  std::string name;
  bool up = false;
  std::uint64_t incarnation = 0;  ///< which life of the member (random per process start)
  endpoint address;               ///< where it is dialed (port 0: not known)
  link_stats stats;
};

/// Routing counters of one node (see route_tell / route_ask).
struct route_stats {
  std::uint64_t epoch = 0;          ///< the node's route epoch (0: no table installed)
  std::uint64_t sent = 0;           ///< routed messages this node placed (local or remote)
  std::uint64_t received = 0;       ///< routed frames that arrived from peers
  std::uint64_t forwarded = 0;      ///< of those, forwarded once to a newer owner
  std::uint64_t undeliverable = 0;  ///< routed to a name not published on the owner
};

/// The node's tables and what its caps refused (docs/security.md).
struct limit_stats {
  std::uint64_t handshakes = 0;           ///< accepted connections authenticating now
  std::uint64_t handshakes_refused = 0;   ///< closed at once: max_handshakes were in progress
  std::uint64_t handshake_too_large = 0;  ///< closed: a frame over handshake_max_frame
  std::uint64_t handshake_timeouts = 0;   ///< closed: not authenticated within handshake_timeout
  std::uint64_t link_congested = 0;  ///< frames refused: a link's outbound buffer was at its cap
  std::uint64_t slow_consumers = 0;  ///< links closed: at the cap, nothing taken for down_after
  std::uint64_t dials_refused = 0;   ///< seeds not dialed: not loopback, and no secret
  std::uint64_t peers = 0;           ///< entries in the peer table now
  std::uint64_t peers_refused = 0;   ///< links closed: max_peers were linked
  std::uint64_t pending_asks = 0;    ///< asks sent to peers awaiting their reply now
  std::uint64_t relays = 0;          ///< forwarded asks awaiting their reply now
  std::uint64_t relays_expired = 0;  ///< forgotten after relay_timeout
  std::uint64_t relays_refused = 0;  ///< delivered here instead: max_relays were waiting
};

struct cluster_state {
  std::string self;
  std::size_t expect = 0;  ///< node_options::expect (0: no majority rule)
  bool majority = true;    ///< in the majority now (always, without the rule)
  std::vector<member_info> members;
  route_stats routing;
  limit_stats limits;
};

/// Where keys live: an immutable placement of keys on member nodes by name,
/// installed in a node with node::set_route_table (by
/// troupe::actors::ring_router, or by hand). Read from the node's shard only.
class route_table {
 public:
  virtual ~route_table() = default;
  /// The member owning `key` (a node name: this node's own, or a peer's).
  virtual result<std::string_view> owner(std::string_view key) const = 0;
  /// Up to `r` distinct members for `key`, owner first: where the key goes
  /// when its owner is unreachable (the order the ring would give it).
  virtual std::vector<std::string_view> owners(std::string_view key, std::size_t r) const = 0;
  virtual std::size_t size() const = 0;
  /// Identifies the placement: two tables with the same nonzero digest give
  /// every key the same owners in the same order. Routed frames carry the
  /// low 32 bits of the sender's, so a receiver whose table is newer but
  /// places keys the same way skips its check for a forward. 0 (the
  /// default): unknown, always checked.
  virtual std::uint64_t digest() const noexcept { return 0; }

  /// Optional, for speed: members by index. A table that implements it
  /// names member i (i < size()) with member(i), a name that stays valid as
  /// long as the table, and gives the index of key's owner (a nonempty key)
  /// with owner_index; npos (the default) means "ask owner()". A node then
  /// resolves each member to its link once per table, not once per message.
  static constexpr std::uint32_t npos = ~std::uint32_t{0};
  virtual std::uint32_t owner_index(std::string_view /*key*/) const { return npos; }
  virtual std::string_view member(std::uint32_t /*i*/) const noexcept { return {}; }
};

/// Why a routed send was refused at once (category "troupe.route").
enum class route_errc {
  empty_key = 1,  ///< the key is empty
  key_too_long,   ///< the key is longer than route_key_max bytes
  bad_name,       ///< the target name is empty or longer than route_name_max bytes
};
const boost::system::error_category& route_category() noexcept;
inline boost::system::error_code make_error_code(route_errc e) noexcept {
  return {static_cast<int>(e), route_category()};
}

class node;

/// Whether a node is in the majority now (node_options::expect), readable
/// from any thread: the node updates it every heartbeat from its links'
/// last arrivals, so it says "no" from the moment the node has heard from
/// too few members for down_after, and — should the node's own shard stall
/// (a pause, a stop signal, starvation) for more than down_after / 2 — for
/// down_after after it runs again, whatever stale bytes its sockets hold.
class quorum_view {
 public:
  quorum_view(std::size_t expect, std::chrono::nanoseconds stall) noexcept
      : expect_(expect), stall_ns_(stall.count()) {}
  std::size_t expect() const noexcept { return expect_; }
  /// In the majority at steady-clock time `now_ns`.
  bool in_majority(std::int64_t now_ns) const noexcept {
    if (expect_ == 0) return true;
    return now_ns - tick_ns_.load(std::memory_order_acquire) <= stall_ns_ &&
           now_ns < until_ns_.load(std::memory_order_acquire);
  }
  /// How many times the node has seen itself leave the majority: a service
  /// that finds this changed knows the others may have taken over its work
  /// meanwhile (the lock managers wait out the lock-delay again).
  std::uint64_t losses() const noexcept { return losses_.load(std::memory_order_acquire); }
  /// The node's: its last tick, and until when the members it heard from make a majority.
  void update(std::int64_t tick_ns, std::int64_t until_ns) noexcept {
    until_ns_.store(until_ns, std::memory_order_release);
    tick_ns_.store(tick_ns, std::memory_order_release);
  }
  void lost() noexcept { losses_.fetch_add(1, std::memory_order_acq_rel); }

 private:
  std::size_t expect_;
  std::int64_t stall_ns_;
  std::atomic<std::int64_t> tick_ns_{0};
  std::atomic<std::int64_t> until_ns_{0};
  std::atomic<std::uint64_t> losses_{0};
};

// ---------------------------------------------------------------------------
// Internals the templates above need.

namespace detail {

/// Decodes one message type for one published actor type and sends it in.
using inbound_fn = boost::system::error_code (*)(troupe::detail::actor_cell* target,
                                                 std::string_view payload,
                                                 const actor_ref<peer_link>& from,
                                                 std::uint64_t correlation);

struct published_actor {
  actor_addr addr;
  std::string type_name;
  std::unordered_map<std::uint32_t, inbound_fn> inbound;
};

/// Sends one frame over link `l`: appended to its output at once on the
/// link's shard, else carried there through that shard's inbox (so frames
/// from one thread keep their order with the node's own). Dropped if the
/// link has stopped.
void send_frame(const actor_ref<peer_link>& l, const frame_header& h, std::string payload) noexcept;

/// The link object behind `l` if it runs on this thread's shard and is alive
/// (its output may then be appended to directly), else null.
peer_link* link_here(const actor_ref<peer_link>& l) noexcept;

/// The payload of a reply_error frame: the errc as a u32.
std::string error_payload(errc e);

/// An ask that arrived over a link: its reply goes back over that link.
template <class R>
struct remote_ask final : troupe::detail::ask_state<R> {
  actor_ref<peer_link> from;
  std::uint64_t correlation = 0;
  remote_ask() {
    this->destroy_ = [](troupe::detail::ask_state_base* b) noexcept {
      delete static_cast<remote_ask*>(b);
    };
    this->on_complete_ = &reply;
    this->refs_.store(1);  // only the envelope's: there is no local waiter
  }
  static void reply(troupe::detail::ask_state_base* b) noexcept {
    auto* self = static_cast<remote_ask*>(b);
    errc e = self->error_;
    if (e == errc{}) {
      if constexpr (std::is_void_v<R>) {
        send_frame(self->from, frame_header{frame_kind::reply, 0, 0, 0, self->correlation}, {});
        return;
      } else if (peer_link* lk = link_here(self->from)) {
        // On the link's shard (the usual case: the responder runs on the
        // node's shard): the value is encoded straight into the link's output.
        peer_link::append_result r = peer_link::append_result::ok;
        try {
          r = lk->append(frame_header{frame_kind::reply, 0, 0, 0, self->correlation},
                         frame_payload_max, [&](std::string& out) { encode(*self->value_, out); });
        } catch (...) {  // the frame was taken back
          e = errc::not_serializable;
        }
        if (r == peer_link::append_result::too_large) e = errc::message_too_large;
        if (e == errc{}) return;  // sent, or the link closed (the frame is dropped)
      } else {
        // Elsewhere: encoded here, appended on the link's shard.
        std::string payload;
        try {
          encode(*self->value_, payload);
        } catch (...) {
          e = errc::not_serializable;
        }
        if (e == errc{} && payload.size() > frame_payload_max) e = errc::message_too_large;
        if (e == errc{}) {
          send_frame(self->from, frame_header{frame_kind::reply, 0, 0, 0, self->correlation},
                     std::move(payload));
          return;
        }
      }
    }
    std::string payload;
    try {
      payload = error_payload(e);
    } catch (...) {  // out of memory: the reply is lost, the asker's deadline ends it
      return;
    }
    send_frame(self->from, frame_header{frame_kind::reply_error, 0, 0, 0, self->correlation},
               std::move(payload));
  }
  static void* operator new(std::size_t n) { return troupe::detail::pool_allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept {
    troupe::detail::pool_deallocate(p, n);
  }
};

template <class T, class M>
boost::system::error_code inbound(troupe::detail::actor_cell* target, std::string_view payload,
                                  const actor_ref<peer_link>& from, std::uint64_t correlation) {
  result<M> m = remote_codec<M>::decode(payload);
  if (!m) return m.error();
  auto* e = new troupe::detail::envelope<T, M>(target, std::move(*m));
  using R = troupe::detail::reply_t<T, M>;
  if (correlation != 0) {
    if constexpr (std::is_void_v<R> || remote_message<R>) {
      auto* st = new remote_ask<R>();
      st->from = from;
      st->correlation = correlation;
      e->ask_base_ = st;
    } else {
      // The reply type cannot cross the wire: refuse the ask, do not run it.
      troupe::detail::envelope<T, M>::discard(e, errc::not_serializable);
      std::string p;
      encode(static_cast<std::uint32_t>(errc::not_serializable), p);
      send_frame(from, frame_header{frame_kind::reply_error, 0, 0, 0, correlation}, std::move(p));
      return {};
    }
  }
  (void)troupe::detail::send(
      e);  // a dead or full target fails the ask, which replies with the error
  return {};
}

template <class T, class... Ms>
void fill_inbound(published_actor& p, message_list<Ms...>) {
  (
      [&] {
        static_assert(remote_message<Ms>,
                      "troupe: remote_messages lists a type without TROUPE_REMOTE_MESSAGE");
        static_assert(troupe::detail::handles<T, Ms>,
                      "troupe: remote_messages lists a type the actor does not handle");
        p.inbound.emplace(remote_codec<Ms>::type_id, &inbound<T, Ms>);
      }(),
      ...);
}

struct publish_q {
  std::string name;
  published_actor entry;
};
struct lookup_q {
  std::string peer;
  std::string name;
  std::string type_name;
  const troupe::detail::actor_type_info* type = nullptr;
};
struct subscribe_q {
  actor_addr who;
  std::function<void(const member_event&)> send;
};
struct state_q {};

/// Owns an envelope on its way to the node; fails its ask if it is dropped
/// unsent (the node stopped first).
class owned_message {
 public:
  explicit owned_message(troupe::detail::message* m) noexcept : m_(m) {}
  owned_message(owned_message&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  owned_message& operator=(owned_message&&) = delete;
  ~owned_message() {
    if (m_) m_->ops_->discard(m_, errc::no_route);
  }
  troupe::detail::message* release() noexcept { return std::exchange(m_, nullptr); }

 private:
  troupe::detail::message* m_;
};

struct route_q {
  std::string key;
  std::string name;
  const troupe::detail::actor_type_info* type;
  owned_message msg;
};
struct set_route_q {
  std::shared_ptr<const route_table> table;
};

inline boost::system::error_code check_route(std::string_view key, std::string_view name) noexcept {
  if (key.empty()) [[unlikely]]
    return make_error_code(route_errc::empty_key);
  if (key.size() > route_key_max) [[unlikely]]
    return make_error_code(route_errc::key_too_long);
  if (name.empty() || name.size() > route_name_max) [[unlikely]]
    return make_error_code(route_errc::bad_name);
  return {};
}

/// A routed M to a T: the type checks every routed send makes.
template <class T, class M>
constexpr void check_routable() {
  static_assert(troupe::detail::handles<T, M>,
                "troupe: this actor type has no handle() for the message type");
  static_assert(remote_message<M>,
                "troupe: a routed message may cross the wire: register it with "
                "TROUPE_REMOTE_MESSAGE");
}

/// An ask's envelope goes to the node, which places it by key.
struct route_dispatch {
  static constexpr bool direct = false;
  const node* n;
  std::string key;
  std::string name;
  const troupe::detail::actor_type_info* type;
  void operator()(troupe::detail::message* e);
};

}  // namespace detail

class node_actor;

class node {
 public:
  /// Binds the listening socket (throws std::system_error with the endpoint
  /// on failure, e.g. a port in use) and starts dialing the seeds.
  node(runtime& rt, node_options opts);
  /// Closes every link (peers see a goodbye) and stops the node's actor.
  /// Destroy a node before its runtime.
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// The port actually listened on.
  unsigned short port() const noexcept { return port_; }
  /// The majority rule's view (node_options::expect); never null.
  const std::shared_ptr<const quorum_view>& quorum() const noexcept { return quorum_; }
  const std::string& name() const noexcept { return name_; }
  actor_ref<node_actor> ref() const { return actor_; }
  /// The shard the node's actor and links run on.
  unsigned shard() const noexcept { return shard_; }
  runtime& runtime_ref() const noexcept { return rt_; }

  /// Makes `a` reachable from other nodes under `name`. T must list the
  /// message types it accepts remotely: `using remote_messages =
  /// troupe::net::message_list<deposit, balance>;` (each TROUPE_REMOTE_MESSAGE).
  template <class T>
  void publish(const actor_ref<T>& a, const std::string& name);

  /// From a thread outside the runtime: a ref to actor `name` on node `peer`.
  /// Errors: node_down (no link to peer), name_not_found, wrong_type,
  /// ask_timeout.
  template <class T>
  result<actor_ref<T>> remote_sync(const std::string& peer, const std::string& name,
                                   std::chrono::nanoseconds timeout);
  /// Inside a handler: `auto r = co_await node.remote<bank>("node-b", "bank", 1s);`
  template <class T>
  task<result<actor_ref<T>>> remote(std::string peer, std::string name,
                                    std::chrono::nanoseconds timeout);

  /// Sends member_event to `a` on every link up / down.
  template <class T>
  void subscribe(const actor_ref<T>& a);

  /// Members, their status and link counters (from outside the runtime).
  result<cluster_state> state(std::chrono::nanoseconds timeout);
  /// The same, inside a handler: `auto s = co_await node.state_of(1s);`
  task<result<cluster_state>> state_of(std::chrono::nanoseconds timeout);

  // --- Routing by key -----------------------------------------------------
  //
  // A routed message goes to the actor published under `name` on the node
  // that owns `key` in this node's route table; when that owner is not
  // reachable, to the next member for the key that is. On arrival, a node
  // whose table is newer (a higher route epoch) and names another owner
  // forwards it once; otherwise it delivers. So a routed message is delivered
  // at most once and crosses at most two links. A message placed on this
  // node is not serialized. docs/ring.md states the guarantee in full.

  /// Installs the placement routed sends use. Each call bumps the node's
  /// route epoch past every epoch it has seen (a Lamport clock), so epochs
  /// order the tables of different nodes along message paths.
  void set_route_table(std::shared_ptr<const route_table> table);

  /// Routes a tell. Errors at once: route_errc for a bad key or name,
  /// errc::no_route if the node has stopped. Later failures are counted in
  /// route_stats (a name not published on the owner) or lost with the link
  /// (a tell is at most once).
  template <class T, class M>
  boost::system::error_code route_tell(std::string_view key, std::string_view name, M&& m) const;

  /// Routes an ask; `co_await` it for result<R>. Errors: route_errc (bad key
  /// or name), no_route (no table, or no member reachable), name_not_found,
  /// wrong_type, node_down (the owner's link went down before the reply),
  /// and every error of a direct ask.
  template <class T, class M>
  auto route_ask(std::string_view key, std::string_view name, M&& m,
                 std::chrono::nanoseconds timeout) const;

  /// Internal: hands a routed envelope to the node's actor.
  void route_send(detail::route_q q) const;
  /// Internal: places a routed envelope at once and returns true when called
  /// on the node's shard with nothing queued for the node's actor; else
  /// returns false and leaves `m` to the caller (route_send).
  bool route_here(std::string_view key, std::string_view name,
                  const troupe::detail::actor_type_info* type, troupe::detail::message* m) const;
  /// Internal: route_here for a tell, from the caller's value: encoded
  /// straight into a routed frame, or made into an envelope by `make` when
  /// the owner is this node.
  bool route_here_value(std::string_view key, std::string_view name,
                        const troupe::detail::actor_type_info* type, std::uint32_t wire_type,
                        void (*encode)(const void*, std::string&),
                        troupe::detail::message* (*make)(void*), void* value) const;

 private:
  void publish_entry(const std::string& name, detail::published_actor entry);
  result<actor_addr> lookup_sync(detail::lookup_q q, std::chrono::nanoseconds timeout);
  task<result<actor_addr>> lookup(detail::lookup_q q, std::chrono::nanoseconds timeout);
  void subscribe_fn(actor_addr who, std::function<void(const member_event&)> send);

  runtime& rt_;
  std::string name_;
  unsigned shard_ = 0;
  unsigned short port_ = 0;
  std::shared_ptr<const quorum_view> quorum_;
  actor_ref<node_actor> actor_;
};

// ---------------------------------------------------------------------------
// Template bodies.

template <class T>
void node::publish(const actor_ref<T>& a, const std::string& name) {
  static_assert(
      requires { typename T::remote_messages; },
      "troupe: to publish an actor type, declare `using remote_messages = "
      "troupe::net::message_list<...>;` in it");
  detail::published_actor p;
  p.addr = a.addr();
  p.type_name = troupe::detail::type_info_for<T>::value.name;
  detail::fill_inbound<T>(p, typename T::remote_messages{});
  publish_entry(name, std::move(p));
}

template <class T>
result<actor_ref<T>> node::remote_sync(const std::string& peer, const std::string& name,
                                       std::chrono::nanoseconds timeout) {
  result<actor_addr> r =
      lookup_sync(detail::lookup_q{peer, name, troupe::detail::type_info_for<T>::value.name,
                                   &troupe::detail::type_info_for<T>::value},
                  timeout);
  if (!r) return failure<actor_ref<T>>(r.error());
  return actor_ref<T>{std::move(*r)};
}

template <class T>
task<result<actor_ref<T>>> node::remote(std::string peer, std::string name,
                                        std::chrono::nanoseconds timeout) {
  detail::lookup_q q{std::move(peer), std::move(name), troupe::detail::type_info_for<T>::value.name,
                     &troupe::detail::type_info_for<T>::value};
  task<result<actor_addr>> call = lookup(std::move(q), timeout);
  result<actor_addr> r = co_await std::move(call);
  if (!r) co_return failure<actor_ref<T>>(r.error());
  co_return actor_ref<T>{std::move(*r)};
}

template <class T, class M>
boost::system::error_code node::route_tell(std::string_view key, std::string_view name,
                                           M&& m) const {
  using msg_t = std::decay_t<M>;
  detail::check_routable<T, msg_t>();
  if (auto ec = detail::check_route(key, name)) return ec;
  if (!actor_.alive()) return make_error_code(errc::no_route);
  // On the node's shard: placed from m at once, encoded with no envelope
  // unless the owner is this node.
  if (route_here_value(
          key, name, &troupe::detail::type_info_for<T>::value, remote_codec<msg_t>::type_id,
          [](const void* v, std::string& out) {
            remote_codec<msg_t>::encode(*static_cast<const msg_t*>(v), out);
          },
          [](void* v) -> troupe::detail::message* {
            // The caller's object is copied unless it was handed over (a non-const rvalue).
            if constexpr (std::is_lvalue_reference_v<M> ||
                          std::is_const_v<std::remove_reference_t<M>>)
              return new troupe::detail::envelope<T, msg_t>(nullptr, *static_cast<msg_t*>(v));
            else
              return new troupe::detail::envelope<T, msg_t>(nullptr,
                                                            std::move(*static_cast<msg_t*>(v)));
          },
          const_cast<msg_t*>(&m)))
    return {};
  auto* e = new troupe::detail::envelope<T, msg_t>(nullptr, std::forward<M>(m));
  route_send(detail::route_q{std::string(key), std::string(name),
                             &troupe::detail::type_info_for<T>::value, detail::owned_message(e)});
  return {};
}

template <class T, class M>
auto node::route_ask(std::string_view key, std::string_view name, M&& m,
                     std::chrono::nanoseconds timeout) const {
  using msg_t = std::decay_t<M>;
  detail::check_routable<T, msg_t>();
  using R = troupe::detail::reply_t<T, msg_t>;
  static_assert(std::is_void_v<R> || remote_message<R>,
                "troupe: a routed ask's reply may cross the wire: register its type with "
                "TROUPE_REMOTE_MESSAGE");
  return troupe::detail::ask_awaiter<T, msg_t, detail::route_dispatch>(
      actor_.addr(), std::forward<M>(m), timeout,
      detail::route_dispatch{this, std::string(key), std::string(name),
                             &troupe::detail::type_info_for<T>::value},
      detail::check_route(key, name));
}

template <class T>
void node::subscribe(const actor_ref<T>& a) {
  static_assert(troupe::detail::handles<T, member_event>,
                "troupe: a subscriber needs handle(troupe::net::member_event)");
  subscribe_fn(a.addr(), [a](const member_event& e) { (void)a.tell(e); });
}

}  // namespace troupe::net

// Replies of plain types (bool, integers, floating point, std::string) cross
// the wire without registration.
namespace troupe::net::detail {
template <class T>
constexpr std::uint32_t builtin_type_id() {
  if constexpr (std::is_same_v<T, std::string>)
    return 0xFFFF1000u;
  else
    return 0xFFFF1100u + (std::is_floating_point_v<T> ? 0x80u : 0u) +
           (std::is_signed_v<T> ? 0x40u : 0u) + static_cast<std::uint32_t>(sizeof(T));
}
template <class T>
struct builtin_codec {
  static constexpr bool enabled = true;
  static constexpr std::uint32_t type_id = builtin_type_id<T>();
  static void encode(const T& v, std::string& out) { ::troupe::net::encode(v, out); }
  static result<T> decode(std::string_view bytes) { return ::troupe::net::decode<T>(bytes); }
};
}  // namespace troupe::net::detail

template <class T>
requires(std::is_arithmetic_v<T> && !std::is_same_v<T, long double>) struct troupe::remote_codec<T>
    : troupe::net::detail::builtin_codec<T> {
};
template <>
struct troupe::remote_codec<std::string> : troupe::net::detail::builtin_codec<std::string> {};

template <>
struct boost::system::is_error_code_enum<troupe::net::route_errc> : std::true_type {};
