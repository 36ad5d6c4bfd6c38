// SPDX-License-Identifier: BSL-1.0
// The HTTP gateway (in-process, through a Beast client) and the troupe-node
// binary (a child process: its routes, start-up errors and SIGTERM).

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>
#include <troupe/net/http.hpp>
#include <troupe/net/prometheus.hpp>
#include <troupe/version.hpp>

#include "net/http_client.hpp"
#include "net/net_support.hpp"
#include "net/node_process.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;
namespace net = troupe::net;
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

using troupe::test::client;
using troupe::test::error_of;
using troupe::test::reply;

// An actor exposed over HTTP: JSON in -> message -> reply -> JSON out.
struct add_q {
  std::int64_t a = 0, b = 0;
};
add_q tag_invoke(json::value_to_tag<add_q>, const json::value& v) {
  const json::object& o = v.as_object();
  return add_q{o.at("a").as_int64(), o.at("b").as_int64()};
}
struct sum {
  std::int64_t value = 0;
};
void tag_invoke(json::value_from_tag, json::value& v, const sum& s) {
  v = json::object{{"sum", s.value}};
}
struct adder : troupe::actor {
  sum handle(add_q q) { return sum{q.a + q.b}; }
};

struct gateway_fixture {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 2)};
  std::unique_ptr<net::http_gateway> gw;
  explicit gateway_fixture(net::http_options o = {}) {
    o.listen = {"127.0.0.1", 0};
    gw = std::make_unique<net::http_gateway>(rt, o);
    gw->expose<adder, add_q>(http::verb::post, "/api/v1/add", rt.spawn<adder>());
    gw->route(
        http::verb::get, "/api/v1/echo/{word}",
        [](net::http_request& r) -> task<net::http_response> {
          co_return net::json_reply(json::object{{"word", r.param("word")}, {"q", r.query("q")}});
        });
    gw->route(http::verb::post, "/api/v1/need",
              [](net::http_request& r) -> task<net::http_response> {
                net::http_response err;
                auto body = net::json_object_body(r, err);
                if (!body) co_return err;
                auto name = net::json_string(*body, "name", err);
                if (!name) co_return err;
                auto n = net::json_int(*body, "n", err);
                if (!n) co_return err;
                co_return net::json_reply(json::object{{"ok", true}});
              });
    gw->route(http::verb::get, "/healthz", [](net::http_request&) -> task<net::http_response> {
      co_return net::http_response{200, "ok\n", "text/plain"};
    });
    gw->start();
  }
};

}  // namespace

TEST_CASE("an exposed actor answers JSON over keep-alive HTTP", "[http]") {
  gateway_fixture f;
  client c{f.gw->port()};
  for (int i = 0; i < 20; ++i) {  // one connection, many requests
    reply r =
        c.call(http::verb::post, "/api/v1/add", R"({"a":)" + std::to_string(i) + R"(,"b":40})");
    REQUIRE(r.status == 200);
    CHECK(json::parse(r.body).at("sum").as_int64() == 40 + i);
    CHECK_FALSE(r.closed);
  }
  reply e = c.call(http::verb::get, "/api/v1/echo/orders%2F42?q=a%20b");
  REQUIRE(e.status == 200);
  CHECK(json::parse(e.body).at("word").as_string() == "orders/42");
  CHECK(json::parse(e.body).at("q").as_string() == "a b");
  CHECK(f.gw->stats().requests == 21);
}

TEST_CASE("bad requests get a 4xx with a JSON error, and the gateway keeps serving", "[http]") {
  net::http_options o;
  o.body_limit = 1024;
  o.header_limit = 2048;
  gateway_fixture f{o};
  const unsigned short port = f.gw->port();
  struct bad {
    const char* what;
    http::verb v;
    std::string target, body;
    unsigned status;
    std::string says, code;
  };
  const std::vector<bad> table = {
      {"malformed JSON", http::verb::post, "/api/v1/need", "{nope", 400, "malformed JSON",
       "bad_request"},
      {"not an object", http::verb::post, "/api/v1/need", "[1,2]", 400, "must be an object",
       "bad_request"},
      {"missing field", http::verb::post, "/api/v1/need", R"({"n":1})", 400, "missing field 'name'",
       "bad_field"},
      {"mistyped field", http::verb::post, "/api/v1/need", R"({"name":"x","n":"1"})", 400,
       "'n' must be an integer", "bad_field"},
      {"body the actor cannot take", http::verb::post, "/api/v1/add", R"({"a":"x"})", 400,
       "not a valid request", "bad_request"},
      {"unknown route", http::verb::get, "/api/v1/nowhere", "", 404, "no route", "no_route"},
      {"wrong method", http::verb::delete_, "/api/v1/need", "", 405, "method not allowed",
       "method_not_allowed"},
      {"oversized body", http::verb::post, "/api/v1/need", std::string(4096, 'x'), 413,
       "bad request", "body_too_large"},
      {"non-canonical target", http::verb::get, "/api/v1/echo/a/../b", "", 400,
       "bad request target", "bad_request_target"},
      {"repeated query parameter", http::verb::get, "/api/v1/echo/a?q=1&q=2", "", 400,
       "more than once", "bad_query"},
  };
  std::set<std::string> codes;
  for (const net::http_error_code& c : net::http_error_codes()) codes.insert(c.code);
  for (const bad& b : table) {
    INFO(b.what);
    client c{port};
    reply r = c.call(b.v, b.target, b.body);
    CHECK(r.status == b.status);
    CHECK(error_of(r).find(b.says) != std::string::npos);
    CHECK(troupe::test::code_of(r) == b.code);
    CHECK(codes.count(troupe::test::code_of(r)) == 1);
  }
  {
    INFO("a 405 lists the methods the path takes");
    client c{port};
    reply r = c.call(http::verb::get, "/api/v1/need");
    CHECK(r.status == 405);
    CHECK(r.header("allow") == "POST");
  }
  {
    INFO("oversized header");
    client c{port};
    reply r = c.call(http::verb::get, "/healthz", {}, {{"X-Big", std::string(4096, 'h')}});
    CHECK(r.status == 431);
    CHECK(troupe::test::code_of(r) == "headers_too_large");
  }
  {
    INFO("garbage instead of a request line");
    client c{port};
    reply r = c.send_raw("\x01\x02 not http at all\r\n\r\n");
    CHECK(r.status == 400);
    CHECK(troupe::test::code_of(r) == "bad_request");
    CHECK(r.closed);
  }
  client ok{port};
  CHECK(ok.call(http::verb::post, "/api/v1/add", R"({"a":1,"b":2})").status == 200);
}

