// SPDX-License-Identifier: BSL-1.0
// The HTTP gateway: an acceptor actor and one actor per connection, on Beast.

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <troupe/net/http.hpp>
#include <tuple>
#include <type_traits>

namespace troupe::net {

namespace asio = boost::asio;
namespace beast = boost::beast;

// --- requests, responses, JSON helpers ---------------------------------------------

std::string http_request::query(const std::string& name) const {
  auto it = query_params.find(name);
  return it == query_params.end() ? std::string{} : it->second;
}

const std::string& http_request::param(const std::string& name) const {
  static const std::string none;
  auto it = params.find(name);
  return it == params.end() ? none : it->second;
}

http_response json_reply(const json::value& v, unsigned status) {
  return http_response{status, json::serialize(v), "application/json"};
}

namespace {
constexpr std::array<http_error_code, 16> gateway_codes{{
    {"bad_request", 400,
     "the request is not valid HTTP, or its body is not what the route takes (malformed JSON, "
     "not an object, not the route's message)"},
    {"bad_request_target", 400,
     "the request target is not canonical (docs/security.md), or a path segment does not decode"},
    {"bad_query", 400, "the query string has a bad percent-escape or repeats a parameter"},
    {"bad_field", 400,
     "a field, path or query parameter is missing, of another type, or out of its range (the "
     "message names it and the range)"},
    {"unauthorized", 401, "the bearer token is missing or wrong (WWW-Authenticate: Bearer)"},
    {"not_found", 404, "the thing named does not exist"},
    {"no_route", 404, "no route has this path"},
    {"method_not_allowed", 405,
     "a route has this path, not this method (Allow lists those it has)"},
    {"conflict", 409, "the request conflicts with the state of what it names"},
    {"body_too_large", 413, "the body is over the gateway's limit (--http-body-limit)"},
    {"too_many_requests", 429, "refused at a cap; retry after Retry-After seconds"},
    {"headers_too_large", 431, "the start line and headers are over --http-header-limit"},
    {"internal", 500, "a handler failed; the log says why"},
    {"unavailable", 503,
     "the service that would answer is unreachable or stopped (no route, link down); retry after "
     "Retry-After seconds"},
    {"overloaded", 503,
     "refused at a cap of this node (HTTP connections, queued sagas); retry after Retry-After "
     "seconds"},
    {"timeout", 504, "an ask ran past its deadline, or the handler past --http-handler-timeout-ms"},
}};
}  // namespace

std::span<const http_error_code> http_error_codes() noexcept { return gateway_codes; }

std::string_view http_default_code(unsigned status) noexcept {
  for (const http_error_code& c : gateway_codes)
    if (c.status == status) return c.code;
  return status >= 500 ? "internal" : "bad_request";
}

http_response json_error(unsigned status, std::string_view message) {
  return json_error(status, http_default_code(status), message);
}

http_response json_error(unsigned status, std::string_view code, std::string_view message) {
  TROUPE_ASSERT(status >= 400 && status <= 599, "an error response needs a 4xx or 5xx status");
  json::object o;
  o["error"] = message;
  o["code"] = code;
  return json_reply(o, status);
}

result<json::object> json_object_body(const http_request& r, http_response& error_out) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) {
    error_out = json_error(400, "malformed JSON body: " + ec.message());
    return failure<json::object>(ec);
  }
  if (!v.is_object()) {
    error_out = json_error(400, "the JSON body must be an object");
    return failure<json::object>(make_error_code(std::errc::invalid_argument));
  }
  return std::move(v.as_object());
}

std::optional<std::string> json_string(const json::object& o, std::string_view field,
                                       http_response& error_out, bool required) {
  auto it = o.find(field);
  if (it == o.end()) {
    if (required)
      error_out = json_error(400, "bad_field", "missing field '" + std::string(field) + "'");
    return std::nullopt;
  }
  if (!it->value().is_string()) {
    error_out = json_error(400, "bad_field", "field '" + std::string(field) + "' must be a string");
    return std::nullopt;
  }
  return std::string(it->value().as_string());
}

