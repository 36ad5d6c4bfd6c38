// SPDX-License-Identifier: BSL-1.0
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <limits>
#include <stdexcept>
#include <troupe/core/assert.hpp>
#include <troupe/core/use_task.hpp>
#include <troupe/saga/error.hpp>
#include <troupe/saga/sqlite_store.hpp>

namespace troupe::saga {

// ---------------------------------------------------------------------------
// A VFS shim that counts fsyncs. SQLite syncs through its VFS's xSync; this
// shim forwards every call to the default (unix) VFS and counts xSync in a
// thread-local, which the writer thread reads around each commit. Counting at
// the VFS means the figure includes checkpoints, not just commits.

namespace {

thread_local std::uint64_t tl_syncs = 0;

struct count_file {
  sqlite3_file base;
  sqlite3_file* real;
};
sqlite3_file* real_of(sqlite3_file* f) { return reinterpret_cast<count_file*>(f)->real; }

sqlite3_vfs* g_real_vfs = nullptr;
sqlite3_vfs g_count_vfs;
sqlite3_io_methods g_count_methods;
constexpr const char* count_vfs_name = "troupe_count";

int count_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out) {
  auto* cf = reinterpret_cast<count_file*>(file);
  cf->real = reinterpret_cast<sqlite3_file*>(cf + 1);
  cf->real->pMethods = nullptr;
  int rc = g_real_vfs->xOpen(g_real_vfs, name, cf->real, flags, out);
  cf->base.pMethods = cf->real->pMethods ? &g_count_methods : nullptr;
  return rc;
}

void register_count_vfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_real_vfs = sqlite3_vfs_find(nullptr);
    if (!g_real_vfs) throw std::runtime_error("sqlite: no default VFS");
    g_count_vfs = *g_real_vfs;  // the unix VFS's other methods do not use their vfs argument
    g_count_vfs.pNext = nullptr;
    g_count_vfs.zName = count_vfs_name;
    g_count_vfs.szOsFile = static_cast<int>(sizeof(count_file)) + g_real_vfs->szOsFile;
    g_count_vfs.xOpen = &count_open;

    sqlite3_io_methods& m = g_count_methods;
    m.iVersion = 3;
    m.xClose = [](sqlite3_file* f) { return real_of(f)->pMethods->xClose(real_of(f)); };
    m.xRead = [](sqlite3_file* f, void* b, int n, sqlite3_int64 off) {
      return real_of(f)->pMethods->xRead(real_of(f), b, n, off);
    };
    m.xWrite = [](sqlite3_file* f, const void* b, int n, sqlite3_int64 off) {
      return real_of(f)->pMethods->xWrite(real_of(f), b, n, off);
    };
    m.xTruncate = [](sqlite3_file* f, sqlite3_int64 size) {
      return real_of(f)->pMethods->xTruncate(real_of(f), size);
    };
    m.xSync = [](sqlite3_file* f, int flags) {
      ++tl_syncs;
      return real_of(f)->pMethods->xSync(real_of(f), flags);
    };
    m.xFileSize = [](sqlite3_file* f, sqlite3_int64* size) {
      return real_of(f)->pMethods->xFileSize(real_of(f), size);
    };
    m.xLock = [](sqlite3_file* f, int l) { return real_of(f)->pMethods->xLock(real_of(f), l); };
    m.xUnlock = [](sqlite3_file* f, int l) { return real_of(f)->pMethods->xUnlock(real_of(f), l); };
    m.xCheckReservedLock = [](sqlite3_file* f, int* r) {
      return real_of(f)->pMethods->xCheckReservedLock(real_of(f), r);
    };
    m.xFileControl = [](sqlite3_file* f, int op, void* arg) {
      return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
    };
    m.xSectorSize = [](sqlite3_file* f) { return real_of(f)->pMethods->xSectorSize(real_of(f)); };
    m.xDeviceCharacteristics = [](sqlite3_file* f) {
      return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
    };
    m.xShmMap = [](sqlite3_file* f, int pg, int pgsz, int extend, void volatile** p) {
      return real_of(f)->pMethods->xShmMap(real_of(f), pg, pgsz, extend, p);
    };
    m.xShmLock = [](sqlite3_file* f, int off, int n, int flags) {
      return real_of(f)->pMethods->xShmLock(real_of(f), off, n, flags);
    };
    m.xShmBarrier = [](sqlite3_file* f) { real_of(f)->pMethods->xShmBarrier(real_of(f)); };
    m.xShmUnmap = [](sqlite3_file* f, int del) {
      return real_of(f)->pMethods->xShmUnmap(real_of(f), del);
    };
    m.xFetch = [](sqlite3_file* f, sqlite3_int64 off, int n, void** p) {
      sqlite3_file* r = real_of(f);
      if (r->pMethods->iVersion < 3) {
        *p = nullptr;
        return SQLITE_OK;
      }
      return r->pMethods->xFetch(r, off, n, p);
    };
    m.xUnfetch = [](sqlite3_file* f, sqlite3_int64 off, void* p) {
      sqlite3_file* r = real_of(f);
      if (r->pMethods->iVersion < 3) return SQLITE_OK;
      return r->pMethods->xUnfetch(r, off, p);
    };
    if (sqlite3_vfs_register(&g_count_vfs, 0) != SQLITE_OK)
      throw std::runtime_error("sqlite: cannot register the counting VFS");
  });
}

}  // namespace

