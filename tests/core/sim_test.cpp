// SPDX-License-Identifier: BSL-1.0
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct go {
  int from;
  int n;
};
struct note {
  int from;
  int i;
};
struct get_trace {};
class sink_actor : public troupe::actor {
 public:
  void handle(note n) { trace_.push_back(n.from * 1000 + n.i); }
  std::vector<int> handle(get_trace) { return trace_; }

 private:
  std::vector<int> trace_;
};
class source : public troupe::actor {
 public:
  explicit source(troupe::actor_ref<sink_actor> to) : to_(std::move(to)) {}
  task<void> handle(go g) {
    for (int i = 0; i < g.n; ++i) {
      (void)to_.tell(note{g.from, i});
      if (i % 3 == 0) co_await troupe::sleep_for(std::chrono::milliseconds(1 + (g.from + i) % 4));
    }
  }

 private:
  troupe::actor_ref<sink_actor> to_;
};

std::vector<int> run_scenario(std::uint64_t seed, unsigned shards) {
  troupe::test::log_sink log;
  troupe::runtime_options o = troupe::test::sim(log, shards);
  o.seed = seed;
  troupe::runtime rt{o};
  troupe::spawn_options last;
  last.shard = static_cast<int>(shards - 1);
  auto s = rt.spawn<sink_actor>(last);
  std::vector<troupe::actor_ref<source>> sources;
  for (int k = 0; k < 6; ++k) {
    troupe::spawn_options where;
    where.shard = k % static_cast<int>(shards);
    sources.push_back(rt.spawn<source>(where, s));
  }
  for (int k = 0; k < 6; ++k) (void)sources[k].tell(go{k, 30});
  rt.advance(1s);
  return rt.ask_sync(s, get_trace{}, 1s).value();
}
}  // namespace

TEST_CASE("a simulated run replays exactly from its seed", "[core][sim]") {
  const std::uint64_t seed = troupe::test::seed();
  INFO("seed " << seed);
  auto a = run_scenario(seed, 3);
  auto b = run_scenario(seed, 3);
  REQUIRE(a.size() == 180);
  CHECK(a == b);
}

TEST_CASE("different seeds explore different interleavings", "[core][sim]") {
  const std::uint64_t seed = troupe::test::seed();
  auto first = run_scenario(seed, 3);
  bool differs = false;
  for (std::uint64_t k = 1; k <= 20 && !differs; ++k) differs = run_scenario(seed + k, 3) != first;
  CHECK(differs);
}

TEST_CASE("per-sender order holds under every seeded interleaving", "[core][sim][order]") {
  const std::uint64_t seed = troupe::test::seed();
  for (std::uint64_t k = 0; k < 25; ++k) {
    INFO("seed " << seed + k);
    auto trace = run_scenario(seed + k, 2);
    REQUIRE(trace.size() == 180);
    std::vector<int> next(6, 0);
    for (int v : trace) {
      REQUIRE(v % 1000 == next[v / 1000]);
      ++next[v / 1000];
    }
  }
}

TEST_CASE("the manual clock only moves when told to", "[core][sim]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::sim(log)};
  CHECK(rt.now_ns() == 0);
  rt.run_until_idle();
  CHECK(rt.now_ns() == 0);
  rt.advance(250ms);
  CHECK(rt.now_ns() == 250'000'000);
}
