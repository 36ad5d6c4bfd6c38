// SPDX-License-Identifier: BSL-1.0
#include <algorithm>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <map>
#include <optional>
#include <sstream>

#include "saga/saga_support.hpp"

using namespace troupe::saga;
using namespace troupe::saga::test;
using troupe::task;

namespace {
std::vector<std::string> seq(std::initializer_list<const char*> l) { return {l.begin(), l.end()}; }
const boost::system::error_code transient =
    make_error_code(boost::system::errc::resource_unavailable_try_again);
}  // namespace

TEST_CASE("a saga whose steps all succeed completes, each action applied once in order",
          "[saga][orchestrator]") {
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 3));
  f.spawn();
  auto s = f.start("order", order_input());
  CHECK(s.created);
  saga_record r = f.wait(s.id);
  CHECK(r.state == saga_state::completed);
  CHECK(r.error.empty());
  CHECK(f.effects() == seq({"A:s0", "A:s1", "A:s2"}));
  REQUIRE(r.steps.size() == 3);
  for (auto& st : r.steps) {
    CHECK(st.status == step_status::completed);
    CHECK(st.attempts == 1);
    CHECK(st.started_ns > 0);
    CHECK(st.finished_ns >= st.started_ns);
  }
  CHECK(r.history.front().kind == event_kind::created);
  CHECK(r.history.back().kind == event_kind::completed);
}

TEST_CASE(
    "a failure at each step position compensates exactly the completed steps, in reverse, once "
    "each",
    "[saga][orchestrator]") {
  for (int fail_at = 0; fail_at < 4; ++fail_at) {
    INFO("failing step s" << fail_at);
    fixture f;
    f.types->add(make_order(f.lg, f.sc, 4));
    f.spawn();
    f.sc->fail("s" + std::to_string(fail_at), make_error_code(saga_errc::rejected));
    saga_record r = f.wait(f.start("order", order_input()).id);
    CHECK(r.state == saga_state::compensated);
    CHECK(r.error.find("rejected") != std::string::npos);
    std::vector<std::string> expect;
    for (int i = 0; i < fail_at; ++i) expect.push_back("A:s" + std::to_string(i));
    for (int i = fail_at - 1; i >= 0; --i) expect.push_back("C:s" + std::to_string(i));
    CHECK(f.effects() == expect);
    CHECK(f.duplicates() == 0);
    for (int i = 0; i < 4; ++i) {
      step_status want = i < fail_at    ? step_status::compensated
                         : i == fail_at ? step_status::failed
                                        : step_status::pending;
      CHECK(r.steps[i].status == want);
    }
    // A rejection is not retried.
    CHECK(r.steps[fail_at].attempts == 1);
  }
}

TEST_CASE("a step that fails transiently is retried with backoff, then succeeds",
          "[saga][orchestrator]") {
  fixture f;
  auto def = make_order(f.lg, f.sc, 2);
  f.types->add(def);
  f.spawn();
  f.sc->fail("s1", transient, 2);  // attempts 1 and 2 fail; backoff 5 ms then 10 ms
  auto t0 = std::chrono::steady_clock::now();
  saga_record r = f.wait(f.start("order", order_input()).id);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(r.state == saga_state::completed);
  CHECK(r.steps[1].attempts == 3);
  CHECK(r.steps[1].last_error.find("temporarily unavailable") != std::string::npos);
  CHECK(took >= 15ms);
  CHECK(f.effects() == seq({"A:s0", "A:s1"}));
  auto failed = std::count_if(r.history.begin(), r.history.end(),
                              [](auto& e) { return e.kind == event_kind::step_failed; });
  CHECK(failed == 2);
}

TEST_CASE("a step whose retries run out fails the saga after max_attempts",
          "[saga][orchestrator]") {
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 2));
  f.spawn();
  f.sc->fail("s1", transient);  // always
  saga_record r = f.wait(f.start("order", order_input()).id);
  CHECK(r.state == saga_state::compensated);
  CHECK(r.steps[1].attempts == 4);
  CHECK(r.steps[1].status == step_status::failed);
  CHECK(f.effects() == seq({"A:s0", "C:s0"}));
}

