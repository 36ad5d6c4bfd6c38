// SPDX-License-Identifier: BSL-1.0
// troupe-node's HTTP routes in this process (node_instance): every field
// against its range (node_http_fields, the one table), lock holders that must
// prove themselves, and the caps on lock waiters and queued sagas.

#include <boost/json.hpp>
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
  CHECK(m.status == 408);
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
  CHECK(over.read_only().status == 503);
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
  CHECK(error_of(r).find("--http-handler-timeout-ms") != std::string::npos);
  CHECK(r.closed);
  client after{port};
  reply m = after.call(http::verb::get, "/metrics");
  CHECK(m.body.find("troupe_http_handler_timeouts_total 1\n") != std::string::npos);
  CHECK(after.call(http::verb::get, "/healthz").status == 200);
}
