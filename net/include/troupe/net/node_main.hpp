#pragma once
/// \file
/// node_main: the troupe-node program as a function, so an application can
/// ship its own node binary — the standard flags, cluster link, ring-router,
/// lock-manager, saga orchestrator and HTTP gateway, plus its own actors,
/// saga types, routes and flags (link `troupe::node_main`).
///
///   int main(int argc, char** argv) {
///     troupe::net::node_extension shop;
///     shop.name = "shop";
///     shop.add_flags = [](CLI::App& app) { app.add_option("--shop-stock", stock); };
///     shop.start = [](troupe::net::node_context& n) {
///       auto inv = n.rt.spawn<inventory>();
///       n.cluster.publish(inv, "inventory");
///       n.sagas.add(order_definition(n));
///       n.http.expose<inventory, stock_query>(http::verb::get, "/api/v1/shop/stock", inv);
///     };
///     return troupe::net::node_main(argc, argv, {shop});
///   }
///
/// Extensions start in order, after the node, router, lock-manager and
/// gateway exist and before the orchestrator resumes the stored sagas (so a
/// saga type an extension adds is known to the sagas it resumes) and before
/// the gateway accepts requests. On SIGTERM the gateway and orchestrator stop
/// first, then each extension's stop(), in reverse order, then the runtime.

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}
namespace troupe {
class runtime;
}
namespace troupe::actors {
class router;
}
namespace troupe::saga {
class registry;
}

namespace troupe::net {

class node;
class http_gateway;

/// What an extension is handed when the node starts.
struct node_context {
  troupe::runtime& rt;
  net::node& cluster;  ///< this node: publish actors, look peers up, route by key
  actors::router& router;
  http_gateway& http;           ///< add routes; it starts after every extension
  saga::registry& sagas;        ///< add saga types before the orchestrator resumes
  const std::string& name;      ///< --name
  const std::string& data_dir;  ///< --data-dir, or empty (nothing durable)
};

struct node_extension {
  std::string name;
  /// Adds the extension's own flags (parsed with the standard ones).
  std::function<void(CLI::App&)> add_flags{};
  /// Called once at start-up; throwing fails the start with one line.
  std::function<void(node_context&)> start{};
  /// Called at shutdown, before the runtime stops.
  std::function<void()> stop{};
};

/// Runs a node until SIGTERM / SIGINT; returns the process exit code
/// (2: bad flags, 1: start-up error, 0: orderly stop).
int node_main(int argc, char** argv, std::vector<node_extension> extensions = {});

}  // namespace troupe::net
