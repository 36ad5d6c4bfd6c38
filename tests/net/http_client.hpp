// SPDX-License-Identifier: BSL-1.0
#pragma once
// A blocking HTTP/1.1 client for the gateway tests, on its own io_context.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <string>

namespace troupe::test {

struct reply {
  unsigned status = 0;
  std::string body;
  bool closed = false;                           // the server closed the connection after it
  std::map<std::string, std::string> headers{};  // lower-case names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string{} : it->second;
  }
};

// One connection, reused.
class client {
 public:
  explicit client(unsigned short port) { connect(port); }
  // Every call gives up after `timeout` (a server that stopped answering:
  // the reply reads as closed). Beast's timeouts cover asynchronous
  // operations only, so these calls run as such on the client's io_context.
  client(const std::string& host, unsigned short port, std::chrono::seconds timeout)
      : timeout_(timeout), bounded_(true) {
    connect(port, host);
  }
  void connect(unsigned short port, const std::string& host = "127.0.0.1") {
    namespace asio = boost::asio;
    stream_.connect(asio::ip::tcp::endpoint{asio::ip::make_address(host), port});
  }
  reply call(boost::beast::http::verb v, const std::string& target, const std::string& body = {},
             const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{v, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (auto& [k, val] : headers) req.set(k, val);
    req.body() = body;
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.prepare_payload();
    req.keep_alive(true);
    boost::system::error_code ec;
    if (bounded_) return call_bounded(req);
    http::write(stream_, req, ec);
    if (ec) return reply{0, ec.message(), true};
    return read();
  }
  reply send_raw(const std::string& bytes) {
    boost::asio::write(stream_.socket(), boost::asio::buffer(bytes));
    return read();
  }
  // Reads one response without sending anything (a server that speaks first).
  reply read_only() { return read(); }
  // True when the server closes the connection (read ends) within `limit`.
  bool closed_within(std::chrono::milliseconds limit) {
    stream_.expires_after(limit);
    char c;
    boost::system::error_code ec;
    stream_.socket().read_some(boost::asio::buffer(&c, 1), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }
  void close() {
    boost::system::error_code ec;
    stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  reply read() {
    namespace http = boost::beast::http;
    http::response<http::string_body> res;
    boost::system::error_code ec;
    stream_.expires_after(timeout_);
    http::read(stream_, buf_, res, ec);
    if (ec) return reply{0, ec.message(), true};
    return to_reply(res);
  }
  static reply to_reply(const boost::beast::http::response<boost::beast::http::string_body>& res) {
    reply r{res.result_int(), res.body(), !res.keep_alive()};
    for (const auto& f : res) {
      std::string k(f.name_string());
      for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[k] = std::string(f.value());
    }
    return r;
  }
  std::chrono::seconds timeout_{90};
  template <class Request>
  reply call_bounded(Request& req) {
    namespace http = boost::beast::http;
    http::response<http::string_body> res;
    boost::system::error_code ec;
    stream_.expires_after(timeout_);
    http::async_write(stream_, req, [&](const boost::system::error_code& e, std::size_t) {
      ec = e;
      if (!e)
        http::async_read(stream_, buf_, res,
                         [&](const boost::system::error_code& r, std::size_t) { ec = r; });
    });
    io_.restart();
    io_.run();
    if (ec) return reply{0, ec.message(), true};
    return to_reply(res);
  }
  bool bounded_ = false;
  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_{io_};
  boost::beast::flat_buffer buf_;
};

// The "error" of a JSON error body.
inline std::string error_of(const reply& r) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "<no JSON error body>";
  return std::string(v.as_object().at("error").as_string());
}

// The "code" of a JSON error body.
inline std::string code_of(const reply& r) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("code") ||
      !v.as_object().at("code").is_string())
    return "<no code>";
  return std::string(v.as_object().at("code").as_string());
}

}  // namespace troupe::test
