// SPDX-License-Identifier: BSL-1.0
#include <bit>
#include <cstring>
#include <troupe/core/assert.hpp>
#include <troupe/saga/error.hpp>
#include <troupe/saga/record.hpp>
#include <type_traits>

namespace troupe::saga {

// The stored form, written by hand: every record is encoded on every saga
// transition, so this is on the hot path (cereal's stream-based archive cost
// several times more). Integers are little-endian; a string is a u32 length
// and its bytes; a vector is a u32 count and its elements. The decoder checks
// every length against the bytes left and every enum against its range.

namespace {
constexpr std::uint32_t record_version = 2;

class writer {
 public:
  explicit writer(char* p) : p_(p) {}
  template <class T>
  void uint(T v) {
    static_assert(std::is_unsigned_v<T>);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(p_, &v, sizeof(T));
      p_ += sizeof(T);
    } else {
      for (std::size_t i = 0; i < sizeof(T); ++i) *p_++ = static_cast<char>((v >> (8 * i)) & 0xff);
    }
  }
  void i64(std::int64_t v) { uint(static_cast<std::uint64_t>(v)); }
  void i32(std::int32_t v) { uint(static_cast<std::uint32_t>(v)); }
  void u8(std::uint8_t v) { *p_++ = static_cast<char>(v); }
  void str(const std::string& s) {
    TROUPE_ASSERT(s.size() <= UINT32_MAX, "saga record: string too long");
    uint(static_cast<std::uint32_t>(s.size()));
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  char* pos() const noexcept { return p_; }

 private:
  char* p_;
};

class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}
  bool ok() const noexcept { return ok_; }
  bool at_end() const noexcept { return pos_ == in_.size(); }
  template <class T>
  T uint() {
    T v = 0;
    if (!need(sizeof(T))) return 0;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(&v, in_.data() + pos_, sizeof(T));
    } else {
      for (std::size_t i = 0; i < sizeof(T); ++i)
        v |= static_cast<T>(static_cast<T>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i));
    }
    pos_ += sizeof(T);
    return v;
  }
  std::int64_t i64() { return static_cast<std::int64_t>(uint<std::uint64_t>()); }
  std::int32_t i32() { return static_cast<std::int32_t>(uint<std::uint32_t>()); }
  std::uint8_t u8() { return uint<std::uint8_t>(); }
  template <class E>
  E enumeration(E max) {
    std::uint8_t v = u8();
    if (v > static_cast<std::uint8_t>(max)) ok_ = false;
    return static_cast<E>(v);
  }
  std::string str() {
    std::uint32_t n = uint<std::uint32_t>();
    if (!need(n)) return {};
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  /// A count of elements of at least `min_bytes` each: refused if the bytes left cannot hold them.
  std::uint32_t count(std::size_t min_bytes) {
    std::uint32_t n = uint<std::uint32_t>();
    if (ok_ && static_cast<std::uint64_t>(n) * min_bytes > in_.size() - pos_) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  bool need(std::size_t n) {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};
}  // namespace

std::string encode_record(const saga_record& r) {
  // The exact size first: one allocation, no capacity checks per byte.
  std::size_t size = 4 + 8 + 4 + r.type.size() + 4 + r.idempotency_key.size() + 1 + 8 + 4 +
                     r.context.size() + 4 + r.error.size() + 1 + 8 * 3 + 4 + 4 + 4;
  for (const step_state& s : r.steps)
    size += 4 + s.name.size() + 1 + 1 + 4 + 4 + 4 + s.last_error.size() + 16;
  for (const saga_event& e : r.history) size += 8 + 1 + 4 + 4 + 4 + e.detail.size();
  std::string out(size, '\0');
  writer w(out.data());
  w.uint(record_version);
  w.uint(r.id);
  w.str(r.type);
  w.str(r.idempotency_key);
  w.u8(static_cast<std::uint8_t>(r.state));
  w.uint(r.input_hash);
  w.str(r.context);
  w.str(r.error);
  w.u8(r.cancel_requested ? 1 : 0);
  w.i64(r.created_ns);
  w.i64(r.updated_ns);
  w.i64(r.deadline_ns);
  w.uint(static_cast<std::uint32_t>(r.steps.size()));
  for (const step_state& s : r.steps) {
    w.str(s.name);
    w.u8(static_cast<std::uint8_t>(s.status));
    w.u8(static_cast<std::uint8_t>(s.phase));
    w.uint(s.attempts);
    w.uint(s.compensation_attempts);
    w.str(s.last_error);
    w.i64(s.started_ns);
    w.i64(s.finished_ns);
  }
  w.uint(static_cast<std::uint32_t>(r.history.size()));
  for (const saga_event& e : r.history) {
    w.i64(e.at_ns);
    w.u8(static_cast<std::uint8_t>(e.kind));
    w.i32(e.step);
    w.uint(e.attempt);
    w.str(e.detail);
  }
  w.uint(r.history_dropped);
  TROUPE_ASSERT(w.pos() == out.data() + out.size(), "saga record: size mismatch");
  return out;
}

result<saga_record> decode_record(std::string_view bytes) {
  auto bad = [] { return failure<saga_record>(make_error_code(saga_errc::bad_record)); };
  reader in(bytes);
  if (in.uint<std::uint32_t>() != record_version) return bad();
  saga_record r;
  r.id = in.uint<std::uint64_t>();
  r.type = in.str();
  r.idempotency_key = in.str();
  r.state = in.enumeration(saga_state::stuck);
  r.input_hash = in.uint<std::uint64_t>();
  r.context = in.str();
  r.error = in.str();
  std::uint8_t cancel = in.u8();
  if (cancel > 1) return bad();
  r.cancel_requested = cancel == 1;
  r.created_ns = in.i64();
  r.updated_ns = in.i64();
  r.deadline_ns = in.i64();
  std::uint32_t steps = in.count(4 + 2 + 8 + 4 + 16);
  r.steps.resize(steps);
  for (step_state& s : r.steps) {
    s.name = in.str();
    s.status = in.enumeration(step_status::stuck);
    s.phase = in.enumeration(tcc_phase::cancelling);
    s.attempts = in.uint<std::uint32_t>();
    s.compensation_attempts = in.uint<std::uint32_t>();
    s.last_error = in.str();
    s.started_ns = in.i64();
    s.finished_ns = in.i64();
  }
  std::uint32_t events = in.count(8 + 1 + 4 + 4 + 4);
  r.history.resize(events);
  for (saga_event& e : r.history) {
    e.at_ns = in.i64();
    e.kind = in.enumeration(event_kind::cancelled);
    e.step = in.i32();
    e.attempt = in.uint<std::uint32_t>();
    e.detail = in.str();
  }
  r.history_dropped = in.uint<std::uint32_t>();
  if (!in.ok() || !in.at_end()) return bad();
  return r;
}

std::string_view to_string(saga_state s) noexcept {
  switch (s) {
    case saga_state::pending:
      return "pending";
    case saga_state::running:
      return "running";
    case saga_state::compensating:
      return "compensating";
    case saga_state::completed:
      return "completed";
    case saga_state::compensated:
      return "compensated";
    case saga_state::stuck:
      return "stuck";
  }
  return "unknown";
}

std::string_view to_string(step_status s) noexcept {
  switch (s) {
    case step_status::pending:
      return "pending";
    case step_status::running:
      return "running";
    case step_status::completed:
      return "completed";
    case step_status::failed:
      return "failed";
    case step_status::compensating:
      return "compensating";
    case step_status::compensated:
      return "compensated";
    case step_status::stuck:
      return "stuck";
  }
  return "unknown";
}

std::string_view to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::created:
      return "created";
    case event_kind::started:
      return "started";
    case event_kind::step_started:
      return "step_started";
    case event_kind::step_failed:
      return "step_failed";
    case event_kind::step_completed:
      return "step_completed";
    case event_kind::step_gave_up:
      return "step_gave_up";
    case event_kind::cancel_requested:
      return "cancel_requested";
    case event_kind::compensating:
      return "compensating";
    case event_kind::compensation_started:
      return "compensation_started";
    case event_kind::compensation_failed:
      return "compensation_failed";
    case event_kind::compensation_completed:
      return "compensation_completed";
    case event_kind::completed:
      return "completed";
    case event_kind::compensated:
      return "compensated";
    case event_kind::stuck:
      return "stuck";
    case event_kind::recovered:
      return "recovered";
    case event_kind::prepared:
      return "prepared";
    case event_kind::confirmed:
      return "confirmed";
    case event_kind::cancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace troupe::saga