TEST_CASE("a bearer token guards /api/ routes only", "[http]") {
  net::http_options o;
  o.token = "t0ken";
  gateway_fixture f{o};
  client c{f.gw->port()};
  CHECK(c.call(http::verb::post, "/api/v1/add", R"({"a":1,"b":2})").status == 401);
  reply wrong =
      c.call(http::verb::post, "/api/v1/add", R"({"a":1,"b":2})", {{"Authorization", "Bearer x"}});
  CHECK(wrong.status == 401);
  CHECK(error_of(wrong).find("bearer token") != std::string::npos);
  CHECK(c.call(http::verb::post, "/api/v1/add", R"({"a":1,"b":2})",
               {{"Authorization", "Bearer t0ken"}})
            .status == 200);
  CHECK(c.call(http::verb::get, "/healthz").status == 200);
}

TEST_CASE("every spelling of an /api/ path is refused or needs the token, on read and write routes",
          "[http][auth]") {
  net::http_options o;
  o.token = "t0ken";
  gateway_fixture f{o};
  const unsigned short port = f.gw->port();
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer t0ken"}};
  struct spelling {
    std::string target;
    unsigned status;  // without the token
  };
  // Each on a write route (POST /api/v1/add) and a read route (GET /api/v1/echo/x).
  for (const std::string route : {"/api/v1/add", "/api/v1/echo/x"}) {
    const bool write = route == "/api/v1/add";
    const std::string tail = route.substr(4);  // "/v1/add"
    const std::vector<spelling> table = {
        {"/" + route, 400},                 // //api/...
        {"//" + route, 400},                // ///api/...
        {"/api/" + tail, 400},              // /api//v1/...
        {route + "/", 400},                 // trailing slash
        {route + "//", 400},                // trailing empty segments
        {"/./" + route.substr(1), 400},     // /./api/...
        {"/x/.." + route, 400},             // /x/../api/...
        {"/api/./" + tail.substr(1), 400},  // /api/./v1/...
        {"/%2e" + route, 400},              // an encoded dot segment
        {"/%2E%2E" + route, 400},           // an encoded dot-dot segment
        {"/%61pi" + tail, 400},             // %61 = 'a'
        {"/%41PI" + tail, 400},             // %41 = 'A'
        {"/ap%69" + tail, 400},             // %69 = 'i'
        {route.substr(0, route.size() - 1) + "%" + std::to_string(0), 400},  // a malformed escape
        {"/api%2Fv1" + tail.substr(3), 404},  // %2F is data, not a separator: no such route
        {"/API" + tail, 401},                 // case: still /api
        {"/Api" + tail, 401},
        {"/aPI" + tail, 401},
        {"http://127.0.0.1" + route, 400},  // absolute-form
        {"HTTP://127.0.0.1:1" + route, 400},
        {"//127.0.0.1" + route, 400},  // a network-path reference
        {route.substr(1), 400},        // no leading slash
        {"*", 400},                    // asterisk-form
        {"\\api" + tail, 400},         // backslashes
        {"/api\\v1" + tail.substr(3), 400},
        {route + "#x", 400},  // a fragment
        {route + "?x=1#/../", 400},
        {"/api" + tail + ";x", 401},  // ';' is a path character: still /api
        {route + "?q=1", 401},        // a query changes nothing
        {route + "?/../../healthz", 401},
        {route + "?q=1&q=2", 400},  // a repeated parameter: which one counts?
        {route, 401},
    };
    for (const spelling& s : table) {
      INFO(s.target);
      const http::verb v = write ? http::verb::post : http::verb::get;
      const std::string body = write ? R"({"a":1,"b":2})" : "";
      {
        client c{port};
        reply r = c.call(v, s.target, body);
        CHECK(r.status == s.status);
        CHECK(r.status != 200);
        if (r.status == 401) CHECK(r.header("www-authenticate") == "Bearer");
        if (r.status != 0 && r.status != 401) CHECK(error_of(r) != "<no JSON error body>");
      }
      {
        // With the token, a non-canonical target is still refused (400): no
        // spelling reaches a route but the canonical one.
        client c{port};
        reply r = c.call(v, s.target, body, auth);
        if (s.status == 400) CHECK(r.status == 400);
        if (s.status == 401 && s.target.find("API") == std::string::npos &&
            s.target.find("Api") == std::string::npos &&
            s.target.find("aPI") == std::string::npos && s.target.find(';') == std::string::npos)
          CHECK(r.status == 200);
        if (s.target.find("&q=2") != std::string::npos)
          CHECK(error_of(r).find("'q' is given more than once") != std::string::npos);
      }
    }
  }
  CHECK(f.gw->stats().unauthorized > 0);
  CHECK(f.gw->stats().bad_targets > 0);
  client ok{port};
  CHECK(ok.call(http::verb::get, "/healthz").status == 200);
}

TEST_CASE("the bearer check: scheme in any case, exact token, 401 says Bearer", "[http][auth]") {
  net::http_options o;
  o.token = "t0ken";
  gateway_fixture f{o};
  client c{f.gw->port()};
  const std::string body = R"({"a":1,"b":2})";
  struct attempt {
    std::string header;
    unsigned status;
  };
  for (const attempt& a : std::vector<attempt>{{"Bearer t0ken", 200},
                                               {"bearer t0ken", 200},
                                               {"BEARER t0ken", 200},
                                               {"Bearer t0ke", 401},
                                               {"Bearer t0kenn", 401},
                                               {"Bearer T0KEN", 401},
                                               {"Bearer", 401},
                                               {"Bearer ", 401},
                                               {"Basic t0ken", 401},
                                               {"t0ken", 401},
                                               {"Bearert0ken", 401},
                                               {"Bearer " + std::string(6000, 't'), 401}}) {
    INFO(a.header.substr(0, 40));
    reply r = c.call(http::verb::post, "/api/v1/add", body, {{"Authorization", a.header}});
    CHECK(r.status == a.status);
    if (a.status == 401) {
      CHECK(r.header("www-authenticate") == "Bearer");
      CHECK(error_of(r).find("bearer token") != std::string::npos);
    }
  }
}

