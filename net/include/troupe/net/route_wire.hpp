// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The wire form of routing by key (protocol 3): a routed frame's prefix, the
/// route_context frame, and the per-connection state both refer to. The node
/// (node.cpp) writes and reads them through these functions only, and so do
/// the tests and the `route` fuzz target.
///
/// A routed frame's payload is the prefix, then the message as in a tell
/// frame. The prefix:
///
///     varint (name id << 2 | bind << 1 | hops)   hops 0 or 1, name id 0..1024
///     u8 name length (1..255), name              when bind is set or the id is 0
///     varint key length (1..65535), key
///
/// A sender binds a target name to the next id of the link (1, 2, ...) in the
/// first frame that names it (bind set, the name inline), and names it by
/// that id alone afterwards; past link_route_state::names_max names it writes
/// names inline with id 0. The route epoch and the table digest (its low
/// half; 0 = unknown) are the link's: a route_context frame (varint epoch,
/// u32 digest, little-endian) precedes the first routed frame of a connection
/// and of each new table.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::net {

inline constexpr std::size_t route_key_max = 65535;  ///< longest key a routed message may have
inline constexpr std::size_t route_name_max = 255;   ///< longest target name

/// The node's routing state for one connection (node.cpp, "routing by key"):
/// the route context and target-name ids announced in each direction. It
/// lives in the peer_link and dies with the connection, so a new link starts
/// with none.
struct link_route_state {
  static constexpr std::uint32_t names_max = 1024;  ///< bound names per direction
  // Sent on this link: the route epoch last announced (0: none; a node
  // that routes has an epoch of 1 or more, and its digest changes only with
  // it), the names bound to ids, and the binding used last.
  using binding = std::pair<const std::string, std::uint32_t>;
  std::uint64_t tx_epoch = 0;
  std::map<std::string, std::uint32_t, std::less<>> tx_ids;
  const binding* tx_last = nullptr;
  // Received on this link.
  bool rx_context = false;
  std::uint64_t rx_epoch = 0;
  std::uint32_t rx_digest = 0;
  std::vector<std::string> rx_names;  // id - 1 -> name
};

namespace route_wire {

// --- short byte runs -------------------------------------------------------
// Keys and names are copied and compared without a call to memcpy or memcmp:
// as their first and last sizeof(W) bytes, two loads that may overlap, for
// sizeof(W) <= n <= 2 * sizeof(W).

template <class W>
inline void copy_ends(char* to, const char* from, std::size_t n) noexcept {
  W a, b;
  std::memcpy(&a, from, sizeof(W));
  std::memcpy(&b, from + n - sizeof(W), sizeof(W));
  std::memcpy(to, &a, sizeof(W));
  std::memcpy(to + n - sizeof(W), &b, sizeof(W));
}
template <class W>
inline bool same_ends(const char* x, const char* y, std::size_t n) noexcept {
  W x0, x1, y0, y1;
  std::memcpy(&x0, x, sizeof(W));
  std::memcpy(&x1, x + n - sizeof(W), sizeof(W));
  std::memcpy(&y0, y, sizeof(W));
  std::memcpy(&y1, y + n - sizeof(W), sizeof(W));
  return ((x0 ^ y0) | (x1 ^ y1)) == 0;
}
inline void copy_bytes(char* to, const char* from, std::size_t n) noexcept {
  if (n >= 8 && n <= 16) {
    copy_ends<std::uint64_t>(to, from, n);
  } else if (n >= 4 && n < 8) {
    copy_ends<std::uint32_t>(to, from, n);
  } else if (n < 4) {
    for (std::size_t i = 0; i < n; ++i) to[i] = from[i];
  } else {
    std::memcpy(to, from, n);
  }
}
inline bool same_bytes(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n >= 8 && n <= 16) return same_ends<std::uint64_t>(a.data(), b.data(), n);
  if (n >= 4 && n < 8) return same_ends<std::uint32_t>(a.data(), b.data(), n);
  return a == b;
}

// --- varints (LEB128) --------------------------------------------------------

