// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// TROUPE_ASSERT: invariants checked in every build, Release included.

namespace troupe::detail {
/// Prints "troupe: assertion failed: <expr> (<msg>) at <file>:<line>" and aborts.
[[noreturn]] void assert_fail(const char* expr, const char* msg, const char* file,
                              int line) noexcept;
}  // namespace troupe::detail

/// Checks an invariant; on failure prints where and why, then aborts. Always on.
#define TROUPE_ASSERT(cond, msg) \
  ((cond) ? (void)0 : ::troupe::detail::assert_fail(#cond, (msg), __FILE__, __LINE__))
