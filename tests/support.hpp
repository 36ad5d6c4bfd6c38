// SPDX-License-Identifier: BSL-1.0
#pragma once
// Helpers shared by the tests: the replayable seed, quiet runtimes, a log sink.

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <troupe/core.hpp>
#include <vector>

// Catch prints results as their error message or "a value" (values need not be printable).
namespace Catch {
template <class T>
struct StringMaker<boost::system::result<T, boost::system::error_code>> {
  static std::string convert(const boost::system::result<T, boost::system::error_code>& r) {
    return r ? std::string("a value") : "error: " + r.error().message();
  }
};
}  // namespace Catch

namespace troupe::test {

/// The seed of this test run: TROUPE_SEED if set, random otherwise; printed once.
inline std::uint64_t seed() {
  static const std::uint64_t s = [] {
    std::uint64_t v;
    if (const char* env = std::getenv("TROUPE_SEED")) {
      v = std::strtoull(env, nullptr, 10);
    } else {
      v = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    }
    std::cerr << "troupe tests: seed " << v << " (replay with TROUPE_SEED=" << v << ")\n";
    return v;
  }();
  return s;
}

/// Collects the runtime's log lines so tests can assert on them.
struct log_sink {
  std::mutex mutex;
  std::vector<std::string> lines;
  std::vector<log_record> records_meta;  // level and component of each line
  std::function<void(const log_record&)> fn() {
    return [this](const log_record& r) {
      std::lock_guard lock(mutex);
      lines.emplace_back(std::string(r.component) + ": " + std::string(r.message));
      records_meta.push_back(log_record{r.level, {}, {}, r.suppressed});
    };
  }
  bool contains(std::string_view needle) {
    std::lock_guard lock(mutex);
    for (auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
  std::size_t count(std::string_view needle) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (auto& l : lines) n += l.find(needle) != std::string::npos;
    return n;
  }
};

inline runtime_options sim(log_sink& sink, unsigned shards = 1) {
  runtime_options o;
  o.shards = shards;
  o.simulated = true;
  o.seed = seed();
  o.log = sink.fn();
  return o;
}

inline runtime_options threaded(log_sink& sink, unsigned shards = 2) {
  runtime_options o;
  o.shards = shards;
  o.log = sink.fn();
  return o;
}

}  // namespace troupe::test
