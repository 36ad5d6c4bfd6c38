// SPDX-License-Identifier: BSL-1.0
#include <troupe/actors/component.hpp>
#include <troupe/net/endpoint.hpp>
#include <troupe/saga/component.hpp>

#include "support.hpp"

using troupe::net::parse_endpoint;

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

TEST_CASE("the actors and saga libraries link", "[net]") {
  CHECK(std::string(troupe::actors::component_name()) == "troupe-actors");
  CHECK(std::string(troupe::saga::component_name()) == "troupe-saga");
}
