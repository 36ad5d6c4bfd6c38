// SPDX-License-Identifier: BSL-1.0
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::errc;

namespace {
struct hello {};
class greeter : public troupe::actor {
 public:
  std::string handle(hello) { return "hi"; }
};
class other : public troupe::actor {
 public:
  void handle(hello) {}
};
}  // namespace

TEST_CASE("an actor spawned with a name can be looked up by it", "[core][registry]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.name = "greeter";
  auto g = rt.spawn<greeter>(o);
  auto found = rt.lookup<greeter>("greeter");
  REQUIRE(found);
  CHECK(*found == g);
  auto r = rt.ask_sync(*found, hello{}, 1s);
  REQUIRE(r);
  CHECK(*r == "hi");
}

TEST_CASE("looking up an unknown name or the wrong type is an error", "[core][registry]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto g = rt.spawn<greeter>();
  CHECK_FALSE(rt.register_name("g", g));
  CHECK(rt.lookup<greeter>("nobody").error() == errc::name_not_found);
  CHECK(rt.lookup<other>("g").error() == errc::wrong_type);
}

TEST_CASE("a taken name is refused, at registration and at spawn", "[core][registry]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  auto a = rt.spawn<greeter>();
  auto b = rt.spawn<greeter>();
  CHECK_FALSE(rt.register_name("x", a));
  CHECK(rt.register_name("x", b) == errc::name_taken);
  troupe::spawn_options o;
  o.name = "x";
  CHECK_THROWS_AS(rt.spawn<greeter>(o), std::system_error);
  rt.run_until_idle();
  CHECK(rt.stats().live_actors == 2);
}

TEST_CASE("a stopped actor's name is released", "[core][registry]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::sim(sink)};
  troupe::spawn_options o;
  o.name = "svc";
  auto a = rt.spawn<greeter>(o);
  a.stop();
  rt.run_until_idle();
  CHECK(rt.lookup<greeter>("svc").error() == errc::name_not_found);
  auto b = rt.spawn<greeter>(o);
  CHECK(rt.lookup<greeter>("svc").value() == b);
}