// ---------------------------------------------------------------------------

struct sqlite_store::op {
  enum kind_t { create, save, load, list, unfinished } kind;
  stored_saga row;
  std::size_t limit = 0;
  boost::system::error_code ec;
  std::optional<stored_saga> existing;
  std::vector<stored_saga> rows;
  boost::asio::any_io_executor ex;
  std::function<void()> done;  // resumes the issuer; run on `ex`
};

struct sqlite_store::statements {
  sqlite3_stmt* insert = nullptr;
  sqlite3_stmt* by_key = nullptr;
  sqlite3_stmt* by_id = nullptr;
  sqlite3_stmt* update = nullptr;
  sqlite3_stmt* list = nullptr;
  sqlite3_stmt* unfinished = nullptr;
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_stmt* rollback = nullptr;
  ~statements() {
    for (sqlite3_stmt* s :
         {insert, by_key, by_id, update, list, unfinished, begin, commit, rollback})
      sqlite3_finalize(s);
  }
};

namespace {
void exec_or_throw(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = std::string("sqlite: ") + sql + ": " + (err ? err : "error");
    sqlite3_free(err);
    throw std::runtime_error(m);
  }
}
sqlite3_stmt* prepare_or_throw(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
    throw std::runtime_error(std::string("sqlite: prepare ") + sql + ": " + sqlite3_errmsg(db));
  return s;
}
stored_saga read_row(sqlite3_stmt* s) {
  stored_saga r;
  r.id = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
  if (const auto* k = sqlite3_column_text(s, 1))
    r.key.assign(reinterpret_cast<const char*>(k),
                 static_cast<std::size_t>(sqlite3_column_bytes(s, 1)));
  r.state = static_cast<saga_state>(sqlite3_column_int(s, 2));
  if (const void* b = sqlite3_column_blob(s, 3))
    r.record.assign(static_cast<const char*>(b),
                    static_cast<std::size_t>(sqlite3_column_bytes(s, 3)));
  return r;
}
}  // namespace

