// SPDX-License-Identifier: BSL-1.0
#include <catch2/catch.hpp>
#include <stdexcept>
#include <troupe/core/task.hpp>

using troupe::task;

namespace {
// Drives a task to completion on the current thread (tasks here never suspend
// on anything external).
template <class T>
T run(task<T> t) {
  struct driver {
    static task<void> wrap(task<T> inner, std::optional<T>& out) {
      out.emplace(co_await std::move(inner));
    }
  };
  std::optional<T> out;
  task<void> w = driver::wrap(std::move(t), out);
  auto h = w.release();
  h.resume();
  REQUIRE(h.done());
  std::exception_ptr e = h.promise().exception();
  h.destroy();
  if (e) std::rethrow_exception(e);
  return std::move(*out);
}

task<int> answer(bool& started) {
  started = true;
  co_return 42;
}
task<int> add(int a, int b) { co_return a + b; }
task<int> nested(int depth) {
  if (depth == 0) co_return 0;
  int below = co_await nested(depth - 1);
  co_return below + 1;
}
task<int> throws() {
  throw std::runtime_error("boom");
  co_return 0;
}
}  // namespace

TEST_CASE("a task does not start until it is awaited", "[core][task]") {
  bool started = false;
  task<int> t = answer(started);
  CHECK_FALSE(started);
  CHECK(run(std::move(t)) == 42);
  CHECK(started);
}

TEST_CASE("awaiting a task yields its value", "[core][task]") { CHECK(run(add(2, 3)) == 5); }

TEST_CASE("a deep chain of awaits completes", "[core][task]") {
  // Symmetric transfer is a tail call only when the optimiser emits one: under
  // ASan at -O1 every level still costs a stack frame, so go less deep there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
  constexpr int depth = 2000;
#else
  constexpr int depth = 1000000;
#endif
  CHECK(run(nested(depth)) == depth);
}

TEST_CASE("an exception in a task reaches its awaiter", "[core][task]") {
  CHECK_THROWS_WITH(run(throws()), "boom");
}

TEST_CASE("destroying an unstarted task frees its frame", "[core][task]") {
  bool started = false;
  { task<int> t = answer(started); }
  CHECK_FALSE(started);  // and ASan reports no leak
}
