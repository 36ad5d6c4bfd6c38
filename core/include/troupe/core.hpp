// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The core runtime in one include: runtime, actor, refs, task, timers, Asio adapter.

#include <troupe/core/actor.hpp>
#include <troupe/core/actor_addr.hpp>
#include <troupe/core/actor_ref.hpp>
#include <troupe/core/error.hpp>
#include <troupe/core/event.hpp>
#include <troupe/core/histogram.hpp>
#include <troupe/core/log.hpp>
#include <troupe/core/messages.hpp>
#include <troupe/core/options.hpp>
#include <troupe/core/runtime.hpp>
#include <troupe/core/sleep.hpp>
#include <troupe/core/task.hpp>
#include <troupe/core/use_task.hpp>
