// The node actor: links, published actors, proxies, remote asks, membership.

#include <boost/asio/ip/tcp.hpp>
#include <random>
#include <sstream>
#include <troupe/net/node.hpp>

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
struct start_q {};
struct shutdown_q {};
struct dial_q {
  endpoint to;
  unsigned attempt = 0;
};
}  // namespace

class node_actor final : public actor, public link_listener, public troupe::detail::remote_sink {
 public:
  static constexpr bool reentrant = true;  // accepting, dialing, lookups and frames interleave
  static constexpr const char* type_name = "troupe::net::node_actor";
  using remote_messages = message_list<lookup_req>;

  node_actor(node_options o, asio::ip::tcp::acceptor acceptor)
      : opts_(std::move(o)), acceptor_(std::move(acceptor)), rng_(std::random_device{}()) {
    cfg_.node = opts_.name;
    cfg_.cluster = opts_.cluster;
    cfg_.secret = opts_.secret;
    cfg_.heartbeat = opts_.heartbeat;
    cfg_.down_after = opts_.down_after;
    cfg_.max_frame = opts_.max_frame;
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
    if (!opts_.secret)
      system().log(
          "troupe: node " + opts_.name +
          " has no cluster secret: it accepts loopback peers only (set one with --secret-file)");
    for (const endpoint& s : opts_.seeds) (void)ref_of(this).tell(dial_q{s, 0});
    for (;;) {
      result<asio::ip::tcp::socket> s = co_await acceptor_.async_accept(use_task);
      if (!s) {
        if (s.error() == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        system().log("troupe: node " + opts_.name + ": accept failed: " + s.error().message());
        co_await sleep_for(
            std::chrono::milliseconds(10));  // e.g. out of file descriptors: do not spin
        continue;
      }
      auto l = spawn<peer_link>(cfg_, std::move(*s), peer_link::role::acceptor,
                                static_cast<link_listener*>(this), self());
      (void)l.tell(link_start{});
    }
  }

  task<void> handle(dial_q d) {
    if (stopping_) co_return;
    if (d.attempt > 0) {
      // Exponential backoff with full jitter, capped.
      const auto base = std::min<std::int64_t>(
          opts_.redial_max.count(), opts_.redial_min.count() << std::min(d.attempt - 1, 16u));
      std::uniform_int_distribution<std::int64_t> jitter(base / 2, base);
      co_await sleep_for(std::chrono::milliseconds(jitter(rng_)));
      if (stopping_) co_return;
    }
    asio::ip::tcp::socket s{runtime::this_io()};
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(d.to.host, ec);
    if (ec) {
      system().log("troupe: node " + opts_.name + ": seed " + d.to.host + ":" +
                   std::to_string(d.to.port) + " is not an IP address; not dialing it");
      co_return;
    }
    ec = co_await s.async_connect(asio::ip::tcp::endpoint{addr, d.to.port}, use_task);
    if (ec) {
      if (d.attempt == 0 || d.attempt % 10 == 0)
        system().log("troupe: node " + opts_.name + ": dialing " + d.to.host + ":" +
                     std::to_string(d.to.port) + " failed (" + ec.message() +
                     "), retrying with backoff");
      (void)ref_of(this).tell(dial_q{d.to, d.attempt + 1});
      co_return;
    }
    auto l = spawn<peer_link>(cfg_, std::move(s), peer_link::role::dialer,
                              static_cast<link_listener*>(this), self());
    dialed_.emplace(l.addr().cell(), d.to);
    (void)l.tell(link_start{});
  }

  void handle(detail::publish_q q) {
    const std::uint64_t id = next_local_id_++;
    monitor(q.entry.addr);
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
    for (auto& [name, p] : peers_) {
      member_info m;
      m.name = name;
      m.up = static_cast<bool>(p.link);
      if (p.link) {
        actor_ref<peer_link> l = p.link;
        auto call = l.ask(link_stats_q{}, std::chrono::seconds(1));
        result<link_stats> st = co_await call;
        if (st) m.stats = std::move(*st);
      }
      s.members.push_back(std::move(m));
    }
    co_return s;
  }

  void handle(shutdown_q) {
    stopping_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto& [name, p] : peers_)
      if (p.link) (void)p.link.tell(link_close{"node " + opts_.name + " is shutting down"});
    stop();
  }

