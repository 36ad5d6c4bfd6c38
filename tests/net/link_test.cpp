// SPDX-License-Identifier: BSL-1.0
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <troupe/net/link.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;
namespace asio = boost::asio;
namespace net = troupe::net;

namespace {

// Records a link's events; the test thread waits on them (never sleeps).
class recorder final : public net::link_listener {
 public:
  void on_up(const troupe::actor_ref<net::peer_link>& l, const net::peer_identity& who) override {
    std::lock_guard lock(m_);
    link_ = l;
    peer_ = who.name;
    up_ = true;
    cv_.notify_all();
  }
  void on_frame(const troupe::actor_ref<net::peer_link>&, const net::frame_header& h,
                std::string_view payload) override {
    std::unique_lock lock(m_);
    cv_.wait(lock, [this] { return !hold_; });  // a test holds the reader still
    frames_.push_back(std::to_string(h.correlation) + ":" + std::string(payload));
    cv_.notify_all();
  }
  void hold(bool on) {
    std::lock_guard lock(m_);
    hold_ = on;
    cv_.notify_all();
  }
  void on_down(const troupe::actor_ref<net::peer_link>&, const std::string&,
               const std::string& reason, boost::system::error_code) override {
    std::lock_guard lock(m_);
    down_ = true;
    reason_ = reason;
    cv_.notify_all();
  }
  // Snapshots under the lock (the link's shard writes these).
  std::string reason() {
    std::lock_guard lock(m_);
    return reason_;
  }
  std::string peer() {
    std::lock_guard lock(m_);
    return peer_;
  }
  bool is_down() {
    std::lock_guard lock(m_);
    return down_;
  }
  bool is_up() {
    std::lock_guard lock(m_);
    return up_;
  }
  std::vector<std::string> frames() {
    std::lock_guard lock(m_);
    return frames_;
  }
  troupe::actor_ref<net::peer_link> link() {
    std::lock_guard lock(m_);
    return link_;
  }
  template <class Pred>
  bool wait(Pred p, std::chrono::seconds limit = 10s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, limit, [&] { return p(*this); });
  }
  std::mutex m_;
  std::condition_variable cv_;
  troupe::actor_ref<net::peer_link> link_;
  std::string peer_, reason_;
  bool up_ = false, down_ = false, hold_ = false;
  std::vector<std::string> frames_;
};

struct accept_one {
  net::link_config cfg;
  net::link_listener* listener;
};
struct dial {
  unsigned short port;
  net::link_config cfg;
  net::link_listener* listener;
};
struct port_q {};

// Listens on an ephemeral loopback port; the first connection becomes a link.
class listener_actor : public troupe::actor {
 public:
  listener_actor() : acc_(troupe::runtime::this_io(), {asio::ip::make_address("127.0.0.1"), 0}) {}
  unsigned short handle(port_q) { return acc_.local_endpoint().port(); }
  task<void> handle(accept_one a) {
    troupe::result<asio::ip::tcp::socket> s = co_await acc_.async_accept(troupe::use_task);
    if (!s) co_return;
    auto l =
        spawn<net::peer_link>(a.cfg, std::move(*s), net::peer_link::role::acceptor, a.listener);
    (void)l.tell(net::link_start{});
  }

 private:
  asio::ip::tcp::acceptor acc_;
};
class dialer_actor : public troupe::actor {
 public:
  task<bool> handle(dial d) {
    asio::ip::tcp::socket s{troupe::runtime::this_io()};
    asio::ip::tcp::endpoint to{asio::ip::make_address("127.0.0.1"), d.port};
    boost::system::error_code ec = co_await s.async_connect(to, troupe::use_task);
    if (ec) co_return false;
    auto l = spawn<net::peer_link>(d.cfg, std::move(s), net::peer_link::role::dialer, d.listener);
    (void)l.tell(net::link_start{});
    co_return true;
  }
};

net::link_config config(std::string node, std::string cluster = "test",
                        std::optional<std::string> secret = "s3cret") {
  net::link_config c;
  c.node = std::move(node);
  c.cluster = std::move(cluster);
  c.secret = std::move(secret);
  c.heartbeat = 20ms;
  c.down_after = 1000ms;  // the silence tests wait on it; generous for TSan
  return c;
}

// Two runtimes in one process, as two nodes on 127.0.0.1.
struct pair_of_nodes {
  // Declared first, destroyed last: the links report to them until the runtimes stop.
  recorder rec_a, rec_b;
  troupe::test::log_sink log_a, log_b;
  troupe::runtime a{troupe::test::threaded(log_a, 1)};
  troupe::runtime b{troupe::test::threaded(log_b, 1)};
  troupe::actor_ref<listener_actor> listener = b.spawn<listener_actor>();
  troupe::actor_ref<dialer_actor> dialer = a.spawn<dialer_actor>();

