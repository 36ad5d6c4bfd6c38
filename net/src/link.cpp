// SPDX-License-Identifier: BSL-1.0
// A link's life: handshake, bulk reads, coalesced writes, heartbeats, close.

#include <sys/socket.h>

#include <array>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <cmath>
#include <cstdio>
#include <troupe/net/link.hpp>
#include <troupe/net/tls.hpp>
#include <troupe/net/wire.hpp>

namespace troupe::net {

namespace asio = boost::asio;

namespace {
bool is_loopback(const asio::ip::tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  return !ec && ep.address().is_loopback();
}
std::int64_t ms_of(std::int64_t ns) { return ns / 1'000'000; }
}  // namespace

// TLS over the link's own socket: closing socket_ ends the stream's operations.
struct peer_link::tls_layer {
  tls_layer(asio::ip::tcp::socket& s, asio::ssl::context& ctx) : stream(s, ctx) {}
  asio::ssl::stream<asio::ip::tcp::socket&> stream;
};

peer_link::peer_link(link_config cfg, asio::ip::tcp::socket socket, role r, link_listener* listener,
                     actor_addr owner)
    : cfg_(std::move(cfg)),
      socket_(std::move(socket)),
      role_(r),
      listener_(listener),
      owner_(std::move(owner)),
      reader_(std::min(cfg_.handshake_max_frame, cfg_.max_frame)),
      arrivals_(cfg_.heartbeat, cfg_.heartbeat / 2) {
  if (cfg_.down_max.count() <= 0) cfg_.down_max = 4 * cfg_.down_after;
  boost::system::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);  // frames are coalesced by us, not Nagle
  if (cfg_.tls) tls_ = std::make_unique<tls_layer>(socket_, *cfg_.tls);
}

peer_link::~peer_link() = default;

namespace {
// One receive's worth: the reader keeps partial frames.
constexpr std::size_t read_bytes = 65536;
// Frames handled before the link gives way to the actors they went to, so
// those run while their messages are fresh in the cache and the memory they
// free is reused by the next slice (a 64 KiB read holds ~650 small frames).
// Seven is what glibc's per-thread cache keeps of one size class by default:
// a slice's decoded strings are then allocated from it and freed back into
// it. With 32 the rest overflowed into malloc's slow paths (measured: ~40 %
// of the receiving shard's time with 32, ~11 % with 7).
constexpr std::size_t deliver_slice = 7;
}  // namespace

void peer_link::queue(const frame_header& h, std::string_view payload) {
  append_frame(out_, h, payload);
  ++stats_.frames_out;
  if (out_.size() >= write_through_bytes) write_through();
  if (!out_.empty()) start_flush();
}

void peer_link::start_flush() {
  if (!writing_ && !closed_) {
    writing_ = true;
    (void)ref_of(this).tell(flush{});
  }
}

void peer_link::handle(link_send f) {
  if (closed_) return;  // the owner learns of the close through on_down
  if (out_.size() + sending_.size() >= cfg_.max_outbound) {
    (void)refuse_congested();  // dropped, as a tell that cannot be sent; counted
    return;
  }
  queue(f.header, f.payload);
}

peer_link::append_result peer_link::refuse_congested() noexcept {
  ++stats_.congested;
  if (cfg_.counters) cfg_.counters->congested.fetch_add(1, std::memory_order_relaxed);
  if (congested_since_ns_ == 0) congested_since_ns_ = system().now_ns();
  return append_result::congested;
}

void peer_link::write_through() {
  // A raw send(2) would bypass TLS: with TLS the flush writes everything.
  if (!in_flight_ && !full_ && !closed_ && !tls_) send_now();
}

void peer_link::send_now() noexcept {
  // A non-blocking send(2) from the front of out_: nothing is ahead of it,
  // since no io_uring write is in flight. What the socket does not take
  // stays for the flush's io_uring write, which waits for room.
  const ssize_t n =
      ::send(socket_.native_handle(), out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n <= 0) {  // full (EAGAIN), interrupted, or failing: the io_uring write reports it
    full_ = true;
    return;
  }
  const auto sent = static_cast<std::size_t>(n);
  stats_.bytes_out += sent;
  ++stats_.writes;
  last_out_ns_ = system().now_ns();
  congested_since_ns_ = 0;  // the peer took bytes: not stuck
  if (sent == out_.size()) {
    out_.clear();
  } else {
    out_.erase(0, sent);
    full_ = true;
  }
}

