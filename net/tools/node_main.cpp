// SPDX-License-Identifier: BSL-1.0
// node_main: one troupe node per process — cluster link, ring-router,
// lock-manager, saga orchestrator and the HTTP/JSON gateway (docs/node.md),
// plus the extensions an application adds (troupe/net/node_main.hpp).

#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <troupe/actors/locks.hpp>
#include <troupe/actors/router.hpp>
#include <troupe/core.hpp>
#include <troupe/net/http.hpp>
#include <troupe/net/node.hpp>
#include <troupe/net/node_main.hpp>
#include <troupe/net/prometheus.hpp>
#include <troupe/saga.hpp>
#include <troupe/version.hpp>

#include "prom_text.hpp"

namespace net = troupe::net;
namespace saga = troupe::saga;
namespace actors = troupe::actors;
namespace json = boost::json;
using troupe::result;
using troupe::task;
using namespace std::chrono_literals;

namespace {

class node_log;

struct config {
  std::string name;
  std::string cluster = "troupe";
  net::endpoint listen{"127.0.0.1", 7000};
  std::vector<net::endpoint> seeds;
  net::endpoint http{"127.0.0.1", 8080};
  std::string data_dir;
  std::optional<std::string> secret;
  std::optional<std::string> http_token;
  net::node_options link_caps;  // only its cluster-link caps are read (link_cap_flags)
  net::tls_options tls;         // --tls-cert, --tls-key, --tls-ca: links and gateway
  unsigned shards = 2;
  std::chrono::milliseconds lock_max_ttl{60'000};
  std::size_t expect = 0;                      // --expect: the majority rule's cluster size
  std::chrono::milliseconds heartbeat{250};    // --heartbeat-ms
  std::chrono::milliseconds down_after{1500};  // --down-after-ms
  std::chrono::milliseconds down_max{0};       // --down-max-ms
  double phi_threshold = 8.0;                  // --phi-threshold
  // The gateway's, the lock-manager's and the orchestrator's caps (their
  // options structs' defaults unless a flag says otherwise).
  net::http_options http_caps;
  actors::lock_options lock_caps;
  std::size_t saga_max_running = saga::orchestrator_options{}.max_active;
  std::size_t saga_max_queued = saga::orchestrator_options{}.max_queued;
  std::vector<net::node_extension> extensions;
  troupe::log_level log_level = troupe::log_level::info;
  bool log_json = false;
  std::shared_ptr<const node_log> log;  // made by parse_flags
};

// --- logs ------------------------------------------------------------------------------
//
// Every record goes to stderr through spdlog, one line each: text
//   2026-12-03T13:40:00.123Z info n1 link: n1 <-> n2 closed: ...
// or with --log-format json one object per line
//   {"ts":"2026-12-03T13:40:00.123456Z","level":"info","node":"n1","component":"link","msg":"..."}
// (plus "suppressed": N when the runtime held repeats back). Time is UTC.

spdlog::level::level_enum spdlog_level(troupe::log_level l) {
  switch (l) {
    case troupe::log_level::trace:
      return spdlog::level::trace;
    case troupe::log_level::debug:
      return spdlog::level::debug;
    case troupe::log_level::info:
      return spdlog::level::info;
    case troupe::log_level::warn:
      return spdlog::level::warn;
    case troupe::log_level::error:
      return spdlog::level::err;
    case troupe::log_level::off:
      break;
  }
  return spdlog::level::off;
}

// troupe-node's log: the runtime's records and the node's own lines.
class node_log {
 public:
  node_log(std::string node, troupe::log_level level, bool json)
      // Not in spdlog's registry: several nodes may live in one process (tests).
      : node_(std::move(node)),
        json_(json),
        logger_(std::make_shared<spdlog::logger>(
            "troupe-node", std::make_shared<spdlog::sinks::stderr_sink_mt>())) {
    logger_->set_pattern(
        json ? R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})" : "%Y-%m-%dT%H:%M:%S.%eZ %l %v",
        spdlog::pattern_time_type::utc);
    logger_->set_level(spdlog_level(level));
    logger_->flush_on(spdlog::level::trace);  // line by line: pipes and journald read it live
  }

  void write(const troupe::log_record& r) const {
    const spdlog::level::level_enum level = spdlog_level(r.level);
    if (!logger_->should_log(level)) return;
    std::string line;
    if (json_) {
      json::object o;
      o["node"] = node_;
      o["component"] = r.component;
      o["msg"] = r.message;
      if (r.suppressed != 0) o["suppressed"] = r.suppressed;
      line = json::serialize(o);
      line = line.substr(1, line.size() - 2);  // the fields after ts and level
    } else {
      line.append(node_).append(" ").append(r.component).append(": ").append(r.message);
      if (r.suppressed != 0)
        line += " (and " + std::to_string(r.suppressed) + " more like it held back)";
    }
    logger_->log(level, "{}", line);
  }
  void say(troupe::log_level level, std::string_view component, std::string_view message) const {
    write(troupe::log_record{level, component, message, 0});
  }

 private:
  std::string node_;
  bool json_;
  std::shared_ptr<spdlog::logger> logger_;
};

// One line on stderr, then the exit code: every start-up error looks the same.
int fail(int code, const std::string& line) {
  std::cerr << "troupe-node: " << line << "\n";
  return code;
}

// The shortest secret (or token) accepted from a file.
constexpr std::size_t secret_min_bytes = 16;

// A secret from a file only its owner may read, of at least secret_min_bytes.
std::optional<std::string> read_secret(const std::string& path, std::string& error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = "cannot stat " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    error = path + " is open to group or others; run `chmod 600 " + path + "`";
    return std::nullopt;
  }
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.empty()) {
    error = path + " is empty";
    return std::nullopt;
  }
  if (s.size() < secret_min_bytes) {
    error = path + " holds " + std::to_string(s.size()) + " bytes; a secret needs at least " +
            std::to_string(secret_min_bytes) + " (e.g. `head -c 32 /dev/urandom | base64 > " +
            path + "`)";
    return std::nullopt;
  }
  return s;
}

// The caps on cluster links (docs/security.md), as flags into node_options.
struct link_cap_flags {
  long long handshake_timeout_ms = 5000;
  long long relay_timeout_ms = 120'000;
  void add(CLI::App& app, net::node_options& o) {
    app.add_option("--handshake-timeout-ms", handshake_timeout_ms,
                   "a cluster connection must authenticate within this")
        ->check(CLI::Range(100LL, 600'000LL))
        ->capture_default_str();
    app.add_option("--handshake-max-frame", o.handshake_max_frame,
                   "bytes a frame may have before the connection authenticates")
        ->check(CLI::Range(512u, 1u << 20))
        ->capture_default_str();
    app.add_option("--max-handshakes", o.max_handshakes,
                   "cluster connections authenticating at once; more are closed at once")
        ->check(CLI::Range(std::size_t{1}, std::size_t{65536}))
        ->capture_default_str();
    app.add_option("--link-max-outbound", o.max_outbound,
                   "bytes a link may hold for a peer that is not reading; sends beyond fail")
        ->check(CLI::Range(std::size_t{64} << 10, std::size_t{1} << 32))
        ->capture_default_str();
    app.add_option("--max-peers", o.max_peers, "peers linked at once")
        ->check(CLI::Range(std::size_t{1}, std::size_t{65536}))
        ->capture_default_str();
    app.add_option("--max-relays", o.max_relays,
                   "forwarded asks awaiting a reply; beyond, routed asks are served here")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24))
        ->capture_default_str();
    app.add_option("--relay-timeout-ms", relay_timeout_ms,
                   "how long a forwarded ask's reply is awaited")
        ->check(CLI::Range(100LL, 86'400'000LL))
        ->capture_default_str();
  }
  void apply(net::node_options& o) const {
    o.handshake_timeout = std::chrono::milliseconds(handshake_timeout_ms);
    o.relay_timeout = std::chrono::milliseconds(relay_timeout_ms);
  }
};
void add_tls_flags(CLI::App& app, net::tls_options& tls) {
  app.add_option("--tls-cert", tls.cert_file,
                 "PEM certificate naming this node: mutual TLS on links, HTTPS on the gateway");
  app.add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-ca", tls.ca_file, "PEM CA certificate that peers' certificates chain to");
}

// All three TLS files or none, each readable and valid: checked before
// anything starts, so a mistake is one line and exit code 2.
bool check_tls(const net::tls_options& tls, std::string& error) {
  if (!tls.enabled()) return true;
  try {
    (void)net::make_tls_context(tls, net::tls_role::cluster);
  } catch (const std::invalid_argument& e) {
    error = e.what();
    return false;
  }
  return true;
}

bool writable_dir(const std::string& dir, std::string& error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error = "--data-dir " + dir + " cannot be created: " + ec.message();
    return false;
  }
  const std::string probe = dir + "/.troupe-write-test-" + std::to_string(::getpid());
  std::ofstream f(probe);
  if (!f) {
    error = "--data-dir " + dir + " is not writable: " + std::strerror(errno);
    return false;
  }
  f.close();
  std::filesystem::remove(probe, ec);
  return true;
}