sqlite_store::sqlite_store(sqlite_store_options opts) : opts_(std::move(opts)) {
  TROUPE_ASSERT(opts_.batch_max > 0, "sqlite_store: batch_max must be positive");
  register_count_vfs();
  int rc = sqlite3_open_v2(opts_.path.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           count_vfs_name);
  if (rc != SQLITE_OK) {
    std::string m = "sqlite: cannot open " + opts_.path + ": " +
                    (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close(db_);
    throw std::runtime_error(m);
  }
  try {
    exec_or_throw(db_, "PRAGMA journal_mode=WAL");
    exec_or_throw(db_, "PRAGMA synchronous=FULL");
    exec_or_throw(db_, "PRAGMA wal_autocheckpoint=0");  // checkpoint_loop() does it
    sqlite3_busy_timeout(db_, 5000);                    // the checkpointer holds locks briefly
    exec_or_throw(db_,
                  "CREATE TABLE IF NOT EXISTS sagas(id INTEGER PRIMARY KEY, key TEXT UNIQUE, "
                  "state INTEGER NOT NULL, record BLOB NOT NULL)");
    stmts_ = std::make_unique<statements>();
    statements& s = *stmts_;
    s.insert = prepare_or_throw(db_,
                                "INSERT INTO sagas(id, key, state, record) VALUES(?1, ?2, ?3, ?4) "
                                "ON CONFLICT(key) DO NOTHING");
    s.by_key = prepare_or_throw(db_, "SELECT id, key, state, record FROM sagas WHERE key = ?1");
    s.by_id = prepare_or_throw(db_, "SELECT id, key, state, record FROM sagas WHERE id = ?1");
    s.update = prepare_or_throw(db_, "UPDATE sagas SET state = ?2, record = ?3 WHERE id = ?1");
    s.list = prepare_or_throw(
        db_,
        "SELECT id, key, state, record FROM sagas WHERE state = ?1 AND id > ?3 ORDER BY id "
        "LIMIT ?2");
    s.unfinished = prepare_or_throw(
        db_, "SELECT id, key, state, record FROM sagas WHERE state < 3 ORDER BY id");
    s.begin = prepare_or_throw(db_, "BEGIN IMMEDIATE");
    s.commit = prepare_or_throw(db_, "COMMIT");
    s.rollback = prepare_or_throw(db_, "ROLLBACK");
    static_assert(static_cast<int>(saga_state::completed) == 3,
                  "the unfinished query says state < 3");
    sqlite3_stmt* max = prepare_or_throw(db_, "SELECT coalesce(max(id), 0) FROM sagas");
    if (sqlite3_step(max) == SQLITE_ROW)
      last_id_.store(static_cast<std::uint64_t>(sqlite3_column_int64(max, 0)));
    sqlite3_finalize(max);
  } catch (...) {
    stmts_.reset();
    sqlite3_close(db_);
    throw;
  }
  if (sqlite3_open_v2(opts_.path.c_str(), &checkpoint_db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, count_vfs_name) != SQLITE_OK) {
    std::string m = "sqlite: cannot open a checkpoint connection to " + opts_.path;
    sqlite3_close(checkpoint_db_);
    stmts_.reset();
    sqlite3_close(db_);
    throw std::runtime_error(m);
  }
  sqlite3_busy_timeout(checkpoint_db_, 1000);
  writer_ = std::thread([this] { writer_loop(); });
  checkpointer_ = std::thread([this] { checkpoint_loop(); });
}

void sqlite_store::checkpoint_loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    cv_checkpoint_.wait_for(lock, opts_.checkpoint_every, [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    std::uint64_t before = tl_syncs;
    int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                       nullptr);
    fsyncs_.fetch_add(tl_syncs - before, std::memory_order_relaxed);
    lock.lock();
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
      last_error_ = std::string("checkpoint: ") + sqlite3_errmsg(checkpoint_db_);
  }
}

sqlite_store::~sqlite_store() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_one();
  cv_checkpoint_.notify_one();
  checkpointer_.join();
  writer_.join();
  sqlite3_close(checkpoint_db_);
  stmts_.reset();
  sqlite3_close(db_);
}

std::uint64_t sqlite_store::next_id() { return last_id_.fetch_add(1) + 1; }

void sqlite_store::enqueue(std::shared_ptr<op> o) {
  {
    std::lock_guard lock(mutex_);
    TROUPE_ASSERT(!stop_, "sqlite_store: operation after the store was destroyed");
    queue_.push_back(std::move(o));
  }
  cv_.notify_one();
}

task<void> sqlite_store::submit(std::shared_ptr<op> o) {
  auto init = [this](auto handler, std::shared_ptr<op> o) {
    o->ex = boost::asio::get_associated_executor(handler);
    o->done = [h = std::move(handler)]() mutable { h(); };
    enqueue(std::move(o));
  };
  auto wait = boost::asio::async_initiate<const use_task_t&, void()>(init, use_task, std::move(o));
  co_await wait;
}

void sqlite_store::fail(const char* what) {
  std::lock_guard lock(mutex_);
  last_error_ = std::string(what) + ": " + sqlite3_errmsg(db_);
}

