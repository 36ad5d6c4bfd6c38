// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// memory_store: a saga_store in a hash map. Survives an orchestrator's
/// restart inside the process, not the process. Every operation completes at
/// once. It keeps at most `finished_max` finished sagas: beyond that the
/// oldest finished one is forgotten (its idempotency key with it).

#include <boost/unordered/unordered_flat_map.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <troupe/saga/store.hpp>
#include <unordered_map>

namespace troupe::saga {

struct memory_store_options {
  std::size_t finished_max = 1'000'000;
};

class memory_store final : public saga_store {
 public:
  explicit memory_store(memory_store_options opts = {}) : opts_(opts) {}
  std::uint64_t next_id() override;
  task<result<std::optional<stored_saga>>> create(stored_saga s) override;
  task<boost::system::error_code> save(std::uint64_t id, saga_state state,
                                       std::string record) override;
  task<result<stored_saga>> load(std::uint64_t id) override;
  task<result<std::vector<stored_saga>>> list(saga_state state, std::size_t limit,
                                              std::uint64_t after) override;
  task<result<std::vector<stored_saga>>> unfinished() override;
  store_stats stats() const override;

 private:
  memory_store_options opts_;
  mutable std::mutex mutex_;
  std::uint64_t last_id_ = 0;
  // Rows live in pages of consecutive ids. Ids come from next_id() in order,
  // so a saga's row lands next to the previous one and the store grows page
  // by page: no rehash moving every row (with a million sagas kept, growing a
  // hash map of rows showed in profiles), no random writes into a large table.
  static constexpr std::uint64_t page_rows = 256;
  struct row_page {
    std::optional<stored_saga> rows[page_rows];
    std::size_t used = 0;
  };
  stored_saga* find_row(std::uint64_t id);
  void insert_row(stored_saga s);
  void erase_row(std::uint64_t id);
  boost::unordered_flat_map<std::uint64_t, std::unique_ptr<row_page>> pages_;  // by id / page_rows
  std::deque<std::uint64_t> finished_;                                         // oldest first
  std::unordered_map<std::string, std::uint64_t> by_key_;
  store_stats stats_;
};

}  // namespace troupe::saga
