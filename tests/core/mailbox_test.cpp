// SPDX-License-Identifier: BSL-1.0
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::errc;
using troupe::task;

namespace {
struct hold {};
struct item {
  int n;
};
struct items {};
class box : public troupe::actor {
 public:
  // Blocks the mailbox until the clock moves: later messages queue up.
  task<void> handle(hold) { co_await troupe::sleep_for(1s); }
  int handle(item i) {
    got_.push_back(i.n);
    return i.n;
  }
  std::vector<int> handle(items) { return got_; }

 private:
  std::vector<int> got_;
};

struct fire_asks {
  troupe::actor_ref<box> to;
  int n;
};
struct results {};
class asker : public troupe::actor {
 public:
  static constexpr bool reentrant = true;  // several asks outstanding at once
  task<void> handle(fire_asks f) {
    troupe::result<int> r = co_await f.to.ask(item{f.n}, 10s);
    out_.push_back(r ? "ok" : r.error().message());
  }
  std::vector<std::string> handle(results) { return out_; }

 private:
  std::vector<std::string> out_;
};
}  // namespace

TEST_CASE("a bounded reject mailbox refuses the overflow with mailbox_full", "[core][mailbox]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.mailbox = {3, troupe::overflow::reject};
  auto b = rt.spawn<box>(o);
  CHECK_FALSE(b.tell(hold{}));
  rt.run_until_idle();  // hold is running, the mailbox is empty
  CHECK_FALSE(b.tell(item{1}));
  CHECK_FALSE(b.tell(item{2}));
  CHECK_FALSE(b.tell(item{3}));
  CHECK(b.tell(item{4}) == errc::mailbox_full);
  rt.advance(2s);
  auto got = rt.ask_sync(b, items{}, 1s);
  REQUIRE(got);
  CHECK(*got == std::vector<int>{1, 2, 3});  // nothing lost silently: 4 was refused to its sender
  CHECK(rt.stats().dead_letters == 1);
}

TEST_CASE("a drop-oldest mailbox evicts, counts and fails evicted asks", "[core][mailbox]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.mailbox = {2, troupe::overflow::drop_oldest};
  auto b = rt.spawn<box>(o);
  auto a = rt.spawn<asker>();
  (void)b.tell(hold{});
  rt.run_until_idle();
  for (int i = 1; i <= 4; ++i) {
    (void)a.tell(fire_asks{b, i});
    rt.run_until_idle();
  }
  CHECK(rt.stats().dropped == 2);
  rt.advance(2s);
  auto got = rt.ask_sync(b, items{}, 1s);
  REQUIRE(got);
  CHECK(*got == std::vector<int>{3, 4});
  auto out = rt.ask_sync(a, results{}, 1s);
  REQUIRE(out);
  std::sort(out->begin(), out->end());
  const std::string dropped = troupe::make_error_code(errc::message_dropped).message();
  CHECK(std::count(out->begin(), out->end(), dropped) == 2);
  CHECK(std::count(out->begin(), out->end(), "ok") == 2);
}

TEST_CASE("an unbounded mailbox takes a million messages", "[core][mailbox]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto b = rt.spawn<box>();
  (void)b.tell(hold{});
  rt.run_until_idle();
  for (int i = 0; i < 1'000'000; ++i) REQUIRE_FALSE(b.tell(item{i}));
  rt.advance(2s);
  auto got = rt.ask_sync(b, items{}, 1s);
  REQUIRE(got);
  CHECK(got->size() == 1'000'000);
}

namespace {
struct probe_q {};
class probe : public troupe::actor {
 public:
  troupe::mailbox_stats handle(probe_q) { return troupe::runtime::shard_mailboxes(); }
};
}  // namespace

TEST_CASE("shard_mailboxes reports what waits on the shard and the longest mailbox",
          "[core][mailbox]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto b = rt.spawn<box>();
  auto p = rt.spawn<probe>();
  CHECK_FALSE(b.tell(hold{}));
  rt.run_until_idle();  // hold is running: what comes next waits
  for (int i = 0; i < 5; ++i) CHECK_FALSE(b.tell(item{i}));
  auto busy = rt.ask_sync(p, probe_q{}, 1s);
  REQUIRE(busy);
  CHECK(busy->queued == 5);
  CHECK(busy->deepest == 5);
  CHECK(busy->deepest_type.find("box") != std::string::npos);
  rt.advance(2s);  // hold ends; the items are handled
  auto idle = rt.ask_sync(p, probe_q{}, 1s);
  REQUIRE(idle);
  CHECK(idle->queued == 0);
  CHECK(idle->deepest == 0);
  CHECK(idle->deepest_type.empty());
}
