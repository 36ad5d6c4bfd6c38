// SPDX-License-Identifier: BSL-1.0
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "saga/crash_common.hpp"
#include "saga/saga_support.hpp"

using namespace troupe::saga;
using namespace troupe::saga::test;
using troupe::task;

namespace {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "troupe-saga-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

struct start_many {
  int n;
  std::string type;
};
struct start_one {
  std::string type;
  std::string key;
};
/// Starts many sagas at once (a reentrant actor: every start is in flight together).
class starter : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  explicit starter(troupe::actor_ref<orchestrator> o) : orch_(std::move(o)) {}
  bool handle(start_many m) {
    auto me = troupe::ref_of(this);
    for (int i = 0; i < m.n; ++i)
      (void)me.tell(start_one{m.type, m.type + "-" + std::to_string(i)});
    return true;
  }
  task<void> handle(start_one m) {
    start_saga s{m.type, order_input(), m.key};
    auto call = orch_.ask(std::move(s), 30s);
    auto r = co_await call;
    if (!r || !*r) ++failed_starts;
  }
  int failed_starts = 0;

 private:
  troupe::actor_ref<orchestrator> orch_;
};

}  // namespace

TEST_CASE(
    "a restarted orchestrator resumes a saga and reruns the unfinished step with the same key",
    "[saga][recovery]") {
  fixture f;
  auto reached = std::make_shared<std::promise<void>>();
  auto arrived = reached->get_future();
  auto def = std::make_shared<definition<order_ctx>>("resume");
  def->step("s0").action(action_of(f.lg, f.sc)).compensate(compensation_of(f.lg, f.sc));
  auto inner = action_of(f.lg, f.sc);
  def->step("s1")
      .action([reached, inner, sc = f.sc](order_ctx& c, step_call call) -> task<step_result> {
        if (call.attempt == 1) {
          sc->record_key(call.idempotency_key);
          reached->set_value();
          co_await troupe::sleep_for(std::chrono::hours(1));  // the "crash" cuts it here
        }
        auto t = inner(c, std::move(call));
        co_return co_await std::move(t);
      })
      .timeout(1h);
  def->step("s2").action(action_of(f.lg, f.sc));
  f.types->add(def);
  f.spawn();
  auto s = f.start("resume", order_input());
  arrived.wait();
  f.orch.stop();  // the orchestrator dies with s1 in flight
  while (f.orch.alive()) std::this_thread::yield();

  auto stored = flat(f.rt.ask_sync(f.rt.spawn<orchestrator>(orchestrator_options{f.store, f.types}),
                                   get_saga{s.id}, 5s));
  REQUIRE(stored);
  CHECK(stored->state == saga_state::running);
  CHECK(stored->steps[0].status == step_status::completed);
  CHECK(stored->steps[1].status == step_status::running);

  f.spawn();  // a new orchestrator on the same store
  auto n = flat(f.rt.ask_sync(f.orch, recover{}, 5s));
  REQUIRE(n);
  CHECK(*n == 1);
  saga_record r = f.wait(s.id);
  CHECK(r.state == saga_state::completed);
  CHECK(r.steps[1].attempts == 2);
  CHECK(f.effects() == std::vector<std::string>{"A:s0", "A:s1", "A:s2"});
  // Both runs of s1 got the same idempotency key.
  std::vector<std::string> s1_keys;
  for (auto& k : f.sc->keys())
    if (k.ends_with("/s1")) s1_keys.push_back(k);
  REQUIRE(s1_keys.size() == 2);
  CHECK(s1_keys[0] == s1_keys[1]);
  CHECK(s1_keys[0] == std::to_string(s.id) + "/s1");
  auto recovered = std::find_if(r.history.begin(), r.history.end(),
                                [](auto& e) { return e.kind == event_kind::recovered; });
  CHECK(recovered != r.history.end());
  // A second recover finds nothing new.
  auto again = flat(f.rt.ask_sync(f.orch, recover{}, 5s));
  REQUIRE(again);
  CHECK(*again == 0);
}

