// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// definition<Context>: a saga type — a serializable context and an ordered
/// list of steps, each with an action and optionally a compensation.
///
///   struct order {
///     std::string sku;  int qty = 0;
///     template <class A> void serialize(A& a) { a(CEREAL_NVP(sku), CEREAL_NVP(qty)); }
///   };
///   auto def = std::make_shared<troupe::saga::definition<order>>("order");
///   def->step("reserve")
///       .action([inv](order& o, step_call c) -> task<step_result> {
///         reserve r{c.idempotency_key, o.sku, o.qty};
///         auto call = inv.ask(std::move(r), 2s);
///         auto reply = co_await call;
///         co_return reply ? *reply : make_error_code(troupe::errc::ask_timeout);
///       })
///       .compensate([inv](order& o, step_call c) -> task<step_result> { ... })
///       .timeout(5s);
///   def->step("charge") ... ;
///   def->parallel_step("notify") ... ;  // runs together with "charge"
///
/// The context is serialized with cereal: its serialize() is read from the
/// start request's JSON input (parsed by Boost.JSON, read by a cereal archive
/// with the rules of cereal's JSON archive: every field by name) and
/// stored in cereal's binary form after every transition. Actions and
/// compensations receive the idempotency key "<saga id>/<step name>"; a
/// participant must apply each key at most once (see docs/saga.md).
///
/// Captures of action lambdas live in the definition, which the orchestrator
/// keeps alive (shared_ptr) as long as any saga of the type may run.

#include <cereal/archives/binary.hpp>
#include <cereal/archives/json.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <chrono>
#include <functional>
#include <istream>
#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>
#include <troupe/core/assert.hpp>
#include <troupe/core/error.hpp>
#include <troupe/core/task.hpp>
#include <troupe/saga/detail/json_input.hpp>
#include <troupe/saga/error.hpp>
#include <troupe/saga/record.hpp>
#include <vector>

namespace troupe::saga {

/// What an action or compensation returns: empty on success.
using step_result = boost::system::error_code;

/// Exponential backoff between attempts. The defaults are Temporal's (1 s,
/// x2, capped at 100 s) except that attempts are bounded: 10 by default.
struct retry_policy {
  std::chrono::milliseconds initial{1000};
  double multiplier = 2.0;
  std::chrono::milliseconds max_interval{100'000};
  std::uint32_t max_attempts = 10;  ///< including the first; at least 1
  /// Errors that are never retried (saga_errc::rejected never is, listed or not).
  std::vector<boost::system::error_code> non_retryable{};

  /// The wait after attempt number `attempt` (1-based) failed.
  std::chrono::milliseconds backoff(std::uint32_t attempt) const;
  bool retryable(const boost::system::error_code& ec) const;
};

/// What an action, compensation or two-phase call is told.
struct step_call {
  std::uint64_t saga_id = 0;
  std::string step;  ///< the step's name
  std::string
      idempotency_key;  ///< "<saga id>/<step name>": the same on every attempt and after a restart
  std::uint32_t attempt = 1;  ///< 1-based, of this action or compensation
  std::string participant;    ///< two-phase steps: the participant's name; else empty
};

enum class step_kind : std::uint8_t { action, two_phase };
/// Which coroutine of a step to run.
enum class step_op : std::uint8_t { action, compensation, try_, confirm, cancel };

/// A step as the orchestrator sees it (no coroutine types).
struct step_spec {
  std::string name;
  std::uint32_t group = 0;  ///< steps with the same group run together
  step_kind kind = step_kind::action;
  retry_policy retry{};               ///< for the action (and a two-phase confirm)
  retry_policy compensation_retry{};  ///< for compensations and two-phase cancels
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  ///< per attempt
  bool has_compensation = false;
  std::vector<std::string> participants;  ///< two-phase steps
};

namespace detail {
/// A saga's context behind a virtual interface.
class context_base {
 public:
  virtual ~context_base() = default;
  virtual std::string encode() const = 0;
};
/// Streams into a string and out of a string_view without stringstream's copies.
struct string_sink final : std::streambuf {
  explicit string_sink(std::string* s = nullptr) : out(s) {}
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) out->push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char* p, std::streamsize n) override {
    out->append(p, static_cast<std::size_t>(n));
    return n;
  }
  std::string* out;
};
/// A std::ostream over a string_sink, one per thread: constructing a stream
/// (its locale set-up) cost more than encoding a small context. `busy` guards
/// against a nested use, which gets a stream of its own.
struct encode_stream {
  string_sink sink;
  std::ostream os{&sink};
  bool busy = false;
};
inline encode_stream& this_thread_encode_stream() {
  thread_local encode_stream s;
  return s;
}
struct view_source final : std::streambuf {
  explicit view_source(std::string_view v) {
    char* p = const_cast<char*>(v.data());  // read only: the get area is never written
    setg(p, p, p + v.size());
  }
};

template <class Ctx>
class context_box final : public context_base {
 public:
  Ctx value{};
  std::string encode() const override {
    std::string out;
    encode_stream& shared = this_thread_encode_stream();
    if (shared.busy) {
      string_sink sink(&out);
      std::ostream os(&sink);
      cereal::BinaryOutputArchive a(os);
      a(const_cast<Ctx&>(value));
      return out;
    }
    struct release {
      encode_stream& s;
      ~release() {
        s.sink.out = nullptr;
        s.busy = false;
      }
    } guard{shared};
    shared.busy = true;
    shared.sink.out = &out;
    {
      cereal::BinaryOutputArchive a(shared.os);
      a(const_cast<Ctx&>(value));
    }
    return out;
  }
};
}  // namespace detail