TEST_CASE("a handler past its deadline gets a 504, is abandoned, and the gateway keeps serving",
          "[http][caps]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 2)};
  net::http_options o;
  o.listen = {"127.0.0.1", 0};
  o.handler_timeout = 200ms;
  net::http_gateway gw{rt, o};
  auto finished = std::make_shared<std::atomic<int>>(0);
  auto unwound = std::make_shared<std::atomic<int>>(0);
  gw.route(http::verb::get, "/slow", [=](net::http_request&) -> task<net::http_response> {
    struct on_exit {
      std::shared_ptr<std::atomic<int>> n;
      ~on_exit() { n->fetch_add(1); }
    } guard{unwound};
    co_await troupe::sleep_for(30s);
    finished->fetch_add(1);
    co_return net::http_response{200, "late\n", "text/plain"};
  });
  gw.route(http::verb::get, "/healthz", [](net::http_request&) -> task<net::http_response> {
    co_return net::http_response{200, "ok\n", "text/plain"};
  });
  gw.start();
  client c{gw.port()};
  const auto t0 = std::chrono::steady_clock::now();
  reply r = c.call(http::verb::get, "/slow");
  CHECK(r.status == 504);
  CHECK(error_of(r).find("deadline") != std::string::npos);
  CHECK(r.closed);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  // Its work was abandoned: the handler's frame unwound without finishing.
  CHECK(troupe::test::eventually([&] { return unwound->load() == 1; }));
  CHECK(finished->load() == 0);
  CHECK(gw.stats().handler_timeouts == 1);
  client ok{gw.port()};
  CHECK(ok.call(http::verb::get, "/healthz").status == 200);
}

TEST_CASE("connections past the cap are answered 503 and closed, and freed slots are reused",
          "[http][caps]") {
  net::http_options o;
  o.max_connections = 2;
  gateway_fixture f{o};
  const unsigned short port = f.gw->port();
  client a{port}, b{port};
  REQUIRE(a.call(http::verb::get, "/healthz").status == 200);
  REQUIRE(b.call(http::verb::get, "/healthz").status == 200);
  {
    client over{port};
    reply r = over.read_only();
    CHECK(r.status == 503);
    CHECK(r.header("retry-after") == "1");
    CHECK(error_of(r).find("--http-max-connections") != std::string::npos);
    CHECK(r.closed);
  }
  CHECK(f.gw->stats().refused_connections == 1);
  CHECK(f.gw->stats().open_connections == 2);
  // The open ones keep working; closing one frees its slot.
  CHECK(a.call(http::verb::post, "/api/v1/add", R"({"a":1,"b":2})").status == 200);
  b.close();
  CHECK(troupe::test::eventually([&] { return f.gw->stats().open_connections == 1; }));
  client again{port};
  CHECK(again.call(http::verb::get, "/healthz").status == 200);
}

TEST_CASE("an idle keep-alive connection is closed after the idle timeout", "[http]") {
  net::http_options o;
  o.idle_timeout = 150ms;
  gateway_fixture f{o};
  client c{f.gw->port()};
  REQUIRE(c.call(http::verb::get, "/healthz").status == 200);
  CHECK(c.closed_within(5s));
}

// --- troupe-node, the binary ------------------------------------------------------------

namespace {
using troupe::test::node_process;

unsigned short port_after(const std::string& line, const std::string& label) {
  const auto at = line.find(label + " 127.0.0.1:");
  REQUIRE(at != std::string::npos);
  return static_cast<unsigned short>(std::stoi(line.substr(at + label.size() + 11)));
}

std::string temp_path(const std::string& leaf) {
  return "/tmp/troupe-http-test-" + std::to_string(::getpid()) + "-" + leaf;
}
}  // namespace

