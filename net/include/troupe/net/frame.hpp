// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The transport's frames: the wire layout, frame_errc, append_frame and the
/// incremental frame_reader.
///
/// Every message between two nodes travels in one frame. All integers are
/// little-endian. The header's fields after `flags` are present only when
/// nonzero (a tell's header is 18 bytes, a heartbeat's 6):
///
/// ```
/// u32 length       bytes after this field: the rest of the header + payload;
///                  length <= the reader's max_frame
/// u8  kind         a frame_kind; any other value is an error
/// u8  flags        which fields follow: bit 0 type_id, bit 1 target,
///                  bit 2 sender, bit 3 correlation; bits 4-7 must be 0
/// u32 type_id      message type id (absent: 0, a frame with no user message)
/// u64 target       target actor id on the receiving node (absent: none)
/// u64 sender       sending actor id (absent: none)
/// u64 correlation  ask correlation id (absent: none)
/// payload          the rest (see wire.hpp for how messages are encoded)
/// ```
///
/// The reader checks the length prefix as soon as its four bytes arrive, so an
/// oversized frame is refused before its body is buffered, and it checks the
/// kind and flags bytes as soon as they arrive, so garbage is refused early.
/// Errors are sticky: a stream that once went wrong is never trusted again; the
/// link that owns the reader logs the error and closes.

#include <bit>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <troupe/core/error.hpp>

namespace troupe::net {

/// What a frame is for. The numbering is part of the wire format.
enum class frame_kind : std::uint8_t {
  hello = 1,
  challenge = 2,
  proof = 3,
  welcome = 4,
  heartbeat = 5,
  tell = 6,
  ask = 7,
  reply = 8,
  reply_error = 9,
  lookup = 10,
  lookup_reply = 11,
  down = 12,
  goodbye = 13,
  routed_tell = 14,  ///< a message routed by key (node.hpp: route_table)
  routed_ask = 15,
  route_context = 16,  ///< the sender's route epoch and table digest for this link's routed frames
  members = 17,        ///< members the sender is linked to (docs/cluster.md)
};

/// True if `value` is the number of a frame_kind.
constexpr bool is_frame_kind(std::uint8_t value) noexcept {
  return value >= static_cast<std::uint8_t>(frame_kind::hello) &&
         value <= static_cast<std::uint8_t>(frame_kind::members);
}

/// The kind's name as written in this header ("tell"), or "unknown".
std::string_view frame_kind_name(frame_kind kind) noexcept;

/// The decoded fixed part of a frame (length, flags and reserved are implied).
struct frame_header {
  frame_kind kind = frame_kind::heartbeat;
  std::uint32_t type_id = 0;
  std::uint64_t target = 0;
  std::uint64_t sender = 0;
  std::uint64_t correlation = 0;
  friend bool operator==(const frame_header&, const frame_header&) = default;
};

/// The flags byte's bits: which optional header fields follow it.
enum frame_flag : std::uint8_t {
  frame_has_type_id = 1,
  frame_has_target = 2,
  frame_has_sender = 4,
  frame_has_correlation = 8,
};
/// Flag bits with a meaning; a frame with any other bit set is refused.
constexpr std::uint8_t frame_flags_known = 0x0F;

/// Bytes of the optional fields `flags` announces.
constexpr std::size_t frame_fields_bytes(std::uint8_t flags) noexcept {
  return ((flags & frame_has_type_id) ? 4 : 0) + ((flags & frame_has_target) ? 8 : 0) +
         ((flags & frame_has_sender) ? 8 : 0) + ((flags & frame_has_correlation) ? 8 : 0);
}
/// Bytes of a header before the optional fields: length, kind, flags.
constexpr std::size_t frame_header_min = 6;
/// The largest header, every field present, the length field included.
constexpr std::size_t frame_header_max = frame_header_min + frame_fields_bytes(frame_flags_known);

/// The flags byte of h's header: a bit per nonzero field.
constexpr std::uint8_t frame_flags_of(const frame_header& h) noexcept {
  return static_cast<std::uint8_t>(
      (h.type_id != 0 ? frame_has_type_id : 0) | (h.target != 0 ? frame_has_target : 0) |
      (h.sender != 0 ? frame_has_sender : 0) | (h.correlation != 0 ? frame_has_correlation : 0));
}
/// Bytes of h's header, the length field included.
constexpr std::size_t frame_header_size(const frame_header& h) noexcept {
  return frame_header_min + frame_fields_bytes(frame_flags_of(h));
}

/// The largest `length` field a reader accepts unless told otherwise (16 MiB).
constexpr std::uint32_t default_max_frame = 16u << 20;
/// The largest payload append_frame writes: one a default reader accepts
/// whatever the header.
constexpr std::size_t frame_payload_max = default_max_frame - (frame_header_max - 4);

/// Why a frame or its payload was refused. Registered as a boost::system
/// error category ("troupe.frame").
enum class frame_errc {
  frame_too_large = 1,  ///< the length field exceeds the reader's max_frame
  frame_too_short,      ///< the length field is smaller than the header its flags announce
  bad_kind,             ///< the kind byte is not a frame_kind
  bad_reserved,         ///< the flags byte or the reserved field is not zero
  truncated,            ///< the stream ended in the middle of a frame
  bad_payload,          ///< the payload is malformed, truncated or claims impossible sizes
  trailing_bytes,       ///< the payload has bytes left after the message was decoded
  unknown_type,         ///< the frame's type_id is not a registered message type
};

const boost::system::error_category& frame_category() noexcept;

inline boost::system::error_code make_error_code(frame_errc e) noexcept {
  return {static_cast<int>(e), frame_category()};
}

/// Writes h's header at `p`: frame_header_size(h) bytes. `length` is the
/// length field (the header's bytes after it + the payload's). Does not
/// check `h.kind`.
inline void write_frame_header(char* p, const frame_header& h, std::uint32_t length) noexcept {
  auto store = [](char* q, std::uint64_t v, std::size_t bytes) {
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(q, &v, bytes);
    } else {
      for (std::size_t i = 0; i < bytes; ++i) q[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    }
  };
  store(p, length, 4);
  p[4] = static_cast<char>(h.kind);
  p[5] = static_cast<char>(frame_flags_of(h));
  char* q = p + frame_header_min;
  if (h.type_id != 0) {
    store(q, h.type_id, 4);
    q += 4;
  }
  if (h.target != 0) {
    store(q, h.target, 8);
    q += 8;
  }
  if (h.sender != 0) {
    store(q, h.sender, 8);
    q += 8;
  }
  if (h.correlation != 0) store(q, h.correlation, 8);
}

/// Appends one encoded frame to `out`. Asserts that `h.kind` is a frame_kind
/// and that `payload` is at most frame_payload_max bytes.
void append_frame(std::string& out, const frame_header& h, std::string_view payload);

/// Starts a frame whose payload the caller appends to `out` directly (for
/// instance with wire::encode), saving a copy. Returns the frame's offset in
/// `out`, to pass to end_frame. Asserts that `h.kind` is a frame_kind.
std::size_t begin_frame(std::string& out, const frame_header& h);

/// Finishes the frame begun at `start`: its payload is everything appended to
/// `out` since begin_frame. A payload larger than frame_payload_max is an
/// error (frame_too_large), and the frame is removed from `out` again.
[[nodiscard]] result<void> end_frame(std::string& out, std::size_t start);

/// One complete frame handed out by frame_reader::next(). `payload` points into
/// the reader's buffer and is valid until the next call of any non-const
/// member of the reader.
struct frame_view {
  frame_header header;
  std::string_view payload;
};

/// Cuts a byte stream into frames, incrementally and without copying frames.
///
/// Use: give it bytes with feed() (or write them into writable() and commit()),
/// then call next() until it returns std::nullopt, then feed again. When the
/// stream ends, finish() tells a clean end from one in the middle of a frame.
///
/// Memory is bounded: a frame is only buffered once its length field passed
/// the max_frame check, consumed bytes are reclaimed without quadratic
/// copying, and a buffer that grew for a big frame is released once empty. If
/// the caller drains next() between feeds, the buffer holds at most one
/// partial frame plus one feed.
///
/// A reader is not thread-safe; one link owns one reader.
class frame_reader {
 public:
  /// `max_frame` bounds the length field (header + payload); at least
  /// frame_header_max - 4.
  explicit frame_reader(std::uint32_t max_frame = default_max_frame);

