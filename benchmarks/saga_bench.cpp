// SPDX-License-Identifier: BSL-1.0
// Sagas of three steps whose participants are local actors.
//
// saga_throughput         durable (SQLite, WAL, synchronous=FULL, group commit), sagas/s.
//                         Baseline: raw SQLite in this process — the same number of row
//                         writes per saga as the saga run made (1 insert, the rest updates
//                         of a record of the same size) with the same number of writes per
//                         transaction as the saga run averaged, expressed as sagas/s.
// saga_throughput_memory  the in-memory store, sagas/s. Baseline: the same three asks per
//                         saga to the same participants, without the orchestrator.
// saga_latency_p99        durable, open loop at half the measured durable throughput,
//                         start request to durable final state, ms. Baseline: p99 of one
//                         SQLite commit (a single-row transaction, one WAL fsync).
// saga_fsyncs_per_saga    fsyncs the durable run made per saga (counted at SQLite's VFS).
//                         Baseline: store writes per saga — one fsync per transition.
//
// The database lives in a temporary directory under $TMPDIR (or /tmp): a real disk here.

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <troupe/saga.hpp>
#include <unordered_map>

#include "bench.hpp"

using namespace std::chrono_literals;
using namespace troupe::saga;
using troupe::task;

namespace {

struct fx {
  std::uint64_t n;
};
/// A participant: applies an effect (counts it).
class participant : public troupe::actor {
 public:
  bool handle(fx) {
    ++applied_;
    return true;
  }

 private:
  std::uint64_t applied_ = 0;
};

struct ctx {
  std::string item;
  int qty = 0;
  template <class A>
  void serialize(A& a) {
    a(cereal::make_nvp("item", item), cereal::make_nvp("qty", qty));
  }
};

std::shared_ptr<registry> three_steps(troupe::actor_ref<participant> p) {
  auto def = std::make_shared<definition<ctx>>("order");
  for (const char* name : {"reserve", "charge", "ship"}) {
    auto act = [p](ctx&, step_call) -> task<step_result> {
      auto a = p.ask(fx{1}, 5s);
      auto r = co_await a;
      if (!r) co_return r.error();
      co_return step_result{};
    };
    def->step(name).action(act).compensate(act).timeout(5s);
  }
  auto types = std::make_shared<registry>();
  types->add(def);
  return types;
}

/// Shared by the driver and the orchestrator's on_finished (both on shard 0).
struct run_state {
  std::uint64_t total = 0, finished = 0, failed = 0;
  std::promise<void> done;
  bool record_latency = false;
  std::unordered_map<std::uint64_t, std::int64_t> started_ns;  // by saga id
  std::vector<double> latency_ms;
};

struct next {};
struct kick {
  std::uint64_t window;
};
struct pace {
  double per_second;
};
/// Starts sagas: `window` at once and one more per finished saga (closed loop),
/// or at a fixed rate (open loop).
class driver : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  driver(troupe::actor_ref<orchestrator> o, std::shared_ptr<run_state> st)
      : orch_(std::move(o)), st_(std::move(st)) {}
  bool handle(kick k) {
    auto me = troupe::ref_of(this);
    for (std::uint64_t i = 0; i < k.window; ++i) (void)me.tell(next{});
    return true;
  }
  task<void> handle(pace p) {
    auto me = troupe::ref_of(this);
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t sent = 0;
    while (sent < st_->total) {
      co_await troupe::sleep_for(1ms);
      double secs = troupe::bench::seconds_since(t0);
      auto due =
          std::min<std::uint64_t>(st_->total, static_cast<std::uint64_t>(secs * p.per_second));
      for (; sent < due; ++sent) (void)me.tell(next{});
    }
  }
  task<void> handle(next) {
    if (issued_ >= st_->total) co_return;
    ++issued_;
    std::int64_t t0 = now_ns();
    start_saga s{"order", R"({"item":"book","qty":1})"};
    auto call = orch_.ask(std::move(s), 60s);
    auto r = co_await call;
    if (!r || !*r) {
      ++st_->failed;
      co_return;
    }
    if (st_->record_latency) st_->started_ns.emplace((*r)->id, t0);
  }
  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  troupe::actor_ref<orchestrator> orch_;
  std::shared_ptr<run_state> st_;
  std::uint64_t issued_ = 0;
};

