// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// System messages the runtime delivers to actors: down_msg (monitors) and
/// exit_msg (links, for actors that trap exits).

#include <string>
#include <troupe/core/actor_addr.hpp>

namespace troupe {

/// Sent to every monitor of an actor when it stops. Handle it with
/// `task<void> handle(troupe::down_msg)` (or a plain function).
struct down_msg {
  actor_addr who;
  exit_reason reason;
  std::string what;  ///< the exception text for failures, empty otherwise
};

/// Sent to a linked actor that declares `handle(troupe::exit_msg)` instead of
/// stopping it; lets an actor trap the abnormal exit of a linked actor.
struct exit_msg {
  actor_addr who;
  exit_reason reason;
  std::string what;
};

}  // namespace troupe
