// SPDX-License-Identifier: BSL-1.0
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <csignal>
#include <future>
#include <mutex>
#include <thread>
#include <troupe/net/node.hpp>

#include "net/bank_actor.hpp"
#include "net/net_support.hpp"
#include "net/raw_peer.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;
namespace net = troupe::net;

// A reply whose encoding may throw.
struct fragile {
  bool fail = false;
  template <class A>
  void save(A& a) const {
    if (fail) throw std::runtime_error("this reply cannot be encoded");
    a(fail);
  }
  template <class A>
  void load(A& a) {
    a(fail);
  }
};
struct make_fragile {
  bool fail = false;
  template <class A>
  void serialize(A& a) {
    a(fail);
  }
};
TROUPE_REMOTE_MESSAGE(fragile, 9101);
TROUPE_REMOTE_MESSAGE(make_fragile, 9102);

namespace {
using troupe_test::bank;

struct fragile_maker : troupe::actor {
  using remote_messages = net::message_list<make_fragile>;
  fragile handle(make_fragile m) { return fragile{m.fail}; }
};

// Watches proxies and membership; the test waits on what it saw.
struct watch {
  troupe::actor_addr who;
};
class observer : public troupe::actor {
 public:
  struct shared {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::string> events;
    bool saw(const std::string& e) {
      std::unique_lock lock(m);
      return cv.wait_for(
          lock, 10s, [&] { return std::find(events.begin(), events.end(), e) != events.end(); });
    }
    void add(std::string e) {
      std::lock_guard lock(m);
      events.push_back(std::move(e));
      cv.notify_all();
    }
  };
  explicit observer(shared* s) : s_(s) {}
  void handle(watch w) { monitor(w.who); }
  void handle(troupe::down_msg d) { s_->add(std::string("down:") + troupe::to_string(d.reason)); }
  void handle(net::member_event e) { s_->add((e.up ? "up:" : "gone:") + e.node); }

 private:
  shared* s_;
};

// Blocked in a long handler, so an ask to it stays pending.
std::atomic<int> slow_started{0};  // asks that reached a slow actor's handler
struct slow : troupe::actor {
  using remote_messages = net::message_list<balance>;
  task<std::int64_t> handle(balance) {
    slow_started.fetch_add(1);
    co_await troupe::sleep_for(1h);
    co_return 0;
  }
};

net::node_options options(std::string name, std::vector<net::endpoint> seeds = {},
                          std::string secret = "s3cret") {
  return troupe::test::node_options(std::move(name), std::move(seeds), "test", std::move(secret));
}

// Polls a condition the nodes reach by themselves (a link coming up), with a bound.
using troupe::test::eventually;

using troupe::test::linked;

// node-b with a published bank, node-a linked to it, and a remote ref.
struct linked_bank {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime rb{troupe::test::threaded(log_b, 1)};
  net::node b{rb, options("node-b")};
  troupe::actor_ref<bank> the_bank = rb.spawn<bank>();
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  net::node a{ra, options("node-a", {{"127.0.0.1", b.port()}})};
  troupe::actor_ref<bank> remote;
  linked_bank() {
    b.publish(the_bank, "bank");
    REQUIRE(eventually([&] { return linked(a, "node-b"); }));
    remote = a.remote_sync<bank>("node-b", "bank", 5s).value();
  }
};

}  // namespace

TEST_CASE("a remote ref tells and asks exactly like a local one", "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 2)};
  troupe::runtime rb{troupe::test::threaded(log_b, 2)};
  net::node b{rb, options("node-b")};
  troupe::spawn_options on1;
  on1.shard = 1;
  auto the_bank = rb.spawn<bank>(on1);
  b.publish(the_bank, "bank");
  net::node a{ra, options("node-a", {{"127.0.0.1", b.port()}})};
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));

  auto remote = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(remote);
  CHECK_FALSE(remote->tell(deposit{"alice", 500}));
  CHECK_FALSE(remote->tell(deposit{"alice", 250}));
  auto c = ra.ask_sync(*remote, balance{"alice"}, 5s);
  REQUIRE(c);
  CHECK(*c == 750);

  SECTION("order holds across the link") {
    for (int i = 0; i < 20000; ++i) (void)remote->tell(note{0, i});
    auto got = ra.ask_sync(*remote, get_notes{}, 10s);
    REQUIRE(got);
    REQUIRE(got->seqs.size() == 20000);
    for (int i = 0; i < 20000; ++i) REQUIRE(got->seqs[i] == i);
  }
  SECTION("an unregistered message type is refused at the sender") {
    CHECK(remote->tell(local_only{}) == troupe::errc::not_serializable);
  }
  SECTION("lookups name their failures") {
    CHECK(a.remote_sync<bank>("node-b", "nobody", 5s).error() == troupe::errc::name_not_found);
    CHECK(a.remote_sync<observer>("node-b", "bank", 5s).error() == troupe::errc::wrong_type);
    CHECK(a.remote_sync<bank>("node-z", "bank", 5s).error() == troupe::errc::node_down);
  }
}

