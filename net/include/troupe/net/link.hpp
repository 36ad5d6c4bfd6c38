// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// peer_link: one authenticated TCP connection to one peer node, as an actor.
///
/// A link runs on the shard that owns its socket. It performs the handshake
/// (handshake.hpp), then reads frames in bulk (many per receive) and hands
/// each to its listener; outgoing frames are appended to one buffer and
/// written together (many frames, one send). While idle it sends a heartbeat
/// every `heartbeat`; a peer silent for `down_after` is declared down. Any
/// malformed input (oversized, truncated or garbage frames, a frame out of
/// place) closes this link only, with one logged reason.
///
/// Limits (docs/security.md): until the handshake completes, a frame may be
/// at most `handshake_max_frame` bytes and the handshake must finish within
/// `handshake_timeout`. Once up, the frames waiting to be written may hold at
/// most `max_outbound` bytes: a frame appended beyond that is refused
/// (append_result::congested), and a link whose buffer stays at the cap for
/// longer than `down_after` is closed as a slow consumer.
/// With a TLS context (link_config::tls) the link first runs a mutual TLS 1.3
/// handshake, then the same node handshake inside it, and checks that the
/// peer's certificate names the node it claims (tls.hpp); every byte after
/// the TCP connect then goes through the TLS stream.

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <troupe/core.hpp>
#include <troupe/net/endpoint.hpp>
#include <troupe/net/frame.hpp>
#include <troupe/net/handshake.hpp>
#include <troupe/net/route_wire.hpp>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace troupe::net {

/// Before a connection authenticates, no frame may be longer than this (the
/// handshake's frames are a few hundred bytes).
constexpr std::uint32_t default_handshake_max_frame = 4096;
/// The bytes a link may hold waiting to be written.
constexpr std::size_t default_max_outbound = std::size_t{64} << 20;

/// What a node's links refused or closed, summed over all of them (shared by
/// the links of one node through link_config::counters; for its metrics).
struct link_counters {
  std::atomic<std::uint64_t> congested{0};       ///< frames refused: outbound buffer at its cap
  std::atomic<std::uint64_t> slow_consumers{0};  ///< links closed: at the cap for down_after
  std::atomic<std::uint64_t> handshake_too_large{0};  ///< a frame over handshake_max_frame
  std::atomic<std::uint64_t> handshake_timeouts{0};   ///< no handshake within handshake_timeout
};

struct link_config {
  std::string node;                   ///< this node's name
  std::string cluster;                ///< cluster name; peers must match
  std::uint64_t incarnation = 0;      ///< this process's life of the node (see hello_msg)
  endpoint listen;                    ///< where peers dial this node (host empty: as they see it)
  std::optional<std::string> secret;  ///< shared secret; none = loopback peers only
  std::chrono::milliseconds heartbeat{250};
  /// A peer silent this long is *suspected*; it is declared down once its
  /// silence is also unlikely given the gaps seen so far (phi >=
  /// phi_threshold), and at the latest after down_max.
  std::chrono::milliseconds down_after{1500};
  /// Phi-accrual threshold (arrival_window): 8 means "a gap this long is
  /// 10^-8 likely". 0: no suspicion, down at down_after.
  double phi_threshold = 8.0;
  /// The longest silence before down, whatever phi says (0: 4 x down_after).
  std::chrono::milliseconds down_max{0};
  std::chrono::milliseconds handshake_timeout{5000};  ///< the whole handshake, from connect
  std::uint32_t max_frame = default_max_frame;
  std::uint32_t handshake_max_frame = default_handshake_max_frame;  ///< until authenticated
  std::size_t max_outbound = default_max_outbound;  ///< bytes waiting to be written, at most
  std::shared_ptr<link_counters> counters;          ///< optional: where refusals are counted
  /// Set: mutual TLS 1.3 under the handshake (make_tls_context, tls_role::cluster).
  std::shared_ptr<boost::asio::ssl::context> tls;
};

