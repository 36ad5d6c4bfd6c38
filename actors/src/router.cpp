// SPDX-License-Identifier: BSL-1.0
// The ring-router: the ring of live members, installed in the node on each change.

#include <cmath>
#include <stdexcept>
#include <troupe/actors/router.hpp>

namespace troupe::actors {

std::vector<std::string_view> ring_table::owners(std::string_view key, std::size_t r) const {
  result<std::vector<std::string_view>> o = ring_.owners(key, r);
  if (!o) return {};
  return std::move(*o);
}

ring_router::ring_router(net::node* n, router_options o, std::shared_ptr<detail::router_view> view)
    : node_(n), opts_(std::move(o)), view_(std::move(view)), ring_(opts_.ring) {
  if (auto ec = ring_.add(node_->name(), weight(node_->name())))
    throw std::invalid_argument("troupe: router: node " + node_->name() + ": " + ec.message());
  install();
}

double ring_router::weight(std::string_view member) const {
  auto it = opts_.weights.find(member);
  return it == opts_.weights.end() ? 1.0 : it->second;
}

void ring_router::handle(net::member_event e) {
  boost::system::error_code ec;
  if (e.up) {
    if (ring_.contains(e.node)) return;
    ec = ring_.add(e.node, weight(e.node));
  } else {
    if (!ring_.contains(e.node)) return;
    ec = ring_.remove(e.node);
  }
  if (ec) {
    system().log(log_level::warn, "router",
                 node_->name() + ": member " + e.node + ": " + ec.message());
    return;
  }
  install();
}

void ring_router::handle(detail::watch_q q) {
  q.send(ring_changed{view_->get()});
  watchers_.push_back(std::move(q));
}

void ring_router::install() {
  auto t = std::make_shared<const ring_table>(ring_);
  view_->set(t);
  node_->set_route_table(t);
  std::erase_if(watchers_, [](const detail::watch_q& w) { return !w.who.alive(); });
  for (auto& w : watchers_) w.send(ring_changed{t});
}

router::router(net::node& n, router_options o)
    : node_(n), view_(std::make_shared<detail::router_view>()) {
  // Refuse bad options here, on the caller's thread, with a clear message.
  class ring probe(o.ring);  // throws for bad points
  for (const auto& [member, w] : o.weights)
    if (auto ec = probe.add(member, w))
      throw std::invalid_argument("troupe: router: weight of " + member + ": " + ec.message());
  spawn_options so;
  so.shard = static_cast<int>(n.shard());
  actor_ = n.runtime_ref().spawn<ring_router>(so, &n, std::move(o), view_);
  n.subscribe(actor_);
}

router::~router() {
  node_.set_route_table(nullptr);  // routed sends fail with no_route from now on
  actor_.stop();
}

result<std::string> router::owner(std::string_view key) const {
  auto t = view_->get();
  if (!t) return failure<std::string>(make_error_code(ring_errc::empty_ring));
  result<std::string_view> o = t->get().owner(key);
  if (!o) return failure<std::string>(o.error());
  return std::string(*o);
}

result<std::vector<std::string>> router::owners(std::string_view key, std::size_t r) const {
  auto t = view_->get();
  if (!t) return failure<std::vector<std::string>>(make_error_code(ring_errc::empty_ring));
  auto o = t->get().owners(key, r);
  if (!o) return failure<std::vector<std::string>>(o.error());
  return std::vector<std::string>(o->begin(), o->end());
}

std::vector<std::string> router::members() const {
  auto t = view_->get();
  return t ? t->get().members() : std::vector<std::string>{};
}

std::uint64_t router::changes() const {
  auto t = view_->get();
  return t ? t->get().epoch() : 0;
}

}  // namespace troupe::actors