/// A saga type as the orchestrator sees it.
class saga_type {
 public:
  explicit saga_type(std::string name) : name_(std::move(name)) {}
  virtual ~saga_type() = default;
  const std::string& name() const noexcept { return name_; }
  const std::vector<step_spec>& steps() const noexcept { return specs_; }
  /// A deadline for the whole saga, from its start; zero = none.
  std::chrono::milliseconds deadline() const noexcept { return deadline_; }

  /// Decodes a start request's JSON input; saga_errc::malformed_input on failure.
  virtual result<std::shared_ptr<detail::context_base>> parse_input(
      std::string_view json) const = 0;
  /// Decodes a stored context; saga_errc::bad_record on failure.
  virtual result<std::shared_ptr<detail::context_base>> decode(std::string_view bytes) const = 0;
  /// Runs one coroutine of step `step` (`participant` for two-phase calls).
  virtual task<step_result> invoke(std::size_t step, std::size_t participant, step_op op,
                                   detail::context_base& ctx, step_call call) const = 0;

 protected:
  std::string name_;
  std::vector<step_spec> specs_;
  std::chrono::milliseconds deadline_{0};
};

template <class Ctx>
class definition final : public saga_type {
 public:
  using fn = std::function<task<step_result>(Ctx&, step_call)>;

  class step_builder {
   public:
    step_builder& action(fn f) {
      d_->fns_[i_].action = std::move(f);
      return *this;
    }
    step_builder& compensate(fn f) {
      d_->fns_[i_].compensation = std::move(f);
      d_->specs_[i_].has_compensation = true;
      return *this;
    }
    /// Two-phase steps: one participant's try, confirm and cancel.
    step_builder& participant(std::string name, fn try_fn, fn confirm_fn, fn cancel_fn) {
      TROUPE_ASSERT(d_->specs_[i_].kind == step_kind::two_phase,
                    "saga: participant() on a step that is not two-phase");
      d_->specs_[i_].participants.push_back(std::move(name));
      d_->fns_[i_].tcc.push_back({std::move(try_fn), std::move(confirm_fn), std::move(cancel_fn)});
      return *this;
    }
    step_builder& retry(retry_policy p) {
      TROUPE_ASSERT(p.max_attempts >= 1, "saga: max_attempts must be at least 1");
      d_->specs_[i_].retry = std::move(p);
      return *this;
    }
    step_builder& compensation_retry(retry_policy p) {
      TROUPE_ASSERT(p.max_attempts >= 1, "saga: max_attempts must be at least 1");
      d_->specs_[i_].compensation_retry = std::move(p);
      return *this;
    }
    step_builder& timeout(std::chrono::milliseconds t) {
      TROUPE_ASSERT(t.count() > 0, "saga: a step timeout must be positive");
      d_->specs_[i_].timeout = t;
      return *this;
    }

   private:
    friend class definition;
    step_builder(definition* d, std::size_t i) : d_(d), i_(i) {}
    definition* d_;
    std::size_t i_;
  };

  explicit definition(std::string name) : saga_type(std::move(name)) {}

