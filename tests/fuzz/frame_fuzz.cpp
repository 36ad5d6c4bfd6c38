// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: arbitrary bytes through frame_reader, in chunks whose sizes
// come from the input, and every complete frame's payload through decode().
//
// Input layout: byte 0 configures the run, the rest is the byte stream.
//   bits 0-3  chunk sizes are drawn from [1, 2^bits]
//   bit 4     the reader's max_frame is 256 instead of the 16 MiB default
//   bit 5     bytes arrive through writable()/commit() instead of feed()
//   bits 6-7  vary the chunk size sequence
//
// Besides "no crash, no leak, no hang", it checks properties: a frame handed
// out re-encodes to a frame that parses back identically; a payload that
// decodes re-encodes to one that decodes to the same value; errors are
// frame_errc values; the reader never holds more than one partial frame after
// it has been drained.

#include <algorithm>
#include <cstring>
#include <troupe/core/assert.hpp>
#include <troupe/net/frame.hpp>
#include <troupe/net/wire.hpp>

#include "fuzz_messages.hpp"

namespace {

using namespace troupe::net;

// Reads every bool as a bool, so UBSan sees one that holds neither 0 nor 1
// (copying or comparing it as bytes would not show it).
int touch(const troupe::fuzz::account_update& u) {
  return static_cast<int>(u.urgent) + static_cast<int>(u.flags[0]) + static_cast<int>(u.flags[1]);
}
int touch(const troupe::fuzz::tree&) { return 0; }

template <class M>
void try_decode(std::string_view payload) {
  auto m = decode<M>(payload);
  if (!m) {
    TROUPE_ASSERT(m.error().category() == frame_category(), "decode failed outside frame_errc");
    return;
  }
  TROUPE_ASSERT(touch(*m) >= 0, "unreachable");
  std::string again;
  encode(*m, again);
  // Re-encoding is never longer (map keys given twice collapse into one).
  TROUPE_ASSERT(again.size() <= payload.size(), "re-encoding grew");
  auto back = decode<M>(again);
  TROUPE_ASSERT(back && *back == *m, "decode(encode(m)) != m");
}

void check_frame(const frame_view& f) {
  TROUPE_ASSERT(is_frame_kind(static_cast<std::uint8_t>(f.header.kind)), "bad kind handed out");
  std::string bytes;
  append_frame(bytes, f.header, f.payload);
  frame_reader again;
  again.feed(bytes);
  auto g = again.next();
  TROUPE_ASSERT(g && *g, "a re-encoded frame did not parse");
  TROUPE_ASSERT((*g)->header == f.header && (*g)->payload == f.payload, "frame changed");
  TROUPE_ASSERT(again.buffered() == 0, "re-encoded frame left bytes behind");

  try_decode<troupe::fuzz::account_update>(f.payload);
  try_decode<troupe::fuzz::tree>(f.payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t config = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t chunk_max = std::size_t{1} << (config & 0x0f);
  const bool use_writable = (config & 0x20) != 0;
  frame_reader reader((config & 0x10) != 0 ? 256 : default_max_frame);

  std::uint64_t rng = 0x9E3779B97F4A7C15ull ^ (static_cast<std::uint64_t>(config) << 32) ^ size;
  for (std::size_t at = 0; at < stream.size();) {
    rng ^= rng << 13;  // xorshift64: cheap, deterministic from the input
    rng ^= rng >> 7;
    rng ^= rng << 17;
    const std::size_t n = std::min<std::size_t>(1 + rng % chunk_max, stream.size() - at);
    if (use_writable) {
      std::span<char> room = reader.writable(n);
      TROUPE_ASSERT(room.size() >= n, "writable() gave too little room");
      std::memcpy(room.data(), stream.data() + at, n);
      reader.commit(n);
    } else {
      reader.feed(stream.data() + at, n);
    }
    at += n;

    // Each frame consumes at least 6 bytes, so this loop ends.
    for (;;) {
      auto f = reader.next();
      if (!f) {
        TROUPE_ASSERT(reader.failed() && f.error().category() == frame_category(),
                      "next() failed without a frame error");
        TROUPE_ASSERT(reader.buffered() == 0, "a failed reader kept its buffer");
        break;
      }
      if (!*f) break;
      check_frame(**f);
    }
    // Drained: at most one partial frame is left.
    TROUPE_ASSERT(reader.buffered() < 4 + std::size_t{reader.max_frame()}, "buffer over bound");
  }

  const bool pending = reader.buffered() != 0;
  const bool had_failed = reader.failed();
  auto end = reader.finish();
  TROUPE_ASSERT(static_cast<bool>(end) == (!pending && !had_failed), "finish() disagrees");
  return 0;
}
