// SPDX-License-Identifier: BSL-1.0
// troupe-node's HTTP routes in this process (node_instance): every field
// against its range (node_http_fields, the one table), lock holders that must
// prove themselves, and the caps on lock waiters and queued sagas.

#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <future>
#include <set>
#include <troupe/core.hpp>
#include <troupe/net/http.hpp>
#include <troupe/net/node_main.hpp>
#include <troupe/saga.hpp>

#include "net/http_client.hpp"
#include "net/net_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace net = troupe::net;
namespace http = boost::beast::http;
namespace json = boost::json;
using troupe::test::client;
using troupe::test::error_of;
using troupe::test::eventually;
using troupe::test::reply;

namespace {

constexpr std::int64_t max_ttl_ms = 1000;

std::vector<std::string> node_args(std::vector<std::string> more = {}) {
  std::vector<std::string> a{
      "--name", "n1",          "--listen",          "127.0.0.1:0",
      "--http", "127.0.0.1:0", "--lock-max-ttl-ms", std::to_string(max_ttl_ms)};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

std::string field_of(const reply& r, const char* f) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains(f)) return {};
  const json::value& x = v.as_object().at(f);
  return x.is_string() ? std::string(x.as_string()) : json::serialize(x);
}

// Past the lock-delay of the fresh node: a try-lock is granted.
void wait_for_locks(unsigned short port) {
  client c{port};
  REQUIRE(eventually([&] {
    reply r =
        c.call(http::verb::post, "/api/v1/locks/probe/acquire", R"({"owner":"probe","ttl_ms":1})");
    return r.status == 200;
  }));
}

std::uint64_t finished_saga(client& c) {
  reply s = c.call(http::verb::post, "/api/v1/sagas/troupe.selftest", R"({"input":{}})");
  REQUIRE(s.status == 201);
  const std::string id = field_of(s, "id");
  reply done = c.call(http::verb::get, "/api/v1/sagas/" + id + "?wait_ms=10000");
  REQUIRE(field_of(done, "state") == "completed");
  return std::stoull(id);
}

}  // namespace

TEST_CASE("the field table lists every field of every route", "[http][node][fields]") {
  std::set<std::string> got;
  for (const auto& f : net::node_http_fields(max_ttl_ms))
    got.insert(std::string(f.route) + " " + f.field);
  const std::set<std::string> want = {"POST /api/v1/locks/{name}/acquire name",
                                      "POST /api/v1/locks/{name}/acquire owner",
                                      "POST /api/v1/locks/{name}/acquire ttl_ms",
                                      "POST /api/v1/locks/{name}/acquire wait_ms",
                                      "POST /api/v1/locks/{name}/acquire mode",
                                      "POST /api/v1/locks/{name}/acquire token",
                                      "POST /api/v1/locks/{name}/renew name",
                                      "POST /api/v1/locks/{name}/renew owner",
                                      "POST /api/v1/locks/{name}/renew token",
                                      "POST /api/v1/locks/{name}/renew ttl_ms",
                                      "POST /api/v1/locks/{name}/release name",
                                      "POST /api/v1/locks/{name}/release owner",
                                      "POST /api/v1/locks/{name}/release token",
                                      "POST /api/v1/sagas/{definition} definition",
                                      "POST /api/v1/sagas/{definition} input",
                                      "POST /api/v1/sagas/{definition} idempotency_key",
                                      "GET /api/v1/sagas/{id} id",
                                      "GET /api/v1/sagas/{id} wait_ms",
                                      "GET /api/v1/sagas state",
                                      "GET /api/v1/sagas limit",
                                      "GET /api/v1/sagas after",
                                      "POST /api/v1/sagas/{id}/cancel id",
                                      "GET /api/v1/ring/owner key"};
  CHECK(got == want);
}

