// SPDX-License-Identifier: BSL-1.0
// Asio's SSL support is compiled once, here (BOOST_ASIO_SEPARATE_COMPILATION;
// the rest of Asio is in core/src/asio_impl.cpp).
#include <boost/asio/ssl/impl/src.hpp>
