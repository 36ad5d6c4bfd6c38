// SPDX-License-Identifier: BSL-1.0
// Cluster links over mutual TLS 1.3: real nodes on 127.0.0.1 with
// certificates from a throwaway CA (tls_certs.hpp), and the peers a TLS
// port must refuse: another CA's certificate, a certificate naming another
// node, no certificate, plaintext.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <troupe/net/node.hpp>

#include "net/bank_actor.hpp"
#include "net/net_support.hpp"
#include "net/tls_certs.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace net = troupe::net;
namespace asio = boost::asio;
using troupe::test::eventually;
using troupe::test::linked;
using troupe_test::bank;

namespace {

// The CA every good node trusts, and certificates naming node-a .. node-c.
struct pki {
  troupe::test::test_ca ca;
  net::tls_options a = ca.issue("node-a", {"node-a"});
  net::tls_options b = ca.issue("node-b", {"node-b", "node-b.example"});
  net::tls_options c = ca.issue("node-c", {}, "node-c");  // named by its CN alone
};

net::node_options tls_node(std::string name, const net::tls_options& tls,
                           std::vector<net::endpoint> seeds = {}) {
  net::node_options o = troupe::test::node_options(std::move(name), std::move(seeds));
  o.tls = tls;
  return o;
}

// node-b with TLS and a published bank; peers come and go around it.
struct tls_server {
  pki& certs;
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  net::node node{rt, tls_node("node-b", certs.b)};
  troupe::actor_ref<bank> the_bank = rt.spawn<bank>();
  explicit tls_server(pki& p) : certs(p) { node.publish(the_bank, "bank"); }
  bool logged(std::string_view what) {
    return eventually([&] { return log.contains(what); });
  }
};

// A node that dials node-b and must link; then a deposit and an ask cross.
void links_and_asks(tls_server& b, const net::tls_options& tls,
                    const std::string& name = "node-c") {
  troupe::test::log_sink log;
  troupe::runtime ra{troupe::test::threaded(log, 1)};
  net::node a{ra, tls_node(name, tls, {{"127.0.0.1", b.node.port()}})};
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));
  auto remote = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(remote);
  CHECK_FALSE(remote->tell(deposit{name, 7}));
  CHECK(ra.ask_sync(*remote, balance{name}, 5s).value() == 7);
}

}  // namespace

TEST_CASE("two nodes link over mutual TLS 1.3 and tells and asks cross it in order",
          "[net][tls][io]") {
  pki certs;
  tls_server b{certs};
  troupe::test::log_sink log_a;
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  net::node a{ra, tls_node("node-a", certs.a, {{"127.0.0.1", b.node.port()}})};
  REQUIRE(eventually([&] { return linked(a, "node-b"); }));
  auto remote = a.remote_sync<bank>("node-b", "bank", 5s);
  REQUIRE(remote);
  CHECK_FALSE(remote->tell(deposit{"alice", 500}));
  CHECK(ra.ask_sync(*remote, balance{"alice"}, 5s).value() == 500);
  // Enough to take many TLS records and writes, in order.
  for (int i = 0; i < 20000; ++i) (void)remote->tell(note{0, i});
  auto got = ra.ask_sync(*remote, get_notes{}, 10s);
  REQUIRE(got);
  REQUIRE(got->seqs.size() == 20000);
  bool in_order = true;
  for (int i = 0; i < 20000 && in_order; ++i) in_order = got->seqs[i] == i;
  CHECK(in_order);
  // Both ends say which protocol carries the link.
  auto st = a.state(5s).value();
  REQUIRE(st.members.size() == 1);
  CHECK(st.members[0].stats.tls.rfind("TLSv1.3 ", 0) == 0);
  auto sb = b.node.state(5s).value();
  REQUIRE(sb.members.size() == 1);
  CHECK(sb.members[0].stats.tls.rfind("TLSv1.3 ", 0) == 0);
  // A certificate that names the node by its CN alone (no DNS entries) does too.
  links_and_asks(b, certs.c, "node-c");
}

TEST_CASE("a peer whose certificate comes from another CA is refused, either way round",
          "[net][tls][io]") {
  pki certs;
  troupe::test::test_ca rogue{"rogue CA"};
  tls_server b{certs};
  SECTION("as the dialer") {
    // Its certificate names node-a, and it trusts the real CA.
    net::tls_options forged = rogue.issue("node-a", {"node-a"}, "node-a", certs.ca.ca_file());
    troupe::test::log_sink log;
    troupe::runtime ra{troupe::test::threaded(log, 1)};
    net::node a{ra, tls_node("node-a", forged, {{"127.0.0.1", b.node.port()}})};
    REQUIRE(b.logged("TLS handshake failed"));
    CHECK(b.log.contains("certificate verify failed"));
    CHECK_FALSE(linked(b.node, "node-a"));
    CHECK_FALSE(linked(a, "node-b"));
  }
  SECTION("as the acceptor") {
    net::tls_options forged = rogue.issue("node-x", {"node-x"}, "node-x", certs.ca.ca_file());
    troupe::test::log_sink log_x, log_a;
    troupe::runtime rx{troupe::test::threaded(log_x, 1)};
    net::node x{rx, tls_node("node-x", forged)};
    troupe::runtime ra{troupe::test::threaded(log_a, 1)};
    net::node a{ra, tls_node("node-a", certs.a, {{"127.0.0.1", x.port()}})};
    REQUIRE(eventually([&] { return log_a.contains("certificate verify failed"); }));
    CHECK_FALSE(linked(a, "node-x"));
  }
  // The node still links with a real peer afterwards.
  links_and_asks(b, certs.c);
}

