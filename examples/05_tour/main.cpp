// SPDX-License-Identifier: BSL-1.0
// 05_tour: a narrated run of a small troupe program.
//
// A small bank on a runtime with two shards tells its own story on stdout:
// actors telling each other things, asking each other (also from one shard to
// the other), a handler that throws, a supervisor restarting the actor, a
// monitor receiving the down message when the restarts run out, and an
// orderly stop of the runtime with a handler still suspended. Every line is
// prefixed with who speaks; the runtime's own log lines are marked "runtime log".
//
// The story is deterministic: main only moves on once what it waits for has
// happened (an ask_sync reply, or a future a handler fulfils), never after a
// sleep, so the lines come out in the same order on every run.

#include <chrono>
#include <cstdint>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <troupe/core.hpp>
#include <utility>

using namespace std::chrono_literals;
using troupe::task;

namespace {

// --- Narration ----------------------------------------------------------------

// Handlers print from shard threads, so lines are assembled first and written
// under a lock (and flushed, so a pipe shows the story as it happens).
std::mutex print_mutex;

template <class... Parts>
void say(std::string_view who, const Parts&... parts) {
  std::ostringstream line;
  line << '[' << std::left << std::setw(8) << who << "] ";
  (line << ... << parts);
  std::lock_guard lock(print_mutex);
  std::cout << line.str() << std::endl;
}

void chapter(std::string_view title) {
  std::lock_guard lock(print_mutex);
  std::cout << "\n--- " << title << " ---" << std::endl;
}

// An actor's id carries its home shard in the top 16 bits.
unsigned shard_of(const troupe::actor_addr& a) { return static_cast<unsigned>(a.id() >> 48); }

// --- The ledger: the bank's balances, on shard 1 --------------------------------

struct deposit {
  std::string account;
  std::int64_t cents;
};
struct balance_of {
  std::string account;
};

class ledger : public troupe::actor {
 public:
  static constexpr const char* type_name = "ledger";

  // The ledger keeps quiet about deposits: it runs on the other shard's thread,
  // and its lines would race with the teller's. It speaks when asked.
  void handle(deposit d) {
    cents_[d.account] += d.cents;
    ++deposits_[d.account];
  }
  std::int64_t handle(balance_of q) {
    const std::int64_t b = cents_[q.account];
    say("ledger", "(shard ", shard_of(self()), ") ", q.account, " has ", b, " after ",
        deposits_[q.account], " deposits");
    return b;
  }

 private:
  std::map<std::string, std::int64_t> cents_;
  std::map<std::string, int> deposits_;
};

// --- The teller: serves main, on shard 0; talks to the ledger -------------------

struct balance_query {
  std::string account;
};
struct night_shift {};
struct on_duty {};

class teller : public troupe::actor {
 public:
  static constexpr const char* type_name = "teller";
  // Reentrant: while one handler is suspended (the night shift below), the
  // teller still takes other messages at that suspension point.
  static constexpr bool reentrant = true;

  explicit teller(troupe::actor_ref<ledger> books) : books_(std::move(books)) {}

  // Deposits are passed on with tell: no reply, no waiting. The tell crosses
  // from shard 0 to shard 1; from one sender to one receiver, order is kept.
  void handle(deposit d) {
    say("teller", "(shard ", shard_of(self()), ") passing ", d.account, " +", d.cents,
        " on to the ledger");
    (void)books_.tell(std::move(d));
  }

  // An ask across shards from inside a handler. The teller suspends here, the
  // ledger answers on shard 1, and the teller resumes on its own shard 0.
  task<std::int64_t> handle(balance_query q) {
    say("teller", "(shard ", shard_of(self()), ") asking the ledger on shard ",
        shard_of(books_.addr()), " about ", q.account);
    balance_of question{q.account};  // a local, not a temporary in co_await (g++ 12)
    troupe::result<std::int64_t> b = co_await books_.ask(std::move(question), 500ms);
    if (!b) {
      say("teller", "the ledger did not answer: ", b.error().message());
      co_return -1;
    }
    say("teller", "(shard ", shard_of(self()), ") back home: the ledger says ", *b);
    co_return *b;
  }

  // A handler that would sleep all night. When the runtime stops, its await is
  // cut short and the handler unwinds; the guard's destructor says so.
  task<void> handle(night_shift) {
    struct guard {
      bool finished = false;
      ~guard() {
        if (!finished) say("teller", "night shift cut short: the handler unwound at its co_await");
      }
    } g;
    say("teller", "night shift begins (sleeping for 8 hours)");
    co_await troupe::sleep_for(8h);
    g.finished = true;
    say("teller", "night shift done");
  }
  void handle(on_duty) {}

 private:
  troupe::actor_ref<ledger> books_;
};

// --- The auditor: checks entries, throws on a bad one, on shard 0 ---------------

struct entry {
  int id;
  std::int64_t cents;
};
struct checked {};

class auditor : public troupe::actor {
 public:
  static constexpr const char* type_name = "auditor";

  auditor() { say("auditor", "on duty (a fresh instance)"); }

  void handle(entry e) {
    if (e.cents < 0)
      throw std::runtime_error("entry " + std::to_string(e.id) + " has a negative amount");
    ++checked_;
    say("auditor", "entry ", e.id, " ok");
  }
  int handle(checked) { return checked_; }

 private:
  int checked_ = 0;
};

// --- The watchdog: monitors the auditor, on shard 1 -----------------------------

struct watch {
  troupe::actor_addr who;
};

class watchdog : public troupe::actor {
 public:
  static constexpr const char* type_name = "watchdog";

