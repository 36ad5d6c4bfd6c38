// node_main: one troupe node per process — cluster link, ring-router,
// lock-manager, saga orchestrator and the HTTP/JSON gateway (docs/node.md),
// plus the extensions an application adds (troupe/net/node_main.hpp).

#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <troupe/actors/locks.hpp>
#include <troupe/actors/router.hpp>
#include <troupe/core.hpp>
#include <troupe/net/http.hpp>
#include <troupe/net/node.hpp>
#include <troupe/net/node_main.hpp>
#include <troupe/saga.hpp>
#include <troupe/version.hpp>

namespace net = troupe::net;
namespace saga = troupe::saga;
namespace actors = troupe::actors;
namespace json = boost::json;
using troupe::result;
using troupe::task;
using namespace std::chrono_literals;

namespace {

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
  net::tls_options tls;  // --tls-cert, --tls-key, --tls-ca: links and gateway
  unsigned shards = 2;
  std::chrono::milliseconds lock_max_ttl{60'000};
  std::vector<net::node_extension> extensions;
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
    for (char ch : flag) var += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
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

// Lock errors as HTTP statuses.
unsigned lock_status(actors::lock_errc e) {
  using actors::lock_errc;
  switch (e) {
    case lock_errc::timeout:
      return 408;
    case lock_errc::busy:
    case lock_errc::wrong_token:
    case lock_errc::not_holder:
    case lock_errc::expired:
    case lock_errc::mode_mismatch:
    case lock_errc::revoked:
      return 409;
    case lock_errc::not_owner:
      return 503;
    default:
      return 400;
  }
}

std::optional<std::uint64_t> json_token(const json::object& o, net::http_response& err) {
  auto it = o.find("token");
  if (it == o.end()) {
    err = net::json_error(400, "missing field 'token'");
    return std::nullopt;
  }
  const json::value& v = it->value();
  if (v.is_uint64()) return v.as_uint64();
  if (v.is_int64() && v.as_int64() > 0) return static_cast<std::uint64_t>(v.as_int64());
  if (v.is_string()) {
    const std::string s(v.as_string());
    std::uint64_t t = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), t);
    if (ec == std::errc{} && p == s.data() + s.size() && t > 0) return t;
  }
  err = net::json_error(400, "field 'token' must be a positive integer or a decimal string");
  return std::nullopt;
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

unsigned saga_status(const boost::system::error_code& ec) {
  if (ec == saga::saga_errc::unknown_saga_type || ec == saga::saga_errc::not_found) return 404;
  if (ec == saga::saga_errc::malformed_input) return 400;
  if (ec == saga::saga_errc::idempotency_conflict || ec == saga::saga_errc::not_running) return 409;
  if (ec.category() == troupe::troupe_category()) return net::http_status_for(ec);
  return 500;
}

std::optional<std::uint64_t> saga_id(const std::string& text) {
  std::uint64_t id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || p != text.data() + text.size() || id == 0) return std::nullopt;
  return id;
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
        checks["cluster"] = "waiting: linked to no peer yet (seeds: " +
                            std::to_string(cfg_.seeds.size()) + ")";
        ready = false;
      } else {
        checks["cluster"] = "ok: linked to " + std::to_string(up) + " peers";
      }
    }
    json::object o;
    o["ready"] = ready;
    o["checks"] = std::move(checks);
    co_return net::json_reply(o, ready ? 200 : 503);
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

 private:
  static troupe::runtime_options runtime_options(const config& c) {
    troupe::runtime_options o;
    o.shards = c.shards;
    return o;
  }
  static net::node_options node_options(const config& c) {
    net::node_options o;
    o.name = c.name;
    o.cluster = c.cluster;
    o.listen = c.listen;
    o.seeds = c.seeds;
    o.secret = c.secret;
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
    actors::lock_options o;
    o.max_ttl = c.lock_max_ttl;
    return o;
  }
  static net::http_options http_options(const config& c) {
    net::http_options o;
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
      rt_.log("troupe-node " + c.name +
              ": no --data-dir: sagas are kept in memory and lost when the node stops");
    }
    orchestrator_ = rt_.spawn<saga::orchestrator>(
        so, saga::orchestrator_options{.store = store_, .types = types_, .name = c.name});
    result<result<std::size_t>> resumed = rt_.ask_sync(orchestrator_, saga::recover{}, 60s);
    if (!resumed)
      throw std::runtime_error("cannot resume the stored sagas: " + resumed.error().message());
    resumed_ = **resumed;
    if (**resumed > 0)
      rt_.log("troupe-node " + c.name + ": resumed " + std::to_string(**resumed) +
              " unfinished sagas");
  }

  void add_saga_routes() {
    using net::http_request;
    using net::http_response;
    namespace http = net::http;

    http_->route(http::verb::post, "/api/v1/sagas/{definition}",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto body = net::json_object_body(r, err);
                   if (!body) co_return err;
                   auto input = body->find("input");
                   if (input == body->end() || !input->value().is_object())
                     co_return net::json_error(400, "field 'input' must be a JSON object");
                   auto key = net::json_string(*body, "idempotency_key", err, false);
                   if (!key && err.status != 200) co_return err;
                   saga::start_saga q{r.param("definition"), json::serialize(input->value()),
                                      key.value_or("")};
                   auto call = orchestrator_.ask(std::move(q), 10s);
                   result<result<saga::started>> raw =
                       co_await call;  // bound first (g++ 12 and co_await temporaries)
                   result<saga::started> st = flat(std::move(raw));
                   if (!st)
                     co_return net::json_error(saga_status(st.error()), st.error().message());
                   json::object j;
                   j["id"] = std::to_string(st->id);
                   j["created"] = st->created;
                   co_return net::json_reply(j, st->created ? 201 : 200);
                 });

    http_->route(http::verb::get, "/api/v1/sagas/{id}",
                 [this](http_request& r) -> task<http_response> {
                   auto id = saga_id(r.param("id"));
                   if (!id) co_return net::json_error(400, "a saga id is a positive integer");
                   // ?wait_ms=N: a long poll — the reply comes when the saga
                   // has finished or after N ms, whichever is first.
                   if (const std::string w = r.query("wait_ms"); !w.empty()) {
                     std::int64_t ms = -1;
                     auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), ms);
                     if (ec != std::errc{} || p != w.data() + w.size() || ms < 0 || ms > 60'000)
                       co_return net::json_error(400, "wait_ms must be between 0 and 60000");
                     const std::chrono::milliseconds wait{ms};
                     auto wcall = orchestrator_.ask(saga::wait_saga{*id, wait}, wait + 10s);
                     result<result<saga::saga_record>> wraw = co_await wcall;
                     result<saga::saga_record> done = flat(std::move(wraw));
                     if (done) co_return net::json_reply(saga_json(*done));
                     if (done.error() != saga::saga_errc::wait_timeout)
                       co_return net::json_error(saga_status(done.error()), done.error().message());
                   }
                   auto call = orchestrator_.ask(saga::get_saga{*id}, 10s);
                   result<result<saga::saga_record>> raw =
                       co_await call;  // bound first (g++ 12 and co_await temporaries)
                   result<saga::saga_record> rec = flat(std::move(raw));
                   if (!rec)
                     co_return net::json_error(saga_status(rec.error()), rec.error().message());
                   co_return net::json_reply(saga_json(*rec));
                 });

    http_->route(http::verb::get, "/api/v1/sagas", [this](http_request& r) -> task<http_response> {
      const std::string state = r.query("state").empty() ? "running" : r.query("state");
      std::optional<saga::saga_state> st;
      for (auto s :
           {saga::saga_state::pending, saga::saga_state::running, saga::saga_state::compensating,
            saga::saga_state::completed, saga::saga_state::compensated, saga::saga_state::stuck})
        if (saga::to_string(s) == state) st = s;
      if (!st) co_return net::json_error(400, "unknown saga state '" + state + "'");
      std::size_t limit = 100;
      if (!r.query("limit").empty()) {
        auto [p, ec] = std::from_chars(r.query("limit").data(),
                                       r.query("limit").data() + r.query("limit").size(), limit);
        if (ec != std::errc{} || limit == 0 || limit > 10'000)
          co_return net::json_error(400, "limit must be between 1 and 10000");
      }
      auto call = orchestrator_.ask(saga::list_sagas{*st, limit}, 10s);
      result<result<std::vector<saga::saga_record>>> raw =
          co_await call;  // bound first (g++ 12 and co_await temporaries)
      result<std::vector<saga::saga_record>> v = flat(std::move(raw));
      if (!v) co_return net::json_error(saga_status(v.error()), v.error().message());
      json::array out;
      for (const auto& rec : *v) {
        json::object j;
        j["id"] = std::to_string(rec.id);
        j["type"] = rec.type;
        j["state"] = std::string(saga::to_string(rec.state));
        if (!rec.error.empty()) j["error"] = rec.error;
        out.push_back(std::move(j));
      }
      co_return net::json_reply(json::object{{"sagas", std::move(out)}});
    });

    http_->route(http::verb::post, "/api/v1/sagas/{id}/cancel",
                 [this](http_request& r) -> task<http_response> {
                   auto id = saga_id(r.param("id"));
                   if (!id) co_return net::json_error(400, "a saga id is a positive integer");
                   auto call = orchestrator_.ask(saga::cancel_saga{*id}, 10s);
                   result<result<void>> raw =
                       co_await call;  // bound first (g++ 12 and co_await temporaries)
                   result<void> done = flat(std::move(raw));
                   if (!done)
                     co_return net::json_error(saga_status(done.error()), done.error().message());
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

    http_->route(http::verb::get, "/readyz", [this](http_request&) -> task<http_response> {
      co_return co_await readiness();
    });

    http_->route(http::verb::get, "/metrics",
                 [this](http_request&) -> task<http_response> { co_return co_await metrics(); });

    http_->route(http::verb::get, "/api/v1/cluster", [this](http_request&) -> task<http_response> {
      auto call = node_.state_of(2s);
      result<net::cluster_state> s = co_await std::move(call);
      if (!s) co_return net::json_error(503, s.error().message());
      json::object o;
      o["self"] = s->self;
      json::array members;
      for (const auto& m : s->members) {
        json::object j;
        j["name"] = m.name;
        j["status"] = m.up ? "up" : "down";
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
                   auto it = r.query_params.find("key");
                   if (it == r.query_params.end() || it->second.empty())
                     co_return net::json_error(400, "missing query parameter 'key'");
                   result<std::string> o = router_.owner(it->second);
                   if (!o) co_return net::json_error(503, o.error().message());
                   json::object j;
                   j["key"] = it->second;
                   j["node"] = *o;
                   co_return net::json_reply(j);
                 });

    http_->route(http::verb::post, "/api/v1/locks/{name}/acquire",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto body = net::json_object_body(r, err);
                   if (!body) co_return err;
                   auto owner = net::json_string(*body, "owner", err);
                   if (!owner) co_return err;
                   auto ttl = net::json_int(*body, "ttl_ms", err);
                   if (!ttl) co_return err;
                   auto wait = net::json_int(*body, "wait_ms", err, false);
                   if (!wait && err.status != 200) co_return err;
                   auto mode = net::json_string(*body, "mode", err, false);
                   if (!mode && err.status != 200) co_return err;
                   if (mode && *mode != "exclusive" && *mode != "shared")
                     co_return net::json_error(400, "field 'mode' must be 'exclusive' or 'shared'");
                   actors::lock_acquire q{r.param("name"),
                                          *owner,
                                          {},
                                          *ttl,
                                          wait.value_or(0),
                                          static_cast<std::uint8_t>(mode && *mode == "shared")};
                   co_return co_await lock_call(
                       std::move(q), r.param("name"),
                       std::chrono::milliseconds(std::max<std::int64_t>(0, wait.value_or(0))));
                 });

    http_->route(http::verb::post, "/api/v1/locks/{name}/renew",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto body = net::json_object_body(r, err);
                   if (!body) co_return err;
                   auto owner = net::json_string(*body, "owner", err);
                   if (!owner) co_return err;
                   auto token = json_token(*body, err);
                   if (!token) co_return err;
                   auto ttl = net::json_int(*body, "ttl_ms", err);
                   if (!ttl) co_return err;
                   actors::lock_renew q{r.param("name"), *owner, *token, *ttl};
                   co_return co_await lock_call(std::move(q), r.param("name"), 0ms);
                 });

    http_->route(http::verb::post, "/api/v1/locks/{name}/release",
                 [this](http_request& r) -> task<http_response> {
                   http_response err;
                   auto body = net::json_object_body(r, err);
                   if (!body) co_return err;
                   auto owner = net::json_string(*body, "owner", err);
                   if (!owner) co_return err;
                   auto token = json_token(*body, err);
                   if (!token) co_return err;
                   actors::lock_release q{r.param("name"), *owner, *token};
                   co_return co_await lock_call(std::move(q), r.param("name"), 0ms);
                 });
  }

  // Sends a lock request to the manager of the lock's slot and maps the reply.
  template <class Q>
  task<net::http_response> lock_call(Q q, std::string name, std::chrono::milliseconds wait) {
    if (name.empty()) co_return net::json_error(400, "empty lock name");
    const std::string key = actors::lock_slot_key(actors::lock_slot(name, 256));
    auto call = node_.route_ask<actors::lock_manager>(key, actors::lock_manager_name, std::move(q),
                                                      wait + 5s);
    result<actors::lock_reply> rep = co_await call;
    if (!rep) co_return net::json_error(net::http_status_for(rep.error()), rep.error().message());
    if (rep->error != 0) {
      const auto e = static_cast<actors::lock_errc>(rep->error);
      co_return net::json_error(lock_status(e), make_error_code(e).message());
    }
    json::object j;
    j["name"] = name;
    j["token"] = std::to_string(rep->token);  // a string: tokens exceed 2^53
    j["ttl_ms"] = rep->ttl_ms;
    j["holds"] = rep->holds;
    if constexpr (std::is_same_v<Q, actors::lock_release>) j["released"] = rep->holds == 0;
    co_return net::json_reply(j);
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
      deepest << "troupe_mailbox_deepest{shard=\"" << i << "\",actor=\"" << mb->deepest_type
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
    auto call = node_.state_of(2s);
    result<net::cluster_state> s = co_await std::move(call);
    if (s) {
      m << "# HELP troupe_link_up Whether the link to a peer is up.\n"
           "# TYPE troupe_link_up gauge\n";
      for (const auto& p : s->members)
        m << "troupe_link_up{peer=\"" << p.name << "\"} " << (p.up ? 1 : 0) << "\n";
      m << "# HELP troupe_link_bytes_total Bytes over a peer's link.\n"
           "# TYPE troupe_link_bytes_total counter\n";
      for (const auto& p : s->members) {
        m << "troupe_link_bytes_total{peer=\"" << p.name << "\",direction=\"in\"} "
          << p.stats.bytes_in << "\n";
        m << "troupe_link_bytes_total{peer=\"" << p.name << "\",direction=\"out\"} "
          << p.stats.bytes_out << "\n";
      }
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
        << ls->waiters << "\n";
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
        << "\n# HELP troupe_saga_step_seconds Saga step calls (each attempt of an action, "
           "compensation or two-phase call).\n"
           "# TYPE troupe_saga_step_seconds histogram\n";
      const auto& le = saga::orchestrator_stats::bucket_le;
      for (std::size_t i = 0; i < le.size(); ++i)
        m << "troupe_saga_step_seconds_bucket{le=\"" << le[i] << "\"} " << ss->step_buckets[i]
          << "\n";
      m << "troupe_saga_step_seconds_bucket{le=\"+Inf\"} " << ss->step_buckets.back()
        << "\ntroupe_saga_step_seconds_sum " << ss->step_seconds_sum
        << "\ntroupe_saga_step_seconds_count " << ss->step_buckets.back()
        << "\n# HELP troupe_saga_step_failures_total Step calls that returned an error.\n"
           "# TYPE troupe_saga_step_failures_total counter\n"
           "troupe_saga_step_failures_total "
        << ss->step_failures << "\n";
    }
    m << "# HELP troupe_build_info The troupe version and source revision of this node.\n"
         "# TYPE troupe_build_info gauge\n"
         "troupe_build_info{version=\""
      << troupe::library_version() << "\",revision=\"" << troupe::revision() << "\"} 1\n";
    const net::http_stats hs = http_->stats();
    m << "# HELP troupe_http_requests_total HTTP requests served.\n"
         "# TYPE troupe_http_requests_total counter\n"
         "troupe_http_requests_total "
      << hs.requests
      << "\n# HELP troupe_http_client_errors_total Requests answered with a 4xx.\n"
         "# TYPE troupe_http_client_errors_total counter\n"
         "troupe_http_client_errors_total "
      << hs.client_errors << "\n";
    if (cfg_.tls.enabled())
      m << "# HELP troupe_http_tls_refused_total HTTPS connections whose TLS handshake failed "
           "(e.g. plain HTTP).\n"
           "# TYPE troupe_http_tls_refused_total counter\n"
           "troupe_http_tls_refused_total "
        << hs.tls_refused << "\n";
    co_return net::http_response{200, m.str(), "text/plain; version=0.0.4"};
  }

  // The cluster links' caps: what they refused, and the tables they bound.
  static void link_limit_metrics(std::ostringstream& m, const net::cluster_state& s) {
    const net::limit_stats& l = s.limits;
    m << "# HELP troupe_link_queued_bytes Bytes waiting to be written to a peer.\n"
         "# TYPE troupe_link_queued_bytes gauge\n";
    for (const auto& p : s.members)
      m << "troupe_link_queued_bytes{peer=\"" << p.name << "\"} " << p.stats.queued_bytes << "\n";
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
};

}  // namespace