// The command line with the environment's TROUPE_<FLAG> variables (the long
// flag's name in upper case, dashes as underscores: TROUPE_LOCK_MAX_TTL_MS)
// added as flags, except those given on the command line: a flag beats its
// variable, which beats the --config file (CLI11 reads the file only for
// flags not given otherwise). In CLI11's order for parse(): reversed.
// `from_env` lists the variables used, for error messages.
std::vector<std::string> with_environment(const CLI::App& app, int argc, char** argv,
                                          std::vector<std::string>& from_env) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::vector<std::string> given = args;
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_lnames().empty()) continue;
    const std::string& flag = o->get_lnames().front();
    if (flag == "help" || flag == "version") continue;
    std::string var = "TROUPE_";
    for (char ch : flag)
      var += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    const std::string dashed = "--" + flag;
    const bool on_command_line = std::any_of(given.begin(), given.end(), [&](const std::string& a) {
      return a == dashed || a.rfind(dashed + "=", 0) == 0;
    });
    if (on_command_line) continue;
    args.push_back(dashed + "=" + value);
    from_env.push_back(var);
  }
  std::reverse(args.begin(), args.end());
  return args;
}

// Lock errors as HTTP errors (status and code; node_http_error_codes()). A
// wait that ran out is a 409 like a busy lock, not a 408: the request did
// not time out, the lock stayed held for all of the wait it asked for.
net::http_response lock_error(actors::lock_errc e) {
  using actors::lock_errc;
  const std::string message = make_error_code(e).message();
  switch (e) {
    case lock_errc::timeout:
      return net::json_error(409, "lock_wait_expired", message);
    case lock_errc::busy:
      return net::json_error(409, "lock_held", message);
    case lock_errc::wrong_token:
    case lock_errc::not_holder:
    case lock_errc::expired:
    case lock_errc::revoked:
      return net::json_error(409, "not_holder", message);
    case lock_errc::mode_mismatch:
      return net::json_error(409, "lock_mode_mismatch", message);
    case lock_errc::not_owner:
      return net::json_error(503, "unavailable", message);
    case lock_errc::too_many_waiters:
      return net::json_error(429, "too_many_waiters", message);
    case lock_errc::no_majority:
      return net::json_error(503, "not_in_majority", message);
    case lock_errc::recovering:
      return net::json_error(503, "slot_recovering", message);
    default:
      return net::json_error(400, "bad_field", message);
  }
}

// --- the fields of the HTTP routes and their ranges ----------------------------------
// Every route checks its fields against node_http_fields() (the one table;
// docs/security.md mirrors it) before any value is used.

constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t http_wait_max_ms = 60'000;  // lock waits and saga long polls
constexpr std::size_t saga_input_max = 64 * 1024;

const net::http_field_rule& field_rule(const std::vector<net::http_field_rule>& t,
                                       std::string_view route, std::string_view field) {
  for (const auto& r : t)
    if (route == r.route && field == r.field) return r;
  throw std::logic_error("troupe-node: no field rule for " + std::string(route) + " " +
                         std::string(field));
}

// What a value of the field must be, as an error message says it.
std::string field_range(const net::http_field_rule& r) {
  const std::string lo = std::to_string(r.min), hi = std::to_string(r.max);
  const std::string_view type = r.type;
  if (type == "integer") return "an integer from " + lo + " to " + hi;
  if (type == "token")
    return "an integer from " + lo + " to " + hi + ", or one as a decimal string";
  if (type == "string") return "a string of " + lo + " to " + hi + " bytes";
  if (type == "object") return "a JSON object of at most " + hi + " bytes";
  std::string v = r.values;
  for (char& c : v)
    if (c == '|') c = '/';
  return "one of " + v;
}

std::string field_label(const net::http_field_rule& r) {
  const std::string_view where = r.where;
  return (where == "body"    ? "field '"
          : where == "query" ? "query parameter '"
                             : "path parameter '") +
         std::string(r.field) + "'";
}

net::http_response field_error(const net::http_field_rule& r) {
  return net::json_error(400, "bad_field", field_label(r) + " must be " + field_range(r));
}

// A required field that is absent.
net::http_response missing_field(const net::http_field_rule& r) {
  return net::json_error(400, "bad_field",
                         "missing " + field_label(r) + " (" + field_range(r) + ")");
}

// A decimal text of digits only (no sign, no spaces) within the rule's range.
std::optional<std::uint64_t> decimal_in(std::string_view s, const net::http_field_rule& r) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v < r.min || v > r.max) return std::nullopt;
  return v;
}

// A body field that is an integer (or a token) in range. Absent and not
// required: nothing, with err untouched (status 200).
std::optional<std::uint64_t> body_uint(const json::object& o, const net::http_field_rule& r,
                                       net::http_response& err) {
  auto it = o.find(r.field);
  if (it == o.end()) {
    if (r.required) err = missing_field(r);
    return std::nullopt;
  }
  const json::value& v = it->value();
  std::optional<std::uint64_t> out;
  if (v.is_uint64()) {
    out = v.as_uint64();
  } else if (v.is_int64() && v.as_int64() >= 0) {
    out = static_cast<std::uint64_t>(v.as_int64());
  } else if (v.is_string() && std::string_view(r.type) == "token") {
    out = decimal_in(std::string_view(v.as_string()), r);
  }
  if (!out || *out < r.min || *out > r.max) {
    err = field_error(r);
    return std::nullopt;
  }
  return out;
}

// A body field that is a string of the rule's length (or one of an enum's values).
std::optional<std::string> body_string(const json::object& o, const net::http_field_rule& r,
                                       net::http_response& err) {
  auto it = o.find(r.field);
  if (it == o.end()) {
    if (r.required) err = missing_field(r);
    return std::nullopt;
  }
  if (!it->value().is_string()) {
    err = field_error(r);
    return std::nullopt;
  }
  std::string s(it->value().as_string());
  bool ok = false;
  if (std::string_view(r.type) == "enum") {
    std::string_view vals = r.values;
    while (!ok) {
      const std::size_t bar = vals.find('|');
      ok = vals.substr(0, bar) == s;
      if (bar == std::string_view::npos) break;
      vals.remove_prefix(bar + 1);
    }
  } else {
    ok = s.size() >= r.min && s.size() <= r.max;
  }
  if (!ok) {
    err = field_error(r);
    return std::nullopt;
  }
  return s;
}

// A path parameter or a query parameter (already decoded): a string of the
// rule's length, or an integer in its range. Query: absent and not required
// is nothing with err untouched.
std::optional<std::string> text_param(const std::string* v, const net::http_field_rule& r,
                                      net::http_response& err) {
  if (!v) {
    if (r.required) err = missing_field(r);
    return std::nullopt;
  }
  bool ok = false;
  const std::string_view type = r.type;
  if (type == "integer") {
    ok = decimal_in(*v, r).has_value();
  } else if (type == "enum") {
    std::string_view vals = r.values;
    while (!ok) {
      const std::size_t bar = vals.find('|');
      ok = vals.substr(0, bar) == *v;
      if (bar == std::string_view::npos) break;
      vals.remove_prefix(bar + 1);
    }
  } else {
    ok = v->size() >= r.min && v->size() <= r.max;
  }
  if (!ok) {
    err = field_error(r);
    return std::nullopt;
  }
  return *v;
}

const std::string* query_of(const net::http_request& r, const char* name) {
  auto it = r.query_params.find(name);
  return it == r.query_params.end() ? nullptr : &it->second;
}
const std::string* param_of(const net::http_request& r, const char* name) {
  auto it = r.params.find(name);
  return it == r.params.end() ? nullptr : &it->second;
}