// Every field x {below min, min, max, above max, huge, negative, wrong type}:
// a value outside gets a 400 that names the field and its range; a value
// inside is never refused for that field.
TEST_CASE("every field of every route is checked against its range", "[http][node][fields]") {
  net::node_instance node{node_args()};
  const unsigned short port = node.http_port();
  wait_for_locks(port);
  client setup{port};
  const std::string done_id = std::to_string(finished_saga(setup));
  int fresh = 0;

  for (const net::http_field_rule& rule : net::node_http_fields(max_ttl_ms)) {
    const std::string route = rule.route, field = rule.field, where = rule.where, type = rule.type;
    // A valid request of the route; `value` (raw JSON, or text for a path or
    // query parameter) replaces the field's.
    auto request = [&](const std::optional<std::string>& value) {
      const std::string lock = "f" + std::to_string(++fresh);
      std::map<std::string, std::string> body, path, query;
      std::string method = route.substr(0, route.find(' '));
      std::string pattern = route.substr(route.find(' ') + 1);
      if (pattern.find("/locks/") != std::string::npos) {
        path["name"] = lock;
        body["owner"] = R"("o")";
        body["ttl_ms"] = "100";
        if (pattern.find("acquire") == std::string::npos) body["token"] = R"("1")";
      } else if (pattern == "/api/v1/sagas/{definition}") {
        path["definition"] = "troupe.selftest";
        body["input"] = "{}";
      } else if (pattern.find("{id}") != std::string::npos) {
        path["id"] = done_id;
      } else if (pattern == "/api/v1/ring/owner") {
        query["key"] = "k";
      }
      auto& slot = where == "body" ? body : where == "path" ? path : query;
      if (value)
        slot[field] = *value;
      else
        slot.erase(field);
      std::string target = pattern;
      for (auto& [k, v] : path) {
        const std::string p = "{" + k + "}";
        target.replace(target.find(p), p.size(), v);
      }
      char sep = '?';
      for (auto& [k, v] : query) {
        target += sep + k + "=" + v;
        sep = '&';
      }
      std::string text = "{";
      for (auto& [k, v] : body) text += (text.size() > 1 ? "," : "") + ("\"" + k + "\":" + v);
      text += "}";
      client c{port};
      return c.call(method == "POST" ? http::verb::post : http::verb::get, target,
                    method == "POST" ? text : std::string{});
    };
    const std::string label = where == "body"    ? "field '" + field + "'"
                              : where == "query" ? "query parameter '" + field + "'"
                                                 : "path parameter '" + field + "'";
    auto refused = [&](const std::string& what, const std::optional<std::string>& v) {
      INFO(route << " " << field << " = " << what);
      reply r = request(v);
      CHECK(r.status == 400);
      CHECK(troupe::test::code_of(r) == "bad_field");
      const std::string e = error_of(r);
      CHECK(e.find(label) != std::string::npos);
      if (type == "integer" || type == "token")
        CHECK(e.find("from " + std::to_string(rule.min) + " to " + std::to_string(rule.max)) !=
              std::string::npos);
      if (type == "string")
        CHECK(e.find(std::to_string(rule.min) + " to " + std::to_string(rule.max) + " bytes") !=
              std::string::npos);
    };
    auto accepted = [&](const std::string& what, const std::optional<std::string>& v) {
      INFO(route << " " << field << " = " << what);
      reply r = request(v);
      CHECK(r.status != 0);
      if (r.status == 400) CHECK(error_of(r).find("'" + field + "'") == std::string::npos);
      CHECK(r.status < 500);
    };
    // Texts for a path or query value; JSON for a body value.
    const bool text = where != "body";
    auto num = [&](const std::string& digits) { return text ? digits : digits; };
    auto str = [&](std::size_t n) {
      std::string s(n, 'k');
      return text ? s : "\"" + s + "\"";
    };

    if (type == "integer" || type == "token") {
      if (rule.min > 0) refused("min - 1", num(std::to_string(rule.min - 1)));
      accepted("min", num(std::to_string(rule.min)));
      accepted("max", num(std::to_string(rule.max)));
      if (rule.max < UINT64_MAX)
        refused("max + 1", num(std::to_string(rule.max + 1)));
      else
        refused("max + 1", num("18446744073709551616"));
      refused("huge", num("99999999999999999999999999999"));
      refused("huge, float", text ? "1e300" : "1e300");
      refused("negative", num("-1"));
      refused("very negative", num("-9223372036854775808"));
      refused("fraction", num("1.5"));
      if (text) {
        refused("trailing junk", std::string("5abc"));
        refused("leading plus", std::string("+5"));
        if (where == "query") refused("empty", std::string(""));
        refused("hex", std::string("0x10"));
      } else {
        if (type == "integer") refused("a string", std::string("\"5\""));
        if (type == "token") refused("a string with junk", std::string("\"5abc\""));
        refused("true", std::string("true"));
        refused("null", std::string("null"));
        refused("an array", std::string("[1]"));
        refused("an object", std::string("{}"));
      }
      if (!rule.required)
        accepted("absent", std::nullopt);
      else if (where != "path")
        refused("absent", std::nullopt);
    } else if (type == "string") {
      if (where == "path") {
        // An empty path segment is a non-canonical target: 400 before routing.
        INFO(route << " " << field << " = empty");
        CHECK(request(std::string("")).status == 400);
      } else if (rule.min > 0) {
        refused("min - 1", str(rule.min - 1));
      }
      accepted("min", str(rule.min));
      accepted("max", str(rule.max));
      refused("max + 1", str(rule.max + 1));
      if (where == "body") {
        refused("huge", str(900 * 1024));
        refused("a number", std::string("5"));
        refused("negative", std::string("-1"));
        refused("null", std::string("null"));
        refused("an array", std::string("[\"x\"]"));
      } else {
        INFO(route << " " << field << " = huge");
        const unsigned s = request(str(100 * 1024)).status;
        CHECK((s == 400 || s == 431));  // past the header limit first
      }
      if (!rule.required)
        accepted("absent", std::nullopt);
      else if (where != "path")
        refused("absent", std::nullopt);
    } else if (type == "object") {
      // {"note":"k..."} of exactly n bytes.
      auto object = [](std::size_t n) { return R"({"note":")" + std::string(n - 11, 'k') + "\"}"; };
      accepted("small", std::string("{}"));
      accepted("max", object(rule.max));
      refused("max + 1", object(rule.max + 1));
      refused("huge", object(900 * 1024));
      refused("a number", std::string("5"));
      refused("negative", std::string("-1"));
      refused("a string", std::string("\"{}\""));
      refused("an array", std::string("[]"));
      refused("absent", std::nullopt);
    } else if (type == "enum") {
      std::string vals = rule.values;
      for (std::size_t a = 0; a <= vals.size();) {
        const std::size_t b = std::min(vals.find('|', a), vals.size());
        const std::string v = vals.substr(a, b - a);
        accepted(v, text ? v : "\"" + v + "\"");
        a = b + 1;
      }
      refused("unknown", text ? std::string("bogus") : std::string("\"bogus\""));
      if (!text) refused("a number", std::string("5"));
      if (!text) refused("negative", std::string("-1"));
      if (text) refused("empty", std::string(""));
      accepted("absent", std::nullopt);
    } else {
      FAIL("a rule of unknown type " << type);
    }
  }
  client after{port};
  CHECK(after.call(http::verb::get, "/healthz").status == 200);
}

