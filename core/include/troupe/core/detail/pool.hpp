#pragma once
/// \file
/// Per-thread size-class free lists for envelopes and coroutine frames, so a
/// message does not pay for malloc. Blocks may be freed on another thread than
/// the one that allocated them; they then join that thread's list (each list is
/// bounded, the excess goes back to the system allocator).

#include <cstddef>

namespace troupe::detail {

void* pool_allocate(std::size_t bytes);
void pool_deallocate(void* p, std::size_t bytes) noexcept;

}  // namespace troupe::detail
