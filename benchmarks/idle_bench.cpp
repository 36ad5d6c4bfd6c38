// SPDX-License-Identifier: BSL-1.0
// idle_cpu_percent: a runtime with default shards, after some work, left idle
// for 2 s once its spin window has passed: CPU used, in % of one core.
// Baseline: the same process measured over 2 s with no runtime at all.

#include <troupe/core.hpp>

#include "bench.hpp"

using namespace std::chrono_literals;

namespace {
struct ping {};
struct echo : troupe::actor {
  int handle(ping) { return 1; }
};

double cpu_percent_over(std::chrono::milliseconds window) {
  double c0 = troupe::bench::process_cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(window);  // measuring idleness: nothing to wait for
  double wall = troupe::bench::seconds_since(t0);
  return 100.0 * (troupe::bench::process_cpu_seconds() - c0) / wall;
}
}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const auto window = a.smoke ? 200ms : 2000ms;
  double baseline = cpu_percent_over(window);

  troupe::runtime rt{};
  std::vector<troupe::actor_ref<echo>> actors;
  for (unsigned s = 0; s < rt.shard_count(); ++s) {
    troupe::spawn_options o;
    o.shard = static_cast<int>(s);
    actors.push_back(rt.spawn<echo>(o));
  }
  for (int i = 0; i < 1000; ++i)
    for (auto& e : actors) (void)rt.ask_sync(e, ping{}, 1s);
  std::this_thread::sleep_for(50ms);  // let the spin window pass
  const auto wake0 = rt.stats().wakeups;
  double v = cpu_percent_over(window);
  troupe::bench::report(
      "idle_cpu_percent", v, "% of one core", baseline, "same process, no runtime", "<= 1", a,
      "\"shards\":" + std::to_string(rt.shard_count()) +
          ",\"wakeups_while_idle\":" + std::to_string(rt.stats().wakeups - wake0));
}