inline std::size_t varint_bytes(std::uint64_t v) noexcept {
  if (v < 0x80) [[likely]]
    return 1;  // most values, without a bit scan
  return static_cast<std::size_t>((std::bit_width(v) + 6) / 7);
}
/// Writes v at p (varint_bytes(v) bytes); returns the end.
inline char* put_varint(char* p, std::uint64_t v) noexcept {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
/// Reads a value of at most `max_bytes` bytes; false if it runs past `end`,
/// is longer, or overflows 64 bits.
inline bool get_varint(const char*& p, const char* end, std::size_t max_bytes,
                       std::uint64_t& v) noexcept {
  if (p < end && (static_cast<std::uint8_t>(*p) & 0x80) == 0) {  // one byte: most values
    v = static_cast<std::uint8_t>(*p++);
    return max_bytes != 0;
  }
  v = 0;
  for (std::size_t i = 0; i < max_bytes && p < end; ++i) {
    const auto b = static_cast<std::uint8_t>(*p++);
    if (i == 9 && b > 1) return false;
    v |= static_cast<std::uint64_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// --- the routed prefix -------------------------------------------------------

/// The name part of a routed prefix: the target's id on the link (0:
/// inline), whether this frame binds it (the name inline), and (the sender's
/// business) its entry in the link's bindings when that is not the one used
/// last.
struct route_name {
  std::uint32_t id = 0;
  bool bind = false;
  const link_route_state::binding* entry = nullptr;
};

inline std::uint64_t prefix_head(route_name n, std::uint8_t hops) noexcept {
  return (std::uint64_t{n.id} << 2) | (std::uint64_t{n.bind} << 1) | hops;
}
/// The size of the prefix write_prefix() writes.
inline std::size_t prefix_size(route_name n, std::uint8_t hops, std::string_view key,
                               std::string_view name) noexcept {
  return varint_bytes(prefix_head(n, hops)) + (n.bind || n.id == 0 ? 1 + name.size() : 0) +
         varint_bytes(key.size()) + key.size();
}
/// Writes the prefix at p: prefix_size(n, hops, key, name) bytes. The key is
/// 1..route_key_max bytes and the name 1..route_name_max (the node checks
/// both before a message is placed).
inline void write_prefix(char* p, route_name n, std::uint8_t hops, std::string_view key,
                         std::string_view name) noexcept {
  p = put_varint(p, prefix_head(n, hops));
  if (n.bind || n.id == 0) {
    *p++ = static_cast<char>(name.size());
    copy_bytes(p, name.data(), name.size());
    p += name.size();
  }
  p = put_varint(p, key.size());
  copy_bytes(p, key.data(), key.size());
}

/// The sender's side: the name part of a prefix for `name` on a link with
/// state `rs` — the id used last, or one bound before, or (recorded in `rs`)
/// the next id, bound by this frame, or 0 (inline) past names_max or when
/// out of memory. After the frame, sent() or unsent() says whether it went out.
[[gnu::noinline]] inline route_name name_slow(link_route_state& rs,
                                              std::string_view name) noexcept {
  if (auto it = rs.tx_ids.find(name); it != rs.tx_ids.end()) return {it->second, false, &*it};
  if (rs.tx_ids.size() >= link_route_state::names_max) return {};
  const auto id = static_cast<std::uint32_t>(rs.tx_ids.size() + 1);
  try {
    return {id, true, &*rs.tx_ids.emplace(std::string(name), id).first};
  } catch (...) {  // out of memory: the name goes inline
    return {};
  }
}
inline route_name name_for(link_route_state& rs, std::string_view name) noexcept {
  if (rs.tx_last && same_bytes(rs.tx_last->first, name)) return {rs.tx_last->second, false};
  return name_slow(rs, name);
}
/// The frame with the name part `n` went out: its binding is the one used last.
inline void sent(link_route_state& rs, route_name n) noexcept {
  if (n.entry) rs.tx_last = n.entry;
}
/// The frame with the name part `n` did not go out: a binding it made is undone.
inline void unsent(link_route_state& rs, route_name n) noexcept {
  if (n.bind)
    rs.tx_ids.erase(rs.tx_ids.find(n.entry->first));  // found first: the key is the entry's
}

/// A routed frame as read: its prefix's fields and the link's context.
struct routed_view {
  std::uint8_t hops;
  std::uint64_t epoch;
  std::uint32_t digest;
  std::string_view key, name, message;
};

/// Fills `v` from a routed frame's payload and the link's routing state (a
/// name bound by this frame is recorded in `rs`); returns why the frame is
/// malformed (the link closes with it), or null. On an error `rs` is as it
/// was.
inline const char* parse_routed(std::string_view payload, link_route_state& rs,
                                routed_view& v) noexcept {
  constexpr const char* malformed = "malformed routed frame";
  if (!rs.rx_context) return "a routed frame before any route_context frame";
  const char* p = payload.data();
  const char* end = p + payload.size();
  std::uint64_t head = 0;
  if (!get_varint(p, end, 3, head)) return malformed;
  v.hops = static_cast<std::uint8_t>(head & 1);
  const bool bind = (head & 2) != 0;
  const std::uint64_t id = head >> 2;
  if (bind || id == 0) {
    if (bind && id != rs.rx_names.size() + 1) return "a routed frame binds a name id out of order";
    if (bind && id > link_route_state::names_max) return "a routed frame binds too many names";
    if (p == end) return malformed;
    const auto nlen = static_cast<std::uint8_t>(*p++);
    if (nlen == 0 || end - p < nlen) return malformed;
    v.name = std::string_view(p, nlen);
    p += nlen;
  } else {
    if (id > rs.rx_names.size()) return "a routed frame names an unknown name id";
    v.name = rs.rx_names[static_cast<std::size_t>(id - 1)];
  }
  std::uint64_t klen = 0;
  if (!get_varint(p, end, 3, klen) || klen == 0 || klen > route_key_max) return malformed;
  if (static_cast<std::uint64_t>(end - p) < klen) return malformed;
  v.key = std::string_view(p, static_cast<std::size_t>(klen));
  p += klen;
  v.message = std::string_view(p, static_cast<std::size_t>(end - p));
  v.epoch = rs.rx_epoch;
  v.digest = rs.rx_digest;
  if (bind) {
    try {
      rs.rx_names.emplace_back(v.name);
    } catch (...) {
      return "out of memory";
    }
  }
  return nullptr;
}

// --- the route_context frame -------------------------------------------------

inline constexpr std::size_t context_max = 14;  ///< the longest route_context payload

/// Writes a route_context payload at p (at most context_max bytes); returns the end.
inline char* write_context(char* p, std::uint64_t epoch, std::uint32_t digest) noexcept {
  p = put_varint(p, epoch);
  std::memcpy(p, &digest, 4);  // little-endian hosts only (wire.hpp)
  return p + 4;
}
/// Reads a route_context payload into `rs` (the context of the routed frames
/// that follow); false, leaving `rs` as it was, if it is malformed.
inline bool parse_context(std::string_view payload, link_route_state& rs) noexcept {
  const char* p = payload.data();
  const char* end = p + payload.size();
  std::uint64_t epoch = 0;
  if (!get_varint(p, end, 10, epoch) || end - p != 4) return false;
  rs.rx_context = true;
  rs.rx_epoch = epoch;
  std::memcpy(&rs.rx_digest, p, 4);
  return true;
}

}  // namespace route_wire
}  // namespace troupe::net
