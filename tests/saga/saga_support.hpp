// SPDX-License-Identifier: BSL-1.0
#pragma once
// Helpers for the saga tests: a participant that records effects once per
// idempotency key (the ledger), a failure script, and a saga type whose steps
// ask the ledger.

#include <boost/asio/steady_timer.hpp>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <troupe/saga.hpp>
#include <vector>

#include "support.hpp"

namespace Catch {
template <>
struct StringMaker<boost::system::result<void, boost::system::error_code>> {
  static std::string convert(const boost::system::result<void, boost::system::error_code>& r) {
    return r ? std::string("success") : "error: " + r.error().message();
  }
};
}  // namespace Catch

namespace troupe::saga::test {

using namespace std::chrono_literals;

/// The reply of an ask whose handler returns result<T>. An error the handler
/// returns makes the ask itself fail with that error (Boost.System's converting
/// constructor), so both layers fold into one.
template <class T>
troupe::result<T> flat(troupe::result<troupe::result<T>> r) {
  if (!r) return troupe::failure<T>(r.error());
  return std::move(*r);
}

struct order_ctx {
  std::string item;
  int qty = 0;
  template <class A>
  void serialize(A& a) {
    a(cereal::make_nvp("item", item), cereal::make_nvp("qty", qty));
  }
};

/// One effect: "A:<step>" or "C:<step>", applied under an idempotency key.
struct apply {
  std::string key;
  std::string what;
};
struct get_log {};
/// The participant every test step talks to. It applies each (key, what)
/// once and keeps the order of first applications.
class ledger : public troupe::actor {
 public:
  bool handle(apply a) {
    if (!seen_.insert(a.key + "|" + a.what).second) {
      ++duplicates_;
      return false;
    }
    log_.push_back(a.what);
    return true;
  }
  std::pair<std::vector<std::string>, int> handle(get_log) { return {log_, duplicates_}; }

 private:
  std::set<std::string> seen_;
  std::vector<std::string> log_;
  int duplicates_ = 0;
};

/// What each step does, per attempt: set from the test thread, read by actions.
class script {
 public:
  /// The action of `step` fails with `ec` on its first `times` attempts (0 = always).
  void fail(const std::string& step, boost::system::error_code ec, std::uint32_t times = 0) {
    std::lock_guard lock(m_);
    fails_[step] = {ec, times};
  }
  void fail_compensation(const std::string& step, boost::system::error_code ec) {
    std::lock_guard lock(m_);
    comp_fails_[step] = ec;
  }
  void delay(const std::string& step, std::chrono::milliseconds d) {
    std::lock_guard lock(m_);
    delays_[step] = d;
  }
  boost::system::error_code outcome(const std::string& step, std::uint32_t attempt) {
    std::lock_guard lock(m_);
    calls_.push_back(step + "#" + std::to_string(attempt));
    auto it = fails_.find(step);
    if (it == fails_.end()) return {};
    if (it->second.second == 0 || attempt <= it->second.second) return it->second.first;
    return {};
  }
  boost::system::error_code compensation_outcome(const std::string& step) {
    std::lock_guard lock(m_);
    auto it = comp_fails_.find(step);
    return it == comp_fails_.end() ? boost::system::error_code{} : it->second;
  }
  std::chrono::milliseconds delay_of(const std::string& step) {
    std::lock_guard lock(m_);
    auto it = delays_.find(step);
    return it == delays_.end() ? 0ms : it->second;
  }
  void record_key(const std::string& key) {
    std::lock_guard lock(m_);
    keys_.push_back(key);
  }
  std::vector<std::string> keys() {
    std::lock_guard lock(m_);
    return keys_;
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(m_);
    return calls_;
  }

