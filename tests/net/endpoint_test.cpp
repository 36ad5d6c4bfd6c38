// SPDX-License-Identifier: BSL-1.0
#include <troupe/actors/component.hpp>
#include <troupe/net/endpoint.hpp>
#include <troupe/saga/component.hpp>

#include "support.hpp"

using troupe::net::parse_endpoint;
using troupe::net::resolve_bind;

TEST_CASE("parse_endpoint reads host and port", "[net]") {
  auto e = parse_endpoint("127.0.0.1:7000");
  REQUIRE(e);
  CHECK(e->host == "127.0.0.1");
  CHECK(e->port == 7000);
  auto v6 = parse_endpoint("[::1]:80");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
}

TEST_CASE("parse_endpoint rejects malformed text with an error", "[net]") {
  for (const char* bad : {"", "host", ":80", "host:", "host:65536", "host:12x", "[::1:80"}) {
    INFO(bad);
    CHECK_FALSE(parse_endpoint(bad));
  }
}

TEST_CASE("resolve_bind keeps an IP address and takes a host name's first IPv4 address",
          "[net][resolve]") {
  boost::asio::io_context io;
  auto v6 = resolve_bind(io, {"::1", 80});
  REQUIRE(v6);
  CHECK(v6->address() == boost::asio::ip::make_address("::1"));
  CHECK(v6->port() == 80);
  // localhost may resolve to ::1 as well, in either order: IPv4 is chosen.
  auto local = resolve_bind(io, {"localhost", 7000});
  REQUIRE(local);
  CHECK(local->address() == boost::asio::ip::make_address("127.0.0.1"));
  CHECK(local->port() == 7000);
}

TEST_CASE("resolve_bind fails with the resolver's error for a name that does not resolve",
          "[net][resolve]") {
  boost::asio::io_context io;
  auto none = resolve_bind(io, {"nosuch.invalid", 7000});  // .invalid never resolves (RFC 6761)
  REQUIRE_FALSE(none);
  CHECK(none.error() != boost::system::error_code{});
}

TEST_CASE("the actors and saga libraries link", "[net]") {
  CHECK(std::string(troupe::actors::component_name()) == "troupe-actors");
  CHECK(std::string(troupe::saga::component_name()) == "troupe-saga");
}
