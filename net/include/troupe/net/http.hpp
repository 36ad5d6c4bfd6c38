// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// http_gateway: an HTTP/1.1 + JSON front door on Boost.Beast, running on a
/// shard's io_context, whose handlers are coroutines that may ask actors.
///
///   troupe::net::http_gateway gw{rt, {.listen = {"127.0.0.1", 8080}}};
///   gw.route(http::verb::get, "/api/v1/ring/owner", [&](http_request& r)
///              -> task<http_response> { co_return json_ok({{"node", owner(r.query("key"))}}); });
///   gw.expose<bank, deposit>(http::verb::post, "/api/v1/bank/deposit", bank_ref);  // JSON <->
///   message gw.start();
///
/// Every connection is an actor: keep-alive, one request at a time, a read
/// timeout for a request's headers and body, an idle timeout between
/// requests, and a size limit on both. Anything malformed gets a 4xx with a
/// JSON body {"error": "...", "code": "..."} (a message, and a stable code
/// from http_error_codes()) and never more than that connection is touched.
/// A 405 says which methods the path takes (Allow); a 503 or 429 says when
/// to come back (Retry-After, 1 s unless the handler said otherwise).
///
/// The gateway counts requests by route pattern, method and status, and
/// times them (route_stats(); troupe-node's /metrics renders them).
///
/// Request targets must be canonical (docs/security.md, "HTTP gateway:
/// authentication and request paths"): origin-form ("/..." only), no empty,
/// "." or ".." segments, no trailing slash, no percent-escape of an
/// unreserved character, only URI path characters. Anything else is a 400
/// before routing. With a bearer token configured, every route whose pattern
/// starts with /api/ — and every path whose first segment is "api" in any
/// case — requires `Authorization: Bearer <token>` (compared in constant
/// time; 401 with `WWW-Authenticate: Bearer` otherwise). Binds 127.0.0.1
/// unless told.
/// With http_options::tls it serves HTTPS only: a plain-HTTP client's
/// connection fails its TLS handshake and is closed (one log line).

#include <array>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <troupe/core.hpp>
#include <troupe/net/endpoint.hpp>
#include <troupe/net/tls.hpp>
#include <vector>

