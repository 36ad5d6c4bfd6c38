// SPDX-License-Identifier: BSL-1.0
#pragma once
// Shared by every benchmark program: timing, JSON-lines output, the in-run
// baselines, and --smoke (a short run, for CI).

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace troupe::bench {

struct args {
  bool smoke = false;
  std::string only;  // --only WORKLOAD: run just that one
  static args parse(int argc, char** argv) {
    args a;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--smoke") == 0) {
        a.smoke = true;
      } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
        a.only = argv[++i];
      } else {
        std::fprintf(stderr, "usage: %s [--smoke] [--only WORKLOAD]\n", argv[0]);
        std::exit(2);
      }
    }
    return a;
  }
  bool wants(const std::string& workload) const { return only.empty() || only == workload; }
  /// n for a full run, n / 100 (at least 1000) for a smoke run.
  std::uint64_t scale(std::uint64_t n) const {
    return smoke ? std::max<std::uint64_t>(n / 100, 1000) : n;
  }
};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The median of `runs` measurements (the machine is shared and noisy).
template <class F>
double median_of(int runs, F&& f) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) v.push_back(f());
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inline std::string machine() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      std::string m = line.substr(p + 2);
      return m + ", " + std::to_string(std::thread::hardware_concurrency()) + " cpus";
    }
  }
  return "unknown";
}

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

/// Prints one JSON line. ratio = value / baseline.
inline void report(const std::string& workload, double value, const std::string& unit,
                   double baseline, const std::string& baseline_name, const std::string& target,
                   const args& a, const std::string& extra = {}) {
  std::ostringstream os;
  os.precision(6);
  os << "{\"workload\":\"" << workload << "\",\"value\":" << value << ",\"unit\":\"" << unit
     << "\",\"baseline\":" << baseline << ",\"baseline_name\":\"" << json_escape(baseline_name)
     << "\",\"ratio\":";
  if (baseline != 0)
    os << value / baseline;
  else
    os << "null";  // no meaningful ratio to zero
  os << ",\"target\":\"" << json_escape(target) << "\",\"smoke\":" << (a.smoke ? "true" : "false")
     << ",\"machine\":\"" << json_escape(machine()) << "\"";
  if (!extra.empty()) os << "," << extra;
  os << "}\n";
  std::fputs(os.str().c_str(), stdout);
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------
// Baseline 1: the bare coroutine hand-off of docs/perf.md. Two coroutines on one
// thread, each with a one-slot mailbox, resumed through a FIFO run queue of
// coroutine handles: what a same-shard message costs with nothing else.

namespace raw {
struct fire_and_forget {
  struct promise_type {
    fire_and_forget get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

struct run_queue {
  std::vector<std::coroutine_handle<>> ring = std::vector<std::coroutine_handle<>>(1024);
  std::size_t head = 0, tail = 0;
  void push(std::coroutine_handle<> h) { ring[tail++ & 1023] = h; }
  bool run_one() {
    if (head == tail) return false;
    ring[head++ & 1023].resume();
    return true;
  }
};

struct mailbox {
  run_queue* rq = nullptr;
  std::uint64_t value = 0;
  bool full = false;
  std::coroutine_handle<> waiter;
  void put(std::uint64_t v) {
    value = v;
    full = true;
    if (waiter) rq->push(std::exchange(waiter, {}));
  }
  struct awaiter {
    mailbox* m;
    bool await_ready() const noexcept { return m->full; }
    void await_suspend(std::coroutine_handle<> h) noexcept { m->waiter = h; }
    std::uint64_t await_resume() noexcept {
      m->full = false;
      return m->value;
    }
  };
  awaiter get() { return {this}; }
};

inline fire_and_forget player(mailbox& in, mailbox& out, std::uint64_t rounds, bool serve) {
  if (serve) out.put(0);
  for (;;) {
    std::uint64_t v = co_await in.get();
    if (v >= rounds) {
      out.put(v + 1);
      co_return;
    }
    out.put(v + 1);
  }
}

/// Messages handed off per second (one round trip = two hand-offs).
inline double handoffs_per_second(std::uint64_t messages) {
  run_queue rq;
  mailbox a, b;
  a.rq = b.rq = &rq;
  auto t0 = std::chrono::steady_clock::now();
  player(a, b, messages, false);
  player(b, a, messages, true);
  while (rq.run_one()) {
  }
  return static_cast<double>(messages) / seconds_since(t0);
}
}  // namespace raw

// ---------------------------------------------------------------------------
// Baseline 2: a busy-waiting SPSC ping-pong between two threads: the floor of
// any cross-core exchange on this machine.

inline double spsc_roundtrips_per_second(std::uint64_t rounds) {
  alignas(64) std::atomic<std::uint64_t> ping{0};
  alignas(64) std::atomic<std::uint64_t> pong{0};
  std::thread other([&] {
    for (std::uint64_t i = 1; i <= rounds; ++i) {
      while (ping.load(std::memory_order_acquire) != i) {
      }
      pong.store(i, std::memory_order_release);
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 1; i <= rounds; ++i) {
    ping.store(i, std::memory_order_release);
    while (pong.load(std::memory_order_acquire) != i) {
    }
  }
  double s = seconds_since(t0);
  other.join();
  return static_cast<double>(rounds) / s;
}

/// CPU time (user + system) this process has used, in seconds (ns resolution).
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Resident set size of this process, in bytes.
inline std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace troupe::bench
