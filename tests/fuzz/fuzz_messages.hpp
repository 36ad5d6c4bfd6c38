// SPDX-License-Identifier: BSL-1.0
#pragma once
// Sample registered message types the fuzz targets decode frame payloads as,
// shared with the corpus generator so the seeds carry real encodings.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <troupe/net/wire.hpp>
#include <unordered_set>
#include <variant>
#include <vector>

namespace troupe::fuzz {

/// A typical business message: strings, integers, containers, a bool, a variant.
struct account_update {
  std::string account;
  std::int64_t cents = 0;
  bool urgent = false;
  std::vector<std::uint32_t> tags;
  std::map<std::string, std::string> meta;
  std::optional<std::vector<std::string>> notes;
  std::variant<std::monostate, std::int32_t, std::string> extra;
  std::array<bool, 2> flags{};
  std::pair<std::uint16_t, std::int8_t> version{};
  std::unordered_set<std::uint16_t> shards;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(account, cents, urgent, tags, meta, notes, extra, flags, version, shards);
  }
  friend bool operator==(const account_update&, const account_update&) = default;
};

/// A recursive type, so hostile nesting depth gets exercised.
struct tree {
  std::string label;
  std::vector<tree> children;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, children);
  }
  friend bool operator==(const tree&, const tree&) = default;
};

inline account_update sample_account_update() {
  account_update u;
  u.account = "alice";
  u.cents = -12345;
  u.urgent = true;
  u.tags = {1, 2, 0xFFFFFFFF};
  u.meta = {{"by", "bob"}, {"why", "rent"}};
  u.notes = std::vector<std::string>{"first", ""};
  u.extra = std::string("x");
  u.flags = {true, false};
  u.version = {3, -1};
  u.shards = {0, 7};
  return u;
}

inline tree sample_tree(int depth) {
  tree t{"n" + std::to_string(depth), {}};
  for (int i = 0; i < 2 && depth > 0; ++i) t.children.push_back(sample_tree(depth - 1));
  return t;
}

}  // namespace troupe::fuzz

TROUPE_WIRE_MESSAGE(troupe::fuzz::account_update, 1001);
TROUPE_WIRE_MESSAGE(troupe::fuzz::tree, 1002);
