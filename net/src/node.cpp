// SPDX-License-Identifier: BSL-1.0
// The node actor: links, published actors, proxies, remote asks, membership.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <troupe/net/node.hpp>
#include <unordered_set>

#include "membership.hpp"

namespace troupe::net {

namespace asio = boost::asio;

// The node's own protocol messages, with ids from troupe's reserved range.
struct lookup_req {
  std::string name;
  std::string type_name;
  template <class A>
  void serialize(A& a) {
    a(name, type_name);
  }
};
struct lookup_res {
  std::uint64_t id = 0;
  std::uint32_t error = 0;  // a troupe::errc, 0 when found
  template <class A>
  void serialize(A& a) {
    a(id, error);
  }
};

}  // namespace troupe::net

template <>
struct troupe::net::wire_id<troupe::net::lookup_req> {
  static constexpr std::uint32_t value = 0xFFFF0001u;
  static constexpr const char* name = "troupe::net::lookup_req";
};
template <>
struct troupe::net::wire_id<troupe::net::lookup_res> {
  static constexpr std::uint32_t value = 0xFFFF0002u;
  static constexpr const char* name = "troupe::net::lookup_res";
};
template <>
struct troupe::remote_codec<troupe::net::lookup_req>
    : troupe::net::detail::wire_codec<troupe::net::lookup_req> {};
template <>
struct troupe::remote_codec<troupe::net::lookup_res>
    : troupe::net::detail::wire_codec<troupe::net::lookup_res> {};

namespace troupe::net {

namespace {
constexpr std::uint64_t node_actor_id = 1;  // every node actor is published as id 1

using detail::link_here;
using route_wire::parse_routed;
using route_wire::prefix_size;
using route_wire::route_name;
using route_wire::routed_view;
using route_wire::same_bytes;
using route_wire::write_prefix;

void append_here(peer_link& lk, const frame_header& h, std::string_view payload) {
  (void)lk.append(h, frame_payload_max, [&](std::string& out) { out.append(payload); });
}

/// A frame on its way to its link's shard, through that shard's inbox.
struct frame_item final : troupe::detail::work_item {
  actor_ref<peer_link> link;
  frame_header header;
  std::string payload;
  static void run(troupe::detail::work_item* w) noexcept {
    std::unique_ptr<frame_item> f(static_cast<frame_item*>(w));
    if (peer_link* lk = link_here(f->link)) {
      try {
        append_here(*lk, f->header, f->payload);
      } catch (...) {  // out of memory: the frame is lost, as a dropped tell
      }
    }
  }
};
struct start_q {};
struct shutdown_q {};
struct sweep_tick {};
struct quorum_tick {};
/// One dial: a seed (member empty) or a known member (one link of its dial
/// chain: chain names the chain, so a chain that was replaced ends).
struct dial_q {
  endpoint to;
  unsigned attempt = 0;
  std::string member;
  std::uint64_t chain = 0;
  std::chrono::milliseconds delay{0};  ///< waited before the first attempt
};
}  // namespace

class node_actor final : public actor, public link_listener, public troupe::detail::remote_sink {
 public:
  static constexpr bool reentrant = true;  // accepting, dialing, lookups and frames interleave
  static constexpr const char* type_name = "troupe::net::node_actor";
  using remote_messages = message_list<lookup_req>;
  using message = troupe::detail::message;
  using published_actor = detail::published_actor;

 private:
  /// An ask this node forwarded: where its reply goes back.
  struct relay {
    actor_ref<peer_link> origin;
    std::uint64_t correlation;
    std::int64_t since_ns;  // when it was forwarded (swept after relay_timeout)
  };
  struct peer_state {
    actor_ref<peer_link> link;
    std::unordered_map<std::uint64_t, relay> relays;  // forwarded asks awaiting a reply
    actor_ref<node_actor> node_proxy;
    std::vector<actor_addr> proxies;
    std::unordered_map<std::uint64_t, troupe::detail::message*> pending;  // asks awaiting a reply
    std::size_t sweep_at = 1024;
  };
  struct proxy_target {
    std::string peer;
    std::uint64_t remote_id;
    peer_state* state;  // peers_[peer]: erased only with the peer's entry (forget_peer)
  };

 public:
  node_actor(node_options o, asio::ip::tcp::acceptor acceptor,
             std::shared_ptr<asio::ssl::context> tls, std::shared_ptr<quorum_view> quorum)
      : opts_(std::move(o)),
        acceptor_(std::move(acceptor)),
        rng_(std::random_device{}()),
        quorum_(std::move(quorum)) {
    cfg_.tls = std::move(tls);
    cfg_.node = opts_.name;
    cfg_.cluster = opts_.cluster;
    // A fresh, random incarnation per process: a restarted node is told apart
    // from its past life, and from a second process given the same name.
    do cfg_.incarnation = rng_();
    while (cfg_.incarnation == 0);
    boost::system::error_code ec;
    cfg_.listen = endpoint{opts_.listen.host, acceptor_.local_endpoint(ec).port()};
    cfg_.secret = opts_.secret;
    cfg_.heartbeat = opts_.heartbeat;
    cfg_.down_after = opts_.down_after;
    cfg_.phi_threshold = opts_.phi_threshold;
    cfg_.down_max = opts_.down_max;
    cfg_.max_frame = opts_.max_frame;
    cfg_.handshake_timeout = opts_.handshake_timeout;
    cfg_.handshake_max_frame = opts_.handshake_max_frame;
    cfg_.max_outbound = opts_.max_outbound;
    cfg_.counters = counters_;
  }

  ~node_actor() override {
    // Asks waiting for replies fail now, not at their deadlines.
    for (auto& [name, p] : peers_) {
      for (auto& [corr, m] : p.pending) m->ops_->discard(m, errc::node_down);
      p.pending.clear();
    }
    // Proxies forward to this object: stop them before it goes.
    for (auto& [cell, target] : proxies_) {
      if (cell->alive()) cell->stop(exit_reason::node_down, "node stopped");
    }
  }