std::optional<std::int64_t> json_int(const json::object& o, std::string_view field,
                                     http_response& error_out, bool required) {
  auto it = o.find(field);
  if (it == o.end()) {
    if (required)
      error_out = json_error(400, "bad_field", "missing field '" + std::string(field) + "'");
    return std::nullopt;
  }
  const json::value& v = it->value();
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v.as_uint64());
  error_out = json_error(400, "bad_field", "field '" + std::string(field) + "' must be an integer");
  return std::nullopt;
}

unsigned http_status_for(const boost::system::error_code& ec) noexcept {
  if (ec == errc::ask_timeout) return 504;
  if (ec == errc::actor_dead || ec == errc::node_down || ec == errc::no_route ||
      ec == errc::runtime_stopped || ec == errc::mailbox_full || ec == errc::name_not_found ||
      ec == errc::link_congested)
    return 503;
  return 500;
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// pchar (RFC 3986) without pct-encoded: unreserved, sub-delims, ':' and '@'.
bool path_char(unsigned char c) {
  if (unreserved(c)) return true;
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
      return true;
    default:
      return false;
  }
}

// Percent-decoding ('+' stays '+': paths and our query values do not use it
// for spaces). A bad escape makes the request a 400.
std::optional<std::string> url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// SHA-256 of a string: the bearer check compares digests, so neither the
// compare nor its length depends on how much of a guessed token is right.
std::array<unsigned char, 32> digest(std::string_view s) {
  std::array<unsigned char, 32> d{};
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr) != 1 || n != d.size())
    throw std::runtime_error("troupe: SHA-256 failed");
  return d;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::vector<std::string_view> split_path(std::string_view p) {
  std::vector<std::string_view> segs;
  std::size_t i = 0;
  while (i < p.size()) {
    if (p[i] == '/') {
      ++i;
      continue;
    }
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    segs.push_back(p.substr(i, j - i));
    i = j;
  }
  return segs;
}

}  // namespace

std::optional<std::string> http_target_problem(std::string_view target) {
  if (target.empty() || target.front() != '/')
    return std::string("the request target must be a path starting with '/' (origin-form)");
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '/') {
      if (i + 1 == path.size() && path.size() > 1)
        return std::string("the path must not end with '/'");
      if (i + 1 < path.size() && path[i + 1] == '/')
        return std::string("the path must not contain an empty segment ('//')");
      continue;
    }
    if (c == '%') {
      if (i + 2 >= path.size() || hex_digit(path[i + 1]) < 0 || hex_digit(path[i + 2]) < 0)
        return std::string("the path has a malformed percent-escape");
      const auto b =
          static_cast<unsigned char>(hex_digit(path[i + 1]) * 16 + hex_digit(path[i + 2]));
      if (unreserved(b))
        return std::string("the path percent-encodes an unreserved character ('") +
               static_cast<char>(b) + "'); send it as itself";
      if (b == 0) return std::string("the path percent-encodes a NUL byte");
      i += 2;
      continue;
    }
    if (!path_char(c)) return std::string("the path has a character not allowed in a URI path");
  }
  for (std::string_view seg : split_path(path))
    if (seg == "." || seg == "..")
      return std::string("the path must not contain '.' or '..' segments");
  for (std::size_t i = 0; i < query.size(); ++i) {
    const auto c = static_cast<unsigned char>(query[i]);
    if (c == '%') {
      if (i + 2 >= query.size() || hex_digit(query[i + 1]) < 0 || hex_digit(query[i + 2]) < 0)
        return std::string("the query has a malformed percent-escape");
      i += 2;
      continue;
    }
    if (!path_char(c) && c != '/' && c != '?')
      return std::string("the query has a character not allowed in a URI query");
  }
  return std::nullopt;
}

// Requests of one route (or none: unmatched) and method, under the gateway's
// metrics mutex.
struct route_counter {
  std::map<unsigned, std::uint64_t> responses;
  latency_histogram latency;
};

