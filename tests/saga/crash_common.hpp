// SPDX-License-Identifier: BSL-1.0
#pragma once
// Shared by the crash-recovery test and its child process: the saga type the
// child runs, where it keeps its files, and the check of what it left behind.
//
// Saga n (idempotency key "k<n>", input qty = n) has steps s0, s1, s2; step
// n % 4 refuses (3: none does), so a quarter of the sagas complete and the
// rest compensate. The participant appends one line "<idempotency key> <A|C>"
// per effect to effects.log with a single write() before it acknowledges —
// the kernel keeps it when the process is killed — and skips keys it has
// already applied (it reloads the log when the child starts).

#include <sqlite3.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <troupe/saga.hpp>
#include <vector>

namespace crash {

inline constexpr int steps = 3;
inline int fail_at(int n) { return n % 4; }  // 3 = no step refuses

struct verdict {
  int completed = 0, compensated = 0, duplicates = 0, lost = 0, wrong = 0;
  std::vector<std::string> problems;
};

inline verdict check(const std::string& dir, int total) {
  verdict v;
  auto problem = [&](std::string p) {
    ++v.wrong;
    if (v.problems.size() < 20) v.problems.push_back(std::move(p));
  };
  // What the store says.
  std::map<int, troupe::saga::saga_record> by_n;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2((dir + "/sagas.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    problem("cannot open the child's database");
    sqlite3_close(db);
    return v;
  }
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT key, record FROM sagas", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string key(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    std::string_view bytes(static_cast<const char*>(sqlite3_column_blob(st, 1)),
                           static_cast<std::size_t>(sqlite3_column_bytes(st, 1)));
    auto rec = troupe::saga::decode_record(bytes);
    if (!rec || key.size() < 2 || key[0] != 'k') {
      problem("a row that does not decode: " + key);
      continue;
    }
    int n = std::stoi(key.substr(1));
    if (!by_n.emplace(n, std::move(*rec)).second) problem("two rows for " + key);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);

  // What the participant applied.
  std::map<std::string, int> applied;  // "<key> <A|C>" -> times
  std::ifstream log(dir + "/effects.log");
  std::string line;
  while (std::getline(log, line)) ++applied[line];
  for (auto& [effect, times] : applied)
    if (times > 1) v.duplicates += times - 1;

  std::set<std::string> expected;
  for (int n = 0; n < total; ++n) {
    auto it = by_n.find(n);
    if (it == by_n.end()) {
      ++v.lost;
      continue;
    }
    const auto& r = it->second;
    int f = fail_at(n);
    auto want =
        f < steps ? troupe::saga::saga_state::compensated : troupe::saga::saga_state::completed;
    if (r.state == troupe::saga::saga_state::completed) ++v.completed;
    if (r.state == troupe::saga::saga_state::compensated) ++v.compensated;
    if (r.state != want)
      problem("saga k" + std::to_string(n) + " is " + std::string(to_string(r.state)));
    for (int j = 0; j < std::min(f, steps); ++j) {
      std::string key = std::to_string(r.id) + "/s" + std::to_string(j);
      expected.insert(key + " A");
      if (f < steps) expected.insert(key + " C");
    }
  }
  for (auto& e : expected)
    if (!applied.contains(e)) problem("effect missing: " + e);
  for (auto& [e, times] : applied)
    if (!expected.contains(e)) problem("effect that should not exist: " + e);
  return v;
}

}  // namespace crash
