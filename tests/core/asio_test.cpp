// SPDX-License-Identifier: BSL-1.0
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;
namespace asio = boost::asio;

namespace {
struct wait_timer {
  std::chrono::milliseconds d;
};
struct echo_once {
  unsigned short port;
};
class io_user : public troupe::actor {
 public:
  // Awaits a steady_timer of the actor's own shard from inside the handler.
  task<long> handle(wait_timer w) {
    asio::steady_timer t{troupe::runtime::this_io(), w.d};
    auto start = std::chrono::steady_clock::now();
    boost::system::error_code ec = co_await t.async_wait(troupe::use_task);
    if (ec) co_return -1;
    co_return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start)
        .count();
  }
  // Connects to a loopback port, reads 5 bytes, writes them back reversed and
  // returns what it read. Each step is an awaited Asio operation.
  task<std::string> handle(echo_once e) {
    asio::ip::tcp::socket s{troupe::runtime::this_io()};
    asio::ip::tcp::endpoint to{asio::ip::make_address("127.0.0.1"), e.port};
    boost::system::error_code ec = co_await s.async_connect(to, troupe::use_task);
    if (ec) co_return "connect failed: " + ec.message();
    std::string buf(5, '\0');
    troupe::result<std::size_t> n =
        co_await asio::async_read(s, asio::buffer(buf), troupe::use_task);
    if (!n) co_return "read failed: " + n.error().message();
    std::string rev(buf.rbegin(), buf.rend());
    troupe::result<std::size_t> w =
        co_await asio::async_write(s, asio::buffer(rev), troupe::use_task);
    if (!w) co_return "write failed: " + w.error().message();
    co_return buf;
  }
};
}  // namespace

TEST_CASE("a handler awaits a steady_timer", "[core][asio][io]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 1)};
  auto a = rt.spawn<io_user>();
  auto r = rt.ask_sync(a, wait_timer{30ms}, 5s);
  REQUIRE(r);
  CHECK(*r >= 29);
}

TEST_CASE("a handler connects, reads and writes a loopback socket", "[core][asio][io]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 2)};
  troupe::spawn_options o;
  o.shard = 1;
  auto a = rt.spawn<io_user>(o);
  // A plain blocking peer on this thread.
  asio::io_context peer_io;
  asio::ip::tcp::acceptor acc{peer_io, {asio::ip::make_address("127.0.0.1"), 0}};
  const auto port = acc.local_endpoint().port();
  auto reply = std::async(std::launch::async, [&] { return rt.ask_sync(a, echo_once{port}, 10s); });
  asio::ip::tcp::socket peer = acc.accept();
  asio::write(peer, asio::buffer(std::string("hello")));
  std::string back(5, '\0');
  asio::read(peer, asio::buffer(back));
  CHECK(back == "olleh");
  auto r = reply.get();
  REQUIRE(r);
  CHECK(*r == "hello");
}

namespace {
struct waiting_q {};
// Reentrant, so it can say how many timer waits it has in flight.
class cancellable : public troupe::actor {
 public:
  static constexpr bool reentrant = true;
  task<int> handle(wait_timer w) {
    asio::steady_timer t{troupe::runtime::this_io(), w.d};
    ++waiting_;
    boost::system::error_code ec = co_await t.async_wait(troupe::use_task);
    co_return ec ? -1 : 0;
  }
  int handle(waiting_q) { return waiting_; }

 private:
  int waiting_ = 0;
};
}  // namespace

TEST_CASE("stopping an actor cancels the Asio operation it awaits", "[core][asio][io]") {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 1)};
  auto a = rt.spawn<cancellable>();
  auto pending = std::async(std::launch::async,
                            [&] { return rt.ask_sync(a, wait_timer{std::chrono::hours(1)}, 60s); });
  // Wait (on the actor's own answer) until the hour-long timer wait is in flight.
  int in_flight = 0;
  for (int i = 0; i < 100000 && in_flight == 0; ++i) {
    in_flight = rt.ask_sync(a, waiting_q{}, 5s).value();
    if (in_flight == 0) std::this_thread::yield();
  }
  REQUIRE(in_flight == 1);
  const auto t0 = std::chrono::steady_clock::now();
  a.stop();
  auto r = pending.get();
  REQUIRE_FALSE(r);
  CHECK(r.error() == troupe::errc::actor_died);  // unwound mid-wait, not timed out
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);
}