 private:
  std::mutex m_;
  std::map<std::string, std::pair<boost::system::error_code, std::uint32_t>> fails_;
  std::map<std::string, boost::system::error_code> comp_fails_;
  std::map<std::string, std::chrono::milliseconds> delays_;
  std::vector<std::string> keys_, calls_;
};

/// Retries shrunk for tests: 5 ms, x2, cap 40 ms, 4 attempts.
inline retry_policy quick_retry(std::uint32_t attempts = 4) {
  retry_policy p;
  p.initial = 5ms;
  p.max_interval = 40ms;
  p.max_attempts = attempts;
  return p;
}

inline definition<order_ctx>::fn action_of(actor_ref<ledger> lg, std::shared_ptr<script> sc) {
  return [lg, sc](order_ctx&, step_call call) -> task<step_result> {
    sc->record_key(call.idempotency_key);
    std::chrono::milliseconds d = sc->delay_of(call.step);
    if (d.count() > 0) co_await troupe::sleep_for(d);
    step_result f = sc->outcome(call.step, call.attempt);
    if (f) co_return f;
    apply a{call.idempotency_key, "A:" + call.step};
    auto ask = lg.ask(std::move(a), 5s);
    auto r = co_await ask;
    if (!r) co_return r.error();
    co_return step_result{};
  };
}

inline definition<order_ctx>::fn compensation_of(actor_ref<ledger> lg, std::shared_ptr<script> sc) {
  return [lg, sc](order_ctx&, step_call call) -> task<step_result> {
    step_result f = sc->compensation_outcome(call.step);
    if (f) co_return f;
    apply a{call.idempotency_key, "C:" + call.step};
    auto ask = lg.ask(std::move(a), 5s);
    auto r = co_await ask;
    if (!r) co_return r.error();
    co_return step_result{};
  };
}

/// A saga type "order" with steps s0..s{n-1}, each with an action and a compensation.
inline std::shared_ptr<definition<order_ctx>> make_order(actor_ref<ledger> lg,
                                                         std::shared_ptr<script> sc, int n,
                                                         std::string name = "order") {
  auto def = std::make_shared<definition<order_ctx>>(std::move(name));
  for (int i = 0; i < n; ++i) {
    def->step("s" + std::to_string(i))
        .action(action_of(lg, sc))
        .compensate(compensation_of(lg, sc))
        .retry(quick_retry())
        .compensation_retry(quick_retry())
        .timeout(2s);
  }
  return def;
}

inline std::string order_input(const std::string& item = "book", int qty = 1) {
  return R"({"item":")" + item + R"(","qty":)" + std::to_string(qty) + "}";
}

/// A runtime, a ledger, a script and an orchestrator over a memory store.
struct fixture {
  troupe::test::log_sink sink;
  std::shared_ptr<saga_store> store;
  troupe::runtime rt;
  actor_ref<ledger> lg;
  std::shared_ptr<script> sc = std::make_shared<script>();
  std::shared_ptr<registry> types = std::make_shared<registry>();
  actor_ref<orchestrator> orch;

  explicit fixture(std::shared_ptr<saga_store> s = std::make_shared<memory_store>())
      : store(std::move(s)), rt(troupe::test::threaded(sink, 1)) {
    lg = rt.spawn<ledger>();
  }
  void spawn(orchestrator_options o = {}) {
    o.store = store;
    o.types = types;
    orch = rt.spawn<orchestrator>(std::move(o));
  }
  started start(const std::string& type, const std::string& input, const std::string& key = {}) {
    auto r = flat(rt.ask_sync(orch, start_saga{type, input, key}, 5s));
    REQUIRE(r);
    return *r;
  }
  saga_record wait(std::uint64_t id, std::chrono::milliseconds t = 10s) {
    auto r = flat(rt.ask_sync(orch, wait_saga{id, t}, t + 5s));
    REQUIRE(r);
    return *r;
  }
  /// The effects the ledger applied, in order (each (key, effect) once).
  std::vector<std::string> effects() {
    auto r = rt.ask_sync(lg, get_log{}, 5s);
    REQUIRE(r);
    return r->first;
  }
  /// How many requests the ledger deduplicated (a key it had already applied).
  int duplicates() {
    auto r = rt.ask_sync(lg, get_log{}, 5s);
    REQUIRE(r);
    return r->second;
  }
};

}  // namespace troupe::saga::test
