// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// remote_codec<M>: the customization point that makes a message type able to
/// cross the network. Core only asks whether a codec exists and calls it; the
/// transport (troupe::net, TROUPE_WIRE_MESSAGE) provides the specialisations.
/// Local messages are never encoded.

#include <cstdint>
#include <string>
#include <string_view>
#include <troupe/core/error.hpp>

namespace troupe {

/// Not remote-capable unless specialised. A specialisation provides:
///   static constexpr bool enabled = true;
///   static constexpr std::uint32_t type_id;   // stable, nonzero
///   static void encode(const M&, std::string& out);
///   static result<M> decode(std::string_view bytes);
template <class M>
struct remote_codec {
  static constexpr bool enabled = false;
};

template <class M>
concept remote_message = remote_codec<M>::enabled;

}  // namespace troupe
