#include <algorithm>
#include <troupe/core/assert.hpp>
#include <troupe/saga/error.hpp>
#include <troupe/saga/memory_store.hpp>

namespace troupe::saga {

std::uint64_t memory_store::next_id() {
  std::lock_guard lock(mutex_);
  return ++last_id_;
}

task<result<std::optional<stored_saga>>> memory_store::create(stored_saga s) {
  std::optional<stored_saga> existing;
  {
    std::lock_guard lock(mutex_);
    TROUPE_ASSERT(s.id != 0 && !rows_.contains(s.id), "memory_store: create with a used id");
    if (!s.key.empty()) {
      auto [it, inserted] = by_key_.try_emplace(s.key, s.id);
      if (!inserted) existing = rows_.at(it->second);
    }
    if (!existing) {
      last_id_ = std::max(last_id_, s.id);
      rows_.emplace(s.id, std::move(s));
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
    auto it = rows_.find(id);
    if (it == rows_.end()) {
      ec = saga_errc::not_found;
    } else {
      bool finishing = saga::unfinished(it->second.state) && !saga::unfinished(state);
      it->second.state = state;
      it->second.record = std::move(record);
      ++stats_.writes;
      ++stats_.commits;
      if (finishing) {
        finished_.push_back(id);
        while (finished_.size() > opts_.finished_max) {
          auto old = rows_.find(finished_.front());
          finished_.pop_front();
          if (old == rows_.end()) continue;
          if (!old->second.key.empty()) by_key_.erase(old->second.key);
          rows_.erase(old);
        }
      }
    }
  }
  co_return ec;
}

task<result<stored_saga>> memory_store::load(std::uint64_t id) {
  std::unique_lock lock(mutex_);
  auto it = rows_.find(id);
  if (it == rows_.end()) co_return failure<stored_saga>(make_error_code(saga_errc::not_found));
  stored_saga copy = it->second;
  lock.unlock();
  co_return copy;
}

task<result<std::vector<stored_saga>>> memory_store::list(saga_state state, std::size_t limit) {
  std::vector<const stored_saga*> match;
  std::vector<stored_saga> out;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, row] : rows_)
      if (row.state == state) match.push_back(&row);
    std::sort(match.begin(), match.end(), [](auto* a, auto* b) { return a->id < b->id; });
    for (std::size_t i = 0; i < match.size() && i < limit; ++i) out.push_back(*match[i]);
  }
  co_return out;
}

task<result<std::vector<stored_saga>>> memory_store::unfinished() {
  std::vector<stored_saga> out;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, row] : rows_)
      if (saga::unfinished(row.state)) out.push_back(row);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
  co_return out;
}

store_stats memory_store::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace troupe::saga