TEST_CASE("naming a holder's owner without its token gets no hold, no renewal, no release",
          "[http][node][locks]") {
  net::node_instance node{node_args()};
  const unsigned short port = node.http_port();
  wait_for_locks(port);
  client alice{port}, mallory{port};
  const std::string L = "/api/v1/locks/orders-42/";
  reply a = alice.call(http::verb::post, L + "acquire", R"({"owner":"alice","ttl_ms":1000})");
  REQUIRE(a.status == 200);
  const std::string token = field_of(a, "token");
  REQUIRE(!token.empty());
  CHECK(field_of(a, "holds") == "1");

  // Same owner string, no token: the lock's ordinary answers.
  reply m = mallory.call(http::verb::post, L + "acquire", R"({"owner":"alice","ttl_ms":1000})");
  CHECK(m.status == 409);
  CHECK(error_of(m).find("held") != std::string::npos);
  CHECK(field_of(m, "token").empty());
  m = mallory.call(http::verb::post, L + "acquire",
                   R"({"owner":"alice","ttl_ms":1000,"wait_ms":100})");
  CHECK(m.status == 409);
  CHECK(troupe::test::code_of(m) == "lock_wait_expired");
  CHECK(field_of(m, "token").empty());
  // A guessed token: refused, no hold.
  const std::string guess = std::to_string(std::stoull(token) + 1);
  m = mallory.call(http::verb::post, L + "acquire",
                   R"({"owner":"alice","ttl_ms":1000,"token":")" + guess + "\"}");
  CHECK(m.status == 409);
  CHECK(error_of(m).find("token") != std::string::npos);
  // No renewal and no release without the token.
  CHECK(mallory.call(http::verb::post, L + "renew", R"({"owner":"alice","ttl_ms":1000})").status ==
        400);
  CHECK(mallory
            .call(http::verb::post, L + "renew",
                  R"({"owner":"alice","ttl_ms":1000,"token":")" + guess + "\"}")
            .status == 409);
  CHECK(mallory.call(http::verb::post, L + "release", R"({"owner":"alice"})").status == 400);
  CHECK(
      mallory.call(http::verb::post, L + "release", R"({"owner":"alice","token":")" + guess + "\"}")
          .status == 409);

  // The holder, with its token: reentrant, then released hold by hold.
  reply again = alice.call(http::verb::post, L + "acquire",
                           R"({"owner":"alice","ttl_ms":1000,"token":")" + token + "\"}");
  CHECK(again.status == 200);
  CHECK(field_of(again, "token") == token);
  CHECK(field_of(again, "holds") == "2");
  reply r1 =
      alice.call(http::verb::post, L + "release", R"({"owner":"alice","token":")" + token + "\"}");
  CHECK(field_of(r1, "released") == "false");
  reply r2 =
      alice.call(http::verb::post, L + "release", R"({"owner":"alice","token":")" + token + "\"}");
  CHECK(field_of(r2, "released") == "true");
  // Now free: anyone gets it, with a new token.
  reply next = mallory.call(http::verb::post, L + "acquire", R"({"owner":"alice","ttl_ms":1000})");
  CHECK(next.status == 200);
  CHECK(field_of(next, "token") != token);
}

