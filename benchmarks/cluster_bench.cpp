// SPDX-License-Identifier: BSL-1.0
// Failures, measured on troupe-node processes on 127.0.0.1 (as an operator
// runs them), each figure beside the bound its flags configure:
//
//   false_down_per_hour 5 nodes beside a CPU hog on both cores for 10 min
//                       (TROUPE_FALSE_DOWN_SECONDS; --smoke: 5 s): members
//                       declared down, per hour (beside: suspicions per hour,
//                       what a fixed --down-after-ms window would have downed)
//   failure_detect_ms   5 nodes, kill -9 of one, until every survivor's
//                       /api/v1/cluster says it is down (bound: --down-after-ms)
//   lock_failover_ms    3 nodes with --expect 3, kill -9 of the node that owns a
//                       lock's slot, until a try-lock through a survivor is
//                       granted (bound: --down-after-ms + --lock-max-ttl-ms)
//   lock_first_grant_ms 3 fresh nodes with --expect 3 and the default max TTL,
//                       from the first start until the first try-lock is
//                       granted (beside: the 60 s lock-delay a first start
//                       waited before slots were handed over)

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <thread>
#include <troupe/actors/locks.hpp>

#include "bench.hpp"
#include "net/http_client.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

[[noreturn]] void fail(const std::string& why) { throw std::runtime_error(why); }

std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// "--log-level X" among the extra flags (then taken out of them), else warn.
std::string extra_log_level(std::vector<std::string>& extra) {
  for (std::size_t i = 0; i + 1 < extra.size(); ++i)
    if (extra[i] == "--log-level") {
      std::string level = extra[i + 1];
      extra.erase(extra.begin() + static_cast<std::ptrdiff_t>(i),
                  extra.begin() + static_cast<std::ptrdiff_t>(i + 2));
      return level;
    }
  return "warn";
}

// Lines of a file that contain `needle`.
std::size_t count_lines(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// One troupe-node; its output goes to a file in its data dir.
class node_process {
 public:
  node_process(const std::string& name, std::uint16_t cluster, std::uint16_t http_port,
               std::uint16_t seed, const std::string& dir, std::vector<std::string> extra)
      : http_(http_port) {
    std::filesystem::create_directories(dir);
    pid_ = ::fork();
    if (pid_ < 0) fail("fork");
    if (pid_ == 0) {
      const std::string log = dir + "/out.log";
      if (!std::freopen(log.c_str(), "w", stdout) || !std::freopen(log.c_str(), "a", stderr))
        ::_exit(126);
      std::vector<std::string> args{TROUPE_NODE_BIN,
                                    "--name",
                                    name,
                                    "--cluster",
                                    "bench",
                                    "--listen",
                                    "127.0.0.1:" + std::to_string(cluster),
                                    "--http",
                                    "127.0.0.1:" + std::to_string(http_port),
                                    "--seeds",
                                    "127.0.0.1:" + std::to_string(seed),
                                    "--shards",
                                    "1",
                                    "--data-dir",
                                    dir,
                                    "--log-level",
                                    extra_log_level(extra)};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& x : args) argv.push_back(x.data());
      argv.push_back(nullptr);
      ::execv(TROUPE_NODE_BIN, argv.data());
      ::_exit(127);
    }
  }
  ~node_process() { kill(SIGTERM); }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::uint16_t http() const { return http_; }

 private:
  pid_t pid_ = -1;
  std::uint16_t http_;
};

// A cluster of n troupe-node processes, all seeded with the first.
struct cluster {
  std::string dir;
  std::vector<std::unique_ptr<node_process>> nodes;
  clock_type::time_point started;
  cluster(int n, const std::vector<std::string>& extra) {
    dir = "/tmp/troupe-cluster-bench-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::vector<std::uint16_t> cp, hp;
    for (int i = 0; i < n; ++i) {
      cp.push_back(free_port());
      hp.push_back(free_port());
    }
    started = clock_type::now();
    for (int i = 0; i < n; ++i)
      nodes.push_back(std::make_unique<node_process>("c" + std::to_string(i), cp[i], hp[i], cp[0],
                                                     dir + "/c" + std::to_string(i), extra));
  }
  ~cluster() {
    nodes.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  // One HTTP call to node i (status 0: no answer).
  troupe::test::reply call(int i, http::verb v, const std::string& target,
                           const std::string& body = {}) {
    try {
      troupe::test::client c("127.0.0.1", nodes[i]->http(), std::chrono::seconds(5));
      return c.call(v, target, body);
    } catch (const std::exception& e) {
      return troupe::test::reply{0, e.what(), true};
    }
  }
  // Node i's members and their status.
  std::map<std::string, std::string> members(int i) {
    std::map<std::string, std::string> m;
    auto r = call(i, http::verb::get, "/api/v1/cluster");
    if (r.status != 200) return m;
    const json::value body = json::parse(r.body);  // kept: the loop reads into it
    for (auto& x : body.as_object().at("members").as_array())
      m[std::string(x.as_object().at("name").as_string())] =
          std::string(x.as_object().at("status").as_string());
    return m;
  }
  bool formed() {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      auto m = members(static_cast<int>(i));
      std::size_t up = 0;
      for (auto& [name, st] : m) up += st == "up";
      if (up != nodes.size() - 1) return false;
    }
    return true;
  }
  bool try_lock(int via, const std::string& lock) {
    auto r = call(via, http::verb::post, "/api/v1/locks/" + lock + "/acquire",
                  R"({"owner":"bench","ttl_ms":1000,"wait_ms":0})");
    if (r.status != 200) return false;
    const std::string token = json::serialize(json::parse(r.body).as_object().at("token"));
    call(via, http::verb::post, "/api/v1/locks/" + lock + "/release",
         R"({"owner":"bench","token":)" + token + "}");
    return true;
  }
};

