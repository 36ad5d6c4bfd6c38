// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// actor_addr: an untyped, counted reference to an actor. Comparable, hashable,
/// printable; the type down_msg and exit_msg use to name an actor.

#include <cstddef>
#include <functional>
#include <ostream>
#include <troupe/core/detail/cell.hpp>
#include <utility>

namespace troupe {

class actor_addr {
 public:
  actor_addr() noexcept = default;
  explicit actor_addr(detail::actor_cell* c, bool add_ref = true) noexcept : cell_(c) {
    if (cell_ && add_ref) cell_->add_ref();
  }
  actor_addr(const actor_addr& o) noexcept : actor_addr(o.cell_) {}
  actor_addr(actor_addr&& o) noexcept : cell_(std::exchange(o.cell_, nullptr)) {}
  actor_addr& operator=(actor_addr o) noexcept {
    std::swap(cell_, o.cell_);
    return *this;
  }
  ~actor_addr() {
    if (cell_) cell_->release();
  }

  explicit operator bool() const noexcept { return cell_ != nullptr; }
  /// Runtime-unique id: shard index in the top 16 bits, a per-shard counter below.
  std::uint64_t id() const noexcept { return cell_ ? cell_->id_ : 0; }
  /// True until the actor has stopped (a snapshot: it may stop right after).
  bool alive() const noexcept { return cell_ && cell_->alive(); }
  /// Why the actor stopped; exit_reason::none while it runs.
  exit_reason reason() const noexcept {
    return cell_ && !cell_->alive() ? cell_->reason_ : exit_reason::none;
  }
  /// The actor's type name, as given by its class.
  const char* type_name() const noexcept { return cell_ ? cell_->type_->name : "null"; }

  /// Asks the actor to stop with exit_reason::normal, from any thread. Its
  /// in-flight handler unwinds at its next await; queued asks fail with actor_died.
  void stop() const;

  detail::actor_cell* cell() const noexcept { return cell_; }

  friend bool operator==(const actor_addr& a, const actor_addr& b) noexcept {
    return a.cell_ == b.cell_;
  }
  friend std::ostream& operator<<(std::ostream& os, const actor_addr& a) {
    return os << a.type_name() << '#' << a.id();
  }

 private:
  detail::actor_cell* cell_ = nullptr;
};

}  // namespace troupe

template <>
struct std::hash<troupe::actor_addr> {
  std::size_t operator()(const troupe::actor_addr& a) const noexcept {
    return std::hash<const void*>{}(a.cell());
  }
};
