// SPDX-License-Identifier: BSL-1.0
// Boost.Beast is compiled once, here (BOOST_BEAST_SEPARATE_COMPILATION).
#include <boost/beast/src.hpp>
