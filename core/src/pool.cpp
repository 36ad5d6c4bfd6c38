// Per-thread free lists by 16-byte size class, up to 512 bytes. Under
// AddressSanitizer the pool steps aside so every block is checked.

#include <troupe/core/detail/pool.hpp>

#include <cstdint>
#include <new>

namespace troupe::detail {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TROUPE_POOL_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TROUPE_POOL_DISABLED 1
#endif
#endif

#ifndef TROUPE_POOL_DISABLED
namespace {
constexpr std::size_t class_bytes = 16;
constexpr std::size_t classes = 32;                    // up to 512 bytes
constexpr std::size_t list_bytes_max = 4u << 20;       // per class and thread

struct free_block {
  free_block* next;
};

struct thread_pool {
  free_block* heads[classes] = {};
  std::size_t counts[classes] = {};
  ~thread_pool() {
    for (auto& head : heads) {
      while (head) {
        free_block* next = head->next;
        ::operator delete(head);
        head = next;
      }
    }
  }
};

thread_local thread_pool tls_pool;

inline std::size_t class_of(std::size_t bytes) noexcept { return (bytes + class_bytes - 1) / class_bytes; }
}  // namespace

void* pool_allocate(std::size_t bytes) {
  std::size_t k = class_of(bytes);
  if (k >= classes || k == 0) return ::operator new(bytes);
  thread_pool& p = tls_pool;
  if (free_block* b = p.heads[k]) {
    p.heads[k] = b->next;
    --p.counts[k];
    return b;
  }
  return ::operator new(k * class_bytes);
}

void pool_deallocate(void* ptr, std::size_t bytes) noexcept {
  std::size_t k = class_of(bytes);
  if (k >= classes || k == 0) {
    ::operator delete(ptr);
    return;
  }
  thread_pool& p = tls_pool;
  if (p.counts[k] * k * class_bytes >= list_bytes_max) {
    ::operator delete(ptr);
    return;
  }
  auto* b = static_cast<free_block*>(ptr);
  b->next = p.heads[k];
  p.heads[k] = b;
  ++p.counts[k];
}
#else
void* pool_allocate(std::size_t bytes) { return ::operator new(bytes); }
void pool_deallocate(void* ptr, std::size_t) noexcept { ::operator delete(ptr); }
#endif

}  // namespace troupe::detail