TEST_CASE("a node going down fails pending asks, fires monitors and redials when it is back",
          "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  auto rb = std::make_unique<troupe::runtime>(troupe::test::threaded(log_b, 1));
  auto b = std::make_unique<net::node>(*rb, options("node-b"));
  const unsigned short port = b->port();
  auto the_bank = rb->spawn<bank>();
  b->publish(the_bank, "bank");

  observer::shared seen;
  auto obs = ra.spawn<observer>(&seen);
  net::node a{ra, options("node-a", {{"127.0.0.1", port}})};
  a.subscribe(obs);
  REQUIRE(seen.saw("up:node-b"));
  auto remote = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(remote);
  (void)obs.tell(watch{remote->addr()});

  // node-b dies: its runtime stops, its sockets close.
  b.reset();
  rb.reset();
  REQUIRE(seen.saw("gone:node-b"));
  REQUIRE(seen.saw("down:node_down"));
  CHECK(ra.ask_sync(*remote, balance{"x"}, 5s).error() == troupe::errc::actor_dead);

  // node-b comes back on the same port: node-a redials it.
  troupe::runtime rb2{troupe::test::threaded(log_b, 1)};
  net::node_options again = options("node-b");
  again.listen.port = port;
  net::node b2{rb2, again};
  auto bank2 = rb2.spawn<bank>();
  b2.publish(bank2, "bank");
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));
  auto fresh = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(fresh);
  (void)fresh->tell(deposit{"bob", 9});
  CHECK(ra.ask_sync(*fresh, balance{"bob"}, 5s).value() == 9);
}

TEST_CASE("an ask pending when the link drops fails with node_down, not at its deadline",
          "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  auto rb = std::make_unique<troupe::runtime>(troupe::test::threaded(log_b, 1));
  net::node_options ob = options("node-b");
  auto b = std::make_unique<net::node>(*rb, ob);
  auto s = rb->spawn<slow>();
  b->publish(s, "slow");
  net::node a{ra, options("node-a", {{"127.0.0.1", b->port()}})};
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));
  auto remote = a.remote_sync<slow>("node-b", "slow", 5s);
  REQUIRE(remote);
  const int started = slow_started.load();
  auto pending =
      std::async(std::launch::async, [&] { return ra.ask_sync(*remote, balance{"x"}, 60s); });
  // Let the ask reach node-b's handler, then kill node-b.
  REQUIRE(eventually([&] { return slow_started.load() > started; }));
  const auto t0 = std::chrono::steady_clock::now();
  b.reset();
  rb.reset();
  auto r = pending.get();
  REQUIRE_FALSE(r);
  // node_down, or actor_died if node-b's reply of its unwound handler won the race.
  CHECK((r.error() == troupe::errc::node_down || r.error() == troupe::errc::actor_died));
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("nodes with different secrets never link", "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  troupe::runtime rb{troupe::test::threaded(log_b, 1)};
  net::node b{rb, options("node-b", {}, "right")};
  net::node a{ra, options("node-a", {{"127.0.0.1", b.port()}}, "wrong")};
  REQUIRE(eventually([&] { return log_b.contains("cluster secret mismatch"); }));
  CHECK(eventually([&] { return log_a.contains("cluster secret mismatch"); }));
  CHECK_FALSE(linked(a, "node-b"));
}

TEST_CASE("a node that cannot listen says which endpoint and why", "[net][node]") {
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node first{rt, options("one")};
  net::node_options o = options("two");
  o.listen.port = first.port();
  try {
    net::node second{rt, o};
    FAIL("binding a port in use succeeded");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("cannot listen on 127.0.0.1:" +
                                     std::to_string(first.port())) != std::string::npos);
  }
}

