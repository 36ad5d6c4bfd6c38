// SPDX-License-Identifier: BSL-1.0
// The lock-manager:
//
//   lock_local              acquire + release pairs from one client on the
//                           manager's shard, uncontended; pairs/s
//   lock_remote             50 concurrent clients on node A, locks served by
//                           node B over the link, through the locks client
//                           (routing, guards); pairs/s
//   lock_remote_over_redis  lock_remote against Redis (SET key val NX PX ttl
//                           + DEL), 50 concurrent connections from one thread,
//                           redis-server started on a loopback port by this
//                           program; ratio
//   lock_handoff            one lock, 8 waiters each acquiring and releasing
//                           it in turn; handoffs/s
//
// The nodes run in one process (two runtimes of one shard each, linked over
// 127.0.0.1); lock-delay is shortened so the run starts at once.

#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>
#include <troupe/actors/locks.hpp>
#include <troupe/core.hpp>
#include <troupe/net/node.hpp>

#include "bench.hpp"

using namespace std::chrono_literals;
using troupe::result;
using troupe::task;
namespace net = troupe::net;
namespace actors = troupe::actors;

namespace {

[[noreturn]] void fail(const std::string& why) { throw std::runtime_error(why); }

template <class F>
void wait_until(F f, std::chrono::seconds limit, const char* what) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!f()) {
    if (std::chrono::steady_clock::now() > end) fail(std::string("timed out: ") + what);
    std::this_thread::yield();
  }
}

troupe::runtime_options one_shard() {
  troupe::runtime_options o;
  o.shards = 1;
  o.log = [](const troupe::log_record&) {};
  return o;
}

net::node_options node_opts(const char* name, std::vector<net::endpoint> seeds = {}) {
  net::node_options o;
  o.name = name;
  o.cluster = "troupe-bench";
  o.secret = "bench";
  o.seeds = std::move(seeds);
  return o;
}

actors::lock_options quick_start() {
  actors::lock_options o;
  o.max_ttl = 30s;
  o.lock_delay = 10ms;  // a fresh benchmark cluster: nobody held anything before
  return o;
}

// --- lock_local and its baseline ------------------------------------------------

