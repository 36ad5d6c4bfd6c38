// SPDX-License-Identifier: BSL-1.0
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;

namespace {
struct bump {};
struct crash {};
struct count {};
class counter : public troupe::actor {
 public:
  explicit counter(int start) : n_(start) {}
  void handle(bump) { ++n_; }
  void handle(crash) { throw std::runtime_error("counter crashed"); }
  int handle(count) { return n_; }

 private:
  int n_;
};

// A parent that spawns a child with a given directive and watches itself fail.
struct make_child {
  troupe::on_failure directive;
};
struct child_ref {};
class parent : public troupe::actor {
 public:
  int handle(make_child m) {
    troupe::spawn_options o;
    o.supervise.directive = m.directive;
    child_ = spawn<counter>(o, 0);
    return 0;
  }
  troupe::actor_ref<counter> handle(child_ref) { return child_; }

 private:
  troupe::actor_ref<counter> child_;
};
}  // namespace

TEST_CASE("a failing actor is stopped by default, with reason failure", "[core][supervision]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto c = rt.spawn<counter>(0);
  (void)c.tell(crash{});
  rt.run_until_idle();
  CHECK_FALSE(c.alive());
  CHECK(c.addr().reason() == troupe::exit_reason::failure);
  CHECK(sink.contains("counter crashed"));
}

TEST_CASE("restart keeps the ref valid and starts from a fresh instance", "[core][supervision]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.supervise.directive = troupe::on_failure::restart;
  auto c = rt.spawn<counter>(o, 10);
  (void)c.tell(bump{});
  (void)c.tell(bump{});
  (void)c.tell(crash{});
  (void)c.tell(bump{});  // queued behind the crash: survives the restart
  auto n = rt.ask_sync(c, count{}, 1s);
  REQUIRE(n);
  CHECK(*n == 11);  // constructed again with 10, then one bump
  CHECK(c.alive());
  CHECK(sink.contains("restarting (1/3)"));
}

TEST_CASE("more restarts than the intensity allows stop the actor", "[core][supervision]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.supervise = {troupe::on_failure::restart, 2, 1000ms};
  auto c = rt.spawn<counter>(o, 0);
  (void)c.tell(crash{});
  (void)c.tell(crash{});
  rt.run_until_idle();
  CHECK(c.alive());  // two restarts within the second: allowed
  (void)c.tell(crash{});
  rt.run_until_idle();
  CHECK_FALSE(c.alive());
  CHECK(c.addr().reason() == troupe::exit_reason::restart_limit);
  CHECK(sink.contains("restart limit"));
}

TEST_CASE("restarts spread wider than the window do not add up", "[core][supervision]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.supervise = {troupe::on_failure::restart, 1, 100ms};
  auto c = rt.spawn<counter>(o, 0);
  for (int i = 0; i < 5; ++i) {
    (void)c.tell(crash{});
    rt.run_until_idle();
    rt.advance(150ms);
  }
  CHECK(c.alive());
}

TEST_CASE("escalate stops the child and fails its parent", "[core][supervision]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto p = rt.spawn<parent>();
  REQUIRE(rt.ask_sync(p, make_child{troupe::on_failure::escalate}, 1s));
  auto child = rt.ask_sync(p, child_ref{}, 1s);
  REQUIRE(child);
  (void)child->tell(crash{});
  rt.run_until_idle();
  CHECK_FALSE(child->alive());
  CHECK_FALSE(p.alive());  // the parent's own directive is stop
  CHECK(sink.contains("escalating"));
}

TEST_CASE("children stop when their parent stops", "[core][supervision]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto p = rt.spawn<parent>();
  REQUIRE(rt.ask_sync(p, make_child{troupe::on_failure::stop}, 1s));
  auto child = rt.ask_sync(p, child_ref{}, 1s);
  REQUIRE(child);
  p.stop();
  rt.run_until_idle();
  CHECK_FALSE(child->alive());
  CHECK(child->addr().reason() == troupe::exit_reason::parent_stopped);
}

TEST_CASE("restart needs copyable constructor arguments", "[core][supervision]") {
  struct holder : troupe::actor {
    explicit holder(std::unique_ptr<int> p) : p_(std::move(p)) {}
    void handle(bump) {}
    std::unique_ptr<int> p_;
  };
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.supervise.directive = troupe::on_failure::restart;
  CHECK_THROWS_AS(rt.spawn<holder>(o, std::make_unique<int>(1)), std::invalid_argument);
}
