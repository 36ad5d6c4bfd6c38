// SPDX-License-Identifier: BSL-1.0
// order-demo: the order-saga cluster demo (README.md beside this file).
//
// Starts three order-node processes on 127.0.0.1 — inventory on node-1,
// payment on node-2, shipping on node-3, an orchestrator on each — places
// orders over HTTP as "order" sagas, kills one node with SIGKILL mid-run and
// restarts it, waits for every saga to finish, then checks the services'
// books: stock + reservations + shipped = initial, money conserved, every
// completed order paid and shipped exactly once. Prints PASS or FAIL (exit
// status 0 or 1).

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// --- a blocking HTTP/1.1 client, one keep-alive connection, reconnecting ---

struct reply {
  unsigned status = 0;  // 0: no answer (connection refused, reset, timed out)
  std::string body;
};

class client {
 public:
  explicit client(unsigned short port) : port_(port) {}
  reply call(http::verb v, const std::string& target, const std::string& body = {}) {
    boost::system::error_code ec;
    if (!connected_) {
      stream_.expires_after(2s);
      stream_.connect(asio::ip::tcp::endpoint{asio::ip::make_address("127.0.0.1"), port_}, ec);
      if (ec) return drop(ec);
      connected_ = true;
    }
    http::request<http::string_body> req{v, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = body;
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.prepare_payload();
    req.keep_alive(true);
    stream_.expires_after(70s);  // above the longest long poll
    http::write(stream_, req, ec);
    if (ec) return drop(ec);
    http::response<http::string_body> res;
    http::read(stream_, buf_, res, ec);
    if (ec) return drop(ec);
    if (!res.keep_alive()) close();
    return reply{res.result_int(), std::move(res.body())};
  }

 private:
  reply drop(const boost::system::error_code& ec) {
    close();
    return reply{0, ec.message()};
  }
  void close() {
    boost::system::error_code ignored;
    stream_.socket().close(ignored);
    buf_.clear();
    connected_ = false;
  }
  asio::io_context io_;
  beast::tcp_stream stream_{io_};
  beast::flat_buffer buf_;
  unsigned short port_;
  bool connected_ = false;
};

// --- the nodes, as child processes ---

unsigned short free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
  ::close(fd);
  return ntohs(a.sin_port);
}

struct node_proc {
  std::string name;
  unsigned short cluster = 0, http = 0;
  std::vector<std::string> args;
  std::string log;
  pid_t pid = -1;

  void start(const std::string& bin) {
    pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the demo
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(bin.c_str()));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      std::fprintf(stderr, "order-demo: cannot run %s: %s\n", bin.c_str(), std::strerror(errno));
      ::_exit(127);
    }
  }
  bool running() {
    if (pid <= 0) return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      pid = -1;
      return false;
    }
    return true;
  }
  void kill9() {
    if (pid > 0) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  // SIGTERM (an orderly stop), then SIGKILL after `grace`.
  void stop(std::chrono::milliseconds grace = 5s) {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    const auto until = clock_type::now() + grace;
    while (clock_type::now() < until) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = -1;
        return;
      }
      std::this_thread::sleep_for(20ms);  // polling a child's exit
    }
    kill9();
  }
  std::string log_tail(std::size_t lines = 8) const {
    std::ifstream f(log);
    std::vector<std::string> all;
    for (std::string l; std::getline(f, l);) all.push_back(l);
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
      out += "    " + all[i] + "\n";
    return out;
  }
};

// Polls /healthz until the node answers (or its process ends, or 30 s).
bool wait_healthy(node_proc& n) {
  client c(n.http);
  const auto until = clock_type::now() + 30s;
  while (clock_type::now() < until) {
    if (!n.running()) return false;
    if (c.call(http::verb::get, "/healthz").status == 200) return true;
    std::this_thread::sleep_for(50ms);  // a process starting up: nothing to wait on
  }
  return false;
}

