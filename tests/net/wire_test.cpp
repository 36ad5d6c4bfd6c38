// SPDX-License-Identifier: BSL-1.0
#include <bit>
#include <cereal/types/base_class.hpp>
#include <limits>
#include <random>
#include <troupe/net/wire.hpp>

#include "support.hpp"

using troupe::net::decode;
using troupe::net::encode;
using troupe::net::frame_errc;

namespace wire_test {

enum class color : std::uint8_t { red = 1, green = 2 };

struct inner {
  std::int8_t a = 0;
  std::uint16_t b = 0;
  std::int32_t c = 0;
  std::uint64_t d = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(a, b, c, d);
  }
  friend bool operator==(const inner&, const inner&) = default;
};

struct everything {
  bool flag = false;
  std::int8_t i8 = 0;
  std::uint8_t u8 = 0;
  std::int16_t i16 = 0;
  std::uint16_t u16 = 0;
  std::int32_t i32 = 0;
  std::uint32_t u32 = 0;
  std::int64_t i64 = 0;
  std::uint64_t u64 = 0;
  float f = 0;
  double d = 0;
  color hue = color::red;
  std::string name;
  std::vector<std::int32_t> numbers;
  std::vector<std::string> words;
  std::vector<bool> bits;
  std::map<std::string, std::int64_t> balances;
  std::unordered_map<std::uint32_t, std::string> names;
  std::set<std::int16_t> seen;
  std::optional<inner> maybe;
  std::optional<inner> nothing;
  std::vector<inner> inners;
  std::array<std::uint16_t, 3> triple{};
  std::array<bool, 2> pair_of_bits{};
  std::variant<std::int32_t, std::string> either;
  std::pair<std::int32_t, std::string> tagged;
  std::tuple<std::uint8_t, std::int64_t> tuple;
  std::chrono::milliseconds ttl{0};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(flag, i8, u8, i16, u16, i32, u32, i64, u64, f, d, hue, name, numbers, words, bits, balances,
       names, seen, maybe, nothing, inners, triple, pair_of_bits, either, tagged, tuple, ttl);
  }
  friend bool operator==(const everything&, const everything&) = default;
};

struct tree {
  std::string label;
  std::vector<tree> children;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, children);
  }
  friend bool operator==(const tree&, const tree&) = default;
};

struct ping {};

// A type with a class version: cereal writes (and reads) the version once per
// archive and type, so every payload must have an archive of its own.
struct versioned {
  std::uint32_t x = 0;
  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t version) {
    ar(x);
    if (version >= 3) x_seen_version = version;
  }
  std::uint32_t x_seen_version = 0;
};

// Encodes a value of its own while it is being encoded.
struct nesting {
  std::string inner_bytes;
  std::uint8_t tail = 0;
  template <class Archive>
  void save(Archive& ar) const {
    std::string nested;
    encode(std::uint16_t{0x0102}, nested);
    ar(nested, tail);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(inner_bytes, tail);
    auto v = decode<std::uint16_t>(inner_bytes);
    if (!v || *v != 0x0102) throw std::runtime_error("nested payload");
  }
};

// Records the largest single allocation, to prove hostile sizes allocate nothing big.
inline std::size_t largest_allocation = 0;
template <class T>
struct counting_allocator {
  using value_type = T;
  counting_allocator() = default;
  template <class U>
  counting_allocator(const counting_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    largest_allocation = std::max(largest_allocation, n * sizeof(T));
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
  friend bool operator==(const counting_allocator&, const counting_allocator&) = default;
};
using counted_string = std::basic_string<char, std::char_traits<char>, counting_allocator<char>>;
template <class T>
using counted_vector = std::vector<T, counting_allocator<T>>;

struct counted {
  counted_string text;
  counted_vector<counted_string> lines;
  counted_vector<std::uint64_t> numbers;
  std::map<counted_string, counted_string, std::less<>,
           counting_allocator<std::pair<const counted_string, counted_string>>>
      table;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text, lines, numbers, table);
  }
};

// sizeof 4 KiB but one byte on the wire: a claimed count costs a lot if trusted.
struct wide {
  bool x = false;
  char padding[4095] = {};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
};