// Polls f every millisecond (the nodes' own progress) until true; ms taken.
template <class F>
double poll_ms(clock_type::time_point from, F&& f, std::chrono::seconds limit) {
  while (!f()) {
    if (clock_type::now() - from > limit) fail("no result within the limit");
    std::this_thread::sleep_for(1ms);
  }
  return std::chrono::duration<double, std::milli>(clock_type::now() - from).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 3;
  try {
    if (a.wants("false_down_per_hour")) {
      // 5 nodes with the default detector (heartbeat 250 ms, --down-after-ms
      // 1500, --phi-threshold 8) beside a CPU hog on both cores. Beside the
      // downs: the suspicions, each a silence past --down-after-ms — what a
      // fixed window of that length would have downed.
      const char* env = std::getenv("TROUPE_FALSE_DOWN_SECONDS");
      const int seconds = a.smoke ? 5 : (env ? std::max(1, std::atoi(env)) : 600);
      cluster c(5, {"--log-level", "info"});
      poll_ms(
          c.started, [&] { return c.formed(); }, 60s);
      std::atomic<bool> stop{false};
      std::vector<std::thread> hog;
      for (int i = 0; i < 2; ++i)
        hog.emplace_back([&] {
          volatile std::uint64_t x = 0;
          while (!stop.load(std::memory_order_relaxed)) x = x + 1;
        });
      std::this_thread::sleep_for(std::chrono::seconds(seconds));  // the measured period
      stop = true;
      for (auto& t : hog) t.join();
      std::size_t downs = 0, suspicions = 0;
      for (int i = 0; i < 5; ++i) {
        const std::string log = c.dir + "/c" + std::to_string(i) + "/out.log";
        downs += count_lines(log, "closed: peer silent");
        suspicions += count_lines(log, "suspected: silent");
      }
      const double hours = seconds / 3600.0;
      troupe::bench::report(
          "false_down_per_hour", static_cast<double>(downs) / hours, "per hour",
          static_cast<double>(suspicions) / hours,
          "suspicions per hour in the same run (silences past --down-after-ms: downs with a "
          "fixed window)",
          "0", a,
          "\"nodes\":5,\"seconds\":" + std::to_string(seconds) + ",\"hog_threads\":2,\"downs\":" +
              std::to_string(downs) + ",\"suspicions\":" + std::to_string(suspicions));
    }
    if (a.wants("failure_detect_ms")) {
      std::vector<double> v;
      for (int r = 0; r < runs; ++r) {
        cluster c(5, {});
        poll_ms(
            c.started, [&] { return c.formed(); }, 60s);
        c.nodes[4]->kill(SIGKILL);
        const auto t0 = clock_type::now();
        v.push_back(poll_ms(
            t0,
            [&] {
              for (int i = 0; i < 4; ++i)
                if (c.members(i)["c4"] == "up") return false;
              return true;
            },
            60s));
      }
      troupe::bench::report("failure_detect_ms", median(v), "ms", 1500,
                            "the configured bound: --down-after-ms (heartbeat 250 ms)", "report", a,
                            "\"nodes\":5");
    }
    if (a.wants("lock_failover_ms")) {
      const int ttl = 3000, down = 1500;
      std::vector<double> v;
      for (int r = 0; r < runs; ++r) {
        cluster c(3, {"--expect", "3", "--lock-max-ttl-ms", std::to_string(ttl)});
        poll_ms(
            c.started, [&] { return c.formed(); }, 60s);
        // A lock whose slot node c2 owns.
        std::string lock;
        for (int k = 0; lock.empty() && k < 10'000; ++k) {
          const std::string name = "failover-" + std::to_string(k);
          const std::string key =
              troupe::actors::lock_slot_key(troupe::actors::lock_slot(name, 256));
          auto o = c.call(0, http::verb::get, "/api/v1/ring/owner?key=" + key);
          if (o.status == 200 &&
              json::value_to<std::string>(json::parse(o.body).as_object().at("node")) == "c2")
            lock = name;
        }
        if (lock.empty()) fail("no lock owned by c2");
        poll_ms(
            c.started, [&] { return c.try_lock(0, lock); }, 60s);  // served before
        c.nodes[2]->kill(SIGKILL);
        const auto t0 = clock_type::now();
        v.push_back(poll_ms(
            t0, [&] { return c.try_lock(0, lock); }, 60s));
      }
      troupe::bench::report("lock_failover_ms", median(v), "ms", ttl + down,
                            "the configured bound: --down-after-ms + --lock-max-ttl-ms", "<= 1.0x",
                            a, "\"nodes\":3,\"lock_max_ttl_ms\":3000,\"down_after_ms\":1500");
    }
    if (a.wants("lock_first_grant_ms")) {
      // The default max TTL (60 s): a first start used to wait that long.
      const int ttl = 60'000;
      std::vector<double> v;
      for (int r = 0; r < runs; ++r) {
        cluster c(3, {"--expect", "3"});
        v.push_back(poll_ms(
            c.started, [&] { return c.try_lock(1, "first"); }, 90s));
      }
      troupe::bench::report("lock_first_grant_ms", median(v), "ms", ttl,
                            "the lock-delay a first start waited before slots were handed over "
                            "(the default --lock-max-ttl-ms)",
                            "<= 1000", a, "\"nodes\":3");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cluster_bench: %s\n", e.what());
    return 1;
  }
}
