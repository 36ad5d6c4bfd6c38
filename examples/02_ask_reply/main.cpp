// SPDX-License-Identifier: BSL-1.0
// 02_ask_reply: actors that ask each other, and what an ask can complete with.
//
// A cashier prices an order by asking a pricer, then takes a moment at the
// till. Both waits are co_awaits inside the cashier's handler: while it waits,
// its shard runs other actors. Three orders show three outcomes of an ask:
// a reply, errc::ask_timeout (the pricer is too slow) and errc::actor_dead
// (the pricer has stopped).

#include <chrono>
#include <iostream>
#include <string>
#include <troupe/core.hpp>
#include <utility>

using namespace std::chrono_literals;
using troupe::task;

// --- The pricer -------------------------------------------------------------

struct price_of {
  std::string item;
};
struct close_shop {};

// Knows the price of everything, but has to look some things up.
class pricer : public troupe::actor {
 public:
  // A coroutine handler: it returns troupe::task<R> and may co_await.
  // troupe::sleep_for suspends the handler on the shard's timer wheel; it does
  // not block the thread. An actor handles one message at a time, so while
  // this handler sleeps, the pricer's later messages wait in its mailbox.
  task<int> handle(price_of p) {
    if (p.item == "truffle") {
      co_await troupe::sleep_for(300ms);  // a rare item: the supplier is slow
      co_return 4200;
    }
    co_await troupe::sleep_for(5ms);
    co_return 50;  // everything else costs 50 cents
  }

  // stop() stops this actor once the running handler has returned.
  void handle(close_shop) {
    std::cout << "  pricer: closing the shop\n";
    stop();
  }
};

// --- The cashier ------------------------------------------------------------

// An order names the pricer to ask: refs are ordinary values and travel in
// messages.
struct order {
  std::string item;
  int quantity;
  troupe::actor_ref<pricer> prices;
};

// What the cashier replies. A failed ask is an expected outcome, not a bug, so
// it travels back as a value (an error_code) rather than as an exception.
struct bill {
  int total_cents = 0;
  boost::system::error_code error;
};

class cashier : public troupe::actor {
 public:
  task<bill> handle(order o) {
    std::cout << "  cashier: " << o.quantity << " x " << o.item << "? asking the pricer\n";

    // ref.ask(message, timeout) returns an awaitable; co_await it inside a
    // handler. It completes with troupe::result<R>, R being the reply type of
    // the pricer's handler (int here): the price, or an error_code.
    //
    // Bind the message to a local and move it in. g++ 12 miscompiles a
    // temporary with a non-trivial destructor (price_of holds a std::string)
    // that lives across the suspension inside a co_await expression. Keep one
    // co_await per statement for the same reason.
    price_of question{o.item};
    troupe::result<int> price = co_await o.prices.ask(std::move(question), 100ms);
    if (!price) {
      std::cout << "  cashier: no price for " << o.item << ": " << price.error().message() << '\n';
      co_return bill{0, price.error()};
    }

    // The till takes a moment. The handler resumes on this actor's shard.
    co_await troupe::sleep_for(10ms);
    const int total = *price * o.quantity;
    std::cout << "  cashier: " << o.quantity << " x " << o.item << " = " << total << " cents\n";
    co_return bill{total, {}};
  }
};

// Sends one order from main and prints the outcome. Returns what the
// cashier's ask to the pricer completed with: an empty code for a sale.
boost::system::error_code ring_up(troupe::runtime& rt, const troupe::actor_ref<cashier>& till,
                                  order o) {
  troupe::result<bill> b = rt.ask_sync(till, std::move(o), 2s);
  if (!b) {  // the cashier itself did not answer
    std::cout << "main: the cashier did not answer: " << b.error().message() << '\n';
    return b.error();
  }
  if (b->error) {
    std::cout << "main: no sale (" << b->error.message() << ")\n";
  } else {
    std::cout << "main: sold for " << b->total_cents << " cents\n";
  }
  return b->error;
}

int main() {
  // One shard: both actors share one thread, and their handlers interleave at
  // their co_awaits.
  troupe::runtime rt{troupe::runtime_options{.shards = 1}};
  auto prices = rt.spawn<pricer>();
  auto till = rt.spawn<cashier>();

  // 1. A reply: the cashier asks, the pricer answers within the deadline.
  std::cout << "main: order 1, three apples\n";
  if (ring_up(rt, till, order{"apple", 3, prices})) return 1;

  // 2. A timeout: the pricer needs 300 ms for a truffle, the cashier waits
  // 100 ms. Its ask completes with errc::ask_timeout. The pricer is not told:
  // it finishes the lookup anyway, and its late reply is dropped.
  std::cout << "main: order 2, one truffle\n";
  if (ring_up(rt, till, order{"truffle", 1, prices}) != troupe::errc::ask_timeout) return 1;

  // 3. A dead actor. This ask_sync waits behind the truffle lookup, then the
  // pricer stops itself. An ask to a stopped actor fails at once with
  // errc::actor_dead, without waiting for its deadline.
  std::cout << "main: closing the pricer\n";
  if (!rt.ask_sync(prices, close_shop{}, 2s)) return 1;
  std::cout << "main: order 3, one pear\n";
  if (ring_up(rt, till, order{"pear", 1, prices}) != troupe::errc::actor_dead) return 1;

  // The same holds for ask_sync from main.
  troupe::result<int> direct = rt.ask_sync(prices, price_of{"pear"}, 1s);
  if (direct) return 1;
  std::cout << "main: asking the pricer directly: " << direct.error().message() << '\n';

  rt.stop();
  return 0;
}