int troupe::net::node_main(int argc, char** argv, std::vector<node_extension> extensions) {
  CLI::App app{
      "troupe-node: one node of a troupe cluster (cluster link, ring, locks, sagas, HTTP)"};
  config c;
  c.extensions = std::move(extensions);
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
  app.add_option("--lock-max-ttl-ms", lock_max_ttl_ms,
                 "longest lock lease; also the lock-delay after a restart")
      ->check(CLI::Range(1LL, 86'400'000LL))
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
    return fail(2, std::string(e.what()) + (env.empty() ? "" : " (set from the environment: " + env + ")") +
                       " (see --help)");
  }
  c.lock_max_ttl = std::chrono::milliseconds(lock_max_ttl_ms);
  link_caps.apply(c.link_caps);

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
  std::cout << "troupe-node " << c.name << ": cluster " << c.listen.host << ":"
            << node->cluster_port() << ", http " << c.http.host << ":" << node->http_port()
            << ", shards " << c.shards << std::endl;
  // systemd (Type=notify): ready when /readyz would say so; no-op elsewhere.
  node->when_ready([] {
    ::sd_notify(0, "READY=1\nSTATUS=ready");
  });
  int sig = 0;
  sigwait(&stop_signals, &sig);
  ::sd_notify(0, "STOPPING=1");
  std::cout << "troupe-node " << c.name << ": " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ", stopping" << std::endl;
  node.reset();
  std::cout << "troupe-node " << c.name << ": stopped" << std::endl;
  return 0;
}