struct run_result {
  double sagas_per_second = 0;
  store_stats stats{};
  double p99_ms = 0;
  double p50_ms = 0;
};

enum class mode { closed, open };

/// Sagas in flight in a closed-loop run: 1024 for the durable store (a deep
/// queue fills each group commit), 64 in memory (more only spreads the same
/// work over more cache: 4096 in flight ran at a third of the rate).
/// SAGA_WINDOW overrides both, for experiments.
std::uint64_t window_size(std::uint64_t dflt) {
  const char* w = std::getenv("SAGA_WINDOW");
  return w ? std::strtoull(w, nullptr, 10) : dflt;
}
constexpr std::uint64_t durable_window = 1024, memory_window = 64;

run_result run_sagas(std::shared_ptr<saga_store> store, std::uint64_t n, mode m,
                     std::uint64_t window, double rate = 0) {
  troupe::runtime_options ro;
  ro.shards = 1;
  troupe::runtime rt{ro};
  auto p = rt.spawn<participant>();
  auto st = std::make_shared<run_state>();
  st->total = n;
  st->record_latency = m == mode::open;
  auto finished_future = st->done.get_future();
  orchestrator_options oo;
  oo.store = store;
  oo.types = three_steps(p);
  oo.max_active = 100'000;
  std::shared_ptr<troupe::actor_ref<driver>> drv = std::make_shared<troupe::actor_ref<driver>>();
  oo.on_finished = [st, drv, m](const saga_record& r) {
    if (st->record_latency) {
      auto it = st->started_ns.find(r.id);
      if (it != st->started_ns.end())
        st->latency_ms.push_back(static_cast<double>(driver::now_ns() - it->second) / 1e6);
    }
    if (r.state != saga_state::completed) ++st->failed;
    if (++st->finished == st->total) {
      st->done.set_value();
    } else if (m == mode::closed) {
      (void)drv->tell(next{});
    }
  };
  auto orch = rt.spawn<orchestrator>(std::move(oo));
  *drv = rt.spawn<driver>(orch, st);
  store_stats before = store->stats();
  auto t0 = std::chrono::steady_clock::now();
  if (m == mode::closed)
    (void)drv->tell(kick{std::min<std::uint64_t>(n, window_size(window))});
  else
    (void)drv->tell(pace{rate});
  finished_future.wait();
  run_result out;
  out.sagas_per_second = static_cast<double>(n) / troupe::bench::seconds_since(t0);
  store_stats after = store->stats();
  out.stats = {after.writes - before.writes, after.commits - before.commits,
               after.fsyncs - before.fsyncs};
  if (st->failed) {
    std::fprintf(stderr, "saga_bench: %llu sagas did not complete\n",
                 static_cast<unsigned long long>(st->failed));
    std::exit(1);
  }
  if (!st->latency_ms.empty()) {
    std::sort(st->latency_ms.begin(), st->latency_ms.end());
    out.p99_ms = st->latency_ms[st->latency_ms.size() * 99 / 100];
    out.p50_ms = st->latency_ms[st->latency_ms.size() / 2];
  }
  return out;
}

// --- baselines ----------------------------------------------------------------

struct plain_run {
  std::uint64_t count;
};
/// The same three asks per saga, no orchestrator: `window` workflows in flight.
class plain : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  plain(troupe::actor_ref<participant> p, std::shared_ptr<run_state> st)
      : p_(std::move(p)), st_(std::move(st)) {}
  bool handle(kick k) {
    auto me = troupe::ref_of(this);
    for (std::uint64_t i = 0; i < k.window; ++i) (void)me.tell(next{});
    return true;
  }
  task<void> handle(next) {
    if (issued_ >= st_->total) co_return;
    ++issued_;
    for (int i = 0; i < 3; ++i) {
      auto a = p_.ask(fx{1}, 5s);
      auto r = co_await a;
      if (!r) ++st_->failed;
    }
    if (++st_->finished == st_->total)
      st_->done.set_value();
    else
      (void)troupe::ref_of(this).tell(next{});
  }

 private:
  troupe::actor_ref<participant> p_;
  std::shared_ptr<run_state> st_;
  std::uint64_t issued_ = 0;
};

