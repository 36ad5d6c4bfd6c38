#include <cereal/archives/binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <istream>
#include <ostream>
#include <streambuf>
#include <troupe/saga/error.hpp>
#include <troupe/saga/record.hpp>

namespace troupe::saga {

template <class A>
void serialize(A& a, step_state& s) {
  a(s.name, s.status, s.phase, s.attempts, s.compensation_attempts, s.last_error, s.started_ns,
    s.finished_ns);
}
template <class A>
void serialize(A& a, saga_event& e) {
  a(e.at_ns, e.kind, e.step, e.attempt, e.detail);
}
template <class A>
void serialize(A& a, saga_record& r) {
  a(r.id, r.type, r.idempotency_key, r.state, r.input_hash, r.context, r.error, r.cancel_requested,
    r.created_ns, r.updated_ns, r.deadline_ns, r.steps, r.history, r.history_dropped);
}

namespace {
constexpr std::uint32_t record_version = 1;

// Streams straight into a string and out of a string_view: no stringstream copies.
struct string_sink final : std::streambuf {
  explicit string_sink(std::string& s) : out(s) {}
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) out.push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char* p, std::streamsize n) override {
    out.append(p, static_cast<std::size_t>(n));
    return n;
  }
  std::string& out;
};
struct view_source final : std::streambuf {
  explicit view_source(std::string_view v) {
    char* p = const_cast<char*>(v.data());
    setg(p, p, p + v.size());
  }
};
}  // namespace

std::string encode_record(const saga_record& r) {
  std::string out;
  out.reserve(256);
  string_sink sink(out);
  std::ostream os(&sink);
  {
    cereal::BinaryOutputArchive a(os);
    a(record_version, const_cast<saga_record&>(r));
  }
  return out;
}

result<saga_record> decode_record(std::string_view bytes) {
  saga_record r;
  try {
    view_source src(bytes);
    std::istream is(&src);
    cereal::BinaryInputArchive a(is);
    std::uint32_t version = 0;
    a(version);
    if (version != record_version)
      return failure<saga_record>(make_error_code(saga_errc::bad_record));
    a(r);
    if (is.peek() != std::char_traits<char>::eof())
      return failure<saga_record>(make_error_code(saga_errc::bad_record));
  } catch (const std::exception&) {
    return failure<saga_record>(make_error_code(saga_errc::bad_record));
  }
  if (r.state > saga_state::stuck)
    return failure<saga_record>(make_error_code(saga_errc::bad_record));
  return r;
}

std::string_view to_string(saga_state s) noexcept {
  switch (s) {
    case saga_state::pending:
      return "pending";
    case saga_state::running:
      return "running";
    case saga_state::compensating:
      return "compensating";
    case saga_state::completed:
      return "completed";
    case saga_state::compensated:
      return "compensated";
    case saga_state::stuck:
      return "stuck";
  }
  return "unknown";
}

std::string_view to_string(step_status s) noexcept {
  switch (s) {
    case step_status::pending:
      return "pending";
    case step_status::running:
      return "running";
    case step_status::completed:
      return "completed";
    case step_status::failed:
      return "failed";
    case step_status::compensating:
      return "compensating";
    case step_status::compensated:
      return "compensated";
    case step_status::stuck:
      return "stuck";
  }
  return "unknown";
}

std::string_view to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::created:
      return "created";
    case event_kind::started:
      return "started";
    case event_kind::step_started:
      return "step_started";
    case event_kind::step_failed:
      return "step_failed";
    case event_kind::step_completed:
      return "step_completed";
    case event_kind::step_gave_up:
      return "step_gave_up";
    case event_kind::cancel_requested:
      return "cancel_requested";
    case event_kind::compensating:
      return "compensating";
    case event_kind::compensation_started:
      return "compensation_started";
    case event_kind::compensation_failed:
      return "compensation_failed";
    case event_kind::compensation_completed:
      return "compensation_completed";
    case event_kind::completed:
      return "completed";
    case event_kind::compensated:
      return "compensated";
    case event_kind::stuck:
      return "stuck";
    case event_kind::recovered:
      return "recovered";
    case event_kind::prepared:
      return "prepared";
    case event_kind::confirmed:
      return "confirmed";
    case event_kind::cancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace troupe::saga