TEST_CASE("on SQLite, concurrent sagas share fsyncs through group commit", "[saga][sqlite]") {
  temp_dir dir;
  auto store = std::make_shared<sqlite_store>(sqlite_store_options{dir.file("sagas.db")});
  fixture f(store);
  f.types->add(make_order(f.lg, f.sc, 3));
  constexpr int n = 200;
  auto all_done = std::make_shared<std::promise<void>>();
  auto done = all_done->get_future();
  auto finished = std::make_shared<int>(0);
  orchestrator_options o;
  o.on_finished = [all_done, finished](const saga_record& r) {
    if (r.state == saga_state::completed && ++*finished == n) all_done->set_value();
  };
  f.spawn(o);
  auto st = f.rt.spawn<starter>(f.orch);
  REQUIRE(f.rt.ask_sync(st, start_many{n, "order"}, 5s));
  REQUIRE(done.wait_for(60s) == std::future_status::ready);
  store_stats s = store->stats();
  // Per saga: the create (with step 0's start), 2 more step starts, the final state.
  CHECK(s.writes == 4u * n);
  CHECK(s.commits < s.writes / 4);
  CHECK(s.fsyncs >= s.commits);
  CHECK(s.fsyncs < s.writes / 2);
  CHECK(f.effects().size() == 3u * n);
  auto listed = flat(f.rt.ask_sync(f.orch, list_sagas{saga_state::completed, 1000}, 5s));
  REQUIRE(listed);
  CHECK(listed->size() == n);
  INFO("writes " << s.writes << ", commits " << s.commits << ", fsyncs " << s.fsyncs);
}

// ---------------------------------------------------------------------------
// Crash recovery: the orchestrator runs in a child process over a SQLite file;
// the test SIGKILLs it at random moments and starts it again, many times.

namespace {
struct child {
  pid_t pid = -1;
  int out = -1;
};
child spawn_child(const std::string& dir, int total, std::uint64_t seed) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string t = std::to_string(total), s = std::to_string(seed);
    ::execl(TROUPE_SAGA_CRASH_CHILD, TROUPE_SAGA_CRASH_CHILD, dir.c_str(), t.c_str(), s.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  return {pid, fds[0]};
}
/// Reads the child's stdout until `word` appears on a line, or EOF. True if
/// seen. Adds what a "recovered N" line says to *recovered.
bool read_until(int fd, const std::string& word, long* recovered = nullptr) {
  std::string buf;
  char c;
  while (::read(fd, &c, 1) == 1) {
    if (c == '\n') {
      if (buf == word) return true;
      if (recovered && buf.rfind("recovered ", 0) == 0) *recovered += std::stol(buf.substr(10));
      buf.clear();
    } else {
      buf += c;
    }
  }
  return false;
}
}  // namespace

TEST_CASE("sagas survive SIGKILLs of their orchestrator: all finish, no effect twice, none lost",
          "[saga][recovery][crash][slow]") {
  temp_dir dir;
  constexpr int total = 1000;
  constexpr int kills_wanted = 50;
  std::mt19937_64 rng(troupe::test::seed());
  int kills = 0, runs = 0;
  long recovered = 0;  // unfinished sagas the restarted children resumed
  while (kills < kills_wanted) {
    ++runs;
    REQUIRE(runs < 400);
    child c = spawn_child(dir.path.string(), total, rng());
    bool ready = read_until(c.out, "ready", &recovered);
    // A random moment: between 0 and 60 ms into the work.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 60'000));
    int status = 0;
    if (ready && ::waitpid(c.pid, &status, WNOHANG) == 0) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &status, 0);
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ++kills;
    } else {
      ::waitpid(c.pid, &status, 0);
    }
    ::close(c.out);
  }
  // A last run that may finish.
  child last = spawn_child(dir.path.string(), total, rng());
  bool finished = read_until(last.out, "done", &recovered);
  int status = 0;
  ::waitpid(last.pid, &status, 0);
  ::close(last.out);
  REQUIRE(finished);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  crash::verdict v = crash::check(dir.path.string(), total);
  std::cout << "saga crash recovery: sagas " << total << ", kills " << kills << " over " << runs
            << " runs, " << recovered << " resumptions of unfinished sagas, completed "
            << v.completed << ", compensated " << v.compensated << ", duplicates " << v.duplicates
            << ", lost " << v.lost << ", wrong " << v.wrong << "\n";
  for (auto& p : v.problems) UNSCOPED_INFO(p);
  CHECK(kills >= kills_wanted);
  CHECK(recovered > 0);  // the kills did land in the middle of sagas
  CHECK(v.completed + v.compensated == total);
  CHECK(v.completed > 0);
  CHECK(v.compensated > 0);
  CHECK(v.duplicates == 0);
  CHECK(v.lost == 0);
  CHECK(v.wrong == 0);
}
