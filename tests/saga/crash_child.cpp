// SPDX-License-Identifier: BSL-1.0
// The crash-recovery test's child: runs an orchestrator over <dir>/sagas.db,
// resumes what a previous (killed) run left, (re)starts sagas k0..k<total-1>
// by idempotency key, prints "ready" once it is working and "done" when every
// saga has finished. The parent kills it with SIGKILL at random moments.
//
//   troupe_saga_crash_child DIR TOTAL SEED

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <random>
#include <set>
#include <string>
#include <troupe/saga.hpp>

#include "saga/crash_common.hpp"

using namespace std::chrono_literals;
using namespace troupe::saga;
using troupe::task;

namespace {

struct effect {
  std::string key;
  char kind;  // 'A' action, 'C' compensation
};

/// The participant: applies each (key, kind) once, recording it before it acks.
class participant : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  participant(int fd, std::set<std::string> applied, std::uint64_t seed)
      : fd_(fd), applied_(std::move(applied)), rng_(seed) {}
  task<bool> handle(effect e) {
    co_await troupe::sleep_for(std::chrono::microseconds(rng_() % 3000));
    std::string line = e.key + " " + e.kind;
    if (applied_.contains(line)) co_return true;  // deduplicated by idempotency key
    line += '\n';
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      co_return false;
    line.pop_back();
    applied_.insert(std::move(line));
    co_return true;
  }

 private:
  int fd_;
  std::set<std::string> applied_;
  std::mt19937_64 rng_;
};

struct ctx {
  std::string item;
  int qty = 0;
  template <class A>
  void serialize(A& a) {
    a(cereal::make_nvp("item", item), cereal::make_nvp("qty", qty));
  }
};

struct start_all {
  int total;
};
struct start_one {
  int n;
};
/// Starts every saga at once and hands their ids over when all are stored.
class starter : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  starter(troupe::actor_ref<orchestrator> o,
          std::shared_ptr<std::promise<std::vector<std::uint64_t>>> p)
      : orch_(std::move(o)), done_(std::move(p)) {}
  bool handle(start_all m) {
    total_ = m.total;
    auto me = troupe::ref_of(this);
    for (int n = 0; n < m.total; ++n) (void)me.tell(start_one{n});
    return true;
  }
  task<void> handle(start_one m) {
    start_saga s{"crash",
                 R"({"item":"k)" + std::to_string(m.n) + R"(","qty":)" + std::to_string(m.n) + "}",
                 "k" + std::to_string(m.n)};
    auto call = orch_.ask(std::move(s), 60s);
    auto r = co_await call;
    if (!r || !*r) {
      std::fprintf(stderr, "crash child: start k%d failed\n", m.n);
      std::_Exit(3);
    }
    ids_.push_back((*r)->id);
    if (static_cast<int>(ids_.size()) == total_) done_->set_value(ids_);
  }

 private:
  troupe::actor_ref<orchestrator> orch_;
  std::shared_ptr<std::promise<std::vector<std::uint64_t>>> done_;
  std::vector<std::uint64_t> ids_;
  int total_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DIR TOTAL SEED\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int total = std::stoi(argv[2]);
  std::uint64_t seed = std::stoull(argv[3]);

  std::set<std::string> applied;
  {
    std::ifstream in(dir + "/effects.log");
    std::string line;
    while (std::getline(in, line)) applied.insert(line);
  }
  int fd = ::open((dir + "/effects.log").c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) {
    std::perror("effects.log");
    return 2;
  }
  {
    auto store = std::make_shared<sqlite_store>(sqlite_store_options{dir + "/sagas.db"});
    troupe::runtime_options ro;
    ro.shards = 1;
    troupe::runtime rt{ro};
    auto part = rt.spawn<participant>(fd, std::move(applied), seed);

    auto def = std::make_shared<definition<ctx>>("crash");
    for (int j = 0; j < crash::steps; ++j) {
      retry_policy quick;
      quick.initial = 5ms;
      quick.max_interval = 20ms;
      def->step("s" + std::to_string(j))
          .action([part, j](ctx& c, step_call call) -> task<step_result> {
            if (crash::fail_at(c.qty) == j) co_return make_error_code(saga_errc::rejected);
            effect e{call.idempotency_key, 'A'};
            auto ask = part.ask(std::move(e), 10s);
            auto r = co_await ask;
            if (!r || !*r) co_return make_error_code(boost::system::errc::io_error);
            co_return step_result{};
          })
          .compensate([part](ctx&, step_call call) -> task<step_result> {
            effect e{call.idempotency_key, 'C'};
            auto ask = part.ask(std::move(e), 10s);
            auto r = co_await ask;
            if (!r || !*r) co_return make_error_code(boost::system::errc::io_error);
            co_return step_result{};
          })
          .retry(quick)
          .compensation_retry(quick)
          .timeout(20s);
    }
    auto types = std::make_shared<registry>();
    types->add(def);
    orchestrator_options oo;
    oo.store = store;
    oo.types = types;
    oo.max_active = 64;
    auto orch = rt.spawn<orchestrator>(std::move(oo));
    auto resumed = rt.ask_sync(orch, recover{}, 60s);
    if (!resumed || !*resumed) {
      std::fprintf(stderr, "crash child: recover failed\n");
      return 3;
    }
    auto started = std::make_shared<std::promise<std::vector<std::uint64_t>>>();
    auto ids_future = started->get_future();
    auto st = rt.spawn<starter>(orch, started);
    (void)st.tell(start_all{total});
    std::printf("recovered %zu\nready\n", **resumed);
    std::fflush(stdout);
    std::vector<std::uint64_t> ids = ids_future.get();
    for (std::uint64_t id : ids) {
      auto r = rt.ask_sync(orch, wait_saga{id, 60s}, 65s);
      if (!r || !*r || unfinished((*r)->state)) {
        std::fprintf(stderr, "crash child: saga %llu did not finish\n",
                     static_cast<unsigned long long>(id));
        return 3;
      }
    }
    std::printf("done\n");
    std::fflush(stdout);
  }
  ::close(fd);
  return 0;
}
