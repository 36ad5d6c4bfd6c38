// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Log records: what the runtime and troupe's libraries report, with a level
/// and the component that speaks. runtime_options::log receives them;
/// troupe-node hands them to spdlog (text or JSON lines).
///
/// Repeated lines are rate-limited by the runtime before they reach the
/// sink: a record at info level or above whose (component, message) was
/// passed within the last runtime_options::log_repeat_window is counted, not
/// passed; the next one passed after the window carries the count in
/// `suppressed`. Debug and trace records (the HTTP access log, for one) are
/// never rate-limited: they are asked for.

#include <cstdint>
#include <optional>
#include <string_view>

namespace troupe {

enum class log_level : std::uint8_t { trace, debug, info, warn, error, off };

/// "trace", "debug", "info", "warn", "error", "off".
std::string_view to_string(log_level l) noexcept;
/// The level named by one of to_string's words (also "warning"); nothing otherwise.
std::optional<log_level> parse_log_level(std::string_view s) noexcept;

struct log_record {
  log_level level = log_level::info;
  /// Who speaks: "runtime", "node", "link", "http", "http.access", "locks",
  /// "router", "saga", "troupe-node", or "app" for runtime::log(line).
  std::string_view component;
  std::string_view message;
  /// Records with this (component, message) held back since the last one
  /// passed (see the file comment); 0 mostly.
  std::uint64_t suppressed = 0;
};

}  // namespace troupe