/// Phi-accrual failure detection (Hayashibara et al., 2004) over one link's
/// arrivals: from the last `capacity` gaps between reads, how unlikely the
/// current silence is — phi = -log10(P(a gap at least this long)) under a
/// normal distribution with the gaps' mean and deviation. The mean is at
/// least `min_mean` (a busy link's microsecond gaps say nothing of its
/// heartbeat gaps) and the deviation at least `min_sd`. A peer whose gaps
/// have been steady is suspected soon after its usual gap; one whose gaps
/// vary (a busy node) is given longer.
class arrival_window {
 public:
  static constexpr std::size_t capacity = 64;
  arrival_window(std::chrono::nanoseconds min_mean, std::chrono::nanoseconds min_sd) noexcept
      : min_mean_(static_cast<double>(min_mean.count())),
        min_sd_(static_cast<double>(min_sd.count())) {}
  /// Bytes arrived at `now_ns` (steady clock): records the gap since the last.
  void arrived(std::int64_t now_ns) noexcept;
  /// phi of a silence that began at the last arrival, at `now_ns`.
  double phi(std::int64_t now_ns) const noexcept;
  std::size_t size() const noexcept { return n_; }

 private:
  double gaps_[capacity] = {};
  std::size_t n_ = 0, next_ = 0;
  double sum_ = 0, sum_sq_ = 0;
  std::int64_t last_ns_ = -1;
  double min_mean_, min_sd_;
};

/// Counters of one link, readable by asking it (stats_q).
struct link_stats {
  std::string peer;
  bool up = false;
  std::uint64_t frames_in = 0, frames_out = 0, bytes_in = 0, bytes_out = 0, writes = 0;
  std::uint64_t queued_bytes = 0;  ///< bytes waiting to be written now (at most ~max_outbound)
  std::uint64_t congested = 0;     ///< frames refused because the outbound buffer was full
  std::string tls;       ///< over TLS: protocol and cipher ("TLSv1.3 TLS_AES_128_GCM_SHA256")
  bool suspect = false;  ///< silent for more than down_after, not yet declared down
  double phi = 0;        ///< the failure detector's phi now
};

class peer_link;

/// Who the peer at the other end of a link says it is (its hello or
/// challenge). `listen.host` is already the address this side saw the
/// connection come from when the peer listens on a wildcard address.
struct peer_identity {
  std::string name;
  std::uint64_t incarnation = 0;
  endpoint listen;
};

/// Receives a link's events, on the link's shard. Owned by the node.
class link_listener {
 public:
  virtual ~link_listener() = default;
  /// Called once the peer's identity is known and before the handshake
  /// completes — a dialer when the challenge arrives, an acceptor when the
  /// proof checks out — so a link membership does not want (to itself, a
  /// name already taken, a second connection between two nodes) is refused
  /// before either side counts it up. A code refuses the link with that
  /// reason. No suspension may separate an acceptor's admission from its
  /// on_up.
  virtual boost::system::error_code admit(const actor_ref<peer_link>& /*l*/,
                                          const peer_identity& /*who*/, bool /*dialer*/) {
    return {};
  }
  virtual void on_up(const actor_ref<peer_link>& l, const peer_identity& who) = 0;
  virtual void on_frame(const actor_ref<peer_link>& l, const frame_header& h,
                        std::string_view payload) = 0;
  /// `code`: a handshake_errc when the link was refused or ended for a
  /// reason membership acts on (by either side), else empty.
  virtual void on_down(const actor_ref<peer_link>& l, const std::string& peer,
                       const std::string& reason, boost::system::error_code code) = 0;
};

/// Messages a link handles.
struct link_start {};
struct link_send {
  frame_header header;
  std::string payload;
};
struct link_close {
  explicit link_close(std::string why, boost::system::error_code c = {})
      : reason(std::move(why)), code(c) {}
  std::string reason;
  boost::system::error_code code;  ///< a handshake_errc membership acts on, if any
};
struct link_stats_q {};

class peer_link : public actor {
 public:
  /// Once this much waits in the output buffer, it goes to the kernel at
  /// once (a non-blocking send), if no io_uring write is in flight and the
  /// socket has room: a handler that tells 10,000 messages in one turn then
  /// streams them out through a buffer that stays in the CPU's caches,
  /// instead of building a megabyte that the turn's end hands to io_uring.
  /// Plaintext links only: under TLS every byte goes through the TLS stream.
  static constexpr std::size_t write_through_bytes = 32 * 1024;

  static constexpr bool reentrant = true;  // reading, writing and timers interleave
  static constexpr const char* type_name = "troupe::net::peer_link";
  enum class role { dialer, acceptor };

  /// `listener` receives the link's events while `owner` (the actor that owns
  /// the listener, if any) is alive.
  peer_link(link_config cfg, boost::asio::ip::tcp::socket socket, role r, link_listener* listener,
            actor_addr owner = {});
  ~peer_link();

  /// Runs the handshake, then the read loop, until the link closes.
  task<void> handle(link_start);
  /// Queues one frame; frames queued while a write is in flight go out together.
  void handle(link_send f);
  /// Closes the link with a reason (logged, and sent to the peer when possible).
  void handle(link_close c);

