// SPDX-License-Identifier: BSL-1.0
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

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
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

/// Why a node_instance did not start: the one line troupe-node prints, and
/// its exit code (2: bad flags, 1: start-up error).
struct node_start_error : std::runtime_error {
  node_start_error(int code, const std::string& line) : std::runtime_error(line), exit_code(code) {}
  int exit_code;
};

/// A troupe-node in this process: the same flags, services and HTTP routes
/// as node_main, without the signal handling (tests and fuzz targets use
/// it). Stops in the destructor, in node_main's order.
class node_instance {
 public:
  /// `args`: the flags, without the program name. Throws node_start_error.
  explicit node_instance(const std::vector<std::string>& args,
                         std::vector<node_extension> extensions = {});
  ~node_instance();
  node_instance(const node_instance&) = delete;
  node_instance& operator=(const node_instance&) = delete;
  unsigned short http_port() const noexcept;
  unsigned short cluster_port() const noexcept;
  /// The node's gateway: its routes and counters.
  const http_gateway& http() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> p_;
};

/// One field of troupe-node's HTTP routes and the values it accepts. The
/// routes check every field against this table (one place); a value outside
/// gets a 400 naming the field and its range. docs/security.md mirrors it.
struct http_field_rule {
  const char* route;  ///< "POST /api/v1/locks/{name}/acquire"
  const char* field;  ///< "ttl_ms"
  const char* where;  ///< "body", "query" or "path"
  /// "integer" (min..max), "token" (an integer min..max, or it as a decimal
  /// string), "string" (min..max bytes), "object" (a JSON object of min..max
  /// bytes as sent) or "enum" (one of `values`)
  const char* type;
  std::uint64_t min = 0, max = 0;
  bool required = true;
  const char* values = "";  ///< enum: the choices, '|'-separated
};

/// The table for a node whose longest lock lease is `lock_max_ttl_ms`
/// (--lock-max-ttl-ms; ttl_ms fields go up to it).
std::vector<http_field_rule> node_http_fields(std::int64_t lock_max_ttl_ms = 60'000);

struct http_error_code;
/// Every error code troupe-node's routes answer with, and its status: the
/// gateway's (http_error_codes()) and the node's own (locks, sagas,
/// readiness). docs/node.md, "Errors", mirrors it.
std::vector<http_error_code> node_http_error_codes();

/// The OpenAPI 3.0 document of troupe-node's routes (docs/openapi.json,
/// built in), as served at GET /openapi.json.
std::string_view node_openapi_json() noexcept;

}  // namespace troupe::net