everything sample() {
  everything e;
  e.flag = true;
  e.i8 = std::numeric_limits<std::int8_t>::min();
  e.u8 = std::numeric_limits<std::uint8_t>::max();
  e.i16 = std::numeric_limits<std::int16_t>::min();
  e.u16 = std::numeric_limits<std::uint16_t>::max();
  e.i32 = std::numeric_limits<std::int32_t>::min();
  e.u32 = std::numeric_limits<std::uint32_t>::max();
  e.i64 = std::numeric_limits<std::int64_t>::min();
  e.u64 = std::numeric_limits<std::uint64_t>::max();
  e.f = 1.5f;
  e.d = -2.25e300;
  e.hue = color::green;
  e.name = std::string("alice\0bob", 9);
  e.numbers = {1, -2, 3, std::numeric_limits<std::int32_t>::max()};
  e.words = {"", "one", std::string(300, 'w')};
  e.bits = {true, false, true, true};
  e.balances = {{"alice", 500}, {"bob", -7}};
  e.names = {{1, "one"}, {0xFFFFFFFF, "max"}};
  e.seen = {-1, 0, 1};
  e.maybe = inner{-3, 65535, -70000, 1ull << 63};
  e.inners = {inner{1, 2, 3, 4}, inner{}};
  e.triple = {1, 2, 65535};
  e.pair_of_bits = {false, true};
  e.either = std::string("right");
  e.tagged = {42, "answer"};
  e.tuple = {7, -8};
  e.ttl = std::chrono::milliseconds(1234);
  return e;
}

tree make_tree(int depth) {
  tree t{"level " + std::to_string(depth), {}};
  if (depth > 0) {
    t.children.push_back(make_tree(depth - 1));
    t.children.push_back(tree{"leaf", {}});
  }
  return t;
}

std::string u32le(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

template <class T>
std::string encoded(const T& v) {
  std::string s;
  encode(v, s);
  return s;
}

}  // namespace wire_test

TROUPE_WIRE_MESSAGE(wire_test::everything, 100);
TROUPE_WIRE_MESSAGE(wire_test::tree, 101);
TROUPE_WIRE_MESSAGE(wire_test::ping, 0xFFFEFFFF);
CEREAL_CLASS_VERSION(wire_test::versioned, 3);

using namespace wire_test;

TEST_CASE("a struct with every supported kind of field round-trips", "[net][wire]") {
  const everything e = sample();
  auto back = decode<everything>(encoded(e));
  REQUIRE(back);
  CHECK(*back == e);
  auto empty = decode<everything>(encoded(everything{}));
  REQUIRE(empty);
  CHECK(*empty == everything{});
}

