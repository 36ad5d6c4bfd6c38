// SPDX-License-Identifier: BSL-1.0
// pingpong_same_shard and pingpong_cross_shard: two actors tell a ball back
// and forth. Baselines: the bare coroutine hand-off (same shard) and a
// busy-waiting SPSC ping-pong between two threads (cross shard).

#include <future>
#include <troupe/core.hpp>

#include "bench.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct ball {
  std::uint64_t n;
};
struct partner_is {
  troupe::actor_ref<struct player> p;
};

struct player : troupe::actor {
  explicit player(std::uint64_t last, std::promise<void>* done) : last_(last), done_(done) {}
  void handle(partner_is p) { partner_ = std::move(p.p); }
  task<void> handle(ball b) {
    if (b.n >= last_) {
      done_->set_value();
      co_return;
    }
    (void)partner_.tell(ball{b.n + 1});
    co_return;
  }
  std::uint64_t last_;
  std::promise<void>* done_;
  troupe::actor_ref<player> partner_;
};

// The same with plain (non-coroutine) handlers.
struct plain_player : troupe::actor {
  explicit plain_player(std::uint64_t last, std::promise<void>* done) : last_(last), done_(done) {}
  void handle(troupe::actor_ref<plain_player> p) { partner_ = std::move(p); }
  void handle(ball b) {
    if (b.n >= last_) {
      done_->set_value();
      return;
    }
    (void)partner_.tell(ball{b.n + 1});
  }
  std::uint64_t last_;
  std::promise<void>* done_;
  troupe::actor_ref<plain_player> partner_;
};

template <class P, class SetPartner>
double roundtrips_per_second(int shard_a, int shard_b, std::uint64_t roundtrips, SetPartner set) {
  troupe::runtime_options o;
  o.shards = 2;
  troupe::runtime rt{o};
  std::promise<void> done;
  troupe::spawn_options a_opts, b_opts;
  a_opts.shard = shard_a;
  b_opts.shard = shard_b;
  const std::uint64_t messages = roundtrips * 2;
  auto a = rt.spawn<P>(a_opts, messages, &done);
  auto b = rt.spawn<P>(b_opts, messages, &done);
  set(a, b);
  set(b, a);
  auto t0 = std::chrono::steady_clock::now();
  (void)a.tell(ball{0});
  done.get_future().wait();
  return static_cast<double>(roundtrips) / troupe::bench::seconds_since(t0);
}
}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 5;
  auto set_coro = [](auto& x, auto& y) { (void)x.tell(partner_is{y}); };
  auto set_plain = [](auto& x, auto& y) { (void)x.tell(y); };

  const std::uint64_t same_n = a.scale(20'000'000);
  double raw = 0;
  if (a.wants("pingpong_same_shard") || a.wants("pingpong_same_shard_plain"))
    raw = troupe::bench::median_of(
        runs, [&] { return troupe::bench::raw::handoffs_per_second(2 * same_n) / 2; });
  if (a.wants("pingpong_same_shard")) {
    double same = troupe::bench::median_of(
        runs, [&] { return roundtrips_per_second<player>(0, 0, same_n, set_coro); });
    troupe::bench::report("pingpong_same_shard", same, "roundtrips/s", raw,
                          "raw coroutine hand-off, one thread", ">= 20000000", a,
                          "\"handlers\":\"coroutine\"");
  }
  if (a.wants("pingpong_same_shard_plain")) {
    double same_plain = troupe::bench::median_of(
        runs, [&] { return roundtrips_per_second<plain_player>(0, 0, same_n, set_plain); });
    troupe::bench::report("pingpong_same_shard_plain", same_plain, "roundtrips/s", raw,
                          "raw coroutine hand-off, one thread", "report", a,
                          "\"handlers\":\"plain\"");
  }
  if (a.wants("pingpong_cross_shard")) {
    const std::uint64_t cross_n = a.scale(2'000'000);
    double spsc = troupe::bench::median_of(
        runs, [&] { return troupe::bench::spsc_roundtrips_per_second(cross_n); });
    double cross = troupe::bench::median_of(
        runs, [&] { return roundtrips_per_second<player>(0, 1, cross_n, set_coro); });
    troupe::bench::report("pingpong_cross_shard", cross, "roundtrips/s", spsc,
                          "busy-wait SPSC ping-pong, two threads", ">= 1000000", a,
                          "\"handlers\":\"coroutine\"");
  }
}