  void handle(down_msg d) {
    // A published actor stopped: forget it and tell every peer, so their proxies stop.
    for (auto it = published_.begin(); it != published_.end(); ++it) {
      if (it->second.addr == d.who) {
        const std::uint64_t id = it->first;
        std::erase_if(names_, [id](const auto& kv) { return kv.second == id; });
        published_.erase(it);
        std::string payload;
        encode(static_cast<std::uint8_t>(d.reason), payload);
        encode(d.what, payload);
        for (auto& [name, p] : peers_)
          if (p.link)
            (void)p.link.tell(link_send{frame_header{frame_kind::down, 0, id, 0, 0}, payload});
        break;
      }
    }
  }

  // --- link_listener: called on this shard by the links ---

  void on_up(const actor_ref<peer_link>& l, const std::string& name) override {
    peer_state& p = peers_[name];
    if (p.link && p.link.alive() && p.link != l) {
      (void)l.tell(link_close{"duplicate link: " + name + " is already linked"});
      return;
    }
    p.link = l;
    link_peer_[l.addr().cell()] = name;
    notify(member_event{name, true, {}});
  }

  void on_down(const actor_ref<peer_link>& l, const std::string& name,
               const std::string& reason) override {
    detail_down(l, name, reason);
    if (auto d = dialed_.find(l.addr().cell()); d != dialed_.end()) {
      endpoint to = d->second;
      dialed_.erase(d);
      if (!stopping_) (void)ref_of(this).tell(dial_q{to, 1});
    }
  }