TEST_CASE("troupe-node refuses bad start-up input with one clear line", "[http][node]") {
  SECTION("an unknown flag") {
    node_process p{{"--name", "n", "--frobnicate"}};
    std::string l = p.line();
    CHECK(l.find("troupe-node:") == 0);
    CHECK(l.find("frobnicate") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("no name") {
    node_process p{{"--listen", "127.0.0.1:0"}};
    CHECK(p.line().find("--name") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("an unreadable secret file") {
    node_process p{{"--name", "n", "--secret-file", "/nonexistent/secret"}};
    std::string l = p.line();
    CHECK(l.find("--secret-file") != std::string::npos);
    CHECK(l.find("/nonexistent/secret") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("a port in use") {
    asio::io_context io;
    asio::ip::tcp::acceptor taken{io, {asio::ip::make_address("127.0.0.1"), 0}};
    const std::string ep = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());
    node_process p{{"--name", "n", "--listen", "127.0.0.1:0", "--http", ep}};
    std::string l = p.until("troupe-node:");
    CHECK(l.find("cannot serve HTTP on " + ep) != std::string::npos);
    CHECK(p.wait_exit() == 1);
  }
  SECTION("an unwritable data dir") {
    const std::string file = temp_path("not-a-dir");
    std::ofstream(file) << "x";
    node_process p{{"--name", "n", "--data-dir", file + "/sub"}};
    std::string l = p.line();
    CHECK(l.find("--data-dir") != std::string::npos);
    CHECK(p.wait_exit() == 2);
    std::remove(file.c_str());
  }
  SECTION("a bad endpoint") {
    node_process p{{"--name", "n", "--listen", "nohost"}};
    CHECK(p.line().find("--listen 'nohost' is not HOST:PORT") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
}

TEST_CASE("troupe-node serves health, metrics, cluster, ring and locks over HTTP", "[http][node]") {
  const std::string token_file = temp_path("token");
  std::ofstream(token_file) << "s3cret-token-0123\n";
  std::filesystem::permissions(
      token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  node_process p{{"--name", "node-h", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                  "--http-token-file", token_file, "--lock-max-ttl-ms", "300", "--shards", "2"}};
  const std::string ready = p.until("node-h troupe-node: cluster");
  REQUIRE_FALSE(ready.empty());
  const unsigned short port = port_after(ready, "http");
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer s3cret-token-0123"}};
  client c{port};

  reply h = c.call(http::verb::get, "/healthz");
  CHECK(h.status == 200);
  CHECK(h.body == "ok\n");
  reply m = c.call(http::verb::get, "/metrics");
  CHECK(m.status == 200);
  CHECK(m.body.find("troupe_messages_total{shard=\"0\"}") != std::string::npos);
  CHECK(m.body.find("troupe_lock_grants_total") != std::string::npos);
  // The OpenAPI document needs no token (docs/security.md).
  reply doc = c.call(http::verb::get, "/openapi.json");
  CHECK(doc.status == 200);
  CHECK(doc.header("content-type") == "application/json");
  CHECK(json::parse(doc.body).at("openapi").as_string().starts_with("3."));

  CHECK(c.call(http::verb::get, "/api/v1/cluster").status == 401);
  reply cl = c.call(http::verb::get, "/api/v1/cluster", {}, auth);
  REQUIRE(cl.status == 200);
  CHECK(json::parse(cl.body).at("self").as_string() == "node-h");
  reply ow = c.call(http::verb::get, "/api/v1/ring/owner?key=orders%2F42", {}, auth);
  REQUIRE(ow.status == 200);
  CHECK(json::parse(ow.body).at("node").as_string() == "node-h");
  CHECK(c.call(http::verb::get, "/api/v1/ring/owner", {}, auth).status == 400);

  // Locks: after the lock-delay (300 ms here) an acquire with a wait succeeds.
  reply a = c.call(http::verb::post, "/api/v1/locks/orders%2F42/acquire",
                   R"({"owner":"alice","ttl_ms":250,"wait_ms":2000})", auth);
  REQUIRE(a.status == 200);
  const std::string token(json::parse(a.body).at("token").as_string());
  reply busy = c.call(http::verb::post, "/api/v1/locks/orders%2F42/acquire",
                      R"({"owner":"bob","ttl_ms":250})", auth);
  CHECK(busy.status == 409);
  CHECK(troupe::test::code_of(busy) == "lock_held");
  reply wrong = c.call(http::verb::post, "/api/v1/locks/orders%2F42/release",
                       R"({"owner":"alice","token":"12345"})", auth);
  CHECK(wrong.status == 409);
  CHECK(error_of(wrong).find("token") != std::string::npos);
  reply renew = c.call(http::verb::post, "/api/v1/locks/orders%2F42/renew",
                       R"({"owner":"alice","token":")" + token + R"(","ttl_ms":250})", auth);
  CHECK(renew.status == 200);
  reply bad_ttl =
      c.call(http::verb::post, "/api/v1/locks/x/acquire", R"({"owner":"alice","ttl_ms":0})", auth);
  CHECK(bad_ttl.status == 400);
  reply timeout = c.call(http::verb::post, "/api/v1/locks/orders%2F42/acquire",
                         R"({"owner":"bob","ttl_ms":250,"wait_ms":1})", auth);
  CHECK(timeout.status == 409);  // the wait ran out, not the request
  CHECK(troupe::test::code_of(timeout) == "lock_wait_expired");
  reply rel = c.call(http::verb::post, "/api/v1/locks/orders%2F42/release",
                     R"({"owner":"alice","token":")" + token + "\"}", auth);
  CHECK(rel.status == 200);
  CHECK(json::parse(rel.body).at("released").as_bool());

  // curl, where present, sees the same gateway.
  if (::system("command -v curl >/dev/null 2>&1") == 0) {
    const std::string cmd =
        "curl -s -H 'Authorization: Bearer s3cret-token-0123' "
        "'http://127.0.0.1:" +
        std::to_string(port) + "/api/v1/ring/owner?key=k1'";
    FILE* f = ::popen(cmd.c_str(), "r");
    REQUIRE(f != nullptr);
    char buf[512] = {};
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    ::pclose(f);
    CHECK(std::string(buf, n).find("\"node\":\"node-h\"") != std::string::npos);
  }

  p.signal(SIGTERM);
  CHECK(p.until("stopped").find("node-h troupe-node: stopped") != std::string::npos);
  CHECK(p.wait_exit() == 0);
  std::remove(token_file.c_str());
}

namespace {
// GETs a saga until its state is one of the final ones (or 10 s pass).
json::value saga_until_final(client& c, const std::string& id,
                             const std::map<std::string, std::string>& auth = {}) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    reply r = c.call(http::verb::get, "/api/v1/sagas/" + id, {}, auth);
    REQUIRE(r.status == 200);
    json::value v = json::parse(r.body);
    const std::string state(v.at("state").as_string());
    if (state == "completed" || state == "compensated" || state == "stuck") return v;
    REQUIRE(std::chrono::steady_clock::now() < end);
  }
}
}  // namespace

TEST_CASE("troupe-node runs sagas over HTTP, idempotently, and keeps them across a restart",
          "[http][node][saga]") {
  const std::string dir = temp_path("data");
  std::string id;
  {
    node_process p{{"--name", "node-s", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                    "--data-dir", dir}};
    const std::string ready = p.until("node-s troupe-node: cluster");
    REQUIRE_FALSE(ready.empty());
    client c{port_after(ready, "http")};

    reply s = c.call(http::verb::post, "/api/v1/sagas/troupe.selftest",
                     R"({"input":{"note":"first"},"idempotency_key":"k-1"})");
    REQUIRE(s.status == 201);
    id = std::string(json::parse(s.body).at("id").as_string());
    json::value done = saga_until_final(c, id);
    CHECK(done.at("state").as_string() == "completed");
    const json::array& steps = done.at("steps").as_array();
    REQUIRE(steps.size() == 3);
    for (const auto& st : steps) {
      CHECK(st.at("status").as_string() == "completed");
      CHECK(st.at("attempts").as_int64() == 1);
    }
    CHECK_FALSE(done.at("history").as_array().empty());

    // A long poll: ?wait_ms answers once the saga has finished.
    reply s2 =
        c.call(http::verb::post, "/api/v1/sagas/troupe.selftest", R"({"input":{"note":"second"}})");
    REQUIRE(s2.status == 201);
    const std::string id2(json::parse(s2.body).at("id").as_string());
    reply waited = c.call(http::verb::get, "/api/v1/sagas/" + id2 + "?wait_ms=10000");
    REQUIRE(waited.status == 200);
    CHECK(json::parse(waited.body).at("state").as_string() == "completed");
    CHECK(c.call(http::verb::get, "/api/v1/sagas/" + id2 + "?wait_ms=x").status == 400);
    CHECK(c.call(http::verb::get, "/api/v1/sagas/" + id2 + "?wait_ms=60001").status == 400);

    // /metrics counts them: two completed, six step calls in the histogram,
    // none running; and the shards' mailboxes.
    reply m = c.call(http::verb::get, "/metrics");
    REQUIRE(m.status == 200);
    CHECK(m.body.find("troupe_sagas_finished_total{state=\"completed\"} 2\n") != std::string::npos);
    CHECK(m.body.find("troupe_sagas{state=\"running\"} 0\n") != std::string::npos);
    CHECK(m.body.find("troupe_saga_step_seconds_count 6\n") != std::string::npos);
    CHECK(m.body.find("troupe_saga_step_seconds_bucket{le=\"+Inf\"} 6\n") != std::string::npos);
    CHECK(m.body.find("# TYPE troupe_saga_step_seconds histogram") != std::string::npos);
    CHECK(m.body.find("troupe_mailbox_queued{shard=\"0\"}") != std::string::npos);
    CHECK(m.body.find("troupe_mailbox_deepest{shard=\"1\"") != std::string::npos);

    // The same key and input: the same saga; another input: a conflict.
    reply again = c.call(http::verb::post, "/api/v1/sagas/troupe.selftest",
                         R"({"input":{"note":"first"},"idempotency_key":"k-1"})");
    CHECK(again.status == 200);
    CHECK(json::parse(again.body).at("id").as_string() == id);
    CHECK(c.call(http::verb::post, "/api/v1/sagas/troupe.selftest",
                 R"({"input":{"note":"other"},"idempotency_key":"k-1"})")
              .status == 409);

    // Bad requests.
    CHECK(c.call(http::verb::post, "/api/v1/sagas/no.such.saga", R"({"input":{}})").status == 404);
    CHECK(c.call(http::verb::post, "/api/v1/sagas/troupe.selftest", R"({"input":{"note":5}})")
              .status == 400);
    CHECK(c.call(http::verb::post, "/api/v1/sagas/troupe.selftest", R"({"note":"x"})").status ==
          400);
    CHECK(c.call(http::verb::get, "/api/v1/sagas/abc").status == 400);
    CHECK(c.call(http::verb::get, "/api/v1/sagas/999999").status == 404);
    CHECK(c.call(http::verb::get, "/api/v1/sagas?state=nonsense").status == 400);
    CHECK(c.call(http::verb::post, "/api/v1/sagas/" + id + "/cancel").status == 409);
    CHECK(c.call(http::verb::post, "/api/v1/sagas/999999/cancel").status == 404);

    reply list = c.call(http::verb::get, "/api/v1/sagas?state=completed");
    REQUIRE(list.status == 200);
    bool listed = false;
    const json::value listed_sagas = json::parse(list.body);
    for (const auto& e : listed_sagas.at("sagas").as_array())
      listed |= e.at("id").as_string() == id;
    CHECK(listed);

    p.signal(SIGTERM);
    CHECK(p.wait_exit() == 0);
  }
  // A new process on the same data dir knows the saga.
  node_process p{
      {"--name", "node-s", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", dir}};
  const std::string ready = p.until("node-s troupe-node: cluster");
  REQUIRE_FALSE(ready.empty());
  client c{port_after(ready, "http")};
  reply r = c.call(http::verb::get, "/api/v1/sagas/" + id);
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body).at("state").as_string() == "completed");
  p.signal(SIGTERM);
  CHECK(p.wait_exit() == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("troupe-node --version prints the version and the revision", "[http][node]") {
  node_process p{{"--version"}};
  const std::string l = p.line();
  CHECK(l.find(std::string("troupe-node ") + TROUPE_VERSION_STRING + " (revision ") == 0);
  CHECK(p.wait_exit() == 0);
}

TEST_CASE("troupe-node takes flags from --config and TROUPE_ variables: flag > env > file",
          "[http][node]") {
  const std::string file = temp_path("troupe.toml");
  std::ofstream(file) << "# a node's configuration\nname = \"from-file\"\nlisten = "
                         "\"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nshards = 3\n";
  SECTION("the file alone") {
    node_process p{{"--config", file}};
    const std::string l = p.until("from-file troupe-node: cluster");
    REQUIRE_FALSE(l.empty());
    CHECK(l.find("shards 3") != std::string::npos);
  }
  SECTION("a variable beats the file, a flag beats both") {
    node_process env{{"--config", file}, {{"TROUPE_NAME", "from-env"}}};
    const std::string l = env.until("from-env troupe-node: cluster");
    REQUIRE_FALSE(l.empty());
    CHECK(l.find("shards 3") != std::string::npos);  // the file still fills the rest
    node_process flag{{"--config", file, "--name", "from-flag", "--shards", "1"},
                      {{"TROUPE_NAME", "from-env"}, {"TROUPE_SHARDS", "2"}}};
    const std::string f = flag.until("from-flag troupe-node: cluster");
    REQUIRE_FALSE(f.empty());
    CHECK(f.find("shards 1") != std::string::npos);
  }
  SECTION("TROUPE_CONFIG names the file") {
    node_process p{{}, {{"TROUPE_CONFIG", file}}};
    CHECK_FALSE(p.until("from-file troupe-node: cluster").empty());
  }
  SECTION("a bad variable is named in the error") {
    node_process p{{"--config", file}, {{"TROUPE_SHARDS", "many"}}};
    const std::string l = p.line();
    CHECK(l.find("troupe-node:") == 0);
    CHECK(l.find("TROUPE_SHARDS") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("an unknown key in the file is refused") {
    const std::string bad = temp_path("bad.toml");
    std::ofstream(bad) << "name = \"n\"\nshardz = 2\n";
    node_process p{{"--config", bad}};
    const std::string l = p.line();
    CHECK(l.find("troupe-node:") == 0);
    CHECK(l.find("shardz") != std::string::npos);
    CHECK(p.wait_exit() == 2);
    std::remove(bad.c_str());
  }
  SECTION("a missing file is refused") {
    node_process p{{"--config", file + ".missing"}};
    CHECK(p.line().find(".missing") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  std::remove(file.c_str());
}

namespace {
// A unix datagram socket standing in for systemd's NOTIFY_SOCKET.
struct notify_socket {
  static inline int made = 0;
  std::string path = temp_path("notify-" + std::to_string(++made));
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  notify_socket() {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~notify_socket() {
    ::close(fd);
    ::unlink(path.c_str());
  }
  // The next datagram, or "" after `within`.
  std::string next(std::chrono::milliseconds within) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(within.count())) != 1) return {};
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string{};
  }
};

// GETs /readyz until it answers `status` (or 10 s pass); the last reply.
reply readyz_until(client& c, unsigned status) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    reply r = c.call(http::verb::get, "/readyz");
    if (r.status == status || std::chrono::steady_clock::now() >= end) return r;
  }
}
}  // namespace

TEST_CASE("troupe-node says when it is ready: /readyz and sd_notify", "[http][node]") {
  notify_socket first_notify;
  node_process first{{"--name", "r1", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"},
                     {{"NOTIFY_SOCKET", first_notify.path}}};
  const std::string up = first.until("r1 troupe-node: cluster");
  REQUIRE_FALSE(up.empty());
  // Without seeds it starts the cluster: ready at once.
  CHECK(first_notify.next(10s).find("READY=1") != std::string::npos);
  client c1{port_after(up, "http")};
  reply r = c1.call(http::verb::get, "/readyz");
  CHECK(r.status == 200);
  CHECK(json::parse(r.body).at("ready").as_bool());
  CHECK(c1.call(http::verb::get, "/healthz").status == 200);

  SECTION("a node whose seeds answer is ready once linked") {
    notify_socket n;
    node_process second{{"--name", "r2", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                         "--seeds", "127.0.0.1:" + std::to_string(port_after(up, "cluster"))},
                        {{"NOTIFY_SOCKET", n.path}}};
    const std::string l = second.until("r2 troupe-node: cluster");
    REQUIRE_FALSE(l.empty());
    CHECK(n.next(10s).find("READY=1") != std::string::npos);
    client c2{port_after(l, "http")};
    reply ok = readyz_until(c2, 200);
    CHECK(ok.status == 200);
    CHECK(std::string(json::parse(ok.body).at("checks").at("cluster").as_string()).find("ok") == 0);
    second.signal(SIGTERM);
    CHECK(n.next(10s).find("STOPPING=1") != std::string::npos);
    CHECK(second.wait_exit() == 0);
  }
  SECTION("a node whose seeds do not answer is alive but not ready, and says why") {
    asio::io_context io;
    asio::ip::tcp::acceptor closed{io, {asio::ip::make_address("127.0.0.1"), 0}};
    const auto dead = closed.local_endpoint().port();
    closed.close();
    node_process lone{{"--name", "r3", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                       "--seeds", "127.0.0.1:" + std::to_string(dead)}};
    const std::string l = lone.until("r3 troupe-node: cluster");
    REQUIRE_FALSE(l.empty());
    client c3{port_after(l, "http")};
    CHECK(c3.call(http::verb::get, "/healthz").status == 200);
    reply no = c3.call(http::verb::get, "/readyz");
    CHECK(no.status == 503);
    CHECK(troupe::test::code_of(no) == "not_ready");
    CHECK(no.header("retry-after") == "1");
    const json::value v = json::parse(no.body);
    CHECK_FALSE(v.at("ready").as_bool());
    CHECK(std::string(v.at("checks").at("cluster").as_string()).find("waiting") == 0);
  }
}

namespace {
// A file holding `text` with permission bits `mode`.
std::string secret_file(const std::string& leaf, const std::string& text,
                        std::filesystem::perms mode) {
  const std::string path = temp_path(leaf);
  std::ofstream(path) << text << "\n";
  std::filesystem::permissions(path, mode);
  return path;
}
constexpr auto owner_only =
    std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
}  // namespace

TEST_CASE("troupe-node refuses secret and token files others may read, and short secrets",
          "[http][node]") {
  const std::string strong = "an-ample-cluster-secret-of-40-bytes-long";
  SECTION("a secret file its group may read") {
    const std::string f =
        secret_file("group-secret", strong, owner_only | std::filesystem::perms::group_read);
    node_process p{{"--name", "n", "--listen", "127.0.0.1:0", "--secret-file", f}};
    const std::string l = p.line();
    CHECK(l.find("troupe-node: --secret-file: " + f + " is open to group or others") == 0);
    CHECK(l.find("chmod 600 " + f) != std::string::npos);
    CHECK(p.wait_exit() == 2);
    std::remove(f.c_str());
  }
  SECTION("a token file others may read") {
    const std::string f =
        secret_file("others-token", strong, owner_only | std::filesystem::perms::others_read);
    node_process p{{"--name", "n", "--listen", "127.0.0.1:0", "--http-token-file", f}};
    const std::string l = p.line();
    CHECK(l.find("--http-token-file: " + f) != std::string::npos);
    CHECK(l.find("chmod 600 " + f) != std::string::npos);
    CHECK(p.wait_exit() == 2);
    std::remove(f.c_str());
  }
  SECTION("a secret shorter than 16 bytes") {
    const std::string f = secret_file("short-secret", "fifteen-bytes!!", owner_only);
    node_process p{{"--name", "n", "--listen", "127.0.0.1:0", "--secret-file", f}};
    const std::string l = p.line();
    CHECK(l.find("--secret-file: " + f + " holds 15 bytes; a secret needs at least 16") !=
          std::string::npos);
    CHECK(p.wait_exit() == 2);
    std::remove(f.c_str());
  }
  SECTION("owner-only files of 16 bytes and more start, and /metrics shows the link caps") {
    const std::string s = secret_file("good-secret", "exactly-16-bytes", owner_only);
    const std::string t = secret_file("good-token", strong, owner_only);
    node_process p{{"--name", "node-g", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                    "--secret-file", s, "--http-token-file", t, "--max-handshakes", "8"}};
    const std::string ready = p.until("node-g troupe-node: cluster");
    REQUIRE_FALSE(ready.empty());
    client c{port_after(ready, "http")};
    reply m = c.call(http::verb::get, "/metrics");
    REQUIRE(m.status == 200);
    for (const char* name :
         {"troupe_link_congested_total 0", "troupe_link_refused_total{reason=\"handshakes\"} 0",
          "troupe_link_refused_total{reason=\"slow_consumer\"} 0", "troupe_link_handshakes 0",
          "troupe_node_table_entries{table=\"relays\"} 0",
          "troupe_relays_dropped_total{reason=\"expired\"} 0"}) {
      INFO(name);
      CHECK(m.body.find(name) != std::string::npos);
    }
    p.signal(SIGTERM);
    CHECK(p.wait_exit() == 0);
    std::remove(s.c_str());
    std::remove(t.c_str());
  }
  SECTION("a cap flag out of its range") {
    node_process p{{"--name", "n", "--max-handshakes", "0"}};
    CHECK(p.line().find("--max-handshakes") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
}

TEST_CASE("troupe-node without a secret does not dial a seed off this host", "[http][node]") {
  node_process p{{"--name", "node-o", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--seeds",
                  "192.0.2.1:7000"}};
  const std::string l = p.until("not dialing 192.0.2.1:7000");
  CHECK(l.find("without a cluster secret a node links to loopback peers only") !=
        std::string::npos);
  p.signal(SIGTERM);
  CHECK(p.wait_exit() == 0);
}

TEST_CASE("troupe-node logs with timestamps and levels, as text or as JSON lines", "[http][node]") {
  SECTION("text: UTC time, level, node, component, message") {
    node_process p{{"--name", "node-t", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}};
    const std::string ready = p.until("node-t troupe-node: cluster");
    REQUIRE_FALSE(ready.empty());
    CHECK(std::regex_search(ready, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info )")));
    // No --data-dir: a warning, at warn level.
    node_process q{{"--name", "node-w", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}};
    const std::string warned = q.until("no --data-dir");
    CHECK(std::regex_search(warned, std::regex(R"(Z warning node-w troupe-node: no --data-dir)")));
  }
  SECTION("json: one object a line; debug adds the access log") {
    node_process p{{"--name", "node-j", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                    "--log-format", "json", "--log-level", "debug"}};
    json::object start;
    for (int i = 0; i < 20 && start.empty(); ++i) {
      const std::string l = p.line();
      REQUIRE_FALSE(l.empty());
      boost::system::error_code ec;
      json::value v = json::parse(l, ec);
      REQUIRE_FALSE(ec);  // every line is one JSON object
      json::object& o = v.as_object();
      CHECK(o.at("node").as_string() == "node-j");
      CHECK(o.contains("ts"));
      CHECK(o.contains("level"));
      CHECK(o.contains("component"));
      if (std::string_view(o.at("msg").as_string()).starts_with("cluster ")) start = o;
    }
    REQUIRE_FALSE(start.empty());
    CHECK(start.at("level").as_string() == "info");
    CHECK(start.at("component").as_string() == "troupe-node");
    CHECK(std::regex_match(std::string(start.at("ts").as_string()),
                           std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
    const std::string msg(start.at("msg").as_string());
    const unsigned short port =
        static_cast<unsigned short>(std::stoi(msg.substr(msg.find("http 127.0.0.1:") + 15)));
    client c{port};
    REQUIRE(c.call(http::verb::get, "/healthz?probe=1").status == 200);
    const std::string access = p.until("http.access");
    REQUIRE_FALSE(access.empty());
    json::object a = json::parse(access).as_object();
    CHECK(a.at("level").as_string() == "debug");
    const std::string line(a.at("msg").as_string());
    CHECK(line.find("127.0.0.1 GET /healthz?probe=1 200 3 ") == 0);
  }
  SECTION("a level that is not one of the words is refused at start") {
    node_process p{{"--name", "n", "--log-level", "loud"}};
    const std::string l = p.line();
    CHECK(l.find("troupe-node:") == 0);
    CHECK(l.find("--log-level") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
}

TEST_CASE("troupe-node's /metrics passes promtool and has the histograms and process metrics",
          "[http][node][metrics]") {
  // promtool comes with Debian's prometheus package (scripts/bootstrap).
  REQUIRE(::system("command -v promtool >/dev/null 2>&1") == 0);
  node_process p{{"--name", "node-m", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                  "--lock-max-ttl-ms", "200"}};
  const std::string ready = p.until("node-m troupe-node: cluster");
  REQUIRE_FALSE(ready.empty());
  client c{port_after(ready, "http")};
  // A lock wait: bob queues behind alice's 150 ms lease (after the lock-delay).
  reply a = c.call(http::verb::post, "/api/v1/locks/m/acquire",
                   R"({"owner":"alice","ttl_ms":150,"wait_ms":5000})");
  REQUIRE(a.status == 200);
  reply before = c.call(http::verb::get, "/metrics");  // its asks to the shard probes are timed
  reply b = c.call(http::verb::post, "/api/v1/locks/m/acquire",
                   R"({"owner":"bob","ttl_ms":150,"wait_ms":5000})");
  REQUIRE(b.status == 200);
  reply m = c.call(http::verb::get, "/metrics");
  REQUIRE(m.status == 200);
  const std::string file = temp_path("metrics.txt");
  std::ofstream(file) << m.body;
  const int rc =
      ::system(("promtool check metrics < " + file + " > " + file + ".out 2>&1").c_str());
  std::ifstream said(file + ".out");
  const std::string verdict((std::istreambuf_iterator<char>(said)), {});
  INFO("promtool said: " << verdict);
  CHECK(rc == 0);
  std::filesystem::remove(file);
  std::filesystem::remove(file + ".out");

  auto value_of = [](const reply& r, const std::string& series) -> double {
    const auto at = r.body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r.body.substr(at + series.size() + 2));
  };
  auto value = [&](const std::string& series) { return value_of(m, series); };
  // Bob's wait, and only his, came between the scrapes (alice may have
  // waited out the lock-delay before).
  CHECK(value("troupe_lock_wait_seconds_count") ==
        value_of(before, "troupe_lock_wait_seconds_count") + 1);
  CHECK(value("troupe_lock_wait_seconds_sum") - value_of(before, "troupe_lock_wait_seconds_sum") >
        0.01);                                                      // he waited for alice's lease
  CHECK(value("troupe_ask_seconds_count{target=\"local\"}") >= 2);  // the scrapes' probes
  CHECK(value("process_resident_memory_bytes") > 1e6);
  CHECK(value("process_open_fds") > 3);
  CHECK(value("process_start_time_seconds") > 1.6e9);
  CHECK(value("process_cpu_seconds_total") >= 0);
  CHECK(m.body.find("troupe_build_info{version=\"" + std::string(troupe::library_version())) !=
        std::string::npos);

  // The Grafana dashboard in docs/ asks only for metrics the node has.
  std::ifstream d(std::string(TROUPE_SOURCE_DIR) + "/docs/grafana/troupe-dashboard.json");
  REQUIRE(d);
  const std::string dashboard((std::istreambuf_iterator<char>(d)), {});
  const std::regex metric(R"(\b((troupe|process)_[a-z_]+))");
  std::size_t asked = 0;
  for (std::sregex_iterator it(dashboard.begin(), dashboard.end(), metric), end; it != end; ++it) {
    std::string name = (*it)[1];
    for (const std::string suffix : {"_bucket", "_sum", "_count"})
      if (name.ends_with(suffix) && name.find("_seconds") != std::string::npos)
        name.resize(name.size() - suffix.size());
    INFO("the dashboard asks for " << name);
    CHECK(m.body.find("# TYPE " + name + " ") != std::string::npos);
    ++asked;
  }
  CHECK(asked >= 12);
}

TEST_CASE("the gateway lists its routes, in the order added", "[http]") {
  gateway_fixture f;
  std::vector<std::pair<http::verb, std::string>> got;
  for (const net::http_route_info& r : f.gw->routes()) got.emplace_back(r.method, r.pattern);
  const std::vector<std::pair<http::verb, std::string>> want = {
      {http::verb::post, "/api/v1/add"},
      {http::verb::get, "/api/v1/echo/{word}"},
      {http::verb::post, "/api/v1/need"},
      {http::verb::get, "/healthz"}};
  CHECK(got == want);
}

namespace {
const net::http_route_stats* stats_of(const std::vector<net::http_route_stats>& all,
                                      const std::string& route, const std::string& method) {
  for (const auto& r : all)
    if (r.route == route && r.method == method) return &r;
  return nullptr;
}
}  // namespace

TEST_CASE("the gateway counts requests by route pattern, method and status, and times them",
          "[http][metrics]") {
  gateway_fixture f;
  client c{f.gw->port()};
  for (int i = 0; i < 3; ++i)
    REQUIRE(c.call(http::verb::post, "/api/v1/add", R"({"a":1,"b":2})").status == 200);
  REQUIRE(c.call(http::verb::post, "/api/v1/add", "{nope").status == 400);
  REQUIRE(c.call(http::verb::get, "/api/v1/echo/one").status == 200);
  REQUIRE(c.call(http::verb::get, "/api/v1/echo/two").status == 200);
  REQUIRE(c.call(http::verb::get, "/nowhere/1").status == 404);
  REQUIRE(c.call(http::verb::get, "/nowhere/2").status == 404);
  REQUIRE(c.call(http::verb::delete_, "/api/v1/add").status == 405);

  const auto all = f.gw->route_stats();
  const auto* add = stats_of(all, "/api/v1/add", "POST");
  REQUIRE(add != nullptr);
  CHECK(add->responses == std::map<unsigned, std::uint64_t>{{200, 3}, {400, 1}});
  CHECK(add->latency.count() == 4);
  // Two paths, one route: counted under its pattern, not the paths.
  const auto* echo = stats_of(all, "/api/v1/echo/{word}", "GET");
  REQUIRE(echo != nullptr);
  CHECK(echo->responses == std::map<unsigned, std::uint64_t>{{200, 2}});
  const auto* unmatched = stats_of(all, "unmatched", "GET");
  REQUIRE(unmatched != nullptr);
  CHECK(unmatched->responses == std::map<unsigned, std::uint64_t>{{404, 2}});
  const auto* wrong = stats_of(all, "/api/v1/add", "DELETE");
  REQUIRE(wrong != nullptr);
  CHECK(wrong->responses == std::map<unsigned, std::uint64_t>{{405, 1}});
  CHECK(stats_of(all, "/healthz", "GET") == nullptr);  // never requested
  for (const auto& r : all) {
    INFO(r.route << " " << r.method);
    std::uint64_t answered = 0;
    for (const auto& [status, n] : r.responses) answered += n;
    CHECK(answered == r.latency.count());
    // Cumulative buckets, none above the count; the latencies add up.
    for (std::size_t i = 1; i <= troupe::latency_histogram::bounds.size(); ++i)
      CHECK(r.latency.cumulative(i - 1) <= r.latency.cumulative(i));
    CHECK(r.latency.sum_seconds >= 0);
    CHECK(r.latency.sum_seconds < 10.0 * static_cast<double>(r.latency.count()));
  }
  // Sorted by route, then method.
  for (std::size_t i = 1; i < all.size(); ++i)
    CHECK(std::tie(all[i - 1].route, all[i - 1].method) < std::tie(all[i].route, all[i].method));
}

TEST_CASE("route stats are read from another thread while connections count requests",
          "[http][metrics]") {
  gateway_fixture f;
  std::atomic<bool> done{false};
  std::uint64_t reads = 0, seen = 0;
  std::thread reader([&] {
    while (!done.load()) {
      for (const auto& r : f.gw->route_stats()) seen = std::max(seen, r.latency.count());
      ++reads;
    }
  });
  {
    client c{f.gw->port()};
    for (int i = 0; i < 200; ++i) REQUIRE(c.call(http::verb::get, "/api/v1/echo/x").status == 200);
  }
  done = true;
  reader.join();
  CHECK(reads > 0);
  CHECK(seen <= 200);
  const auto after = f.gw->route_stats();
  const auto* echo = stats_of(after, "/api/v1/echo/{word}", "GET");
  REQUIRE(echo != nullptr);
  CHECK(echo->latency.count() == 200);
}

TEST_CASE("a Prometheus label value escapes backslash, double quote and line feed only",
          "[http][metrics]") {
  CHECK(net::prometheus_label_value("plain /api/v1/x{y}") == "plain /api/v1/x{y}");
  CHECK(net::prometheus_label_value(R"(a\b)") == R"(a\\b)");
  CHECK(net::prometheus_label_value(R"(say "hi")") == R"(say \"hi\")");
  CHECK(net::prometheus_label_value("two\nlines") == R"(two\nlines)");
  CHECK(net::prometheus_label_value("\\\"\n") == R"(\\\"\n)");
  CHECK(net::prometheus_label_value("") == "");
  CHECK(net::prometheus_label_value("tab\tand \xc3\xa9") == "tab\tand \xc3\xa9");
}
