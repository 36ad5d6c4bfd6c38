// SPDX-License-Identifier: BSL-1.0
#include <charconv>
#include <troupe/net/endpoint.hpp>

namespace troupe::net {

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

}  // namespace troupe::net