  void connect(net::link_config ca, net::link_config cb) {
    const unsigned short port = b.ask_sync(listener, port_q{}, 5s).value();
    (void)listener.tell(accept_one{std::move(cb), &rec_b});
    REQUIRE(a.ask_sync(dialer, dial{port, std::move(ca), &rec_a}, 5s).value());
  }
};

}  // namespace

TEST_CASE("two nodes with the same secret complete the handshake and exchange frames in order",
          "[net][link][io]") {
  pair_of_nodes n;
  n.connect(config("node-a"), config("node-b"));
  REQUIRE(n.rec_a.wait([](recorder& r) { return r.up_; }));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.up_; }));
  CHECK(n.rec_a.peer() == "node-b");
  CHECK(n.rec_b.peer() == "node-a");
  for (std::uint64_t i = 1; i <= 1000; ++i)
    (void)n.rec_a.link().tell(net::link_send{{net::frame_kind::tell, 7, 1, 2, i}, "payload"});
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.frames_.size() == 1000; }));
  auto frames = n.rec_b.frames();
  for (std::size_t i = 0; i < 1000; ++i) CHECK(frames[i] == std::to_string(i + 1) + ":payload");
  auto stats = n.a.ask_sync(n.rec_a.link(), net::link_stats_q{}, 5s).value();
  CHECK(stats.frames_out >= 1000);
  CHECK(stats.writes < stats.frames_out);  // frames were coalesced into fewer writes
}

TEST_CASE("a stream bigger than the socket buffers arrives whole and in order when the reader lags",
          "[net][link][io]") {
  // The writer hands frames to the kernel as they pass the write-through mark
  // until the socket is full, then leaves the rest to io_uring, which waits
  // for room; nothing is lost or reordered on the way.
  pair_of_nodes n;
  net::link_config ca = config("node-a"), cb = config("node-b");
  ca.down_after = cb.down_after = 20s;  // the reader is held still for a while
  n.connect(ca, cb);
  REQUIRE(n.rec_a.wait([](recorder& r) { return r.up_; }));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.up_; }));
  n.rec_b.hold(true);
  const std::string payload(1024, 'x');
  const std::uint64_t count = 32 * 1024;  // 32 MiB: more than loopback's socket buffers hold
  for (std::uint64_t i = 1; i <= count; ++i)
    (void)n.rec_a.link().tell(net::link_send{{net::frame_kind::tell, 7, 1, 2, i}, payload});
  net::link_stats held{};
  for (;;) {  // until every frame is queued on node-a's side (ask_sync waits for each answer)
    held = n.a.ask_sync(n.rec_a.link(), net::link_stats_q{}, 5s).value();
    if (held.frames_out >= count) break;
  }
  const std::uint64_t frame_bytes =
      net::frame_header_size({net::frame_kind::tell, 7, 1, 2, 1}) + payload.size();
  CHECK(held.bytes_out < count * frame_bytes);  // the socket was full: some waited
  n.rec_b.hold(false);
  REQUIRE(n.rec_b.wait([&](recorder& r) { return r.frames_.size() == count; }, 60s));
  const auto frames = n.rec_b.frames();
  bool in_order = true;
  for (std::uint64_t i = 0; i < count && in_order; ++i)
    in_order = frames[i] == std::to_string(i + 1) + ":" + payload;
  CHECK(in_order);
  CHECK_FALSE(n.rec_a.is_down());
  CHECK(n.a.ask_sync(n.rec_a.link(), net::link_stats_q{}, 5s).value().bytes_out >=
        count * frame_bytes);
}

TEST_CASE("a wrong secret is refused with one clear reason on both sides", "[net][link][io]") {
  pair_of_nodes n;
  n.connect(config("node-a", "test", "wrong"), config("node-b"));
  REQUIRE(n.rec_a.wait([](recorder& r) { return r.down_; }));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.down_; }));
  CHECK_FALSE(n.rec_a.is_up());
  CHECK_FALSE(n.rec_b.is_up());
  CHECK(n.rec_b.reason().find("cluster secret mismatch") != std::string::npos);
  CHECK(n.rec_a.reason().find("cluster secret mismatch") != std::string::npos);
  CHECK(n.log_b.contains("closed: handshake refused: cluster secret mismatch"));
}

TEST_CASE("a peer from another cluster is refused", "[net][link][io]") {
  pair_of_nodes n;
  n.connect(config("node-a", "other"), config("node-b"));
  REQUIRE(n.rec_a.wait([](recorder& r) { return r.down_; }));
  CHECK(n.rec_a.reason().find("cluster name mismatch") != std::string::npos);
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.down_; }));
}

