// SPDX-License-Identifier: BSL-1.0
#pragma once
// Membership's rules, apart from the node actor that applies them (and so
// testable without sockets): which links a node admits, and the member list
// members share so that one seed is enough to join the whole cluster
// (docs/cluster.md).

#include <cstdint>
#include <string>
#include <string_view>
#include <troupe/net/handshake.hpp>
#include <troupe/net/link.hpp>
#include <vector>

namespace troupe::net::detail {

/// One member as a `members` frame carries it: where to dial it, and which
/// life of it the sender is linked to.
struct member_wire {
  std::string name;
  std::uint64_t incarnation = 0;
  std::string host;
  std::uint16_t port = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, incarnation, host, port);
  }
};

/// What this node already has towards the peer a handshake just identified.
struct link_situation {
  bool up = false;                   ///< a link to that name is up
  std::uint64_t up_incarnation = 0;  ///< the incarnation that link was made with
  bool dialing = false;              ///< one of our dialed links to that name is mid-handshake
};

/// The verdict on a link to `who`, made once its identity is known and before
/// the handshake completes (link_listener::admit). Empty: admit it; then
/// `take_over` says the caller must drop its own dialed link that is
/// mid-handshake (two nodes that dialed each other at once keep the
/// connection dialed by the node whose name sorts first, on both sides).
/// Codes: self_link (our own process), duplicate_name (another process with a
/// taken name), duplicate_link (already linked, or about to be).
boost::system::error_code admission(std::string_view self, std::uint64_t self_incarnation,
                                    const peer_identity& who, bool dialer,
                                    const link_situation& have, bool& take_over) noexcept;

/// Encodes a member list for a `members` frame.
std::string encode_members(const std::vector<member_wire>& members);
/// Decodes a `members` frame: at most `max` entries, each with a name of
/// 1..route_name_max bytes, a host of at most 255 bytes and a port; anything
/// else is frame_errc::bad_payload.
result<std::vector<member_wire>> decode_members(std::string_view payload, std::size_t max);

}  // namespace troupe::net::detail