std::string sqlite_store::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

void sqlite_store::run(op& o) {
  statements& s = *stmts_;
  auto done_with = [](sqlite3_stmt* st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  };
  switch (o.kind) {
    case op::create: {
      sqlite3_bind_int64(s.insert, 1, static_cast<sqlite3_int64>(o.row.id));
      if (o.row.key.empty())
        sqlite3_bind_null(s.insert, 2);
      else
        sqlite3_bind_text(s.insert, 2, o.row.key.data(), static_cast<int>(o.row.key.size()),
                          SQLITE_STATIC);
      sqlite3_bind_int(s.insert, 3, static_cast<int>(o.row.state));
      sqlite3_bind_blob(s.insert, 4, o.row.record.data(), static_cast<int>(o.row.record.size()),
                        SQLITE_STATIC);
      int rc = sqlite3_step(s.insert);
      done_with(s.insert);
      if (rc != SQLITE_DONE) {
        fail("insert");
        o.ec = saga_errc::store_failed;
        return;
      }
      if (sqlite3_changes(db_) == 1) {
        ++writes_;
        return;
      }
      // The key is taken: hand back the saga that holds it.
      sqlite3_bind_text(s.by_key, 1, o.row.key.data(), static_cast<int>(o.row.key.size()),
                        SQLITE_STATIC);
      rc = sqlite3_step(s.by_key);
      if (rc == SQLITE_ROW)
        o.existing = read_row(s.by_key);
      else
        o.ec = saga_errc::store_failed;
      done_with(s.by_key);
      return;
    }
    case op::save: {
      sqlite3_bind_int64(s.update, 1, static_cast<sqlite3_int64>(o.row.id));
      sqlite3_bind_int(s.update, 2, static_cast<int>(o.row.state));
      sqlite3_bind_blob(s.update, 3, o.row.record.data(), static_cast<int>(o.row.record.size()),
                        SQLITE_STATIC);
      int rc = sqlite3_step(s.update);
      done_with(s.update);
      if (rc != SQLITE_DONE) {
        fail("update");
        o.ec = saga_errc::store_failed;
      } else if (sqlite3_changes(db_) != 1) {
        o.ec = saga_errc::not_found;
      } else {
        ++writes_;
      }
      return;
    }
    case op::load: {
      sqlite3_bind_int64(s.by_id, 1, static_cast<sqlite3_int64>(o.row.id));
      int rc = sqlite3_step(s.by_id);
      if (rc == SQLITE_ROW)
        o.rows.push_back(read_row(s.by_id));
      else if (rc == SQLITE_DONE)
        o.ec = saga_errc::not_found;
      else
        o.ec = saga_errc::store_failed;
      done_with(s.by_id);
      return;
    }
    case op::list:
    case op::unfinished: {
      sqlite3_stmt* st = o.kind == op::list ? s.list : s.unfinished;
      if (o.kind == op::list) {
        sqlite3_bind_int(st, 1, static_cast<int>(o.row.state));
        sqlite3_bind_int64(st, 2, static_cast<sqlite3_int64>(o.limit));
        sqlite3_bind_int64(st, 3, static_cast<sqlite3_int64>(o.row.id));
      }
      int rc;
      while ((rc = sqlite3_step(st)) == SQLITE_ROW) o.rows.push_back(read_row(st));
      if (rc != SQLITE_DONE) {
        fail("select");
        o.ec = saga_errc::store_failed;
      }
      done_with(st);
      return;
    }
  }
}

void sqlite_store::writer_loop() {
  std::vector<std::shared_ptr<op>> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued was served
      while (!queue_.empty() && batch.size() < opts_.batch_max) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::uint64_t syncs_before = tl_syncs;
    std::uint64_t writes_before = writes_.load(std::memory_order_relaxed);
    bool began = sqlite3_step(stmts_->begin) == SQLITE_DONE;
    sqlite3_reset(stmts_->begin);
    if (began) {
      for (auto& o : batch) run(*o);
      bool committed = sqlite3_step(stmts_->commit) == SQLITE_DONE;
      sqlite3_reset(stmts_->commit);
      if (!committed) {
        fail("commit");
        sqlite3_step(stmts_->rollback);
        sqlite3_reset(stmts_->rollback);
        writes_.store(writes_before, std::memory_order_relaxed);
        for (auto& o : batch) o->ec = saga_errc::store_failed;
      } else {
        commits_.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      fail("begin");
      for (auto& o : batch) o->ec = saga_errc::store_failed;
    }
    fsyncs_.fetch_add(tl_syncs - syncs_before, std::memory_order_relaxed);
    complete(batch);
    batch.clear();
  }
}