TEST_CASE("integers of each width keep their extreme values", "[net][wire]") {
  auto check = [](auto v) {
    using T = decltype(v);
    auto back = decode<T>(encoded(v));
    REQUIRE(back);
    CHECK(*back == v);
    CHECK(encoded(v).size() == sizeof(T));
  };
  check(std::numeric_limits<std::int8_t>::min());
  check(std::numeric_limits<std::uint8_t>::max());
  check(std::numeric_limits<std::int16_t>::min());
  check(std::numeric_limits<std::uint16_t>::max());
  check(std::numeric_limits<std::int32_t>::min());
  check(std::numeric_limits<std::uint32_t>::max());
  check(std::numeric_limits<std::int64_t>::min());
  check(std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("payloads are little-endian with u32 size tags", "[net][wire]") {
  CHECK(encoded(std::uint32_t{0x01020304}) == "\x04\x03\x02\x01");
  CHECK(encoded(std::string("ab")) == std::string("\x02\x00\x00\x00"
                                                  "ab",
                                                  6));
  CHECK(encoded(true) == "\x01");
  CHECK(encoded(std::vector<std::uint16_t>{0x0102}) == std::string("\x01\x00\x00\x00\x02\x01", 6));
}

TEST_CASE("nested and recursive structs round-trip", "[net][wire]") {
  const tree t = make_tree(20);
  auto back = decode<tree>(encoded(t));
  REQUIRE(back);
  CHECK(*back == t);
}

TEST_CASE("encode appends to what the string already holds", "[net][wire]") {
  std::string out = "head";
  encode(std::uint8_t{9}, out);
  encode(std::string("x"), out);
  CHECK(out == std::string("head\x09\x01\x00\x00\x00x", 10));
}

TEST_CASE("every payload is written and read as by an archive of its own", "[net][wire]") {
  // The thread's archive is reused between payloads; a class version (written
  // once per archive) must still appear in every payload.
  const std::string v1 = encoded(versioned{7});
  const std::string v2 = encoded(versioned{7});
  CHECK(v1 == u32le(3) + u32le(7));
  CHECK(v2 == v1);
  for (int i = 0; i < 3; ++i) {
    auto back = decode<versioned>(v1);
    REQUIRE(back);
    CHECK(back->x == 7);
    CHECK(back->x_seen_version == 3);
  }
  // After a failed decode the next one starts clean.
  CHECK(decode<everything>(std::string("\x01", 1)).error() == frame_errc::bad_payload);
  CHECK(decode<std::uint32_t>(u32le(5)).value() == 5);
  CHECK(decode<std::uint32_t>(u32le(5) + "x").error() == frame_errc::trailing_bytes);
  CHECK(decode<std::uint32_t>(u32le(6)).value() == 6);
  // Encoding and decoding from inside a serialize function.
  const std::string n = encoded(nesting{{}, 9});
  CHECK(n == u32le(2) + std::string("\x02\x01\x09", 3));
  auto back = decode<nesting>(n);
  REQUIRE(back);
  CHECK(back->tail == 9);
}

namespace wire_test {
// Shapes the direct encoder handles itself or hands to cereal, mixed.
struct base_part {
  std::int32_t id = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id);
  }
};
struct derived : base_part {
  std::string note;
  std::vector<versioned> history;
  versioned a, b;
  std::vector<color> hues;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::base_class<base_part>(this), CEREAL_NVP(note), history, a, b, hues,
       cereal::make_size_tag(static_cast<cereal::size_type>(2)),
       cereal::binary_data(note.data(), 2));
  }
};
}  // namespace wire_test

TEST_CASE("the direct encoder writes the bytes cereal's archive writes", "[net][wire]") {
  auto same = [](const auto& v) {
    std::string direct, reference;
    encode(v, direct);
    troupe::net::encode_with_cereal(v, reference);
    CHECK(direct == reference);
    return direct;
  };
  same(sample());
  same(everything{});
  same(tree{"root", {tree{"a", {}}, tree{"b", {tree{"c", {}}}}}});
  same(inner{1, 2, 3, 4});
  same(std::vector<inner>{{1, 2, 3, 4}, {5, 6, 7, 8}});
  same(std::string("text"));
  same(std::vector<std::string>{"x", "", "yz"});
  same(std::vector<bool>{true, false});
  same(color::green);
  same(versioned{9});
  same(nesting{{}, 4});
  derived d;
  d.id = 7;
  d.note = "hello";
  d.history = {versioned{1}, versioned{2}};
  d.a.x = 3;
  d.b.x = 4;
  d.hues = {color::red, color::green};
  const std::string bytes = same(d);
  // A class version appears once per payload and type, as with cereal alone.
  CHECK(same(d) == bytes);
}

TEST_CASE("a huge size tag fails with bad_payload before any allocation", "[net][wire]") {
  // Each field of `counted` in turn claims 4 billion elements from a ~100-byte payload.
  for (int field = 0; field < 4; ++field) {
    INFO("field " << field);
    std::string payload;
    for (int i = 0; i < field; ++i) payload += u32le(0);  // earlier fields empty
    payload += u32le(0xFFFFFFFF);
    payload += std::string(96, 'z');
    largest_allocation = 0;
    auto r = decode<counted>(payload);
    REQUIRE_FALSE(r);
    CHECK(r.error() == frame_errc::bad_payload);
    CHECK(largest_allocation <= 256);
  }
  // A claim just over what is left fails too; a string claiming all of it is fine.
  CHECK(decode<std::string>(u32le(5) + "abcd").error() == frame_errc::bad_payload);
  auto exact = decode<std::string>(u32le(4) + "abcd");
  REQUIRE(exact);
  CHECK(*exact == "abcd");
  // Eight-byte elements: 12 bytes left cannot hold 2 of them.
  CHECK(decode<std::vector<std::uint64_t>>(u32le(2) + std::string(12, '\0')).error() ==
        frame_errc::bad_payload);
}

