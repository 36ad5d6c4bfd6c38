// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// latency_histogram: durations counted in fixed buckets, for metrics in the
/// Prometheus histogram shape (cumulative counts per upper bound, a +Inf
/// count, a sum). One writer at a time — an actor's own state, or a shard's
/// — copied out to be read (an ask's reply, a snapshot).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace troupe {

struct latency_histogram {
  /// Upper bounds of the buckets, in seconds; a last bucket (+Inf) follows.
  static constexpr std::array<double, 16> bounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                 0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                 0.5,     1.0,    2.5,     10.0};
  /// Observations per bucket (not cumulative); the last is above every bound.
  std::array<std::uint64_t, bounds.size() + 1> counts{};
  double sum_seconds = 0;

  void observe(std::chrono::nanoseconds d) noexcept {
    const double s = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < bounds.size() && s > bounds[i]) ++i;
    ++counts[i];
    sum_seconds += s;
  }
  /// Observations at or below bounds[i] (i == bounds.size(): all of them).
  std::uint64_t cumulative(std::size_t i) const noexcept {
    std::uint64_t n = 0;
    for (std::size_t j = 0; j <= i && j < counts.size(); ++j) n += counts[j];
    return n;
  }
  std::uint64_t count() const noexcept { return cumulative(bounds.size()); }
  latency_histogram& operator+=(const latency_histogram& o) noexcept {
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
    sum_seconds += o.sum_seconds;
    return *this;
  }
};

namespace detail {
/// A latency_histogram one thread writes (a shard's) and any thread reads:
/// relaxed atomics, each written by a load and a store (no locked add).
struct shard_histogram {
  std::array<std::atomic<std::uint64_t>, latency_histogram::bounds.size() + 1> counts{};
  std::atomic<std::uint64_t> sum_ns{0};

  /// latency_histogram::bounds in nanoseconds (on the ask path: no floating point).
  static constexpr auto bounds_ns = [] {
    std::array<std::int64_t, latency_histogram::bounds.size()> b{};
    for (std::size_t i = 0; i < b.size(); ++i)
      b[i] = static_cast<std::int64_t>(latency_histogram::bounds[i] * 1e9 + 0.5);
    return b;
  }();

  void observe(std::int64_t ns) noexcept {
    if (ns < 0) ns = 0;
    std::size_t i = 0;
    while (i < bounds_ns.size() && ns > bounds_ns[i]) ++i;
    counts[i].store(counts[i].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sum_ns.store(sum_ns.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(ns),
                 std::memory_order_relaxed);
  }
  latency_histogram snapshot() const noexcept {
    latency_histogram h;
    for (std::size_t i = 0; i < counts.size(); ++i)
      h.counts[i] = counts[i].load(std::memory_order_relaxed);
    h.sum_seconds = static_cast<double>(sum_ns.load(std::memory_order_relaxed)) * 1e-9;
    return h;
  }
};
}  // namespace detail

}  // namespace troupe
