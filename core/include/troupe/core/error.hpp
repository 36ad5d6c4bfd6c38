// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Expected failures as values: troupe::errc, its error_category, and result<T>.

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <stdexcept>
#include <string>
#include <troupe/config.hpp>  // first: it checks the Boost.Asio settings

namespace troupe {

/// Why a send, an ask or a start-up did not succeed.
enum class errc {
  actor_dead = 1,        ///< the target had stopped before the message reached it
  ask_timeout,           ///< no reply within the ask's deadline
  actor_died,            ///< the target stopped after taking the request, before replying
  handler_failed,        ///< the target's handler threw while serving the request
  mailbox_full,          ///< the target's bounded mailbox rejected the message
  message_dropped,       ///< a bounded drop-oldest mailbox evicted the request
  runtime_stopped,       ///< the runtime is stopping or stopped
  name_taken,            ///< registry: the name is already registered
  name_not_found,        ///< registry: no actor under that name
  wrong_type,            ///< registry: the actor under that name has another type
  io_uring_unavailable,  ///< start-up: io_uring could not be initialised
  not_serializable,   ///< a message (or reply) type without a wire codec was sent to a remote actor
  node_down,          ///< the link to the remote actor's node went down before the reply
  bad_reply,          ///< the remote reply could not be decoded
  remote_error,       ///< the remote node refused the request (see its log)
  message_too_large,  ///< the encoded message exceeds the transport's frame limit
  no_route,           ///< routing by key: no route table on this node, or no member to route to
  link_congested,     ///< the link's outbound buffer is full: the peer node is not reading
};

/// The highest errc value (remote replies carry an errc; anything above is unknown).
inline constexpr errc errc_last = errc::link_congested;

const boost::system::error_category& troupe_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), troupe_category()};
}

/// A value or an error_code, for every expected failure (Boost.System's result).
template <class T>
using result = boost::system::result<T, boost::system::error_code>;

/// A result<T> holding an error. Explicit, so result<bool> works too (an
/// error_code converts to bool, which makes the implicit form ambiguous).
template <class T>
result<T> failure(boost::system::error_code ec) noexcept {
  return result<T>(boost::system::in_place_error, ec);
}
template <class T>
result<T> failure(errc e) noexcept {
  return result<T>(boost::system::in_place_error, make_error_code(e));
}

/// Thrown by runtime construction when a shard cannot start (one clear line).
class startup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace troupe

template <>
struct boost::system::is_error_code_enum<troupe::errc> : std::true_type {};
