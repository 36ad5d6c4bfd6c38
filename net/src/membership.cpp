// SPDX-License-Identifier: BSL-1.0
#include "membership.hpp"

#include <troupe/net/route_wire.hpp>
#include <troupe/net/wire.hpp>

namespace troupe::net::detail {

boost::system::error_code admission(std::string_view self, std::uint64_t self_incarnation,
                                    const peer_identity& who, bool dialer,
                                    const link_situation& have, bool& take_over) noexcept {
  take_over = false;
  if (who.name == self)
    return who.incarnation == self_incarnation ? handshake_errc::self_link
                                               : handshake_errc::duplicate_name;
  if (have.up)
    return who.incarnation == have.up_incarnation ? handshake_errc::duplicate_link
                                                  : handshake_errc::duplicate_name;
  if (have.dialing) {
    // Both nodes dialed: the link dialed by the name that sorts first wins,
    // and both sides reach the same verdict on their own.
    if (dialer) return handshake_errc::duplicate_link;  // a second dial of ours
    if (who.name < self) {
      take_over = true;
      return {};
    }
    return handshake_errc::duplicate_link;
  }
  return {};
}

std::string encode_members(const std::vector<member_wire>& members) {
  std::string out;
  encode(members, out);
  return out;
}

result<std::vector<member_wire>> decode_members(std::string_view payload, std::size_t max) {
  result<std::vector<member_wire>> m = decode<std::vector<member_wire>>(payload);
  if (!m) return m;
  if (m->size() > max) return failure<std::vector<member_wire>>(frame_errc::bad_payload);
  for (const member_wire& w : *m)
    if (w.name.empty() || w.name.size() > route_name_max || w.host.size() > 255 || w.port == 0)
      return failure<std::vector<member_wire>>(frame_errc::bad_payload);
  return m;
}

}  // namespace troupe::net::detail