struct http_gateway::shared {
  struct route_entry {
    http::verb method;
    std::string pattern;
    std::vector<std::string> segments;
    http_handler handler;
    bool needs_token = false;  // the pattern starts with /api/
  };
  http_options opts;
  std::shared_ptr<asio::ssl::context> tls;  // set: HTTPS
  std::optional<std::array<unsigned char, 32>> token_digest;
  std::vector<route_entry> routes;  // fixed once started (connections read it unlocked)
  bool started = false;
  std::atomic<std::uint64_t> requests{0}, client_errors{0}, server_errors{0}, connections{0},
      tls_refused{0};
  std::atomic<std::uint64_t> open{0}, refused{0}, handler_timeouts{0}, unauthorized{0},
      bad_targets{0};
  // By (index of the route in `routes`, or routes.size() for unmatched;
  // method). Connections write it on the gateway's shard, stats readers read
  // it from anywhere: a mutex, held for a map update.
  mutable std::mutex metrics_mutex;
  std::map<std::pair<std::size_t, http::verb>, route_counter> by_route;

  void record(const route_entry* e, http::verb method, unsigned status,
              std::chrono::nanoseconds took) {
    const std::size_t index = e ? static_cast<std::size_t>(e - routes.data()) : routes.size();
    TROUPE_ASSERT(index <= routes.size(), "a request counted under a route of another gateway");
    std::lock_guard lock(metrics_mutex);
    route_counter& c = by_route[{index, method}];
    ++c.responses[status];
    c.latency.observe(took);
  }
  // The acceptor and connections alive: each constructor adds one, each
  // destructor (after its handlers' frames are gone) takes it back. The
  // gateway's destructor waits for zero.
  std::atomic<std::uint64_t> live{0};
  void enter() noexcept { live.fetch_add(1, std::memory_order_relaxed); }
  void leave() noexcept {
    live.fetch_sub(1, std::memory_order_acq_rel);
    live.notify_all();
  }

  // True when the request carries the configured bearer token. The scheme
  // is case-insensitive; the token is compared as a SHA-256 digest with
  // CRYPTO_memcmp, so the time taken tells nothing about the token.
  bool authorized(std::string_view auth) const {
    if (!token_digest) return true;
    if (auth.size() < 7 || !iequals(auth.substr(0, 6), "bearer") || auth[6] != ' ') return false;
    std::string_view given = auth.substr(7);
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    const std::array<unsigned char, 32> d = digest(given);
    return CRYPTO_memcmp(d.data(), token_digest->data(), d.size()) == 0;
  }

  // Finds the route; fills params. 404 / 405 in `error` when none; `label`
  // is then the first route whose path matched (405), or none (404).
  const route_entry* match(http_request& r, http_response& error, const route_entry*& label) const {
    const std::vector<std::string_view> segs = split_path(r.path);
    bool path_matched = false;
    std::vector<http::verb> allowed;
    label = nullptr;
    for (const route_entry& e : routes) {
      if (e.segments.size() != segs.size()) continue;
      std::map<std::string, std::string> params;
      bool ok = true;
      for (std::size_t i = 0; i < segs.size() && ok; ++i) {
        const std::string& p = e.segments[i];
        if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
          std::optional<std::string> v = url_decode(segs[i]);
          if (!v || v->empty()) {
            error = json_error(400, "bad_request_target",
                               "bad path segment '" + std::string(segs[i]) + "'");
            return nullptr;
          }
          params[p.substr(1, p.size() - 2)] = std::move(*v);
        } else {
          ok = p == segs[i];
        }
      }
      if (!ok) continue;
      if (!path_matched) label = &e;
      path_matched = true;
      if (e.method != r.method) {
        if (std::find(allowed.begin(), allowed.end(), e.method) == allowed.end())
          allowed.push_back(e.method);
        continue;
      }
      r.params = std::move(params);
      label = &e;
      return &e;
    }
    if (path_matched) {
      std::string allow;
      for (http::verb v : allowed) allow += (allow.empty() ? "" : ", ") + std::string(to_string(v));
      error = json_error(405, "method_not_allowed", "method not allowed on " + r.path);
      error.headers.emplace_back("Allow", std::move(allow));
    } else {
      error = json_error(404, "no_route", "no route for " + r.path);
    }
    return nullptr;
  }
};