  /// A step that runs after every step before it.
  step_builder step(std::string name) { return add(std::move(name), step_kind::action, true); }
  /// A step that runs together with the previous step (a parallel group: the
  /// group fails if one of its steps fails; its completed steps are then
  /// compensated together).
  step_builder parallel_step(std::string name) {
    TROUPE_ASSERT(!specs_.empty(), "saga: parallel_step() needs a step before it");
    return add(std::move(name), step_kind::action, false);
  }
  /// A two-phase (try/confirm/cancel) step: add its participants with
  /// participant(). Every try runs; if all succeed the decision to confirm is
  /// logged and every participant is confirmed, else every participant is
  /// cancelled and the step fails.
  step_builder two_phase_step(std::string name) {
    return add(std::move(name), step_kind::two_phase, true);
  }
  /// A deadline for the whole forward run, from the saga's start.
  definition& deadline(std::chrono::milliseconds d) {
    deadline_ = d;
    return *this;
  }
  /// Replaces the JSON input decoder (default: Ctx's serialize() over the parsed JSON).
  definition& input_parser(std::function<result<Ctx>(std::string_view)> p) {
    parser_ = std::move(p);
    return *this;
  }

  result<std::shared_ptr<detail::context_base>> parse_input(std::string_view json) const override {
    auto box = std::make_shared<detail::context_box<Ctx>>();
    if (parser_) {
      result<Ctx> r = parser_(json);
      if (!r) return failure<std::shared_ptr<detail::context_base>>(r.error());
      box->value = std::move(*r);
      return std::shared_ptr<detail::context_base>(std::move(box));
    }
    try {
      detail::json_document doc;
      if (!doc.parse(json))
        return failure<std::shared_ptr<detail::context_base>>(
            make_error_code(saga_errc::malformed_input));
      detail::json_input_archive a(doc.root());
      box->value.serialize(a);
    } catch (const std::exception&) {
      return failure<std::shared_ptr<detail::context_base>>(
          make_error_code(saga_errc::malformed_input));
    }
    return std::shared_ptr<detail::context_base>(std::move(box));
  }

  result<std::shared_ptr<detail::context_base>> decode(std::string_view bytes) const override {
    auto box = std::make_shared<detail::context_box<Ctx>>();
    try {
      detail::view_source src(bytes);
      std::istream is(&src);
      cereal::BinaryInputArchive a(is);
      a(box->value);
    } catch (const std::exception&) {
      return failure<std::shared_ptr<detail::context_base>>(make_error_code(saga_errc::bad_record));
    }
    return std::shared_ptr<detail::context_base>(std::move(box));
  }

  task<step_result> invoke(std::size_t step, std::size_t participant, step_op op,
                           detail::context_base& ctx, step_call call) const override {
    TROUPE_ASSERT(step < fns_.size(), "saga: step index out of range");
    const auto& f = fns_[step];
    const fn* target = nullptr;
    switch (op) {
      case step_op::action:
        target = &f.action;
        break;
      case step_op::compensation:
        target = &f.compensation;
        break;
      case step_op::try_:
      case step_op::confirm:
      case step_op::cancel: {
        TROUPE_ASSERT(participant < f.tcc.size(), "saga: participant index out of range");
        const auto& p = f.tcc[participant];
        target = op == step_op::try_ ? &p.try_fn : op == step_op::confirm ? &p.confirm : &p.cancel;
        break;
      }
    }
    TROUPE_ASSERT(*target, "saga: a step has no coroutine for this operation");
    return (*target)(static_cast<detail::context_box<Ctx>&>(ctx).value, std::move(call));
  }

 private:
  struct tcc_fns {
    fn try_fn, confirm, cancel;
  };
  struct step_fns {
    fn action, compensation;
    std::vector<tcc_fns> tcc;
  };

  step_builder add(std::string name, step_kind kind, bool new_group) {
    TROUPE_ASSERT(!name.empty(), "saga: a step needs a name");
    for (auto& s : specs_) TROUPE_ASSERT(s.name != name, "saga: two steps with the same name");
    step_spec s;
    s.name = std::move(name);
    s.kind = kind;
    s.group = specs_.empty() ? 0 : specs_.back().group + (new_group ? 1 : 0);
    specs_.push_back(std::move(s));
    fns_.emplace_back();
    return step_builder{this, specs_.size() - 1};
  }

  std::vector<step_fns> fns_;
  std::function<result<Ctx>(std::string_view)> parser_;
};

/// The saga types an orchestrator knows, by name.
class registry {
 public:
  void add(std::shared_ptr<const saga_type> t);
  const saga_type* find(std::string_view name) const noexcept;

 private:
  std::vector<std::shared_ptr<const saga_type>> types_;
};

}  // namespace troupe::saga
