// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// A single-level hashed timing wheel with 1 ms ticks: O(1) arm and cancel,
/// which is what asks (one deadline each) need. Deadlines further than one
/// revolution stay in their slot and are re-checked once per revolution.
/// Single-threaded: only its shard touches it.

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <troupe/core/assert.hpp>

namespace troupe::detail {

struct timer_node {
  timer_node* prev_ = nullptr;
  timer_node* next_ = nullptr;
  std::int64_t deadline_ns_ = 0;
  std::uint32_t slot_ = 0;
  bool linked_ = false;
  /// Runs on the shard when the deadline passes; the node is already unlinked.
  void (*fire_)(timer_node*) noexcept = nullptr;
};

class timer_wheel {
 public:
  static constexpr std::int64_t tick_ns = 1'000'000;
  static constexpr std::size_t slots = 1024;

  explicit timer_wheel(std::int64_t now_ns) : last_tick_(now_ns / tick_ns) {}

  void add(timer_node* n) noexcept {
    TROUPE_ASSERT(!n->linked_, "timer armed twice");
    std::int64_t tick = n->deadline_ns_ / tick_ns;
    if (tick < last_tick_)
      tick = last_tick_;  // already due: its slot is visited at the next expire
    n->slot_ = static_cast<std::uint32_t>(static_cast<std::size_t>(tick) & (slots - 1));
    timer_node*& head = slots_[n->slot_];
    n->prev_ = nullptr;
    n->next_ = head;
    if (head) head->prev_ = n;
    head = n;
    n->linked_ = true;
    ++count_;
  }

  void remove(timer_node* n) noexcept {
    if (!n->linked_) return;
    if (n->prev_) {
      n->prev_->next_ = n->next_;
    } else {
      timer_node*& head = slots_[n->slot_];
      TROUPE_ASSERT(head == n, "timer list corrupt");
      head = n->next_;
    }
    if (n->next_) n->next_->prev_ = n->prev_;
    n->prev_ = n->next_ = nullptr;
    n->linked_ = false;
    --count_;
  }

  std::size_t size() const noexcept { return count_; }

  /// Fires every timer whose deadline is <= now_ns. Returns how many fired.
  /// The slot of the last tick seen is visited again: a timer due later in
  /// that same millisecond is still there.
  std::size_t expire(std::int64_t now_ns) noexcept {
    const std::int64_t now_tick = now_ns / tick_ns;
    if (now_tick < last_tick_) return 0;
    if (count_ == 0) {
      last_tick_ = now_tick;
      return 0;
    }
    std::size_t fired = 0;
    const std::int64_t first =
        std::max(last_tick_, now_tick - static_cast<std::int64_t>(slots) + 1);
    for (std::int64_t t = first; t <= now_tick; ++t) {
      timer_node* n = slots_[static_cast<std::size_t>(t) & (slots - 1)];
      while (n) {
        timer_node* next = n->next_;
        if (n->deadline_ns_ <= now_ns) {
          remove(n);
          n->fire_(n);
          ++fired;
        }
        n = next;
      }
    }
    last_tick_ = now_tick;
    return fired;
  }

  /// The earliest time at which expire() may have work, if any timer is armed.
  /// Exact for deadlines within one revolution; otherwise one revolution ahead.
  std::optional<std::int64_t> next_deadline_ns() const noexcept {
    if (count_ == 0) return std::nullopt;
    for (std::int64_t t = last_tick_; t < last_tick_ + static_cast<std::int64_t>(slots); ++t) {
      for (timer_node* n = slots_[static_cast<std::size_t>(t) & (slots - 1)]; n; n = n->next_) {
        if (n->deadline_ns_ / tick_ns <= t) return std::max(n->deadline_ns_, t * tick_ns);
      }
    }
    return (last_tick_ + static_cast<std::int64_t>(slots)) * tick_ns;
  }

 private:
  std::array<timer_node*, slots> slots_{};
  std::int64_t last_tick_;
  std::size_t count_ = 0;
};

}  // namespace troupe::detail
