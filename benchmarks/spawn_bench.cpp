// SPDX-License-Identifier: BSL-1.0
// spawn and spawn_bytes_per_actor: an actor spawns 1 M small actors on its
// shard and keeps them alive. Baseline: operator new + construction of an
// object of the same size as the actor (what spawning cannot beat), and the
// RSS that 1 M such objects take.

#include <memory>
#include <troupe/core.hpp>

#include "bench.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct hello {};
struct tiny : troupe::actor {
  void handle(hello) {}
};
struct spawn_many {
  std::uint64_t n;
};
struct spawner : troupe::actor {
  double handle(spawn_many m) {
    auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < m.n; ++i) (void)spawn<tiny>();
    return troupe::bench::seconds_since(t0);
  }
};

struct plain_object {
  alignas(tiny) unsigned char bytes[sizeof(tiny)];
};
}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const std::uint64_t n = a.scale(1'000'000);

  // Baseline first, in a fresh heap region: 1 M separately allocated objects.
  std::size_t rss0 = troupe::bench::rss_bytes();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<plain_object*> objects(n);
  for (auto& p : objects) p = new plain_object();
  double base_secs = troupe::bench::seconds_since(t0);
  std::size_t base_bytes = (troupe::bench::rss_bytes() - rss0 - n * sizeof(void*)) / n;
  for (auto* p : objects) delete p;
  std::vector<plain_object*>().swap(objects);

  troupe::runtime_options o;
  o.shards = 2;
  troupe::runtime rt{o};
  auto s = rt.spawn<spawner>();
  (void)rt.ask_sync(s, spawn_many{1000}, 60s);  // warm up
  std::size_t before = troupe::bench::rss_bytes();
  auto secs = rt.ask_sync(s, spawn_many{n}, 600s);
  std::size_t after = troupe::bench::rss_bytes();
  if (!secs || rt.stats().live_actors < n) {
    std::fprintf(stderr, "spawn_bench: actors missing\n");
    return 1;
  }
  troupe::bench::report("spawn", static_cast<double>(n) / *secs, "actors/s",
                        static_cast<double>(n) / base_secs, "operator new of an actor-sized object",
                        ">= 2000000", a);
  troupe::bench::report(
      "spawn_bytes_per_actor", static_cast<double>(after - before) / static_cast<double>(n),
      "bytes", static_cast<double>(base_bytes), "RSS per operator-new'd actor-sized object",
      "<= 256", a, "\"live_actors\":" + std::to_string(rt.stats().live_actors));
}
