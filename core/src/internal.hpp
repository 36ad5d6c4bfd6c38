// SPDX-License-Identifier: BSL-1.0
#pragma once
// Private to core/src: what the runtime keeps beside a cell, and the control
// items that carry operations on a cell to its home shard.

#include <memory>
#include <string>
#include <troupe/core/actor_addr.hpp>
#include <troupe/core/detail/cell.hpp>
#include <troupe/core/detail/shard.hpp>
#include <troupe/core/options.hpp>
#include <troupe/core/runtime.hpp>
#include <vector>

struct io_uring;

namespace troupe::detail {

/// The last io_uring ring Asio created on the calling thread (asio_impl.cpp);
/// null if none. Read right after creating an io_context's io_uring service.
::io_uring* last_io_uring_created() noexcept;

/// Allocated on first need; most actors never have one.
struct cell_extras {
  std::vector<actor_addr> monitors;  // watchers to send a down_msg to
  std::vector<actor_addr> links;
  std::vector<actor_addr> children;
  supervision sup{};
  std::vector<std::int64_t> restarts;  // times of recent restarts (at most sup.max_restarts)
  std::unique_ptr<restart_factory> factory;
  std::string name;             // registered name, if any
  std::string what;             // exit text
  remote_sink* sink = nullptr;  // proxies only
  std::uint64_t remote_id = 0;  // proxies only
};

cell_extras& extras_of(actor_cell* c);

inline std::size_t cell_block_size(const actor_type_info* t) noexcept {
  std::size_t off = (sizeof(actor_cell) + t->align - 1) / t->align * t->align;
  return off + t->size;
}

void run_turn(work_item* w) noexcept;

struct control final : work_item {
  enum kind : std::uint8_t {
    live,
    stop,
    add_monitor,
    add_link,
    linked_exit,
    child_failed,
    child_exited
  };
  control(kind k_, actor_cell* t, actor_cell* o, exit_reason r, std::string w)
      : target(t), other(o), reason(r), what(std::move(w)), k(k_) {
    run_ = &run;
  }
  static void run(work_item* w) noexcept;
  actor_addr target;
  actor_addr other;
  exit_reason reason;
  std::string what;
  kind k;
};

void post_control(control::kind k, actor_cell* target, actor_cell* other, exit_reason r,
                  std::string what) noexcept;

void set_this_shard(shard* s) noexcept;

}  // namespace troupe::detail
