// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// endpoint: a HOST:PORT pair as the node flags spell it (--listen, --seeds).

#include <cstdint>
#include <string>
#include <string_view>
#include <troupe/core/error.hpp>

namespace troupe::net {

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// Parses "HOST:PORT" ("[::1]:7000" for IPv6). Errors: invalid_argument.
result<endpoint> parse_endpoint(std::string_view text);

}  // namespace troupe::net
