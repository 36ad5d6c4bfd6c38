// SPDX-License-Identifier: BSL-1.0
#include <charconv>
#include <troupe/net/endpoint.hpp>

namespace troupe::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

result<endpoint> parse_endpoint(std::string_view text) {
  auto bad = [] { return make_error_code(boost::system::errc::invalid_argument); };
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return bad();
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) return bad();
  return endpoint{std::string(host), static_cast<std::uint16_t>(value)};
}

result<tcp::endpoint> resolve_bind(asio::io_context& io, const endpoint& e) {
  boost::system::error_code ec;
  const asio::ip::address literal = asio::ip::make_address(e.host, ec);
  if (!ec) return tcp::endpoint{literal, e.port};
  // No address_configured: on a host whose only interface is loopback,
  // "localhost" must still resolve.
  tcp::resolver resolver{io};
  const tcp::resolver::results_type found =
      resolver.resolve(e.host, std::to_string(e.port), tcp::resolver::numeric_service, ec);
  if (ec) return failure<tcp::endpoint>(ec);
  if (found.empty()) return failure<tcp::endpoint>(asio::error::host_not_found);
  for (const auto& entry : found)
    if (entry.endpoint().address().is_v4()) return entry.endpoint();
  return found.begin()->endpoint();
}

}  // namespace troupe::net