task<void> peer_link::handle(flush) {
  // Everything queued since the last write goes out in one write.
  while (!out_.empty() && !closed_) {
    sending_.swap(out_);
    out_.clear();
    in_flight_ = true;
    result<std::size_t> n =
        tls_ ? co_await asio::async_write(tls_->stream, asio::buffer(sending_), use_task)
             : co_await asio::async_write(socket_, asio::buffer(sending_), use_task);
    in_flight_ = false;
    full_ = false;
    if (!n) {
      close("write failed: " + n.error().message());
      break;
    }
    stats_.bytes_out += *n;
    ++stats_.writes;
    last_out_ns_ = system().now_ns();
    congested_since_ns_ = 0;  // the peer took a whole write: not stuck
    sending_.clear();
  }
  writing_ = false;
}

void peer_link::handle(link_close c) { close(std::move(c.reason), c.code); }

namespace {
// Closes membership itself asks for, and logs in its own words (once): a
// link to the node itself, a second connection between two linked nodes, a
// name already taken. The link's own line is then debug.
bool membership_close(const boost::system::error_code& code) noexcept {
  return code == handshake_errc::self_link || code == handshake_errc::duplicate_link ||
         code == handshake_errc::duplicate_name;
}
}  // namespace

peer_identity peer_link::identity_of(std::string name, std::uint64_t incarnation, std::string host,
                                     std::uint16_t port) const {
  boost::system::error_code ec;
  const asio::ip::address a = asio::ip::make_address(host, ec);
  if (host.empty() || (!ec && a.is_unspecified())) {
    // The peer listens on every address: dial it where its connection came from.
    const asio::ip::tcp::endpoint remote = socket_.remote_endpoint(ec);
    host = ec ? std::string() : remote.address().to_string();
  }
  return peer_identity{std::move(name), incarnation, endpoint{std::move(host), port}};
}

void peer_link::close(std::string reason, boost::system::error_code code) {
  if (closed_) return;
  closed_ = true;
  close_reason_ = std::move(reason);
  close_code_ = code;
  system().log(membership_close(code) ? troupe::log_level::debug : troupe::log_level::info, "link",
               cfg_.node + " <-> " + (stats_.peer.empty() ? "?" : stats_.peer) +
                   " closed: " + close_reason_);
  // Best effort: tell the peer why, without waiting for it.
  std::string bye;
  append_frame(bye, frame_header{frame_kind::goodbye, 0, 0, 0, 0}, close_reason_);
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  if (!tls_) {
    socket_.write_some(asio::buffer(bye), ec);
  } else if (SSL_is_init_finished(tls_->stream.native_handle()) && !in_flight_) {
    // Inside TLS, and only between writes (a record must not interleave
    // with one in flight); if the socket has no room it is lost.
    tls_->stream.write_some(asio::buffer(bye), ec);
  }
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);  // the read loop's pending read ends; it reports the link down
}

task<result<frame_view>> peer_link::read_frame() {
  for (;;) {
    result<std::optional<frame_view>> f = reader_.next();
    if (!f) co_return failure<frame_view>(f.error());
    if (*f) {
      ++stats_.frames_in;
      co_return **f;
    }
    // The handshake's frames are small: read no more than one frame may hold.
    std::span<char> buf = reader_.writable(std::min<std::size_t>(read_bytes, reader_.max_frame()));
    const asio::mutable_buffer b(buf.data(), buf.size());
    result<std::size_t> n = tls_ ? co_await tls_->stream.async_read_some(b, use_task)
                                 : co_await socket_.async_read_some(b, use_task);
    if (!n) co_return failure<frame_view>(n.error());
    last_in_ns_ =
        system().now_ns();  // any bytes show the peer alive: stamp once per read, not per frame
    stats_.bytes_in += *n;
    reader_.commit(*n);
  }
}

namespace {
template <class T>
std::string encoded(const T& v) {
  std::string s;
  encode(v, s);
  return s;
}
}  // namespace

bool peer_link::peer_certificate_names(const std::string& node) const noexcept {
  return certificate_names(SSL_get0_peer_certificate(tls_->stream.native_handle()), node);
}