using troupe::test::raw_peer;

TEST_CASE("bad input closes only the offending link, with its reason", "[net][node][io]") {
  linked_bank n;  // a healthy peer stays linked throughout
  auto& b = n.b;

  SECTION("a wrong protocol version") {
    raw_peer r{b.port()};
    CHECK(r.handshake("s3cret", net::protocol_version + 1).find("protocol version mismatch") !=
          std::string::npos);
  }
  SECTION("a wrong secret") {
    raw_peer r{b.port()};
    CHECK(r.handshake("guess").find("cluster secret mismatch") != std::string::npos);
  }
  SECTION("an unknown message type id") {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    // The bank was published first after the node itself: local id 2.
    r.send({net::frame_kind::tell, 999, 2, 0, 0}, "");
    CHECK(r.goodbye().find("unknown message type id 999") != std::string::npos);
  }
  SECTION("a payload that fails to decode") {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    r.send({net::frame_kind::tell, 101, 2, 0, 0}, "\xff\xff\xff\x7f garbage");
    CHECK(r.goodbye().find("failed to decode") != std::string::npos);
  }
  SECTION("a frame over the size limit") {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    r.send_raw(std::string("\xff\xff\xff\x7f", 4) + std::string(64, 'x'));
    const std::string why = r.goodbye();
    INFO(why);
    CHECK(why.find("exceeds the maximum frame size") != std::string::npos);
  }
  SECTION("a frame with a bad kind") {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    std::string f(36, '\0');
    f[0] = 32;  // length 32: a header with no payload
    f[4] = 77;  // no such kind
    r.send_raw(f);
    CHECK(r.goodbye() != "");
  }
  // Routed frames (protocol 3): a route_context frame (varint epoch, u32
  // digest) first, then a prefix of varint (name id << 2 | bind << 1 | hops),
  // the name inline when bound or id 0, varint key length, key.
  const std::string context("\x00\x00\x00\x00\x00", 5);  // epoch 0, digest 0
  // Why node-b closes a fresh link that sends `frames` after the handshake.
  auto goodbye_for = [&](std::vector<std::pair<net::frame_header, std::string>> frames) {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    for (auto& [h, payload] : frames) r.send(h, payload);
    return r.goodbye();
  };
  const net::frame_header context_h{net::frame_kind::route_context, 0, 0, 0, 0};
  const net::frame_header tell_h{net::frame_kind::routed_tell, 101, 0, 0, 0};
  SECTION("a routed frame whose routing prefix is malformed") {
    // Name "bank" inline, a key of 200 bytes announced, 3 present.
    CHECK(goodbye_for({{context_h, context},
                       {tell_h, std::string("\x00\x04"
                                            "bank\xc8\x01"
                                            "abc",
                                            11)}})
              .find("malformed routed frame") != std::string::npos);
  }
  SECTION("a routed frame whose first varint never ends") {
    CHECK(goodbye_for({{context_h, context}, {tell_h, std::string(11, '\x80') + "\x01k"}})
              .find("malformed routed frame") != std::string::npos);
  }
  SECTION("a routed frame before any route_context frame") {
    CHECK(goodbye_for({{{net::frame_kind::routed_ask, 101, 0, 0, 7},
                        std::string("\x00\x04"
                                    "bank\x01k",
                                    8)}})
              .find("before any route_context frame") != std::string::npos);
  }
  SECTION("a malformed route_context frame") {
    CHECK(goodbye_for({{context_h, std::string("\x00\x00", 2)}})
              .find("malformed route_context frame") != std::string::npos);
  }
  SECTION("a routed frame that binds a name id out of order") {
    // Binds id 2 on a link that has bound none.
    CHECK(goodbye_for({{context_h, context},
                       {tell_h, std::string("\x0a\x04"
                                            "bank\x01k",
                                            8)}})
              .find("binds a name id out of order") != std::string::npos);
  }
  SECTION("a routed frame that names an id never bound") {
    CHECK(goodbye_for({{context_h, context}, {tell_h, std::string("\x04\x01k", 3)}})
              .find("unknown name id") != std::string::npos);
  }
  SECTION("a routed ask to a name nobody published is answered with name_not_found") {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    r.send({net::frame_kind::route_context, 0, 0, 0, 0}, context);
    // Name "nope" inline (id 0), key "k".
    r.send({net::frame_kind::routed_ask, 102, 0, 0, 7}, std::string("\x00\x04"
                                                                    "nope\x01k",
                                                                    8));
    auto reply = r.next();
    REQUIRE(reply);
    CHECK(reply->first.kind == net::frame_kind::reply_error);
    CHECK(reply->first.correlation == 7);
    CHECK(net::decode<std::uint32_t>(reply->second).value() ==
          static_cast<std::uint32_t>(troupe::errc::name_not_found));
  }
  SECTION("names bound to ids on a link reach their actors by id") {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    r.send({net::frame_kind::route_context, 0, 0, 0, 0}, context);
    std::string ask;
    net::encode(balance{"carol"}, ask);
    auto routed_ask = [&](std::uint64_t correlation, std::string prefix) {
      r.send({net::frame_kind::routed_ask, 102, 0, 0, correlation}, prefix + ask);
      auto reply = r.next();
      REQUIRE(reply);
      CHECK(reply->first.correlation == correlation);
      return *reply;
    };
    // Id 1 bound to "nope", id 2 to "bank"; then each used by its id alone.
    auto r1 = routed_ask(7, std::string("\x06\x04nope\x01k", 8));
    CHECK(r1.first.kind == net::frame_kind::reply_error);
    auto r2 = routed_ask(8, std::string("\x0a\x04"
                                        "bank\x01k",
                                        8));
    CHECK(r2.first.kind == net::frame_kind::reply);
    CHECK(net::decode<std::int64_t>(r2.second).value() == 0);
    auto r3 = routed_ask(9, std::string("\x08\x01k", 3));
    CHECK(r3.first.kind == net::frame_kind::reply);
    CHECK(net::decode<std::int64_t>(r3.second).value() == 0);
    auto r4 = routed_ask(10, std::string("\x04\x01k", 3));
    CHECK(r4.first.kind == net::frame_kind::reply_error);
    CHECK(net::decode<std::uint32_t>(r4.second).value() ==
          static_cast<std::uint32_t>(troupe::errc::name_not_found));
  }
  SECTION("a truncated frame, then the connection ends") {
    raw_peer r{b.port()};
    REQUIRE(r.handshake("s3cret").empty());
    r.send_raw(std::string("\x40\x00\x00\x00\x06", 5));  // 64 bytes announced, 1 sent
  }
  // Whatever the raw peer did, the healthy link still works.
  (void)n.remote.tell(deposit{"carol", 3});
  CHECK(n.ra.ask_sync(n.remote, balance{"carol"}, 5s).value() == 3);
  CHECK(linked(n.a, "node-b"));
}

