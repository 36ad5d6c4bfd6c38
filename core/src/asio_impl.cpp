// SPDX-License-Identifier: BSL-1.0
// Boost.Asio is compiled once, here (BOOST_ASIO_SEPARATE_COMPILATION).

#if defined(BOOST_ASIO_HAS_IO_URING)
// Work around a defect of Asio 1.26 (Boost 1.81) with liburing 2.3: Asio
// prepares some submissions (timeout_remove in io_context::run_one_for, and
// every cancel: socket close or cancel with operations pending, per-operation
// cancellation) without setting their user_data, and liburing 2.3 does not
// clear a recycled submission slot. Once the ring wraps, such a submission
// carries an earlier operation's user_data, and its completion is taken for
// that operation's: a read "completes" with bytes or an EOF that never
// arrived, an accept with fd 0. Clearing user_data on every slot handed out
// makes those completions carry null, which Asio ignores. Asio's own
// io_uring_service code is the only caller of io_uring_get_sqe and
// io_uring_queue_init, and it is compiled in this translation unit alone.
#include <liburing.h>

static inline ::io_uring_sqe* troupe_io_uring_get_sqe_cleared(::io_uring* ring) {
  ::io_uring_sqe* sqe = ::io_uring_get_sqe(ring);
  if (sqe) ::io_uring_sqe_set_data(sqe, nullptr);
  return sqe;
}
#define io_uring_get_sqe troupe_io_uring_get_sqe_cleared

// Asio creates its ring with no setup flags. By default the kernel hands a
// socket completion to the ring's thread as task work and interrupts that
// thread (an IPI) to run it; a shard spinning in user space on this KVM guest
// then sees the completion very late: a raw io_uring ping-pong whose threads
// spin on the completion queue made 6.3 k round trips/s so, against 111 k with
// the flags below (benchmarks/RESULTS.md). With COOP_TASKRUN the kernel sends
// no IPI, and with TASKRUN_FLAG it raises IORING_SQ_TASKRUN in the shared ring
// instead; liburing's peek (under Asio's poll) then enters the kernel to run
// the work, and a spinning shard watches that flag and the completion queue
// directly (shard::io_pending). A thread blocked in the ring is still woken
// as before. Kernels older than 5.19 refuse the flags: fall back to none.
#include <cerrno>

namespace troupe::detail {
namespace {
thread_local ::io_uring* last_ring = nullptr;
}
::io_uring* last_io_uring_created() noexcept { return last_ring; }
}  // namespace troupe::detail

static inline int troupe_io_uring_queue_init(unsigned entries, ::io_uring* ring, unsigned flags) {
  ::io_uring_params p{};
  p.flags = flags | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  int r = ::io_uring_queue_init_params(entries, ring, &p);
  if (r == -EINVAL) r = ::io_uring_queue_init(entries, ring, flags);
  if (r == 0) troupe::detail::last_ring = ring;
  return r;
}
#define io_uring_queue_init troupe_io_uring_queue_init
#endif

#include <boost/asio/impl/src.hpp>
