// SPDX-License-Identifier: BSL-1.0
#include <troupe/saga/component.hpp>

namespace troupe::saga {
const char* component_name() noexcept { return "troupe-saga"; }
}  // namespace troupe::saga