task<bool> peer_link::tls_handshake() {
  // The dialer is the TLS client. Both sides verify the other's certificate
  // against the CA (the context's verify mode); the names come with the hello.
  const boost::system::error_code ec = co_await tls_->stream.async_handshake(
      role_ == role::dialer ? asio::ssl::stream_base::client : asio::ssl::stream_base::server,
      use_task);
  if (!ec) {
    SSL* ssl = tls_->stream.native_handle();
    stats_.tls = std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
    co_return true;
  }
  if (closed_) co_return false;  // timed out: close() said why
  close("TLS handshake failed: " + ec.message());
  co_return false;
}

task<bool> peer_link::handshake() {
  if (tls_ && !co_await tls_handshake()) co_return false;
  const std::string secret = cfg_.secret.value_or(std::string{});
  // Each returns false, so a failed step reads `co_return refuse(...)`.
  auto refuse = [this](const std::string& why, boost::system::error_code code = {}) {
    close("handshake refused: " + why, code);
    return false;
  };
  // A read that failed: a frame over the pre-authentication limit is named and counted.
  auto refuse_read = [this, &refuse](const boost::system::error_code& ec) {
    if (ec != frame_errc::frame_too_large) return refuse(ec.message());
    if (cfg_.counters) cfg_.counters->handshake_too_large.fetch_add(1, std::memory_order_relaxed);
    return refuse("a frame longer than the " + std::to_string(reader_.max_frame()) +
                  " bytes allowed before authentication");
  };
  auto peer_goodbye = [this](const frame_view& f) {
    close("peer refused the handshake: " + std::string(f.payload), refusal_code(f.payload));
    return false;
  };
  // Membership's say, once the peer's identity is known.
  auto admitted = [this](bool dialer) {
    if (!listening()) return boost::system::error_code{};
    return listener_->admit(ref_of(this), peer_, dialer);
  };
  if (!cfg_.secret && !is_loopback(socket_))  // either side: no secret, this host only
    co_return refuse(make_error_code(handshake_errc::not_loopback).message());
  if (role_ == role::dialer) {
    queue({frame_kind::hello, 0, 0, 0, 0},
          encoded(hello_msg{handshake_magic, protocol_version, cfg_.cluster, cfg_.node,
                            cfg_.incarnation, cfg_.listen.host, cfg_.listen.port}));
    result<frame_view> f = co_await read_frame();
    if (!f) co_return refuse_read(f.error());
    if (f->header.kind == frame_kind::goodbye) co_return peer_goodbye(*f);
    if (f->header.kind != frame_kind::challenge) co_return refuse("expected a challenge");
    result<challenge_msg> c = decode<challenge_msg>(f->payload);
    if (!c) co_return refuse("malformed challenge");
    stats_.peer = c->node;
    if (tls_ && !peer_certificate_names(c->node))
      co_return refuse("the peer's TLS certificate does not name node " + c->node);
    peer_ = identity_of(c->node, c->incarnation, c->listen_host, c->listen_port);
    if (auto ec = admitted(true)) co_return refuse(ec.message(), ec);
    const std::string my_nonce = make_nonce();
    queue({frame_kind::proof, 0, 0, 0, 0},
          encoded(
              proof_msg{my_nonce, proof_mac(secret, cfg_.cluster, cfg_.node, c->node, c->nonce)}));
    result<frame_view> w = co_await read_frame();
    if (!w) co_return refuse_read(w.error());
    if (w->header.kind == frame_kind::goodbye) co_return peer_goodbye(*w);
    if (w->header.kind != frame_kind::welcome) co_return refuse("expected a welcome");
    result<welcome_msg> m = decode<welcome_msg>(w->payload);
    if (!m || !mac_equal(m->mac, welcome_mac(secret, cfg_.cluster, c->node, cfg_.node, my_nonce)))
      co_return refuse(make_error_code(handshake_errc::bad_proof).message());
    co_return true;
  }
  // Acceptor.
  result<frame_view> f = co_await read_frame();
  if (!f) co_return refuse_read(f.error());
  if (f->header.kind != frame_kind::hello) co_return refuse("expected a hello");
  result<hello_msg> h = decode_hello(f->payload);
  if (!h) co_return refuse("malformed hello");
  if (auto ec = check_hello(*h, cfg_.cluster)) co_return refuse(ec.message());
  stats_.peer = h->node;
  if (tls_ && !peer_certificate_names(h->node))
    co_return refuse("the peer's TLS certificate does not name node " + h->node);
  const std::string my_nonce = make_nonce();
  queue({frame_kind::challenge, 0, 0, 0, 0},
        encoded(challenge_msg{cfg_.node, my_nonce, cfg_.incarnation, cfg_.listen.host,
                              cfg_.listen.port}));
  result<frame_view> p = co_await read_frame();
  if (!p) co_return refuse_read(p.error());
  if (p->header.kind == frame_kind::goodbye) co_return peer_goodbye(*p);  // the dialer refused us
  if (p->header.kind != frame_kind::proof) co_return refuse("expected a proof");
  result<proof_msg> pr = decode<proof_msg>(p->payload);
  if (!pr || !mac_equal(pr->mac, proof_mac(secret, cfg_.cluster, h->node, cfg_.node, my_nonce)))
    co_return refuse(make_error_code(handshake_errc::bad_proof).message());
  peer_ = identity_of(h->node, h->incarnation, h->listen_host, h->listen_port);
  if (auto ec = admitted(false)) co_return refuse(ec.message(), ec);
  queue({frame_kind::welcome, 0, 0, 0, 0},
        encoded(welcome_msg{welcome_mac(secret, cfg_.cluster, cfg_.node, h->node, pr->nonce)}));
  co_return true;
}