TEST_CASE("a lock's waiters are capped over HTTP: 429 with Retry-After, and the node serves on",
          "[http][node][caps]") {
  net::node_instance node{node_args({"--lock-max-waiters-per-lock", "1"})};
  const unsigned short port = node.http_port();
  wait_for_locks(port);
  client holder{port};
  const std::string L = "/api/v1/locks/busy/";
  reply h = holder.call(http::verb::post, L + "acquire", R"({"owner":"h","ttl_ms":1000})");
  REQUIRE(h.status == 200);
  auto waiter = std::async(std::launch::async, [port, L] {
    client c{port};
    return c.call(http::verb::post, L + "acquire", R"({"owner":"w","ttl_ms":1000,"wait_ms":5000})");
  });
  // Wait until the waiter is parked (the manager's gauge says so); the
  // holder renews meanwhile so its lease (at most 1 s here) does not end and
  // hand the lock over first.
  client over{port};
  const std::string renew =
      R"({"owner":"h","ttl_ms":1000,"token":")" + field_of(h, "token") + "\"}";
  REQUIRE(eventually([&] {
    if (holder.call(http::verb::post, L + "renew", renew).status != 200) return false;
    return over.call(http::verb::get, "/metrics").body.find("troupe_lock_waiters 1\n") !=
           std::string::npos;
  }));
  // A second acquire that would wait is over the cap: refused at once.
  reply r =
      over.call(http::verb::post, L + "acquire", R"({"owner":"x","ttl_ms":1000,"wait_ms":3000})");
  CHECK(r.status == 429);
  CHECK(troupe::test::code_of(r) == "too_many_waiters");
  CHECK(r.header("retry-after") == "1");
  CHECK(error_of(r).find("--lock-max-waiters-per-lock 1") != std::string::npos);
  reply metrics = over.call(http::verb::get, "/metrics");
  CHECK(metrics.body.find("troupe_lock_waiters_refused_total 1\n") != std::string::npos);
  // The holder releases: the parked waiter is granted; the node is healthy.
  CHECK(holder
            .call(http::verb::post, L + "release",
                  R"({"owner":"h","token":")" + field_of(h, "token") + "\"}")
            .status == 200);
  CHECK(waiter.get().status == 200);
  CHECK(over.call(http::verb::get, "/healthz").status == 200);
}

namespace {
struct slow_ctx {
  int n = 0;
  template <class A>
  void serialize(A& a) {
    a(n);
  }
};
// An extension with a saga type whose one step takes 1.5 s.
net::node_extension slow_sagas() {
  net::node_extension e;
  e.name = "slow";
  e.start = [](net::node_context& n) {
    auto def = std::make_shared<troupe::saga::definition<slow_ctx>>("test.slow");
    def->step("sleep")
        .action([](slow_ctx&, troupe::saga::step_call) -> troupe::task<troupe::saga::step_result> {
          co_await troupe::sleep_for(1500ms);
          co_return troupe::saga::step_result{};
        })
        .compensate(
            [](slow_ctx&, troupe::saga::step_call) -> troupe::task<troupe::saga::step_result> {
              co_return troupe::saga::step_result{};
            })
        .timeout(10s);
    n.sagas.add(def);
  };
  return e;
}
}  // namespace

TEST_CASE("saga starts past the queue cap get 503 with Retry-After, and the node serves on",
          "[http][node][caps]") {
  net::node_instance node{node_args({"--saga-max-running", "1", "--saga-max-queued", "1"}),
                          {slow_sagas()}};
  client c{node.http_port()};
  const std::string start = "/api/v1/sagas/test.slow";
  reply first = c.call(http::verb::post, start, R"({"input":{"n":1}})");  // running
  REQUIRE(first.status == 201);
  reply second = c.call(http::verb::post, start, R"({"input":{"n":2}})");  // queued
  REQUIRE(second.status == 201);
  reply third = c.call(http::verb::post, start, R"({"input":{"n":3}})");
  CHECK(third.status == 503);
  CHECK(troupe::test::code_of(third) == "overloaded");
  CHECK(third.header("retry-after") == "1");
  CHECK(error_of(third).find("--saga-max-queued 1") != std::string::npos);
  reply metrics = c.call(http::verb::get, "/metrics");
  CHECK(metrics.body.find("troupe_saga_starts_refused_total 1\n") != std::string::npos);
  // Both admitted sagas complete; then starts are taken again.
  for (const reply* r : {&first, &second}) {
    reply done = c.call(http::verb::get, "/api/v1/sagas/" + field_of(*r, "id") + "?wait_ms=10000");
    CHECK(field_of(done, "state") == "completed");
  }
  CHECK(c.call(http::verb::post, start, R"({"input":{"n":4}})").status == 201);
  CHECK(c.call(http::verb::get, "/healthz").status == 200);
}

