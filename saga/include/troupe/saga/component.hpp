// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// troupe::saga — saga definitions, the orchestrator actor and its durable
/// store. This header names the component until the orchestrator lands.

namespace troupe::saga {
/// The component's name, for logs and the build's link check.
const char* component_name() noexcept;
}  // namespace troupe::saga
