// SPDX-License-Identifier: BSL-1.0
// The life of an actor on its home shard: enqueue, turns, handler completion,
// failure and supervision, stop, monitors and links.

#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <troupe/core/runtime.hpp>

#include "internal.hpp"

namespace troupe {

const char* to_string(exit_reason r) noexcept {
  switch (r) {
    case exit_reason::none:
      return "running";
    case exit_reason::normal:
      return "normal";
    case exit_reason::failure:
      return "failure";
    case exit_reason::restart_limit:
      return "restart_limit";
    case exit_reason::linked:
      return "linked";
    case exit_reason::parent_stopped:
      return "parent_stopped";
    case exit_reason::runtime_shutdown:
      return "runtime_shutdown";
    case exit_reason::node_down:
      return "node_down";
  }
  return "unknown";
}

namespace detail {

namespace {
thread_local actor_cell* tls_constructing = nullptr;

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

std::string name_of(const actor_cell* c) {
  std::ostringstream os;
  os << c->type_->name << '#' << c->id_;
  return os.str();
}
}  // namespace

[[noreturn]] void assert_fail(const char* expr, const char* msg, const char* file,
                              int line) noexcept {
  std::fprintf(stderr, "troupe: assertion failed: %s (%s) at %s:%d\n", expr, msg, file, line);
  std::fflush(stderr);
  std::abort();
}

actor_cell* constructing_cell() noexcept { return tls_constructing; }
void set_constructing_cell(actor_cell* c) noexcept { tls_constructing = c; }

const char* demangled_name(const std::type_info& t) {
  int status = 0;
  char* s = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  if (status != 0 || !s) return t.name();
  return s;  // one per actor type, kept for the life of the process
}

bool is_unwind(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const unwind&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::uint64_t proxy_remote_id(const actor_cell* proxy) noexcept {
  return proxy->extras_ ? proxy->extras_->remote_id : 0;
}
remote_sink* proxy_sink(const actor_cell* proxy) noexcept {
  return proxy->extras_ ? proxy->extras_->sink : nullptr;
}

cell_extras& extras_of(actor_cell* c) {
  if (!c->extras_) c->extras_ = new cell_extras();
  return *c->extras_;
}

void actor_cell::free_cell(actor_cell* c) noexcept {
  std::size_t bytes = cell_block_size(c->type_);
  if (c->parent_) std::exchange(c->parent_, nullptr)->release();
  delete c->extras_;
  c->~actor_cell();
  pool_deallocate(c, bytes);
}

void dead_letter(message* m, errc why, shard* count_on, bool reserved) noexcept {
  actor_cell* c = m->target_;
  if (reserved) c->reserved_.fetch_sub(1, std::memory_order_relaxed);
  if (count_on) count_on->counters().dead_letters.fetch_add(1, std::memory_order_relaxed);
  m->ops_->discard(m, why);
}

namespace {
bool reserves(const actor_cell* c) noexcept {
  return c->capacity_ != 0 && c->policy_ == overflow::reject;
}
}  // namespace

boost::system::error_code send_slow(message* m) noexcept {
  actor_cell* c = m->target_;
  if (!c->alive()) {
    // The target's runtime may be gone (refs can outlive it): count on the
    // sender's shard, if any; the sender learns of it from the result anyway.
    dead_letter(m, errc::actor_dead, this_shard(), false);
    return make_error_code(errc::actor_dead);
  }
  if (c->remote_ && (!m->ops_->encode || (m->ask_base_ && !m->ops_->is_ask_capable))) {
    dead_letter(m, errc::not_serializable, this_shard(), false);
    return make_error_code(errc::not_serializable);
  }
  if (reserves(c)) {
    if (c->reserved_.fetch_add(1, std::memory_order_relaxed) >= c->capacity_) {
      dead_letter(m, errc::mailbox_full, c->home_, true);
      return make_error_code(errc::mailbox_full);
    }
  }
  if (this_shard() == c->home_) {
    c->enqueue(m);
  } else {
    c->add_ref();  // the envelope's transit reference, dropped once queued
    c->home_->post(m);
  }
  return {};
}

void actor_cell::enqueue(message* m) noexcept {
  if (!alive()) {
    dead_letter(m, errc::actor_dead, home_, reserves(this));
    return;
  }
  if (remote_) {
    extras_->sink->forward(this, m);
    return;
  }
  if (capacity_ && policy_ == overflow::drop_oldest && mailbox_len_ >= capacity_) {
    message* oldest = mailbox_.pop();
    --mailbox_len_;
    bump(home_->counters().dropped);
    oldest->ops_->discard(oldest, errc::message_dropped);
  }
  mailbox_.push(m);
  ++mailbox_len_;
  if (!has(in_turn) && !has(busy) && !unwinding()) home_->schedule_cell(this);
}

// Messages an actor may handle per turn before others get the shard. Large
// enough that a receiver fed by many senders keeps up (each sender's turn
// adds a burst), small enough that a turn stays in the tens of microseconds.
constexpr unsigned turn_budget = 512;

void run_turn(work_item* w) noexcept {
  auto* c = static_cast<actor_cell*>(w);
  c->clear(actor_cell::scheduled);
  if (!c->alive()) {
    if (c->has(actor_cell::release_deferred)) c->release();
    return;
  }
  shard* home = c->home_;
  c->set(actor_cell::in_turn);
  actor_cell* prev = current_cell();
  set_current_cell(c);
  const bool reentrant = c->type_->reentrant;
  std::uint64_t handled = 0;
  // A turn handles what was queued when it began, so a message an actor sends
  // itself waits for its next turn: self-tells are how a handler yields.
  for (unsigned budget = std::min(turn_budget, c->mailbox_len_); budget != 0; --budget) {
    if (c->has(actor_cell::busy) || c->unwinding() || !c->alive()) break;
    message* m = c->mailbox_.pop();
    if (!m) break;
    --c->mailbox_len_;
    if (reserves(c)) c->reserved_.fetch_sub(1, std::memory_order_relaxed);
    ++c->inflight_;
    if (!reentrant) c->set(actor_cell::busy);
    ++handled;
    m->ops_->invoke(m, c);
  }
  set_current_cell(prev);
  c->clear(actor_cell::in_turn);
  home->counters().messages.store(
      home->counters().messages.load(std::memory_order_relaxed) + handled,
      std::memory_order_relaxed);
  if (!c->alive()) {
    if (c->has(actor_cell::release_deferred)) c->release();
    return;
  }
  if (!c->has(actor_cell::busy) && !c->unwinding() && !c->mailbox_.empty()) home->schedule_cell(c);
}

void actor_cell::handler_failed(std::exception_ptr failure) noexcept {
  TROUPE_ASSERT(inflight_ > 0, "handler failed after it finished");
  // Supervise while this handler still counts as in flight, so a stop decided
  // here completes in handler_finished(), once.
  on_failure(failure);
  handler_finished();
}

void actor_cell::handler_finished() noexcept {
  TROUPE_ASSERT(inflight_ > 0, "handler finished twice");
  --inflight_;
  clear(busy);
  if (inflight_ == 0) {
    if (has(restart_pending)) do_restart();
    if (has(stopping)) {
      finish_stop();
      return;
    }
  }
  if (!has(in_turn) && alive() && !has(busy) && !unwinding() && !mailbox_.empty())
    home_->schedule_cell(this);
}

void actor_cell::on_failure(const std::exception_ptr& e) noexcept {
  std::string what = describe(e);
  runtime& rt = home_->rt();
  supervision sup = extras_ ? extras_->sup : supervision{};
  switch (sup.directive) {
    case on_failure::restart: {
      cell_extras& x = extras_of(this);
      const std::int64_t now = home_->now_ns();
      const std::int64_t window = std::chrono::nanoseconds(sup.within).count();
      std::erase_if(x.restarts, [&](std::int64_t t) { return now - t > window; });
      if (x.restarts.size() >= sup.max_restarts) {
        rt.log(log_level::error, "runtime",
               name_of(this) + " failed: " + what + "; restart limit (" +
                   std::to_string(sup.max_restarts) + " in " + std::to_string(sup.within.count()) +
                   " ms) reached, stopping");
        stop(exit_reason::restart_limit, what);
        return;
      }
      x.restarts.push_back(now);
      rt.log(log_level::warn, "runtime",
             name_of(this) + " failed: " + what + "; restarting (" +
                 std::to_string(x.restarts.size()) + "/" + std::to_string(sup.max_restarts) + ")");
      if (!has(restart_pending)) {
        set(restart_pending);
        cancel_waits();
      }
      return;
    }
    case on_failure::escalate: {
      rt.log(log_level::warn, "runtime",
             name_of(this) + " failed: " + what + "; escalating to its supervisor");
      actor_cell* parent = parent_;
      stop(exit_reason::failure, what);
      if (parent) post_control(control::child_failed, parent, this, exit_reason::failure, what);
      return;
    }
    case on_failure::stop:
      rt.log(log_level::error, "runtime", name_of(this) + " failed: " + what + "; stopping");
      stop(exit_reason::failure, what);
      return;
  }
}

void actor_cell::do_restart() noexcept {
  clear(restart_pending);
  if (has(stopping) || !alive()) return;
  if (has(instance_live)) {
    type_->destroy(instance_);
    clear(instance_live);
  }
  try {
    actor_cell* outer = constructing_cell();
    set_constructing_cell(this);
    struct restore {
      actor_cell* o;
      ~restore() { set_constructing_cell(o); }
    } r{outer};
    extras_->factory->construct(this);
    set(instance_live);
  } catch (...) {
    std::string what = "restart failed: " + describe(std::current_exception());
    home_->rt().log(log_level::error, "runtime", name_of(this) + " " + what);
    stop(exit_reason::failure, what);
    return;
  }
  if (!has(in_turn) && !mailbox_.empty()) home_->schedule_cell(this);
}

void actor_cell::cancel_waits() noexcept {
  for (wait_node* w = waits_; w;) {
    wait_node* next = w->next_;
    w->cancel_(w);
    w = next;
  }
}

void actor_cell::add_wait(wait_node* w) noexcept {
  w->prev_ = nullptr;
  w->next_ = waits_;
  if (waits_) waits_->prev_ = w;
  waits_ = w;
}

void actor_cell::remove_wait(wait_node* w) noexcept {
  if (w->prev_)
    w->prev_->next_ = w->next_;
  else if (waits_ == w)
    waits_ = w->next_;
  if (w->next_) w->next_->prev_ = w->prev_;
  w->prev_ = w->next_ = nullptr;
}

void actor_cell::stop(exit_reason why, std::string what) noexcept {
  if (!alive() || has(stopping)) return;
  set(stopping);
  reason_ = why;
  if (!what.empty()) extras_of(this).what = std::move(what);
  cancel_waits();
  if (inflight_ == 0) finish_stop();
}

void actor_cell::finish_stop() noexcept {
  TROUPE_ASSERT(inflight_ == 0, "actor stopped with a handler in flight");
  TROUPE_ASSERT(alive(), "actor stopped twice");
  runtime& rt = home_->rt();
  dead_.store(true, std::memory_order_release);
  if (has(instance_live)) {
    type_->destroy(instance_);
    clear(instance_live);
  }
  while (message* m = mailbox_.pop()) {
    --mailbox_len_;
    dead_letter(m, errc::actor_died, home_, reserves(this));
  }
  if (extras_) {
    cell_extras& x = *extras_;
    const std::string& what = x.what;
    if (!x.name.empty()) rt.unregister_if(x.name, this);
    for (actor_addr& w : x.monitors) {
      try {
        w.cell()->type_->send_down(w.cell(), this, reason_, what);
      } catch (...) {
      }
    }
    for (actor_addr& l : x.links) post_control(control::linked_exit, l.cell(), this, reason_, what);
    for (actor_addr& ch : x.children)
      post_control(control::stop, ch.cell(), this, exit_reason::parent_stopped, {});
    x.monitors.clear();
    x.links.clear();
    x.children.clear();
    x.factory.reset();
  }
  if (parent_) {
    post_control(control::child_exited, parent_, this, reason_, {});
    std::exchange(parent_, nullptr)->release();
  }
  home_->unlink_live(this);
  if (has(scheduled) || has(in_turn))
    set(release_deferred);
  else
    release();
}

// --- control items: operations on a cell performed on its home shard ---

void post_control(control::kind k, actor_cell* target, actor_cell* other, exit_reason r,
                  std::string what) noexcept {
  auto* ctl = new control(k, target, other, r, std::move(what));
  target->home_->submit(ctl);
}

void control::run(work_item* w) noexcept {
  std::unique_ptr<control> ctl{static_cast<control*>(w)};
  actor_cell* c = ctl->target.cell();
  actor_cell* o = ctl->other.cell();
  switch (ctl->k) {
    case live:
      c->home_->link_live(c);
      if (c->home_->shutting_down()) c->stop(exit_reason::runtime_shutdown);
      return;
    case stop:
      c->stop(ctl->reason, std::move(ctl->what));
      return;
    case add_monitor:
      if (!c->alive()) {
        o->type_->send_down(o, c, c->reason_, c->extras_ ? c->extras_->what : std::string{});
      } else {
        extras_of(c).monitors.push_back(ctl->other);
      }
      return;
    case add_link:
      if (!c->alive()) {
        post_control(linked_exit, o, c, c->reason_, c->extras_ ? c->extras_->what : std::string{});
      } else {
        extras_of(c).links.push_back(ctl->other);
      }
      return;
    case linked_exit:
      if (!c->alive()) return;
      if (c->extras_) std::erase(c->extras_->links, ctl->other);
      if (c->type_->send_exit) {
        c->type_->send_exit(c, o, ctl->reason, std::move(ctl->what));
      } else if (is_abnormal(ctl->reason)) {
        c->stop(exit_reason::linked, std::move(ctl->what));
      }
      return;
    case child_failed: {
      if (!c->alive()) return;
      std::string what = "child " + name_of(o) + " failed: " + ctl->what;
      try {
        throw std::runtime_error(what);
      } catch (...) {
        c->on_failure(std::current_exception());
      }
      if (c->inflight_ == 0) {
        if (c->has(actor_cell::restart_pending)) c->do_restart();
      }
      return;
    }
    case child_exited:
      if (c->extras_) std::erase(c->extras_->children, ctl->other);
      return;
  }
}

}  // namespace detail

// --- actor base and addresses ---

actor::actor() noexcept : cell_(detail::constructing_cell()) {
  TROUPE_ASSERT(cell_ != nullptr, "actors are created by runtime::spawn, not directly");
}

runtime& actor::system() const noexcept { return cell_->home_->rt(); }

void actor::stop() noexcept { cell_->stop(exit_reason::normal); }

void actor::monitor(const actor_addr& other) {
  TROUPE_ASSERT(detail::current_cell() == cell_, "monitor() called outside this actor's handler");
  if (!cell_->type_->send_down)
    throw std::logic_error(std::string("troupe: ") + cell_->type_->name +
                           " monitors an actor but has no handle(troupe::down_msg)");
  if (!other) throw std::invalid_argument("troupe: monitor() of a null actor_addr");
  detail::post_control(detail::control::add_monitor, other.cell(), cell_, exit_reason::none, {});
}

void actor::link(const actor_addr& other) {
  TROUPE_ASSERT(detail::current_cell() == cell_, "link() called outside this actor's handler");
  if (!other) throw std::invalid_argument("troupe: link() to a null actor_addr");
  if (other.cell() == cell_) return;
  detail::extras_of(cell_).links.push_back(other);
  detail::post_control(detail::control::add_link, other.cell(), cell_, exit_reason::none, {});
}

void actor_addr::stop() const {
  // A stopped actor's runtime may be gone: touch nothing of it.
  if (!cell_ || !cell_->alive()) return;
  detail::post_control(detail::control::stop, cell_, cell_, exit_reason::normal, {});
}

}  // namespace troupe