TEST_CASE("a step that outlives its timeout fails with step_timeout and the saga compensates",
          "[saga][orchestrator]") {
  fixture f;
  auto def = std::make_shared<definition<order_ctx>>("slow");
  def->step("s0").action(action_of(f.lg, f.sc)).compensate(compensation_of(f.lg, f.sc));
  def->step("s1")
      .action(action_of(f.lg, f.sc))
      .compensate(compensation_of(f.lg, f.sc))
      .timeout(30ms)
      .retry(quick_retry(2));
  f.types->add(def);
  f.spawn();
  f.sc->delay("s1", 2s);
  saga_record r = f.wait(f.start("slow", order_input()).id);
  CHECK(r.state == saga_state::compensated);
  CHECK(r.steps[1].attempts == 2);
  CHECK(r.steps[1].last_error.find("timeout") != std::string::npos);
  CHECK(f.effects() == seq({"A:s0", "C:s0"}));
}

TEST_CASE("a saga past its deadline stops forward and compensates", "[saga][orchestrator]") {
  fixture f;
  auto def = make_order(f.lg, f.sc, 3, "deadline");
  def->deadline(80ms);
  f.types->add(def);
  f.spawn();
  f.sc->delay("s1", 2s);  // its 2 s timeout is cut to what is left of the deadline
  auto t0 = std::chrono::steady_clock::now();
  saga_record r = f.wait(f.start("deadline", order_input()).id);
  CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
  CHECK(r.state == saga_state::compensated);
  CHECK(r.error.find("deadline") != std::string::npos);
  CHECK(r.steps[1].attempts == 1);  // a deadline is not retried
  CHECK(f.effects() == seq({"A:s0", "C:s0"}));
}

namespace {
struct pass {};
struct open_gate {};
/// Holds every pass until opened; tells the test thread when the first arrives.
class gate : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  explicit gate(std::shared_ptr<std::promise<void>> reached) : reached_(std::move(reached)) {}
  task<bool> handle(pass) {
    if (reached_) std::exchange(reached_, nullptr)->set_value();
    if (open_) co_return true;
    auto t = std::make_shared<boost::asio::steady_timer>(troupe::runtime::this_io(),
                                                         std::chrono::hours(1));
    waiting_.push_back(t);
    auto w = t->async_wait(troupe::use_task);
    co_await w;
    co_return true;
  }
  bool handle(open_gate) {
    open_ = true;
    for (auto& t : waiting_) t->cancel();
    waiting_.clear();
    return true;
  }

 private:
  std::shared_ptr<std::promise<void>> reached_;
  bool open_ = false;
  std::vector<std::shared_ptr<boost::asio::steady_timer>> waiting_;
};

std::shared_ptr<definition<order_ctx>> gated_order(fixture& f, troupe::actor_ref<gate> g,
                                                   const std::string& name) {
  // s1 waits at the gate before doing its work.
  auto inner = action_of(f.lg, f.sc);
  auto gated = [g, inner](order_ctx& c, step_call call) -> task<step_result> {
    auto ask = g.ask(pass{}, 10s);
    auto r = co_await ask;
    if (!r) co_return r.error();
    auto t = inner(c, std::move(call));
    co_return co_await std::move(t);
  };
  auto d = std::make_shared<definition<order_ctx>>(name);
  for (int i = 0; i < 3; ++i) {
    std::string n = "s" + std::to_string(i);
    d->step(n)
        .action(i == 1 ? gated : action_of(f.lg, f.sc))
        .compensate(compensation_of(f.lg, f.sc))
        .retry(quick_retry())
        .timeout(20s);
  }
  return d;
}
}  // namespace