double plain_workflows_per_second(std::uint64_t n) {
  troupe::runtime_options ro;
  ro.shards = 1;
  troupe::runtime rt{ro};
  auto p = rt.spawn<participant>();
  auto st = std::make_shared<run_state>();
  st->total = n;
  auto f = st->done.get_future();
  auto pl = rt.spawn<plain>(p, st);
  auto t0 = std::chrono::steady_clock::now();
  (void)pl.tell(kick{std::min<std::uint64_t>(n, window_size(memory_window))});
  f.wait();
  return static_cast<double>(n) / troupe::bench::seconds_since(t0);
}

sqlite3* open_raw(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) std::exit(1);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  sqlite3_exec(db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
  sqlite3_exec(db,
               "CREATE TABLE sagas(id INTEGER PRIMARY KEY, key TEXT UNIQUE, state INTEGER NOT "
               "NULL, record BLOB NOT NULL)",
               nullptr, nullptr, nullptr);
  return db;
}

/// Raw SQLite: per "saga" one insert and `per_saga - 1` updates of a
/// `record_bytes` blob, `per_commit` writes per transaction. Sagas/s.
double raw_sqlite_sagas_per_second(const std::string& path, std::uint64_t sagas,
                                   std::size_t record_bytes, double per_commit,
                                   std::uint64_t per_saga) {
  sqlite3* db = open_raw(path);
  sqlite3_stmt *ins = nullptr, *upd = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO sagas(id, key, state, record) VALUES(?1, NULL, 0, ?2)", -1,
                     &ins, nullptr);
  sqlite3_prepare_v2(db, "UPDATE sagas SET state = ?2, record = ?3 WHERE id = ?1", -1, &upd,
                     nullptr);
  std::string blob(record_bytes, 'x');
  const std::uint64_t writes = sagas * per_saga;
  const auto batch = static_cast<std::uint64_t>(std::max(1.0, per_commit));
  auto t0 = std::chrono::steady_clock::now();
  std::uint64_t done = 0;
  while (done < writes) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (std::uint64_t i = 0; i < batch && done < writes; ++i, ++done) {
      std::uint64_t saga = done / per_saga + 1;
      if (done % per_saga == 0) {
        sqlite3_bind_int64(ins, 1, static_cast<sqlite3_int64>(saga));
        sqlite3_bind_blob(ins, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
        sqlite3_step(ins);
        sqlite3_reset(ins);
      } else {
        sqlite3_bind_int64(upd, 1, static_cast<sqlite3_int64>(saga));
        sqlite3_bind_int(upd, 2, 1);
        sqlite3_bind_blob(upd, 3, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
        sqlite3_step(upd);
        sqlite3_reset(upd);
      }
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  double secs = troupe::bench::seconds_since(t0);
  sqlite3_finalize(ins);
  sqlite3_finalize(upd);
  sqlite3_close(db);
  return static_cast<double>(sagas) / secs;
}

/// p99 of a one-row transaction (one WAL fsync), in ms.
double raw_commit_p99_ms(const std::string& path, int commits) {
  sqlite3* db = open_raw(path);
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO sagas(id, key, state, record) VALUES(?1, NULL, 0, ?2)", -1,
                     &ins, nullptr);
  std::string blob(300, 'x');
  std::vector<double> ms;
  for (int i = 0; i < commits; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    sqlite3_bind_int64(ins, 1, i + 1);
    sqlite3_bind_blob(ins, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
    sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    ms.push_back(troupe::bench::seconds_since(t0) * 1e3);
  }
  sqlite3_finalize(ins);
  sqlite3_close(db);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() * 99 / 100];
}

/// The encoded size of a finished 3-step saga's record (what each write stores).
std::size_t typical_record_bytes() {
  saga_record r;
  r.id = 123456;
  r.type = "order";
  r.state = saga_state::completed;
  r.context = std::string(16, 'c');
  for (const char* n : {"reserve", "charge", "ship"}) {
    step_state s;
    s.name = n;
    s.status = step_status::completed;
    s.attempts = 1;
    s.started_ns = s.finished_ns = 1;
    r.steps.push_back(s);
  }
  for (int i = 0; i < 9; ++i)
    r.history.push_back(saga_event{1, event_kind::step_started, 0, 1, {}});
  return encode_record(r).size();
}

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "troupe-saga-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::exit(1);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string fresh(const std::string& stem) {
    return (path / (stem + std::to_string(counter++) + ".db")).string();
  }
  int counter = 0;
};

}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 3;
  temp_dir dir;

  const std::uint64_t durable_n = a.scale(200'000);
  double durable_rate = 0;
  run_result durable{};
  if (a.wants("saga_throughput") || a.wants("saga_fsyncs_per_saga") ||
      a.wants("saga_latency_p99")) {
    std::vector<run_result> rs;
    for (int i = 0; i < runs; ++i) {
      auto store = std::make_shared<sqlite_store>(sqlite_store_options{dir.fresh("durable")});
      rs.push_back(run_sagas(store, durable_n, mode::closed, durable_window));
    }
    std::sort(rs.begin(), rs.end(),
              [](auto& x, auto& y) { return x.sagas_per_second < y.sagas_per_second; });
    durable = rs[rs.size() / 2];
    durable_rate = durable.sagas_per_second;
  }
  if (a.wants("saga_throughput")) {
    double per_commit = static_cast<double>(durable.stats.writes) /
                        static_cast<double>(std::max<std::uint64_t>(1, durable.stats.commits));
    double raw = troupe::bench::median_of(runs, [&] {
      return raw_sqlite_sagas_per_second(
          dir.fresh("raw"), durable_n, typical_record_bytes(), per_commit,
          static_cast<std::uint64_t>(std::llround(static_cast<double>(durable.stats.writes) /
                                                  static_cast<double>(durable_n))));
    });
    std::string extra = "\"writes_per_saga\":" +
                        std::to_string(static_cast<double>(durable.stats.writes) / durable_n) +
                        ",\"writes_per_commit\":" + std::to_string(per_commit);
    troupe::bench::report("saga_throughput", durable.sagas_per_second, "sagas/s", raw,
                          "raw SQLite, same writes per saga and per commit", ">= 20000", a, extra);
  }
  if (a.wants("saga_fsyncs_per_saga")) {
    double fsyncs = static_cast<double>(durable.stats.fsyncs) / static_cast<double>(durable_n);
    double writes = static_cast<double>(durable.stats.writes) / static_cast<double>(durable_n);
    troupe::bench::report(
        "saga_fsyncs_per_saga", fsyncs, "fsyncs/saga", writes,
        "store writes per saga (one fsync per transition)", "report (< 1)", a,
        "\"commits_per_saga\":" + std::to_string(static_cast<double>(durable.stats.commits) /
                                                 static_cast<double>(durable_n)));
  }
  if (a.wants("saga_latency_p99")) {
    const std::uint64_t n = a.scale(50'000);
    std::vector<run_result> rs;
    for (int i = 0; i < runs; ++i) {
      auto store = std::make_shared<sqlite_store>(sqlite_store_options{dir.fresh("latency")});
      rs.push_back(run_sagas(store, n, mode::open, 0, durable_rate / 2));
    }
    std::sort(rs.begin(), rs.end(), [](auto& x, auto& y) { return x.p99_ms < y.p99_ms; });
    double p99 = rs[rs.size() / 2].p99_ms;
    double p50 = rs[rs.size() / 2].p50_ms;
    double commit = raw_commit_p99_ms(dir.fresh("commit"), a.smoke ? 100 : 1000);
    troupe::bench::report("saga_latency_p99", p99, "ms", commit, "p99 of one SQLite commit (fsync)",
                          "report", a,
                          "\"rate_sagas_per_s\":" + std::to_string(durable_rate / 2) +
                              ",\"p50_ms\":" + std::to_string(p50));
  }
  if (a.wants("saga_throughput_memory")) {
    const std::uint64_t n = a.scale(1'000'000);
    double v = troupe::bench::median_of(runs, [&] {
      return run_sagas(std::make_shared<memory_store>(), n, mode::closed, memory_window)
          .sagas_per_second;
    });
    double raw = troupe::bench::median_of(runs, [&] { return plain_workflows_per_second(n); });
    troupe::bench::report("saga_throughput_memory", v, "sagas/s", raw,
                          "3 plain asks per workflow, no orchestrator", ">= 200000", a);
  }
  return 0;
}
