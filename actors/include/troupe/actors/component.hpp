// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// troupe::actors — service actors (ring-router, lock-manager) built on core
/// and net. This header names the component until its first actor lands.

namespace troupe::actors {
/// The component's name, for logs and the build's link check.
const char* component_name() noexcept;
}  // namespace troupe::actors
