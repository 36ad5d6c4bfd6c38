// SPDX-License-Identifier: BSL-1.0
#include <string>
#include <troupe/saga/error.hpp>

namespace troupe::saga {
namespace {
class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "troupe.saga"; }
  std::string message(int ev) const override {
    switch (static_cast<saga_errc>(ev)) {
      case saga_errc::unknown_saga_type:
        return "no saga type is registered under that name";
      case saga_errc::malformed_input:
        return "the input does not decode into the saga's context";
      case saga_errc::idempotency_conflict:
        return "the idempotency key belongs to a saga with another type or input";
      case saga_errc::not_found:
        return "no saga with that id";
      case saga_errc::not_running:
        return "the saga is not running";
      case saga_errc::step_timeout:
        return "the step did not finish within its timeout";
      case saga_errc::deadline_exceeded:
        return "the saga's deadline passed";
      case saga_errc::cancelled:
        return "the saga was cancelled";
      case saga_errc::rejected:
        return "the participant rejected the step";
      case saga_errc::action_threw:
        return "the action threw an exception";
      case saga_errc::store_failed:
        return "the saga store failed";
      case saga_errc::bad_record:
        return "a stored saga record does not decode";
      case saga_errc::overloaded:
        return "too many sagas are waiting to run on this orchestrator; retry later";
      case saga_errc::wait_timeout:
        return "the saga did not finish within the wait";
    }
    return "unknown saga error";
  }
};
}  // namespace

const boost::system::error_category& saga_category() noexcept {
  static const category c;
  return c;
}
}  // namespace troupe::saga
