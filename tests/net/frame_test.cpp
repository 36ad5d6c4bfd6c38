// SPDX-License-Identifier: BSL-1.0
#include <cstring>
#include <random>
#include <set>
#include <troupe/net/frame.hpp>

#include "support.hpp"

using troupe::net::append_frame;
using troupe::net::frame_errc;
using troupe::net::frame_header;
using troupe::net::frame_header_max;
using troupe::net::frame_header_size;
using troupe::net::frame_kind;
using troupe::net::frame_reader;
using troupe::net::frame_view;

namespace {

frame_header header_for(int i) {
  frame_header h;
  h.kind = static_cast<frame_kind>(1 + i % 13);
  h.type_id = static_cast<std::uint32_t>(0x01020304u * (i + 1));
  h.target = 0x1122334455667788ull + static_cast<std::uint64_t>(i);
  h.sender = ~static_cast<std::uint64_t>(i);
  h.correlation = static_cast<std::uint64_t>(i) << 40;
  return h;
}

std::string payload_for(int i) {
  return std::string(static_cast<std::size_t>(i % 97), char('a' + i % 26));
}

// Drains the reader; fails the test on an error.
std::vector<std::pair<frame_header, std::string>> drain(frame_reader& r) {
  std::vector<std::pair<frame_header, std::string>> out;
  for (;;) {
    auto f = r.next();
    REQUIRE(f);
    if (!*f) return out;
    out.emplace_back((*f)->header, std::string((*f)->payload));
  }
}

// The error next() reports after feeding `bytes` to a fresh reader.
boost::system::error_code error_after(std::string_view bytes, std::uint32_t max_frame = 1024) {
  frame_reader r(max_frame);
  r.feed(bytes);
  auto f = r.next();
  return f ? boost::system::error_code{} : f.error();
}

std::string one_frame(const frame_header& h = header_for(5), std::string_view payload = "hello") {
  std::string s;
  append_frame(s, h, payload);
  return s;
}

}  // namespace

TEST_CASE("every frame kind round-trips through append_frame and frame_reader", "[net][frame]") {
  std::string stream;
  for (int i = 0; i < 13; ++i) append_frame(stream, header_for(i), payload_for(i));
  frame_reader r;
  r.feed(stream);
  auto frames = drain(r);
  REQUIRE(frames.size() == 13);
  for (int i = 0; i < 13; ++i) {
    INFO("frame " << i);
    CHECK(static_cast<int>(frames[i].first.kind) == i + 1);
    CHECK(frames[i].first == header_for(i));
    CHECK(frames[i].second == payload_for(i));
  }
  CHECK(r.buffered() == 0);
  CHECK(r.finish());
}

TEST_CASE("append_frame writes the documented little-endian layout", "[net][frame]") {
  frame_header h{frame_kind::ask, 0x0A0B0C0D, 0x0102030405060708ull, 2, 3};
  std::string s;
  append_frame(s, h, "xy");
  REQUIRE(s.size() == frame_header_max + 2);
  CHECK(s.substr(0, 4) == std::string("\x20\x00\x00\x00", 4));  // 30 + 2
  CHECK(s[4] == 7);                                             // ask
  CHECK(s[5] == 0x0F);                                          // every field present
  CHECK(s.substr(6, 4) == "\x0D\x0C\x0B\x0A");
  CHECK(s.substr(10, 8) == "\x08\x07\x06\x05\x04\x03\x02\x01");
  CHECK(s.substr(18, 8) == std::string("\x02\0\0\0\0\0\0\0", 8));
  CHECK(s.substr(26, 8) == std::string("\x03\0\0\0\0\0\0\0", 8));
  CHECK(s.substr(34) == "xy");
}