TEST_CASE("a peer whose certificate names another node than it claims is refused",
          "[net][tls][io]") {
  pki certs;
  tls_server b{certs};
  SECTION("the dialer claims node-a with node-c's certificate") {
    troupe::test::log_sink log;
    troupe::runtime ra{troupe::test::threaded(log, 1)};
    net::node a{ra, tls_node("node-a", certs.c, {{"127.0.0.1", b.node.port()}})};
    REQUIRE(b.logged("the peer's TLS certificate does not name node node-a"));
    CHECK_FALSE(linked(b.node, "node-a"));
    CHECK_FALSE(linked(a, "node-b"));
  }
  SECTION("the acceptor claims node-d with node-a's certificate") {
    troupe::test::log_sink log_d, log_c;
    troupe::runtime rd{troupe::test::threaded(log_d, 1)};
    net::node d{rd, tls_node("node-d", certs.a)};
    troupe::runtime rc{troupe::test::threaded(log_c, 1)};
    net::node c{rc, tls_node("node-c", certs.c, {{"127.0.0.1", d.port()}})};
    REQUIRE(eventually(
        [&] { return log_c.contains("the peer's TLS certificate does not name node node-d"); }));
    CHECK_FALSE(linked(c, "node-d"));
  }
  links_and_asks(b, certs.c);
}

TEST_CASE("a peer without a certificate is refused", "[net][tls][io]") {
  pki certs;
  tls_server b{certs};
  // A TLS client that trusts the CA but has no certificate of its own.
  asio::io_context io;
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  ctx.load_verify_file(certs.ca.ca_file());
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<asio::ip::tcp::socket> s{io, ctx};
  s.next_layer().connect({asio::ip::make_address("127.0.0.1"), b.node.port()});
  boost::system::error_code ec;
  s.handshake(asio::ssl::stream_base::client, ec);  // TLS 1.3: the server judges afterwards
  if (!ec) {
    char c;
    s.read_some(asio::buffer(&c, 1), ec);  // the server's alert, or the close
  }
  CHECK(ec);
  REQUIRE(b.logged("TLS handshake failed"));
  CHECK(b.log.contains("peer did not return a certificate"));
  CHECK(b.node.state(5s).value().members.empty());
  links_and_asks(b, certs.c);
}

TEST_CASE("plaintext to a TLS port is refused and the node stays healthy", "[net][tls][io]") {
  pki certs;
  tls_server b{certs};
  SECTION("a plaintext node") {
    troupe::test::log_sink log;
    troupe::runtime ra{troupe::test::threaded(log, 1)};
    net::node a{ra, troupe::test::node_options("node-a", {{"127.0.0.1", b.node.port()}})};
    REQUIRE(b.logged("TLS handshake failed"));
    CHECK_FALSE(linked(b.node, "node-a"));
    CHECK_FALSE(linked(a, "node-b"));
  }
  SECTION("an HTTP request") {
    asio::io_context io;
    asio::ip::tcp::socket raw{io};
    raw.connect({asio::ip::make_address("127.0.0.1"), b.node.port()});
    asio::write(raw, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
    REQUIRE(b.logged("TLS handshake failed"));
    // The node closed the connection.
    std::string got;
    boost::system::error_code ec;
    for (char buf[256]; !ec;) got.append(buf, raw.read_some(asio::buffer(buf), ec));
    CHECK(got.find("HTTP") == std::string::npos);
    CHECK(b.log.count("TLS handshake failed") == 1);  // one line for the one connection
  }
  // A real TLS peer still links.
  links_and_asks(b, certs.c);
}

TEST_CASE("a TLS node refuses to link with a plaintext one", "[net][tls][io]") {
  pki certs;
  troupe::test::log_sink log_p, log_a;
  troupe::runtime rp{troupe::test::threaded(log_p, 1)};
  net::node plain{rp, troupe::test::node_options("node-p")};
  troupe::runtime ra{troupe::test::threaded(log_a, 1)};
  net::node a{ra, tls_node("node-a", certs.a, {{"127.0.0.1", plain.port()}})};
  REQUIRE(eventually([&] { return log_a.contains("TLS handshake failed"); }));
  CHECK_FALSE(linked(a, "node-p"));
}

TEST_CASE("node options with a partial or unreadable TLS set are refused at construction",
          "[net][tls]") {
  pki certs;
  troupe::test::log_sink log;
  troupe::runtime rt{troupe::test::threaded(log, 1)};
  auto message = [&](net::tls_options t) -> std::string {
    try {
      net::node n{rt, tls_node("node-a", t)};
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  net::tls_options partial = certs.a;
  partial.ca_file.clear();
  CHECK(message(partial).find("all three of --tls-cert, --tls-key and --tls-ca") !=
        std::string::npos);
  net::tls_options missing = certs.a;
  missing.key_file = certs.ca.dir() + "/nope.key";
  CHECK(message(missing).find("--tls-key " + missing.key_file + ": cannot read") !=
        std::string::npos);
  net::tls_options swapped = certs.a;
  swapped.key_file = certs.b.key_file;  // another certificate's key
  CHECK(message(swapped).find("does not match the certificate") != std::string::npos);
  net::tls_options not_pem = certs.a;
  not_pem.cert_file = certs.a.key_file;
  CHECK(message(not_pem).find("--tls-cert " + not_pem.cert_file + ": not a PEM certificate") !=
        std::string::npos);
  CHECK(message(certs.a) == "accepted");
}