TEST_CASE("cancel mid-way compensates the completed steps and never runs the rest",
          "[saga][orchestrator]") {
  fixture f;
  auto reached = std::make_shared<std::promise<void>>();
  auto arrived = reached->get_future();
  auto g = f.rt.spawn<gate>(reached);
  f.types->add(gated_order(f, g, "gated"));
  f.spawn();
  auto s = f.start("gated", order_input());
  arrived.wait();  // s1 is in flight
  auto c = flat(f.rt.ask_sync(f.orch, cancel_saga{s.id}, 5s));
  CHECK(c);
  REQUIRE(f.rt.ask_sync(g, open_gate{}, 5s));
  saga_record r = f.wait(s.id);
  CHECK(r.state == saga_state::compensated);
  CHECK(r.cancel_requested);
  CHECK(r.error.find("cancelled") != std::string::npos);
  // s1 finished its attempt, then the cancel took effect: s2 never ran.
  CHECK(f.effects() == seq({"A:s0", "A:s1", "C:s1", "C:s0"}));
  CHECK(r.steps[2].status == step_status::pending);
  // A finished saga cannot be cancelled.
  auto again = flat(f.rt.ask_sync(f.orch, cancel_saga{s.id}, 5s));
  CHECK(again.error() == saga_errc::not_running);
  auto missing = flat(f.rt.ask_sync(f.orch, cancel_saga{999999}, 5s));
  CHECK(missing.error() == saga_errc::not_found);
}

TEST_CASE("cancel during a retry backoff cuts the wait short", "[saga][orchestrator]") {
  fixture f;
  auto def = std::make_shared<definition<order_ctx>>("backoff");
  retry_policy slow = quick_retry(5);
  slow.initial = 30s;
  slow.max_interval = 30s;
  def->step("s0").action(action_of(f.lg, f.sc)).compensate(compensation_of(f.lg, f.sc));
  def->step("s1").action(action_of(f.lg, f.sc)).retry(slow);
  f.types->add(def);
  f.spawn();
  f.sc->fail("s1", transient);
  auto s = f.start("backoff", order_input());
  // Wait (on the event) until s1's first attempt has failed: the saga is in its 30 s backoff.
  for (;;) {
    auto r = flat(f.rt.ask_sync(f.orch, get_saga{s.id}, 5s));
    REQUIRE(r);
    if (r->steps[1].attempts == 1) break;
    std::this_thread::yield();
  }
  auto t0 = std::chrono::steady_clock::now();
  auto c = flat(f.rt.ask_sync(f.orch, cancel_saga{s.id}, 5s));
  CHECK(c);
  saga_record r = f.wait(s.id);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(r.state == saga_state::compensated);
  CHECK(r.steps[1].attempts == 1);
  CHECK(f.effects() == seq({"A:s0", "C:s0"}));
}

TEST_CASE(
    "a parallel group runs together and one failure compensates its completed steps, then earlier "
    "ones",
    "[saga][orchestrator][parallel]") {
  fixture f;
  auto def = std::make_shared<definition<order_ctx>>("fanout");
  auto add = [&](definition<order_ctx>::step_builder b) {
    b.action(action_of(f.lg, f.sc)).compensate(compensation_of(f.lg, f.sc)).retry(quick_retry());
  };
  add(def->step("s0"));
  add(def->step("p1"));
  add(def->parallel_step("p2"));
  add(def->parallel_step("p3"));
  add(def->step("s4"));
  f.types->add(def);
  f.spawn();
  f.sc->delay("p1", 20ms);  // p2 fails while p1 is still running: p1 still completes
  f.sc->fail("p2", make_error_code(saga_errc::rejected));
  saga_record r = f.wait(f.start("fanout", order_input()).id);
  CHECK(r.state == saga_state::compensated);
  auto log = f.effects();
  REQUIRE(log.size() == 6);
  CHECK(log[0] == "A:s0");
  std::set<std::string> forward{log[1], log[2]}, backward{log[3], log[4]};
  CHECK(forward == std::set<std::string>{"A:p1", "A:p3"});
  CHECK(backward == std::set<std::string>{"C:p1", "C:p3"});
  CHECK(log[5] == "C:s0");
  CHECK(r.steps[2].status == step_status::failed);
  CHECK(r.steps[4].status == step_status::pending);
}

TEST_CASE("a parallel group whose steps all succeed completes", "[saga][orchestrator][parallel]") {
  fixture f;
  auto def = std::make_shared<definition<order_ctx>>("fanout_ok");
  def->step("a").action(action_of(f.lg, f.sc));
  def->parallel_step("b").action(action_of(f.lg, f.sc));
  def->parallel_step("c").action(action_of(f.lg, f.sc));
  f.types->add(def);
  f.spawn();
  f.sc->delay("a", 10ms);
  saga_record r = f.wait(f.start("fanout_ok", order_input()).id);
  CHECK(r.state == saga_state::completed);
  auto log = f.effects();
  CHECK(std::set<std::string>(log.begin(), log.end()) ==
        std::set<std::string>{"A:a", "A:b", "A:c"});
  CHECK(log.front() != "A:a");  // b and c did not wait for a
}