// Durable (or failed): resume each issuer on its own shard — one post per
// shard per batch. The posted handler first waits until this thread has left
// post(): once a completion runs, the issuer may finish and its runtime (and
// io_context) may be destroyed, which must not happen while post() is still
// signalling that io_context. The wait is the few instructions between Asio
// releasing its lock and post() returning.
void sqlite_store::complete(std::vector<std::shared_ptr<op>>& batch) {
  struct delivery {
    std::vector<std::shared_ptr<op>> ops;
    std::atomic<bool> posted{false};
  };
  std::size_t first = 0;
  while (first < batch.size()) {
    auto d = std::make_shared<delivery>();
    boost::asio::any_io_executor ex = batch[first]->ex;
    for (std::size_t i = first; i < batch.size(); ++i) {
      if (batch[i] && batch[i]->ex == ex) {
        batch[i]->ex = {};
        d->ops.push_back(std::move(batch[i]));
      }
    }
    boost::asio::post(ex, [d] {
      while (!d->posted.load(std::memory_order_acquire)) std::this_thread::yield();
      for (auto& o : d->ops) {
        auto h = std::move(o->done);
        h();
      }
    });
    ex = {};
    d->posted.store(true, std::memory_order_release);
    while (first < batch.size() && !batch[first]) ++first;
  }
}

task<result<std::optional<stored_saga>>> sqlite_store::create(stored_saga s) {
  auto o = std::make_shared<op>();
  o->kind = op::create;
  o->row = std::move(s);
  auto t = submit(o);
  co_await std::move(t);
  if (o->ec) co_return failure<std::optional<stored_saga>>(o->ec);
  co_return std::move(o->existing);
}

task<boost::system::error_code> sqlite_store::save(std::uint64_t id, saga_state state,
                                                   std::string record) {
  auto o = std::make_shared<op>();
  o->kind = op::save;
  o->row.id = id;
  o->row.state = state;
  o->row.record = std::move(record);
  auto t = submit(o);
  co_await std::move(t);
  co_return o->ec;
}

task<result<stored_saga>> sqlite_store::load(std::uint64_t id) {
  auto o = std::make_shared<op>();
  o->kind = op::load;
  o->row.id = id;
  auto t = submit(o);
  co_await std::move(t);
  if (o->ec) co_return failure<stored_saga>(o->ec);
  co_return std::move(o->rows.front());
}

task<result<std::vector<stored_saga>>> sqlite_store::list(saga_state state, std::size_t limit,
                                                          std::uint64_t after) {
  // Ids are stored as SQLite integers (signed 64-bit): none is above this.
  if (after >= static_cast<std::uint64_t>(std::numeric_limits<sqlite3_int64>::max()))
    co_return std::vector<stored_saga>{};
  auto o = std::make_shared<op>();
  o->kind = op::list;
  o->row.state = state;
  o->row.id = after;
  o->limit = limit;
  auto t = submit(o);
  co_await std::move(t);
  if (o->ec) co_return failure<std::vector<stored_saga>>(o->ec);
  co_return std::move(o->rows);
}

task<result<std::vector<stored_saga>>> sqlite_store::unfinished() {
  auto o = std::make_shared<op>();
  o->kind = op::unfinished;
  auto t = submit(o);
  co_await std::move(t);
  if (o->ec) co_return failure<std::vector<stored_saga>>(o->ec);
  co_return std::move(o->rows);
}

store_stats sqlite_store::stats() const {
  return {writes_.load(std::memory_order_relaxed), commits_.load(std::memory_order_relaxed),
          fsyncs_.load(std::memory_order_relaxed)};
}

}  // namespace troupe::saga