// Polls /api/v1/cluster until the node sees `peers` members up.
bool wait_linked(const node_proc& n, std::size_t peers) {
  client c(n.http);
  const auto until = clock_type::now() + 30s;
  while (clock_type::now() < until) {
    reply r = c.call(http::verb::get, "/api/v1/cluster");
    if (r.status == 200) {
      std::size_t up = 0;
      const json::value v = json::parse(r.body);  // named: the loop below borrows from it
      for (const auto& m : v.at("members").as_array()) up += m.at("status").as_string() == "up";
      if (up >= peers) return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// --- the orders ---

struct order {
  std::string id, sku, customer;
  std::int64_t qty = 0, cents = 0;
  std::size_t home = 0;  // the node whose orchestrator runs its saga
  // Filled in by the worker that placed it.
  std::string saga_id, state, error;
  std::int64_t latency_ms = -1;
};

std::atomic<std::size_t> next_order{0}, placed{0}, completed{0}, compensated{0}, stuck{0},
    unplaced{0};
std::atomic<bool> stopping{false};

bool terminal(const std::string& s) {
  return s == "completed" || s == "compensated" || s == "stuck";
}

// Places orders and waits for each saga to finish, one at a time, retrying
// across a node's outage: the idempotency key makes a repeated POST return
// the saga the first one created.
void worker(std::vector<order>& orders, const std::vector<node_proc>& nodes) {
  std::vector<std::unique_ptr<client>> clients;
  for (const auto& n : nodes) clients.push_back(std::make_unique<client>(n.http));
  for (std::size_t i; !stopping && (i = next_order++) < orders.size();) {
    order& o = orders[i];
    client& c = *clients[o.home];
    json::object body{{"input", json::object{{"order", o.id},
                                             {"sku", o.sku},
                                             {"qty", o.qty},
                                             {"customer", o.customer},
                                             {"cents", o.cents}}},
                      {"idempotency_key", o.id}};
    const std::string text = json::serialize(body);
    const auto give_up = clock_type::now() + 120s;
    while (!stopping && clock_type::now() < give_up) {
      reply r = c.call(http::verb::post, "/api/v1/sagas/order", text);
      if (r.status == 200 || r.status == 201) {
        o.saga_id = json::parse(r.body).at("id").as_string().c_str();
        break;
      }
      if (r.status >= 400 && r.status < 500) {
        o.error = "refused: " + r.body;
        break;
      }
      std::this_thread::sleep_for(100ms);  // the node is down or restarting: try again
    }
    if (o.saga_id.empty()) {
      if (o.error.empty()) o.error = "could not be placed in 120 s";
      ++unplaced;
      continue;
    }
    ++placed;
    while (!stopping && clock_type::now() < give_up + 600s) {
      reply r = c.call(http::verb::get, "/api/v1/sagas/" + o.saga_id + "?wait_ms=10000");
      if (r.status == 200) {
        json::value v = json::parse(r.body);
        const std::string state(v.at("state").as_string());
        if (terminal(state)) {
          o.state = state;
          o.latency_ms = v.at("updated_ms").as_int64() - v.at("created_ms").as_int64();
          if (auto* e = v.as_object().if_contains("error")) o.error = e->as_string().c_str();
          (state == "completed" ? completed : state == "compensated" ? compensated : stuck)++;
          break;
        }
        continue;
      }
      std::this_thread::sleep_for(100ms);  // the home node is down or restarting
    }
  }
}

std::string thousands(std::int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

std::optional<json::value> get_json(unsigned short port, const std::string& target) {
  client c(port);
  reply r = c.call(http::verb::get, target);
  if (r.status != 200) return std::nullopt;
  return json::parse(r.body);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "order-demo: three troupe nodes run order sagas across inventory, payment and "
      "shipping services, survive a node being killed, and check their books"};
  std::size_t n_orders = 1000, concurrency = 32;
  bool no_kill = false, serve = false, keep = false;
  std::string victim = "node-2", node_bin, data_dir;
  double kill_at = 0.4;
  int decline = 10;
  unsigned seed = 1;
  app.add_option("--orders", n_orders, "orders to place")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--concurrency", concurrency, "orders in flight at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_flag("--no-kill", no_kill, "do not kill a node mid-run");
  app.add_option("--kill", victim, "the node to kill with SIGKILL and restart")
      ->check(CLI::IsMember({"node-1", "node-2", "node-3"}))
      ->capture_default_str();
  app.add_option("--kill-at", kill_at, "when to kill it: the share of orders finished")
      ->check(CLI::Range(0.0, 0.95))
      ->capture_default_str();
  app.add_option("--decline-percent", decline, "share of orders the payment service declines")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  app.add_option("--seed", seed, "seed of the generated orders")->capture_default_str();
  app.add_flag("--serve", serve, "leave the cluster running after the summary (Ctrl-C stops it)");
  app.add_option("--node-bin", node_bin, "the order-node binary (default: beside order-demo)");
  app.add_option("--data-dir", data_dir,
                 "where the nodes keep their data (default: a new "
                 "temporary directory, removed at the end)");
  app.add_flag("--keep-data", keep, "keep the temporary data directory");
  CLI11_PARSE(app, argc, argv);

  if (node_bin.empty())
    node_bin =
        (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "order-node").string();
  if (::access(node_bin.c_str(), X_OK) != 0) {
    std::cerr << "order-demo: " << node_bin << " is not an executable (see --node-bin)\n";
    return 2;
  }
  const bool own_dir = data_dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/troupe-order-demo.XXXXXX";
    if (!::mkdtemp(tmpl)) {
      std::cerr << "order-demo: cannot create a temporary directory: " << std::strerror(errno)
                << "\n";
      return 2;
    }
    data_dir = tmpl;
  }

  // Signals are taken by sigtimedwait in the main loop; threads and children
  // start with them blocked (children unblock them before exec).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // The cluster, its links authenticated by a secret made for this run.
  const std::string secret_file = data_dir + "/cluster.secret";
  {
    std::random_device rd;
    std::ofstream f(secret_file);
    for (int i = 0; i < 4; ++i) f << std::hex << rd() << rd();
    f << "\n";
    f.close();
    std::error_code ec;  // troupe-node refuses a secret file others may read
    std::filesystem::permissions(
        secret_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    if (!f || ec) {
      std::cerr << "order-demo: cannot write " << secret_file << "\n";
      return 2;
    }
  }
  std::vector<node_proc> nodes(3);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    nodes[i].name = "node-" + std::to_string(i + 1);
    nodes[i].cluster = free_port();
    nodes[i].http = free_port();
    nodes[i].log = data_dir + "/" + nodes[i].name + ".log";
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    auto& n = nodes[i];
    n.args = {"--name", n.name, "--listen", "127.0.0.1:" + std::to_string(n.cluster), "--http",
              "127.0.0.1:" + std::to_string(n.http), "--data-dir", data_dir + "/" + n.name,
              "--shop-layout", "inventory=node-1,payment=node-2,shipping=node-3",
              "--shop-decline-percent", std::to_string(decline),
              // The majority rule: locks are granted only with 2 of the 3
              // nodes in touch, and a fresh cluster hands its lock slots
              // over at once. A short lease cap: the slots of the node the
              // demo kills grant again 10 s after it went, not a minute.
              "--expect", "3", "--lock-max-ttl-ms", "10000", "--secret-file", secret_file};
    // Each node dials the ones before it: every pair has one dialer, which
    // redials when the other restarts.
    std::string seeds;
    for (std::size_t j = 0; j < i; ++j)
      seeds +=
          (seeds.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(nodes[j].cluster);
    if (!seeds.empty()) n.args.insert(n.args.end(), {"--seeds", seeds});
  }
  auto stop_all = [&] {
    for (auto& n : nodes) n.stop();
    if (own_dir && !keep) std::filesystem::remove_all(data_dir);
  };

  const bool tty = ::isatty(1);
  std::printf(
      "order-demo: 3 troupe nodes on 127.0.0.1 — inventory@node-1, payment@node-2, "
      "shipping@node-3, an orchestrator on each\n");
  std::printf("  data and logs: %s\n", data_dir.c_str());
  for (auto& n : nodes) {
    n.start(node_bin);
    if (!wait_healthy(n)) {
      std::printf("order-demo: %s did not start; its log:\n%s", n.name.c_str(),
                  n.log_tail().c_str());
      stop_all();
      return 1;
    }
    std::printf("  %s up: cluster 127.0.0.1:%u, http 127.0.0.1:%u\n", n.name.c_str(), n.cluster,
                n.http);
  }
  for (auto& n : nodes)
    if (!wait_linked(n, nodes.size() - 1)) {
      std::printf("order-demo: %s did not link to its peers; its log:\n%s", n.name.c_str(),
                  n.log_tail().c_str());
      stop_all();
      return 1;
    }

  // The orders: deterministic from the seed; order i runs on node i % 3.
  std::mt19937_64 rng(seed);
  std::vector<order> orders(n_orders);
  for (std::size_t i = 0; i < n_orders; ++i) {
    auto& o = orders[i];
    o.id = "order-" + std::to_string(i + 1);
    o.sku = "sku-" + std::to_string(rng() % 10);
    o.qty = 1 + static_cast<std::int64_t>(rng() % 3);
    o.customer = "customer-" + std::to_string(rng() % 100);
    o.cents = 100 + static_cast<std::int64_t>(rng() % 4901);
    o.home = i % nodes.size();
  }
  const std::size_t victim_i = static_cast<std::size_t>(victim.back() - '1');
  std::printf("  placing %zu orders, %zu at a time, ~%d%% declined by payment", n_orders,
              concurrency, decline);
  if (!no_kill)
    std::printf("; %s is killed (SIGKILL) at %.0f%% and restarted", victim.c_str(), kill_at * 100);
  std::printf("\n\n");

  const auto t0 = clock_type::now();
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < std::min(concurrency, n_orders); ++w)
    workers.emplace_back([&] { worker(orders, nodes); });

  bool killed = no_kill, interrupted = false;
  int abort_status = 130;  // Ctrl-C; 1 when a node failed
  std::string kill_note;
  auto last_print = clock_type::now() - 1h;
  auto progress = [&](bool final_line) {
    const std::size_t done = completed + compensated + stuck + unplaced;
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    char line[256];
    std::snprintf(line, sizeof line,
                  "  %5zu/%zu finished  %5zu completed  %4zu compensated  %zu stuck  %3zu in "
                  "flight  %6.0f orders/s",
                  done, n_orders, completed.load(), compensated.load(), stuck.load(),
                  placed - (completed + compensated + stuck), secs > 0 ? done / secs : 0.0);
    if (tty)
      std::printf("\r%s%s", line, final_line ? "\n" : "");
    else
      std::printf("%s\n", line);
    std::fflush(stdout);
  };
  for (;;) {
    const std::size_t done = completed + compensated + stuck + unplaced;
    if (done >= n_orders) break;
    if (!killed && done >= static_cast<std::size_t>(kill_at * static_cast<double>(n_orders))) {
      killed = true;
      node_proc& v = nodes[victim_i];
      const std::size_t in_flight = placed - (completed + compensated + stuck);
      v.kill9();
      const auto down_at = clock_type::now();
      if (tty) std::printf("\n");
      std::printf("  ✗ %s killed with SIGKILL (%zu orders finished, %zu in flight)\n",
                  v.name.c_str(), done, in_flight);
      // The outage: the others see the link drop, their steps on it fail and retry.
      std::this_thread::sleep_for(1s);
      v.start(node_bin);
      if (!wait_healthy(v) || !wait_linked(v, nodes.size() - 1)) {
        std::printf("order-demo: %s did not come back; its log:\n%s", v.name.c_str(),
                    v.log_tail().c_str());
        stopping = true;
        interrupted = true;
        abort_status = 1;
        break;
      }
      std::string resumed = "0";
      {
        std::ifstream f(v.log);
        for (std::string l; std::getline(f, l);)
          if (auto p = l.find("resumed "); p != std::string::npos)
            resumed = l.substr(p + 8, l.find(' ', p + 8) - p - 8);
      }
      const double out_s = std::chrono::duration<double>(clock_type::now() - down_at).count();
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "%s killed at %zu/%zu finished, back in %.1f s, resumed %s "
                    "unfinished sagas from its log",
                    v.name.c_str(), done, n_orders, out_s, resumed.c_str());
      kill_note = buf;
      std::printf(
          "  ✓ %s restarted after %.1f s; it resumed %s unfinished sagas from its "
          "durable log\n",
          v.name.c_str(), out_s, resumed.c_str());
    }
    // A node that ends on its own (a crash) fails the demo at once, rather
    // than leaving the orders on it to time out.
    for (auto& n : nodes)
      if (!n.running()) {
        std::printf("\norder-demo: %s exited unexpectedly; its log:\n%s", n.name.c_str(),
                    n.log_tail().c_str());
        stopping = true;
        interrupted = true;
        abort_status = 1;
      }
    if (interrupted) break;
    if (clock_type::now() - last_print >= (tty ? 100ms : 2s)) {
      progress(false);
      last_print = clock_type::now();
    }
    timespec tick{0, 20'000'000};
    if (::sigtimedwait(&sigs, nullptr, &tick) > 0) {
      stopping = true;
      interrupted = true;
      break;
    }
  }
  if (interrupted) {
    std::printf("\norder-demo: stopping%s\n", abort_status == 1 ? " — FAIL" : "");
    stop_all();
    for (auto& w : workers) w.detach();
    std::fflush(stdout);
    std::_Exit(abort_status);
  }
  for (auto& w : workers) w.join();
  progress(true);
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();

  // --- the summary ---
  std::vector<std::int64_t> lat;
  std::map<std::string, std::size_t> reasons;
  std::int64_t paid = 0, units = 0;
  std::size_t lost = 0;
  for (const auto& o : orders) {
    if (o.latency_ms >= 0) lat.push_back(o.latency_ms);
    if (o.state == "completed") paid += o.cents, units += o.qty;
    if (o.state == "compensated" || o.state == "stuck") ++reasons[o.error];
    if (!terminal(o.state)) ++lost;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return lat.empty() ? 0
                       : lat[std::min(lat.size() - 1, static_cast<std::size_t>(p * lat.size()))];
  };
  std::printf("\nsummary\n");
  std::printf("  orders       %s placed, %zu never finished\n", thousands(placed).c_str(), lost);
  std::printf("  completed    %s\n", thousands(completed).c_str());
  std::printf("  compensated  %s", thousands(compensated).c_str());
  for (const auto& [why, count] : reasons)
    std::printf("%s %zu %s", &why == &reasons.begin()->first ? " —" : ",", count,
                why.empty() ? "(no reason)" : why.c_str());
  std::printf("\n  stuck        %zu\n", stuck.load());
  std::printf("  throughput   %.0f orders/s (%.1f s)\n", n_orders / secs, secs);
  std::printf("  latency      p50 %lld ms, p99 %lld ms, max %lld ms (saga start to finish)\n",
              static_cast<long long>(pct(0.50)), static_cast<long long>(pct(0.99)),
              static_cast<long long>(lat.empty() ? 0 : lat.back()));
  if (!kill_note.empty()) std::printf("  failure      %s\n", kill_note.c_str());

  // --- the books ---
  std::printf("\nconsistency\n");
  bool pass = lost == 0 && stuck == 0 && unplaced == 0;
  auto check = [&](bool ok, const std::string& what) {
    std::printf("  %-4s %s\n", ok ? "ok" : "FAIL", what.c_str());
    pass = pass && ok;
  };
  check(lost == 0 && unplaced == 0,
        "every order's saga finished (" + thousands(placed) + " of " + thousands(n_orders) + ")");
  check(stuck == 0, "no saga stuck in compensation");
  auto inv = get_json(nodes[0].http, "/api/v1/shop/inventory");
  auto pay = get_json(nodes[1].http, "/api/v1/shop/payments");
  auto ship = get_json(nodes[2].http, "/api/v1/shop/shipping");
  if (!inv || !pay || !ship) {
    check(false, "the services' books could not be read");
  } else {
    std::int64_t initial = 0, avail = 0, reserved = 0, shipped = 0;
    bool per_sku = true;
    for (const auto& s : inv->at("skus").as_array()) {
      const auto i = s.at("initial").as_int64(), a = s.at("available").as_int64(),
                 r = s.at("reserved").as_int64(), sh = s.at("shipped").as_int64();
      per_sku = per_sku && a + r + sh == i;
      initial += i, avail += a, reserved += r, shipped += sh;
    }
    check(per_sku && avail + reserved + shipped == initial,
          "stock: available " + thousands(avail) + " + reserved " + thousands(reserved) +
              " + shipped " + thousands(shipped) + " = initial " + thousands(initial) +
              " (each SKU)");
    check(reserved == 0, "no reservation left held: " + thousands(reserved) + " units");
    check(shipped == units, "units shipped " + thousands(shipped) +
                                " = units of completed orders " + thousands(units));
    const auto ci = pay->at("customers_initial").as_int64(),
               cb = pay->at("customers_balance").as_int64(), m = pay->at("merchant").as_int64();
    check(cb + m == ci, "money: customers " + thousands(cb) + " + merchant " + thousands(m) +
                            " = initial " + thousands(ci) + " cents");
    check(m == paid, "merchant " + thousands(m) + " = sum of completed orders " + thousands(paid) +
                         " cents (each charged once)");
    const auto created = ship->at("shipments").at("created").as_int64();
    check(created == static_cast<std::int64_t>(completed.load()),
          "shipments " + thousands(created) + " = completed orders " + thousands(completed));
  }
  std::printf("\n%s\n", pass ? "PASS" : "FAIL");
  std::fflush(stdout);

  if (serve) {
    const auto p1 = nodes[0].http, p2 = nodes[1].http, p3 = nodes[2].http;
    std::printf(
        "\nThe cluster stays up; try (Ctrl-C stops everything):\n"
        "  curl -s 127.0.0.1:%u/api/v1/cluster\n"
        "  curl -s '127.0.0.1:%u/api/v1/ring/owner?key=order-42'\n"
        "  curl -s -X POST 127.0.0.1:%u/api/v1/sagas/order -d "
        "'{\"input\":{\"order\":\"order-x1\",\"sku\":\"sku-1\",\"qty\":1,"
        "\"customer\":\"customer-7\",\"cents\":1250}}'\n"
        "  curl -s '127.0.0.1:%u/api/v1/sagas/1?wait_ms=5000'\n"
        "  curl -s '127.0.0.1:%u/api/v1/sagas?state=compensated&limit=5'\n"
        "  curl -s 127.0.0.1:%u/api/v1/shop/inventory\n"
        "  curl -s 127.0.0.1:%u/api/v1/shop/payments\n"
        "  curl -s 127.0.0.1:%u/api/v1/shop/shipping\n"
        "  curl -s -X POST 127.0.0.1:%u/api/v1/locks/demo/acquire -d "
        "'{\"owner\":\"me\",\"ttl_ms\":10000,\"wait_ms\":15000}'\n"
        "  curl -s 127.0.0.1:%u/metrics\n"
        "  data and logs: %s\n",
        p1, p1, p1, p1, p1, p1, p2, p3, p1, p1, data_dir.c_str());
    std::fflush(stdout);
    int sig = 0;
    ::sigwait(&sigs, &sig);
    std::printf("order-demo: stopping the cluster\n");
  }
  stop_all();
  return pass ? 0 : 1;
}
