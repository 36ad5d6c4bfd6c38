// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// ring_router: consistent-hash routing by key over the live cluster.
///
/// One router per node. Its actor (ring_router) keeps a ring (ring.hpp) of
/// the node itself and every peer whose link is up, fed by the node's
/// membership events; each change installs a new route table in the node
/// (net::node::set_route_table), which bumps the node's route epoch. The
/// node does the routing itself, on its shard: `route(key, msg)` sends to the
/// actor published under a name on the key's owner, forwarding once when the
/// message reaches a node whose newer table names another owner.
/// docs/ring.md states the guarantee during membership changes.
///
///   troupe::actors::router r{node};
///   r.tell<counter>("user/42", "counter", hit{});
///   auto call = r.ask<counter>("user/42", "counter", get{}, 1s);
///   result<std::uint64_t> n = co_await call;

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <troupe/actors/ring.hpp>
#include <troupe/core.hpp>
#include <troupe/net/node.hpp>
#include <vector>

namespace troupe::actors {

struct router_options {
  ring_options ring;  ///< points per member, hash
  /// Per-member weights by node name (default 1): a weight w gives a member
  /// w times the points, so about w times the keys.
  std::map<std::string, double, std::less<>> weights;
};

/// A ring as a node's route table (immutable once installed).
class ring_table final : public net::route_table {
 public:
  explicit ring_table(ring r) : ring_(std::move(r)) {}
  result<std::string_view> owner(std::string_view key) const override { return ring_.owner(key); }
  std::vector<std::string_view> owners(std::string_view key, std::size_t r) const override;
  std::size_t size() const override { return ring_.size(); }
  std::uint64_t digest() const noexcept override { return ring_.digest(); }
  std::uint32_t owner_index(std::string_view key) const override {
    return ring_.point_count() == 0 ? npos : ring_.owner_index(key);
  }
  std::string_view member(std::uint32_t i) const noexcept override { return ring_.member_name(i); }
  const class ring& get() const noexcept { return ring_; }

 private:
  class ring ring_;
};

namespace detail {
/// The router's current table, readable from any thread.
class router_view {
 public:
  std::shared_ptr<const ring_table> get() const {
    std::lock_guard lock(mutex_);
    return table_;
  }
  void set(std::shared_ptr<const ring_table> t) {
    std::lock_guard lock(mutex_);
    table_ = std::move(t);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const ring_table> table_;
};
}  // namespace detail

/// Sent to watchers (router::watch) with every new ring, and once at once.
struct ring_changed {
  std::shared_ptr<const ring_table> table;
};

namespace detail {
struct watch_q {
  actor_addr who;
  std::function<void(const ring_changed&)> send;
};
}  // namespace detail

/// The actor behind a router: applies membership events to the ring.
class ring_router : public actor {
 public:
  static constexpr const char* type_name = "troupe::actors::ring_router";
  ring_router(net::node* n, router_options o, std::shared_ptr<detail::router_view> view);
  void handle(net::member_event e);
  void handle(detail::watch_q q);

 private:
  void install();
  double weight(std::string_view member) const;

  net::node* node_;
  router_options opts_;
  std::shared_ptr<detail::router_view> view_;
  class ring ring_;
  std::vector<detail::watch_q> watchers_;
};

/// A node's router: routes tells and asks by key. Copyable handles are not
/// needed: pass it by reference; every member is callable from any thread.
/// Destroy it before its node.
class router {
 public:
  /// Starts the ring_router on the node's shard. Throws std::invalid_argument
  /// for bad options (zero points, a bad weight).
  explicit router(net::node& n, router_options o = {});
  ~router();
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  /// Tells the actor published as `name` on the owner of `key`.
  /// See net::node::route_tell for the errors.
  template <class T, class M>
  boost::system::error_code tell(std::string_view key, std::string_view name, M&& m) const {
    return node_.route_tell<T>(key, name, std::forward<M>(m));
  }
  /// Asks the actor published as `name` on the owner of `key`; co_await it.
  /// See net::node::route_ask for the errors.
  template <class T, class M>
  auto ask(std::string_view key, std::string_view name, M&& m,
           std::chrono::nanoseconds timeout) const {
    return node_.route_ask<T>(key, name, std::forward<M>(m), timeout);
  }

  /// The owner of `key` in this node's current ring.
  result<std::string> owner(std::string_view key) const;
  /// `r` distinct members for `key`, owner first (a replica set).
  result<std::vector<std::string>> owners(std::string_view key, std::size_t r) const;
  /// The members of this node's current ring (itself and its linked peers).
  std::vector<std::string> members() const;
  /// Ring changes applied so far (the node's route epoch, which orders tables
  /// across nodes, is in node.state().routing).
  std::uint64_t changes() const;
  const actor_ref<ring_router>& ref() const noexcept { return actor_; }
  /// The node this router routes for.
  net::node& node() const noexcept { return node_; }

  /// Sends ring_changed to `a` now and after every ring change (the table
  /// the node routes with from then on).
  template <class T>
  void watch(const actor_ref<T>& a) {
    static_assert(troupe::detail::handles<T, ring_changed>,
                  "troupe: a ring watcher needs handle(troupe::actors::ring_changed)");
    (void)actor_.tell(detail::watch_q{a.addr(), [a](const ring_changed& c) { (void)a.tell(c); }});
  }

 private:
  net::node& node_;
  std::shared_ptr<detail::router_view> view_;
  actor_ref<ring_router> actor_;
};

}  // namespace troupe::actors
