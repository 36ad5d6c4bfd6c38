// SPDX-License-Identifier: BSL-1.0
#include <troupe/actors/component.hpp>

namespace troupe::actors {
const char* component_name() noexcept { return "troupe-actors"; }
}  // namespace troupe::actors