  // main waits on the matching future for the down message: an event, not a sleep.
  explicit watchdog(std::shared_ptr<std::promise<troupe::exit_reason>> seen)
      : seen_(std::move(seen)) {}

  void handle(watch w) {
    monitor(w.who);
    say("watchdog", "(shard ", shard_of(self()), ") now monitoring ", w.who);
  }
  void handle(troupe::down_msg d) {
    say("watchdog", "down_msg: ", d.who, " stopped, reason ", troupe::to_string(d.reason), " (\"",
        d.what, "\")");
    if (seen_) std::exchange(seen_, nullptr)->set_value(d.reason);
  }

 private:
  std::shared_ptr<std::promise<troupe::exit_reason>> seen_;
};

// Ends the demo with a clear line when something did not go as narrated.
int unexpected(std::string_view what) {
  say("main", "UNEXPECTED: ", what);
  return 1;
}

int run() {
  say("main", "troupe demo: a small bank, narrated");

  // The runtime logs failures and restarts through this function, on shard
  // threads. Print those lines too, marked so they stand apart from the story.
  troupe::runtime_options opts{.shards = 2};
  opts.log = [](const troupe::log_record& r) {
    std::lock_guard lock(print_mutex);
    std::cout << "           runtime log (" << troupe::to_string(r.level) << ", " << r.component
              << "): " << r.message << std::endl;
  };
  troupe::runtime rt{std::move(opts)};
  say("main", "runtime started with ", rt.shard_count(), " shards (one thread each)");

  auto books = rt.spawn<ledger>(troupe::spawn_options{.shard = 1});
  auto desk = rt.spawn<teller>(books);  // from main: shard 0
  say("main", "spawned the ledger on shard ", shard_of(books), " and the teller on shard ",
      shard_of(desk));

  chapter("1. tell, then ask across shards");
  // main says everything first: once the messages are out, the shards talk.
  say("main", "telling the teller three deposits, then asking it for alice's balance");
  (void)desk.tell(deposit{"alice", 100});
  (void)desk.tell(deposit{"bob", 50});
  (void)desk.tell(deposit{"alice", 25});
  // Queued behind the deposits (same sender), so the answer includes them.
  troupe::result<std::int64_t> alice = rt.ask_sync(desk, balance_query{"alice"}, 2s);
  if (!alice || *alice != 125) return unexpected("alice should have 125");
  say("main", "alice has ", *alice, " cents");

  chapter("2. a handler throws; the supervisor restarts the actor");
  say("main",
      "spawning an auditor (restarted on failure, at most 2 times in 10 s), and a "
      "watchdog on shard 1 to monitor it");
  // Restart on failure, at most 2 restarts within 10 s.
  auto audit = rt.spawn<auditor>(troupe::spawn_options{
      .supervise = {.directive = troupe::on_failure::restart, .max_restarts = 2, .within = 10s}});
  auto seen = std::make_shared<std::promise<troupe::exit_reason>>();
  std::future<troupe::exit_reason> down = seen->get_future();
  auto dog = rt.spawn<watchdog>(troupe::spawn_options{.shard = 1}, seen);
  if (!rt.ask_sync(dog, watch{audit}, 2s)) return unexpected("the watchdog did not answer");

  say("main", "sending the auditor entries 1, 2, 3 (bad), 4");
  (void)audit.tell(entry{1, 100});
  (void)audit.tell(entry{2, 50});
  (void)audit.tell(entry{3, -30});
  (void)audit.tell(entry{4, 25});
  troupe::result<int> n = rt.ask_sync(audit, checked{}, 2s);
  if (!n || *n != 1) return unexpected("the restarted auditor should have checked one entry");
  say("main", "same ref, still alive: ", std::boolalpha, audit.alive(),
      "; the new instance kept the mailbox and has checked ", *n, " entry");

  chapter("3. too many failures: restart limit, and a monitor sees it");
  say("main", "sending two more bad entries");
  (void)audit.tell(entry{5, -1});
  (void)audit.tell(entry{6, -2});
  if (down.wait_for(5s) != std::future_status::ready) return unexpected("no down message");
  if (down.get() != troupe::exit_reason::restart_limit) return unexpected("wrong exit reason");
  troupe::result<int> late = rt.ask_sync(audit, checked{}, 2s);
  if (late || late.error() != troupe::errc::actor_dead) return unexpected("auditor still answers");
  say("main", "asking the auditor now: ", late.error().message());

  chapter("4. an orderly stop");
  say("main", "the teller starts a night shift: a handler that sleeps for 8 hours");
  (void)desk.tell(night_shift{});
  // The teller is reentrant, so this ask is served while the night shift sleeps
  // (and, sent after it, tells us the night shift has begun).
  if (!rt.ask_sync(desk, on_duty{}, 2s)) return unexpected("the teller did not answer");
  say("main", "stopping the runtime: every actor stops, suspended handlers unwind");
  rt.stop();
  say("main", "runtime stopped; threads joined");

  const troupe::runtime_stats s = rt.stats();
  say("main", "summary: ", s.messages, " messages handled, ", s.dead_letters, " dead letters, ",
      s.ask_timeouts, " ask timeouts, ", s.live_actors, " live actors left");
  return s.live_actors == 0 ? 0 : unexpected("actors left after stop");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    const std::string_view arg = argv[1];
    std::cerr << "usage: example_05_tour\n"
                 "  Prints a narrated run of a small troupe program; takes no arguments.\n";
    return arg == "-h" || arg == "--help" ? 0 : 2;
  }
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "example_05_tour: " << e.what() << '\n';
    return 1;
  }
}
