// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The node handshake: who a peer is, and proof that it holds the cluster
/// secret, before any message is accepted from it.
///
///   dialer                                   acceptor
///   hello {magic, version, cluster, name} -->
///                                         <-- challenge {name, nonce_a}
///   proof {nonce_b, HMAC(secret, "troupe-proof" | cluster | dialer | acceptor | nonce_a)} -->
///                                         <-- welcome {HMAC(secret, "troupe-welcome" | cluster |
///                                         acceptor | dialer | nonce_b)}
///
/// Each side proves the secret over a fresh nonce chosen by the other, so a
/// recorded exchange cannot be replayed, and the secret never crosses the
/// wire. A mismatch at any step ends the link with one clear reason on both
/// sides (a goodbye frame carries it to the peer). HMAC-SHA256 is OpenSSL's.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <troupe/core/error.hpp>

namespace troupe::net {

/// "TRPE" — the first bytes of every hello.
constexpr std::uint32_t handshake_magic = 0x45505254u;
/// Bumped whenever the wire format changes incompatibly (2: headers carry
/// only their nonzero fields; 3: routed frames take their epoch and digest
/// from the link's route_context frame and name their target by a per-link
/// id; 4: the hello and the challenge carry the node's incarnation and the
/// address it listens on, and a `members` frame shares the member list). A
/// hello's first six bytes (length, kind, flags = 0) and its
/// payload's place stay as they are in every version, so a node can always
/// read another version's hello and refuse it by number.
constexpr std::uint16_t protocol_version = 4;

/// Who a node is beyond its name: the incarnation tells a restarted process
/// from its past life (and from a second process claiming the name), the
/// listen address is where other members dial it. An empty or wildcard
/// listen host means "the address you see me at".
struct hello_msg {
  std::uint32_t magic = handshake_magic;
  std::uint16_t version = protocol_version;
  std::string cluster;
  std::string node;
  std::uint64_t incarnation = 0;
  std::string listen_host;
  std::uint16_t listen_port = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(magic, version, cluster, node, incarnation, listen_host, listen_port);
  }
};

/// Decodes a hello of any version: a hello of another version keeps only
/// its magic and version (its other fields may be laid out differently), so
/// check_hello refuses it by number rather than as malformed.
result<hello_msg> decode_hello(std::string_view payload);

struct challenge_msg {
  std::string node;   // the acceptor's name
  std::string nonce;  // 32 random bytes
  std::uint64_t incarnation = 0;
  std::string listen_host;
  std::uint16_t listen_port = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(node, nonce, incarnation, listen_host, listen_port);
  }
};

struct proof_msg {
  std::string nonce;  // the dialer's 32 random bytes
  std::string mac;    // 32 bytes
  template <class Archive>
  void serialize(Archive& ar) {
    ar(nonce, mac);
  }
};

struct welcome_msg {
  std::string mac;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(mac);
  }
};

/// Why a handshake was refused, or a link ended by membership's rules; each
/// has a one-line message, carried to the peer in the goodbye.
enum class handshake_errc {
  bad_magic = 1,
  version_mismatch,
  cluster_mismatch,
  bad_proof,
  duplicate_name,  ///< another live process already holds that name here
  not_loopback,
  self_link,       ///< the peer is this very process (its address is among its seeds)
  duplicate_link,  ///< the two nodes are (about to be) linked by another connection
  leaving,         ///< the peer is shutting down
};

/// The handshake_errc whose message `reason` starts with (after an optional
/// "handshake refused: "), so a refusal the peer sent in a goodbye keeps its
/// meaning; an empty code for any other text.
boost::system::error_code refusal_code(std::string_view reason) noexcept;
const boost::system::error_category& handshake_category() noexcept;
inline boost::system::error_code make_error_code(handshake_errc e) noexcept {
  return {static_cast<int>(e), handshake_category()};
}

/// HMAC-SHA256 of data under key.
std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data);
/// 32 bytes from OpenSSL's CSPRNG.
std::string make_nonce();

/// The dialer's proof over the acceptor's nonce.
std::string proof_mac(std::string_view secret, std::string_view cluster, std::string_view dialer,
                      std::string_view acceptor, std::string_view acceptor_nonce);
/// The acceptor's proof over the dialer's nonce.
std::string welcome_mac(std::string_view secret, std::string_view cluster,
                        std::string_view acceptor, std::string_view dialer,
                        std::string_view dialer_nonce);
/// Compares two MACs in constant time.
bool mac_equal(std::string_view a, std::string_view b) noexcept;

/// Checks a hello against this node's cluster: magic, version, cluster name.
boost::system::error_code check_hello(const hello_msg& h, std::string_view cluster) noexcept;

}  // namespace troupe::net

template <>
struct boost::system::is_error_code_enum<troupe::net::handshake_errc> : std::true_type {};
