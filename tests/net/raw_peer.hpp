// SPDX-License-Identifier: BSL-1.0
#pragma once
// A hand-driven peer: speaks the wire protocol directly, to send what a real
// node never would (and to not read what a real node would).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <troupe/net/frame.hpp>
#include <troupe/net/handshake.hpp>
#include <troupe/net/wire.hpp>
#include <utility>

namespace troupe::test {

class raw_peer {
 public:
  explicit raw_peer(unsigned short port, std::string name = "raw") : name_(std::move(name)) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }

  void send(const net::frame_header& h, std::string_view payload) {
    std::string out;
    net::append_frame(out, h, payload);
    boost::asio::write(socket_, boost::asio::buffer(out));
  }
  void send_raw(std::string_view bytes) { boost::asio::write(socket_, boost::asio::buffer(bytes)); }

  // The next frame other than a heartbeat; nullopt when the connection
  // ends, or when none came within `limit` (the node's heartbeats do not count).
  std::optional<std::pair<net::frame_header, std::string>> next(
      std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (std::chrono::steady_clock::now() > end) return std::nullopt;
      auto f = reader_.next();
      if (!f) return std::nullopt;
      if (*f) {
        // Heartbeats and member lists are the node's own business.
        if ((*f)->header.kind == net::frame_kind::heartbeat ||
            (*f)->header.kind == net::frame_kind::members)
          continue;
        return std::pair{(*f)->header, std::string((*f)->payload)};
      }
      char buf[4096];
      boost::system::error_code ec;
      std::size_t n = socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec) return std::nullopt;
      bytes_read_ += n;
      reader_.feed(buf, n);
    }
  }

  // Runs the dialer's side of the handshake; returns the acceptor's refusal, if any.
  std::string handshake(const std::string& secret, std::uint16_t version = net::protocol_version) {
    net::hello_msg h;
    h.version = version;
    h.cluster = "test";
    h.node = name_;
    std::string p;
    net::encode(h, p);
    send({net::frame_kind::hello, 0, 0, 0, 0}, p);
    auto c = next();
    if (!c) return "closed";
    if (c->first.kind == net::frame_kind::goodbye) return c->second;
    auto ch = net::decode<net::challenge_msg>(c->second).value();
    const std::string nonce = net::make_nonce();
    p.clear();
    net::encode(net::proof_msg{nonce, net::proof_mac(secret, "test", name_, ch.node, ch.nonce)}, p);
    send({net::frame_kind::proof, 0, 0, 0, 0}, p);
    auto w = next();
    if (!w) return "closed";
    if (w->first.kind == net::frame_kind::goodbye) return w->second;
    return {};
  }

  // Reads until the node says goodbye (its reason) or closes ("closed").
  std::string goodbye() {
    while (auto f = next())
      if (f->first.kind == net::frame_kind::goodbye) return f->second;
    return "closed";
  }

  // Bytes received so far.
  std::size_t bytes_read() const noexcept { return bytes_read_; }
  void close() {
    boost::system::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  std::string name_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_{io_};
  net::frame_reader reader_;
  std::size_t bytes_read_ = 0;
};

}  // namespace troupe::test
