// SPDX-License-Identifier: BSL-1.0
#include <troupe/net/handshake.hpp>
#include <troupe/net/wire.hpp>

#include "membership.hpp"
#include "support.hpp"

using namespace troupe::net;

TEST_CASE("HMAC-SHA256 matches the RFC 4231 test vector", "[net][handshake]") {
  // RFC 4231, test case 2.
  auto mac = hmac_sha256("Jefe", "what do ya want for nothing?");
  static const unsigned char expected[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                             0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                             0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                             0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  CHECK(std::equal(mac.begin(), mac.end(), expected));
}

TEST_CASE("a proof verifies only with the same secret, nonce and names", "[net][handshake]") {
  const std::string nonce = make_nonce();
  const std::string good = proof_mac("s3cret", "prod", "node-a", "node-b", nonce);
  CHECK(mac_equal(good, proof_mac("s3cret", "prod", "node-a", "node-b", nonce)));
  CHECK_FALSE(mac_equal(good, proof_mac("other", "prod", "node-a", "node-b", nonce)));
  CHECK_FALSE(mac_equal(good, proof_mac("s3cret", "test", "node-a", "node-b", nonce)));
  CHECK_FALSE(mac_equal(good, proof_mac("s3cret", "prod", "node-x", "node-b", nonce)));
  CHECK_FALSE(mac_equal(good, proof_mac("s3cret", "prod", "node-a", "node-b", make_nonce())));
  // The two directions never produce the same MAC, so a proof cannot be reflected.
  CHECK_FALSE(mac_equal(good, welcome_mac("s3cret", "prod", "node-a", "node-b", nonce)));
}

TEST_CASE("nonces are fresh 32-byte values", "[net][handshake]") {
  auto a = make_nonce();
  auto b = make_nonce();
  CHECK(a.size() == 32);
  CHECK(a != b);
}

TEST_CASE("a hello from another cluster, version or protocol is refused with its reason",
          "[net][handshake]") {
  hello_msg h;
  h.cluster = "prod";
  h.node = "a";
  CHECK_FALSE(check_hello(h, "prod"));
  CHECK(check_hello(h, "test") == handshake_errc::cluster_mismatch);
  hello_msg v = h;
  v.version = protocol_version + 1;
  CHECK(check_hello(v, "prod") == handshake_errc::version_mismatch);
  hello_msg m = h;
  m.magic = 0x50545448;  // "HTTP"
  CHECK(check_hello(m, "prod") == handshake_errc::bad_magic);
  CHECK(troupe::net::make_error_code(handshake_errc::bad_proof).message() ==
        "cluster secret mismatch (bad proof)");
}

TEST_CASE("a hello of an older layout is refused by its version, not as malformed",
          "[net][handshake]") {
  // Version 3's hello: magic, version, cluster, node (no incarnation, no address).
  std::string old;
  troupe::net::encode(handshake_magic, old);
  troupe::net::encode(std::uint16_t{3}, old);
  troupe::net::encode(std::string("prod"), old);
  troupe::net::encode(std::string("node-a"), old);
  auto h = decode_hello(old);
  REQUIRE(h);
  CHECK(check_hello(*h, "prod") == handshake_errc::version_mismatch);
  // This version's hello round-trips whole; garbage is malformed.
  std::string now;
  troupe::net::encode(hello_msg{handshake_magic, protocol_version, "prod", "n", 42, "", 7000}, now);
  auto n = decode_hello(now);
  REQUIRE(n);
  CHECK(n->incarnation == 42);
  CHECK(n->listen_port == 7000);
  CHECK_FALSE(decode_hello("xy"));
}

TEST_CASE("a refusal's text read back from a goodbye keeps its code", "[net][handshake]") {
  const boost::system::error_code self = handshake_errc::self_link;
  CHECK(refusal_code("handshake refused: " + self.message()) == handshake_errc::self_link);
  const boost::system::error_code leaving = handshake_errc::leaving;
  CHECK(refusal_code(leaving.message() + " (n1)") == handshake_errc::leaving);
  CHECK_FALSE(refusal_code("peer closed the connection"));
}

TEST_CASE("admission: no link to itself, one live process per name, one link per pair",
          "[net][handshake][membership]") {
  using troupe::net::detail::admission;
  using troupe::net::detail::link_situation;
  bool take = false;
  const peer_identity b{"b", 2, {"127.0.0.1", 7001}};
  // The node itself, or another process with its name.
  CHECK(admission("b", 2, b, true, {}, take) == handshake_errc::self_link);
  CHECK(admission("b", 3, b, false, {}, take) == handshake_errc::duplicate_name);
  // Already linked: the same life is a second connection, another life a second process.
  CHECK(admission("a", 1, b, false, link_situation{true, 2, false}, take) ==
        handshake_errc::duplicate_link);
  CHECK(admission("a", 1, b, false, link_situation{true, 9, false}, take) ==
        handshake_errc::duplicate_name);
  // Both dialed at once: both sides keep the connection dialed by "a".
  CHECK(admission("b", 2, peer_identity{"a", 1, {}}, false, link_situation{false, 0, true}, take) ==
        boost::system::error_code{});
  CHECK(take);
  CHECK(admission("a", 1, b, false, link_situation{false, 0, true}, take) ==
        handshake_errc::duplicate_link);
  CHECK_FALSE(take);
  CHECK(admission("a", 1, b, true, link_situation{false, 0, true}, take) ==
        handshake_errc::duplicate_link);
  CHECK(admission("a", 1, b, true, {}, take) == boost::system::error_code{});
}

TEST_CASE("a members frame is decoded within its bounds", "[net][handshake][membership]") {
  using troupe::net::detail::member_wire;
  const std::vector<member_wire> two{{"a", 1, "127.0.0.1", 7000}, {"b", 2, "10.0.0.2", 7001}};
  auto back = troupe::net::detail::decode_members(troupe::net::detail::encode_members(two), 8);
  REQUIRE(back);
  REQUIRE(back->size() == 2);
  CHECK((*back)[1].host == "10.0.0.2");
  CHECK_FALSE(troupe::net::detail::decode_members(troupe::net::detail::encode_members(two), 1));
  CHECK_FALSE(troupe::net::detail::decode_members(
      troupe::net::detail::encode_members({{"", 1, "h", 1}}), 8));
  CHECK_FALSE(troupe::net::detail::decode_members(
      troupe::net::detail::encode_members({{"a", 1, "h", 0}}), 8));
  CHECK_FALSE(troupe::net::detail::decode_members("\x05garbage", 8));
}