TEST_CASE("a header carries only its nonzero fields", "[net][frame]") {
  // A tell: type id and target; 18 header bytes.
  std::string tell;
  append_frame(tell, frame_header{frame_kind::tell, 0x0A0B0C0D, 5, 0, 0}, "xy");
  REQUIRE(tell.size() == 18 + 2);
  CHECK(tell.substr(0, 4) == std::string("\x10\x00\x00\x00", 4));  // 14 + 2
  CHECK(tell[5] == 0x03);
  CHECK(tell.substr(6, 4) == "\x0D\x0C\x0B\x0A");
  CHECK(tell.substr(10, 8) == std::string("\x05\0\0\0\0\0\0\0", 8));
  CHECK(tell.substr(18) == "xy");
  // A reply: the correlation only.
  std::string reply;
  append_frame(reply, frame_header{frame_kind::reply, 0, 0, 0, 9}, "");
  REQUIRE(reply.size() == 14);
  CHECK(reply[5] == 0x08);
  CHECK(reply.substr(6, 8) == std::string("\x09\0\0\0\0\0\0\0", 8));
  // A heartbeat: nothing but length, kind and flags.
  std::string beat;
  append_frame(beat, frame_header{frame_kind::heartbeat, 0, 0, 0, 0}, "");
  CHECK(beat == std::string("\x02\x00\x00\x00\x05\x00", 6));
  // Each reads back as written, absent fields as 0.
  frame_reader r;
  r.feed(tell + reply + beat);
  auto frames = drain(r);
  REQUIRE(frames.size() == 3);
  CHECK(frames[0].first == frame_header{frame_kind::tell, 0x0A0B0C0D, 5, 0, 0});
  CHECK(frames[0].second == "xy");
  CHECK(frames[1].first == frame_header{frame_kind::reply, 0, 0, 0, 9});
  CHECK(frames[2].first == frame_header{frame_kind::heartbeat, 0, 0, 0, 0});
  // Every combination of fields round-trips, and its size is as announced.
  for (unsigned mask = 0; mask < 16; ++mask) {
    INFO(mask);
    frame_header h{frame_kind::ask, (mask & 1) ? 7u : 0u, (mask & 2) ? 8u : 0u,
                   (mask & 4) ? 9u : 0u, (mask & 8) ? 10u : 0u};
    std::string one;
    append_frame(one, h, "p");
    CHECK(one.size() == frame_header_size(h) + 1);
    frame_reader each;
    each.feed(one);
    auto got = drain(each);
    REQUIRE(got.size() == 1);
    CHECK(got[0].first == h);
    CHECK(got[0].second == "p");
  }
}

TEST_CASE("a length shorter than the header its flags announce fails with frame_too_short",
          "[net][frame]") {
  // Flags announce a type id and a target (12 bytes) but the length leaves 4.
  const std::string s("\x06\x00\x00\x00\x06\x03\x01\x02\x03\x04", 10);
  CHECK(error_after(s) == frame_errc::frame_too_short);
  CHECK(error_after(std::string("\x01\x00\x00\x00", 4)) == frame_errc::frame_too_short);
}

TEST_CASE("many frames in one feed are all parsed", "[net][frame]") {
  std::string stream;
  constexpr int count = 5000;
  for (int i = 0; i < count; ++i) append_frame(stream, header_for(i), payload_for(i));
  frame_reader r;
  r.feed(stream);
  auto frames = drain(r);
  REQUIRE(frames.size() == count);
  for (int i = 0; i < count; i += 499) {
    CHECK(frames[i].first == header_for(i));
    CHECK(frames[i].second == payload_for(i));
  }
  CHECK(r.buffered() == 0);
}

TEST_CASE("a frame split byte by byte across feeds is reassembled", "[net][frame]") {
  const std::string frame = one_frame(header_for(7), "split me, please");
  frame_reader r;
  for (std::size_t i = 0; i < frame.size(); ++i) {
    r.feed(frame.data() + i, 1);
    auto f = r.next();
    REQUIRE(f);
    if (i + 1 < frame.size()) {
      REQUIRE_FALSE(*f);
    } else {
      REQUIRE(*f);
      CHECK((*f)->header == header_for(7));
      CHECK((*f)->payload == "split me, please");
    }
  }
  CHECK(r.finish());
}

TEST_CASE("writable and commit feed the reader without an extra copy", "[net][frame]") {
  std::string stream;
  for (int i = 0; i < 50; ++i) append_frame(stream, header_for(i), payload_for(i));
  frame_reader r;
  std::vector<std::pair<frame_header, std::string>> frames;
  for (std::size_t at = 0; at < stream.size();) {
    std::span<char> room = r.writable(64);
    REQUIRE(room.size() == 64);
    const std::size_t n = std::min<std::size_t>(room.size(), stream.size() - at);
    std::memcpy(room.data(), stream.data() + at, n);
    r.commit(n);
    at += n;
    for (auto& f : drain(r)) frames.push_back(std::move(f));
  }
  REQUIRE(frames.size() == 50);
  CHECK(frames[49].first == header_for(49));
  CHECK(frames[49].second == payload_for(49));
}

