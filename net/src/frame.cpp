// SPDX-License-Identifier: BSL-1.0
#include <algorithm>
#include <bit>
#include <cstring>
#include <troupe/core/assert.hpp>
#include <troupe/net/frame.hpp>

namespace troupe::net {

namespace {

constexpr std::size_t length_bytes = 4;
static_assert(frame_header_max == 4 + 1 + 1 + 4 + 8 + 8 + 8);

// The buffer starts this small, and is given back once it is empty and grew past
// release_above for an unusually big frame, so idle links hold little memory.
constexpr std::size_t initial_capacity = 4096;
constexpr std::size_t release_above = 1u << 20;

// Explicit byte order, so the format does not depend on the host's.
void store_le(char* p, std::uint64_t v, std::size_t bytes) noexcept {
  for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint64_t load_le(const char* p, std::size_t bytes) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
template <class T>
T load_le(const char* p) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  } else {
    return static_cast<T>(load_le(p, sizeof(T)));
  }
}

void write_header(char* p, const frame_header& h, std::uint32_t length) noexcept {
  write_frame_header(p, h, length);
}

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "troupe.frame"; }
  std::string message(int ev) const override {
    switch (static_cast<frame_errc>(ev)) {
      case frame_errc::frame_too_large:
        return "frame length exceeds the maximum frame size";
      case frame_errc::frame_too_short:
        return "frame length is shorter than the frame's header";
      case frame_errc::bad_kind:
        return "frame kind byte is not a known frame kind";
      case frame_errc::bad_reserved:
        return "frame flags byte has unknown bits set";
      case frame_errc::truncated:
        return "the stream ended in the middle of a frame";
      case frame_errc::bad_payload:
        return "frame payload is malformed, truncated or claims impossible sizes";
      case frame_errc::trailing_bytes:
        return "frame payload has bytes left over after the message was decoded";
      case frame_errc::unknown_type:
        return "frame carries an unregistered message type id";
    }
    return "unknown frame error";
  }
};

}  // namespace

const boost::system::error_category& frame_category() noexcept {
  static const category c;
  return c;
}

std::string_view frame_kind_name(frame_kind kind) noexcept {
  switch (kind) {
    case frame_kind::hello:
      return "hello";
    case frame_kind::challenge:
      return "challenge";
    case frame_kind::proof:
      return "proof";
    case frame_kind::welcome:
      return "welcome";
    case frame_kind::heartbeat:
      return "heartbeat";
    case frame_kind::tell:
      return "tell";
    case frame_kind::ask:
      return "ask";
    case frame_kind::reply:
      return "reply";
    case frame_kind::reply_error:
      return "reply_error";
    case frame_kind::lookup:
      return "lookup";
    case frame_kind::lookup_reply:
      return "lookup_reply";
    case frame_kind::down:
      return "down";
    case frame_kind::goodbye:
      return "goodbye";
    case frame_kind::routed_tell:
      return "routed_tell";
    case frame_kind::routed_ask:
      return "routed_ask";
    case frame_kind::route_context:
      return "route_context";
    case frame_kind::members:
      return "members";
  }
  return "unknown";
}

void append_frame(std::string& out, const frame_header& h, std::string_view payload) {
  TROUPE_ASSERT(is_frame_kind(static_cast<std::uint8_t>(h.kind)), "append_frame: bad frame kind");
  TROUPE_ASSERT(payload.size() <= frame_payload_max,
                "append_frame: payload larger than frame_payload_max");
  char header[frame_header_max];
  const std::size_t size = frame_header_size(h);
  write_header(header, h, static_cast<std::uint32_t>(size - length_bytes + payload.size()));
  out.append(header, size);
  out.append(payload);
}

std::size_t begin_frame(std::string& out, const frame_header& h) {
  TROUPE_ASSERT(is_frame_kind(static_cast<std::uint8_t>(h.kind)), "begin_frame: bad frame kind");
  const std::size_t start = out.size();
  char header[frame_header_max];
  write_header(header, h, 0);  // end_frame writes the length
  out.append(header, frame_header_size(h));
  return start;
}

result<void> end_frame(std::string& out, std::size_t start) {
  TROUPE_ASSERT(start + frame_header_min <= out.size(), "end_frame: no frame begun there");
  TROUPE_ASSERT(load_le(out.data() + start, 4) == 0 && is_frame_kind(out[start + 4]),
                "end_frame: no unfinished frame begun there");
  const std::size_t header =
      frame_header_min + frame_fields_bytes(static_cast<std::uint8_t>(out[start + 5]));
  TROUPE_ASSERT(start + header <= out.size(), "end_frame: no frame begun there");
  const std::size_t payload = out.size() - start - header;
  if (payload > frame_payload_max) {
    out.resize(start);
    return make_error_code(frame_errc::frame_too_large);
  }
  store_le(out.data() + start, header - length_bytes + payload, 4);
  return {};
}

frame_reader::frame_reader(std::uint32_t max_frame) : max_frame_(max_frame) {
  TROUPE_ASSERT(max_frame >= frame_header_max - length_bytes,
                "frame_reader: max_frame below the largest header");
}

