// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// sqlite_store: the embedded durable saga_store — one SQLite file in WAL
/// mode with synchronous=FULL, written by one writer thread with group commit.
///
/// Every operation is queued to the writer thread. The writer takes whatever
/// is queued (at most batch_max operations), runs it in one transaction, and
/// commits: one WAL fsync for the whole batch. While it commits, new
/// operations queue up and form the next batch, so the number of fsyncs per
/// saga falls as load rises. After the commit the writer completes each
/// operation on the shard that issued it (an Asio post to that shard's
/// io_context): a task never resumes on the writer thread, and no shard ever
/// blocks on SQLite.
///
/// The store must outlive the runtime whose actors use it: an operation in
/// flight when the runtime stops still completes (the stopping shard waits
/// for it) and the destructor drains the queue before closing the file.

#include <sqlite3.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <troupe/saga/store.hpp>
#include <vector>

namespace troupe::saga {

struct sqlite_store_options {
  std::string path;  ///< the database file (created if missing; -wal and -shm beside it)
  std::size_t batch_max = 4096;  ///< operations per transaction, at most
  /// How often a second connection on its own thread checkpoints the WAL into
  /// the database (PASSIVE: it never blocks the writer). The writer itself
  /// never checkpoints, so a commit never waits for one.
  std::chrono::milliseconds checkpoint_every{100};
};

class sqlite_store final : public saga_store {
 public:
  /// Opens (or creates) the database. Throws std::runtime_error with SQLite's
  /// message when the file cannot be opened or set up.
  explicit sqlite_store(sqlite_store_options opts);
  ~sqlite_store() override;
  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  std::uint64_t next_id() override;
  task<result<std::optional<stored_saga>>> create(stored_saga s) override;
  task<boost::system::error_code> save(std::uint64_t id, saga_state state,
                                       std::string record) override;
  task<result<stored_saga>> load(std::uint64_t id) override;
  task<result<std::vector<stored_saga>>> list(saga_state state, std::size_t limit,
                                              std::uint64_t after) override;
  task<result<std::vector<stored_saga>>> unfinished() override;
  store_stats stats() const override;

  /// The last SQLite error message (for logs), or empty.
  std::string last_error() const;

  struct op;  // one queued operation (private to the implementation)

 private:
  task<void> submit(std::shared_ptr<op> o);
  void enqueue(std::shared_ptr<op> o);
  void writer_loop();
  void run(op& o);
  void complete(std::vector<std::shared_ptr<op>>& batch);
  void checkpoint_loop();
  void fail(const char* what);

  sqlite_store_options opts_;
  sqlite3* db_ = nullptr;
  struct statements;
  std::unique_ptr<statements> stmts_;
  std::atomic<std::uint64_t> last_id_{0};

  mutable std::mutex mutex_;
  std::condition_variable cv_, cv_checkpoint_;
  std::deque<std::shared_ptr<op>> queue_;
  bool stop_ = false;
  std::string last_error_;

  std::atomic<std::uint64_t> writes_{0}, commits_{0}, fsyncs_{0};
  std::thread writer_;
  sqlite3* checkpoint_db_ = nullptr;
  std::thread checkpointer_;
};

}  // namespace troupe::saga