TEST_CASE("random chunking of a stream yields the same frames", "[net][frame]") {
  std::mt19937_64 rng(troupe::test::seed());
  std::string stream;
  constexpr int count = 300;
  for (int i = 0; i < count; ++i) append_frame(stream, header_for(i), payload_for(i * 7));
  frame_reader r;
  std::vector<std::pair<frame_header, std::string>> frames;
  for (std::size_t at = 0; at < stream.size();) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 300, stream.size() - at);
    r.feed(stream.data() + at, n);
    at += n;
    for (auto& f : drain(r)) frames.push_back(std::move(f));
  }
  REQUIRE(frames.size() == count);
  for (int i = 0; i < count; ++i) {
    CHECK(frames[i].first == header_for(i));
    CHECK(frames[i].second == payload_for(i * 7));
  }
  CHECK(r.finish());
}

TEST_CASE("a length over max_frame fails with frame_too_large before the body is buffered",
          "[net][frame]") {
  frame_reader r(1024);
  // Only the length prefix has arrived: 1025 is refused without waiting for the body.
  r.feed(std::string_view("\x01\x04\x00\x00", 4));
  auto f = r.next();
  REQUIRE_FALSE(f);
  CHECK(f.error() == frame_errc::frame_too_large);
  CHECK(r.failed());
  CHECK(r.buffered() == 0);
  // What follows is dropped, not buffered, and the error is sticky.
  const std::string body(64 * 1024, 'x');
  r.feed(body);
  CHECK(r.buffered() == 0);
  CHECK(r.capacity() == 0);
  auto again = r.next();
  REQUIRE_FALSE(again);
  CHECK(again.error() == frame_errc::frame_too_large);

  // The same with the default 16 MiB limit and a claimed 4 GiB frame.
  CHECK(error_after(std::string_view("\xff\xff\xff\xff", 4), troupe::net::default_max_frame) ==
        frame_errc::frame_too_large);
  // Exactly max_frame is fine.
  frame_reader exact(32 + 10);
  exact.feed(one_frame(header_for(1), "0123456789"));
  auto ok = exact.next();
  REQUIRE(ok);
  CHECK(*ok);
}

TEST_CASE("a length below the header size fails with frame_too_short", "[net][frame]") {
  // Shorter than kind and flags: refused as soon as the length arrives.
  for (std::uint32_t len : {0u, 1u}) {
    INFO(len);
    std::string s(4, '\0');
    s[0] = static_cast<char>(len);
    CHECK(error_after(s) == frame_errc::frame_too_short);
  }
  // Shorter than the fields its flags announce (every one: 30 bytes):
  // refused as soon as the flags byte arrives.
  for (std::uint32_t len : {2u, 29u}) {
    INFO(len);
    std::string s(6, '\0');
    s[0] = static_cast<char>(len);
    s[4] = 6;  // tell
    s[5] = 0x0F;
    CHECK(error_after(s) == frame_errc::frame_too_short);
  }
}

TEST_CASE("an unknown kind fails with bad_kind as soon as the kind byte arrives", "[net][frame]") {
  for (int kind : {0, 18, 200, 255}) {
    INFO(kind);
    std::string s = one_frame();
    s[4] = static_cast<char>(kind);
    CHECK(error_after(s.substr(0, 5)) == frame_errc::bad_kind);
    CHECK(error_after(s) == frame_errc::bad_kind);
  }
}

TEST_CASE("unknown flag bits fail with bad_reserved as soon as the flags byte arrives",
          "[net][frame]") {
  for (int bit = 4; bit < 8; ++bit) {
    INFO(bit);
    std::string s = one_frame();
    s[5] = static_cast<char>(s[5] | (1 << bit));
    CHECK(error_after(s.substr(0, 6)) == frame_errc::bad_reserved);
    CHECK(error_after(s) == frame_errc::bad_reserved);
  }
}

TEST_CASE("finish in the middle of a frame fails with truncated", "[net][frame]") {
  const std::string frame = one_frame();
  for (std::size_t cut : {std::size_t{1}, std::size_t{4}, std::size_t{6}, frame.size() - 1}) {
    INFO(cut);
    frame_reader r;
    r.feed(frame.substr(0, cut));
    auto f = r.next();
    REQUIRE(f);
    CHECK_FALSE(*f);
    auto end = r.finish();
    REQUIRE_FALSE(end);
    CHECK(end.error() == frame_errc::truncated);
    CHECK(r.failed());
  }
  frame_reader clean;
  clean.feed(frame);
  REQUIRE(clean.next());
  CHECK(clean.finish());
}