TEST_CASE("a compensation that keeps failing leaves the saga stuck with its error",
          "[saga][orchestrator]") {
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 3));
  f.spawn();
  f.sc->fail("s2", make_error_code(saga_errc::rejected));
  f.sc->fail_compensation("s0", transient);
  saga_record r = f.wait(f.start("order", order_input()).id);
  CHECK(r.state == saga_state::stuck);
  CHECK(r.error.find("compensation failed") != std::string::npos);
  CHECK(r.steps[1].status == step_status::compensated);
  CHECK(r.steps[0].status == step_status::stuck);
  CHECK(r.steps[0].compensation_attempts == 4);
  CHECK(f.effects() == seq({"A:s0", "A:s1", "C:s1"}));
  // It is listed for an operator.
  auto stuck = flat(f.rt.ask_sync(f.orch, list_sagas{saga_state::stuck, 10}, 5s));
  REQUIRE(stuck);
  REQUIRE(stuck->size() == 1);
  CHECK(stuck->front().id == r.id);
}

TEST_CASE("an action that throws counts as a failed attempt", "[saga][orchestrator]") {
  fixture f;
  auto def = std::make_shared<definition<order_ctx>>("throws");
  def->step("s0").action(action_of(f.lg, f.sc)).compensate(compensation_of(f.lg, f.sc));
  def->step("boom")
      .action([](order_ctx&, step_call) -> task<step_result> {
        throw std::runtime_error("participant exploded");
        co_return step_result{};
      })
      .retry(quick_retry(2));
  f.types->add(def);
  f.spawn();
  saga_record r = f.wait(f.start("throws", order_input()).id);
  CHECK(r.state == saga_state::compensated);
  CHECK(r.steps[1].attempts == 2);
  CHECK(r.steps[1].last_error.find("threw") != std::string::npos);
  CHECK(f.sink.contains("participant exploded"));
}

TEST_CASE("bad start requests get clear errors", "[saga][orchestrator][input]") {
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 2));
  f.types->add(make_order(f.lg, f.sc, 1, "other"));
  f.spawn();
  auto ask = [&](start_saga m) { return flat(f.rt.ask_sync(f.orch, std::move(m), 5s)); };
  SECTION("unknown saga type") {
    auto r = ask({"no_such_type", order_input()});
    REQUIRE(!r);
    CHECK(r.error() == saga_errc::unknown_saga_type);
  }
  SECTION("input that is not JSON") {
    auto r = ask({"order", "{not json"});
    REQUIRE(!r);
    CHECK(r.error() == saga_errc::malformed_input);
  }
  SECTION("input missing a field") {
    auto r = ask({"order", R"({"item":"book"})"});
    REQUIRE(!r);
    CHECK(r.error() == saga_errc::malformed_input);
  }
  SECTION("input with a field of the wrong type") {
    auto r = ask({"order", R"({"item":"book","qty":"many"})"});
    REQUIRE(!r);
    CHECK(r.error() == saga_errc::malformed_input);
  }
  SECTION("the same idempotency key with another input") {
    auto first = ask({"order", order_input("book", 1), "key-1"});
    REQUIRE(first);
    auto r = ask({"order", order_input("book", 2), "key-1"});
    REQUIRE(!r);
    CHECK(r.error() == saga_errc::idempotency_conflict);
    CHECK(r.error().message().find("another type or input") != std::string::npos);
    // Only the first saga ran.
    CHECK(f.wait(first->id).state == saga_state::completed);
    CHECK(f.effects() == seq({"A:s0", "A:s1"}));
  }
  SECTION("the same idempotency key for another saga type") {
    auto first = ask({"order", order_input(), "key-2"});
    REQUIRE(first);
    auto r = ask({"other", order_input(), "key-2"});
    REQUIRE(!r);
    CHECK(r.error() == saga_errc::idempotency_conflict);
  }
}

