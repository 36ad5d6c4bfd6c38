// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The Prometheus text exposition format: what troupe-node's /metrics (and
/// any other exporter of troupe's counters) needs to write it correctly.

#include <string>
#include <string_view>

namespace troupe::net {

/// A label value escaped for the Prometheus text format (version 0.0.4):
/// backslash, double quote and line feed become `\\`, `\"` and `\n`; every
/// other byte is kept. Write it between double quotes:
/// `m << "x{peer=\"" << prometheus_label_value(name) << "\"} 1\n"`.
inline std::string prometheus_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace troupe::net