TEST_CASE("vectors grow with the elements read, not with the size claimed", "[net][wire]") {
  // 200 elements claimed and 200 bytes present, but the third element is a bad bool.
  // Cereal's stock archive would resize to the claim first: 200 * 4 KiB.
  std::string payload = u32le(200) + std::string("\x01\x00\x07", 3) + std::string(197, '\0');
  largest_allocation = 0;
  auto r = decode<counted_vector<wide>>(payload);
  REQUIRE_FALSE(r);
  CHECK(r.error() == frame_errc::bad_payload);
  CHECK(largest_allocation <= 4 * sizeof(wide));
}

TEST_CASE("size tags together may not claim more elements than the payload has bytes",
          "[net][wire]") {
  // Empty elements take no bytes, so each inner vector could claim "all the rest" again.
  std::string payload = u32le(4);
  // Each inner vector claims exactly the bytes left after its tag: 12, 8, 4, 0.
  for (int i = 0; i < 4; ++i) payload += u32le(static_cast<std::uint32_t>(12 - 4 * i));
  auto r = decode<std::vector<std::vector<ping>>>(payload);
  REQUIRE_FALSE(r);
  CHECK(r.error() == frame_errc::bad_payload);
}

TEST_CASE("every truncation of a payload fails with bad_payload", "[net][wire]") {
  const std::string full = encoded(sample());
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = decode<everything>(std::string_view(full).substr(0, n));
    if (r) FAIL("a prefix of " << n << " bytes decoded");
    if (r.error() != frame_errc::bad_payload) FAIL(n << ": " << r.error().message());
  }
}

TEST_CASE("bytes after the message fail with trailing_bytes", "[net][wire]") {
  auto r = decode<everything>(encoded(sample()) + "x");
  REQUIRE_FALSE(r);
  CHECK(r.error() == frame_errc::trailing_bytes);
  CHECK(decode<std::uint32_t>("12345").error() == frame_errc::trailing_bytes);
}

TEST_CASE("a bool byte other than 0 or 1 fails with bad_payload", "[net][wire]") {
  CHECK(decode<bool>("\x02").error() == frame_errc::bad_payload);
  CHECK(decode<std::vector<bool>>(u32le(1) + "\x05").error() == frame_errc::bad_payload);
  CHECK(decode<std::array<bool, 2>>(std::string("\x01\x03", 2)).error() == frame_errc::bad_payload);
  CHECK(decode<std::optional<int>>(std::string("\x09\x00\x00\x00\x00", 5)).error() ==
        frame_errc::bad_payload);
}

TEST_CASE("values nested deeper than max_depth fail with bad_payload", "[net][wire]") {
  // tree{"", {tree{"", {...}}}} ten thousand levels deep: 8 bytes a level.
  std::string payload;
  for (int i = 0; i < 10000; ++i) payload += u32le(0) + u32le(1);
  payload += u32le(0) + u32le(0);
  auto r = decode<tree>(payload);
  REQUIRE_FALSE(r);
  CHECK(r.error() == frame_errc::bad_payload);
}