namespace troupe::net {

namespace http = boost::beast::http;
namespace json = boost::json;

struct http_options {
  /// port 0: an ephemeral port (see port()); a host name is resolved once,
  /// in the constructor (resolve_bind: its first IPv4 address, else its first)
  endpoint listen{"127.0.0.1", 8080};
  std::optional<std::string> token;      ///< bearer token required on /api/ routes
  std::size_t header_limit = 8 * 1024;   ///< bytes of a request's start line and headers (431)
  std::size_t body_limit = 1024 * 1024;  ///< bytes of a request's body (413)
  std::chrono::milliseconds read_timeout{10'000};  ///< one request's headers and body
  std::chrono::milliseconds idle_timeout{30'000};  ///< between keep-alive requests
  /// Connections open at once; one more is answered 503 (Retry-After: 1) and closed.
  std::size_t max_connections = 1024;
  /// How long a route's handler may run; past it the client gets a 504, the
  /// connection is closed and the handler's work is abandoned (its coroutine
  /// is unwound at its next suspension point, as when an actor stops).
  std::chrono::milliseconds handler_timeout{75'000};
  unsigned shard = 0;
  /// Certificate, key and CA: the gateway serves HTTPS (TLS 1.3) with this
  /// certificate and asks clients for none. None: plain HTTP.
  tls_options tls;
};

/// A request as a handler sees it.
struct http_request {
  http::verb method = http::verb::get;
  std::string target;  ///< as sent: path and query
  std::string path;    ///< the path as sent (percent-encoded), no query
  std::map<std::string, std::string> query_params;
  std::map<std::string, std::string> params;  ///< {name} segments of the route pattern, decoded
  std::string body;
  std::string content_type;

  /// A query parameter, or empty.
  std::string query(const std::string& name) const;
  /// A path parameter ({name} in the pattern).
  const std::string& param(const std::string& name) const;
};

struct http_response {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  /// Extra response headers (e.g. Retry-After), sent as given.
  std::vector<std::pair<std::string, std::string>> headers{};
};

/// A JSON response (status 200 unless given).
http_response json_reply(const json::value& v, unsigned status = 200);

/// A machine-readable error code: what the "code" of an error body says,
/// the status it comes with, and what it means (docs/node.md, "Errors").
struct http_error_code {
  const char* code;  ///< snake_case, stable
  unsigned status;
  const char* meaning;
};
/// The codes the gateway itself answers with, and the default code of each
/// status (http_default_code). Stable: codes are added, never renamed.
std::span<const http_error_code> http_error_codes() noexcept;
/// The code of an error of `status` that names none: the table's first code
/// of that status, else "bad_request" (4xx) or "internal" (5xx).
std::string_view http_default_code(unsigned status) noexcept;

/// {"error": message, "code": http_default_code(status)} with a 4xx / 5xx status.
http_response json_error(unsigned status, std::string_view message);
/// {"error": message, "code": code} with a 4xx / 5xx status.
http_response json_error(unsigned status, std::string_view code, std::string_view message);

/// The body parsed as a JSON object, or a 400 response saying why.
result<json::object> json_object_body(const http_request& r, http_response& error_out);

/// Typed fields of a JSON object: a missing field or a field of another type
/// fills `error_out` (400 bad_field, naming the field) and returns nothing.
std::optional<std::string> json_string(const json::object& o, std::string_view field,
                                       http_response& error_out, bool required = true);
std::optional<std::int64_t> json_int(const json::object& o, std::string_view field,
                                     http_response& error_out, bool required = true);

using http_handler = std::function<task<http_response>(http_request&)>;

/// Counters of a gateway.
struct http_stats {
  std::uint64_t requests = 0, client_errors = 0, server_errors = 0, connections = 0;
  std::uint64_t open_connections = 0;     ///< now (a gauge)
  std::uint64_t refused_connections = 0;  ///< over max_connections
  std::uint64_t handler_timeouts = 0;     ///< handlers cut off at handler_timeout
  std::uint64_t unauthorized = 0;         ///< 401s
  std::uint64_t bad_targets = 0;          ///< non-canonical request targets (400)
  std::uint64_t tls_refused = 0;          ///< HTTPS connections whose TLS handshake failed
};

/// Requests of one route and method: how they were answered, and how long
/// they took (from the request read to its response ready to send).
struct http_route_stats {
  std::string route;   ///< the route's pattern ("/api/v1/locks/{name}/acquire"), or "unmatched"
  std::string method;  ///< "GET", "POST", ... ("other" for a method Beast does not know)
  std::map<unsigned, std::uint64_t> responses;  ///< by status
  latency_histogram latency;  ///< count() is every request of the route and method
};

/// A route as added: its method and pattern.
struct http_route_info {
  http::verb method = http::verb::get;
  std::string pattern;
};

/// Why a request target is not canonical, or nothing when it is (the rule
/// the gateway applies before routing; see the file comment).
std::optional<std::string> http_target_problem(std::string_view target);

class http_acceptor;

class http_gateway {
 public:
  /// Binds the listening socket (throws std::system_error naming the
  /// endpoint, e.g. a port in use). Routes are added before start().
  http_gateway(runtime& rt, http_options o);
  /// Stops accepting, closes every connection and, called from outside the
  /// runtime's threads, waits until their handlers have unwound: once it
  /// returns no handler runs, so what the handlers captured may go.
  ~http_gateway();
  http_gateway(const http_gateway&) = delete;
  http_gateway& operator=(const http_gateway&) = delete;

  /// Adds a route. Patterns are paths whose segments may be {name}
  /// parameters: "/api/v1/locks/{name}/acquire".
  void route(http::verb method, std::string pattern, http_handler h);

  /// Exposes an actor: the request's JSON body becomes an M
  /// (boost::json::value_to<M>, so M needs a tag_invoke value_to), the
  /// actor's reply becomes the response body (boost::json::value_from).
  /// A body that does not convert is a 400; an ask error a 503 / 504.
  template <class T, class M>
  void expose(http::verb method, std::string pattern, actor_ref<T> a,
              std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

  /// Starts accepting connections.
  void start();
  unsigned short port() const noexcept { return port_; }
  /// Totals. Safe to call from any thread.
  http_stats stats() const;
  /// Requests by route, method and status, with their latency histograms,
  /// ordered by route then method. Routes not yet requested are absent;
  /// requests that matched no route (404s, and refusals before routing:
  /// bad targets, 401s on unknown /api/ paths) are under "unmatched".
  /// Requests that could not be parsed are not counted here (see
  /// http_stats::client_errors). Safe to call from any thread.
  std::vector<http_route_stats> route_stats() const;
  /// Every route, in the order added.
  std::vector<http_route_info> routes() const;

  struct shared;  ///< internal: routes, options and counters, shared with the connections

 private:
  runtime* rt_;
  std::shared_ptr<shared> s_;
  unsigned short port_ = 0;
  actor_ref<http_acceptor> acceptor_;
};

/// Maps an ask / transport error to an HTTP status: 504 for a timeout, 503
/// for an unreachable or stopped target, 500 otherwise.
unsigned http_status_for(const boost::system::error_code& ec) noexcept;

template <class T, class M>
void http_gateway::expose(http::verb method, std::string pattern, actor_ref<T> a,
                          std::chrono::milliseconds timeout) {
  route(method, std::move(pattern), [a, timeout](http_request& r) -> task<http_response> {
    json::value in;
    if (!r.body.empty()) {
      boost::system::error_code ec;
      in = json::parse(r.body, ec);
      if (ec) co_return json_error(400, "malformed JSON body: " + ec.message());
    }
    result<M> m = json::try_value_to<M>(in);
    if (!m) co_return json_error(400, "the body is not a valid request: " + m.error().message());
    auto call = a.ask(std::move(*m), timeout);
    auto reply = co_await call;
    if (!reply) co_return json_error(http_status_for(reply.error()), reply.error().message());
    using R = typename decltype(reply)::value_type;
    if constexpr (std::is_void_v<R>) {
      co_return json_reply(json::object{});
    } else {
      co_return json_reply(json::value_from(*reply));
    }
  });
}

}  // namespace troupe::net