TEST_CASE("troupe-node's gateway caps are flags, and a bad value is refused at start",
          "[http][node][caps]") {
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--http-max-connections", "0"},
        std::vector<std::string>{"--http-handler-timeout-ms", "5"},
        std::vector<std::string>{"--http-body-limit", "10"},
        std::vector<std::string>{"--lock-max-waiters", "-1"},
        std::vector<std::string>{"--saga-max-queued", "x"}}) {
    INFO(bad[0]);
    try {
      net::node_instance node{node_args(bad)};
      FAIL("started");
    } catch (const net::node_start_error& e) {
      CHECK(e.exit_code == 2);
      CHECK(std::string(e.what()).find(bad[0]) != std::string::npos);
    }
  }
  // And a node with small caps serves within them.
  net::node_instance node{
      node_args({"--http-max-connections", "1", "--http-handler-timeout-ms", "1000"})};
  client c{node.http_port()};
  CHECK(c.call(http::verb::get, "/healthz").status == 200);
  client over{node.http_port()};
  reply refused = over.read_only();
  CHECK(refused.status == 503);
  CHECK(troupe::test::code_of(refused) == "overloaded");
  CHECK(refused.header("retry-after") == "1");
  reply m = c.call(http::verb::get, "/metrics");
  CHECK(m.body.find("troupe_http_connections_refused_total 1\n") != std::string::npos);
}

