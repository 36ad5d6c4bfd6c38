// SPDX-License-Identifier: BSL-1.0
// The pool's slow paths: refill from the system allocator, return the excess,
// and free a thread's lists when it exits.

#include <troupe/core/detail/pool.hpp>

namespace troupe::detail {

#ifndef TROUPE_POOL_DISABLED
namespace {
struct pool_cleanup {
  ~pool_cleanup() {
    pool_lists& p = tls_pool;
    for (std::size_t k = 0; k < pool_lists::classes; ++k) {
      while (pool_lists::block* b = p.heads[k]) {
        p.heads[k] = b->next;
        ::operator delete(b);
      }
      p.counts[k] = 0;
    }
  }
};
thread_local pool_cleanup tls_cleanup;

void register_cleanup() noexcept {
  pool_lists& p = tls_pool;
  if (!p.cleanup_registered) {
    p.cleanup_registered = true;
    (void)&tls_cleanup;  // odr-use: constructs it, so its destructor runs at thread exit
  }
}
}  // namespace

void* pool_allocate_slow(std::size_t k) {
  register_cleanup();
  if (k == 0) k = 1;
  return ::operator new(k* pool_lists::class_bytes);
}

void pool_deallocate_slow(void* ptr, std::size_t k) noexcept {
  pool_lists& p = tls_pool;
  if (!p.cleanup_registered && k != 0 && k < pool_lists::classes) {
    register_cleanup();
    pool_deallocate(ptr, k * pool_lists::class_bytes);
    return;
  }
  ::operator delete(ptr);
}
#endif

}  // namespace troupe::detail