TEST_CASE("garbage bytes fail with a frame error instead of being buffered", "[net][frame]") {
  // Someone speaking HTTP to the cluster port: "GET " is a 542 MB length.
  CHECK(error_after("GET / HTTP/1.1\r\nHost: x\r\n\r\n", troupe::net::default_max_frame) ==
        frame_errc::frame_too_large);

  // Random bytes: whatever happens, it is an error or a wait bounded by max_frame.
  std::mt19937_64 rng(troupe::test::seed());
  int errors = 0;
  for (int round = 0; round < 500; ++round) {
    std::string junk(1 + rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    frame_reader r(256);
    r.feed(junk);
    for (int i = 0; i < 100; ++i) {
      auto f = r.next();
      if (!f) {
        ++errors;
        break;
      }
      if (!*f) break;
    }
    CHECK(r.buffered() <= junk.size());
  }
  CHECK(errors > 400);
}

TEST_CASE("a reader that failed stays failed", "[net][frame]") {
  frame_reader r;
  std::string bad = one_frame();
  bad[4] = 0;
  r.feed(bad);
  REQUIRE_FALSE(r.next());
  r.feed(one_frame());
  auto f = r.next();
  REQUIRE_FALSE(f);
  CHECK(f.error() == frame_errc::bad_kind);
  CHECK(r.error() == frame_errc::bad_kind);
  auto end = r.finish();
  REQUIRE_FALSE(end);
  CHECK(end.error() == frame_errc::bad_kind);
}

TEST_CASE("frame errors have clear messages in the troupe.frame category", "[net][frame]") {
  std::set<std::string> messages;
  for (int e = 1; e <= static_cast<int>(frame_errc::unknown_type); ++e) {
    boost::system::error_code ec = static_cast<frame_errc>(e);
    CHECK(std::string(ec.category().name()) == "troupe.frame");
    CHECK(ec.message().find("frame") != std::string::npos);
    messages.insert(ec.message());
  }
  CHECK(messages.size() == static_cast<std::size_t>(frame_errc::unknown_type));
  CHECK(troupe::net::frame_kind_name(frame_kind::lookup_reply) == "lookup_reply");
  CHECK(troupe::net::frame_kind_name(frame_kind::route_context) == "route_context");
  CHECK(troupe::net::frame_kind_name(frame_kind::members) == "members");
}

TEST_CASE("end_frame finishes a frame whose payload was appended in place", "[net][frame]") {
  std::string out = "prefix";
  const std::size_t start = troupe::net::begin_frame(out, header_for(3));
  out += "in place";
  REQUIRE(troupe::net::end_frame(out, start));
  frame_reader r;
  r.feed(std::string_view(out).substr(6));
  auto frames = drain(r);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].first == header_for(3));
  CHECK(frames[0].second == "in place");
}

TEST_CASE("end_frame refuses a payload over frame_payload_max and removes the frame",
          "[net][frame]") {
  std::string out = "kept";
  const std::size_t start = troupe::net::begin_frame(out, header_for(3));
  out.append(troupe::net::frame_payload_max + 1, 'x');
  auto r = troupe::net::end_frame(out, start);
  REQUIRE_FALSE(r);
  CHECK(r.error() == frame_errc::frame_too_large);
  CHECK(out == "kept");
}

TEST_CASE("the buffer stays small while a long stream passes through in chunks", "[net][frame]") {
  std::string stream;
  for (int i = 0; i < 20000; ++i) append_frame(stream, header_for(i), payload_for(i));
  frame_reader r;
  std::size_t frames = 0;
  std::size_t capacity_max = 0;
  for (std::size_t at = 0; at < stream.size(); at += 1000) {
    r.feed(std::string_view(stream).substr(at, 1000));
    frames += drain(r).size();
    capacity_max = std::max(capacity_max, r.capacity());
  }
  CHECK(frames == 20000);
  CHECK(capacity_max <= 8192);
}

TEST_CASE("the buffer is given back after an unusually big frame", "[net][frame]") {
  frame_reader r;
  r.feed(one_frame(header_for(1), std::string(4u << 20, 'b')));
  auto big = r.next();
  REQUIRE(big);
  REQUIRE(*big);
  CHECK((*big)->payload.size() == 4u << 20);
  CHECK(r.capacity() >= 4u << 20);
  r.feed(one_frame());
  CHECK(r.capacity() <= 8192);
  auto small = r.next();
  REQUIRE(small);
  REQUIRE(*small);
  CHECK((*small)->payload == "hello");
}