TEST_CASE("the same idempotency key and input returns the existing saga, which runs once",
          "[saga][orchestrator][input]") {
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 2));
  f.spawn();
  auto a = f.start("order", order_input("lamp", 3), "order-77");
  // The same JSON with other spacing and field order is the same input.
  auto b = f.start("order", R"({ "qty": 3, "item": "lamp" })", "order-77");
  CHECK(a.created);
  CHECK_FALSE(b.created);
  CHECK(a.id == b.id);
  f.wait(a.id);
  auto c = f.start("order", order_input("lamp", 3), "order-77");  // after it finished too
  CHECK(c.id == a.id);
  CHECK_FALSE(c.created);
  CHECK(f.effects() == seq({"A:s0", "A:s1"}));
}

TEST_CASE("queries show state, per-step status, attempts, errors and a capped history",
          "[saga][orchestrator][query]") {
  fixture f;
  auto def = make_order(f.lg, f.sc, 2);
  def->step("flaky").action(action_of(f.lg, f.sc)).retry(quick_retry(8));
  f.types->add(def);
  orchestrator_options o;
  o.history_cap = 8;
  f.spawn(o);
  f.sc->fail("flaky", transient, 6);
  saga_record r = f.wait(f.start("order", order_input()).id);
  CHECK(r.state == saga_state::completed);
  CHECK(r.steps[2].name == "flaky");
  CHECK(r.steps[2].attempts == 7);
  CHECK_FALSE(r.steps[2].last_error.empty());
  CHECK(r.history.size() == 8);
  CHECK(r.history_dropped > 0);
  CHECK(r.history.back().kind == event_kind::completed);
  // get_saga returns the stored record; list_sagas filters by state.
  auto g = flat(f.rt.ask_sync(f.orch, get_saga{r.id}, 5s));
  REQUIRE(g);
  CHECK(g->state == saga_state::completed);
  CHECK(g->steps[2].attempts == 7);
  auto done = flat(f.rt.ask_sync(f.orch, list_sagas{saga_state::completed, 10}, 5s));
  REQUIRE(done);
  CHECK(done->size() == 1);
  auto running = flat(f.rt.ask_sync(f.orch, list_sagas{saga_state::running, 10}, 5s));
  REQUIRE(running);
  CHECK(running->empty());
  auto missing = flat(f.rt.ask_sync(f.orch, get_saga{424242}, 5s));
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == saga_errc::not_found);
}

TEST_CASE("sagas beyond max_active wait in pending and all finish", "[saga][orchestrator]") {
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 2));
  orchestrator_options o;
  o.max_active = 2;
  f.spawn(o);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(f.start("order", order_input()).id);
  for (auto id : ids) CHECK(f.wait(id).state == saga_state::completed);
  CHECK(f.effects().size() == 20);
}

namespace {
// A context with every shape the JSON input reader must handle as cereal's
// JSON archive does: nested objects, arrays of values and of objects, maps,
// optionals, enums, every integer width, floating point, bool and unnamed
// (positional) fields.
enum class colour : std::uint8_t { red, green, blue };
struct line {
  std::string sku;
  std::uint32_t qty = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(sku), CEREAL_NVP(qty));
  }
  bool operator==(const line&) const = default;
};
struct address {
  std::string city;
  std::vector<std::string> street;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(city), CEREAL_NVP(street));
  }
  bool operator==(const address&) const = default;
};
struct rich_ctx {
  std::string name;
  bool gift = false;
  std::int8_t i8 = 0;
  std::int16_t i16 = 0;
  int i32 = 0;
  std::int64_t i64 = 0;
  std::uint8_t u8 = 0;
  std::uint16_t u16 = 0;
  unsigned u32 = 0;
  std::uint64_t u64 = 0;
  long long ll = 0;
  float f = 0;
  double d = 0;
  colour c = colour::red;
  address to;
  std::vector<line> lines;
  std::vector<int> codes;
  std::map<std::string, int> tags;
  std::optional<int> maybe;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(name), CEREAL_NVP(gift), CEREAL_NVP(i8), CEREAL_NVP(i16), CEREAL_NVP(i32),
      CEREAL_NVP(i64), CEREAL_NVP(u8), CEREAL_NVP(u16), CEREAL_NVP(u32), CEREAL_NVP(u64),
      CEREAL_NVP(ll), CEREAL_NVP(f), CEREAL_NVP(d), CEREAL_NVP(c), CEREAL_NVP(to),
      CEREAL_NVP(lines), CEREAL_NVP(codes), CEREAL_NVP(tags), CEREAL_NVP(maybe));
  }
};
struct positional_ctx {
  int a = 0;
  std::string b;
  std::vector<int> c;
  template <class A>
  void serialize(A& ar) {
    ar(a, b, c);
  }
};

