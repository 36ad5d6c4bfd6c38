// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// troupe::saga — durable sagas: definitions, the orchestrator actor, stores.

#include <troupe/saga/definition.hpp>
#include <troupe/saga/error.hpp>
#include <troupe/saga/memory_store.hpp>
#include <troupe/saga/orchestrator.hpp>
#include <troupe/saga/record.hpp>
#include <troupe/saga/sqlite_store.hpp>
#include <troupe/saga/store.hpp>