task<void> peer_link::handle(link_start) {
  started_ns_ = last_in_ns_ = last_out_ns_ = system().now_ns();
  (void)ref_of(this).tell(tick{});
  bool ok = co_await handshake();
  if (ok && !closed_) {
    reader_.set_max_frame(cfg_.max_frame);  // authenticated: full-size frames from here on
    stats_.up = true;
    const actor_ref<peer_link> me = ref_of(this);
    if (listening()) listener_->on_up(me, peer_);
    // Complete frames in the buffer are handled in slices of deliver_slice,
    // in order, with a yield to the shard's other work between slices; the
    // socket is read (straight into the reader's buffer) only when none is left.
    std::size_t in_slice = 0;
    frame_view f;
    for (;;) {
      const frame_reader::status st = reader_.next(f);
      if (st == frame_reader::status::failed) {
        close(reader_.error().message());
        break;
      }
      if (st == frame_reader::status::need_more) {
        std::span<char> buf = reader_.writable(read_bytes);
        const asio::mutable_buffer b(buf.data(), buf.size());
        result<std::size_t> n = tls_ ? co_await tls_->stream.async_read_some(b, use_task)
                                     : co_await socket_.async_read_some(b, use_task);
        if (!n) {
          // A TLS peer that closes without close_notify reads as a truncated stream.
          close(n.error() == asio::error::eof || n.error() == asio::ssl::error::stream_truncated
                    ? "peer closed the connection"
                    : n.error().message());
          break;
        }
        last_in_ns_ = system().now_ns();  // any bytes show the peer alive: once per read
        arrivals_.arrived(last_in_ns_);
        if (stats_.suspect) [[unlikely]] {
          stats_.suspect = false;
          system().log(log_level::info, "link",
                       cfg_.node + ": " + stats_.peer + " is no longer suspected");
        }
        stats_.bytes_in += *n;
        reader_.commit(*n);
        in_slice = 0;
        continue;
      }
      ++stats_.frames_in;
      switch (f.header.kind) {
        case frame_kind::heartbeat:
          break;
        case frame_kind::goodbye:
          close("peer said goodbye: " + std::string(f.payload), refusal_code(f.payload));
          break;
        case frame_kind::hello:
        case frame_kind::challenge:
        case frame_kind::proof:
        case frame_kind::welcome:
          close("handshake frame after the handshake");
          break;
        default:
          if (listening()) listener_->on_frame(me, f.header, f.payload);
      }
      if (closed_) break;
      if (++in_slice == deliver_slice) {
        in_slice = 0;
        co_await yield_turn();
        if (closed_) break;
      }
    }
  }
  stats_.up = false;
  if (listening()) listener_->on_down(ref_of(this), stats_.peer, close_reason_, close_code_);
  stop();
}

