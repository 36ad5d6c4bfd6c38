// SPDX-License-Identifier: BSL-1.0
#include <troupe/net/handshake.hpp>

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
