// SPDX-License-Identifier: BSL-1.0
// ring: 1000 actors in a ring pass one token 10 M hops (coroutine handlers).
// Baseline: the bare coroutine hand-off (one hop per hand-off).

#include <future>
#include <troupe/core.hpp>

#include "bench.hpp"

using troupe::task;

namespace {
struct token {
  std::uint64_t left;
};
struct node : troupe::actor {
  explicit node(std::promise<void>* done) : done_(done) {}
  void handle(troupe::actor_ref<node> next) { next_ = std::move(next); }
  task<void> handle(token t) {
    if (t.left == 0) {
      done_->set_value();
      co_return;
    }
    (void)next_.tell(token{t.left - 1});
    co_return;
  }
  std::promise<void>* done_;
  troupe::actor_ref<node> next_;
};

double hops_per_second(std::uint64_t hops) {
  troupe::runtime_options o;
  o.shards = 2;
  troupe::runtime rt{o};
  std::promise<void> done;
  std::vector<troupe::actor_ref<node>> ring;
  for (int i = 0; i < 1000; ++i) ring.push_back(rt.spawn<node>(&done));
  for (int i = 0; i < 1000; ++i) (void)ring[i].tell(ring[(i + 1) % 1000]);
  auto t0 = std::chrono::steady_clock::now();
  (void)ring[0].tell(token{hops});
  done.get_future().wait();
  return static_cast<double>(hops) / troupe::bench::seconds_since(t0);
}
}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 5;
  const std::uint64_t hops = a.scale(10'000'000);
  double raw =
      troupe::bench::median_of(runs, [&] { return troupe::bench::raw::handoffs_per_second(hops); });
  double v = troupe::bench::median_of(runs, [&] { return hops_per_second(hops); });
  troupe::bench::report("ring", v, "hops/s", raw, "raw coroutine hand-off, one thread",
                        ">= 30000000", a, "\"actors\":1000");
}