void frame_reader::set_max_frame(std::uint32_t max_frame) noexcept {
  TROUPE_ASSERT(max_frame >= frame_header_max - length_bytes,
                "frame_reader: max_frame below the largest header");
  max_frame_ = max_frame;
}

boost::system::error_code frame_reader::fail(frame_errc e) noexcept {
  error_ = make_error_code(e);
  // Nothing buffered will ever be read; give the memory back now.
  data_.reset();
  capacity_ = begin_ = end_ = writable_ = 0;
  return error_;
}

void frame_reader::reserve_tail(std::size_t n) {
  TROUPE_ASSERT(n <= (std::size_t{1} << 40), "frame_reader: absurd feed size");
  TROUPE_ASSERT(begin_ <= end_ && end_ <= capacity_, "frame_reader: buffer offsets corrupt");
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (capacity_ > release_above && n <= release_above) {
      data_.reset();
      capacity_ = 0;
    }
  }
  if (capacity_ - end_ >= n) return;
  const std::size_t pending = end_ - begin_;
  // Slide the pending bytes to the front only when that moves no more bytes than
  // it reclaims, so every byte is moved O(1) times on average (no O(n^2)).
  if (begin_ >= pending && capacity_ - pending >= n) {
    std::memmove(data_.get(), data_.get() + begin_, pending);
    begin_ = 0;
    end_ = pending;
    return;
  }
  // Otherwise grow (by doubling, so the copies are amortised too), keeping only
  // the pending bytes.
  const std::size_t want = std::max({pending + n, 2 * capacity_, initial_capacity});
  auto fresh = std::make_unique_for_overwrite<char[]>(want);
  if (pending != 0) std::memcpy(fresh.get(), data_.get() + begin_, pending);
  data_ = std::move(fresh);
  capacity_ = want;
  begin_ = 0;
  end_ = pending;
}

void frame_reader::feed(const char* data, std::size_t n) {
  writable_ = 0;  // a span handed out earlier may have moved
  if (error_ || n == 0) return;
  reserve_tail(n);
  std::memcpy(data_.get() + end_, data, n);
  end_ += n;
}

std::span<char> frame_reader::writable(std::size_t n) {
  reserve_tail(n);
  writable_ = n;
  return {data_.get() + end_, n};
}

void frame_reader::commit(std::size_t n) {
  TROUPE_ASSERT(n <= writable_, "frame_reader::commit: more bytes than writable() gave");
  writable_ = 0;
  if (error_) return;  // the stream is dead; drop what arrived
  end_ += n;
}

result<std::optional<frame_view>> frame_reader::next() {
  using R = std::optional<frame_view>;
  frame_view v;
  switch (next(v)) {
    case status::frame:
      return R{v};
    case status::need_more:
      return R{};
    case status::failed:
      break;
  }
  return failure<R>(error_);
}

frame_reader::status frame_reader::next(frame_view& out) noexcept {
  if (error_) return status::failed;
  const std::size_t avail = end_ - begin_;
  if (avail < length_bytes) return status::need_more;
  const char* p = data_.get() + begin_;
  const auto length = load_le<std::uint32_t>(p);
  // Judge every header byte as soon as it is here: an oversized frame is refused
  // before its body is buffered, garbage before it can fill the buffer.
  if (length > max_frame_) {
    fail(frame_errc::frame_too_large);
    return status::failed;
  }
  if (length < frame_header_min - length_bytes) {
    fail(frame_errc::frame_too_short);
    return status::failed;
  }
  if (avail > 4 && !is_frame_kind(static_cast<std::uint8_t>(p[4]))) {
    fail(frame_errc::bad_kind);
    return status::failed;
  }
  if (avail <= 5) return status::need_more;
  const auto flags = static_cast<std::uint8_t>(p[5]);
  if ((flags & ~frame_flags_known) != 0) {
    fail(frame_errc::bad_reserved);
    return status::failed;
  }
  const std::size_t header = frame_header_min + frame_fields_bytes(flags);
  if (length < header - length_bytes) {
    fail(frame_errc::frame_too_short);
    return status::failed;
  }
  if (avail - length_bytes < length) return status::need_more;

  out.header.kind = static_cast<frame_kind>(p[4]);
  const char* q = p + frame_header_min;
  out.header.type_id = 0;
  if (flags & frame_has_type_id) {
    out.header.type_id = load_le<std::uint32_t>(q);
    q += 4;
  }
  out.header.target = 0;
  if (flags & frame_has_target) {
    out.header.target = load_le<std::uint64_t>(q);
    q += 8;
  }
  out.header.sender = 0;
  if (flags & frame_has_sender) {
    out.header.sender = load_le<std::uint64_t>(q);
    q += 8;
  }
  out.header.correlation = 0;
  if (flags & frame_has_correlation) out.header.correlation = load_le<std::uint64_t>(q);
  out.payload = {p + header, length + length_bytes - header};
  begin_ += length_bytes + length;
  TROUPE_ASSERT(begin_ <= end_, "frame_reader: consumed past the end");
  return status::frame;
}

result<void> frame_reader::finish() {
  if (error_) return error_;
  if (begin_ != end_) return fail(frame_errc::truncated);
  return {};
}

}  // namespace troupe::net
