// SPDX-License-Identifier: BSL-1.0
#include <troupe/core/error.hpp>

namespace troupe {

namespace {
class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "troupe"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::actor_dead:
        return "the target actor had already stopped";
      case errc::ask_timeout:
        return "no reply within the ask's deadline";
      case errc::actor_died:
        return "the target actor stopped before replying";
      case errc::handler_failed:
        return "the target's handler threw while serving the request";
      case errc::mailbox_full:
        return "the target's mailbox is full";
      case errc::message_dropped:
        return "the message was evicted from a full mailbox";
      case errc::runtime_stopped:
        return "the runtime is stopping";
      case errc::name_taken:
        return "the name is already registered";
      case errc::name_not_found:
        return "no actor is registered under that name";
      case errc::wrong_type:
        return "the actor registered under that name has another type";
      case errc::io_uring_unavailable:
        return "io_uring is unavailable";
      case errc::not_serializable:
        return "the message or reply type has no wire codec (TROUPE_WIRE_MESSAGE)";
      case errc::node_down:
        return "the link to the actor's node went down";
      case errc::bad_reply:
        return "the remote reply could not be decoded";
      case errc::remote_error:
        return "the remote node refused the request";
      case errc::message_too_large:
        return "the encoded message exceeds the frame size limit";
      case errc::no_route:
        return "no route for the key: no route table on this node, or no reachable member";
      case errc::link_congested:
        return "the link to the peer node is congested: the peer is not reading (its outbound "
               "buffer is full)";
    }
    return "unknown troupe error";
  }
};
}  // namespace

const boost::system::error_category& troupe_category() noexcept {
  static const category c;
  return c;
}

}  // namespace troupe
