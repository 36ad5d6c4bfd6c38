// SPDX-License-Identifier: BSL-1.0
#include <algorithm>
#include <troupe/core/assert.hpp>
#include <troupe/saga/error.hpp>
#include <troupe/saga/memory_store.hpp>

namespace troupe::saga {

stored_saga* memory_store::find_row(std::uint64_t id) {
  auto it = pages_.find(id / page_rows);
  if (it == pages_.end()) return nullptr;
  auto& slot = it->second->rows[id % page_rows];
  return slot ? &*slot : nullptr;
}

void memory_store::insert_row(stored_saga s) {
  auto& page = pages_[s.id / page_rows];
  if (!page) page = std::make_unique<row_page>();
  page->rows[s.id % page_rows].emplace(std::move(s));
  ++page->used;
}

void memory_store::erase_row(std::uint64_t id) {
  auto it = pages_.find(id / page_rows);
  if (it == pages_.end()) return;
  auto& slot = it->second->rows[id % page_rows];
  if (!slot) return;
  slot.reset();
  if (--it->second->used == 0) pages_.erase(it);
}

std::uint64_t memory_store::next_id() {
  std::lock_guard lock(mutex_);
  return ++last_id_;
}

task<result<std::optional<stored_saga>>> memory_store::create(stored_saga s) {
  std::optional<stored_saga> existing;
  {
    std::lock_guard lock(mutex_);
    TROUPE_ASSERT(s.id != 0 && !find_row(s.id), "memory_store: create with a used id");
    if (!s.key.empty()) {
      auto [it, inserted] = by_key_.try_emplace(s.key, s.id);
      if (!inserted) {
        stored_saga* holder = find_row(it->second);
        TROUPE_ASSERT(holder != nullptr, "memory_store: a key without its row");
        existing = *holder;
      }
    }
    if (!existing) {
      last_id_ = std::max(last_id_, s.id);
      insert_row(std::move(s));
      ++stats_.writes;
      ++stats_.commits;
    }
  }
  co_return existing;
}

task<boost::system::error_code> memory_store::save(std::uint64_t id, saga_state state,
                                                   std::string record) {
  boost::system::error_code ec;
  {
    std::lock_guard lock(mutex_);
    stored_saga* row = find_row(id);
    if (!row) {
      ec = saga_errc::not_found;
    } else {
      bool finishing = saga::unfinished(row->state) && !saga::unfinished(state);
      row->state = state;
      row->record = std::move(record);
      ++stats_.writes;
      ++stats_.commits;
      if (finishing) {
        finished_.push_back(id);
        while (finished_.size() > opts_.finished_max) {
          std::uint64_t oldest = finished_.front();
          finished_.pop_front();
          stored_saga* old = find_row(oldest);
          if (!old) continue;
          if (!old->key.empty()) by_key_.erase(old->key);
          erase_row(oldest);
        }
      }
    }
  }
  co_return ec;
}

task<result<stored_saga>> memory_store::load(std::uint64_t id) {
  std::unique_lock lock(mutex_);
  stored_saga* row = find_row(id);
  if (!row) co_return failure<stored_saga>(make_error_code(saga_errc::not_found));
  stored_saga copy = *row;
  lock.unlock();
  co_return copy;
}

task<result<std::vector<stored_saga>>> memory_store::list(saga_state state, std::size_t limit,
                                                          std::uint64_t after) {
  std::vector<const stored_saga*> match;
  std::vector<stored_saga> out;
  {
    std::lock_guard lock(mutex_);
    for (auto& [index, page] : pages_)
      for (auto& row : page->rows)
        if (row && row->state == state && row->id > after) match.push_back(&*row);
    std::sort(match.begin(), match.end(), [](auto* a, auto* b) { return a->id < b->id; });
    for (std::size_t i = 0; i < match.size() && i < limit; ++i) out.push_back(*match[i]);
  }
  co_return out;
}

task<result<std::vector<stored_saga>>> memory_store::unfinished() {
  std::vector<stored_saga> out;
  {
    std::lock_guard lock(mutex_);
    for (auto& [index, page] : pages_)
      for (auto& row : page->rows)
        if (row && saga::unfinished(row->state)) out.push_back(*row);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
  co_return out;
}

store_stats memory_store::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace troupe::saga
