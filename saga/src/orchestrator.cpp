// SPDX-License-Identifier: BSL-1.0
#include <time.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <troupe/saga/error.hpp>
#include <troupe/saga/orchestrator.hpp>

namespace troupe::saga {

namespace {
// Wall-clock times for records and deadlines. The coarse clock (a few ms of
// resolution) costs a fraction of the precise one, and a saga reads it on
// every transition; record times and deadlines do not need better.
std::int64_t wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
std::string describe(const boost::system::error_code& ec) {
  return std::string(ec.category().name()) + ": " + ec.message();
}
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
template <class T>
result<T> fail(saga_errc e) {
  return failure<T>(make_error_code(e));
}
}  // namespace

// ---------------------------------------------------------------------------
// retry_policy and registry

std::chrono::milliseconds retry_policy::backoff(std::uint32_t attempt) const {
  double d = static_cast<double>(initial.count());
  for (std::uint32_t i = 1; i < attempt && d < static_cast<double>(max_interval.count()); ++i)
    d *= multiplier;
  d = std::min(d, static_cast<double>(max_interval.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(d));
}

bool retry_policy::retryable(const boost::system::error_code& ec) const {
  if (ec == saga_errc::rejected || ec == saga_errc::cancelled ||
      ec == saga_errc::deadline_exceeded || ec == saga_errc::store_failed)
    return false;
  return std::find(non_retryable.begin(), non_retryable.end(), ec) == non_retryable.end();
}

void registry::add(std::shared_ptr<const saga_type> t) {
  TROUPE_ASSERT(t && !t->steps().empty(), "saga: a saga type needs at least one step");
  TROUPE_ASSERT(find(t->name()) == nullptr, "saga: two saga types with the same name");
  types_.push_back(std::move(t));
}

const saga_type* registry::find(std::string_view name) const noexcept {
  for (auto& t : types_)
    if (t->name() == name) return t.get();
  return nullptr;
}

// ---------------------------------------------------------------------------

namespace detail {
/// Where a parallel group waits for its members: the timer never expires on
/// its own; the last member to finish cancels it.
struct join {
  explicit join(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  std::size_t remaining = 0;
  step_result error;
};
struct waiter {
  explicit waiter(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  std::optional<result<saga_record>> outcome;
};
}  // namespace detail

struct orchestrator::active {
  saga_record rec;
  const saga_type* type = nullptr;
  std::shared_ptr<detail::context_base> ctx;
  bool broken = false;             // a store write failed: stop here, recovery resumes it
  bool stuck_forward = false;      // a two-phase confirm or cancel kept failing
  bool first_start_saved = false;  // step 0's first attempt went into the store with the create
  step_result failure;             // why the forward run stopped
  std::vector<boost::asio::steady_timer*> sleepers;  // backoff waits a cancel cuts short
  std::vector<std::shared_ptr<detail::waiter>> waiters;
};

orchestrator::orchestrator(orchestrator_options opts) : opts_(std::move(opts)) {
  TROUPE_ASSERT(opts_.store != nullptr, "orchestrator: no store");
  TROUPE_ASSERT(opts_.types != nullptr, "orchestrator: no saga types");
  TROUPE_ASSERT(opts_.max_active >= 1, "orchestrator: max_active must be at least 1");
  TROUPE_ASSERT(opts_.history_cap >= 1, "orchestrator: history_cap must be at least 1");
}

orchestrator::~orchestrator() = default;

void orchestrator::admit(std::uint64_t id) {
  if (running_ < opts_.max_active) {
    ++running_;
    (void)troupe::ref_of(this).tell(detail::run_saga{id});
  } else {
    queued_.push_back(id);
  }
}

void orchestrator::event(active& s, event_kind k, int step, std::uint32_t attempt,
                         std::string detail) {
  auto& h = s.rec.history;
  if (h.size() >= opts_.history_cap) {
    h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(h.size() - opts_.history_cap + 1));
    ++s.rec.history_dropped;
  }
  h.push_back(saga_event{wall_ns(), k, step, attempt, std::move(detail)});
}

task<bool> orchestrator::save(active& s) {
  s.rec.updated_ns = wall_ns();
  std::string blob = encode_record(s.rec);
  auto t = opts_.store->save(s.rec.id, s.rec.state, std::move(blob));
  boost::system::error_code ec = co_await std::move(t);
  if (ec) {
    system().log(log_level::error, "saga",
                 "saga " + std::to_string(s.rec.id) + ": store write failed (" + describe(ec) +
                     "); the saga stops here and resumes on recovery");
    s.broken = true;
    co_return false;
  }
  co_return true;
}

// --- start, cancel, queries -------------------------------------------------

// A start is prepared and settled in plain functions around the one store
// write it awaits: the handler's coroutine frame then holds little more than
// the request (a frame of more than 512 bytes is not pooled).
struct orchestrator::start_plan {
  std::unique_ptr<active> a;
  stored_saga row;
  bool run_now = false;
};

result<orchestrator::start_plan> orchestrator::plan_start(start_saga& m) {
  const saga_type* type = opts_.types->find(m.type);
  if (!type) return fail<start_plan>(saga_errc::unknown_saga_type);
  auto ctx = type->parse_input(m.input);
  if (!ctx) return failure<start_plan>(ctx.error());

  start_plan p;
  p.a = fresh_active();
  active& a = *p.a;
  a.type = type;
  a.ctx = std::move(*ctx);
  saga_record& r = a.rec;
  r.id = opts_.store->next_id();
  r.type = std::move(m.type);
  r.idempotency_key = std::move(m.idempotency_key);
  r.state = saga_state::pending;
  r.context = a.ctx->encode();
  r.input_hash = fnv1a(r.context);
  r.created_ns = r.updated_ns = wall_ns();
  if (type->deadline().count() > 0)
    r.deadline_ns = r.created_ns +
                    std::chrono::duration_cast<std::chrono::nanoseconds>(type->deadline()).count();
  r.steps.reserve(type->steps().size());
  r.history.reserve(std::min<std::size_t>(opts_.history_cap, 4 * type->steps().size() + 4));
  for (auto& spec : type->steps()) {
    step_state st;
    st.name = spec.name;
    r.steps.push_back(std::move(st));
  }
  event(a, event_kind::created, -1, 0);

  // With a free slot, the create also records the saga as running and its
  // first step's first attempt as started: one store write fewer per saga,
  // and still durable before that action runs.
  const auto& specs = type->steps();
  p.run_now = running_ < opts_.max_active && queued_.empty() &&
              specs[0].kind == step_kind::action &&
              (specs.size() == 1 || specs[1].group != specs[0].group);
  if (p.run_now) {
    ++running_;  // the slot is taken now: other starts interleave at the create
    r.state = saga_state::running;
    event(a, event_kind::started, -1, 0);
    step_state& first = r.steps[0];
    first.status = step_status::running;
    first.attempts = 1;
    first.started_ns = r.created_ns;
    event(a, event_kind::step_started, 0, 1);
    a.first_start_saved = true;
  }
  p.row = stored_saga{r.id, r.idempotency_key, r.state, encode_record(r)};
  return p;
}

result<started> orchestrator::settle_start(start_plan& p,
                                           result<std::optional<stored_saga>>& created) {
  if (!created || *created) {
    if (p.run_now) release_slot();
  }
  if (!created) return failure<started>(created.error());
  const saga_record& r = p.a->rec;
  if (*created) {
    auto existing = decode_record((*created)->record);
    if (!existing) return failure<started>(existing.error());
    if (existing->type != r.type || existing->input_hash != r.input_hash)
      return fail<started>(saga_errc::idempotency_conflict);
    return started{existing->id, false};
  }
  std::uint64_t id = r.id;
  active_.emplace(id, std::move(p.a));
  if (p.run_now)
    (void)troupe::ref_of(this).tell(detail::run_saga{id});
  else
    admit(id);
  return started{id, true};
}

task<result<started>> orchestrator::handle(start_saga m) {
  // Every running slot taken and the queue full (counting starts still
  // being stored): refused before anything is parsed or stored.
  if (running_ >= opts_.max_active && queued_.size() + starting_ >= opts_.max_queued) {
    ++stats_.starts_refused;
    co_return fail<started>(saga_errc::overloaded);
  }
  auto plan = plan_start(m);
  if (!plan) co_return failure<started>(plan.error());
  ++starting_;
  struct count_down {
    std::size_t& n;
    ~count_down() { --n; }
  } counted{starting_};
  auto t = opts_.store->create(std::move(plan->row));
  auto created = co_await std::move(t);
  co_return settle_start(*plan, created);
}

task<result<void>> orchestrator::handle(cancel_saga m) {
  auto it = active_.find(m.id);
  if (it == active_.end()) {
    auto t = opts_.store->load(m.id);
    auto row = co_await std::move(t);
    if (!row) co_return failure<void>(row.error());
    co_return fail<void>(saga_errc::not_running);
  }
  active& s = *it->second;
  if (s.rec.state != saga_state::pending && s.rec.state != saga_state::running)
    co_return fail<void>(saga_errc::not_running);
  if (!s.rec.cancel_requested) {
    s.rec.cancel_requested = true;
    event(s, event_kind::cancel_requested, -1, 0);
    for (auto* t : s.sleepers) t->cancel();
    auto t = save(s);
    if (!co_await std::move(t)) co_return fail<void>(saga_errc::store_failed);
  }
  co_return result<void>{};
}

task<result<saga_record>> orchestrator::handle(get_saga m) {
  auto t = opts_.store->load(m.id);
  auto row = co_await std::move(t);
  if (!row) co_return failure<saga_record>(row.error());
  co_return decode_record(row->record);
}

task<result<std::vector<saga_record>>> orchestrator::handle(list_sagas m) {
  auto t = opts_.store->list(m.state, m.limit, m.after);
  auto rows = co_await std::move(t);
  if (!rows) co_return failure<std::vector<saga_record>>(rows.error());
  std::vector<saga_record> out;
  out.reserve(rows->size());
  for (auto& row : *rows) {
    auto r = decode_record(row.record);
    if (!r) co_return failure<std::vector<saga_record>>(r.error());
    out.push_back(std::move(*r));
  }
  co_return out;
}

task<result<saga_record>> orchestrator::handle(wait_saga m) {
  auto it = active_.find(m.id);
  if (it == active_.end()) {
    auto t = opts_.store->load(m.id);
    auto row = co_await std::move(t);
    if (!row) co_return failure<saga_record>(row.error());
    co_return decode_record(row->record);
  }
  auto w = std::make_shared<detail::waiter>(runtime::this_io());
  w->timer.expires_after(m.timeout);
  it->second->waiters.push_back(w);
  auto wait = w->timer.async_wait(use_task);
  co_await wait;
  if (w->outcome) co_return std::move(*w->outcome);
  if (auto again = active_.find(m.id); again != active_.end())
    std::erase(again->second->waiters, w);
  co_return fail<saga_record>(saga_errc::wait_timeout);
}

task<result<std::size_t>> orchestrator::handle(recover) {
  auto t = opts_.store->unfinished();
  auto rows = co_await std::move(t);
  if (!rows) co_return failure<std::size_t>(rows.error());
  std::size_t n = 0;
  for (auto& row : *rows) {
    if (active_.contains(row.id)) continue;
    auto rec = decode_record(row.record);
    if (!rec) {
      system().log(log_level::error, "saga",
                   "saga " + std::to_string(row.id) + ": stored record does not decode; skipped");
      continue;
    }
    const saga_type* type = opts_.types->find(rec->type);
    if (!type || type->steps().size() != rec->steps.size()) {
      system().log(log_level::error, "saga",
                   "saga " + std::to_string(row.id) + ": type '" + rec->type +
                       "' is not registered (or has another number of steps); left unfinished");
      continue;
    }
    auto ctx = type->decode(rec->context);
    if (!ctx) {
      system().log(log_level::error, "saga",
                   "saga " + std::to_string(row.id) + ": context does not decode; skipped");
      continue;
    }
    auto a = std::make_unique<active>();
    a->rec = std::move(*rec);
    a->type = type;
    a->ctx = std::move(*ctx);
    event(*a, event_kind::recovered, -1, 0);
    std::uint64_t id = row.id;
    active_.emplace(id, std::move(a));
    admit(id);
    ++n;
  }
  co_return n;
}

// --- running a saga ---------------------------------------------------------

task<void> orchestrator::handle(detail::run_saga m) {
  auto it = active_.find(m.id);
  TROUPE_ASSERT(it != active_.end(), "orchestrator: run_saga for a saga that is not active");
  active& s = *it->second;
  const std::uint32_t groups = s.type->steps().back().group + 1;

  if (s.rec.state == saga_state::pending) {
    s.rec.state = saga_state::running;
    event(s, event_kind::started, -1, 0);  // durable with the first step's start
  }
  if (s.rec.state == saga_state::running) {
    step_result ec;
    for (std::uint32_t g = 0; g < groups && !ec; ++g) {
      if (s.rec.cancel_requested) {
        ec = saga_errc::cancelled;
        if (std::exchange(s.first_start_saved, false)) {  // logged as started, never run
          s.rec.steps[0].status = step_status::failed;
          s.rec.steps[0].last_error = describe(ec);
        }
        break;
      }
      auto t = run_group(s, g, true);
      ec = co_await std::move(t);
    }
    if (s.broken) {
      abandon(s);
      co_return;
    }
    if (s.stuck_forward) {
      s.rec.state = saga_state::stuck;
      s.rec.error = describe(ec);
      event(s, event_kind::stuck, -1, 0, s.rec.error);
      auto t = save(s);
      if (co_await std::move(t))
        finish(s);
      else
        abandon(s);
      co_return;
    }
    if (!ec) {
      s.rec.state = saga_state::completed;
      event(s, event_kind::completed, -1, 0);
      auto t = save(s);
      if (co_await std::move(t))
        finish(s);
      else
        abandon(s);
      co_return;
    }
    // Durable with the first compensation's start (or the final state).
    s.rec.state = saga_state::compensating;
    s.rec.error = describe(ec);
    event(s, event_kind::compensating, -1, 0, s.rec.error);
  }
  TROUPE_ASSERT(s.rec.state == saga_state::compensating, "orchestrator: unexpected saga state");
  step_result stuck;
  for (std::uint32_t g = groups; g-- > 0 && !stuck;) {
    auto t = run_group(s, g, false);
    stuck = co_await std::move(t);
  }
  if (s.broken) {
    abandon(s);
    co_return;
  }
  if (stuck) {
    s.rec.state = saga_state::stuck;
    s.rec.error += "; compensation failed: " + describe(stuck);
    event(s, event_kind::stuck, -1, 0, describe(stuck));
  } else {
    s.rec.state = saga_state::compensated;
    event(s, event_kind::compensated, -1, 0);
  }
  auto t = save(s);
  if (co_await std::move(t))
    finish(s);
  else
    abandon(s);
}

task<step_result> orchestrator::run_group(active& s, std::uint32_t group, bool forward) {
  const auto& specs = s.type->steps();
  // The group's steps that have something to do (counted without a list:
  // nearly every group has one step).
  auto todo = [&](std::size_t i) {
    if (specs[i].group != group) return false;
    step_status st = s.rec.steps[i].status;
    if (forward) return st != step_status::completed;
    return specs[i].has_compensation &&
           (st == step_status::completed || st == step_status::compensating);
  };
  std::size_t count = 0, first = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (!todo(i)) continue;
    if (count++ == 0) first = i;
  }
  if (count == 0) co_return step_result{};
  if (count == 1) {
    auto t = forward ? run_step(s, first) : compensate_step(s, first);
    co_return co_await std::move(t);
  }
  // A parallel group: every member runs as its own handler; wait for all.
  auto j = std::make_shared<detail::join>(runtime::this_io());
  j->remaining = count;
  j->timer.expires_at(boost::asio::steady_timer::time_point::max());
  auto me = troupe::ref_of(this);
  for (std::size_t i = first; i < specs.size(); ++i)
    if (todo(i)) (void)me.tell(detail::run_member{s.rec.id, i, forward, j});
  while (j->remaining > 0) {
    auto wait = j->timer.async_wait(use_task);
    co_await wait;
  }
  co_return j->error;
}

task<void> orchestrator::handle(detail::run_member m) {
  auto it = active_.find(m.saga);
  TROUPE_ASSERT(it != active_.end(), "orchestrator: run_member for a saga that is not active");
  auto t = m.forward ? run_step(*it->second, m.step) : compensate_step(*it->second, m.step);
  step_result ec = co_await std::move(t);
  if (ec && !m.j->error) m.j->error = ec;
  if (--m.j->remaining == 0) m.j->timer.cancel();
}

task<step_result> orchestrator::call(active& s, std::size_t step, std::size_t participant,
                                     step_op op, std::uint32_t attempt,
                                     std::chrono::milliseconds timeout) {
  detail::run_call msg{s.type,
                       s.ctx,
                       s.rec.id,
                       static_cast<std::uint32_t>(step),
                       static_cast<std::uint32_t>(participant),
                       attempt,
                       op};
  const auto t0 = std::chrono::steady_clock::now();
  auto ask = troupe::ref_of(this).ask(std::move(msg), timeout);
  auto r = co_await ask;
  record_step(std::chrono::steady_clock::now() - t0, !r || r->ec);
  if (r) co_return r->ec;
  if (r.error() == troupe::errc::ask_timeout) co_return make_error_code(saga_errc::step_timeout);
  co_return r.error();
}

namespace {
/// Starts one attempt of a step's coroutine (a plain function: the step_call
/// is built and handed over here, not kept in the handler's frame).
/// The idempotency key is "<saga id>/<step>", or "<orchestrator name>/<saga id>/<step>".
task<step_result> start_call(const detail::run_call& m, const std::string& orchestrator_name) {
  const step_spec& spec = m.type->steps()[m.step];
  step_call c;
  c.saga_id = m.saga;
  c.step = spec.name;
  char id[24];
  auto [end, ec] = std::to_chars(id, id + sizeof(id), m.saga);
  TROUPE_ASSERT(ec == std::errc{}, "saga: id does not format");
  const std::size_t prefix = orchestrator_name.empty() ? 0 : orchestrator_name.size() + 1;
  c.idempotency_key.reserve(prefix + static_cast<std::size_t>(end - id) + 1 + spec.name.size());
  if (prefix) c.idempotency_key.append(orchestrator_name).append(1, '/');
  c.idempotency_key.append(id, end).append(1, '/').append(spec.name);
  c.attempt = m.attempt;
  if (spec.kind == step_kind::two_phase) c.participant = spec.participants[m.participant];
  return m.type->invoke(m.step, m.participant, m.op, *m.ctx, std::move(c));
}
}  // namespace

task<detail::call_outcome> orchestrator::handle(detail::run_call m) {
  try {
    auto t = start_call(m, opts_.name);
    step_result r = co_await std::move(t);
    co_return detail::call_outcome{r};
  } catch (const std::exception& e) {
    system().log(log_level::error, "saga", std::string("a step's coroutine threw: ") + e.what());
  }
  co_return detail::call_outcome{make_error_code(saga_errc::action_threw)};
}

task<void> orchestrator::backoff(active& s, std::chrono::milliseconds d, bool cancellable) {
  if (cancellable && s.rec.cancel_requested) co_return;
  boost::asio::steady_timer timer(runtime::this_io(), d);
  if (cancellable) s.sleepers.push_back(&timer);
  struct unlist {
    active& s;
    boost::asio::steady_timer* t;
    ~unlist() { std::erase(s.sleepers, t); }
  } guard{s, &timer};
  auto wait = timer.async_wait(use_task);
  co_await wait;
}

task<step_result> orchestrator::run_step(active& s, std::size_t i) {
  const step_spec& spec = s.type->steps()[i];
  if (spec.kind == step_kind::two_phase) {
    auto t = run_two_phase(s, i);
    co_return co_await std::move(t);
  }
  step_state& st = s.rec.steps[i];
  for (;;) {
    // Step 0's first start may already be in the store (written with the create).
    const bool presaved = i == 0 && std::exchange(s.first_start_saved, false);
    step_result ec;
    std::chrono::milliseconds limit = spec.timeout;
    bool capped = false;
    if (s.rec.cancel_requested) {
      ec = saga_errc::cancelled;
    } else if (s.rec.deadline_ns != 0) {
      std::int64_t left_ms = (s.rec.deadline_ns - wall_ns()) / 1'000'000;
      if (left_ms <= 0) {
        ec = saga_errc::deadline_exceeded;
      } else if (left_ms < limit.count()) {
        limit = std::chrono::milliseconds(left_ms);
        capped = true;
      }
    }
    if (!ec) {
      if (!presaved) {
        st.status = step_status::running;
        ++st.attempts;
        if (st.started_ns == 0) st.started_ns = wall_ns();
        event(s, event_kind::step_started, static_cast<int>(i), st.attempts);
        auto w = save(s);
        if (!co_await std::move(w)) co_return make_error_code(saga_errc::store_failed);
      }
      auto t = call(s, i, 0, step_op::action, st.attempts, limit);
      ec = co_await std::move(t);
      if (!ec) {
        st.status = step_status::completed;
        st.finished_ns = wall_ns();
        event(s, event_kind::step_completed, static_cast<int>(i), st.attempts);
        co_return step_result{};
      }
      if (ec == saga_errc::step_timeout && capped) ec = saga_errc::deadline_exceeded;
      st.last_error = describe(ec);
      event(s, event_kind::step_failed, static_cast<int>(i), st.attempts, st.last_error);
    }
    if (!spec.retry.retryable(ec) || st.attempts >= spec.retry.max_attempts) {
      st.status = step_status::failed;
      st.finished_ns = wall_ns();
      if (st.last_error.empty()) st.last_error = describe(ec);
      event(s, event_kind::step_gave_up, static_cast<int>(i), st.attempts, describe(ec));
      co_return ec;
    }
    auto b = backoff(s, spec.retry.backoff(st.attempts), true);
    co_await std::move(b);
  }
}

task<step_result> orchestrator::compensate_step(active& s, std::size_t i) {
  const step_spec& spec = s.type->steps()[i];
  step_state& st = s.rec.steps[i];
  for (;;) {
    st.status = step_status::compensating;
    ++st.compensation_attempts;
    event(s, event_kind::compensation_started, static_cast<int>(i), st.compensation_attempts);
    auto w = save(s);
    if (!co_await std::move(w)) co_return make_error_code(saga_errc::store_failed);
    auto t = call(s, i, 0, step_op::compensation, st.compensation_attempts, spec.timeout);
    step_result ec = co_await std::move(t);
    if (!ec) {
      st.status = step_status::compensated;
      event(s, event_kind::compensation_completed, static_cast<int>(i), st.compensation_attempts);
      co_return step_result{};
    }
    st.last_error = describe(ec);
    event(s, event_kind::compensation_failed, static_cast<int>(i), st.compensation_attempts,
          st.last_error);
    if (!spec.compensation_retry.retryable(ec) ||
        st.compensation_attempts >= spec.compensation_retry.max_attempts) {
      st.status = step_status::stuck;
      co_return ec;
    }
    auto b = backoff(s, spec.compensation_retry.backoff(st.compensation_attempts), false);
    co_await std::move(b);
  }
}

// Two-phase: try every participant (in order, stopping at the first refusal);
// log the decision; then confirm all or cancel all. Confirms and cancels are
// retried with the compensation policy; if one keeps failing the saga is stuck.
task<step_result> orchestrator::run_two_phase(active& s, std::size_t i) {
  const step_spec& spec = s.type->steps()[i];
  step_state& st = s.rec.steps[i];
  step_result refused;
  if (st.phase == tcc_phase::none || st.phase == tcc_phase::trying) {
    if (s.rec.cancel_requested) co_return make_error_code(saga_errc::cancelled);
    st.status = step_status::running;
    st.phase = tcc_phase::trying;
    ++st.attempts;
    if (st.started_ns == 0) st.started_ns = wall_ns();
    event(s, event_kind::step_started, static_cast<int>(i), st.attempts);
    auto w = save(s);
    if (!co_await std::move(w)) co_return make_error_code(saga_errc::store_failed);
    for (std::size_t p = 0; p < spec.participants.size() && !refused; ++p) {
      auto t = call(s, i, p, step_op::try_, st.attempts, spec.timeout);
      refused = co_await std::move(t);
    }
    if (!refused) {
      st.phase = tcc_phase::confirming;
      event(s, event_kind::prepared, static_cast<int>(i), st.attempts);
    } else {
      st.phase = tcc_phase::cancelling;
      st.last_error = describe(refused);
      event(s, event_kind::step_failed, static_cast<int>(i), st.attempts, st.last_error);
    }
    auto d = save(s);  // the decision is durable before any confirm or cancel
    if (!co_await std::move(d)) co_return make_error_code(saga_errc::store_failed);
  }
  const bool confirm = st.phase == tcc_phase::confirming;
  auto t = settle_two_phase(s, i, confirm ? step_op::confirm : step_op::cancel);
  step_result ec = co_await std::move(t);
  if (ec) {
    s.stuck_forward = true;
    st.status = step_status::stuck;
    st.last_error = describe(ec);
    co_return ec;
  }
  st.finished_ns = wall_ns();
  if (confirm) {
    st.status = step_status::completed;
    event(s, event_kind::confirmed, static_cast<int>(i), st.attempts);
    co_return step_result{};
  }
  st.status = step_status::failed;
  event(s, event_kind::cancelled, static_cast<int>(i), st.attempts);
  co_return refused ? refused : make_error_code(saga_errc::rejected);
}

task<step_result> orchestrator::settle_two_phase(active& s, std::size_t i, step_op op) {
  const step_spec& spec = s.type->steps()[i];
  const retry_policy& policy = spec.compensation_retry;
  for (std::size_t p = 0; p < spec.participants.size(); ++p) {
    for (std::uint32_t attempt = 1;; ++attempt) {
      auto t = call(s, i, p, op, attempt, spec.timeout);
      step_result ec = co_await std::move(t);
      if (!ec) break;
      if (!policy.retryable(ec) || attempt >= policy.max_attempts) co_return ec;
      auto b = backoff(s, policy.backoff(attempt), false);
      co_await std::move(b);
    }
  }
  co_return step_result{};
}

void orchestrator::record_step(std::chrono::steady_clock::duration d, bool failed) {
  stats_.steps.observe(d);
  if (failed) ++stats_.step_failures;
}

orchestrator_stats orchestrator::handle(get_stats) {
  orchestrator_stats out = stats_;
  for (const auto& [id, a] : active_) {
    switch (a->rec.state) {
      case saga_state::pending:
        ++out.pending;
        break;
      case saga_state::running:
        ++out.running;
        break;
      case saga_state::compensating:
        ++out.compensating;
        break;
      default:
        break;
    }
  }
  return out;
}

void orchestrator::finish(active& s) {
  TROUPE_ASSERT(!unfinished(s.rec.state), "orchestrator: finish() of an unfinished saga");
  switch (s.rec.state) {
    case saga_state::completed:
      ++stats_.completed;
      break;
    case saga_state::compensated:
      ++stats_.compensated;
      break;
    case saga_state::stuck:
      ++stats_.stuck;
      break;
    default:
      break;
  }
  for (auto& w : s.waiters) {
    w->outcome = s.rec;
    w->timer.cancel();
  }
  if (opts_.on_finished) opts_.on_finished(s.rec);
  abandon(s);
}

void orchestrator::abandon(active& s) {
  for (auto& w : s.waiters) {
    if (!w->outcome) w->outcome = fail<saga_record>(saga_errc::store_failed);
    w->timer.cancel();
  }
  auto it = active_.find(s.rec.id);
  TROUPE_ASSERT(it != active_.end(), "orchestrator: abandon() of a saga that is not active");
  std::unique_ptr<active> done = std::move(it->second);
  active_.erase(it);
  recycle(std::move(done));  // s is gone from here on
  release_slot();
}

// Finished sagas' records are recycled: a start then reuses the capacity of
// the step and history vectors (and the active itself), memory that is still
// in cache, instead of three allocations from a heap that the store's kept
// records keep growing.
std::unique_ptr<orchestrator::active> orchestrator::fresh_active() {
  if (spare_.empty()) return std::make_unique<active>();
  std::unique_ptr<active> a = std::move(spare_.back());
  spare_.pop_back();
  return a;
}

void orchestrator::recycle(std::unique_ptr<active> a) {
  if (spare_.size() >= spare_max) return;
  std::vector<step_state> steps = std::move(a->rec.steps);
  std::vector<saga_event> history = std::move(a->rec.history);
  steps.clear();
  history.clear();
  *a = active{};
  a->rec.steps = std::move(steps);
  a->rec.history = std::move(history);
  spare_.push_back(std::move(a));
}

void orchestrator::release_slot() {
  TROUPE_ASSERT(running_ > 0, "orchestrator: running count underflow");
  --running_;
  if (!queued_.empty()) {
    std::uint64_t next = queued_.front();
    queued_.pop_front();
    admit(next);
  }
}

}  // namespace troupe::saga