/// What cereal's own JSON archive makes of `json`: the context's binary form, or nothing.
template <class Ctx>
std::optional<std::string> cereal_reference(const std::string& json) {
  Ctx v{};
  try {
    std::istringstream is(json);
    cereal::JSONInputArchive a(is);
    v.serialize(a);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::ostringstream os;
  {
    cereal::BinaryOutputArchive a(os);
    a(v);
  }
  return os.str();
}
/// What the saga's input reader makes of it, in the same form.
template <class Ctx>
std::optional<std::string> saga_reading(const definition<Ctx>& def, const std::string& json) {
  auto r = def.parse_input(json);
  if (!r) {
    CHECK(r.error() == saga_errc::malformed_input);
    return std::nullopt;
  }
  return (*r)->encode();
}
}  // namespace

TEST_CASE("start input is read as cereal's JSON archive reads it", "[saga][input]") {
  const std::string full = R"({
    "name": "Ann", "gift": true, "i8": -5, "i16": 300, "i32": -70000, "i64": -5000000000,
    "u8": 200, "u16": 60000, "u32": 4000000000, "u64": 18000000000000000000,
    "ll": "-9000000000", "f": 1.5, "d": 2, "c": 2,
    "to": {"city": "Oslo", "street": ["a", "b"]},
    "lines": [{"sku": "x", "qty": 1}, {"qty": 2, "sku": "y"}],
    "codes": [1, 2, 3], "tags": [{"key": "k", "value": 7}],
    "maybe": {"nullopt": false, "data": 4}
  })";
  auto with = [&](const std::string& field, const std::string& value) {
    // `full` with one field's value replaced (or the field removed when value is empty).
    std::string s = full;
    auto at = s.find("\"" + field + "\":");
    REQUIRE(at != std::string::npos);
    auto end = at + field.size() + 3;
    int depth = 0;
    std::size_t stop = end;
    for (; stop < s.size(); ++stop) {
      char ch = s[stop];
      if (ch == '{' || ch == '[') ++depth;
      if (ch == '}' || ch == ']') {
        if (depth == 0) break;
        --depth;
      }
      if (ch == ',' && depth == 0) break;
    }
    if (value.empty()) {
      std::size_t from = at;
      if (stop < s.size() && s[stop] == ',') ++stop;  // drop the comma after it
      s.erase(from, stop - from);
    } else {
      s.replace(end, stop - end, " " + value);
    }
    return s;
  };
  std::vector<std::string> inputs = {
      full,
      "{}",
      "[]",
      "42",
      "\"text\"",
      "null",
      "",
      "{not json",
      full + " trailing",
      with("name", "7"),
      with("name", ""),
      with("gift", "1"),
      with("i8", "127"),
      with("i8", "1000"),  // cereal truncates through int: read, not refused
      with("i32", "2147483648"),
      with("i32", "-2147483648"),
      with("i32", "1.0"),
      with("i32", "\"3\""),
      with("i64", "9223372036854775807"),
      with("i64", "9223372036854775808"),
      with("u8", "-1"),
      with("u32", "4294967296"),
      with("u64", "-1"),
      with("u64", "18446744073709551615"),
      with("u64", "1e3"),
      with("ll", "12"),
      with("ll", "\"x\""),
      with("f", "\"1\""),
      with("d", "-3"),
      with("d", "18446744073709551615"),
      with("d", "null"),
      with("c", "7"),
      with("to", "[]"),
      with("to", "{\"street\": [], \"city\": \"Rome\"}"),
      with("to", "{\"city\": \"Rome\"}"),
      with("to", "5"),
      with("lines", "[]"),
      with("lines", "{}"),
      with("lines", "[{\"sku\": \"x\"}]"),
      with("lines", "[1]"),
      with("codes", "[1, \"2\"]"),
      with("codes", "[]"),
      with("tags", "[]"),
      with("tags", "{}"),
      with("maybe", "{\"nullopt\": true}"),
      with("maybe", "{\"nullopt\": false}"),
  };
  auto def = std::make_shared<definition<rich_ctx>>("rich");
  for (const auto& json : inputs) {
    INFO(json);
    CHECK(saga_reading(*def, json) == cereal_reference<rich_ctx>(json));
  }
  CHECK(saga_reading(*def, full).has_value());

  auto pos = std::make_shared<definition<positional_ctx>>("positional");
  for (std::string json : {R"([1, "b", [2, 3]])", R"({"x": 1, "y": "b", "z": [2]})", R"([1, "b"])",
                           R"([1, 2, [3]])", R"([1, "b", [2], "extra"])", "[]"}) {
    INFO(json);
    CHECK(saga_reading(*pos, json) == cereal_reference<positional_ctx>(json));
  }
  CHECK(saga_reading(*pos, R"([1, "b", [2, 3]])").has_value());
}

