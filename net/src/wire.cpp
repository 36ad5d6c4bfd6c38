#include <troupe/net/wire.hpp>

namespace troupe::net {

std::uint64_t bounded_input_archive::read_size() {
  std::uint32_t n;
  read(&n, sizeof n);
  // Every element takes at least one byte, so a size beyond the bytes left is a
  // lie; refusing it here, before the container is sized, is what keeps a small
  // hostile payload from demanding a huge allocation. The budget bounds the sum
  // of all sizes too, which catches nested containers each claiming "the rest".
  if (n > remaining()) reject("size tag larger than the bytes left");
  if (n > size_budget_) reject("size tags claim more elements than the payload has bytes");
  size_budget_ -= n;
  return n;
}

void bounded_input_archive::reject(const char* why) { throw wire_error(why); }

}  // namespace troupe::net