  enum class append_result { ok, closed, too_large, congested };
  /// Appends one frame to the output buffer at once, without a message: the
  /// node's path, on this link's shard only. `fill(std::string&)` appends the
  /// payload; a payload over `max_payload` bytes (at most frame_payload_max)
  /// is taken back. Frames appended while a write is in flight go out together
  /// in the next one. After the link closed, frames are dropped (`closed`).
  /// When the bytes waiting to be written reach max_outbound, the frame is
  /// refused (`congested`; the peer is not reading) and counted.
  /// If fill throws, the frame is taken back and the exception propagates.
  /// With `lead` > 0, the payload's first `lead` bytes are reserved with the
  /// header (one growth of the buffer, not two): fill finds them as the last
  /// `lead` bytes of the string, to write over before it appends the rest.
  template <class Fill>
  append_result append(const frame_header& h, std::size_t max_payload, Fill&& fill,
                       std::size_t lead = 0);
  link_stats handle(link_stats_q) const;
  /// When bytes last arrived (steady-clock ns; on this link's shard only).
  std::int64_t last_heard_ns() const noexcept { return last_in_ns_; }
  /// The node's routing state on this connection (on this link's shard only).
  link_route_state& route_state() noexcept { return route_; }

 private:
  struct flush {};
  struct tick {};

 public:
  task<void> handle(flush);
  task<void> handle(tick);

 private:
  task<bool> handshake();
  task<bool> tls_handshake();
  bool peer_certificate_names(const std::string& node) const noexcept;
  task<result<frame_view>> read_frame();
  void queue(const frame_header& h, std::string_view payload);
  void start_flush();
  void write_through();
  void send_now() noexcept;
  void close(std::string reason, boost::system::error_code code = {});
  peer_identity identity_of(std::string name, std::uint64_t incarnation, std::string host,
                            std::uint16_t port) const;
  [[gnu::cold, gnu::noinline]] append_result refuse_congested() noexcept;
  bool listening() const noexcept { return !owner_ || owner_.alive(); }

  // The byte stream under the frames: socket_, or with TLS tls_->stream
  // over it. The read loop, the flush and close() pick one with one branch.
  struct tls_layer;

  link_config cfg_;
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<tls_layer> tls_;  // set with link_config::tls
  role role_;
  link_listener* listener_;
  actor_addr owner_;
  frame_reader reader_;
  std::string out_;         // frames waiting for the next write
  std::string sending_;     // the frames of the write in flight
  bool writing_ = false;    // a flush is queued or running
  bool in_flight_ = false;  // an io_uring write holds sending_
  bool full_ = false;       // the socket took less than offered; wait for the io_uring write
  bool closed_ = false;
  std::string close_reason_;
  boost::system::error_code close_code_;
  peer_identity peer_;
  std::int64_t last_in_ns_ = 0;
  std::int64_t last_out_ns_ = 0;
  std::int64_t started_ns_ = 0;
  std::int64_t congested_since_ns_ = 0;  // first refusal since a write last completed; 0: none
  arrival_window arrivals_;
  link_stats stats_;
  link_route_state route_;
};

template <class Fill>
peer_link::append_result peer_link::append(const frame_header& h, std::size_t max_payload,
                                           Fill&& fill, std::size_t lead) {
  if (closed_) return append_result::closed;
  if (out_.size() + sending_.size() >= cfg_.max_outbound) [[unlikely]]
    return refuse_congested();
  TROUPE_ASSERT(is_frame_kind(static_cast<std::uint8_t>(h.kind)), "peer_link::append: bad kind");
  // Room for the header (and the payload's lead bytes) first; the header is
  // written once the payload's size is known.
  const std::size_t start = out_.size();
  const std::size_t header = frame_header_size(h);
  out_.append(header + lead, '\0');
  try {
    fill(out_);
  } catch (...) {
    out_.resize(start);
    throw;
  }
  const std::size_t payload = out_.size() - start - header;
  if (payload > std::min(max_payload, frame_payload_max)) {
    out_.resize(start);
    return append_result::too_large;
  }
  write_frame_header(out_.data() + start, h, static_cast<std::uint32_t>(header - 4 + payload));
  ++stats_.frames_out;
  if (out_.size() >= write_through_bytes) write_through();
  if (!writing_ && !out_.empty()) start_flush();
  return append_result::ok;
}

}  // namespace troupe::net
