// SPDX-License-Identifier: BSL-1.0
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::exit_reason;

namespace {
struct crash {};
struct noop {};
class worker : public troupe::actor {
 public:
  void handle(crash) { throw std::runtime_error("worker broke"); }
  void handle(noop) {}
};

struct watch {
  troupe::actor_addr who;
};
struct link_to {
  troupe::actor_addr who;
};
struct downs {};
class watcher : public troupe::actor {
 public:
  void handle(watch w) { monitor(w.who); }
  void handle(link_to l) { link(l.who); }
  void handle(crash) { throw std::runtime_error("watcher broke"); }
  void handle(troupe::down_msg d) {
    seen_.push_back(std::string(troupe::to_string(d.reason)) + ":" + d.what);
  }
  std::vector<std::string> handle(downs) { return seen_; }

 private:
  std::vector<std::string> seen_;
};

// Traps exits of linked actors instead of dying with them.
class trapper : public troupe::actor {
 public:
  void handle(link_to l) { link(l.who); }
  void handle(troupe::exit_msg e) { exits_.push_back(troupe::to_string(e.reason)); }
  std::vector<std::string> handle(downs) { return exits_; }

 private:
  std::vector<std::string> exits_;
};

class plain : public troupe::actor {
 public:
  void handle(watch w) { monitor(w.who); }
};
}  // namespace

TEST_CASE("monitor delivers a down message with the reason", "[core][monitor]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto w = rt.spawn<watcher>();
  auto a = rt.spawn<worker>();
  auto b = rt.spawn<worker>();
  (void)w.tell(watch{a});
  (void)w.tell(watch{b});
  rt.run_until_idle();
  (void)a.tell(crash{});
  b.stop();
  rt.run_until_idle();
  auto seen = rt.ask_sync(w, downs{}, 1s);
  REQUIRE(seen);
  std::sort(seen->begin(), seen->end());
  CHECK(*seen == std::vector<std::string>{"failure:worker broke", "normal:"});
}

TEST_CASE("monitoring an actor that already stopped delivers down at once", "[core][monitor]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto w = rt.spawn<watcher>();
  auto a = rt.spawn<worker>();
  a.stop();
  rt.run_until_idle();
  (void)w.tell(watch{a});
  rt.run_until_idle();
  auto seen = rt.ask_sync(w, downs{}, 1s);
  REQUIRE(seen);
  CHECK(*seen == std::vector<std::string>{"normal:"});
}

TEST_CASE("monitor from an actor without a down handler is a clear error", "[core][monitor]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto p = rt.spawn<plain>();
  auto a = rt.spawn<worker>();
  (void)p.tell(watch{a});
  rt.run_until_idle();
  CHECK_FALSE(p.alive());
  CHECK(sink.contains("has no handle(troupe::down_msg)"));
}

TEST_CASE("link stops the partner when one side fails", "[core][link]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto w = rt.spawn<watcher>();
  auto a = rt.spawn<worker>();
  (void)w.tell(link_to{a});
  rt.run_until_idle();
  (void)a.tell(crash{});
  rt.run_until_idle();
  CHECK_FALSE(a.alive());
  CHECK_FALSE(w.alive());
  CHECK(w.addr().reason() == exit_reason::linked);
}

TEST_CASE("link works in both directions", "[core][link]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto w = rt.spawn<watcher>();
  auto a = rt.spawn<worker>();
  (void)w.tell(link_to{a});  // w asked for the link; now w fails
  rt.run_until_idle();
  (void)w.tell(crash{});
  rt.run_until_idle();
  CHECK_FALSE(w.alive());
  CHECK_FALSE(a.alive());
  CHECK(a.addr().reason() == exit_reason::linked);
}

TEST_CASE("a normal stop does not propagate over a link", "[core][link]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto w = rt.spawn<watcher>();
  auto a = rt.spawn<worker>();
  (void)w.tell(link_to{a});
  rt.run_until_idle();
  a.stop();
  rt.run_until_idle();
  CHECK(w.alive());
}

TEST_CASE("an actor with handle(exit_msg) traps a linked failure", "[core][link]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto t = rt.spawn<trapper>();
  auto a = rt.spawn<worker>();
  (void)t.tell(link_to{a});
  rt.run_until_idle();
  (void)a.tell(crash{});
  rt.run_until_idle();
  CHECK(t.alive());
  auto exits = rt.ask_sync(t, downs{}, 1s);
  REQUIRE(exits);
  CHECK(*exits == std::vector<std::string>{"failure"});
}
