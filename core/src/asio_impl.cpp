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
// io_uring_service code is the only caller of io_uring_get_sqe, and it is
// compiled in this translation unit alone.
#include <liburing.h>

static inline ::io_uring_sqe* troupe_io_uring_get_sqe_cleared(::io_uring* ring) {
  ::io_uring_sqe* sqe = ::io_uring_get_sqe(ring);
  if (sqe) ::io_uring_sqe_set_data(sqe, nullptr);
  return sqe;
}
#define io_uring_get_sqe troupe_io_uring_get_sqe_cleared
#endif

#include <boost/asio/impl/src.hpp>