// 429 / 503 for a refusal at a cap: the client may come back.
net::http_response retry_later(unsigned status, std::string_view code, std::string_view message) {
  net::http_response r = net::json_error(status, code, message);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

// The built-in diagnostic saga "troupe.selftest": three steps, each asking a
// local participant that acknowledges the step's idempotency key. It lets a
// bare node (and its benchmark) run real, durable sagas over HTTP.
struct selftest_ctx {
  std::string note;
  std::uint32_t steps_done = 0;
  template <class A>
  void serialize(A& a) {
    a(note, steps_done);
  }
};
// Its input: {"note": "..."} (optional).
result<selftest_ctx> parse_selftest(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return troupe::failure<selftest_ctx>(saga::saga_errc::malformed_input);
  selftest_ctx c;
  if (auto it = v.as_object().find("note"); it != v.as_object().end()) {
    if (!it->value().is_string())
      return troupe::failure<selftest_ctx>(saga::saga_errc::malformed_input);
    c.note = std::string(it->value().as_string());
  }
  return c;
}
struct selftest_step {
  std::string key;
};
struct selftest_participant : troupe::actor {
  // Acknowledges a step; it keeps no per-saga state, so a node can run any
  // number of self-test sagas without growing.
  bool handle(const selftest_step& s) {
    ++steps_;
    return !s.key.empty();
  }
  std::uint64_t steps_ = 0;
};
std::shared_ptr<saga::definition<selftest_ctx>> selftest_definition(
    troupe::actor_ref<selftest_participant> p) {
  auto def = std::make_shared<saga::definition<selftest_ctx>>("troupe.selftest");
  def->input_parser(&parse_selftest);
  for (const char* name : {"one", "two", "three"}) {
    def->step(name)
        .action([p](selftest_ctx& c, saga::step_call call) -> task<saga::step_result> {
          selftest_step s{std::move(call.idempotency_key)};
          auto ask = p.ask(std::move(s), 2s);
          result<bool> ok = co_await ask;
          if (!ok) co_return ok.error();
          ++c.steps_done;
          co_return saga::step_result{};
        })
        .compensate([](selftest_ctx&, saga::step_call) -> task<saga::step_result> {
          co_return saga::step_result{};
        })
        .retry({.initial = 10ms, .multiplier = 2, .max_interval = 1s, .max_attempts = 3})
        .timeout(5s);
  }
  return def;
}

// Calls its function once, when the first peer link is up: on a member
// event, or found up by `check` (a link may come up before the subscription).
struct ready_watch : troupe::actor {
  struct check {
    net::node* n;
  };
  explicit ready_watch(std::function<void()> f) : on_ready(std::move(f)) {}
  void handle(const net::member_event& e) {
    if (e.up) fire();
  }
  task<void> handle(check c) {
    auto call = c.n->state_of(5s);
    result<net::cluster_state> st = co_await std::move(call);
    if (st)
      for (const auto& m : st->members)
        if (m.up) fire();
  }
  void fire() {
    if (!on_ready) return;
    auto f = std::move(on_ready);
    on_ready = nullptr;
    f();
  }
  std::function<void()> on_ready;
};

// One per shard: reports its shard's mailboxes for /metrics.
struct mailbox_probe_q {};
struct shard_probe : troupe::actor {
  troupe::mailbox_stats handle(mailbox_probe_q) { return troupe::runtime::shard_mailboxes(); }
};

std::int64_t to_ms(std::int64_t ns) { return ns / 1'000'000; }

// The orchestrator answers result<T>: an ask of it yields result<result<T>>.
template <class T>
result<T> flat(result<result<T>> r) {
  if (!r) return troupe::failure<T>(r.error());
  return std::move(*r);
}

json::object saga_json(const saga::saga_record& r) {
  json::object o;
  o["id"] = std::to_string(r.id);
  o["type"] = r.type;
  o["state"] = std::string(saga::to_string(r.state));
  if (!r.idempotency_key.empty()) o["idempotency_key"] = r.idempotency_key;
  if (!r.error.empty()) o["error"] = r.error;
  o["created_ms"] = to_ms(r.created_ns);
  o["updated_ms"] = to_ms(r.updated_ns);
  json::array steps;
  for (const auto& s : r.steps) {
    json::object j;
    j["name"] = s.name;
    j["status"] = std::string(saga::to_string(s.status));
    j["attempts"] = s.attempts;
    j["compensation_attempts"] = s.compensation_attempts;
    if (!s.last_error.empty()) j["last_error"] = s.last_error;
    if (s.started_ns) j["started_ms"] = to_ms(s.started_ns);
    if (s.finished_ns) j["finished_ms"] = to_ms(s.finished_ns);
    steps.push_back(std::move(j));
  }
  o["steps"] = std::move(steps);
  json::array history;
  for (const auto& e : r.history) {
    json::object j;
    j["at_ms"] = to_ms(e.at_ns);
    j["event"] = std::string(saga::to_string(e.kind));
    if (e.step >= 0 && static_cast<std::size_t>(e.step) < r.steps.size())
      j["step"] = r.steps[static_cast<std::size_t>(e.step)].name;
    if (e.attempt) j["attempt"] = e.attempt;
    if (!e.detail.empty()) j["detail"] = e.detail;
    history.push_back(std::move(j));
  }
  o["history"] = std::move(history);
  o["history_dropped"] = r.history_dropped;
  return o;
}

// Saga errors as HTTP errors (status and code; node_http_error_codes()).
net::http_response saga_error(const boost::system::error_code& ec) {
  const std::string message = ec.message();
  if (ec == saga::saga_errc::unknown_saga_type || ec == saga::saga_errc::not_found)
    return net::json_error(404, "not_found", message);
  if (ec == saga::saga_errc::malformed_input) return net::json_error(400, "bad_field", message);
  if (ec == saga::saga_errc::idempotency_conflict)
    return net::json_error(409, "idempotency_conflict", message);
  if (ec == saga::saga_errc::not_running) return net::json_error(409, "saga_finished", message);
  if (ec == saga::saga_errc::overloaded) return net::json_error(503, "overloaded", message);
  if (ec.category() == troupe::troupe_category())
    return net::json_error(net::http_status_for(ec), message);
  return net::json_error(500, "internal", message);
}

class node_app {
 public:
  explicit node_app(const config& c)
      : cfg_(c),
        rt_(runtime_options(c)),
        node_(rt_, node_options(c)),
        router_(node_),
        service_(node_, router_, lock_options(c)) {
    http_.emplace(rt_, http_options(c));
    try {
      start_probes();
      start_extensions();
      start_sagas(c);
      add_routes();
      http_->start();
    } catch (...) {
      http_.reset();
      stop_extensions();
      throw;
    }
  }

  ~node_app() {
    // Stop taking requests first, then the orchestrator: unfinished sagas
    // stay in the store, resumable by the next start (recover). Then the
    // extensions, newest first, while the runtime still runs.
    http_.reset();
    orchestrator_.stop();
    stop_extensions();
  }

  /// Ready: the gateway serves (this answer is proof), the saga store is
  /// open and its unfinished sagas resumed (both done before the
  /// constructor returns), and the node is in a cluster: with seeds, linked
  /// to at least one peer; without, it is the first node and needs none.
  /// The body says which check fails. Also what sd_notify's READY=1 waits for.
  task<net::http_response> readiness() {
    json::object checks;
    checks["gateway"] = "ok";
    checks["saga_store"] = store_ ? "ok" : "not open";
    checks["sagas_resumed"] = "ok: " + std::to_string(resumed_) + " resumed at start";
    bool ready = store_ != nullptr;
    if (cfg_.seeds.empty()) {
      checks["cluster"] = "ok: no seeds, this node starts the cluster";
    } else {
      auto call = node_.state_of(2s);
      result<net::cluster_state> st = co_await std::move(call);
      std::size_t up = 0;
      if (st)
        for (const auto& m : st->members) up += m.up ? 1 : 0;
      if (!st) {
        checks["cluster"] = "unknown: " + st.error().message();
        ready = false;
      } else if (up == 0) {
        checks["cluster"] =
            "waiting: linked to no peer yet (seeds: " + std::to_string(cfg_.seeds.size()) + ")";
        ready = false;
      } else {
        checks["cluster"] = "ok: linked to " + std::to_string(up) + " peers";
      }
    }
    json::object o;
    o["ready"] = ready;
    o["checks"] = std::move(checks);
    if (ready) co_return net::json_reply(o);
    // Not ready: an error like any other (with Retry-After), and the checks.
    o["error"] = "not ready: a check fails (see checks)";
    o["code"] = "not_ready";
    co_return net::json_reply(o, 503);
  }

  /// Calls `on_ready` once, on shard 0, when the node first becomes ready
  /// (as readiness() would say): at once without seeds, else when the first
  /// peer's link is up.
  void when_ready(std::function<void()> on_ready) {
    if (cfg_.seeds.empty()) {
      on_ready();
      return;
    }
    troupe::spawn_options so;
    so.shard = 0;
    ready_watch_ = rt_.spawn<ready_watch>(so, std::move(on_ready));
    node_.subscribe(ready_watch_);
    (void)ready_watch_.tell(ready_watch::check{&node_});
  }

  unsigned short cluster_port() const { return node_.port(); }
  unsigned short http_port() const { return http_->port(); }
  const net::http_gateway& http() const { return *http_; }

 private:
  static troupe::runtime_options runtime_options(const config& c) {
    troupe::runtime_options o;
    o.shards = c.shards;
    o.min_log_level = c.log_level;
    o.log = [log = c.log](const troupe::log_record& r) { log->write(r); };
    return o;
  }
  static net::node_options node_options(const config& c) {
    net::node_options o;
    o.name = c.name;
    o.cluster = c.cluster;
    o.listen = c.listen;
    o.seeds = c.seeds;
    o.secret = c.secret;
    o.expect = c.expect;
    o.heartbeat = c.heartbeat;
    o.down_after = c.down_after;
    o.down_max = c.down_max;
    o.phi_threshold = c.phi_threshold;
    o.handshake_timeout = c.link_caps.handshake_timeout;
    o.handshake_max_frame = c.link_caps.handshake_max_frame;
    o.max_handshakes = c.link_caps.max_handshakes;
    o.max_outbound = c.link_caps.max_outbound;
    o.max_peers = c.link_caps.max_peers;
    o.max_relays = c.link_caps.max_relays;
    o.relay_timeout = c.link_caps.relay_timeout;
    o.tls = c.tls;
    return o;
  }
  static actors::lock_options lock_options(const config& c) {
    actors::lock_options o = c.lock_caps;
    o.max_ttl = c.lock_max_ttl;
    if (!c.data_dir.empty()) o.lease_file = c.data_dir + "/locks.lease";
    return o;
  }
  static net::http_options http_options(const config& c) {
    net::http_options o = c.http_caps;
    o.listen = c.http;
    o.token = c.http_token;
    o.tls = c.tls;
    // On the node's shard: a request that asks the lock-manager or routes by
    // key then hands off within one thread (a cross-shard hop to a parked
    // shard costs a ~23 us wake-up each way).
    o.shard = 0;
    return o;
  }

  void start_extensions() {
    net::node_context ctx{rt_, node_, router_, *http_, *types_, cfg_.name, cfg_.data_dir};
    for (auto& e : cfg_.extensions) {
      if (!e.start) continue;
      try {
        e.start(ctx);
      } catch (const std::exception& x) {
        throw std::runtime_error(e.name + ": " + x.what());
      }
      started_.push_back(&e);
    }
  }

  void stop_extensions() {
    for (auto it = started_.rbegin(); it != started_.rend(); ++it)
      if ((*it)->stop) (*it)->stop();
    started_.clear();
  }

  void start_probes() {
    for (unsigned i = 0; i < rt_.shard_count(); ++i) {
      troupe::spawn_options so;
      so.shard = static_cast<int>(i);
      probes_.push_back(rt_.spawn<shard_probe>(so));
    }
  }

  void start_sagas(const config& c) {
    troupe::spawn_options so;
    so.shard = 0;
    participant_ = rt_.spawn<selftest_participant>(so);
    types_->add(selftest_definition(participant_));
    if (!c.data_dir.empty()) {
      store_ = std::make_shared<saga::sqlite_store>(
          saga::sqlite_store_options{.path = c.data_dir + "/sagas.db"});
    } else {
      store_ = std::make_shared<saga::memory_store>();
      rt_.log(troupe::log_level::warn, "troupe-node",
              "no --data-dir: sagas are kept in memory and lost when the node stops");
    }
    orchestrator_ = rt_.spawn<saga::orchestrator>(
        so, saga::orchestrator_options{.store = store_,
                                       .types = types_,
                                       .max_active = c.saga_max_running,
                                       .max_queued = c.saga_max_queued,
                                       .name = c.name});
    result<result<std::size_t>> resumed = rt_.ask_sync(orchestrator_, saga::recover{}, 60s);
    if (!resumed)
      throw std::runtime_error("cannot resume the stored sagas: " + resumed.error().message());
    resumed_ = **resumed;
    if (**resumed > 0)
      rt_.log(troupe::log_level::info, "troupe-node",
              "resumed " + std::to_string(**resumed) + " unfinished sagas");
  }

  void add_saga_routes() {
    using net::http_request;
    using net::http_response;
    namespace http = net::http;
    static constexpr const char* start_route = "POST /api/v1/sagas/{definition}";
    static constexpr const char* get_route = "GET /api/v1/sagas/{id}";
    static constexpr const char* list_route = "GET /api/v1/sagas";
    static constexpr const char* cancel_route = "POST /api/v1/sagas/{id}/cancel";

    http_->route(
        http::verb::post, "/api/v1/sagas/{definition}",
        [this](http_request& r) -> task<http_response> {
          http_response err;
          auto def = text_param(param_of(r, "definition"),
                                field_rule(fields_, start_route, "definition"), err);
          if (!def) co_return err;
          auto body = net::json_object_body(r, err);
          if (!body) co_return err;
          const auto& input_rule = field_rule(fields_, start_route, "input");
          auto input = body->find("input");
          if (input == body->end()) co_return missing_field(input_rule);
          if (!input->value().is_object()) co_return field_error(input_rule);
          std::string text = json::serialize(input->value());
          if (text.size() > input_rule.max) co_return field_error(input_rule);
          auto key = body_string(*body, field_rule(fields_, start_route, "idempotency_key"), err);
          if (!key && err.status != 200) co_return err;
          saga::start_saga q{*def, std::move(text), key.value_or("")};
          auto call = orchestrator_.ask(std::move(q), 10s);
          result<result<saga::started>> raw =
              co_await call;  // bound first (g++ 12 and co_await temporaries)
          result<saga::started> st = flat(std::move(raw));
          if (!st && st.error() == saga::saga_errc::overloaded)
            co_return retry_later(503, "overloaded",
                                  st.error().message() + " (the cap is --saga-max-queued " +
                                      std::to_string(cfg_.saga_max_queued) + ")");
          if (!st) co_return saga_error(st.error());
          json::object j;
          j["id"] = std::to_string(st->id);
          j["created"] = st->created;
          if (!st->created) co_return net::json_reply(j);  // the same key again: no new saga
          net::http_response res = net::json_reply(j, 201);
          res.headers.emplace_back("Location", "/api/v1/sagas/" + std::to_string(st->id));
          co_return res;
        });

    http_->route(
        http::verb::get, "/api/v1/sagas/{id}", [this](http_request& r) -> task<http_response> {
          http_response err;
          auto id_text = text_param(param_of(r, "id"), field_rule(fields_, get_route, "id"), err);
          if (!id_text) co_return err;
          const std::uint64_t id = std::stoull(*id_text);  // checked: digits in range
          // ?wait_ms=N: a long poll — the reply comes when the saga
          // has finished or after N ms, whichever is first.
          auto w =
              text_param(query_of(r, "wait_ms"), field_rule(fields_, get_route, "wait_ms"), err);
          if (!w && err.status != 200) co_return err;
          if (w) {
            const std::chrono::milliseconds wait{std::stoll(*w)};  // checked: <= 60000
            auto wcall = orchestrator_.ask(saga::wait_saga{id, wait}, wait + 10s);
            result<result<saga::saga_record>> wraw = co_await wcall;
            result<saga::saga_record> done = flat(std::move(wraw));
            if (done) co_return net::json_reply(saga_json(*done));
            if (done.error() != saga::saga_errc::wait_timeout) co_return saga_error(done.error());
          }
          auto call = orchestrator_.ask(saga::get_saga{id}, 10s);
          result<result<saga::saga_record>> raw =
              co_await call;  // bound first (g++ 12 and co_await temporaries)
          result<saga::saga_record> rec = flat(std::move(raw));
          if (!rec) co_return saga_error(rec.error());
          co_return net::json_reply(saga_json(*rec));
        });

    http_->route(http::verb::get, "/api/v1/sagas", [this](http_request& r) -> task<http_response> {
      http_response err;
      auto state = text_param(query_of(r, "state"), field_rule(fields_, list_route, "state"), err);
      if (!state && err.status != 200) co_return err;
      std::optional<saga::saga_state> st;
      for (auto s :
           {saga::saga_state::pending, saga::saga_state::running, saga::saga_state::compensating,
            saga::saga_state::completed, saga::saga_state::compensated, saga::saga_state::stuck})
        if (saga::to_string(s) == state.value_or("running")) st = s;
      if (!st) co_return field_error(field_rule(fields_, list_route, "state"));
      auto lim = text_param(query_of(r, "limit"), field_rule(fields_, list_route, "limit"), err);
      if (!lim && err.status != 200) co_return err;
      const std::size_t limit = lim ? std::stoull(*lim) : 100;  // checked: 1..10000
      // ?after=ID: the page after the one whose last saga was ID (its "next").
      auto after = text_param(query_of(r, "after"), field_rule(fields_, list_route, "after"), err);
      if (!after && err.status != 200) co_return err;
      const std::uint64_t after_id = after ? std::stoull(*after) : 0;  // checked: digits in range
      // One more than the page: whether another page follows.
      auto call = orchestrator_.ask(saga::list_sagas{*st, limit + 1, after_id}, 10s);
      result<result<std::vector<saga::saga_record>>> raw =
          co_await call;  // bound first (g++ 12 and co_await temporaries)
      result<std::vector<saga::saga_record>> v = flat(std::move(raw));
      if (!v) co_return saga_error(v.error());
      const bool more = v->size() > limit;
      if (more) v->resize(limit);
      json::array out;
      for (const auto& rec : *v) {
        json::object j;
        j["id"] = std::to_string(rec.id);
        j["type"] = rec.type;
        j["state"] = std::string(saga::to_string(rec.state));
        if (!rec.error.empty()) j["error"] = rec.error;
        out.push_back(std::move(j));
      }
      json::object page{{"sagas", std::move(out)}};
      if (more) page["next"] = std::to_string(v->back().id);
      co_return net::json_reply(page);
    });

    http_->route(http::verb::post, "/api/v1/sagas/{id}/cancel",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto id_text =
                       text_param(param_of(r, "id"), field_rule(fields_, cancel_route, "id"), err);
                   if (!id_text) co_return err;
                   auto call = orchestrator_.ask(saga::cancel_saga{std::stoull(*id_text)}, 10s);
                   result<result<void>> raw =
                       co_await call;  // bound first (g++ 12 and co_await temporaries)
                   result<void> done = flat(std::move(raw));
                   if (!done) co_return saga_error(done.error());
                   co_return net::json_reply(json::object{{"cancelled", true}});
                 });
  }

  void add_routes() {
    add_saga_routes();
    using net::http_request;
    using net::http_response;
    namespace http = net::http;

    http_->route(http::verb::get, "/healthz", [](http_request&) -> task<http_response> {
      co_return http_response{200, "ok\n", "text/plain"};
    });

    http_->route(http::verb::get, "/readyz",
                 [this](http_request&) -> task<http_response> { co_return co_await readiness(); });

    http_->route(http::verb::get, "/metrics",
                 [this](http_request&) -> task<http_response> { co_return co_await metrics(); });

    // The routes' OpenAPI document, built in. Outside /api/: it describes
    // the routes and holds nothing a token protects (docs/security.md).
    http_->route(http::verb::get, "/openapi.json", [](http_request&) -> task<http_response> {
      co_return http_response{200, std::string(net::node_openapi_json()), "application/json"};
    });

    http_->route(http::verb::get, "/api/v1/cluster", [this](http_request&) -> task<http_response> {
      auto call = node_.state_of(2s);
      result<net::cluster_state> s = co_await std::move(call);
      if (!s) co_return net::json_error(503, s.error().message());
      json::object o;
      o["self"] = s->self;
      o["expect"] = s->expect;
      o["majority"] = s->majority;
      json::array members;
      for (const auto& m : s->members) {
        json::object j;
        j["name"] = m.name;
        j["status"] = m.up ? (m.stats.suspect ? "suspect" : "up") : "down";
        if (m.up) j["phi"] = std::round(m.stats.phi * 10) / 10;
        if (m.address.port != 0)
          j["address"] = m.address.host + ":" + std::to_string(m.address.port);
        if (m.incarnation != 0) {
          char inc[17];
          std::snprintf(inc, sizeof inc, "%016llx", static_cast<unsigned long long>(m.incarnation));
          j["incarnation"] = inc;
        }
        j["frames_in"] = m.stats.frames_in;
        j["frames_out"] = m.stats.frames_out;
        j["bytes_in"] = m.stats.bytes_in;
        j["bytes_out"] = m.stats.bytes_out;
        members.push_back(std::move(j));
      }
      o["members"] = std::move(members);
      o["ring_epoch"] = s->routing.epoch;
      json::array ring;
      for (const auto& m : router_.members()) ring.push_back(json::string(m));
      o["ring_members"] = std::move(ring);
      co_return net::json_reply(o);
    });

    http_->route(http::verb::get, "/api/v1/ring/owner",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto key = text_param(query_of(r, "key"),
                                         field_rule(fields_, "GET /api/v1/ring/owner", "key"), err);
                   if (!key) co_return err;
                   result<std::string> o = router_.owner(*key);
                   if (!o) co_return net::json_error(503, o.error().message());
                   json::object j;
                   j["key"] = *key;
                   j["node"] = *o;
                   co_return net::json_reply(j);
                 });

    static constexpr const char* acquire_route = "POST /api/v1/locks/{name}/acquire";
    static constexpr const char* renew_route = "POST /api/v1/locks/{name}/renew";
    static constexpr const char* release_route = "POST /api/v1/locks/{name}/release";

    // A reentrant acquire names the owner and carries its current token;
    // without the token an owner that holds the lock is answered as anyone
    // would be (busy, queued, a wait): naming an owner proves nothing.
    http_->route(
        http::verb::post, "/api/v1/locks/{name}/acquire",
        [this](http_request& r) -> task<http_response> {
          http_response err;
          auto name =
              text_param(param_of(r, "name"), field_rule(fields_, acquire_route, "name"), err);
          if (!name) co_return err;
          auto body = net::json_object_body(r, err);
          if (!body) co_return err;
          auto owner = body_string(*body, field_rule(fields_, acquire_route, "owner"), err);
          if (!owner) co_return err;
          auto ttl = body_uint(*body, field_rule(fields_, acquire_route, "ttl_ms"), err);
          if (!ttl) co_return err;
          auto wait = body_uint(*body, field_rule(fields_, acquire_route, "wait_ms"), err);
          if (!wait && err.status != 200) co_return err;
          auto mode = body_string(*body, field_rule(fields_, acquire_route, "mode"), err);
          if (!mode && err.status != 200) co_return err;
          auto token = body_uint(*body, field_rule(fields_, acquire_route, "token"), err);
          if (!token && err.status != 200) co_return err;
          // Checked above: ttl <= --lock-max-ttl-ms, wait <= 60000.
          const auto wait_ms = static_cast<std::int64_t>(wait.value_or(0));
          actors::lock_acquire q{*name,
                                 *owner,
                                 {},
                                 static_cast<std::int64_t>(*ttl),
                                 wait_ms,
                                 static_cast<std::uint8_t>(mode && *mode == "shared"),
                                 token.value_or(0)};
          co_return co_await lock_call(std::move(q), *name, std::chrono::milliseconds(wait_ms));
        });

    http_->route(http::verb::post, "/api/v1/locks/{name}/renew",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto name = text_param(param_of(r, "name"),
                                          field_rule(fields_, renew_route, "name"), err);
                   if (!name) co_return err;
                   auto body = net::json_object_body(r, err);
                   if (!body) co_return err;
                   auto owner = body_string(*body, field_rule(fields_, renew_route, "owner"), err);
                   if (!owner) co_return err;
                   auto token = body_uint(*body, field_rule(fields_, renew_route, "token"), err);
                   if (!token) co_return err;
                   auto ttl = body_uint(*body, field_rule(fields_, renew_route, "ttl_ms"), err);
                   if (!ttl) co_return err;
                   actors::lock_renew q{*name, *owner, *token, static_cast<std::int64_t>(*ttl)};
                   co_return co_await lock_call(std::move(q), *name, 0ms);
                 });

    http_->route(http::verb::post, "/api/v1/locks/{name}/release",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto name = text_param(param_of(r, "name"),
                                          field_rule(fields_, release_route, "name"), err);
                   if (!name) co_return err;
                   auto body = net::json_object_body(r, err);
                   if (!body) co_return err;
                   auto owner =
                       body_string(*body, field_rule(fields_, release_route, "owner"), err);
                   if (!owner) co_return err;
                   auto token = body_uint(*body, field_rule(fields_, release_route, "token"), err);
                   if (!token) co_return err;
                   actors::lock_release q{*name, *owner, *token};
                   co_return co_await lock_call(std::move(q), *name, 0ms);
                 });
  }

  // Sends a lock request to the manager of the lock's slot and maps the reply.
  // `wait` is at most 60 s (checked by the route).
  template <class Q>
  task<net::http_response> lock_call(Q q, std::string name, std::chrono::milliseconds wait) {
    const std::string key = actors::lock_slot_key(actors::lock_slot(name, 256));
    auto call = node_.route_ask<actors::lock_manager>(key, actors::lock_manager_name, std::move(q),
                                                      wait + 5s);
    result<actors::lock_reply> rep = co_await call;
    if (!rep) co_return net::json_error(net::http_status_for(rep.error()), rep.error().message());
    if (rep->error != 0) {
      const auto e = static_cast<actors::lock_errc>(rep->error);
      if (e == actors::lock_errc::recovering) {
        // Retry-After in whole seconds, at least 1; the body says how long.
        const std::int64_t ms = std::max<std::int64_t>(0, rep->ttl_ms);
        json::object o;
        o["error"] = make_error_code(e).message();
        o["code"] = "slot_recovering";
        o["recovering_ms"] = ms;
        net::http_response r = net::json_reply(o, 503);
        r.headers.emplace_back("Retry-After",
                               std::to_string(std::max<std::int64_t>(1, (ms + 999) / 1000)));
        co_return r;
      }
      if (e == actors::lock_errc::too_many_waiters)
        co_return retry_later(
            429, "too_many_waiters",
            make_error_code(e).message() + " (caps: --lock-max-waiters-per-lock " +
                std::to_string(cfg_.lock_caps.max_waiters_per_lock) + ", --lock-max-waiters " +
                std::to_string(cfg_.lock_caps.max_waiters) + ")");
      co_return lock_error(e);
    }
    json::object j;
    j["name"] = name;
    j["token"] = std::to_string(rep->token);  // a string: tokens exceed 2^53
    j["ttl_ms"] = rep->ttl_ms;
    j["holds"] = rep->holds;
    if constexpr (std::is_same_v<Q, actors::lock_release>) j["released"] = rep->holds == 0;
    co_return net::json_reply(j);
  }

  static std::string label(std::string_view v) { return net::prometheus_label_value(v); }

  // The gateway's requests by route, method and status, and their latencies.
  static void http_route_metrics(std::ostream& m, const std::vector<net::http_route_stats>& rs) {
    m << "# HELP troupe_http_requests_total HTTP requests answered, by route pattern "
         "(\"unmatched\": no route), method and status.\n"
         "# TYPE troupe_http_requests_total counter\n";
    for (const auto& r : rs)
      for (const auto& [status, n] : r.responses)
        m << "troupe_http_requests_total{route=\"" << label(r.route) << "\",method=\""
          << label(r.method) << "\",status=\"" << status << "\"} " << n << "\n";
    net::prom::histogram_header(
        m, "troupe_http_request_duration_seconds",
        "Time from a request read to its response, by route pattern and method.");
    for (const auto& r : rs)
      net::prom::histogram_series(
          m, "troupe_http_request_duration_seconds",
          "route=\"" + label(r.route) + "\",method=\"" + label(r.method) + "\"", r.latency);
  }

  // The gateway's caps and refusals.
  static void http_metrics(std::ostream& m, const net::http_stats& hs) {
    m << "# HELP troupe_http_connections_open HTTP connections open now.\n"
         "# TYPE troupe_http_connections_open gauge\n"
         "troupe_http_connections_open "
      << hs.open_connections
      << "\n# HELP troupe_http_connections_refused_total Connections refused at "
         "--http-max-connections.\n"
         "# TYPE troupe_http_connections_refused_total counter\n"
         "troupe_http_connections_refused_total "
      << hs.refused_connections
      << "\n# HELP troupe_http_handler_timeouts_total Requests cut off at "
         "--http-handler-timeout-ms.\n"
         "# TYPE troupe_http_handler_timeouts_total counter\n"
         "troupe_http_handler_timeouts_total "
      << hs.handler_timeouts
      << "\n# HELP troupe_http_unauthorized_total Requests refused for a missing or wrong bearer "
         "token.\n"
         "# TYPE troupe_http_unauthorized_total counter\n"
         "troupe_http_unauthorized_total "
      << hs.unauthorized
      << "\n# HELP troupe_http_bad_targets_total Requests refused for a non-canonical target.\n"
         "# TYPE troupe_http_bad_targets_total counter\n"
         "troupe_http_bad_targets_total "
      << hs.bad_targets << "\n";
  }

  task<net::http_response> metrics() {
    std::ostringstream m;
    m << "# HELP troupe_messages_total Messages handled, per shard.\n"
         "# TYPE troupe_messages_total counter\n";
    for (unsigned i = 0; i < rt_.shard_count(); ++i)
      m << "troupe_messages_total{shard=\"" << i << "\"} " << rt_.shard_stats(i).messages << "\n";
    m << "# HELP troupe_live_actors Actors alive, per shard.\n"
         "# TYPE troupe_live_actors gauge\n";
    for (unsigned i = 0; i < rt_.shard_count(); ++i)
      m << "troupe_live_actors{shard=\"" << i << "\"} " << rt_.shard_stats(i).live_actors << "\n";
    m << "# HELP troupe_mailbox_queued Messages waiting in the mailboxes of a shard's actors.\n"
         "# TYPE troupe_mailbox_queued gauge\n";
    std::ostringstream deepest;
    deepest << "# HELP troupe_mailbox_deepest The longest mailbox on a shard.\n"
               "# TYPE troupe_mailbox_deepest gauge\n";
    for (unsigned i = 0; i < probes_.size(); ++i) {
      auto pcall = probes_[i].ask(mailbox_probe_q{}, 2s);
      result<troupe::mailbox_stats> mb = co_await pcall;
      if (!mb) continue;
      m << "troupe_mailbox_queued{shard=\"" << i << "\"} " << mb->queued << "\n";
      deepest << "troupe_mailbox_deepest{shard=\"" << i << "\",actor=\"" << label(mb->deepest_type)
              << "\"} " << mb->deepest << "\n";
    }
    m << deepest.str();
    const troupe::runtime_stats all = rt_.stats();
    m << "# HELP troupe_ask_timeouts_total Asks that hit their deadline.\n"
         "# TYPE troupe_ask_timeouts_total counter\n"
         "troupe_ask_timeouts_total "
      << all.ask_timeouts
      << "\n"
         "# HELP troupe_dead_letters_total Messages that arrived after their target stopped.\n"
         "# TYPE troupe_dead_letters_total counter\n"
         "troupe_dead_letters_total "
      << all.dead_letters << "\n";
    net::prom::histogram_header(m, "troupe_ask_seconds",
                                "Asks awaited in handlers and answered, send to resumption, by "
                                "target (local actor, or remote: a proxy or a routed key).");
    net::prom::histogram_series(m, "troupe_ask_seconds", "target=\"local\"", all.local_asks);
    net::prom::histogram_series(m, "troupe_ask_seconds", "target=\"remote\"", all.remote_asks);
    auto call = node_.state_of(2s);
    result<net::cluster_state> s = co_await std::move(call);
    if (s) {
      m << "# HELP troupe_link_up Whether the link to a peer is up.\n"
           "# TYPE troupe_link_up gauge\n";
      for (const auto& p : s->members)
        m << "troupe_link_up{peer=\"" << label(p.name) << "\"} " << (p.up ? 1 : 0) << "\n";
      m << "# HELP troupe_link_bytes_total Bytes over a peer's link.\n"
           "# TYPE troupe_link_bytes_total counter\n";
      for (const auto& p : s->members) {
        m << "troupe_link_bytes_total{peer=\"" << label(p.name) << "\",direction=\"in\"} "
          << p.stats.bytes_in << "\n";
        m << "troupe_link_bytes_total{peer=\"" << label(p.name) << "\",direction=\"out\"} "
          << p.stats.bytes_out << "\n";
      }
      m << "# HELP troupe_cluster_majority Whether this node is in the majority (1 without "
           "--expect).\n"
           "# TYPE troupe_cluster_majority gauge\n"
           "troupe_cluster_majority "
        << (s->majority ? 1 : 0) << "\n";
      m << "# HELP troupe_ring_epoch The node's route epoch.\n"
           "# TYPE troupe_ring_epoch gauge\n"
           "troupe_ring_epoch "
        << s->routing.epoch
        << "\n"
           "# HELP troupe_routed_total Routed messages by what happened to them.\n"
           "# TYPE troupe_routed_total counter\n"
           "troupe_routed_total{event=\"sent\"} "
        << s->routing.sent << "\ntroupe_routed_total{event=\"received\"} " << s->routing.received
        << "\ntroupe_routed_total{event=\"forwarded\"} " << s->routing.forwarded
        << "\ntroupe_routed_total{event=\"undeliverable\"} " << s->routing.undeliverable << "\n";
      link_limit_metrics(m, *s);
    }
    auto lcall = service_.ref().ask(actors::lock_stats_q{}, 2s);
    result<actors::lock_stats> ls = co_await lcall;
    if (ls) {
      m << "# HELP troupe_lock_grants_total Lock grants by this node's manager.\n"
           "# TYPE troupe_lock_grants_total counter\n"
           "troupe_lock_grants_total "
        << ls->grants
        << "\n# HELP troupe_lock_expiries_total Leases that expired.\n"
           "# TYPE troupe_lock_expiries_total counter\n"
           "troupe_lock_expiries_total "
        << ls->expiries
        << "\n# HELP troupe_lock_held Locks held now.\n"
           "# TYPE troupe_lock_held gauge\n"
           "troupe_lock_held "
        << ls->held
        << "\n# HELP troupe_lock_waiters Requests waiting for a lock now.\n"
           "# TYPE troupe_lock_waiters gauge\n"
           "troupe_lock_waiters "
        << ls->waiters
        << "\n# HELP troupe_lock_waiters_refused_total Acquires refused at a waiter cap "
           "(--lock-max-waiters-per-lock, --lock-max-waiters).\n"
           "# TYPE troupe_lock_waiters_refused_total counter\n"
           "troupe_lock_waiters_refused_total "
        << ls->waiters_refused
        << "\n# HELP troupe_lock_slots_recovering Lock slots this node owns that do not grant "
           "yet (being handed over, or waiting out a vanished owner's leases).\n"
           "# TYPE troupe_lock_slots_recovering gauge\n"
           "troupe_lock_slots_recovering "
        << ls->recovering
        << "\n# HELP troupe_lock_handoffs_total Leases moved with their slot, by direction.\n"
           "# TYPE troupe_lock_handoffs_total counter\n"
           "troupe_lock_handoffs_total{direction=\"out\"} "
        << ls->handed_over << "\ntroupe_lock_handoffs_total{direction=\"in\"} " << ls->taken_over
        << "\n";
      net::prom::histogram_header(
          m, "troupe_lock_wait_seconds",
          "How long acquires that queued behind a holder waited (granted or not).");
      net::prom::histogram_series(m, "troupe_lock_wait_seconds", "", ls->waits);
    }
    auto scall = orchestrator_.ask(saga::get_stats{}, 2s);
    result<saga::orchestrator_stats> ss = co_await scall;
    if (ss) {
      m << "# HELP troupe_sagas Sagas on this node's orchestrator now, by state.\n"
           "# TYPE troupe_sagas gauge\n"
           "troupe_sagas{state=\"pending\"} "
        << ss->pending << "\ntroupe_sagas{state=\"running\"} " << ss->running
        << "\ntroupe_sagas{state=\"compensating\"} " << ss->compensating
        << "\n# HELP troupe_sagas_finished_total Sagas finished since the node started, by "
           "final state.\n"
           "# TYPE troupe_sagas_finished_total counter\n"
           "troupe_sagas_finished_total{state=\"completed\"} "
        << ss->completed << "\ntroupe_sagas_finished_total{state=\"compensated\"} "
        << ss->compensated << "\ntroupe_sagas_finished_total{state=\"stuck\"} " << ss->stuck
        << "\n";
      net::prom::histogram_header(
          m, "troupe_saga_step_seconds",
          "Saga step calls (each attempt of an action, compensation or two-phase call).");
      net::prom::histogram_series(m, "troupe_saga_step_seconds", "", ss->steps);
      m << "# HELP troupe_saga_step_failures_total Step calls that returned an error.\n"
           "# TYPE troupe_saga_step_failures_total counter\n"
           "troupe_saga_step_failures_total "
        << ss->step_failures
        << "\n# HELP troupe_saga_starts_refused_total Saga starts refused at --saga-max-queued.\n"
           "# TYPE troupe_saga_starts_refused_total counter\n"
           "troupe_saga_starts_refused_total "
        << ss->starts_refused << "\n";
    }
    m << "# HELP troupe_build_info The troupe version and source revision of this node.\n"
         "# TYPE troupe_build_info gauge\n"
         "troupe_build_info{version=\""
      << label(troupe::library_version()) << "\",revision=\"" << label(troupe::revision())
      << "\"} 1\n";
    net::prom::process_metrics(m);
    const net::http_stats hs = http_->stats();
    http_route_metrics(m, http_->route_stats());
    m << "# HELP troupe_http_client_errors_total Requests answered with a 4xx.\n"
         "# TYPE troupe_http_client_errors_total counter\n"
         "troupe_http_client_errors_total "
      << hs.client_errors << "\n";
    if (cfg_.tls.enabled())
      m << "# HELP troupe_http_tls_refused_total HTTPS connections whose TLS handshake failed "
           "(e.g. plain HTTP).\n"
           "# TYPE troupe_http_tls_refused_total counter\n"
           "troupe_http_tls_refused_total "
        << hs.tls_refused << "\n";
    http_metrics(m, hs);
    co_return net::http_response{200, m.str(), "text/plain; version=0.0.4"};
  }

  // The cluster links' caps: what they refused, and the tables they bound.
  static void link_limit_metrics(std::ostringstream& m, const net::cluster_state& s) {
    const net::limit_stats& l = s.limits;
    m << "# HELP troupe_link_queued_bytes Bytes waiting to be written to a peer.\n"
         "# TYPE troupe_link_queued_bytes gauge\n";
    for (const auto& p : s.members)
      m << "troupe_link_queued_bytes{peer=\"" << label(p.name) << "\"} " << p.stats.queued_bytes
        << "\n";
    m << "# HELP troupe_link_congested_total Frames refused because a link's outbound buffer was "
         "full (the peer is not reading).\n"
         "# TYPE troupe_link_congested_total counter\n"
         "troupe_link_congested_total "
      << l.link_congested
      << "\n# HELP troupe_link_refused_total Cluster connections closed by a cap, by reason.\n"
         "# TYPE troupe_link_refused_total counter\n"
         "troupe_link_refused_total{reason=\"handshakes\"} "
      << l.handshakes_refused << "\ntroupe_link_refused_total{reason=\"handshake_frame\"} "
      << l.handshake_too_large << "\ntroupe_link_refused_total{reason=\"handshake_timeout\"} "
      << l.handshake_timeouts << "\ntroupe_link_refused_total{reason=\"slow_consumer\"} "
      << l.slow_consumers << "\ntroupe_link_refused_total{reason=\"peers\"} " << l.peers_refused
      << "\ntroupe_link_refused_total{reason=\"dial_not_loopback\"} " << l.dials_refused
      << "\n# HELP troupe_link_handshakes Cluster connections authenticating now.\n"
         "# TYPE troupe_link_handshakes gauge\n"
         "troupe_link_handshakes "
      << l.handshakes
      << "\n# HELP troupe_node_table_entries Entries in the node's peer, pending-ask and relay "
         "tables.\n"
         "# TYPE troupe_node_table_entries gauge\n"
         "troupe_node_table_entries{table=\"peers\"} "
      << l.peers << "\ntroupe_node_table_entries{table=\"pending_asks\"} " << l.pending_asks
      << "\ntroupe_node_table_entries{table=\"relays\"} " << l.relays
      << "\n# HELP troupe_relays_dropped_total Forwarded asks not relayed: expired or refused at "
         "the cap.\n"
         "# TYPE troupe_relays_dropped_total counter\n"
         "troupe_relays_dropped_total{reason=\"expired\"} "
      << l.relays_expired << "\ntroupe_relays_dropped_total{reason=\"cap\"} " << l.relays_refused
      << "\n";
  }

  config cfg_;
  troupe::runtime rt_;
  net::node node_;
  actors::router router_;
  actors::lock_service service_;
  std::shared_ptr<saga::registry> types_ = std::make_shared<saga::registry>();
  std::shared_ptr<saga::saga_store> store_;
  troupe::actor_ref<selftest_participant> participant_;
  troupe::actor_ref<saga::orchestrator> orchestrator_;
  std::vector<troupe::actor_ref<shard_probe>> probes_;
  troupe::actor_ref<ready_watch> ready_watch_;
  std::size_t resumed_ = 0;
  std::optional<net::http_gateway> http_;
  std::vector<const net::node_extension*> started_;
  const std::vector<net::http_field_rule> fields_ =
      net::node_http_fields(cfg_.lock_max_ttl.count());
};

}  // namespace

