// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Per-thread size-class free lists for envelopes and coroutine frames, so a
/// message does not pay for malloc. Blocks may be freed on another thread than
/// the one that allocated them; they then join that thread's list (each list is
/// bounded, the excess goes back to the system allocator). Under ASan and TSan
/// the pool steps aside so every block is checked.

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TROUPE_POOL_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TROUPE_POOL_DISABLED 1
#endif
#endif

namespace troupe::detail {

#ifndef TROUPE_POOL_DISABLED
struct pool_lists {
  static constexpr std::size_t class_bytes = 16;
  static constexpr std::size_t classes = 32;               // blocks up to 512 bytes
  static constexpr std::size_t list_bytes_max = 4u << 20;  // per class and thread
  struct block {
    block* next;
  };
  block* heads[classes];
  std::size_t counts[classes];
  bool cleanup_registered;
};
// Trivially destructible, so access needs no guard; a separate object frees
// the lists at thread exit (registered on the first slow-path allocation).
inline thread_local pool_lists tls_pool{};

void* pool_allocate_slow(std::size_t k);
void pool_deallocate_slow(void* p, std::size_t k) noexcept;

inline void* pool_allocate(std::size_t bytes) {
  const std::size_t k = (bytes + pool_lists::class_bytes - 1) / pool_lists::class_bytes;
  if (k < pool_lists::classes) {
    pool_lists& p = tls_pool;
    if (pool_lists::block* b = p.heads[k]) {
      p.heads[k] = b->next;
      --p.counts[k];
      return b;
    }
  }
  return pool_allocate_slow(k);
}

inline void pool_deallocate(void* ptr, std::size_t bytes) noexcept {
  const std::size_t k = (bytes + pool_lists::class_bytes - 1) / pool_lists::class_bytes;
  if (k < pool_lists::classes) {
    pool_lists& p = tls_pool;
    if (p.cleanup_registered &&
        p.counts[k] * k * pool_lists::class_bytes < pool_lists::list_bytes_max) {
      auto* b = static_cast<pool_lists::block*>(ptr);
      b->next = p.heads[k];
      p.heads[k] = b;
      ++p.counts[k];
      return;
    }
  }
  pool_deallocate_slow(ptr, k);
}
#else
inline void* pool_allocate(std::size_t bytes) { return ::operator new(bytes); }
inline void pool_deallocate(void* ptr, std::size_t) noexcept { ::operator delete(ptr); }
#endif

}  // namespace troupe::detail