namespace {
// A valid payload with a few bytes flipped, or (every third round) pure noise.
std::string damaged(const std::string& valid, int round, std::mt19937_64& rng) {
  std::string bytes = valid;
  if (round % 3 == 0) {
    bytes.assign(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
  } else {
    for (int k = 0; k < 1 + round % 4; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
  }
  return bytes;
}
}  // namespace

// Two decodings of the same bytes agree when their values are equal, floats
// compared by their bits: damaged bytes make NaNs, and a NaN equals nothing,
// not even itself.
template <class T>
bool same_decoding(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, everything>) {
    if (std::bit_cast<std::uint32_t>(a.f) != std::bit_cast<std::uint32_t>(b.f)) return false;
    if (std::bit_cast<std::uint64_t>(a.d) != std::bit_cast<std::uint64_t>(b.d)) return false;
    everything x = a, y = b;
    x.f = y.f = 0;
    x.d = y.d = 0;
    return x == y;
  } else {
    return a == b;
  }
}

TEST_CASE("decodings that differ only in a float's bits do not agree", "[net][wire]") {
  everything a = sample(), b = sample();
  a.d = b.d = std::numeric_limits<double>::quiet_NaN();
  CHECK(same_decoding(a, b));
  b.d = -b.d;  // the same NaN with the sign bit set
  CHECK_FALSE(same_decoding(a, b));
  b = a;
  b.f = -0.0f;
  a.f = 0.0f;
  CHECK_FALSE(same_decoding(a, b));
}

TEST_CASE("the direct decoder accepts and refuses what cereal's archive does", "[net][wire]") {
  auto agree = [](std::string_view bytes, auto tag) {
    using T = decltype(tag);
    auto direct = decode<T>(bytes);
    auto reference = troupe::net::decode_with_cereal<T>(bytes);
    REQUIRE(static_cast<bool>(direct) == static_cast<bool>(reference));
    if (direct)
      CHECK(same_decoding(*direct, *reference));
    else
      CHECK(direct.error() == reference.error());
    return static_cast<bool>(direct);
  };
  // Nesting around max_depth: the same depth is the first refused.
  int accepted = 0, refused = 0;
  for (int depth = 1; depth < 80; ++depth) {
    std::string payload;
    for (int i = 0; i < depth; ++i) payload += u32le(0) + u32le(1);
    payload += u32le(0) + u32le(0);
    (agree(payload, tree{}) ? accepted : refused) += 1;
  }
  CHECK(accepted > 0);
  CHECK(refused > 0);
  // Every truncation, and damaged or random bytes.
  const std::string full = encoded(sample());
  for (std::size_t n = 0; n <= full.size(); ++n)
    agree(std::string_view(full).substr(0, n), everything{});
  std::mt19937_64 rng(troupe::test::seed());
  for (int round = 0; round < 2000; ++round) {
    const std::string bytes = damaged(full, round, rng);
    agree(bytes, everything{});
    agree(bytes, tree{});
    agree(bytes, wire_test::color{});
  }
}

TEST_CASE("a variant index out of range fails with bad_payload", "[net][wire]") {
  using either = std::variant<std::int32_t, std::string>;
  CHECK(decode<either>(u32le(2) + u32le(0)).error() == frame_errc::bad_payload);
  CHECK(decode<either>(u32le(0xFFFFFFFF) + u32le(0)).error() == frame_errc::bad_payload);
}

TEST_CASE("random bytes decode to a value or an error, never a crash", "[net][wire]") {
  std::mt19937_64 rng(troupe::test::seed());
  const std::string valid = encoded(sample());
  for (int round = 0; round < 3000; ++round) {
    const std::string bytes = damaged(valid, round, rng);
    auto e = decode<everything>(bytes);
    auto t = decode<tree>(bytes);
    if (e) CHECK(decode<everything>(encoded(*e)));
    if (t) CHECK(decode<tree>(encoded(*t)));
  }
}

TEST_CASE("wire_id gives a registered type's id and name", "[net][wire]") {
  STATIC_REQUIRE(troupe::net::wire_message<everything>);
  STATIC_REQUIRE(troupe::net::wire_message<ping>);
  STATIC_REQUIRE_FALSE(troupe::net::wire_message<inner>);
  STATIC_REQUIRE_FALSE(troupe::net::wire_message<int>);
  STATIC_REQUIRE(troupe::net::wire_id<tree>::value == 101);
  CHECK(std::string(troupe::net::wire_id<everything>::name) == "wire_test::everything");
  auto p = decode<ping>("");
  CHECK(p);
  CHECK(encoded(ping{}).empty());
}
