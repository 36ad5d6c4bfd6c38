// SPDX-License-Identifier: BSL-1.0
// fanin: 8 senders -> 1 receiver, all on one shard; each sender sends in
// bursts of 64 and then yields by telling itself to go on. Also reported:
// fanin_cross_shard (the senders on the other shard). Baseline: the bare
// coroutine hand-off (one message per hand-off).

#include <future>
#include <troupe/core.hpp>

#include "bench.hpp"

using namespace std::chrono_literals;

namespace {
struct item {};
struct receiver : troupe::actor {
  receiver(std::uint64_t expect, std::promise<void>* done) : left_(expect), done_(done) {}
  void handle(item) {
    if (--left_ == 0) done_->set_value();
  }
  std::uint64_t left_;
  std::promise<void>* done_;
};
struct go {
  std::uint64_t left;
};
struct sender : troupe::actor {
  explicit sender(troupe::actor_ref<receiver> r) : r_(std::move(r)) {}
  void handle(go g) {
    std::uint64_t burst = std::min<std::uint64_t>(g.left, 64);
    for (std::uint64_t i = 0; i < burst; ++i) (void)r_.tell(item{});
    if (g.left > burst) (void)troupe::ref_of(this).tell(go{g.left - burst});
  }
  troupe::actor_ref<receiver> r_;
};

double messages_per_second(int sender_shard, std::uint64_t per_sender) {
  troupe::runtime_options o;
  o.shards = 2;
  troupe::runtime rt{o};
  std::promise<void> done;
  constexpr int senders = 8;
  auto r = rt.spawn<receiver>(per_sender * senders, &done);
  std::vector<troupe::actor_ref<sender>> s;
  troupe::spawn_options so;
  so.shard = sender_shard;
  for (int i = 0; i < senders; ++i) s.push_back(rt.spawn<sender>(so, r));
  auto t0 = std::chrono::steady_clock::now();
  for (auto& x : s) (void)x.tell(go{per_sender});
  done.get_future().wait();
  return static_cast<double>(per_sender * senders) / troupe::bench::seconds_since(t0);
}
}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 5;
  const std::uint64_t per_sender = a.scale(4'000'000);
  double raw = troupe::bench::median_of(
      runs, [&] { return troupe::bench::raw::handoffs_per_second(8 * per_sender); });
  if (a.wants("fanin")) {
    double same =
        troupe::bench::median_of(runs, [&] { return messages_per_second(0, per_sender); });
    troupe::bench::report("fanin", same, "msgs/s", raw, "raw coroutine hand-off, one thread",
                          ">= 30000000", a, "\"senders\":8,\"placement\":\"one shard\"");
  }
  if (a.wants("fanin_cross_shard")) {
    double cross =
        troupe::bench::median_of(runs, [&] { return messages_per_second(1, per_sender / 4); });
    troupe::bench::report(
        "fanin_cross_shard", cross, "msgs/s", raw, "raw coroutine hand-off, one thread", "report",
        a, "\"senders\":8,\"placement\":\"senders on shard 1, receiver on shard 0\"");
  }
}