namespace {

// The caps of the HTTP gateway, the lock-manager and the orchestrator (each
// also a field of its options struct; docs/security.md lists them).
void add_cap_flags(CLI::App& app, config& c) {
  auto ms_flag = [&app](const char* name, std::chrono::milliseconds& field, long long lo,
                        long long hi, const char* help) {
    app.add_option_function<long long>(
           name, [&field](long long v) { field = std::chrono::milliseconds(v); }, help)
        ->check(CLI::Range(lo, hi))
        ->default_str(std::to_string(field.count()));
  };
  net::http_options& h = c.http_caps;
  app.add_option("--http-max-connections", h.max_connections,
                 "HTTP connections open at once; more are answered 503 and closed")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
      ->capture_default_str();
  ms_flag("--http-handler-timeout-ms", h.handler_timeout, 100, 3'600'000,
          "longest a request's handler may run (then 504, connection closed)");
  ms_flag("--http-read-timeout-ms", h.read_timeout, 100, 3'600'000,
          "longest a request's headers and body may take to arrive");
  ms_flag("--http-idle-timeout-ms", h.idle_timeout, 100, 3'600'000,
          "longest a keep-alive connection may idle between requests");
  app.add_option("--http-header-limit", h.header_limit,
                 "bytes of a request's start line and headers (more: 431)")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1024 * 1024}))
      ->capture_default_str();
  app.add_option("--http-body-limit", h.body_limit, "bytes of a request's body (more: 413)")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{64 * 1024 * 1024}))
      ->capture_default_str();
  app.add_option("--lock-max-waiters-per-lock", c.lock_caps.max_waiters_per_lock,
                 "acquires waiting for one lock at once (more: 429)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1'000'000}))
      ->capture_default_str();
  app.add_option("--lock-max-waiters", c.lock_caps.max_waiters,
                 "acquires waiting at once in this node's lock-manager (more: 429)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--saga-max-running", c.saga_max_running,
                 "sagas running at once; more wait for a slot (see --saga-max-queued)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
      ->capture_default_str();
  app.add_option("--saga-max-queued", c.saga_max_queued,
                 "sagas waiting for a running slot; more starts are answered 503")
      ->check(CLI::Range(std::size_t{0}, std::size_t{10'000'000}))
      ->capture_default_str();
}

constexpr int flags_ok = -1;

// The flags into `c`: flags_ok, or the exit code, with the one line to
// print in `line` (empty after --help, which prints itself).
int parse_flags(int argc, char** argv, config& c, std::string& line) {
  auto fail = [&line](int code, const std::string& l) {
    line = l;
    return code;
  };
  CLI::App app{
      "troupe-node: one node of a troupe cluster (cluster link, ring, locks, sagas, HTTP)"};
  std::string listen = "127.0.0.1:7000", http = "127.0.0.1:8080", seeds, secret_file, token_file;
  long long lock_max_ttl_ms = 60'000;
  app.add_option("--name", c.name, "this node's name, unique in the cluster")->required();
  app.add_option("--cluster", c.cluster, "cluster name; peers must match")->capture_default_str();
  app.add_option("--listen", listen, "cluster endpoint HOST:PORT")->capture_default_str();
  app.add_option("--seeds", seeds, "peers to dial: HOST:PORT,HOST:PORT,...");
  app.add_option("--http", http, "HTTP gateway endpoint HOST:PORT")->capture_default_str();
  app.add_option("--data-dir", c.data_dir, "directory for durable state (saga store)");
  app.add_option("--secret-file", secret_file, "file holding the cluster secret");
  app.add_option("--http-token-file", token_file,
                 "file holding a bearer token required on /api/ routes");
  link_cap_flags link_caps;
  link_caps.add(app, c.link_caps);
  add_tls_flags(app, c.tls);
  app.add_option("--shards", c.shards, "shards (threads)")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  long long heartbeat_ms = 250, down_after_ms = 1500, down_max_ms = 0;
  app.add_option("--expect", c.expect,
                 "the cluster's size, for the majority rule (0: no rule; docs/cluster.md)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{65536}))
      ->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms,
                 "an idle cluster link sends a heartbeat this often")
      ->check(CLI::Range(10LL, 60'000LL))
      ->capture_default_str();
  app.add_option("--down-after-ms", down_after_ms,
                 "a peer silent this long is suspected, and down once --phi-threshold says its "
                 "silence is unlikely (with --expect, heard from this recently counts towards "
                 "the majority)")
      ->check(CLI::Range(50LL, 600'000LL))
      ->capture_default_str();
  app.add_option("--phi-threshold", c.phi_threshold,
                 "phi-accrual failure detector: a suspected peer is down once phi reaches this "
                 "(8: a gap that long is 1e-8 likely given its past gaps); 0: down at "
                 "--down-after-ms")
      ->check(CLI::Range(0.0, 300.0))
      ->capture_default_str();
  app.add_option("--down-max-ms", down_max_ms,
                 "a peer silent this long is down whatever phi says (0: 4 x --down-after-ms)")
      ->check(CLI::Range(0LL, 3'600'000LL))
      ->capture_default_str();
  app.add_option("--lock-max-ttl-ms", lock_max_ttl_ms,
                 "longest lock lease; also the lock-delay after a restart")
      ->check(CLI::Range(1LL, 86'400'000LL))
      ->capture_default_str();
  add_cap_flags(app, c);
  std::string log_level = "info", log_format = "text";
  app.add_option("--log-level", log_level,
                 "lowest level logged: trace, debug (adds the HTTP access log), info, warn, "
                 "error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text (one line a record) or json (one object a line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.set_version_flag("--version",
                       std::string("troupe-node ") + troupe::library_version() + " (revision " +
                           troupe::revision() + ")",
                       "print the version and exit");
  for (auto& e : c.extensions)
    if (e.add_flags) e.add_flags(app);
  app.set_config("--config", "",
                 "TOML file of flags (keys are the long flag names: name = \"n1\", "
                 "lock-max-ttl-ms = 30000); flags and TROUPE_<FLAG> variables override it");
  app.allow_config_extras(false);  // an unknown key in the file is an error, not ignored
  std::vector<std::string> from_env;
  std::vector<std::string> args = with_environment(app, argc, argv, from_env);
  try {
    app.parse(std::move(args));
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string env;
    for (const std::string& v : from_env) env += (env.empty() ? "" : ", ") + v;
    return fail(2, std::string(e.what()) +
                       (env.empty() ? "" : " (set from the environment: " + env + ")") +
                       " (see --help)");
  }
  c.lock_max_ttl = std::chrono::milliseconds(lock_max_ttl_ms);
  c.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  c.down_after = std::chrono::milliseconds(down_after_ms);
  c.down_max = std::chrono::milliseconds(down_max_ms);
  if (down_max_ms != 0 && c.down_max < c.down_after)
    return fail(2, "--down-max-ms (" + std::to_string(down_max_ms) +
                       ") must be 0 or at least --down-after-ms (" + std::to_string(down_after_ms) +
                       ")");
  if (c.down_after <= c.heartbeat)
    return fail(2, "--down-after-ms (" + std::to_string(down_after_ms) +
                       ") must be longer than --heartbeat-ms (" + std::to_string(heartbeat_ms) +
                       "): a quiet link would be declared down between heartbeats");
  link_caps.apply(c.link_caps);
  c.log_level = *troupe::parse_log_level(log_level);  // checked by IsMember
  c.log_json = log_format == "json";
  c.log = std::make_shared<const node_log>(c.name, c.log_level, c.log_json);

  auto ep = net::parse_endpoint(listen);
  if (!ep) return fail(2, "--listen '" + listen + "' is not HOST:PORT");
  c.listen = *ep;
  ep = net::parse_endpoint(http);
  if (!ep) return fail(2, "--http '" + http + "' is not HOST:PORT");
  c.http = *ep;
  std::stringstream ss(seeds);
  for (std::string s; std::getline(ss, s, ',');) {
    if (s.empty()) continue;
    auto e = net::parse_endpoint(s);
    if (!e) return fail(2, "--seeds entry '" + s + "' is not HOST:PORT");
    c.seeds.push_back(*e);
  }
  std::string error;
  if (!secret_file.empty()) {
    c.secret = read_secret(secret_file, error);
    if (!c.secret) return fail(2, "--secret-file: " + error);
  }
  if (!token_file.empty()) {
    c.http_token = read_secret(token_file, error);
    if (!c.http_token) return fail(2, "--http-token-file: " + error);
  }
  if (!c.data_dir.empty() && !writable_dir(c.data_dir, error)) return fail(2, error);
  if (!check_tls(c.tls, error)) return fail(2, error);
  return flags_ok;
}

}  // namespace

struct troupe::net::node_instance::impl {
  config c;
  std::unique_ptr<node_app> node;
};

troupe::net::node_instance::node_instance(const std::vector<std::string>& args,
                                          std::vector<node_extension> extensions)
    : p_(std::make_unique<impl>()) {
  std::vector<std::string> words{"troupe-node"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  p_->c.extensions = std::move(extensions);
  std::string line;
  const int code = parse_flags(static_cast<int>(argv.size()), argv.data(), p_->c, line);
  if (code != flags_ok)
    throw node_start_error(code == 0 ? 2 : code, line.empty() ? "--help" : line);
  try {
    p_->node = std::make_unique<node_app>(p_->c);
  } catch (const std::exception& e) {
    throw node_start_error(1, e.what());
  }
}

troupe::net::node_instance::~node_instance() = default;
const troupe::net::http_gateway& troupe::net::node_instance::http() const noexcept {
  return p_->node->http();
}
unsigned short troupe::net::node_instance::http_port() const noexcept {
  return p_->node->http_port();
}
unsigned short troupe::net::node_instance::cluster_port() const noexcept {
  return p_->node->cluster_port();
}

int troupe::net::node_main(int argc, char** argv, std::vector<node_extension> extensions) {
  config c;
  c.extensions = std::move(extensions);
  {
    std::string line;
    const int code = parse_flags(argc, argv, c, line);
    if (code != flags_ok) return line.empty() ? code : fail(code, line);
  }

  // SIGTERM / SIGINT end the node in order; block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<node_app> node;
  try {
    node = std::make_unique<node_app>(c);
  } catch (const troupe::startup_error& e) {
    return fail(1, e.what());
  } catch (const std::system_error& e) {
    return fail(1, e.what());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
  c.log->say(troupe::log_level::info, "troupe-node",
             "cluster " + c.listen.host + ":" + std::to_string(node->cluster_port()) + ", http " +
                 c.http.host + ":" + std::to_string(node->http_port()) + ", shards " +
                 std::to_string(c.shards) + ", version " + troupe::library_version());
  // systemd (Type=notify): ready when /readyz would say so; no-op elsewhere.
  node->when_ready([] { ::sd_notify(0, "READY=1\nSTATUS=ready"); });
  int sig = 0;
  sigwait(&stop_signals, &sig);
  ::sd_notify(0, "STOPPING=1");
  c.log->say(troupe::log_level::info, "troupe-node",
             std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
  node.reset();
  c.log->say(troupe::log_level::info, "troupe-node", "stopped");
  return 0;
}

std::vector<troupe::net::http_error_code> troupe::net::node_http_error_codes() {
  const auto gateway = net::http_error_codes();
  std::vector<http_error_code> all(gateway.begin(), gateway.end());
  const std::vector<http_error_code> own = {
      {"lock_held", 409, "the lock is held and the acquire did not wait (wait_ms 0: a try-lock)"},
      {"lock_wait_expired", 409,
       "the lock stayed held for all of the acquire's wait_ms (the request itself did not time "
       "out)"},
      {"not_holder", 409,
       "the owner and token do not hold the lock: another owner, a stale or foreign token, a "
       "lease that ran out or was revoked"},
      {"lock_mode_mismatch", 409, "the owner holds the lock in the other mode"},
      {"too_many_waiters", 429,
       "the lock (or the node) has as many waiting acquires as it takes "
       "(--lock-max-waiters-per-lock, --lock-max-waiters); retry after Retry-After seconds"},
      {"idempotency_conflict", 409, "the idempotency key was used with another input"},
      {"saga_finished", 409, "the saga has finished: there is nothing to cancel"},
      {"not_ready", 503, "the node is not ready (/readyz: the body's checks say which fails)"},
      {"slot_recovering", 503,
       "the lock's slot just moved to this node, which grants in it once the members that "
       "served it have handed it over or every lease a vanished owner may have granted has run "
       "out; the body's recovering_ms says for how long when known (0: shortly); retry after "
       "Retry-After seconds"},
      {"not_in_majority", 503,
       "this node has not heard from more than half of the cluster (--expect) within "
       "--down-after-ms: it grants and renews no lock until it has; retry (at another node)"},
  };
  all.insert(all.end(), own.begin(), own.end());
  return all;
}

std::vector<troupe::net::http_field_rule> troupe::net::node_http_fields(
    std::int64_t lock_max_ttl_ms) {
  const auto ttl_max = static_cast<std::uint64_t>(std::max<std::int64_t>(1, lock_max_ttl_ms));
  const char* acquire = "POST /api/v1/locks/{name}/acquire";
  const char* renew = "POST /api/v1/locks/{name}/renew";
  const char* release = "POST /api/v1/locks/{name}/release";
  const char* start = "POST /api/v1/sagas/{definition}";
  const char* get = "GET /api/v1/sagas/{id}";
  const char* list = "GET /api/v1/sagas";
  const char* cancel = "POST /api/v1/sagas/{id}/cancel";
  const std::uint64_t name_max = actors::lock_options{}.max_name;
  return {
      {acquire, "name", "path", "string", 1, name_max},
      {acquire, "owner", "body", "string", 1, 256},
      {acquire, "ttl_ms", "body", "integer", 1, ttl_max},
      {acquire, "wait_ms", "body", "integer", 0, http_wait_max_ms, false},
      {acquire, "mode", "body", "enum", 0, 0, false, "exclusive|shared"},
      {acquire, "token", "body", "token", 1, u64_max, false},
      {renew, "name", "path", "string", 1, name_max},
      {renew, "owner", "body", "string", 1, 256},
      {renew, "token", "body", "token", 1, u64_max},
      {renew, "ttl_ms", "body", "integer", 1, ttl_max},
      {release, "name", "path", "string", 1, name_max},
      {release, "owner", "body", "string", 1, 256},
      {release, "token", "body", "token", 1, u64_max},
      {start, "definition", "path", "string", 1, 128},
      {start, "input", "body", "object", 2, saga_input_max},
      {start, "idempotency_key", "body", "string", 1, 256, false},
      {get, "id", "path", "integer", 1, u64_max},
      {get, "wait_ms", "query", "integer", 0, http_wait_max_ms, false},
      {list, "state", "query", "enum", 0, 0, false,
       "pending|running|compensating|completed|compensated|stuck"},
      {list, "limit", "query", "integer", 1, 10'000, false},
      {list, "after", "query", "integer", 1, u64_max, false},
      {cancel, "id", "path", "integer", 1, u64_max},
      {"GET /api/v1/ring/owner", "key", "query", "string", 1, 1024},
  };
}