  void on_frame(const actor_ref<peer_link>& l, const frame_header& h,
                std::string_view payload) override {
    auto lp = link_peer_.find(l.addr().cell());
    if (lp == link_peer_.end()) return;
    peer_state& p = peers_[lp->second];
    switch (h.kind) {
      case frame_kind::tell:
      case frame_kind::ask: {
        auto pub = published_.find(h.target);
        if (pub == published_.end() || !pub->second.addr.alive()) {
          if (h.kind == frame_kind::ask) reply_error(l, h.correlation, errc::actor_dead);
          return;
        }
        auto fn = pub->second.inbound.find(h.type_id);
        if (fn == pub->second.inbound.end()) {
          (void)l.tell(link_close{"unknown message type id " + std::to_string(h.type_id) + " for " +
                                  pub->second.type_name});
          return;
        }
        boost::system::error_code ec =
            fn->second(pub->second.addr.cell(), payload, l, h.correlation);
        if (ec)
          (void)l.tell(link_close{"payload of message type id " + std::to_string(h.type_id) +
                                  " failed to decode (" + ec.message() + ")"});
        return;
      }
      case frame_kind::reply:
      case frame_kind::reply_error: {
        auto it = p.pending.find(h.correlation);
        if (it == p.pending.end()) return;  // the asker's deadline already passed and it was swept
        troupe::detail::message* m = it->second;
        p.pending.erase(it);
        if (h.kind == frame_kind::reply) {
          if (!m->ops_->complete(m, payload))
            m->ops_->discard(m, errc::bad_reply);
          else
            m->ops_->discard(m, errc::bad_reply);  // already completed: this only frees it
        } else {
          result<std::uint32_t> code = decode<std::uint32_t>(payload);
          errc e =
              code && *code >= 1 && *code <= static_cast<std::uint32_t>(errc::message_too_large)
                  ? static_cast<errc>(*code)
                  : errc::remote_error;
          m->ops_->discard(m, e);
        }
        return;
      }
      case frame_kind::down: {
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
    auto t = proxies_.find(proxy);
    peer_state* p = t == proxies_.end() ? nullptr : peer(t->second.peer);
    if (!p || !p->link) {
      m->ops_->discard(m, errc::node_down);
      return;
    }
    frame_header h{m->ask_base_ ? frame_kind::ask : frame_kind::tell, m->ops_->wire_type,
                   t->second.remote_id, 0, 0};
    std::string payload;
    try {
      m->ops_->encode(m, payload);
    } catch (...) {
      m->ops_->discard(m, errc::not_serializable);
      return;
    }
    if (payload.size() >
        std::min<std::size_t>(frame_payload_max, opts_.max_frame - (frame_header_bytes - 4))) {
      system().log("troupe: node " + opts_.name + ": a message of " +
                   std::to_string(payload.size()) + " bytes exceeds the frame limit; not sent");
      m->ops_->discard(m, errc::message_too_large);
      return;
    }
    if (m->ask_base_) {
      h.correlation = next_correlation_++;
      p->pending.emplace(h.correlation, m);
      if (p->pending.size() > p->sweep_at) sweep(*p);
    } else {
      m->ops_->discard(m, errc::actor_dead);  // a tell carries no ask: this only frees it
    }
    (void)p->link.tell(link_send{h, std::move(payload)});
  }

 private:
  struct peer_state {
    actor_ref<peer_link> link;
    actor_ref<node_actor> node_proxy;
    std::vector<actor_addr> proxies;
    std::unordered_map<std::uint64_t, troupe::detail::message*> pending;  // asks awaiting a reply
    std::size_t sweep_at = 1024;
  };
  struct proxy_target {
    std::string peer;
    std::uint64_t remote_id;
  };

  peer_state* peer(const std::string& name) {
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
    proxies_.emplace(a.cell(), proxy_target{peer_name, id});
    peer_state& p = peers_[peer_name];
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

  void detail_down(const actor_ref<peer_link>& l, const std::string& name,
                   const std::string& reason) {
    link_peer_.erase(l.addr().cell());
    peer_state* p = peer(name);
    if (!p || p->link != l) return;  // a refused duplicate, or never up
    p->link = actor_ref<peer_link>{};
    for (auto& [corr, m] : p->pending) m->ops_->discard(m, errc::node_down);
    p->pending.clear();
    for (auto& proxy : p->proxies) {
      actor_cell* c = proxy.cell();
      if (c->alive()) c->stop(exit_reason::node_down, "link to " + name + " went down: " + reason);
      proxies_.erase(c);
    }
    p->proxies.clear();
    p->node_proxy = actor_ref<node_actor>{};
    notify(member_event{name, false, reason});
  }

  void notify(const member_event& e) {
    std::erase_if(subscribers_, [](const detail::subscribe_q& s) { return !s.who.alive(); });
    for (auto& s : subscribers_) s.send(e);
  }

  void reply_error(const actor_ref<peer_link>& l, std::uint64_t correlation, errc e) {
    std::string payload;
    encode(static_cast<std::uint32_t>(e), payload);
    (void)l.tell(
        link_send{frame_header{frame_kind::reply_error, 0, 0, 0, correlation}, std::move(payload)});
  }

  using actor_cell = troupe::detail::actor_cell;

  node_options opts_;
  link_config cfg_;
  asio::ip::tcp::acceptor acceptor_;
  std::mt19937_64 rng_;
  bool stopping_ = false;
  std::uint64_t next_local_id_ = node_actor_id + 1;
  std::uint64_t next_correlation_ = 1;
  std::unordered_map<std::uint64_t, detail::published_actor> published_;
  std::unordered_map<std::string, std::uint64_t> names_;
  std::map<std::string, peer_state> peers_;
  std::unordered_map<actor_cell*, std::string> link_peer_;
  std::unordered_map<actor_cell*, endpoint> dialed_;
  std::unordered_map<actor_cell*, proxy_target> proxies_;
  std::vector<detail::subscribe_q> subscribers_;
};

node::node(runtime& rt, node_options opts) : rt_(rt), name_(opts.name) {
  if (opts.name.empty()) throw std::invalid_argument("troupe: a node needs a name");
  if (opts.shard >= rt.shard_count())
    throw std::invalid_argument("troupe: node shard out of range");
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(opts.listen.host, ec);
  if (ec)
    throw std::invalid_argument("troupe: --listen host '" + opts.listen.host +
                                "' is not an IP address");
  asio::ip::tcp::acceptor acceptor{rt.io(opts.shard)};
  asio::ip::tcp::endpoint ep{addr, opts.listen.port};
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::system_error(ec, "troupe: cannot listen on " + opts.listen.host + ":" +
                                    std::to_string(opts.listen.port));
  port_ = acceptor.local_endpoint().port();
  spawn_options so;
  so.shard = static_cast<int>(opts.shard);
  actor_ = rt.spawn<node_actor>(so, std::move(opts), std::move(acceptor));
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

}  // namespace troupe::net
