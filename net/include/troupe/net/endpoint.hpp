// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// endpoint: a HOST:PORT pair as the node flags spell it (--listen, --http,
/// --seeds). HOST is an IP address or a host name.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
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

/// The address to bind `e` to (a listening socket needs one): an IP address
/// as it is; a host name resolved now, blocking (getaddrinfo through `io`'s
/// resolver), to the first IPv4 address it has, else its first address —
/// the same choice for the same answer, whatever order IPv4 and IPv6 come
/// in. Errors: the resolver's (e.g. boost::asio::error::host_not_found).
result<boost::asio::ip::tcp::endpoint> resolve_bind(boost::asio::io_context& io, const endpoint& e);

}  // namespace troupe::net