TEST_CASE("a saga started after another finished carries nothing of it", "[saga][orchestrator]") {
  // Finished sagas' records are reused for new starts: nothing of the first
  // (its error, attempts, statuses, history) may show in the second.
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 3));
  f.spawn();
  f.sc->fail("s1", make_error_code(saga_errc::rejected));
  saga_record first = f.wait(f.start("order", order_input("lamp", 2), "first").id);
  REQUIRE(first.state == saga_state::compensated);
  REQUIRE_FALSE(first.error.empty());
  f.sc->fail("s1", boost::system::error_code{});  // succeeds from now on
  auto second_id = f.start("order", order_input("book", 1)).id;
  CHECK(second_id != first.id);
  saga_record finished = f.wait(second_id);
  auto stored = flat(f.rt.ask_sync(f.orch, get_saga{second_id}, 5s));
  REQUIRE(stored);
  for (const saga_record& r : {finished, *stored}) {
    CHECK(r.id == second_id);
    CHECK(r.state == saga_state::completed);
    CHECK(r.error.empty());
    CHECK(r.idempotency_key.empty());
    CHECK_FALSE(r.cancel_requested);
    CHECK(r.history_dropped == 0);
    REQUIRE(r.steps.size() == 3);
    for (const step_state& st : r.steps) {
      CHECK(st.status == step_status::completed);
      CHECK(st.attempts == 1);
      CHECK(st.compensation_attempts == 0);
      CHECK(st.last_error.empty());
    }
    REQUIRE_FALSE(r.history.empty());
    CHECK(r.history.front().kind == event_kind::created);
    CHECK(r.history.back().kind == event_kind::completed);
    CHECK(r.history.size() ==
          9);  // created, started, 3 x (step_started, step_completed), completed
  }
  // The first saga's stored record is untouched.
  auto again = flat(f.rt.ask_sync(f.orch, get_saga{first.id}, 5s));
  REQUIRE(again);
  CHECK(again->state == saga_state::compensated);
  CHECK(again->idempotency_key == "first");
}

TEST_CASE("named orchestrators that share a participant give their steps distinct keys",
          "[saga][orchestrator]") {
  // Two orchestrators with their own stores both number their first saga 1;
  // the name keeps the participant from taking one's step for the other's.
  fixture f;
  f.types->add(make_order(f.lg, f.sc, 2));
  auto spawn = [&](const std::string& name) {
    orchestrator_options o;
    o.store = std::make_shared<memory_store>();
    o.types = f.types;
    o.name = name;
    return f.rt.spawn<orchestrator>(std::move(o));
  };
  for (auto orch : {spawn("node-a"), spawn("node-b")}) {
    auto s = flat(f.rt.ask_sync(orch, start_saga{"order", order_input()}, 5s));
    REQUIRE(s);
    CHECK(s->id == 1);
    auto r = flat(f.rt.ask_sync(orch, wait_saga{s->id, 10s}, 15s));
    REQUIRE(r);
    CHECK(r->state == saga_state::completed);
  }
  auto keys = f.sc->keys();
  std::sort(keys.begin(), keys.end());
  CHECK(keys == seq({"node-a/1/s0", "node-a/1/s1", "node-b/1/s0", "node-b/1/s1"}));
  CHECK(f.effects().size() == 4);  // both sagas' steps applied
  CHECK(f.duplicates() == 0);
}