TEST_CASE("heartbeats keep an idle link up", "[net][link][io]") {
  pair_of_nodes n;
  n.connect(config("node-a"), config("node-b"));
  REQUIRE(n.rec_a.wait([](recorder& r) { return r.up_; }));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.up_; }));
  // Idle for three times the 1 s down limit: heartbeats keep it up.
  CHECK_FALSE(n.rec_a.wait([](recorder& r) { return r.down_; }, 3s));
  INFO("a: " << n.rec_a.reason() << " / b: " << n.rec_b.reason());
  CHECK_FALSE(n.rec_b.is_down());
}

TEST_CASE("a peer that falls silent is declared down", "[net][link][io]") {
  pair_of_nodes n;
  net::link_config quiet = config("node-a");
  quiet.heartbeat = 10s;  // node-a will not send heartbeats in time
  quiet.down_after = 60s;
  n.connect(quiet, config("node-b"));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.up_; }));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.down_; }));
  CHECK(n.rec_b.reason().find("peer silent for") != std::string::npos);
  // node-a then hears node-b's goodbye (or the close) and goes down too.
  REQUIRE(n.rec_a.wait([](recorder& r) { return r.down_; }));
}

TEST_CASE("a suspected peer is declared down at down_max when its phi stays low",
          "[net][link][io]") {
  pair_of_nodes n;
  net::link_config quiet = config("node-a");
  quiet.heartbeat = 10s;  // node-a will not send heartbeats in time
  quiet.down_after = 60s;
  net::link_config patient = config("node-b");
  patient.down_after = 200ms;
  patient.down_max = 1500ms;
  patient.phi_threshold = 1000;  // above any phi: only down_max can down it
  n.connect(quiet, patient);
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.up_; }));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.down_; }));
  CHECK(n.rec_b.reason().find("past down_max 1500 ms") != std::string::npos);
  CHECK(n.log_b.contains("node-a suspected: silent for"));
}

namespace {
std::int64_t ms(std::int64_t v) { return v * 1'000'000; }
}  // namespace

TEST_CASE("phi-accrual: steady gaps make a long silence unlikely, varying gaps tolerate it",
          "[net][link][phi]") {
  SECTION("heartbeats every 250 ms: 1.5 s of silence is far past phi 8, 300 ms is not") {
    net::arrival_window w{250ms, 125ms};
    std::int64_t t = 0;
    for (int i = 0; i < 100; ++i) w.arrived(t += ms(250));
    CHECK(w.size() == net::arrival_window::capacity);
    CHECK(w.phi(t + ms(300)) < 1);
    CHECK(w.phi(t + ms(1500)) >= 8);
  }
  SECTION("gaps of 100 and 900 ms (a busy node): 1.5 s is below phi 8, 5 s above") {
    net::arrival_window w{250ms, 125ms};
    std::int64_t t = 0;
    for (int i = 0; i < 64; ++i) w.arrived(t += ms(i % 2 ? 900 : 100));
    CHECK(w.phi(t + ms(1500)) < 8);
    CHECK(w.phi(t + ms(5000)) >= 8);
  }
  SECTION("a busy link's microsecond gaps do not make a heartbeat's gap look late") {
    net::arrival_window w{250ms, 125ms};
    std::int64_t t = 0;
    for (int i = 0; i < 64; ++i) w.arrived(t += 10'000);
    CHECK(w.phi(t + ms(300)) < 1);
    CHECK(w.phi(t + ms(1500)) >= 8);
  }
  SECTION("phi grows with the silence, and the window forgets old gaps") {
    net::arrival_window w{250ms, 125ms};
    std::int64_t t = 0;
    for (int i = 0; i < 64; ++i) w.arrived(t += ms(i % 2 ? 900 : 100));
    double last = 0;
    for (int e = 0; e <= 10'000; e += 50) {
      const double p = w.phi(t + ms(e));
      CHECK(p >= last);
      last = p;
    }
    for (int i = 0; i < 64; ++i) w.arrived(t += ms(250));  // steady again
    CHECK(w.phi(t + ms(1500)) >= 8);
  }
  SECTION("no arrival yet: no suspicion") {
    net::arrival_window w{250ms, 125ms};
    CHECK(w.phi(ms(10'000)) == 0);
  }
}

TEST_CASE("garbage bytes close the link with a logged reason and the node keeps working",
          "[net][link][io]") {
  pair_of_nodes n;
  const unsigned short port = n.b.ask_sync(n.listener, port_q{}, 5s).value();
  (void)n.listener.tell(accept_one{config("node-b"), &n.rec_b});
  asio::io_context io;
  asio::ip::tcp::socket raw{io};
  raw.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(raw, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  REQUIRE(n.rec_b.wait([](recorder& r) { return r.down_; }));
  CHECK_FALSE(n.rec_b.is_up());
  CHECK(n.log_b.contains("closed:"));
  // The node still answers.
  CHECK(n.b.ask_sync(n.listener, port_q{}, 5s).value() == port);
}
