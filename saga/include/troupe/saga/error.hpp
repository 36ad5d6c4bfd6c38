// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// saga_errc: the expected failures of the saga library, as an error_code category.

#include <boost/system/error_code.hpp>

namespace troupe::saga {

/// Why a saga request, a step or a store operation did not succeed.
enum class saga_errc {
  unknown_saga_type = 1,  ///< start: no definition registered under that name
  malformed_input,        ///< start: the input does not decode into the saga's context
  idempotency_conflict,   ///< start: the key exists with another type or another input
  not_found,              ///< no saga with that id
  not_running,            ///< cancel: the saga is not pending or running
  step_timeout,           ///< a step attempt did not finish within the step's timeout
  deadline_exceeded,      ///< the saga's deadline passed before its steps completed
  cancelled,              ///< a cancel request stopped the forward run
  rejected,               ///< a participant refused for good: never retried
  action_threw,           ///< an action or compensation threw an exception
  store_failed,           ///< the saga store could not read or write (see the log)
  bad_record,             ///< a stored record does not decode
  wait_timeout,           ///< wait_saga: the saga did not finish in time
  overloaded,             ///< start: as many sagas wait to run as max_queued allows
};

const boost::system::error_category& saga_category() noexcept;

inline boost::system::error_code make_error_code(saga_errc e) noexcept {
  return {static_cast<int>(e), saga_category()};
}

}  // namespace troupe::saga

template <>
struct boost::system::is_error_code_enum<troupe::saga::saga_errc> : std::true_type {};
