// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: the wire form of routing by key (route_wire.hpp), the
// part of a routed frame the node reads before any message decoder does.
//
// Byte 0 picks the mode; the rest drives it.
//
// Even: a receiver. Records (op u8, length u16 le, bytes) go to one link's
//   state as route_context payloads (op % 4 == 0) or routed payloads. Checks:
//   a refused payload leaves the state as it was; an accepted one gives a
//   name of 1..255 bytes, a key of 1..route_key_max bytes and the message as
//   the payload's tail, binds at most one name and never more than names_max;
//   and what was read, written again, reads back the same.
//
// Odd: a sender and a receiver in step. Records say which target name and
//   key to route, with which hops, and whether the frame goes out (a frame
//   that does not go out is never read). Checks: every frame that goes out
//   reads back as written, with the link's latest context, each prefix is
//   exactly prefix_size() bytes, and both sides hold the same bindings —
//   past names_max too (one record can route to up to 2047 new names).

#include <cstring>
#include <string>
#include <troupe/core/assert.hpp>
#include <troupe/net/route_wire.hpp>

namespace {

using namespace troupe::net;
namespace rw = troupe::net::route_wire;

struct input {
  const std::uint8_t* p;
  const std::uint8_t* end;
  bool empty() const { return p == end; }
  std::uint8_t u8() { return p < end ? *p++ : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::string_view bytes(std::size_t n) {
    n = std::min<std::size_t>(n, static_cast<std::size_t>(end - p));
    std::string_view s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};

bool same_context(const link_route_state& a, const link_route_state& b) {
  return a.rx_context == b.rx_context && a.rx_epoch == b.rx_epoch && a.rx_digest == b.rx_digest;
}

// A routed payload: the prefix for (n, hops, key, name), then message.
std::string routed(rw::route_name n, std::uint8_t hops, std::string_view key, std::string_view name,
                   std::string_view message) {
  const std::size_t size = rw::prefix_size(n, hops, key, name);
  std::string out(size, '\0');  // exactly the size: ASan sees a write past it
  rw::write_prefix(out.data(), n, hops, key, name);
  out.append(message);
  return out;
}

void receiver(input in) {
  link_route_state rs;
  while (!in.empty()) {
    const std::uint8_t op = in.u8();
    const std::string_view payload = in.bytes(in.u16() % 1024);
    if (op % 4 == 0) {
      const link_route_state before = rs;
      if (!rw::parse_context(payload, rs)) {
        TROUPE_ASSERT(same_context(rs, before), "a refused route_context changed the state");
        continue;
      }
      TROUPE_ASSERT(rs.rx_context, "an accepted route_context left no context");
      char buf[rw::context_max];
      const char* e = rw::write_context(buf, rs.rx_epoch, rs.rx_digest);
      TROUPE_ASSERT(static_cast<std::size_t>(e - buf) <= payload.size(), "context grew");
      link_route_state again;
      TROUPE_ASSERT(rw::parse_context({buf, static_cast<std::size_t>(e - buf)}, again) &&
                        same_context(again, rs),
                    "a route_context written again read differently");
      continue;
    }
    const std::size_t names = rs.rx_names.size();
    const bool had_context = rs.rx_context;
    rw::routed_view v{};
    if (const char* bad = rw::parse_routed(payload, rs, v)) {
      TROUPE_ASSERT(bad[0] != '\0', "an empty reason");
      TROUPE_ASSERT(rs.rx_names.size() == names, "a refused routed frame bound a name");
      continue;
    }
    TROUPE_ASSERT(had_context, "a routed frame read before any route_context");
    TROUPE_ASSERT(!v.name.empty() && v.name.size() <= route_name_max, "name out of range");
    TROUPE_ASSERT(!v.key.empty() && v.key.size() <= route_key_max, "key out of range");
    TROUPE_ASSERT(v.hops <= 1, "hops out of range");
    TROUPE_ASSERT(v.message.data() + v.message.size() == payload.data() + payload.size(),
                  "the message is not the payload's tail");
    TROUPE_ASSERT(v.epoch == rs.rx_epoch && v.digest == rs.rx_digest, "not the link's context");
    TROUPE_ASSERT(rs.rx_names.size() <= link_route_state::names_max, "too many names bound");
    const bool bound = rs.rx_names.size() == names + 1;
    TROUPE_ASSERT(bound || rs.rx_names.size() == names, "more than one name bound");
    TROUPE_ASSERT(!bound || rs.rx_names.back() == v.name, "bound another name");
    // Written again (the name inline, or binding it anew), it reads the same.
    const std::string name(v.name), key(v.key), message(v.message);
    for (const bool bind : {false, true}) {
      link_route_state fresh;
      fresh.rx_context = true;
      const rw::route_name n{bind ? 1u : 0u, bind};
      const std::string bytes = routed(n, v.hops, key, name, message);
      rw::routed_view w{};
      TROUPE_ASSERT(rw::parse_routed(bytes, fresh, w) == nullptr, "written again, refused");
      TROUPE_ASSERT(w.name == name && w.key == key && w.message == message && w.hops == v.hops,
                    "written again, read differently");
    }
  }
}

void pair(input in) {
  link_route_state tx, rx;
  std::uint64_t epoch = 1;
  std::uint32_t digest = 0;
  auto announce = [&] {
    char buf[rw::context_max];
    const char* e = rw::write_context(buf, epoch, digest);
    TROUPE_ASSERT(rw::parse_context({buf, static_cast<std::size_t>(e - buf)}, rx),
                  "a written route_context was refused");
  };
  announce();
  auto send = [&](std::string_view name, std::string_view key, std::uint8_t hops, bool goes_out) {
    const std::size_t bound = tx.tx_ids.size();
    const rw::route_name n = rw::name_for(tx, name);
    TROUPE_ASSERT(n.id <= link_route_state::names_max, "id past names_max");
    TROUPE_ASSERT(!n.bind || (n.id == bound + 1 && tx.tx_ids.size() == bound + 1),
                  "a binding out of order");
    const std::string message = "m:" + std::string(key);
    const std::string bytes = routed(n, hops, key, name, message);
    if (!goes_out) {
      rw::unsent(tx, n);
      TROUPE_ASSERT(tx.tx_ids.size() == bound, "an unsent frame left its binding");
      return;
    }
    rw::sent(tx, n);
    rw::routed_view v{};
    const char* bad = rw::parse_routed(bytes, rx, v);
    TROUPE_ASSERT(bad == nullptr, bad ? bad : "");
    TROUPE_ASSERT(v.name == name && v.key == key && v.hops == hops && v.message == message,
                  "a routed frame read back differently");
    TROUPE_ASSERT(v.epoch == epoch && v.digest == digest, "not the latest context");
  };
  while (!in.empty()) {
    const std::uint8_t op = in.u8();
    switch (op % 8) {
      case 0: {  // a new table
        epoch += 1 + in.u8();
        digest = static_cast<std::uint32_t>(in.u16()) * 0x9E3779B1u;
        announce();
        break;
      }
      case 1: {  // many new names at once
        const std::string_view key = "k";
        const int n = in.u16() % 2048;
        for (int i = 0; i < n; ++i) send("bulk-" + std::to_string(i), key, 0, true);
        break;
      }
      default: {  // one frame: name and key from the input
        std::string name = "t" + std::to_string(in.u8() % 64);
        const std::uint8_t shape = in.u8();
        if (shape & 0x80) name.assign(1 + (shape & 0x7f) + 127, static_cast<char>('a' + op % 26));
        std::string key(in.bytes(in.u8() % 40));
        if (key.empty()) key = "k";
        send(name, key, op & 1, (shape & 0x0f) != 0);
        break;
      }
    }
    TROUPE_ASSERT(tx.tx_ids.size() == rx.rx_names.size(), "sender and receiver bind apart");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  input in{data + 1, data + size};
  if (data[0] % 2 == 0)
    receiver(in);
  else
    pair(in);
  return 0;
}
