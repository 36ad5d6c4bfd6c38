// SPDX-License-Identifier: BSL-1.0
// HTTPS on the gateway (in-process, a Beast client over TLS, and curl) and
// troupe-node's TLS flags (a child process).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <troupe/net/http.hpp>

#include "net/net_support.hpp"
#include "net/node_process.hpp"
#include "net/tls_certs.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using troupe::task;
namespace net = troupe::net;
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// One GET over HTTPS, verifying the server's certificate against `ca` and
// its name against `host`. Status 0 and the error's text when it fails.
std::pair<unsigned, std::string> https_get(unsigned short port, const std::string& ca,
                                           const std::string& host, const std::string& target) {
  asio::io_context io;
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  ctx.load_verify_file(ca);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  ctx.set_verify_callback(asio::ssl::host_name_verification(host));
  asio::ssl::stream<beast::tcp_stream> s{io, ctx};
  beast::get_lowest_layer(s).expires_after(10s);
  boost::system::error_code ec;
  beast::get_lowest_layer(s).connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  if (!ec) s.handshake(asio::ssl::stream_base::client, ec);
  if (ec) return {0, ec.message()};
  http::request<http::string_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  http::write(s, req, ec);
  if (ec) return {0, ec.message()};
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res, ec);
  if (ec) return {0, ec.message()};
  return {res.result_int(), res.body()};
}

// Plain HTTP to `port`: what comes back before the server closes ("" if nothing).
std::string plain_get(unsigned short port) {
  asio::io_context io;
  asio::ip::tcp::socket s{io};
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(s, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string got;
  boost::system::error_code ec;
  for (char buf[256]; !ec;) got.append(buf, s.read_some(asio::buffer(buf), ec));
  return got;
}

bool have_curl() { return ::system("command -v curl >/dev/null 2>&1") == 0; }

// curl's output (status code last) for an HTTPS URL on host `name` at 127.0.0.1:port.
std::string curl_https(const std::string& ca, const std::string& name, unsigned short port,
                       const std::string& path) {
  const std::string p = std::to_string(port);
  const std::string cmd = "curl -s -w ' %{http_code}' --cacert " + ca + " --resolve " + name + ":" +
                          p + ":127.0.0.1 https://" + name + ":" + p + path + " 2>&1";
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  REQUIRE(f);
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  ::pclose(f);
  return out;
}

}  // namespace

TEST_CASE("the gateway serves HTTPS with the node's certificate and refuses plain HTTP",
          "[http][tls]") {
  troupe::test::test_ca ca;
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 2)};
  net::http_options o;
  o.listen = {"127.0.0.1", 0};
  o.tls = ca.issue("node-a", {"node-a"});
  net::http_gateway gw{rt, o};
  gw.route(http::verb::get, "/api/v1/echo/{word}",
           [](net::http_request& r) -> task<net::http_response> {
             co_return net::json_reply(json::object{{"word", r.param("word")}});
           });
  gw.start();

  auto [status, body] = https_get(gw.port(), ca.ca_file(), "node-a", "/api/v1/echo/hi");
  CHECK(status == 200);
  CHECK(body == R"({"word":"hi"})");

  // Plain HTTP gets no HTTP answer: the connection fails its TLS handshake and closes.
  CHECK(plain_get(gw.port()).find("HTTP/1.1") == std::string::npos);
  REQUIRE(troupe::test::eventually([&] { return gw.stats().tls_refused == 1; }));
  CHECK(log.count("TLS handshake failed") == 1);

  // A client that trusts another CA refuses the gateway, and the gateway keeps serving.
  troupe::test::test_ca other{"another CA"};
  auto [bad_status, why] = https_get(gw.port(), other.ca_file(), "node-a", "/api/v1/echo/x");
  CHECK(bad_status == 0);
  CHECK(why.find("certificate verify failed") != std::string::npos);
  CHECK(https_get(gw.port(), ca.ca_file(), "node-a", "/api/v1/echo/again").first == 200);
  if (have_curl()) {
    CHECK(curl_https(ca.ca_file(), "node-a", gw.port(), "/api/v1/echo/curl") ==
          R"({"word":"curl"} 200)");
  }
}

// --- troupe-node's TLS flags ------------------------------------------------------------

using troupe::test::node_process;

TEST_CASE("troupe-node refuses a partial or unusable TLS set with one line", "[http][tls][node]") {
  troupe::test::test_ca ca;
  const net::tls_options a = ca.issue("node-a", {"node-a"});
  const net::tls_options b = ca.issue("node-b", {"node-b"});
  auto start = [](std::vector<std::string> tls) {
    std::vector<std::string> args{"--name",      "node-a", "--listen",
                                  "127.0.0.1:0", "--http", "127.0.0.1:0"};
    args.insert(args.end(), tls.begin(), tls.end());
    return args;
  };
  SECTION("a certificate without key and CA") {
    node_process p{start({"--tls-cert", a.cert_file})};
    const std::string l = p.line();
    CHECK(l.rfind("troupe-node: ", 0) == 0);
    CHECK(l.find("all three of --tls-cert, --tls-key and --tls-ca") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("key and CA without a certificate") {
    node_process p{start({"--tls-key", a.key_file, "--tls-ca", a.ca_file})};
    CHECK(p.line().find("all three") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("an unreadable CA file") {
    node_process p{start(
        {"--tls-cert", a.cert_file, "--tls-key", a.key_file, "--tls-ca", "/nonexistent/ca.crt"})};
    CHECK(p.line().find("--tls-ca /nonexistent/ca.crt: cannot read") != std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("a key that is not the certificate's") {
    node_process p{
        start({"--tls-cert", a.cert_file, "--tls-key", b.key_file, "--tls-ca", a.ca_file})};
    CHECK(p.line().find("--tls-key " + b.key_file + ": does not match the certificate") !=
          std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
  SECTION("a CA file that is not a certificate") {
    node_process p{
        start({"--tls-cert", a.cert_file, "--tls-key", a.key_file, "--tls-ca", a.key_file})};
    CHECK(p.line().find("--tls-ca " + a.key_file + ": not a PEM CA certificate") !=
          std::string::npos);
    CHECK(p.wait_exit() == 2);
  }
}

TEST_CASE("troupe-node with TLS flags serves HTTPS", "[http][tls][node]") {
  troupe::test::test_ca ca;
  const net::tls_options a = ca.issue("node-a", {"node-a"});
  node_process p{{"--name", "node-a", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                  "--tls-cert", a.cert_file, "--tls-key", a.key_file, "--tls-ca", a.ca_file}};
  std::string l, said;  // log lines may come first
  for (int i = 0; i < 20 && l.find("http 127.0.0.1:") == std::string::npos; ++i)
    said += (l = p.line()) + "\n";
  INFO("troupe-node said:\n" << said);
  const auto at = l.find("http 127.0.0.1:");
  REQUIRE(at != std::string::npos);
  const auto port = static_cast<unsigned short>(std::stoi(l.substr(at + 15)));
  CHECK(https_get(port, ca.ca_file(), "node-a", "/healthz").first == 200);
  CHECK(plain_get(port).find("HTTP/1.1") == std::string::npos);
  auto [status, metrics] = https_get(port, ca.ca_file(), "node-a", "/metrics");
  CHECK(status == 200);
  CHECK(metrics.find("troupe_http_tls_refused_total 1") != std::string::npos);
  if (have_curl())
    CHECK(curl_https(ca.ca_file(), "node-a", port, "/healthz").find(" 200") != std::string::npos);
}
