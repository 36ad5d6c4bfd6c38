// SPDX-License-Identifier: BSL-1.0
// The runtime's log: levels, components, and repeated lines held back.
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::log_level;
using troupe::task;

namespace {
struct say {
  log_level level;
  std::string text;
};
class speaker : public troupe::actor {
 public:
  void handle(say s) { system().log(s.level, "test", s.text); }
};
}  // namespace

TEST_CASE("log levels: names read back, records below the minimum never reach the sink", "[log]") {
  for (log_level l : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                      log_level::error, log_level::off})
    CHECK(troupe::parse_log_level(troupe::to_string(l)) == l);
  CHECK(troupe::parse_log_level("warning") == log_level::warn);
  CHECK_FALSE(troupe::parse_log_level("loud").has_value());
  CHECK_FALSE(troupe::parse_log_level("").has_value());

  troupe::test::log_sink sink;
  troupe::runtime_options o = troupe::test::sim(sink);
  o.min_log_level = log_level::warn;
  troupe::runtime rt{o};
  CHECK_FALSE(rt.log_enabled(log_level::info));
  CHECK(rt.log_enabled(log_level::error));
  CHECK_FALSE(rt.log_enabled(log_level::off));
  auto s = rt.spawn<speaker>();
  (void)s.tell(say{log_level::info, "quiet line"});
  (void)s.tell(say{log_level::warn, "loud line"});
  (void)s.tell(say{log_level::error, "louder line"});
  rt.run_until_idle();
  CHECK_FALSE(sink.contains("quiet line"));
  CHECK(sink.lines == std::vector<std::string>{"test: loud line", "test: louder line"});
  REQUIRE(sink.records_meta.size() == 2);
  CHECK(sink.records_meta[0].level == log_level::warn);
  CHECK(sink.records_meta[1].level == log_level::error);
}

TEST_CASE("a repeated line passes once a window, then says how many were held back", "[log]") {
  troupe::test::log_sink sink;
  troupe::runtime_options o = troupe::test::sim(sink);
  o.min_log_level = log_level::debug;
  o.log_repeat_window = 10s;
  troupe::runtime rt{o};
  auto s = rt.spawn<speaker>();
  for (int i = 0; i < 50; ++i) (void)s.tell(say{log_level::warn, "peer p1 unreachable"});
  (void)s.tell(say{log_level::warn, "peer p2 unreachable"});  // another line: its own window
  rt.run_until_idle();
  CHECK(sink.count("peer p1 unreachable") == 1);
  CHECK(sink.count("peer p2 unreachable") == 1);

  rt.advance(9s);  // still inside the window
  (void)s.tell(say{log_level::warn, "peer p1 unreachable"});
  rt.run_until_idle();
  CHECK(sink.count("peer p1 unreachable") == 1);

  rt.advance(2s);  // the window has passed: the next one goes out, with the count
  (void)s.tell(say{log_level::warn, "peer p1 unreachable"});
  rt.run_until_idle();
  REQUIRE(sink.count("peer p1 unreachable") == 2);
  CHECK(sink.records_meta.back().suppressed == 50);

  // Debug lines are asked for (an access log): never held back.
  for (int i = 0; i < 5; ++i) (void)s.tell(say{log_level::debug, "GET /healthz 200"});
  rt.run_until_idle();
  CHECK(sink.count("GET /healthz 200") == 5);
}

TEST_CASE("a zero repeat window passes every line", "[log]") {
  troupe::test::log_sink sink;
  troupe::runtime_options o = troupe::test::sim(sink);
  o.log_repeat_window = 0ms;
  troupe::runtime rt{o};
  auto s = rt.spawn<speaker>();
  for (int i = 0; i < 7; ++i) (void)s.tell(say{log_level::info, "same"});
  rt.run_until_idle();
  CHECK(sink.count("same") == 7);
}