TEST_CASE(
    "troupe-node takes host names in --listen and --http, and one that does not resolve "
    "fails the start naming the flag and the name",
    "[http][node][resolve]") {
  {
    net::node_instance node{{"--name", "n1", "--listen", "localhost:0", "--http", "localhost:0"}};
    client c{node.http_port()};  // localhost is bound to 127.0.0.1
    CHECK(c.call(http::verb::get, "/healthz").status == 200);
  }
  for (const std::string flag : {"--listen", "--http"}) {
    INFO(flag);
    std::vector<std::string> args{"--name",      "n1",     "--listen",
                                  "127.0.0.1:0", "--http", "127.0.0.1:0"};
    args[flag == "--listen" ? 3 : 5] = "nosuch.invalid:0";  // .invalid never resolves (RFC 6761)
    try {
      net::node_instance node{args};
      FAIL("started");
    } catch (const net::node_start_error& e) {
      const std::string line = e.what();
      CHECK(e.exit_code == 1);
      CHECK(line.find(flag + " host 'nosuch.invalid' cannot be resolved") != std::string::npos);
      CHECK(line.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("troupe-node cuts a request off at --http-handler-timeout-ms with a 504",
          "[http][node][caps]") {
  net::node_instance node{node_args({"--http-handler-timeout-ms", "300"})};
  const unsigned short port = node.http_port();
  wait_for_locks(port);
  client c{port};
  const std::string L = "/api/v1/locks/held/";
  reply h = c.call(http::verb::post, L + "acquire", R"({"owner":"h","ttl_ms":1000})");
  REQUIRE(h.status == 200);
  // A wait of 5 s for a held lock, past the 300 ms deadline.
  client w{port};
  reply r =
      w.call(http::verb::post, L + "acquire", R"({"owner":"w","ttl_ms":1000,"wait_ms":5000})");
  CHECK(r.status == 504);
  CHECK(troupe::test::code_of(r) == "timeout");
  CHECK(error_of(r).find("--http-handler-timeout-ms") != std::string::npos);
  CHECK(r.closed);
  client after{port};
  reply m = after.call(http::verb::get, "/metrics");
  CHECK(m.body.find("troupe_http_handler_timeouts_total 1\n") != std::string::npos);
  CHECK(after.call(http::verb::get, "/healthz").status == 200);
}

namespace {
// The reply is an error body whose code is in the node's table, with the
// status the table gives it; returns the code.
std::string coded(const reply& r) {
  const std::string code = troupe::test::code_of(r);
  INFO(r.status << " " << r.body);
  CHECK(!error_of(r).empty());
  bool listed = false;
  for (const net::http_error_code& c : net::node_http_error_codes())
    if (code == c.code) {
      listed = true;
      CHECK(r.status == c.status);
    }
  CHECK(listed);
  return code;
}
}  // namespace

TEST_CASE("the error codes are unique, snake_case, each with one status", "[http][node][errors]") {
  std::set<std::string> seen;
  for (const net::http_error_code& c : net::node_http_error_codes()) {
    INFO(c.code);
    CHECK(seen.insert(c.code).second);
    CHECK(c.status >= 400);
    CHECK(c.status <= 599);
    CHECK(std::string_view(c.meaning).size() > 10);
    for (char ch : std::string_view(c.code)) CHECK(((ch >= 'a' && ch <= 'z') || ch == '_'));
  }
  for (const net::http_error_code& c : net::http_error_codes()) CHECK(seen.count(c.code) == 1);
}

TEST_CASE("every error troupe-node's routes answer carries a code from the table",
          "[http][node][errors]") {
  net::node_instance node{node_args({"--lock-max-waiters-per-lock", "1"})};
  const unsigned short port = node.http_port();
  wait_for_locks(port);
  client c{port};
  auto post = [&](const std::string& target, const std::string& body) {
    return c.call(http::verb::post, target, body);
  };
  // Before routing, and routing.
  CHECK(coded(c.call(http::verb::get, "/api/v1/cluster/./x")) == "bad_request_target");
  CHECK(coded(c.call(http::verb::get, "/api/v1/ring/owner?key=a&key=b")) == "bad_query");
  CHECK(coded(c.call(http::verb::get, "/api/v1/nothing")) == "no_route");
  reply wrong_method = c.call(http::verb::delete_, "/api/v1/sagas/1");
  CHECK(coded(wrong_method) == "method_not_allowed");
  CHECK(wrong_method.header("allow") == "POST, GET");
  CHECK(c.call(http::verb::put, "/metrics").header("allow") == "GET");
  // Bodies and fields.
  CHECK(coded(post("/api/v1/locks/a/acquire", "{nope")) == "bad_request");
  CHECK(coded(post("/api/v1/locks/a/acquire", "[]")) == "bad_request");
  CHECK(coded(post("/api/v1/locks/a/acquire", R"({"owner":"o"})")) == "bad_field");
  CHECK(coded(c.call(http::verb::get, "/api/v1/ring/owner")) == "bad_field");
  // Locks.
  const std::string L = "/api/v1/locks/coded/";
  reply h = post(L + "acquire", R"({"owner":"h","ttl_ms":1000})");
  REQUIRE(h.status == 200);
  const std::string token = field_of(h, "token");
  // Within the lease (at most 1 s here) first; not_holder holds after it too.
  CHECK(coded(post(L + "acquire", R"({"owner":"h","ttl_ms":1000,"mode":"shared","token":")" +
                                      token + "\"}")) == "lock_mode_mismatch");
  CHECK(coded(post(L + "acquire", R"({"owner":"x","ttl_ms":1000})")) == "lock_held");
  CHECK(coded(post(L + "acquire", R"({"owner":"x","ttl_ms":1000,"wait_ms":20})")) ==
        "lock_wait_expired");
  CHECK(coded(post(L + "renew", R"({"owner":"x","token":")" + token + R"(","ttl_ms":100})")) ==
        "not_holder");
  CHECK(coded(post(L + "release", R"({"owner":"h","token":"12345"})")) == "not_holder");
  // Sagas.
  CHECK(coded(post("/api/v1/sagas/no.such.saga", R"({"input":{}})")) == "not_found");
  CHECK(coded(c.call(http::verb::get, "/api/v1/sagas/999999")) == "not_found");
  CHECK(coded(post("/api/v1/sagas/999999/cancel", "")) == "not_found");
  CHECK(coded(post("/api/v1/sagas/troupe.selftest", R"({"input":{"note":5}})")) == "bad_field");
  reply k1 = post("/api/v1/sagas/troupe.selftest", R"({"input":{},"idempotency_key":"k"})");
  REQUIRE(k1.status == 201);
  CHECK(coded(post("/api/v1/sagas/troupe.selftest",
                   R"({"input":{"note":"other"},"idempotency_key":"k"})")) ==
        "idempotency_conflict");
  const std::string done = std::to_string(finished_saga(c));
  CHECK(coded(post("/api/v1/sagas/" + done + "/cancel", "")) == "saga_finished");
}

TEST_CASE("a started saga's 201 says where it is (Location); the same key again is a 200",
          "[http][node][sagas]") {
  net::node_instance node{node_args()};
  client c{node.http_port()};
  reply s = c.call(http::verb::post, "/api/v1/sagas/troupe.selftest",
                   R"({"input":{},"idempotency_key":"loc"})");
  REQUIRE(s.status == 201);
  const std::string id = field_of(s, "id");
  CHECK(s.header("location") == "/api/v1/sagas/" + id);
  reply at = c.call(http::verb::get, s.header("location"));
  CHECK(at.status == 200);
  CHECK(field_of(at, "id") == id);
  reply again = c.call(http::verb::post, "/api/v1/sagas/troupe.selftest",
                       R"({"input":{},"idempotency_key":"loc"})");
  CHECK(again.status == 200);
  CHECK(field_of(again, "id") == id);
}

TEST_CASE("saga lists page by cursor: every saga once, in id order, next until the last page",
          "[http][node][sagas]") {
  net::node_instance node{node_args()};
  client c{node.http_port()};
  std::set<std::uint64_t> started;
  for (int i = 0; i < 7; ++i) started.insert(finished_saga(c));
  for (const std::string limit : {"1", "2", "3", "7", "100"}) {
    INFO("limit " << limit);
    std::vector<std::uint64_t> listed;
    std::string after;
    int pages = 0;
    for (;;) {
      REQUIRE(++pages <= 8);
      std::string target = "/api/v1/sagas?state=completed&limit=" + limit;
      if (!after.empty()) target += "&after=" + after;
      reply r = c.call(http::verb::get, target);
      REQUIRE(r.status == 200);
      const json::object page = json::parse(r.body).as_object();
      const json::array& sagas = page.at("sagas").as_array();
      CHECK(sagas.size() <= std::stoull(limit));
      for (const auto& s : sagas)
        listed.push_back(std::stoull(std::string(s.at("id").as_string())));
      if (!page.contains("next")) break;
      CHECK(sagas.size() == std::stoull(limit));  // only full pages have a next
      after = std::string(page.at("next").as_string());
      CHECK(after == std::to_string(listed.back()));
    }
    CHECK(std::is_sorted(listed.begin(), listed.end()));
    CHECK(std::set<std::uint64_t>(listed.begin(), listed.end()).size() == listed.size());
    CHECK(std::set<std::uint64_t>(listed.begin(), listed.end()) == started);
  }
  // Past the last saga: an empty page, no next.
  reply past = c.call(http::verb::get,
                      "/api/v1/sagas?state=completed&after=" + std::to_string(*started.rbegin()));
  REQUIRE(past.status == 200);
  CHECK(json::parse(past.body).at("sagas").as_array().empty());
  CHECK_FALSE(json::parse(past.body).as_object().contains("next"));
}

namespace {
// "/api/v1/locks/{name}/acquire" -> "/api/v1/locks/{}/acquire": OpenAPI
// allows one path item per shape, the gateway's patterns may name one
// segment differently by method (/api/v1/sagas/{definition} and {id}).
std::string shape(std::string p) {
  for (std::size_t a = p.find('{'); a != std::string::npos; a = p.find('{', a + 2))
    p.erase(a + 1, p.find('}', a) - a - 1);
  return p;
}
}  // namespace

TEST_CASE("the served OpenAPI document describes exactly the node's routes",
          "[http][node][openapi]") {
  net::node_instance node{node_args()};
  client c{node.http_port()};
  reply r = c.call(http::verb::get, "/openapi.json");
  REQUIRE(r.status == 200);
  CHECK(r.body == net::node_openapi_json());
  boost::system::error_code ec;
  json::value doc = json::parse(r.body, ec);
  REQUIRE_FALSE(ec);
  REQUIRE(doc.is_object());
  CHECK(std::string(doc.at("openapi").as_string()).starts_with("3.0."));
  REQUIRE(doc.at("info").at("title").is_string());

  std::set<std::string> served, documented;
  for (const net::http_route_info& route : node.http().routes())
    served.insert(std::string(http::to_string(route.method)) + " " + shape(route.pattern));
  static const std::set<std::string> methods = {"get",     "put",  "post",  "delete",
                                                "options", "head", "patch", "trace"};
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    for (const auto& [method, op] : item.as_object()) {
      if (!methods.count(std::string(method))) continue;
      std::string m(method);
      for (char& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      documented.insert(m + " " + shape(std::string(path)));
      INFO(m << " " << std::string(path));
      // Every {name} of the path is a declared path parameter.
      std::set<std::string> declared;
      if (op.as_object().contains("parameters"))
        for (const auto& p : op.at("parameters").as_array())
          if (p.at("in").as_string() == "path")
            declared.insert(std::string(p.at("name").as_string()));
      std::set<std::string> in_path;
      const std::string ps(path);
      for (std::size_t a = ps.find('{'); a != std::string::npos; a = ps.find('{', a + 1))
        in_path.insert(ps.substr(a + 1, ps.find('}', a) - a - 1));
      CHECK(declared == in_path);
      // Responses: a success and errors with the error schema.
      const json::object& responses = op.at("responses").as_object();
      CHECK(responses.contains("200"));
      CHECK(responses.contains("405"));
    }
  }
  CHECK(served == documented);  // every route documented, every documented route served

  // The error schema's codes are the node's table.
  std::set<std::string> enum_codes, table;
  for (const auto& v : doc.at("components")
                           .at("schemas")
                           .at("Error")
                           .at("properties")
                           .at("code")
                           .at("enum")
                           .as_array())
    enum_codes.insert(std::string(v.as_string()));
  for (const net::http_error_code& e : net::node_http_error_codes()) table.insert(e.code);
  CHECK(enum_codes == table);
}

TEST_CASE("troupe-node's /metrics counts requests by route, method and status with latencies",
          "[http][node][metrics]") {
  net::node_instance node{node_args()};
  const unsigned short port = node.http_port();
  wait_for_locks(port);
  client c{port};
  REQUIRE(c.call(http::verb::post, "/api/v1/locks/m1/acquire", R"({"owner":"o","ttl_ms":100})")
              .status == 200);
  REQUIRE(c.call(http::verb::get, "/nowhere").status == 404);
  REQUIRE(c.call(http::verb::get, "/healthz").status == 200);
  const std::string m = c.call(http::verb::get, "/metrics").body;
  for (const char* line :
       {"# TYPE troupe_http_requests_total counter\n",
        "troupe_http_requests_total{route=\"/api/v1/locks/{name}/acquire\",method=\"POST\","
        "status=\"200\"} ",
        "troupe_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n",
        "troupe_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1\n",
        "# TYPE troupe_http_request_duration_seconds histogram\n",
        "troupe_http_request_duration_seconds_bucket{route=\"/"
        "healthz\",method=\"GET\",le=\"0.0005\"} ",
        "troupe_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"10\"} "
        "1\n",
        "troupe_http_request_duration_seconds_bucket{route=\"/"
        "healthz\",method=\"GET\",le=\"+Inf\"} 1\n",
        "troupe_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\"} 1\n",
        "troupe_http_request_duration_seconds_sum{route=\"/healthz\",method=\"GET\"} ",
        "troupe_http_client_errors_total ", "troupe_lock_grants_total "}) {
    INFO(line);
    CHECK(m.find(line) != std::string::npos);
  }
  // One family each: no sample of a family outside its block.
  CHECK(m.find("# TYPE troupe_http_requests_total") ==
        m.rfind("# TYPE troupe_http_requests_total"));
  CHECK(m.find("\ntroupe_http_requests_total ") == std::string::npos);  // no unlabelled total
}

TEST_CASE("a free lock in a slot that does not grant yet is a 503 slot_recovering, never held",
          "[http][node][locks]") {
  SECTION("a first start without --expect waits its lock-delay, and says how long") {
    net::node_instance node{{"--name", "n1", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                             "--lock-max-ttl-ms", "4000"}};
    client c{node.http_port()};
    reply r =
        c.call(http::verb::post, "/api/v1/locks/fresh/acquire", R"({"owner":"a","ttl_ms":100})");
    REQUIRE(r.status == 503);
    CHECK(troupe::test::code_of(r) == "slot_recovering");
    const std::int64_t ms = std::stoll(field_of(r, "recovering_ms"));
    CHECK(ms > 0);
    CHECK(ms <= 4001);
    const int after = std::stoi(r.header("retry-after"));
    CHECK(after >= 1);
    CHECK(after <= 5);
    CHECK(c.call(http::verb::get, "/metrics").body.find("troupe_lock_slots_recovering 256\n") !=
          std::string::npos);
    wait_for_locks(node.http_port());
  }
  SECTION(
      "with --expect and a data dir: fresh, it grants at once; restarted, it waits only "
      "for the leases it granted") {
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("troupe-lease-test-" + std::to_string(::getpid())))
                                .string();
    std::filesystem::remove_all(dir);
    const std::vector<std::string> args{
        "--name",   "n1", "--listen",          "127.0.0.1:0", "--http",     "127.0.0.1:0",
        "--expect", "1",  "--lock-max-ttl-ms", "4000",        "--data-dir", dir};
    {
      net::node_instance node{args};
      client c{node.http_port()};
      reply r;
      // Not after the 4 s lock-delay: the first answer once the node has
      // ticked into its majority (of one) is a grant.
      REQUIRE(eventually([&] {
        r = c.call(http::verb::post, "/api/v1/locks/l/acquire", R"({"owner":"a","ttl_ms":1500})");
        return r.status != 503 || troupe::test::code_of(r) != "not_in_majority";
      }));
      REQUIRE(r.status == 200);
    }
    // Restarted at once: the 1.5 s lease it granted may still run.
    net::node_instance again{args};
    client c{again.http_port()};
    reply r;
    REQUIRE(eventually([&] {
      r = c.call(http::verb::post, "/api/v1/locks/m/acquire", R"({"owner":"b","ttl_ms":100})");
      return r.status != 503 || troupe::test::code_of(r) != "not_in_majority";
    }));
    CHECK(r.status == 503);
    CHECK(troupe::test::code_of(r) == "slot_recovering");
    CHECK(std::stoll(field_of(r, "recovering_ms")) <=
          1500 + 1000 + 1);  // the lease, the mark's slack
    wait_for_locks(again.http_port());
    std::filesystem::remove_all(dir);
  }
}
