// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The one intrusive node every queue in a shard carries: envelopes, actor
/// cells and resumptions are all work items, so enqueueing never allocates.

#include <atomic>
#include <cstddef>
#include <troupe/core/assert.hpp>

namespace troupe::detail {

struct work_item {
  work_item* next_ = nullptr;
  /// Runs the item on its shard's thread. Set once by whoever creates the item.
  void (*run_)(work_item*) = nullptr;
};

/// Single-threaded FIFO of work items (a mailbox).
template <class T>
class intrusive_fifo {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push(T* item) noexcept {
    item->next_ = nullptr;
    if (tail_)
      tail_->next_ = item;
    else
      head_ = item;
    tail_ = item;
  }
  T* pop() noexcept {
    T* item = head_;
    if (item) {
      head_ = static_cast<T*>(item->next_);
      if (!head_) tail_ = nullptr;
      item->next_ = nullptr;
    }
    return item;
  }
  T* front() const noexcept { return head_; }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
};

/// Lock-free multi-producer, single-consumer inbox. Producers push with one CAS;
/// the consumer takes everything at once and restores send order, so items from
/// one producer come out in the order that producer pushed them.
class mpsc_inbox {
 public:
  /// Returns true when the inbox was empty before this push.
  bool push(work_item* item) noexcept {
    work_item* head = head_.load(std::memory_order_relaxed);
    do {
      item->next_ = head;
    } while (!head_.compare_exchange_weak(head, item, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
    return head == nullptr;
  }
  bool empty() const noexcept { return head_.load(std::memory_order_seq_cst) == nullptr; }
  /// A cheap look for polling loops; take_all() is the synchronising read.
  bool empty_relaxed() const noexcept { return head_.load(std::memory_order_relaxed) == nullptr; }
  /// Takes every pushed item, oldest first, as a singly linked list.
  work_item* take_all() noexcept {
    work_item* list = head_.exchange(nullptr, std::memory_order_acquire);
    work_item* reversed = nullptr;
    while (list) {
      work_item* next = list->next_;
      list->next_ = reversed;
      reversed = list;
      list = next;
    }
    return reversed;
  }

 private:
  std::atomic<work_item*> head_{nullptr};
};

}  // namespace troupe::detail
