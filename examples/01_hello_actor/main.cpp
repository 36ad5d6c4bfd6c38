// SPDX-License-Identifier: BSL-1.0
// 01_hello_actor: the smallest troupe program.
//
// It starts a runtime, spawns one actor, tells it a few messages and then asks
// it, from main, how many it has seen. Read it top to bottom; every step is
// explained where it happens. 02_ask_reply shows asks between actors, and
// 03_supervision what happens when a handler throws.

// One include brings in the whole core: runtime, actor, actor_ref, task, timers.
#include <chrono>
#include <iostream>
#include <string>
#include <troupe/core.hpp>
#include <utility>

using namespace std::chrono_literals;

// Step 1: messages are plain structs. They are moved into the receiving actor's
// mailbox, so they may own anything movable (here, a std::string). A message
// with no fields is fine too: its type alone says what is asked for.
struct greet {
  std::string name;
};
struct how_many {};
struct last_greeting {};

// Step 2: an actor is a class derived from troupe::actor with one handle()
// overload per message type it accepts. The runtime constructs it, owns it and
// calls its handlers one at a time, so its members need no locks.
class greeter : public troupe::actor {
 public:
  // Constructor arguments are passed through runtime::spawn.
  explicit greeter(std::string greeting) : greeting_(std::move(greeting)) {}

  // A plain function handler. It returns void, so it is meant to be told: the
  // sender does not wait for anything.
  void handle(greet g) {
    ++count_;
    last_ = greeting_ + ", " + g.name + "!";
    std::cout << "  greeter: " << last_ << '\n';
  }

  // A handler that returns a value can be asked: the value is the reply.
  int handle(how_many) { return count_; }

  // A handler may also be a coroutine returning troupe::task<R>; R is the
  // reply. This one does not need to wait for anything, so it only co_returns;
  // 02_ask_reply shows handlers that co_await.
  troupe::task<std::string> handle(last_greeting) { co_return last_; }

 private:
  std::string greeting_;
  std::string last_;
  int count_ = 0;
};

int main() {
  // Step 3: a runtime owns the threads ("shards") that run actors. One shard is
  // plenty here; the default is one per hardware thread.
  troupe::runtime rt{troupe::runtime_options{.shards = 1}};
  std::cout << "main: runtime started with " << rt.shard_count() << " shard\n";

  // Step 4: spawn returns a typed reference, actor_ref<greeter>. It is cheap to
  // copy and can be used from any thread; it never dangles (once the actor has
  // stopped, sends to it fail with troupe::errc::actor_dead).
  troupe::actor_ref<greeter> g = rt.spawn<greeter>("Hello");
  std::cout << "main: spawned " << g.addr() << '\n';

  // Step 5: tell sends a message and returns at once. The returned error_code
  // is empty when the message was accepted for delivery. Messages from one
  // sender to one actor are handled in the order they were sent.
  for (const char* name : {"Ada", "Grace", "Barbara"}) {
    if (boost::system::error_code ec = g.tell(greet{name})) {
      std::cerr << "main: tell failed: " << ec.message() << '\n';
      return 1;
    }
  }

  // Step 6: ask_sync sends a message from a thread outside the runtime and
  // blocks until the handler's reply arrives, or the timeout passes. It
  // returns troupe::result<R>: a value, or an error_code saying why not.
  // Because the ask is queued behind the three greetings, the reply also tells
  // us they have all been handled: no sleep is needed to wait for them.
  troupe::result<int> n = rt.ask_sync(g, how_many{}, 1s);
  if (!n) {
    std::cerr << "main: ask failed: " << n.error().message() << '\n';
    return 1;
  }
  std::cout << "main: the greeter has greeted " << *n << " people\n";

  // Asking a coroutine handler from main looks exactly the same.
  troupe::result<std::string> last = rt.ask_sync(g, last_greeting{}, 1s);
  if (!last) {
    std::cerr << "main: ask failed: " << last.error().message() << '\n';
    return 1;
  }
  std::cout << "main: the last greeting was \"" << *last << "\"\n";

  // Step 7: stop the runtime. Every actor is stopped and the shard threads are
  // joined. The destructor would do the same; calling it says where it happens.
  rt.stop();
  std::cout << "main: runtime stopped\n";
  return 0;
}