namespace {
// A node in a child process (troupe_test_node), fork/exec'ed; killed on scope exit.
class child_node {
 public:
  child_node(const std::string& name, unsigned short port) {
    int to_child[2], from_child[2];
    REQUIRE(::pipe(to_child) == 0);
    REQUIRE(::pipe(from_child) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(to_child[0], 0);
      ::dup2(from_child[1], 1);
      ::close(to_child[1]);
      ::close(from_child[0]);
      const std::string p = std::to_string(port);
      ::execl(TROUPE_TEST_NODE, TROUPE_TEST_NODE, name.c_str(), p.c_str(), "s3cret",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    stdin_ = to_child[1];
    std::string line;
    char c;
    while (::read(from_child[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(from_child[0]);
    REQUIRE(line.rfind("port ", 0) == 0);
    port_ = static_cast<unsigned short>(std::stoi(line.substr(5)));
  }
  ~child_node() { kill(); }
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      ::close(stdin_);
      pid_ = -1;
    }
  }
  unsigned short port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  unsigned short port_ = 0;
};
}  // namespace

TEST_CASE("two processes: remote tell and ask, order, kill -9, reconnect after restart",
          "[net][node][io][process]") {
  auto b = std::make_unique<child_node>("node-b", 0);
  const unsigned short port = b->port();
  troupe::test::log_sink log_a;
  troupe::runtime ra{troupe::test::threaded(log_a, 2)};
  observer::shared seen;
  auto obs = ra.spawn<observer>(&seen);
  net::node a{ra, options("node-a", {{"127.0.0.1", port}})};
  a.subscribe(obs);
  REQUIRE(seen.saw("up:node-b"));
  auto remote = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(remote);
  for (int i = 0; i < 5000; ++i) (void)remote->tell(note{0, i});
  (void)remote->tell(deposit{"dave", 42});
  auto got = ra.ask_sync(*remote, get_notes{}, 10s);
  REQUIRE(got);
  REQUIRE(got->seqs.size() == 5000);
  for (int i = 0; i < 5000; ++i) REQUIRE(got->seqs[i] == i);
  CHECK(ra.ask_sync(*remote, balance{"dave"}, 5s).value() == 42);
  (void)obs.tell(watch{remote->addr()});

  b->kill();  // kill -9: no goodbye, the socket just dies
  REQUIRE(seen.saw("gone:node-b"));
  REQUIRE(seen.saw("down:node_down"));
  CHECK(ra.ask_sync(*remote, balance{"dave"}, 5s).error() == troupe::errc::actor_dead);

  b = std::make_unique<child_node>("node-b", port);  // restarted on the same port
  REQUIRE(eventually([&] { return linked(a, "node-b"); }, 20s));
  auto again = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(again);
  CHECK(ra.ask_sync(*again, balance{"dave"}, 5s).value() == 0);  // a new process: fresh state
}

TEST_CASE("shutting down the asking node fails its pending remote asks at once",
          "[net][node][io]") {
  troupe::test::log_sink log_a, log_b;
  troupe::runtime rb{troupe::test::threaded(log_b, 1)};
  net::node b{rb, options("node-b")};
  auto s = rb.spawn<slow>();
  b.publish(s, "slow");
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  auto a = std::make_unique<net::node>(ra, options("node-a", {{"127.0.0.1", b.port()}}));
  REQUIRE(eventually([&] { return linked(*a, "node-b"); }));
  auto remote = a->remote_sync<slow>("node-b", "slow", 5s);
  REQUIRE(remote);
  const int started = slow_started.load();
  auto pending =
      std::async(std::launch::async, [&] { return ra.ask_sync(*remote, balance{"x"}, 60s); });
  REQUIRE(
      eventually([&] { return slow_started.load() > started; }));  // the ask is in node-b's handler
  const auto t0 = std::chrono::steady_clock::now();
  a.reset();
  auto r = pending.get();
  REQUIRE_FALSE(r);
  CHECK(r.error() == troupe::errc::node_down);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("a reply that cannot be encoded fails the remote ask and the link stays up",
          "[net][node][io]") {
  // The responder on the link's shard (its reply is encoded straight into the
  // link's output) and on another shard (encoded there, appended on arrival).
  for (int shard : {0, 1}) {
    troupe::test::log_sink log_a, log_b;
    troupe::runtime rb{troupe::test::threaded(log_b, 2)};
    net::node b{rb, options("node-b")};
    troupe::spawn_options so;
    so.shard = shard;
    b.publish(rb.spawn<fragile_maker>(so), "maker");
    troupe::runtime ra{troupe::test::threaded(log_a, 1)};
    net::node a{ra, options("node-a", {{"127.0.0.1", b.port()}})};
    REQUIRE(eventually([&] { return linked(a, "node-b"); }));
    auto remote = a.remote_sync<fragile_maker>("node-b", "maker", 5s);
    REQUIRE(remote);
    for (int i = 0; i < 3; ++i) {
      auto bad = ra.ask_sync(*remote, make_fragile{true}, 5s);
      REQUIRE_FALSE(bad);
      CHECK(bad.error() == troupe::errc::not_serializable);
      auto good = ra.ask_sync(*remote, make_fragile{false}, 5s);
      REQUIRE(good);
      CHECK_FALSE(good->fail);
    }
    CHECK(linked(a, "node-b"));
  }
}

TEST_CASE("issue-3: tens of thousands of asks over one link arrive intact", "[net][node][io]") {
  // Regression: Asio 1.26's io_uring backend left user_data unset on some
  // submissions; once the ring wrapped (16384 entries) a stale completion
  // corrupted a link's reads. core/src/asio_impl.cpp clears it.
  linked_bank n;
  for (int i = 0; i < 25000; ++i) {
    auto r = n.ra.ask_sync(n.remote, balance{"x"}, 5s);
    if (!r) FAIL("ask " << i << " failed: " << r.error().message());
  }
  CHECK(linked(n.a, "node-b"));
  CHECK_FALSE(n.log_a.contains("closed"));
}