  task<void> handle(start_q) {
    detail::published_actor me;
    me.addr = self();
    me.type_name = type_name;
    detail::fill_inbound<node_actor>(me, remote_messages{});
    published_.emplace(node_actor_id, std::move(me));
    inbound_cache_ = {};
    routed_cache_ = {};
    if (!opts_.secret)
      system().log(log_level::warn, "node",
                   opts_.name +
                       " has no cluster secret: it accepts loopback peers only (set one with "
                       "--secret-file)");
    for (const endpoint& s : opts_.seeds) (void)ref_of(this).tell(dial_q{s, 0, {}, 0, {}});
    (void)ref_of(this).tell(sweep_tick{});
    if (opts_.expect != 0) (void)ref_of(this).tell(quorum_tick{});
    for (;;) {
      result<asio::ip::tcp::socket> s = co_await acceptor_.async_accept(use_task);
      if (!s) {
        if (s.error() == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        system().log(log_level::error, "node",
                     opts_.name + ": accept failed: " + s.error().message());
        co_await sleep_for(
            std::chrono::milliseconds(10));  // e.g. out of file descriptors: do not spin
        continue;
      }
      if (handshaking_.size() >= opts_.max_handshakes) {
        refuse_handshake(*s);
        continue;
      }
      auto l = spawn<peer_link>(cfg_, std::move(*s), peer_link::role::acceptor,
                                static_cast<link_listener*>(this), self());
      handshaking_.insert(l.addr().cell());
      (void)l.tell(link_start{});
    }
  }

  /// Closes a connection accepted while max_handshakes others are still
  /// authenticating: at once, unread. The first refusal is logged, then one
  /// in every 1000.
  [[gnu::cold, gnu::noinline]] void refuse_handshake(asio::ip::tcp::socket& s) {
    boost::system::error_code ec;
    s.close(ec);
    if (limits_.handshakes_refused++ == logged_handshakes_refused_) {
      system().log(log_level::warn, "node",
                   opts_.name + ": " + std::to_string(opts_.max_handshakes) +
                       " connections are authenticating; closing new ones at once (limit "
                       "--max-handshakes; counted in troupe_link_refused_total)");
      logged_handshakes_refused_ = limits_.handshakes_refused + 1000;  // then once per 1000
    }
  }

  /// Every quarter of relay_timeout (at most every second): forgets relays
  /// whose reply never came and asks whose askers gave up, so the tables
  /// return to their size once a peer stops answering.
  task<void> handle(sweep_tick) {
    const auto every = std::clamp<std::chrono::milliseconds>(
        opts_.relay_timeout / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    while (!stopping_) {
      co_await sleep_for(every);
      if (stopping_) break;
      const std::int64_t oldest =
          system().now_ns() - std::chrono::nanoseconds(opts_.relay_timeout).count();
      for (auto& [name, p] : peers_) {
        sweep(p);
        for (auto it = p.relays.begin(); it != p.relays.end();) {
          if (it->second.since_ns <= oldest) {
            // The asker's node hears why now (its asker most likely gave up already).
            reply_error(it->second.origin, it->second.correlation, errc::ask_timeout);
            ++limits_.relays_expired;
            it = p.relays.erase(it);
            --relay_count_;
          } else {
            ++it;
          }
        }
      }
    }
  }

  /// Every heartbeat: whether this node is in the majority, and until when
  /// at the latest (the arrivals it has heard since only move that later).
  /// A tick that comes more than down_after / 2 late means this shard
  /// stalled: no majority for down_after from then, while the links read
  /// what waited in their sockets (and learn whether the others gave up on
  /// this node meanwhile).
  task<void> handle(quorum_tick) {
    const std::int64_t down = std::chrono::nanoseconds(opts_.down_after).count();
    std::int64_t last = system().now_ns();
    std::int64_t cool_until = 0;
    bool was = false;  // a node starts outside the majority until it hears from one
    std::vector<std::int64_t> heard;
    while (!stopping_) {
      const std::int64_t now = system().now_ns();
      if (now - last > down / 2) {
        cool_until = now + down;
        system().log(log_level::warn, "node",
                     opts_.name + ": this node stalled for " +
                         std::to_string((now - last) / 1'000'000) +
                         " ms; no majority until it has heard from the others again");
      }
      last = now;
      // The (need - 1)-th most recent arrival, with need = expect / 2 + 1 members.
      heard.clear();
      for (const auto& [name, p] : peers_)
        if (peer_link* lk = p.link ? link_here(p.link) : nullptr)
          heard.push_back(lk->last_heard_ns());
      const std::size_t need_peers = opts_.expect / 2;  // besides this node
      std::int64_t until = 0;
      if (need_peers == 0) {
        until = std::numeric_limits<std::int64_t>::max();
      } else if (heard.size() >= need_peers) {
        std::nth_element(heard.begin(), heard.begin() + static_cast<std::ptrdiff_t>(need_peers - 1),
                         heard.end(), std::greater<>{});
        until = heard[need_peers - 1] + down;
      }
      if (now < cool_until) until = 0;
      quorum_->update(now, until);
      const bool is = quorum_->in_majority(now);
      if (was && !is) quorum_->lost();
      if (is != was)
        system().log(is ? log_level::info : log_level::warn, "node",
                     opts_.name + (is ? ": in the majority (" : ": not in the majority (") +
                         "heard from " + std::to_string(1 + count_heard(heard, now - down)) +
                         " of " + std::to_string(opts_.expect) +
                         " members within --down-after); locks " +
                         (is ? "served" : "refused until it is"));
      was = is;
      co_await sleep_for(opts_.heartbeat);
    }
  }

  static std::size_t count_heard(const std::vector<std::int64_t>& heard, std::int64_t since) {
    return static_cast<std::size_t>(
        std::count_if(heard.begin(), heard.end(), [since](std::int64_t t) { return t > since; }));
  }

  task<void> handle(dial_q d) {
    if (stopping_ || !dial_wanted(d)) co_return;
    if (d.delay.count() > 0) {
      co_await sleep_for(d.delay);
      if (stopping_ || !dial_wanted(d)) co_return;
    }
    if (d.attempt > 0) {
      // Exponential backoff with full jitter, capped.
      const auto base = std::min<std::int64_t>(
          opts_.redial_max.count(), opts_.redial_min.count() << std::min(d.attempt - 1, 16u));
      std::uniform_int_distribution<std::int64_t> jitter(base / 2, base);
      co_await sleep_for(std::chrono::milliseconds(jitter(rng_)));
      if (stopping_ || !dial_wanted(d)) co_return;
    }
    const std::string seed = d.to.host + ":" + std::to_string(d.to.port);
    boost::system::error_code ec;
    const asio::ip::address literal = asio::ip::make_address(d.to.host, ec);
    const bool named = static_cast<bool>(ec);
    std::vector<asio::ip::tcp::endpoint> targets;
    if (!named) {
      if (!opts_.secret && !literal.is_loopback()) {
        // Without a secret the handshake proves nothing: keep to this host.
        // An address does not change: it is not redialed.
        ++limits_.dials_refused;
        system().log(log_level::warn, "node",
                     opts_.name + ": not dialing " + seed +
                         ": without a cluster secret a node links to loopback peers only (set one "
                         "with --secret-file)");
        co_return;
      }
      targets.emplace_back(literal, d.to.port);
    } else {
      // A name is resolved on every attempt: the peer behind it may have moved.
      task<result<std::vector<asio::ip::tcp::endpoint>>> lookup = resolve_seed(d.to);
      result<std::vector<asio::ip::tcp::endpoint>> found = co_await std::move(lookup);
      if (stopping_) co_return;
      if (!found || found->empty()) {
        note_seed(seed,
                  opts_.name + ": seed " + seed + " cannot be resolved (" +
                      (found ? std::string("no address") : found.error().message()) +
                      "); retrying with backoff",
                  false);
        redial(d);
        co_return;
      }
      std::string refused;
      for (const asio::ip::tcp::endpoint& ep : *found) {
        if (!opts_.secret && !ep.address().is_loopback())
          refused += (refused.empty() ? "" : ", ") + to_text(ep);
        else
          targets.push_back(ep);
      }
      if (!refused.empty())
        note_seed(seed,
                  opts_.name + ": not dialing " + seed + " at " + refused +
                      ": without a cluster secret a node links to loopback peers only (set one "
                      "with --secret-file)",
                  true);
      else
        seed_notes_.erase(seed);  // resolved cleanly: a later failure is news again
      if (targets.empty()) {
        redial(d);
        co_return;
      }
    }
    // Each address in order; the first that connects carries the link.
    for (const asio::ip::tcp::endpoint& ep : targets) {
      asio::ip::tcp::socket s{runtime::this_io()};
      ec = co_await s.async_connect(ep, use_task);
      if (stopping_) co_return;
      if (!dial_wanted(d)) co_return;  // linked meanwhile (it dialed us): the socket closes
      if (!ec) {
        auto l = spawn<peer_link>(cfg_, std::move(s), peer_link::role::dialer,
                                  static_cast<link_listener*>(this), self());
        dialed_.emplace(l.addr().cell(), dial_target{d.to, d.member, d.chain, d.attempt});
        (void)l.tell(link_start{});
        co_return;
      }
    }
    if (d.attempt == 0 || d.attempt % 10 == 0)
      system().log(log_level::warn, "node",
                   opts_.name + ": dialing " + seed +
                       (named ? " at " + to_text(targets.back()) : std::string()) + " failed (" +
                       ec.message() + "), retrying with backoff");
    redial(d);
  }

  void redial(const dial_q& d) {
    (void)ref_of(this).tell(dial_q{d.to, d.attempt + 1, d.member, d.chain, {}});
  }

  /// A seed is always dialed (until it links, or turns out to be this node);
  /// a member only by the newest chain for it, while it is not linked, and
  /// until it has been down for forget_after (a member reached through a
  /// seed is never forgotten).
  bool dial_wanted(const dial_q& d) {
    if (d.member.empty())
      return std::find(self_seeds_.begin(), self_seeds_.end(), d.to) == self_seeds_.end();
    auto m = members_.find(d.member);
    if (m == members_.end() || m->second.chain != d.chain) return false;
    member_rec& r = m->second;
    if (linked_or_linking(d.member)) {
      r.dialing = false;
      return false;
    }
    if (!r.seed && r.down_since_ns != 0 &&
        system().now_ns() - r.down_since_ns >
            std::chrono::nanoseconds(opts_.forget_after).count()) {
      system().log(log_level::info, "node",
                   opts_.name + ": forgetting member " + d.member + ", down for " +
                       std::to_string(opts_.forget_after.count() / 1000) + " s");
      members_.erase(m);
      return false;
    }
    return true;
  }

  bool linked_or_linking(const std::string& name) const {
    auto p = peers_.find(name);
    return (p != peers_.end() && p->second.link) || pending_out_.contains(name);
  }

  /// Starts a new dial chain for a known member (ending any older one).
  /// `delay`: waited before the first attempt.
  void dial_member(const std::string& name, unsigned attempt, std::chrono::milliseconds delay) {
    auto m = members_.find(name);
    if (stopping_ || m == members_.end()) return;
    // A member first reached through a seed is dialed there (a name is
    // resolved anew each time); any other where it said it listens.
    const endpoint to = m->second.seed ? *m->second.seed : m->second.addr;
    if (to.port == 0) return;
    m->second.dialing = true;
    (void)ref_of(this).tell(dial_q{to, attempt, name, ++m->second.chain, delay});
  }

  static std::string to_text(const asio::ip::tcp::endpoint& ep) {
    std::ostringstream os;
    os << ep;
    return os.str();
  }

  /// Logs a seed's resolution problem once: again only when it changes, or
  /// after the seed has resolved cleanly in between (a quiet cluster whose
  /// seed stays unresolvable logs one line, not one per redial).
  void note_seed(const std::string& seed, std::string line, bool refused) {
    std::string& last = seed_notes_[seed];
    if (last == line) return;
    if (refused) ++limits_.dials_refused;
    system().log(log_level::warn, "node", line);
    last = std::move(line);
  }

  /// A seed's host name as endpoints: node_options::resolve, or Asio's
  /// resolver on this shard. The resolver cannot be cancelled once
  /// getaddrinfo runs, so the handler awaits a timer instead (cancelled when
  /// the node stops, or by the resolution when it completes) and the
  /// resolution's state outlives the handler if it must.
  task<result<std::vector<asio::ip::tcp::endpoint>>> resolve_seed(endpoint to) {
    using endpoints = std::vector<asio::ip::tcp::endpoint>;
    if (opts_.resolve) co_return opts_.resolve(to);
    struct pending {
      explicit pending(asio::io_context& io) : resolver(io), timer(io) {}
      asio::ip::tcp::resolver resolver;
      asio::steady_timer timer;
      bool done = false;
      boost::system::error_code ec;
      endpoints found;
    };
    auto p = std::make_shared<pending>(runtime::this_io());
    p->timer.expires_after(opts_.seed_resolve_timeout);
    // No address_configured: "localhost" resolves on a host with loopback only.
    p->resolver.async_resolve(
        to.host, std::to_string(to.port), asio::ip::tcp::resolver::numeric_service,
        [p](const boost::system::error_code& ec, const asio::ip::tcp::resolver::results_type& rs) {
          p->done = true;
          p->ec = ec;
          for (const auto& e : rs) p->found.push_back(e.endpoint());
          p->timer.cancel();
        });
    boost::system::error_code waited = co_await p->timer.async_wait(use_task);
    (void)waited;  // expired or cancelled: `done` says which
    if (!p->done) {
      p->resolver.cancel();
      co_return failure<endpoints>(asio::error::timed_out);
    }
    if (p->ec) co_return failure<endpoints>(p->ec);
    co_return std::move(p->found);
  }

  void handle(detail::publish_q q) {
    const std::uint64_t id = next_local_id_++;
    monitor(q.entry.addr);
    name_cache_ = {};
    inbound_cache_ = {};
    routed_cache_ = {};
    if (auto old = names_.find(q.name); old != names_.end()) published_.erase(old->second);
    names_[q.name] = id;
    published_.emplace(id, std::move(q.entry));
  }

  lookup_res handle(lookup_req q) {
    auto n = names_.find(q.name);
    if (n == names_.end()) return {0, static_cast<std::uint32_t>(errc::name_not_found)};
    auto p = published_.find(n->second);
    if (p == published_.end() || !p->second.addr.alive())
      return {0, static_cast<std::uint32_t>(errc::name_not_found)};
    if (p->second.type_name != q.type_name)
      return {0, static_cast<std::uint32_t>(errc::wrong_type)};
    return {n->second, 0};
  }

  task<result<actor_addr>> handle(detail::lookup_q q) {
    peer_state* p = peer(q.peer);
    if (!p || !p->link) co_return failure<actor_addr>(errc::node_down);
    if (!p->node_proxy.alive()) p->node_proxy = make_proxy_for<node_actor>(q.peer, node_actor_id);
    lookup_req req{q.name, q.type_name};
    auto call = p->node_proxy.ask(std::move(req), std::chrono::nanoseconds(cfg_.down_after) * 2);
    result<lookup_res> r = co_await call;
    if (!r) co_return failure<actor_addr>(r.error());
    if (r->error != 0) co_return failure<actor_addr>(static_cast<errc>(r->error));
    // The link may have gone down (and the peer's entry with it) meanwhile.
    p = peer(q.peer);
    if (!p || !p->link) co_return failure<actor_addr>(errc::node_down);
    co_return make_proxy_addr(q.type, q.peer, r->id);
  }

  void handle(detail::subscribe_q q) {
    for (auto& [name, p] : peers_)
      if (p.link) q.send(member_event{name, true, {}});
    subscribers_.push_back(std::move(q));
  }

  task<cluster_state> handle(detail::state_q) {
    cluster_state s;
    s.self = opts_.name;
    s.expect = opts_.expect;
    s.majority = quorum_->in_majority(system().now_ns());
    // A snapshot first: the node is reentrant, so peers_ may change while
    // a link's stats are awaited below.
    std::vector<actor_ref<peer_link>> links;
    for (auto& [name, p] : peers_) {
      member_info m;
      m.name = name;
      m.up = static_cast<bool>(p.link);
      if (auto r = members_.find(name); r != members_.end()) {
        m.incarnation = r->second.incarnation;
        m.address = r->second.addr;
      }
      s.members.push_back(std::move(m));
      links.push_back(p.link);
    }
    // Members that are down and still dialed.
    for (const auto& [name, r] : members_)
      if (!peers_.contains(name)) {
        s.members.push_back(member_info{name, false, r.incarnation, r.addr, {}});
        links.emplace_back();
      }
    for (std::size_t i = 0; i < links.size(); ++i) {
      if (!links[i]) continue;
      if (peer_link* lk = link_here(links[i])) {  // the links live on this shard
        s.members[i].stats = lk->handle(link_stats_q{});
        continue;
      }
      auto call = links[i].ask(link_stats_q{}, std::chrono::seconds(1));
      result<link_stats> st = co_await call;
      if (st) s.members[i].stats = std::move(*st);
    }
    std::sort(s.members.begin(), s.members.end(),
              [](const member_info& a, const member_info& b) { return a.name < b.name; });
    s.routing = route_stats_;
    s.routing.epoch = route_epoch_;
    s.limits = limit_stats_now();
    co_return s;
  }

  void handle(detail::set_route_q q) {
    route_epoch_ = std::max(route_epoch_, seen_route_epoch_) + 1;
    table_ = std::move(q.table);
    table_digest_ = table_ ? table_->digest() : 0;
    owner_cache_ = {};
    route_slots_.assign(table_ ? table_->size() : 0, route_slot{});
  }

  void handle(detail::route_q&& q) {  // by reference: its strings stay in the envelope
    place(q.key, q.name, q.type, q.msg.release());
  }

  /// Places a routed envelope: on this node, or in a routed frame to the
  /// key's owner (node::route_here calls it directly on this shard).
  void place(std::string_view key, std::string_view name,
             const troupe::detail::actor_type_info* type, message* m) {
    ++route_stats_.sent;
    if (!route_owner(key)) {
      m->ops_->discard(m, errc::no_route);
    } else if (owner_cache_.self) {
      deliver_local(name, type, m);
    } else {
      send_message(*owner_cache_.peer,
                   m->ask_base_ ? frame_kind::routed_ask : frame_kind::routed_tell, 0, 0, m, key,
                   name);
    }
  }

  /// place() for a tell from the caller's value (node::route_here_value).
  void place_value(std::string_view key, std::string_view name,
                   const troupe::detail::actor_type_info* type, std::uint32_t wire_type,
                   void (*encode)(const void*, std::string&), message* (*make)(void*),
                   void* value) {
    ++route_stats_.sent;
    if (!route_owner(key)) return;  // dropped, as place() drops a tell with no route
    if (owner_cache_.self) {
      message* m = nullptr;
      try {
        m = make(value);
      } catch (...) {  // out of memory: lost, as a tell that could not be sent
        return;
      }
      deliver_local(name, type, m);
      return;
    }
    (void)put_routed_frame(*owner_cache_.peer, frame_kind::routed_tell, wire_type, 0, key, name, 0,
                           [&](std::string& out) { encode(value, out); });
  }

  void handle(shutdown_q) {
    stopping_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    // Peers forget a member that leaves (one reached through a seed is
    // dialed again, as a seed).
    // Closed here and now (the links live on this shard), so the goodbye is
    // written before the caller may stop the runtime.
    const boost::system::error_code leaving = handshake_errc::leaving;
    for (auto& [name, p] : peers_) {
      if (!p.link) continue;
      link_close bye{leaving.message() + " (" + opts_.name + ")", leaving};
      if (peer_link* lk = link_here(p.link))
        lk->handle(std::move(bye));
      else
        (void)p.link.tell(std::move(bye));
    }
    stop();
  }

  void handle(down_msg d) {
    // A published actor stopped: forget it and tell every peer, so their proxies stop.
    for (auto it = published_.begin(); it != published_.end(); ++it) {
      if (it->second.addr == d.who) {
        const std::uint64_t id = it->first;
        name_cache_ = {};
        std::erase_if(names_, [id](const auto& kv) { return kv.second == id; });
        published_.erase(it);
        inbound_cache_ = {};
        routed_cache_ = {};
        std::string payload;
        encode(static_cast<std::uint8_t>(d.reason), payload);
        encode(d.what, payload);
        for (auto& [name, p] : peers_)
          if (p.link)
            detail::send_frame(p.link, frame_header{frame_kind::down, 0, id, 0, 0}, payload);
        break;
      }
    }
  }

  // --- link_listener: called on this shard by the links ---

  boost::system::error_code admit(const actor_ref<peer_link>& l, const peer_identity& who,
                                  bool dialer) override {
    actor_cell* c = l.addr().cell();
    detail::link_situation have;
    if (auto p = peers_.find(who.name); p != peers_.end() && p->second.link) {
      have.up = true;
      if (auto m = members_.find(who.name); m != members_.end())
        have.up_incarnation = m->second.incarnation;
    }
    auto po = pending_out_.find(who.name);
    have.dialing = po != pending_out_.end() && po->second.addr().cell() != c;
    bool take_over = false;
    const boost::system::error_code ec =
        detail::admission(opts_.name, cfg_.incarnation, who, dialer, have, take_over);
    if (ec == handshake_errc::duplicate_name)
      note_once("dup " + who.name + "/" + std::to_string(who.incarnation),
                opts_.name + ": refused a link from a second process named " + who.name +
                    (who.name == opts_.name ? " (this node's own name)"
                                            : " while the first is linked; the first stays") +
                    "; its address " + who.listen.host + ":" + std::to_string(who.listen.port));
    if (ec) return ec;
    if (take_over) {
      // We both dialed: theirs wins (their name sorts first); ours ends quietly.
      const boost::system::error_code dup = handshake_errc::duplicate_link;
      (void)po->second.tell(link_close{dup.message() + " (" + who.name + ")", dup});
      pending_out_.erase(po);
    }
    if (dialer) pending_out_.insert_or_assign(who.name, l);
    return {};
  }

  void on_up(const actor_ref<peer_link>& l, const peer_identity& who) override {
    const std::string& name = who.name;
    actor_cell* c = l.addr().cell();
    handshaking_.erase(c);
    if (auto po = pending_out_.find(name);
        po != pending_out_.end() && po->second.addr().cell() == c)
      pending_out_.erase(po);
    if (peers_.size() >= opts_.max_peers && !peers_.contains(name)) {
      ++limits_.peers_refused;
      (void)l.tell(link_close{"too many peers: " + std::to_string(opts_.max_peers) +
                              " are linked (limit --max-peers)"});
      return;
    }
    owner_cache_ = {};  // it may hold "no such peer" for this name
    peer_state& p = peers_[name];
    if (p.link && p.link.alive() && p.link != l) {
      const boost::system::error_code dup = handshake_errc::duplicate_link;
      (void)l.tell(link_close{dup.message() + " (" + name + ")", dup});
      return;
    }
    p.link = l;
    link_peer_[c] = name;
    member_rec& m = members_[name];
    m.incarnation = who.incarnation;
    if (who.listen.port != 0 && !who.listen.host.empty()) m.addr = who.listen;
    m.down_since_ns = 0;
    m.dialing = false;
    ++m.chain;  // any dial chain for it ends
    if (auto d = dialed_.find(c); d != dialed_.end() && d->second.member.empty())
      m.seed = d->second.to;
    notify(member_event{name, true, {}});
    share_members(l, name);
  }

  void on_down(const actor_ref<peer_link>& l, const std::string& name, const std::string& reason,
               boost::system::error_code code) override {
    actor_cell* c = l.addr().cell();
    handshaking_.erase(c);
    if (auto po = pending_out_.find(name);
        po != pending_out_.end() && po->second.addr().cell() == c)
      pending_out_.erase(po);
    const bool was_up = detail_down(l, name, reason, code);
    auto d = dialed_.find(c);
    if (d == dialed_.end()) return;  // accepted: the peer dials again if it wants to
    dial_target t = std::move(d->second);
    dialed_.erase(d);
    if (stopping_ || was_up) return;  // a member that was up is dialed by its own chain
    if (code == handshake_errc::self_link) {
      // Never again: this node's own address is among its seeds.
      if (t.member.empty()) {
        self_seeds_.push_back(t.to);
        system().log(log_level::info, "node",
                     opts_.name + ": seed " + t.to.host + ":" + std::to_string(t.to.port) +
                         " is this node itself; not dialing it");
      }
      return;
    }
    if (code == handshake_errc::duplicate_link) {  // linked (or about to be) another way
      if (t.member.empty()) {
        // The seed is that member: dialed there again should it go down.
        if (!name.empty()) {
          member_rec& m = members_[name];
          if (!m.seed) m.seed = t.to;
        }
      } else if (auto m = members_.find(t.member);
                 m != members_.end() && m->second.chain == t.chain) {
        m->second.dialing = false;
      }
      return;
    }
    if (code == handshake_errc::duplicate_name)
      note_once("dupname " + name,
                opts_.name + ": " + (name.empty() ? std::string("a peer") : name) +
                    " refused this node: another process named " + opts_.name +
                    " is already linked to it; retrying with backoff until that one leaves");
    // Never came up: the same target again, with backoff.
    (void)ref_of(this).tell(dial_q{t.to, t.attempt + 1, t.member, t.chain, {}});
  }

  /// Logs a line once per key (a bounded set: cleared when it grows past 1024).
  void note_once(std::string key, const std::string& line) {
    if (notes_.size() > 1024) notes_.clear();
    if (notes_.insert(std::move(key)).second) system().log(log_level::warn, "node", line);
  }

  /// Tells the member just linked the members this node is linked to, and
  /// every other linked member about it: a node that joined through one seed
  /// learns the whole cluster, and links to each member itself.
  void share_members(const actor_ref<peer_link>& l, const std::string& name) {
    std::vector<detail::member_wire> all;
    const member_rec& joined = members_[name];
    for (const auto& [n, p] : peers_) {
      if (!p.link || n == name) continue;
      auto m = members_.find(n);
      if (m == members_.end() || m->second.addr.port == 0) continue;
      all.push_back({n, m->second.incarnation, m->second.addr.host, m->second.addr.port});
    }
    if (!all.empty())
      detail::send_frame(l, frame_header{frame_kind::members, 0, 0, 0, 0},
                         detail::encode_members(all));
    if (joined.addr.port == 0) return;
    const std::string one =
        detail::encode_members({{name, joined.incarnation, joined.addr.host, joined.addr.port}});
    for (const auto& [n, p] : peers_)
      if (p.link && n != name)
        detail::send_frame(p.link, frame_header{frame_kind::members, 0, 0, 0, 0}, one);
  }

  /// Members a peer is linked to: each one this node is not linked to is
  /// dialed — at once by the node whose name sorts first, after a grace by
  /// the other (so two nodes that learn of each other do not both dial).
  void on_members(const actor_ref<peer_link>& l, std::string_view payload) {
    if (!link_peer_.contains(l.addr().cell())) return;
    result<std::vector<detail::member_wire>> ms = detail::decode_members(payload, opts_.max_peers);
    if (!ms) {
      close_link(l, "malformed members frame (" + ms.error().message() + ")");
      return;
    }
    const auto grace = std::clamp<std::chrono::milliseconds>(
        opts_.heartbeat * 4, std::chrono::milliseconds(50), std::chrono::milliseconds(2000));
    for (detail::member_wire& w : *ms) {
      if (w.name == opts_.name || linked_or_linking(w.name)) continue;
      auto it = members_.find(w.name);
      if (it == members_.end()) {
        if (members_.size() >= opts_.max_peers) continue;  // bounded, as the peer table
        it = members_.emplace(w.name, member_rec{}).first;
      }
      member_rec& r = it->second;
      endpoint addr{std::move(w.host), w.port};
      if (r.dialing && r.incarnation == w.incarnation && r.addr == addr) continue;
      r.incarnation = w.incarnation;
      r.addr = std::move(addr);
      dial_member(w.name, 0, opts_.name < w.name ? std::chrono::milliseconds(0) : grace);
    }
  }

  void on_frame(const actor_ref<peer_link>& l, const frame_header& h,
                std::string_view payload) override {
    // The sending peer's state (a map lookup by name) is only needed by
    // replies and down frames; the cache remembers the last link's.
    auto peer_of_link = [&]() -> peer_state* {
      actor_cell* c = l.addr().cell();
      if (c != frame_peer_cache_.link) {
        auto lp = link_peer_.find(c);
        if (lp == link_peer_.end()) return nullptr;
        frame_peer_cache_ = {c, &peers_[lp->second]};
      }
      return frame_peer_cache_.peer;
    };
    switch (h.kind) {
      case frame_kind::tell:
      case frame_kind::ask: {
        if (!peer_of_link()) return;  // not (or no longer) an up link
        // A stream of frames mostly carries one type to one actor: the last
        // (target, type) -> decoder is remembered.
        inbound_cache& ic = inbound_cache_;
        if (!ic.pub || ic.target != h.target || ic.type_id != h.type_id) {
          auto pub = published_.find(h.target);
          if (pub == published_.end() || !pub->second.addr.alive()) {
            if (h.kind == frame_kind::ask) reply_error(l, h.correlation, errc::actor_dead);
            return;
          }
          auto fn = pub->second.inbound.find(h.type_id);
          if (fn == pub->second.inbound.end()) {
            (void)l.tell(link_close{"unknown message type id " + std::to_string(h.type_id) +
                                    " for " + pub->second.type_name});
            return;
          }
          ic = {h.target, h.type_id, &pub->second, fn->second};
        } else if (!ic.pub->addr.alive()) {
          if (h.kind == frame_kind::ask) reply_error(l, h.correlation, errc::actor_dead);
          return;
        }
        boost::system::error_code ec = ic.fn(ic.pub->addr.cell(), payload, l, h.correlation);
        if (ec) close_undecodable(l, h.type_id, ec);
        return;
      }
      case frame_kind::routed_tell:
      case frame_kind::routed_ask:
        on_routed(l, h, payload);
        return;
      case frame_kind::route_context:
        on_route_context(l, payload);
        return;
      case frame_kind::members:
        on_members(l, payload);
        return;
      case frame_kind::reply:
      case frame_kind::reply_error: {
        peer_state* pp = peer_of_link();
        if (!pp) return;
        peer_state& p = *pp;
        auto it = p.pending.find(h.correlation);
        if (it == p.pending.end()) {
          // A reply to an ask this node forwarded: relay it to the asker's node.
          if (auto r = p.relays.find(h.correlation); r != p.relays.end()) {
            detail::send_frame(r->second.origin,
                               frame_header{h.kind, 0, 0, 0, r->second.correlation},
                               std::string(payload));
            p.relays.erase(r);
            --relay_count_;
          }
          return;  // else the asker's deadline already passed and it was swept
        }
        troupe::detail::message* m = it->second;
        p.pending.erase(it);
        if (h.kind == frame_kind::reply) {
          if (!m->ops_->complete(m, payload))
            m->ops_->discard(m, errc::bad_reply);
          else
            m->ops_->discard(m, errc::bad_reply);  // already completed: this only frees it
        } else {
          result<std::uint32_t> code = decode<std::uint32_t>(payload);
          errc e = code && *code >= 1 && *code <= static_cast<std::uint32_t>(errc_last)
                       ? static_cast<errc>(*code)
                       : errc::remote_error;
          m->ops_->discard(m, e);
        }
        return;
      }
      case frame_kind::down: {
        peer_state* pp = peer_of_link();
        if (!pp) return;
        peer_state& p = *pp;
        bounded_input_archive ar(payload);
        std::uint8_t reason = 0;
        std::string what;
        try {
          ar(reason, what);
        } catch (const std::exception&) {
          (void)l.tell(link_close{"malformed down frame"});
          return;
        }
        for (auto& proxy : p.proxies) {
          actor_cell* c = proxy.cell();
          auto t = proxies_.find(c);
          if (t != proxies_.end() && t->second.remote_id == h.target && c->alive())
            c->stop(reason <= static_cast<std::uint8_t>(exit_reason::node_down)
                        ? static_cast<exit_reason>(reason)
                        : exit_reason::failure,
                    what);
        }
        return;
      }
      default:
        (void)l.tell(link_close{"unexpected " + std::string(frame_kind_name(h.kind)) + " frame"});
    }
  }

  // --- remote_sink: called on this shard, in send order, for every message to a proxy ---

  void forward(troupe::detail::actor_cell* proxy, troupe::detail::message* m) noexcept override {
    const proxy_target* t = proxy_target_of(proxy);
    peer_state* p = t ? t->state : nullptr;
    if (!p || !p->link) {
      m->ops_->discard(m, errc::node_down);
      return;
    }
    send_message(*p, m->ask_base_ ? frame_kind::ask : frame_kind::tell, t->remote_id, 0, m);
  }

  void forward_value(troupe::detail::actor_cell* proxy, std::uint32_t wire_type,
                     void (*encode)(const void*, std::string&),
                     const void* value) noexcept override {
    const proxy_target* t = proxy_target_of(proxy);
    peer_state* p = t ? t->state : nullptr;
    if (!p || !p->link) return;  // dropped, as forward() drops a tell to a node that is down
    (void)put_frame(*p, frame_kind::tell, wire_type, t->remote_id, 0, 0,
                    [&](std::string& out) { encode(value, out); });
  }

 private:
  // The last proxy's target is remembered (cleared when proxies_ loses an entry).
  const proxy_target* proxy_target_of(troupe::detail::actor_cell* proxy) {
    if (proxy != proxy_cache_.proxy) {
      auto t = proxies_.find(proxy);
      proxy_cache_ = {proxy, t == proxies_.end() ? nullptr : &t->second};
    }
    return proxy_cache_.target;
  }

  /// Appends one frame to p's link — the payload `encode(out)` writes — and
  /// sends it. Returns why it did not go out: node_down (no link here, or
  /// it closed), not_serializable (encode threw; the frame is taken back),
  /// message_too_large (logged). (The header is passed in fields, not as a
  /// struct: a struct built and copied at once stalls on store forwarding.)
  template <class Encode>
  errc put_frame(peer_state& p, frame_kind kind, std::uint32_t type_id, std::uint64_t target,
                 std::uint64_t sender, std::uint64_t correlation, Encode&& encode) noexcept {
    peer_link* lk = link_here(p.link);
    if (!lk) return errc::node_down;  // stopped without telling us (runtime shutdown)
    frame_header h;
    h.kind = kind;
    h.type_id = type_id;
    h.target = target;
    h.sender = sender;
    h.correlation = correlation;
    return append_to(*lk, h, 0, no_lead{}, encode);
  }

  /// put_frame() for a routed frame: the link's route context first if it
  /// is not this node's current one, then the frame, its prefix for `key`,
  /// `name` and `hops` written into the bytes reserved with the header.
  template <class Encode>
  errc put_routed_frame(peer_state& p, frame_kind kind, std::uint32_t type_id,
                        std::uint64_t correlation, std::string_view key, std::string_view name,
                        std::uint8_t hops, Encode&& encode) noexcept {
    peer_link* lk = link_here(p.link);
    if (!lk) return errc::node_down;
    link_route_state& rs = lk->route_state();
    if (rs.tx_epoch != route_epoch_)
      if (const errc e = announce_route_context(*lk, rs); e != errc{}) return e;
    const route_name rn = route_wire::name_for(rs, name);
    frame_header h;
    h.kind = kind;
    h.type_id = type_id;
    h.target = 0;
    h.sender = 0;
    h.correlation = correlation;
    const errc e = append_to(
        *lk, h, prefix_size(rn, hops, key, name),
        [&](char* at) { write_prefix(at, rn, hops, key, name); }, encode);
    if (e != errc{}) {
      route_wire::unsent(rs, rn);
      return e;
    }
    route_wire::sent(rs, rn);
    return e;
  }

  struct no_lead {};
  /// Appends a frame with header h to lk: `lead` bytes written by
  /// `write_lead(at)` (unless no_lead), then what `encode(out)` appends.
  template <class Lead, class Encode>
  errc append_to(peer_link& lk, const frame_header& h, std::size_t lead, Lead&& write_lead,
                 Encode&& encode) noexcept {
    const std::size_t limit =
        std::min<std::size_t>(frame_payload_max, opts_.max_frame - (frame_header_max - 4));
    std::size_t encoded = 0;
    peer_link::append_result r;
    try {
      r = lk.append(
          h, limit,
          [&](std::string& out) {
            if constexpr (!std::is_same_v<std::decay_t<Lead>, no_lead>)
              write_lead(out.data() + out.size() - lead);
            const std::size_t before = out.size();
            encode(out);
            encoded = out.size() - before;
          },
          lead);
    } catch (...) {
      return errc::not_serializable;
    }
    if (r == peer_link::append_result::too_large) {
      log_too_large(encoded);
      return errc::message_too_large;
    }
    if (r == peer_link::append_result::closed) return errc::node_down;          // on_down follows
    if (r == peer_link::append_result::congested) return errc::link_congested;  // counted
    return errc{};
  }

  [[gnu::cold, gnu::noinline]] void log_too_large(std::size_t bytes) {
    system().log(log_level::warn, "node",
                 opts_.name + ": a message of " + std::to_string(bytes) +
                     " bytes exceeds the frame limit; not sent");
  }

  /// Encodes m into a frame of `kind` with m's type id, `target` and
  /// `sender` (put_frame) and sends it; an ask waits in p.pending for its
  /// reply. p's link is up.
  void send_message(peer_state& p, frame_kind kind, std::uint64_t target, std::uint64_t sender,
                    message* m, std::string_view key = {}, std::string_view name = {}) noexcept {
    const std::uint64_t correlation = m->ask_base_ ? next_correlation_ : 0;
    auto encode = [m](std::string& out) { m->ops_->encode(m, out); };
    const errc e =
        key.empty()
            ? put_frame(p, kind, m->ops_->wire_type, target, sender, correlation, encode)
            : put_routed_frame(p, kind, m->ops_->wire_type, correlation, key, name, 0, encode);
    if (e != errc{}) {
      m->ops_->discard(m, e);
      return;
    }
    if (m->ask_base_) {
      ++next_correlation_;
      p.pending.emplace(correlation, m);
      if (p.pending.size() > p.sweep_at) sweep(p);
    } else {
      m->ops_->discard(m, errc::actor_dead);  // a tell carries no ask: this only frees it
    }
  }

  // --- routing by key ---
  // The routed prefix and the route_context frame: route_wire.hpp.

  /// Sends this node's route context on the link; node_down if the link
  /// closed, link_congested if its buffer is full. (Called only with a table
  /// installed, so route_epoch_ >= 1.)
  [[gnu::noinline]] errc announce_route_context(peer_link& lk, link_route_state& rs) noexcept {
    const std::uint64_t epoch = route_epoch_;
    const std::uint32_t digest = digest32();
    try {
      const peer_link::append_result r =
          lk.append(frame_header{frame_kind::route_context, 0, 0, 0, 0}, frame_payload_max,
                    [&](std::string& out) {
                      char buf[route_wire::context_max];
                      const char* q = route_wire::write_context(buf, epoch, digest);
                      out.append(buf, static_cast<std::size_t>(q - buf));
                    });
      if (r == peer_link::append_result::congested) return errc::link_congested;
      if (r != peer_link::append_result::ok) return errc::node_down;
    } catch (...) {  // out of memory
      return errc::node_down;
    }
    rs.tx_epoch = epoch;
    return errc{};
  }
  std::uint32_t digest32() const noexcept { return static_cast<std::uint32_t>(table_digest_); }

  /// True if `member` is this node or a peer with its link up; owner_cache_
  /// then says which (self, or the peer's state).
  bool reachable(std::string_view member) {
    // Names from one table are stable strings: the last one is remembered by
    // address (the cache is dropped whenever peers_ gains or loses an entry),
    // so a stream of sends to one owner compares no strings.
    if (member.data() != owner_cache_.name) {
      const bool self = member == opts_.name;
      owner_cache_ = {member.data(), self, self ? nullptr : peer(member)};
    }
    return owner_cache_.self || (owner_cache_.peer && owner_cache_.peer->link);
  }

  /// Finds the member `key` goes to: its owner in this node's table, or when
  /// the owner is unreachable the next reachable member for it. False if
  /// none; else owner_cache_ holds it (self, or the peer's state).
  bool route_owner(std::string_view key) {
    if (!table_) return false;
    // A table that numbers its members: each member's link is looked up
    // once per table (route_slots_), not compared by name per message.
    const std::uint32_t i = table_->owner_index(key);
    if (i < route_slots_.size()) {
      const route_slot& s = route_slots_[i];
      if (s.known && (s.self || s.peer->link)) {
        owner_cache_ = {nullptr, s.self, s.peer};
        return true;
      }
    }
    return route_owner_slow(key, i);
  }
  /// route_owner() for a member seen first in this table, or one unreachable.
  [[gnu::noinline]] bool route_owner_slow(std::string_view key, std::uint32_t i) {
    if (i < route_slots_.size()) {
      route_slot& s = route_slots_[i];
      if (!s.known) {
        const std::string_view m = table_->member(i);
        s.self = m == opts_.name;
        s.peer = s.self ? nullptr : peer(m);
        s.known = s.self || s.peer;  // a member not yet a peer is looked up again
      }
      if (s.self || (s.peer && s.peer->link)) {
        owner_cache_ = {nullptr, s.self, s.peer};
        return true;
      }
    }
    result<std::string_view> o = table_->owner(key);
    if (!o) return false;
    if (reachable(*o)) return true;
    for (std::string_view m : table_->owners(key, table_->size()))
      if (reachable(m)) return true;
    return false;
  }

  /// Hands a routed envelope to the actor published here under `name`.
  [[gnu::noinline]] void deliver_local(std::string_view name,
                                       const troupe::detail::actor_type_info* type, message* m) {
    const published_actor* pub = published_by_name(name);
    if (!pub) {
      undeliverable(name);
      m->ops_->discard(m, errc::name_not_found);
    } else if (pub->type_name != type->name) {
      m->ops_->discard(m, errc::wrong_type);
    } else {
      m->target_ = pub->addr.cell();
      (void)troupe::detail::send(m);  // a dead or full target fails the ask
    }
  }

  const published_actor* published_by_name(std::string_view name) {
    if (same_bytes(name, name_cache_.name) && name_cache_.pub && name_cache_.pub->addr.alive())
      return name_cache_.pub;
    auto n = names_.find(name);
    if (n == names_.end()) return nullptr;
    auto p = published_.find(n->second);
    if (p == published_.end() || !p->second.addr.alive()) return nullptr;
    name_cache_ = {n->first, &p->second};
    return &p->second;
  }

  /// Names logged by undeliverable(): each once, and at most this many (the
  /// names come from peers, so the set must not grow without bound).
  static constexpr std::size_t warned_names_max = 256;
  [[gnu::noinline]] void undeliverable(std::string_view name) {
    ++route_stats_.undeliverable;
    if (warned_names_full_ || warned_names_.contains(name)) return;
    if (warned_names_.size() == warned_names_max) {
      warned_names_full_ = true;
      system().log(log_level::warn, "node",
                   opts_.name + ": messages routed to " + std::to_string(warned_names_max) +
                       " names found no actor published here; further names are not logged (all "
                       "are counted in routing.undeliverable)");
      return;
    }
    warned_names_.emplace(name);
    system().log(log_level::warn, "node",
                 opts_.name + ": a message routed to '" + std::string(name) +
                     "' found no actor published under that name here (counted in "
                     "routing.undeliverable; logged once per name)");
  }

  // Flattened, as node::route_here_value (the rare paths are out of line).
  [[gnu::flatten]] void on_routed(const actor_ref<peer_link>& l, const frame_header& h,
                                  std::string_view payload) {
    peer_link* lk = link_here(l);
    if (!lk) return;  // the link is closing
    routed_view v;
    if (const char* bad = parse_routed(payload, lk->route_state(), v)) {
      close_link(l, bad);
      return;
    }
    ++route_stats_.received;
    // A table with the sender's digest places every key where the sender's
    // did, so only a newer table with another placement is consulted.
    if (v.hops == 0 && table_ && route_epoch_ > v.epoch &&
        (v.digest == 0 || v.digest != digest32()) && forwarded(l, h, v))
      return;
    const published_actor* pub = published_by_name(v.name);
    detail::inbound_fn fn = nullptr;
    if (pub && routed_cache_.pub == pub && routed_cache_.type_id == h.type_id) {
      fn = routed_cache_.fn;
    } else {
      fn = routed_decoder(l, h, v.name, pub);
      if (!fn) return;
    }
    boost::system::error_code ec = fn(pub->addr.cell(), v.message, l, h.correlation);
    if (ec) close_undecodable(l, h.type_id, ec);
  }

  /// The sending node's route epoch and table digest for the routed frames
  /// that follow on this link.
  void on_route_context(const actor_ref<peer_link>& l, std::string_view payload) {
    peer_link* lk = link_here(l);
    if (!lk) return;  // the link is closing
    link_route_state& rs = lk->route_state();
    if (!route_wire::parse_context(payload, rs)) {
      close_link(l, "malformed route_context frame");
      return;
    }
    seen_route_epoch_ = std::max(seen_route_epoch_, rs.rx_epoch);
  }

  /// The decoder for a routed frame to `pub` (published under `name`, or
  /// null: none is), remembered in routed_cache_; null after answering an
  /// ask with the error (or counting a tell as undeliverable).
  [[gnu::noinline]] detail::inbound_fn routed_decoder(const actor_ref<peer_link>& l,
                                                      const frame_header& h, std::string_view name,
                                                      const published_actor* pub) {
    const bool ask = h.kind == frame_kind::routed_ask;
    if (!pub) {
      undeliverable(name);
      if (ask) reply_error(l, h.correlation, errc::name_not_found);
      return nullptr;
    }
    auto it = pub->inbound.find(h.type_id);
    if (it == pub->inbound.end()) {
      // The sender expected another actor type under this name.
      if (ask)
        reply_error(l, h.correlation, errc::wrong_type);
      else
        undeliverable(name);
      return nullptr;
    }
    routed_cache_ = {pub, h.type_id, it->second};
    return it->second;
  }

  /// A routed frame from a sender with an older table: true if this node's
  /// table names another owner for its key, and the frame went there (once).
  /// False if it could not be sent there (the owner's link just closed): it
  /// is then delivered here, as docs/ring.md promises, not dropped.
  [[gnu::noinline]] bool forwarded(const actor_ref<peer_link>& l, const frame_header& h,
                                   const routed_view& v) {
    if (!route_owner(v.key) || owner_cache_.self) return false;
    peer_state& to = *owner_cache_.peer;
    const bool ask = h.kind == frame_kind::routed_ask;
    std::uint64_t correlation = 0;
    if (ask) {
      if (relay_count_ >= opts_.max_relays) {  // the table is full: delivered here instead
        ++limits_.relays_refused;
        return false;
      }
      correlation = next_correlation_++;
      to.relays.emplace(correlation, relay{l, h.correlation, system().now_ns()});
      ++relay_count_;
    }
    // The frame goes out with this node's route context on the owner's link.
    const errc e = put_routed_frame(to, h.kind, h.type_id, correlation, v.key, v.name, 1,
                                    [&](std::string& out) { out.append(v.message); });
    if (e != errc{}) {
      if (ask) {
        to.relays.erase(correlation);
        --relay_count_;
      }
      return false;
    }
    ++route_stats_.forwarded;
    return true;
  }

  [[gnu::cold, gnu::noinline]] static void close_link(const actor_ref<peer_link>& l,
                                                      std::string reason) {
    (void)l.tell(link_close{std::move(reason)});
  }
  [[gnu::cold, gnu::noinline]] static void close_undecodable(const actor_ref<peer_link>& l,
                                                             std::uint32_t type_id,
                                                             boost::system::error_code ec) {
    close_link(l, "payload of message type id " + std::to_string(type_id) + " failed to decode (" +
                      ec.message() + ")");
  }

  peer_state* peer(std::string_view name) {
    auto it = peers_.find(name);
    return it == peers_.end() ? nullptr : &it->second;
  }

  template <class T>
  actor_ref<T> make_proxy_for(const std::string& peer_name, std::uint64_t id) {
    return actor_ref<T>{make_proxy_addr(&troupe::detail::type_info_for<T>::value, peer_name, id)};
  }

  actor_addr make_proxy_addr(const troupe::detail::actor_type_info* type,
                             const std::string& peer_name, std::uint64_t id) {
    actor_addr a = system().make_proxy_addr(type, opts_.shard, this, id);
    peer_state& p = peers_[peer_name];
    proxies_.emplace(a.cell(), proxy_target{peer_name, id, &p});
    proxy_cache_ = {};  // a cell may be reused for a new proxy
    std::erase_if(p.proxies, [](const actor_addr& x) { return !x.alive(); });
    p.proxies.push_back(a);
    return a;
  }

  // Forgets asks whose askers gave up (deadline passed): bounded memory even
  // if a peer never answers.
  void sweep(peer_state& p) {
    for (auto it = p.pending.begin(); it != p.pending.end();) {
      troupe::detail::message* m = it->second;
      if (m->ask_base_->done_.load(std::memory_order_acquire)) {
        m->ops_->discard(m, errc::ask_timeout);
        it = p.pending.erase(it);
      } else {
        ++it;
      }
    }
    p.sweep_at = std::max<std::size_t>(1024, p.pending.size() * 2);
  }

  /// A link went down; true if it was the peer's link (the member is down).
  bool detail_down(const actor_ref<peer_link>& l, const std::string& name,
                   const std::string& reason, boost::system::error_code code) {
    link_peer_.erase(l.addr().cell());
    frame_peer_cache_ = {};
    // Asks forwarded for this link's node: their replies have nowhere to go.
    if (relay_count_ != 0)
      for (auto& [n, q] : peers_)
        relay_count_ -=
            std::erase_if(q.relays, [&](const auto& kv) { return kv.second.origin == l; });
    peer_state* p = peer(name);
    if (!p || p->link != l) return false;  // a refused duplicate, or never up
    p->link = actor_ref<peer_link>{};
    for (auto& [corr, m] : p->pending) m->ops_->discard(m, errc::node_down);
    p->pending.clear();
    for (auto& [corr, r] : p->relays) reply_error(r.origin, r.correlation, errc::node_down);
    relay_count_ -= p->relays.size();
    p->relays.clear();
    for (auto& proxy : p->proxies) {
      actor_cell* c = proxy.cell();
      if (c->alive()) c->stop(exit_reason::node_down, "link to " + name + " went down: " + reason);
      proxies_.erase(c);
      proxy_cache_ = {};
    }
    p->proxies.clear();
    p->node_proxy = actor_ref<node_actor>{};
    forget_peer(name);
    notify(member_event{name, false, reason, code == handshake_errc::leaving});
    if (auto m = members_.find(name); m != members_.end()) {
      m->second.down_since_ns = system().now_ns();
      if (!stopping_) {
        if (code == handshake_errc::leaving && !m->second.seed)
          members_.erase(m);  // it left: forgotten (it dials its seeds when it is back)
        else
          dial_member(name, 1, std::chrono::milliseconds(0));
      }
    }
    return true;
  }

  /// Erases a peer's entry once its link is down, so names that come and go
  /// do not grow the table; the caches that point into it are dropped.
  void forget_peer(const std::string& name) {
    auto it = peers_.find(name);
    if (it == peers_.end() || it->second.link) return;
    peer_state* p = &it->second;
    std::erase_if(proxies_, [p](const auto& kv) { return kv.second.state == p; });
    proxy_cache_ = {};
    owner_cache_ = {};
    for (route_slot& s : route_slots_)
      if (s.peer == p) s = route_slot{};
    frame_peer_cache_ = {};
    peers_.erase(it);
  }

  limit_stats limit_stats_now() const {
    limit_stats s = limits_;
    s.handshakes = handshaking_.size();
    s.handshake_too_large = counters_->handshake_too_large.load(std::memory_order_relaxed);
    s.handshake_timeouts = counters_->handshake_timeouts.load(std::memory_order_relaxed);
    s.link_congested = counters_->congested.load(std::memory_order_relaxed);
    s.slow_consumers = counters_->slow_consumers.load(std::memory_order_relaxed);
    s.peers = peers_.size();
    s.relays = relay_count_;
    for (const auto& [name, p] : peers_) s.pending_asks += p.pending.size();
    return s;
  }

  void notify(const member_event& e) {
    std::erase_if(subscribers_, [](const detail::subscribe_q& s) { return !s.who.alive(); });
    for (auto& s : subscribers_) s.send(e);
  }

  [[gnu::noinline]] void reply_error(const actor_ref<peer_link>& l, std::uint64_t correlation,
                                     errc e) {
    std::string payload;
    encode(static_cast<std::uint32_t>(e), payload);
    detail::send_frame(l, frame_header{frame_kind::reply_error, 0, 0, 0, correlation},
                       std::move(payload));
  }

  using actor_cell = troupe::detail::actor_cell;

  node_options opts_;
  std::shared_ptr<link_counters> counters_ = std::make_shared<link_counters>();
  link_config cfg_;
  asio::ip::tcp::acceptor acceptor_;
  std::mt19937_64 rng_;
  bool stopping_ = false;
  std::uint64_t next_local_id_ = node_actor_id + 1;
  std::uint64_t next_correlation_ = 1;
  std::unordered_map<std::uint64_t, detail::published_actor> published_;
  std::map<std::string, std::uint64_t, std::less<>> names_;
  std::map<std::string, peer_state, std::less<>> peers_;
  std::shared_ptr<const route_table> table_;
  std::uint64_t table_digest_ = 0;      // table_->digest(); its low half is sent in routed frames
  std::uint64_t route_epoch_ = 0;       // bumped past seen_route_epoch_ on each new table
  std::uint64_t seen_route_epoch_ = 0;  // the highest epoch a peer's route_context carried
  route_stats route_stats_;
  std::set<std::string, std::less<>> warned_names_;
  bool warned_names_full_ = false;
  struct {
    const char* name = nullptr;  // a string_view's data() from table_
    bool self = false;           // the name is this node's
    peer_state* peer = nullptr;  // else its peer state, if any
  } owner_cache_;
  // Per member index of table_ (route_table::owner_index): whether it is
  // this node, else its peer state once it has one.
  struct route_slot {
    bool known = false;
    bool self = false;
    peer_state* peer = nullptr;
  };
  std::vector<route_slot> route_slots_;
  struct {
    std::string_view name;  // a key of names_
    const published_actor* pub = nullptr;
  } name_cache_;
  std::unordered_map<actor_cell*, std::string> link_peer_;
  struct {
    actor_cell* link = nullptr;  // cleared when a link goes down
    peer_state* peer = nullptr;
  } frame_peer_cache_;
  /// What a dialed link was dialed for (the seed, or the member and chain).
  struct dial_target {
    endpoint to;
    std::string member;
    std::uint64_t chain = 0;
    unsigned attempt = 0;
  };
  std::unordered_map<actor_cell*, dial_target> dialed_;
  /// A member: where to dial it and which life of it this node knows.
  struct member_rec {
    std::uint64_t incarnation = 0;
    endpoint addr;                 // where it listens (port 0: unknown)
    std::optional<endpoint> seed;  // the seed it was first reached through
    bool dialing = false;          // a dial chain runs for it
    std::uint64_t chain = 0;       // the newest dial chain's number
    std::int64_t down_since_ns = 0;
  };
  std::map<std::string, member_rec, std::less<>> members_;
  std::unordered_map<std::string, actor_ref<peer_link>> pending_out_;  // dialed, mid-handshake
  std::shared_ptr<quorum_view> quorum_;
  std::vector<endpoint> self_seeds_;               // seeds that are this node
  std::set<std::string> notes_;                    // lines logged once (note_once)
  std::map<std::string, std::string> seed_notes_;  // seed -> its last logged resolution problem
  std::unordered_map<actor_cell*, proxy_target> proxies_;
  struct {
    actor_cell* proxy = nullptr;
    const proxy_target* target = nullptr;  // null: not a proxy of this node
  } proxy_cache_;
  struct inbound_cache {
    std::uint64_t target = 0;
    std::uint32_t type_id = 0;
    const published_actor* pub = nullptr;  // an entry of published_; null: empty
    detail::inbound_fn fn = nullptr;
  } inbound_cache_;
  struct {
    const published_actor* pub = nullptr;  // an entry of published_; null: empty
    std::uint32_t type_id = 0;
    detail::inbound_fn fn = nullptr;
  } routed_cache_;
  std::vector<detail::subscribe_q> subscribers_;
  std::unordered_set<actor_cell*> handshaking_;  // accepted links not yet up
  std::size_t relay_count_ = 0;                  // relays over all peers
  limit_stats limits_;  // the counters kept here (the links keep the rest in counters_)
  std::uint64_t logged_handshakes_refused_ = 0;
};

node::node(runtime& rt, node_options opts) : rt_(rt), name_(opts.name), shard_(opts.shard) {
  if (opts.name.empty()) throw std::invalid_argument("troupe: a node needs a name");
  if (opts.shard >= rt.shard_count())
    throw std::invalid_argument("troupe: node shard out of range");
  // A bind needs an address: a host name is resolved once, here.
  result<asio::ip::tcp::endpoint> bind_to = resolve_bind(rt.io(opts.shard), opts.listen);
  if (!bind_to)
    throw std::invalid_argument("troupe: --listen host '" + opts.listen.host +
                                "' cannot be resolved: " + bind_to.error().message());
  const asio::ip::tcp::endpoint ep = *bind_to;
  boost::system::error_code ec;
  asio::ip::tcp::acceptor acceptor{rt.io(opts.shard)};
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::system_error(ec, "troupe: cannot listen on " + opts.listen.host + ":" +
                                    std::to_string(opts.listen.port));
  port_ = acceptor.local_endpoint().port();
  // One TLS context for all of the node's links; bad files throw here, before anything runs.
  std::shared_ptr<asio::ssl::context> tls;
  if (opts.tls.enabled()) tls = make_tls_context(opts.tls, tls_role::cluster);
  spawn_options so;
  so.shard = static_cast<int>(opts.shard);
  if (opts.expect != 0 && opts.down_after.count() <= 0)
    throw std::invalid_argument("troupe: the majority rule (expect) needs a positive down_after");
  auto quorum = std::make_shared<quorum_view>(opts.expect, opts.down_after / 2);
  quorum_ = quorum;
  actor_ = rt.spawn<node_actor>(so, std::move(opts), std::move(acceptor), std::move(tls),
                                std::move(quorum));
  (void)actor_.tell(start_q{});
}

void node::publish_entry(const std::string& name, detail::published_actor entry) {
  (void)actor_.tell(detail::publish_q{name, std::move(entry)});
}

result<actor_addr> node::lookup_sync(detail::lookup_q q, std::chrono::nanoseconds timeout) {
  result<result<actor_addr>> r = rt_.ask_sync(actor_, std::move(q), timeout);
  if (!r) return failure<actor_addr>(r.error());
  return std::move(*r);
}

task<result<actor_addr>> node::lookup(detail::lookup_q q, std::chrono::nanoseconds timeout) {
  auto call = actor_.ask(std::move(q), timeout);
  result<result<actor_addr>> r = co_await call;
  if (!r) co_return failure<actor_addr>(r.error());
  co_return std::move(*r);
}

void node::subscribe_fn(actor_addr who, std::function<void(const member_event&)> send) {
  (void)actor_.tell(detail::subscribe_q{std::move(who), std::move(send)});
}

node::~node() {
  if (!rt_.stopping()) (void)rt_.ask_sync(actor_, shutdown_q{}, std::chrono::seconds(5));
}

result<cluster_state> node::state(std::chrono::nanoseconds timeout) {
  return rt_.ask_sync(actor_, detail::state_q{}, timeout);
}

task<result<cluster_state>> node::state_of(std::chrono::nanoseconds timeout) {
  auto call = actor_.ask(detail::state_q{}, timeout);
  result<cluster_state> r = co_await call;
  co_return r;
}

void node::set_route_table(std::shared_ptr<const route_table> table) {
  (void)actor_.tell(detail::set_route_q{std::move(table)});
}

namespace {
// The node actor, when a routed send may be placed at once: on the node's
// shard, with nothing queued for the node actor and none of its turns in
// progress — as a message to a proxy is: every earlier message to the node
// actor (a new route table, an earlier routed send) has been handled, so the
// order is the mailbox's.
node_actor* placing_now(const actor_ref<node_actor>& a) noexcept {
  using troupe::detail::actor_cell;
  actor_cell* c = a.addr().cell();
  constexpr std::uint8_t hold = actor_cell::scheduled | actor_cell::busy | actor_cell::in_turn |
                                actor_cell::stopping | actor_cell::restart_pending;
  if (!c || c->home_ != troupe::detail::this_shard() || !c->alive() ||
      !c->has(actor_cell::instance_live) || (c->flags_ & hold) != 0 || c->mailbox_len_ != 0)
    return nullptr;
  return static_cast<node_actor*>(c->instance_);
}
}  // namespace

bool node::route_here(std::string_view key, std::string_view name,
                      const troupe::detail::actor_type_info* type,
                      troupe::detail::message* m) const {
  node_actor* n = placing_now(actor_);
  if (!n) return false;
  n->place(key, name, type, m);
  return true;
}

// Flattened: placing_now, route_owner's fast path, put_routed_frame, the
// link's append and the prefix writer are inlined into one function (the rare
// paths are kept out of line: route_owner_slow, deliver_local, the name
// binding, the route context, log_too_large). As calls, their prologues and
// argument moves cost ~270 instructions a routed tell (callgrind,
// benchmarks/RESULTS.md, 2026-11-27).
[[gnu::flatten]] bool node::route_here_value(std::string_view key, std::string_view name,
                                             const troupe::detail::actor_type_info* type,
                                             std::uint32_t wire_type,
                                             void (*encode)(const void*, std::string&),
                                             troupe::detail::message* (*make)(void*),
                                             void* value) const {
  node_actor* n = placing_now(actor_);
  if (!n) return false;
  n->place_value(key, name, type, wire_type, encode, make, value);
  return true;
}

void node::route_send(detail::route_q q) const {
  (void)actor_.tell(std::move(q));  // refused: the envelope fails with no_route as q goes
}

namespace detail {

peer_link* link_here(const actor_ref<peer_link>& l) noexcept {
  troupe::detail::actor_cell* c = l.addr().cell();
  if (!c || c->home_ != troupe::detail::this_shard() || !c->alive() ||
      !c->has(troupe::detail::actor_cell::instance_live))
    return nullptr;
  return static_cast<peer_link*>(c->instance_);
}

std::string error_payload(errc e) {
  std::string payload;
  encode(static_cast<std::uint32_t>(e), payload);
  return payload;
}

void send_frame(const actor_ref<peer_link>& l, const frame_header& h,
                std::string payload) noexcept {
  troupe::detail::actor_cell* c = l.addr().cell();
  if (!c || !c->alive()) return;
  try {
    if (c->home_ == troupe::detail::this_shard()) {
      if (peer_link* lk = link_here(l)) append_here(*lk, h, payload);
      return;
    }
    auto* f = new frame_item;
    f->run_ = &frame_item::run;
    f->link = l;
    f->header = h;
    f->payload = std::move(payload);
    c->home_->post(f);
  } catch (...) {  // out of memory: the frame is lost, as a dropped tell
  }
}

void route_dispatch::operator()(troupe::detail::message* e) {
  if (n->route_here(key, name, type, e)) return;
  n->route_send(route_q{std::move(key), std::move(name), type, owned_message(e)});
}

}  // namespace detail

namespace {
class route_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "troupe.route"; }
  std::string message(int ev) const override {
    switch (static_cast<route_errc>(ev)) {
      case route_errc::empty_key:
        return "routing key is empty";
      case route_errc::key_too_long:
        return "routing key is longer than 65535 bytes";
      case route_errc::bad_name:
        return "routing target name is empty or longer than 255 bytes";
    }
    return "unknown routing error";
  }
};
}  // namespace

const boost::system::error_category& route_category() noexcept {
  static const route_category_impl c;
  return c;
}

}  // namespace troupe::net