  frame_reader(frame_reader&&) noexcept = default;
  frame_reader& operator=(frame_reader&&) noexcept = default;

  /// Appends `n` bytes of the stream. Ignored once the reader has failed.
  void feed(const char* data, std::size_t n);
  void feed(std::string_view bytes) { feed(bytes.data(), bytes.size()); }

  /// Space for at least `n` more bytes at the end of the buffer, for a socket
  /// read to fill directly; commit() then appends the bytes written.
  [[nodiscard]] std::span<char> writable(std::size_t n);
  /// Appends the first `n` bytes of the last writable() span to the stream.
  void commit(std::size_t n);

  /// The next complete frame; std::nullopt if more bytes are needed; or the
  /// error that stopped the stream (sticky: every later call returns it too).
  [[nodiscard]] result<std::optional<frame_view>> next();

  /// next() for a hot loop: the frame is written into `out` field by field.
  enum class status { frame, need_more, failed };
  /// status::frame: `out` holds the next frame; need_more: more bytes are
  /// needed; failed: the stream stopped (error() says why; sticky).
  [[nodiscard]] status next(frame_view& out) noexcept;

  /// Ends the stream: an error if the reader had failed, `truncated` if bytes
  /// of an unfinished frame are buffered (call it after next() returned
  /// std::nullopt). Leaves the reader failed if it reports an error.
  [[nodiscard]] result<void> finish();

  /// Bytes received and not yet handed out as frames.
  std::size_t buffered() const noexcept { return end_ - begin_; }
  /// Bytes of memory the buffer holds.
  std::size_t capacity() const noexcept { return capacity_; }
  std::uint32_t max_frame() const noexcept { return max_frame_; }
  /// Changes the bound for the frames not yet handed out (e.g. raised once a
  /// link authenticates); at least frame_header_max - 4.
  void set_max_frame(std::uint32_t max_frame) noexcept;
  bool failed() const noexcept { return static_cast<bool>(error_); }
  /// The error that stopped the stream, or an empty error_code.
  boost::system::error_code error() const noexcept { return error_; }

 private:
  // Makes room for `n` more bytes after end_, reclaiming consumed space first.
  void reserve_tail(std::size_t n);
  boost::system::error_code fail(frame_errc e) noexcept;

  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;     // first byte not yet handed out
  std::size_t end_ = 0;       // one past the last byte received
  std::size_t writable_ = 0;  // size of the span the last writable() returned
  std::uint32_t max_frame_;
  boost::system::error_code error_;
};

}  // namespace troupe::net

template <>
struct boost::system::is_error_code_enum<troupe::net::frame_errc> : std::true_type {};
