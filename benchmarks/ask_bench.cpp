// SPDX-License-Identifier: BSL-1.0
// ask_same_shard: a client asks a server on its own shard, one request
// outstanding at a time. Baseline: the bare coroutine hand-off (a round trip
// is two hand-offs).

#include <future>
#include <troupe/core.hpp>

#include "bench.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct request {
  std::uint64_t n;
};
struct server : troupe::actor {
  task<std::uint64_t> handle(request r) { co_return r.n + 1; }
};
struct run {
  troupe::actor_ref<server> s;
  std::uint64_t count;
};
struct client : troupe::actor {
  task<std::uint64_t> handle(run r) {
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < r.count; ++i) {
      troupe::result<std::uint64_t> v = co_await r.s.ask(request{i}, 5s);
      if (!v) co_return 0;
      sum += *v;
    }
    co_return sum;
  }
};

double asks_per_second(std::uint64_t n) {
  troupe::runtime_options o;
  o.shards = 2;
  troupe::runtime rt{o};
  auto s = rt.spawn<server>();
  auto c = rt.spawn<client>();
  auto t0 = std::chrono::steady_clock::now();
  auto sum = rt.ask_sync(c, run{s, n}, 600s);
  double secs = troupe::bench::seconds_since(t0);
  if (!sum || *sum != n * (n + 1) / 2) {
    std::fprintf(stderr, "ask_bench: wrong result\n");
    std::exit(1);
  }
  return static_cast<double>(n) / secs;
}
}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 5;
  const std::uint64_t n = a.scale(10'000'000);
  double raw = troupe::bench::median_of(
      runs, [&] { return troupe::bench::raw::handoffs_per_second(2 * n) / 2; });
  double v = troupe::bench::median_of(runs, [&] { return asks_per_second(n); });
  troupe::bench::report("ask_same_shard", v, "roundtrips/s", raw,
                        "raw coroutine hand-off, one thread", ">= 10000000", a);
}
