// SPDX-License-Identifier: BSL-1.0
// 03_supervision: what happens when a handler throws.
//
// In troupe an exception thrown by a handler never reaches the sender. The
// runtime catches it and treats it as a failure of the actor, and the actor's
// supervision settings decide what comes next: stop it (the default), restart
// it from a fresh instance, or escalate to its parent. Here a counter is
// restarted twice, then fails once more than its restart intensity allows and
// is stopped for good, while a watcher that monitors it receives a down_msg.

#include <chrono>
#include <future>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <troupe/core.hpp>
#include <utility>

using namespace std::chrono_literals;

// --- A counter that can be made to fail --------------------------------------

struct add {
  int n;
};
struct get {};
struct explode {};

class counter : public troupe::actor {
 public:
  // A type_name shows up in the runtime's log lines and when an address is
  // printed ("counter#2"); without it troupe uses the demangled class name.
  static constexpr const char* type_name = "counter";

  explicit counter(int start) : n_(start) {
    std::cout << "  counter: constructed, starting at " << start << '\n';
  }
  void handle(add a) { n_ += a.n; }
  int handle(get) { return n_; }
  // A handler that throws. The exception becomes a failure of this actor.
  void handle(explode) { throw std::runtime_error("counter exploded"); }

 private:
  int n_;
};

// --- A watcher that monitors it ------------------------------------------------

struct watch {
  troupe::actor_addr who;
};

class watcher : public troupe::actor {
 public:
  // The watcher hands the first down_msg it sees to main through a promise:
  // main blocks on the matching future, an event rather than a sleep.
  explicit watcher(std::shared_ptr<std::promise<troupe::exit_reason>> seen)
      : seen_(std::move(seen)) {}

  // monitor(addr) asks the runtime for a down_msg when that actor stops. Only
  // an actor with a handle(troupe::down_msg) may monitor.
  void handle(watch w) { monitor(w.who); }

  void handle(troupe::down_msg d) {
    std::cout << "  watcher: down_msg: " << d.who << " stopped, reason "
              << troupe::to_string(d.reason) << " (\"" << d.what << "\")\n";
    if (!told_) {
      told_ = true;
      seen_->set_value(d.reason);
    }
  }

 private:
  std::shared_ptr<std::promise<troupe::exit_reason>> seen_;
  bool told_ = false;
};

// Asks the counter for its value from main; -1 if the ask fails.
int value_of(troupe::runtime& rt, const troupe::actor_ref<counter>& c) {
  troupe::result<int> v = rt.ask_sync(c, get{}, 1s);
  if (!v) {
    std::cout << "main: get failed: " << v.error().message() << '\n';
    return -1;
  }
  return *v;
}

int main() {
  // The runtime reports failures and restarts through runtime_options::log
  // (stderr by default). Prefix its lines so they stand out. The function is
  // called on shard threads.
  troupe::runtime_options opts{.shards = 1};
  opts.log = [](const troupe::log_record& r) {
    std::cout << "  [runtime " << troupe::to_string(r.level) << "] " << r.message << '\n';
  };
  troupe::runtime rt{std::move(opts)};

  // Step 1: supervision is chosen per actor at spawn time. on_failure::restart
  // replaces a failed actor by a new instance built from the same constructor
  // arguments (copied, so they must be copyable); the mailbox and every ref
  // are kept. The restart intensity bounds it: at most max_restarts restarts
  // within `within`. One more failure stops the actor with
  // exit_reason::restart_limit.
  troupe::spawn_options supervised{
      .supervise = {.directive = troupe::on_failure::restart, .max_restarts = 2, .within = 10s}};
  troupe::actor_ref<counter> c = rt.spawn<counter>(supervised, 100);
  std::cout << "main: spawned " << c.addr() << ", restarted on failure at most 2 times in 10 s\n";

  // Step 2: a watcher monitors the counter. ask_sync returns once the watch
  // handler has run, that is once monitor() has been called.
  auto seen = std::make_shared<std::promise<troupe::exit_reason>>();
  std::future<troupe::exit_reason> down = seen->get_future();
  auto w = rt.spawn<watcher>(seen);
  if (!rt.ask_sync(w, watch{c}, 1s)) return 1;
  std::cout << "main: " << w.addr() << " monitors " << c.addr() << '\n';

  (void)c.tell(add{5});
  std::cout << "main: counter is at " << value_of(rt, c) << '\n';

  // Step 3: a failure. An asker of the failing handler gets
  // errc::handler_failed, never the exception itself. The supervisor logs the
  // failure and restarts the counter, which starts again at 100.
  troupe::result<void> r = rt.ask_sync(c, explode{}, 1s);
  const int after = value_of(rt, c);  // queued behind the restart
  std::cout << "main: explode -> " << (r ? "ok?!" : r.error().message()) << '\n';
  if (r || r.error() != troupe::errc::handler_failed) return 1;

  // Step 4: the same ref still works: it names the actor, not the instance.
  std::cout << "main: after the restart " << c.addr() << " is alive: " << std::boolalpha
            << c.alive() << ", counter is at " << after << '\n';
  if (after != 100) return 1;

  // Step 5: two more failures. The second restart is the last one allowed;
  // the third failure within 10 s exceeds the intensity and stops the counter.
  // (main prints before telling: from then on the counter's shard prints too.)
  std::cout << "main: telling the counter to explode twice more\n";
  (void)c.tell(explode{});
  (void)c.tell(explode{});

  // Step 6: the watcher's down_msg says why the counter stopped.
  if (down.wait_for(5s) != std::future_status::ready) {
    std::cerr << "main: no down_msg within 5 s\n";
    return 1;
  }
  const troupe::exit_reason why = down.get();
  std::cout << "main: the watcher saw the counter stop: " << troupe::to_string(why) << '\n';
  if (why != troupe::exit_reason::restart_limit) return 1;

  // A stopped actor stays stopped: asks to it fail with errc::actor_dead.
  troupe::result<int> v = rt.ask_sync(c, get{}, 1s);
  std::cout << "main: asking it now: " << (v ? "a value?!" : v.error().message()) << '\n';
  if (v || v.error() != troupe::errc::actor_dead) return 1;

  rt.stop();
  return 0;
}
