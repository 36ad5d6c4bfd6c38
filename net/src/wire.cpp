// SPDX-License-Identifier: BSL-1.0
#include <troupe/net/wire.hpp>

namespace troupe::net {

void bounded_reader::reject(const char* why) { throw wire_error(why); }

namespace detail {

namespace {
// The thread's archives, built on first use and rebuilt after a payload that
// left state in them (see output_lease).
struct archive_slots {
  std::optional<wire_output_archive> out;
  std::optional<bounded_input_archive> in;
  bool out_lent = false;
  bool in_lent = false;
};
thread_local archive_slots slots;
}  // namespace

output_lease::output_lease(std::string& out) {
  archive_slots& t = slots;
  if (t.out_lent) {
    ar_ = &own_.emplace(out);
    return;
  }
  t.out_lent = true;
  if (t.out)
    t.out->retarget(out);
  else
    t.out.emplace(out);
  ar_ = &*t.out;
}

output_lease::~output_lease() {
  if (own_) return;
  archive_slots& t = slots;
  if (!keep_ || t.out->stateful()) t.out.reset();
  t.out_lent = false;
}

input_lease::input_lease(std::string_view bytes) {
  archive_slots& t = slots;
  if (t.in_lent) {
    ar_ = &own_.emplace(bytes);
    return;
  }
  t.in_lent = true;
  if (t.in)
    t.in->reset(bytes);
  else
    t.in.emplace(bytes);
  ar_ = &*t.in;
}

input_lease::~input_lease() {
  if (own_) return;
  archive_slots& t = slots;
  if (!keep_ || t.in->stateful()) t.in.reset();
  t.in_lent = false;
}

}  // namespace detail

}  // namespace troupe::net