// --- connections ---------------------------------------------------------------------

namespace {
struct conn_start {};
// A request handed to its handler, run as a message of the connection (which
// is reentrant) so the connection's loop can wait for it with a deadline.
struct pending_request {
  http_request r;
  const http_handler* handler = nullptr;
  http_response res;
  troupe::event done;
};
struct run_request {
  std::shared_ptr<pending_request> p;
};
}  // namespace

// One connection, over plain TCP or (Tls) TLS over it; the same code otherwise.
template <bool Tls>
class http_connection : public actor {
  using stream_type =
      std::conditional_t<Tls, asio::ssl::stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  static constexpr bool reentrant = true;  // the handler runs while the loop waits on it
  static constexpr const char* type_name =
      Tls ? "troupe::net::https_connection" : "troupe::net::http_connection";
  http_connection(std::shared_ptr<http_gateway::shared> s, asio::ip::tcp::socket socket)
      : s_(std::move(s)), stream_(make_stream(*s_, std::move(socket))) {
    s_->enter();
  }
  ~http_connection() {
    s_->open.fetch_sub(1, std::memory_order_relaxed);
    s_->leave();
  }

  task<void> handle(conn_start) {
    const http_options& o = s_->opts;
    if constexpr (Tls) {
      // A client that does not speak TLS (plain HTTP to this port) fails
      // here: one log line, and only this connection closes.
      beast::get_lowest_layer(stream_).expires_after(o.read_timeout);
      const boost::system::error_code ec =
          co_await stream_.async_handshake(asio::ssl::stream_base::server, use_task);
      if (ec) {
        s_->tls_refused.fetch_add(1, std::memory_order_relaxed);
        system().log(log_level::warn, "http",
                     "https connection refused: TLS handshake failed: " + ec.message());
        beast::get_lowest_layer(stream_).close();
        stop();
        co_return;
      }
    }
    bool first = true;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(o.header_limit));
      parser.body_limit(o.body_limit);
      beast::get_lowest_layer(stream_).expires_after(first ? o.read_timeout : o.idle_timeout);
      first = false;
      result<std::size_t> n = co_await http::async_read(stream_, buffer_, parser, use_task);
      if (!n) {
        const auto ec = n.error();
        if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
            ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
            ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
          break;  // the client went away, or idled / trickled past the timeout
        // Malformed or oversized: say why, then close this connection.
        unsigned status = 400;
        if (ec == http::error::body_limit) status = 413;
        if (ec == http::error::header_limit) status = 431;
        // Their codes: bad_request, body_too_large, headers_too_large.
        s_->client_errors.fetch_add(1, std::memory_order_relaxed);
        http_response r = json_error(status, "bad request: " + ec.message());
        co_await send(r, 11, false);
        break;
      }
      http::request<http::string_body> req = parser.release();
      s_->requests.fetch_add(1, std::memory_order_relaxed);
      const bool access = system().log_enabled(log_level::debug);
      const auto began = std::chrono::steady_clock::now();
      bool timed_out = false;
      const http_gateway::shared::route_entry* label = nullptr;
      http_response res = co_await dispatch(req, timed_out, label);
      s_->record(label, req.method(), res.status, std::chrono::steady_clock::now() - began);
      if (res.status >= 400 && res.status < 500)
        s_->client_errors.fetch_add(1, std::memory_order_relaxed);
      if (res.status >= 500) s_->server_errors.fetch_add(1, std::memory_order_relaxed);
      const bool keep = req.keep_alive() && !timed_out;
      const bool sent = co_await send(res, req.version(), keep);
      if (access) log_access(req, res, began);
      if (!sent || !keep) break;
    }
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(asio::ip::tcp::socket::shutdown_both,
                                                       ignored);
    beast::get_lowest_layer(stream_).close();
    stop();  // also unwinds a handler that overran its deadline
  }

  task<void> handle(run_request m) {
    std::shared_ptr<pending_request> p = std::move(m.p);
    try {
      task<http_response> t = (*p->handler)(p->r);
      p->res = co_await std::move(t);
    } catch (const troupe::detail::unwind&) {
      throw;
    } catch (const std::exception& e) {
      system().log(log_level::error, "http", "handler for " + p->r.path + " threw: " + e.what());
      p->res = json_error(500, "internal", "internal error");
    }
    p->done.set();
  }

 private:
  // Answers one request; `label` is the route it is counted under (none:
  // unmatched).
  task<http_response> dispatch(http::request<http::string_body>& req, bool& timed_out,
                               const http_gateway::shared::route_entry*& label) {
    const std::string_view t = req.target();
    if (auto why = http_target_problem(t)) {
      s_->bad_targets.fetch_add(1, std::memory_order_relaxed);
      co_return json_error(400, "bad_request_target", "bad request target: " + *why);
    }
    auto p = std::make_shared<pending_request>();
    http_request& r = p->r;
    r.method = req.method();
    r.target = std::string(t);
    const std::size_t q = t.find('?');
    r.path = std::string(t.substr(0, q));
    if (q != std::string_view::npos) {
      std::string_view rest = t.substr(q + 1);
      while (!rest.empty()) {
        const std::size_t amp = rest.find('&');
        std::string_view kv = rest.substr(0, amp);
        const std::size_t eq = kv.find('=');
        auto k = url_decode(kv.substr(0, eq));
        auto v = url_decode(eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1));
        if (!k || !v) co_return json_error(400, "bad_query", "bad query string");
        if (!k->empty() && !r.query_params.emplace(*k, *v).second)
          co_return json_error(400, "bad_query",
                               "query parameter '" + *k + "' is given more than once");
        if (amp == std::string_view::npos) break;
        rest = rest.substr(amp + 1);
      }
    }
    // The path is canonical now: its first segment decides, in any case, and
    // so does the route it matches (below).
    // The route is looked up first only to label the request in the metrics.
    http_response err;
    const http_gateway::shared::route_entry* e = s_->match(r, err, label);
    const bool authorized = s_->authorized(req[http::field::authorization]);
    const std::vector<std::string_view> segs = split_path(r.path);
    if (!authorized && !segs.empty() && iequals(segs.front(), "api")) co_return unauthorized();
    r.body = std::move(req.body());
    r.content_type = std::string(req[http::field::content_type]);
    if (!e) co_return err;
    if (e->needs_token && !authorized) co_return unauthorized();
    p->handler = &e->handler;
    (void)ref_of(this).tell(run_request{p});
    const bool done = co_await p->done.wait_for(s_->opts.handler_timeout);
    if (done) co_return std::move(p->res);
    timed_out = true;
    s_->handler_timeouts.fetch_add(1, std::memory_order_relaxed);
    system().log(log_level::warn, "http",
                 "handler for " + r.path + " overran its deadline of " +
                     std::to_string(s_->opts.handler_timeout.count()) + " ms; abandoned");
    http_response res = json_error(504, "timeout",
                                   "the request took longer than the gateway's handler deadline (" +
                                       std::to_string(s_->opts.handler_timeout.count()) +
                                       " ms, --http-handler-timeout-ms); its work was abandoned");
    co_return res;
  }

  // The access log (debug level): client, method, target, status, body
  // bytes, microseconds from the request read to the response written.
  [[gnu::noinline]] void log_access(const http::request<http::string_body>& req,
                                    const http_response& res,
                                    std::chrono::steady_clock::time_point started) {
    boost::system::error_code ec;
    const auto peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    std::string line = ec ? std::string("-") : peer.address().to_string();
    line.append(" ").append(req.method_string()).append(" ").append(req.target());
    line += " " + std::to_string(res.status) + " " + std::to_string(res.body.size()) + " " +
            std::to_string(us) + "us";
    system().log(log_level::debug, "http.access", line);
  }

  http_response unauthorized() {
    s_->unauthorized.fetch_add(1, std::memory_order_relaxed);
    http_response r = json_error(401, "unauthorized", "missing or wrong bearer token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }

  task<bool> send(const http_response& r, unsigned version, bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    res.set(http::field::server, "troupe");
    res.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res.set(k, v);
    // Every refusal at a cap or unavailability says when to come back.
    if ((r.status == 503 || r.status == 429) && res.find(http::field::retry_after) == res.end())
      res.set(http::field::retry_after, "1");
    res.keep_alive(keep_alive);
    res.body() = r.body;
    res.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(s_->opts.read_timeout);
    result<std::size_t> w = co_await http::async_write(stream_, res, use_task);
    co_return static_cast<bool>(w);
  }

  static stream_type make_stream(http_gateway::shared& s, asio::ip::tcp::socket socket) {
    if constexpr (Tls) {
      return stream_type(beast::tcp_stream(std::move(socket)), *s.tls);
    } else {
      return stream_type(std::move(socket));
    }
  }

  std::shared_ptr<http_gateway::shared> s_;
  stream_type stream_;
  beast::flat_buffer buffer_;
};

// --- the acceptor -------------------------------------------------------------------

namespace {
struct accept_start {};
}  // namespace

class http_acceptor : public actor {
 public:
  static constexpr const char* type_name = "troupe::net::http_acceptor";
  http_acceptor(std::shared_ptr<http_gateway::shared> s, asio::ip::tcp::acceptor a)
      : s_(std::move(s)), acceptor_(std::move(a)) {
    s_->enter();
  }
  ~http_acceptor() { s_->leave(); }

  task<void> handle(accept_start) {
    for (;;) {
      result<asio::ip::tcp::socket> sock = co_await acceptor_.async_accept(use_task);
      if (!sock) {
        if (sock.error() == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        system().log(log_level::error, "http", "accept failed: " + sock.error().message());
        co_await sleep_for(std::chrono::milliseconds(10));  // e.g. out of descriptors
        continue;
      }
      s_->connections.fetch_add(1, std::memory_order_relaxed);
      boost::system::error_code ec;
      if (s_->open.load(std::memory_order_relaxed) >= s_->opts.max_connections) {
        refuse(*sock);
        continue;
      }
      sock->set_option(asio::ip::tcp::no_delay(true), ec);
      s_->open.fetch_add(1,
                         std::memory_order_relaxed);  // the connection's destructor takes it back
      if (s_->tls) {                                  // children: they stop with us
        (void)spawn<http_connection<true>>(s_, std::move(*sock)).tell(conn_start{});
      } else {
        (void)spawn<http_connection<false>>(s_, std::move(*sock)).tell(conn_start{});
      }
    }
  }

 private:
  // Over max_connections: one 503 written without waiting (a fresh socket's
  // send buffer takes it), then closed (over HTTPS: closed only). A client that had already sent a
  // request may see a reset instead of the 503.
  void refuse(asio::ip::tcp::socket& sock) {
    s_->refused.fetch_add(1, std::memory_order_relaxed);
    const std::string body =
        json::serialize(json::object{{"error", "too many open HTTP connections (the cap is " +
                                                   std::to_string(s_->opts.max_connections) +
                                                   ", --http-max-connections); retry later"},
                                     {"code", "overloaded"}});
    const std::string bytes =
        "HTTP/1.1 503 Service Unavailable\r\nServer: troupe\r\nContent-Type: "
        "application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    boost::system::error_code ec;
    sock.non_blocking(true, ec);
    // Over HTTPS a plaintext answer would be garbage to the client: just close.
    if (!ec && !s_->tls) sock.write_some(asio::buffer(bytes), ec);
    sock.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  std::shared_ptr<http_gateway::shared> s_;
  asio::ip::tcp::acceptor acceptor_;
};

// --- the gateway ---------------------------------------------------------------------

http_gateway::http_gateway(runtime& rt, http_options o) : rt_(&rt), s_(std::make_shared<shared>()) {
  if (o.shard >= rt.shard_count()) throw std::invalid_argument("troupe: http shard out of range");
  // A bind needs an address: a host name is resolved once, here.
  result<asio::ip::tcp::endpoint> bind_to = resolve_bind(rt.io(o.shard), o.listen);
  if (!bind_to)
    throw std::invalid_argument("troupe: --http host '" + o.listen.host +
                                "' cannot be resolved: " + bind_to.error().message());
  const asio::ip::tcp::endpoint ep = *bind_to;
  boost::system::error_code ec;
  asio::ip::tcp::acceptor acceptor{rt.io(o.shard)};
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::system_error(
        ec, "troupe: cannot serve HTTP on " + o.listen.host + ":" + std::to_string(o.listen.port));
  port_ = acceptor.local_endpoint().port();
  if (o.tls.enabled()) s_->tls = make_tls_context(o.tls, tls_role::gateway);  // throws: bad files
  if (o.max_connections == 0)
    throw std::invalid_argument("troupe: http_options::max_connections must be at least 1");
  if (o.handler_timeout.count() <= 0)
    throw std::invalid_argument("troupe: http_options::handler_timeout must be positive");
  if (o.token) s_->token_digest = digest(*o.token);
  s_->opts = std::move(o);
  spawn_options so;
  so.shard = static_cast<int>(s_->opts.shard);
  acceptor_ = rt.spawn<http_acceptor>(so, s_, std::move(acceptor));
}

http_gateway::~http_gateway() {
  acceptor_.stop();  // its connections are its children: they stop with it
  // Wait for them: a handler may hold references to what its owner is about
  // to destroy. A stopped actor's handler unwinds at its next await, so the
  // wait is short. Not on a shard thread (the actors may need it to stop),
  // and in simulated mode by running the scheduler.
  // With none alive (the runtime may be gone already) there is nothing to do.
  if (troupe::detail::this_shard() != nullptr || s_->live.load(std::memory_order_acquire) == 0)
    return;
  if (rt_->simulated()) {
    rt_->run_until_idle();
    return;
  }
  for (std::uint64_t n = s_->live.load(std::memory_order_acquire); n != 0;
       n = s_->live.load(std::memory_order_acquire))
    s_->live.wait(n, std::memory_order_acquire);
}

void http_gateway::route(http::verb method, std::string pattern, http_handler h) {
  TROUPE_ASSERT(!s_->started, "routes are added before start()");
  shared::route_entry e{method, pattern, {}, std::move(h), pattern.rfind("/api/", 0) == 0};
  for (std::string_view seg : split_path(pattern)) e.segments.emplace_back(seg);
  if (!e.segments.empty() && iequals(e.segments.front(), "api")) e.needs_token = true;
  s_->routes.push_back(std::move(e));
}

void http_gateway::start() {
  s_->started = true;
  (void)acceptor_.tell(accept_start{});
}

std::vector<http_route_info> http_gateway::routes() const {
  std::vector<http_route_info> out;
  for (const auto& e : s_->routes) out.push_back({e.method, e.pattern});
  return out;
}

std::vector<http_route_stats> http_gateway::route_stats() const {
  std::vector<http_route_stats> out;
  {
    std::lock_guard lock(s_->metrics_mutex);
    for (const auto& [key, c] : s_->by_route) {
      http_route_stats r;
      r.route = key.first < s_->routes.size() ? s_->routes[key.first].pattern : "unmatched";
      r.method = key.second == http::verb::unknown ? "other" : std::string(to_string(key.second));
      r.responses = c.responses;
      r.latency = c.latency;
      out.push_back(std::move(r));
    }
  }
  std::sort(out.begin(), out.end(), [](const http_route_stats& a, const http_route_stats& b) {
    return std::tie(a.route, a.method) < std::tie(b.route, b.method);
  });
  return out;
}

http_stats http_gateway::stats() const {
  return {s_->requests.load(),         s_->client_errors.load(), s_->server_errors.load(),
          s_->connections.load(),      s_->open.load(),          s_->refused.load(),
          s_->handler_timeouts.load(), s_->unauthorized.load(),  s_->bad_targets.load(),
          s_->tls_refused.load()};
}

}  // namespace troupe::net