link_stats peer_link::handle(link_stats_q) const {
  link_stats s = stats_;
  s.queued_bytes = out_.size() + sending_.size();
  if (s.up) s.phi = arrivals_.phi(system().now_ns());
  return s;
}

void arrival_window::arrived(std::int64_t now_ns) noexcept {
  if (last_ns_ >= 0) {
    const double gap = static_cast<double>(now_ns - last_ns_);
    if (n_ == capacity) {
      const double old = gaps_[next_];
      sum_ -= old;
      sum_sq_ -= old * old;
    } else {
      ++n_;
    }
    gaps_[next_] = gap;
    next_ = (next_ + 1) % capacity;
    sum_ += gap;
    sum_sq_ += gap * gap;
  }
  last_ns_ = now_ns;
}

double arrival_window::phi(std::int64_t now_ns) const noexcept {
  if (last_ns_ < 0) return 0;
  double mean = min_mean_, sd = min_sd_;
  if (n_ > 0) {
    const double m = sum_ / static_cast<double>(n_);
    const double var = std::max(0.0, sum_sq_ / static_cast<double>(n_) - m * m);
    mean = std::max(mean, m);
    sd = std::max(sd, std::sqrt(var));
  }
  const double y = (static_cast<double>(now_ns - last_ns_) - mean) / sd;
  // P(a gap >= elapsed) = erfc(y / sqrt 2) / 2; phi = -log10 of it (capped
  // where the double underflows).
  const double p_later = 0.5 * std::erfc(y / std::sqrt(2.0));
  return p_later <= 1e-300 ? 300.0 : -std::log10(p_later);
}

task<void> peer_link::handle(tick) {
  while (!closed_) {
    co_await sleep_for(cfg_.heartbeat);
    if (closed_) break;
    const std::int64_t now = system().now_ns();
    if (!stats_.up) {
      if (now - started_ns_ > std::chrono::nanoseconds(cfg_.handshake_timeout).count()) {
        if (cfg_.counters)
          cfg_.counters->handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
        close("handshake timed out after " + std::to_string(cfg_.handshake_timeout.count()) +
              " ms");
      }
      continue;
    }
    if (congested_since_ns_ != 0 &&
        now - congested_since_ns_ > std::chrono::nanoseconds(cfg_.down_after).count()) {
      if (cfg_.counters) cfg_.counters->slow_consumers.fetch_add(1, std::memory_order_relaxed);
      close("peer is not reading: " + std::to_string(out_.size() + sending_.size()) +
            " bytes waiting to be written (limit " + std::to_string(cfg_.max_outbound) +
            ") and none taken for " + std::to_string(ms_of(now - congested_since_ns_)) + " ms");
      break;
    }
    if (now - last_in_ns_ > std::chrono::nanoseconds(cfg_.down_after).count()) {
      // Suspected; down once the silence is also unlikely for this peer, or
      // longer than down_max.
      const double phi = arrivals_.phi(now);
      const bool too_long = now - last_in_ns_ > std::chrono::nanoseconds(cfg_.down_max).count();
      if (cfg_.phi_threshold <= 0 || phi >= cfg_.phi_threshold || too_long) {
        char p[32];
        std::snprintf(p, sizeof p, "%.1f", phi);
        close(
            "peer silent for " + std::to_string(ms_of(now - last_in_ns_)) + " ms (limit " +
            std::to_string(cfg_.down_after.count()) + " ms, phi " + p +
            (too_long ? ", past down_max " + std::to_string(cfg_.down_max.count()) + " ms)" : ")"));
        break;
      }
      if (!stats_.suspect) {
        stats_.suspect = true;
        char p[32];
        std::snprintf(p, sizeof p, "%.1f", phi);
        system().log(log_level::info, "link",
                     cfg_.node + ": " + stats_.peer + " suspected: silent for " +
                         std::to_string(ms_of(now - last_in_ns_)) + " ms (phi " + p +
                         ", down at phi " + std::to_string(static_cast<int>(cfg_.phi_threshold)) +
                         " or after " + std::to_string(cfg_.down_max.count()) + " ms)");
      }
    }
    if (now - last_out_ns_ >= std::chrono::nanoseconds(cfg_.heartbeat).count() && !writing_)
      queue({frame_kind::heartbeat, 0, 0, 0, 0}, {});
  }
}

}  // namespace troupe::net