struct echo : troupe::actor {
  std::uint64_t handle(std::uint64_t v) { return v; }
};
struct run_pairs {
  std::uint64_t n;
};
// Pairs of asks to a trivial actor: the same two round trips without a lock.
struct echo_client : troupe::actor {
  explicit echo_client(troupe::actor_ref<echo> e) : e_(std::move(e)) {}
  task<bool> handle(run_pairs r) {
    for (std::uint64_t i = 0; i < r.n; ++i) {
      auto a = e_.ask(i, 5s);
      result<std::uint64_t> x = co_await a;
      auto b = e_.ask(i, 5s);
      result<std::uint64_t> y = co_await b;
      if (!x || !y) co_return false;
    }
    co_return true;
  }
  troupe::actor_ref<echo> e_;
};
std::vector<std::string> lock_names(std::size_t n, const char* prefix) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back(prefix + std::to_string(i));
  return v;
}
struct lock_pairs_client : troupe::actor {
  lock_pairs_client(troupe::actor_ref<actors::lock_manager> m,
                    const std::vector<std::string>* names, std::string node)
      : m_(std::move(m)), names_(names), node_(std::move(node)) {}
  task<bool> handle(run_pairs r) {
    const std::string owner = node_ + "/bench";
    for (std::uint64_t i = 0; i < r.n; ++i) {
      const std::string& name = (*names_)[i % names_->size()];
      actors::lock_acquire q{name, owner, node_, 10'000, 0, 0};
      auto a = m_.ask(std::move(q), 5s);
      result<actors::lock_reply> g = co_await a;
      if (!g || g->error != 0) co_return false;
      actors::lock_release rel{name, owner, g->token};
      auto b = m_.ask(std::move(rel), 5s);
      result<actors::lock_reply> done = co_await b;
      if (!done || done->error != 0) co_return false;
    }
    co_return true;
  }
  troupe::actor_ref<actors::lock_manager> m_;
  const std::vector<std::string>* names_;
  std::string node_;
};

template <class A>
double pairs_per_s(troupe::runtime& rt, const troupe::actor_ref<A>& c, std::uint64_t n) {
  auto t0 = std::chrono::steady_clock::now();
  auto ok = rt.ask_sync(c, run_pairs{n}, 120s);
  const double secs = troupe::bench::seconds_since(t0);
  if (!ok || !*ok) fail("a pair failed");
  return static_cast<double>(n) / secs;
}

void bench_local(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(1'000'000);
  troupe::runtime rt{one_shard()};
  net::node node{rt, node_opts("bench-a")};
  actors::router router{node};
  actors::lock_service service{node, router, quick_start()};
  auto names = lock_names(1024, "local/");
  auto client = rt.spawn<lock_pairs_client>(service.ref(), &names, "bench-a");
  // Past the lock-delay: the first pairs succeed.
  wait_until(
      [&] {
        auto r = rt.ask_sync(client, run_pairs{1}, 5s);
        return r && *r;
      },
      10s, "lock-delay");
  auto e = rt.spawn<echo>();
  auto ec = rt.spawn<echo_client>(e);
  pairs_per_s(rt, ec, std::min<std::uint64_t>(n, 10'000));
  pairs_per_s(rt, client, std::min<std::uint64_t>(n, 10'000));
  const double base = troupe::bench::median_of(runs, [&] { return pairs_per_s(rt, ec, n); });
  const double v = troupe::bench::median_of(runs, [&] { return pairs_per_s(rt, client, n); });
  troupe::bench::report(
      "lock_local", v, "pairs/s", base,
      "two asks to a trivial actor on the same shard (the same round trips, no lock)", ">= 2000000",
      a, "\"locks\":1024,\"pairs\":" + std::to_string(n));
}

// --- lock_handoff ----------------------------------------------------------------

struct run_handoffs {
  std::uint64_t until;  // stop once the shared count reaches this
  std::atomic<std::uint64_t>* count;
};
struct handoff_client : troupe::actor {
  handoff_client(troupe::actor_ref<actors::lock_manager> m, std::string owner)
      : m_(std::move(m)), owner_(std::move(owner)) {}
  task<bool> handle(run_handoffs r) {
    while (r.count->load(std::memory_order_relaxed) < r.until) {
      actors::lock_acquire q{"the-lock", owner_, "bench-a", 10'000, 10'000, 0};
      auto a = m_.ask(std::move(q), 20s);
      result<actors::lock_reply> g = co_await a;
      if (!g || g->error != 0) co_return false;
      r.count->fetch_add(1, std::memory_order_relaxed);
      actors::lock_release rel{"the-lock", owner_, g->token};
      auto b = m_.ask(std::move(rel), 20s);
      result<actors::lock_reply> done = co_await b;
      if (!done || done->error != 0) co_return false;
    }
    co_return true;
  }
  troupe::actor_ref<actors::lock_manager> m_;
  std::string owner_;
};

void bench_handoff(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(500'000);
  troupe::runtime rt{one_shard()};
  net::node node{rt, node_opts("bench-a")};
  actors::router router{node};
  actors::lock_service service{node, router, quick_start()};
  auto names = lock_names(1, "probe/");
  auto probe = rt.spawn<lock_pairs_client>(service.ref(), &names, "bench-a");
  wait_until(
      [&] {
        auto r = rt.ask_sync(probe, run_pairs{1}, 5s);
        return r && *r;
      },
      10s, "lock-delay");
  std::vector<troupe::actor_ref<handoff_client>> clients;
  for (int i = 0; i < 8; ++i)
    clients.push_back(rt.spawn<handoff_client>(service.ref(), "waiter-" + std::to_string(i)));
  auto e = rt.spawn<echo>();
  auto ec = rt.spawn<echo_client>(e);
  auto round = [&](std::uint64_t k) {
    std::atomic<std::uint64_t> count{0};
    std::vector<std::future<result<bool>>> done;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& c : clients)
      done.push_back(std::async(std::launch::async, [&rt, c, k, &count] {
        return rt.ask_sync(c, run_handoffs{k, &count}, 120s);
      }));
    for (auto& d : done) {
      auto r = d.get();
      if (!r || !*r) fail("lock_handoff: a waiter failed");
    }
    return static_cast<double>(count.load()) / troupe::bench::seconds_since(t0);
  };
  round(std::min<std::uint64_t>(n, 10'000));
  const double base = troupe::bench::median_of(runs, [&] { return pairs_per_s(rt, ec, n); });
  const double v = troupe::bench::median_of(runs, [&] { return round(n); });
  troupe::bench::report("lock_handoff", v, "handoffs/s", base,
                        "two asks to a trivial actor on the same shard, per handoff's pair",
                        ">= 500000", a, "\"waiters\":8,\"handoffs\":" + std::to_string(n));
}

// --- lock_remote and Redis --------------------------------------------------------

struct run_remote {
  std::uint64_t pairs;
  std::atomic<std::uint64_t>* done;
};
// One of the 50 clients: acquire, release (the guard), again; its own lock.
struct remote_client : troupe::actor {
  remote_client(actors::locks* l, std::string name) : l_(l), name_(std::move(name)) {}
  task<bool> handle(run_remote r) {
    for (std::uint64_t i = 0; i < r.pairs; ++i) {
      auto call = l_->acquire(name_, 10'000ms, 5'000ms);
      result<actors::lock_guard> g = co_await std::move(call);
      if (!g) co_return false;
      g->release();
      r.done->fetch_add(1, std::memory_order_relaxed);
    }
    co_return true;
  }
  actors::locks* l_;
  std::string name_;
};

double bench_remote_troupe(const troupe::bench::args& a, int runs, std::size_t clients) {
  const std::uint64_t per_client = a.scale(4'000);
  troupe::runtime rb{one_shard()};
  net::node b{rb, node_opts("bench-b")};
  actors::router router_b{b};
  actors::lock_service service_b{b, router_b, quick_start()};
  troupe::runtime ra{one_shard()};
  net::node na{ra, node_opts("bench-a", {{"127.0.0.1", b.port()}})};
  actors::router router_a{na};
  actors::lock_service service_a{na, router_a, quick_start()};
  wait_until([&] { return router_a.members().size() == 2 && router_b.members().size() == 2; }, 10s,
             "nodes linked");
  actors::lock_client_options co;
  co.keep_alive = false;  // 10 s leases, released at once: nothing to renew
  actors::locks client{na, co};
  // Lock names whose slots node B serves: every pair crosses the link.
  std::vector<std::string> names;
  for (int i = 0; names.size() < clients; ++i) {
    std::string n = "remote/" + std::to_string(i);
    if (router_a.owner(actors::lock_slot_key(actors::lock_slot(n, 256))).value() == "bench-b")
      names.push_back(std::move(n));
  }
  std::vector<troupe::actor_ref<remote_client>> cs;
  for (auto& n : names) cs.push_back(ra.spawn<remote_client>(&client, n));
  auto round = [&](std::uint64_t k) {
    std::atomic<std::uint64_t> done{0};
    std::vector<std::future<result<bool>>> fs;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& c : cs)
      fs.push_back(std::async(std::launch::async, [&ra, c, k, &done] {
        return ra.ask_sync(c, run_remote{k, &done}, 300s);
      }));
    for (auto& f : fs) {
      auto r = f.get();
      if (!r || !*r) fail("lock_remote: a client failed (lock-delay not over, or a lock error)");
    }
    return static_cast<double>(done.load()) / troupe::bench::seconds_since(t0);
  };
  // The first round also waits out node B's lock-delay (retries on busy are
  // not needed: acquires wait up to 5 s).
  round(std::min<std::uint64_t>(per_client, 100));
  return troupe::bench::median_of(runs, [&] { return round(per_client); });
}

// Redis: SET key val NX PX ttl, then DEL, on `clients` connections driven by
// one thread with non-blocking hiredis contexts.
struct redis_server {
  pid_t pid = -1;
  int port = 0;
  explicit redis_server(int p) : port(p) {
    pid = ::fork();
    if (pid < 0) fail("fork failed");
    if (pid == 0) {
      const std::string ps = std::to_string(p);
      ::execlp("redis-server", "redis-server", "--port", ps.c_str(), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--logfile", "/dev/null",
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    wait_until(
        [&] {
          redisContext* c = redisConnect("127.0.0.1", port);
          const bool ok = c && !c->err;
          if (c) redisFree(c);
          int status = 0;
          if (::waitpid(pid, &status, WNOHANG) == pid)
            fail("redis-server did not start (installed?)");
          return ok;
        },
        10s, "redis-server start");
  }
  ~redis_server() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

double redis_pairs(int port, std::size_t clients, std::uint64_t per_client) {
  struct conn {
    redisContext* c;
    std::string key;
    std::uint64_t done = 0;
    bool in_set = true;
  };
  std::vector<conn> cs;
  for (std::size_t i = 0; i < clients; ++i) {
    redisContext* c = redisConnectNonBlock("127.0.0.1", port);
    if (!c || c->err) fail("redis connect failed");
    cs.push_back({c, "lock:" + std::to_string(i)});
  }
  auto send_next = [](conn& k) {
    if (k.in_set)
      redisAppendCommand(k.c, "SET %s %s NX PX %d", k.key.c_str(), "owner", 10000);
    else
      redisAppendCommand(k.c, "DEL %s", k.key.c_str());
    int done = 0;
    while (!done)
      if (redisBufferWrite(k.c, &done) != REDIS_OK) fail("redis write failed");
  };
  // Wait for the non-blocking connects, then start every client.
  for (auto& k : cs) {
    pollfd p{k.c->fd, POLLOUT, 0};
    ::poll(&p, 1, 5000);
    send_next(k);
  }
  std::vector<pollfd> fds(cs.size());
  std::size_t active = cs.size();
  auto t0 = std::chrono::steady_clock::now();
  while (active > 0) {
    for (std::size_t i = 0; i < cs.size(); ++i) fds[i] = {cs[i].c->fd, POLLIN, 0};
    if (::poll(fds.data(), fds.size(), 5000) <= 0) fail("redis: no reply in 5 s");
    for (std::size_t i = 0; i < cs.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      conn& k = cs[i];
      if (redisBufferRead(k.c) != REDIS_OK) fail("redis read failed");
      void* reply = nullptr;
      while (redisGetReplyFromReader(k.c, &reply) == REDIS_OK && reply) {
        auto* r = static_cast<redisReply*>(reply);
        const bool ok =
            k.in_set ? (r->type == REDIS_REPLY_STATUS) : (r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
        if (!ok) fail("redis: SET NX found the key held, or DEL failed");
        reply = nullptr;
        if (!k.in_set) ++k.done;
        k.in_set = !k.in_set;
        if (k.done < per_client)
          send_next(k);
        else if (k.in_set)
          --active;
      }
    }
  }
  const double secs = troupe::bench::seconds_since(t0);
  std::uint64_t total = 0;
  for (auto& k : cs) {
    total += k.done;
    redisFree(k.c);
  }
  return static_cast<double>(total) / secs;
}

}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 5;
  ::signal(SIGPIPE, SIG_IGN);
  int failed = 0;
  auto run = [&](const char* name, auto&& body) {
    if (!a.wants(name)) return;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "locks_bench: %s failed: %s\n", name, e.what());
      ++failed;
    }
  };
  run("lock_local", [&] { bench_local(a, runs); });
  run("lock_handoff", [&] { bench_handoff(a, runs); });
  constexpr std::size_t clients = 50;
  double troupe_remote = 0;
  if (a.wants("lock_remote") || a.wants("lock_remote_over_redis"))
    run("lock_remote", [&] {
      troupe_remote = bench_remote_troupe(a, runs, clients);
      // Its baseline: the same pairs as direct asks are not comparable across
      // nodes; the in-run peer is Redis (lock_remote_over_redis).
    });
  double redis = 0;
  run("lock_remote_over_redis", [&] {
    redis_server server{20000 + static_cast<int>(::getpid() % 20000)};
    const std::uint64_t per_client = a.scale(4'000);
    redis_pairs(server.port, clients, std::min<std::uint64_t>(per_client, 100));  // warm-up
    redis = troupe::bench::median_of(runs,
                                     [&] { return redis_pairs(server.port, clients, per_client); });
  });
  if (troupe_remote > 0 && a.wants("lock_remote"))
    troupe::bench::report("lock_remote", troupe_remote, "pairs/s", redis,
                          "Redis 7 SET NX PX + DEL, 50 connections, same run (0: not measured)",
                          ">= 150000", a, "\"clients\":50");
  if (troupe_remote > 0 && redis > 0 && a.wants("lock_remote_over_redis"))
    troupe::bench::report("lock_remote_over_redis", troupe_remote / redis, "ratio", 1.0,
                          "Redis pairs/s = 1 (troupe " + std::to_string(troupe_remote) +
                              ", Redis " + std::to_string(redis) + " pairs/s)",
                          ">= 1.0", a, "\"clients\":50");
  return failed == 0 ? 0 : 1;
}
