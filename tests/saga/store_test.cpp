// SPDX-License-Identifier: BSL-1.0
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "saga/saga_support.hpp"

using namespace troupe::saga;
using namespace troupe::saga::test;
using troupe::task;

namespace {

/// A fresh directory under the system's temp dir, removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "troupe-saga-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

struct do_create {
  stored_saga s;
};
struct do_save {
  std::uint64_t id;
  saga_state state;
  std::string record;
};
struct do_load {
  std::uint64_t id;
};
struct do_list {
  saga_state state;
  std::size_t limit;
  std::uint64_t after = 0;
};
struct do_unfinished {};

/// Runs store operations on a shard (they are coroutines awaited there).
class driver : public troupe::actor {
 public:
  explicit driver(std::shared_ptr<saga_store> s) : store_(std::move(s)) {}
  task<troupe::result<std::optional<stored_saga>>> handle(do_create m) {
    auto t = store_->create(std::move(m.s));
    co_return co_await std::move(t);
  }
  task<troupe::result<void>> handle(do_save m) {
    auto t = store_->save(m.id, m.state, std::move(m.record));
    boost::system::error_code ec = co_await std::move(t);
    if (ec) co_return troupe::failure<void>(ec);
    co_return troupe::result<void>{};
  }
  task<troupe::result<stored_saga>> handle(do_load m) {
    auto t = store_->load(m.id);
    co_return co_await std::move(t);
  }
  task<troupe::result<std::vector<stored_saga>>> handle(do_list m) {
    auto t = store_->list(m.state, m.limit, m.after);
    co_return co_await std::move(t);
  }
  task<troupe::result<std::vector<stored_saga>>> handle(do_unfinished) {
    auto t = store_->unfinished();
    co_return co_await std::move(t);
  }

 private:
  std::shared_ptr<saga_store> store_;
};

template <class M>
auto run(troupe::runtime& rt, troupe::actor_ref<driver>& d, M m) {
  return flat(rt.ask_sync(d, std::move(m), 10s));
}

void exercise(std::shared_ptr<saga_store> store) {
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 1)};
  auto d = rt.spawn<driver>(store);
  std::uint64_t a = store->next_id(), b = store->next_id();
  CHECK(b > a);
  auto c1 = run(rt, d, do_create{stored_saga{a, "key-a", saga_state::pending, "rec-a"}});
  REQUIRE(c1);
  CHECK_FALSE(c1->has_value());
  // The same key again: nothing is inserted, the existing row comes back.
  auto c2 = run(rt, d, do_create{stored_saga{b, "key-a", saga_state::pending, "rec-b"}});
  REQUIRE(c2);
  REQUIRE(c2->has_value());
  CHECK(c2->value().id == a);
  CHECK(c2->value().record == "rec-a");
  CHECK(run(rt, d, do_load{b}).error() == saga_errc::not_found);
  // No key: never a conflict.
  std::uint64_t c = store->next_id(), e = store->next_id();
  REQUIRE(run(rt, d, do_create{stored_saga{c, "", saga_state::pending, "rec-c"}}));
  REQUIRE(run(rt, d, do_create{stored_saga{e, "", saga_state::pending, "rec-e"}}));

  CHECK(run(rt, d, do_save{a, saga_state::completed, "rec-a2"}));
  CHECK(run(rt, d, do_save{c, saga_state::running, "rec-c2"}));
  CHECK(run(rt, d, do_save{999'999, saga_state::running, "x"}).error() == saga_errc::not_found);
  auto la = run(rt, d, do_load{a});
  REQUIRE(la);
  CHECK(la->state == saga_state::completed);
  CHECK(la->record == "rec-a2");
  CHECK(la->key == "key-a");

  auto done = run(rt, d, do_list{saga_state::completed, 10});
  REQUIRE(done);
  REQUIRE(done->size() == 1);
  CHECK(done->front().id == a);
  auto open = run(rt, d, do_unfinished{});
  REQUIRE(open);
  REQUIRE(open->size() == 2);
  CHECK((*open)[0].id == c);
  CHECK((*open)[1].id == e);
  auto limited = run(rt, d, do_list{saga_state::pending, 0});
  REQUIRE(limited);
  CHECK(limited->empty());
  // Pages: the sagas above an id, by id.
  CHECK(run(rt, d, do_save{e, saga_state::running, "rec-e2"}));
  auto first = run(rt, d, do_list{saga_state::running, 1});
  REQUIRE(first);
  REQUIRE(first->size() == 1);
  CHECK(first->front().id == c);
  auto second = run(rt, d, do_list{saga_state::running, 1, c});
  REQUIRE(second);
  REQUIRE(second->size() == 1);
  CHECK(second->front().id == e);
  auto past = run(rt, d, do_list{saga_state::running, 10, e});
  REQUIRE(past);
  CHECK(past->empty());
  auto beyond = run(rt, d, do_list{saga_state::running, 10, ~std::uint64_t{0}});
  REQUIRE(beyond);
  CHECK(beyond->empty());
}

}  // namespace

TEST_CASE("a saga record survives encoding, and damaged bytes are refused", "[saga][store]") {
  saga_record r;
  r.id = 42;
  r.type = "order";
  r.idempotency_key = "k";
  r.state = saga_state::compensating;
  r.input_hash = 7;
  r.context = std::string("\0\1binary", 8);
  r.error = "rejected";
  r.deadline_ns = 99;
  r.steps.push_back(step_state{"s0", step_status::compensated, tcc_phase::none, 2, 1, "e", 5, 6});
  r.history.push_back(saga_event{1, event_kind::step_failed, 0, 2, "boom"});
  r.history_dropped = 3;
  std::string bytes = encode_record(r);
  auto back = decode_record(bytes);
  REQUIRE(back);
  CHECK(back->id == 42);
  CHECK(back->state == saga_state::compensating);
  CHECK(back->context == r.context);
  CHECK(back->steps[0].status == step_status::compensated);
  CHECK(back->steps[0].compensation_attempts == 1);
  CHECK(back->history[0].detail == "boom");
  CHECK(back->history_dropped == 3);
  CHECK(decode_record(bytes.substr(0, bytes.size() - 3)).error() == saga_errc::bad_record);
  CHECK(decode_record(bytes + "x").error() == saga_errc::bad_record);
  CHECK(decode_record("").error() == saga_errc::bad_record);
}

TEST_CASE("the memory store keeps sagas by id and returns the holder of a taken key",
          "[saga][store]") {
  exercise(std::make_shared<memory_store>());
}

TEST_CASE("the sqlite store keeps sagas by id and returns the holder of a taken key",
          "[saga][store][sqlite]") {
  temp_dir dir;
  exercise(std::make_shared<sqlite_store>(sqlite_store_options{dir.file("s.db")}));
}

TEST_CASE("the sqlite store keeps its sagas across a reopen and hands out larger ids",
          "[saga][store][sqlite]") {
  temp_dir dir;
  std::uint64_t first;
  {
    auto store = std::make_shared<sqlite_store>(sqlite_store_options{dir.file("s.db")});
    troupe::test::log_sink sink;
    troupe::runtime rt{troupe::test::threaded(sink, 1)};
    auto d = rt.spawn<driver>(store);
    first = store->next_id();
    REQUIRE(run(rt, d, do_create{stored_saga{first, "k", saga_state::running, "r1"}}));
    CHECK(store->stats().writes == 1);
    CHECK(store->stats().commits >= 1);
    CHECK(store->stats().fsyncs >= 1);  // synchronous=FULL: a commit syncs the WAL
  }
  auto store = std::make_shared<sqlite_store>(sqlite_store_options{dir.file("s.db")});
  CHECK(store->next_id() > first);
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 1)};
  auto d = rt.spawn<driver>(store);
  auto open = run(rt, d, do_unfinished{});
  REQUIRE(open);
  REQUIRE(open->size() == 1);
  CHECK(open->front().record == "r1");
  CHECK(open->front().key == "k");
}

TEST_CASE("the sqlite store refuses a path it cannot open with SQLite's reason",
          "[saga][store][sqlite]") {
  try {
    sqlite_store s{sqlite_store_options{"/nonexistent-dir/troupe/s.db"}};
    FAIL("opened a database in a missing directory");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("cannot open") != std::string::npos);
  }
}

TEST_CASE("the memory store forgets the oldest finished sagas beyond finished_max",
          "[saga][store]") {
  auto store = std::make_shared<memory_store>(memory_store_options{.finished_max = 2});
  troupe::test::log_sink sink;
  troupe::runtime rt{troupe::test::threaded(sink, 1)};
  auto d = rt.spawn<driver>(store);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(store->next_id());
    std::string key = "k" + std::to_string(i);
    REQUIRE(run(rt, d, do_create{stored_saga{ids.back(), key, saga_state::running, "r"}}));
  }
  for (int i = 0; i < 3; ++i) REQUIRE(run(rt, d, do_save{ids[i], saga_state::completed, "done"}));
  CHECK(run(rt, d, do_load{ids[0]}).error() == saga_errc::not_found);
  CHECK(run(rt, d, do_load{ids[1]}));
  CHECK(run(rt, d, do_load{ids[2]}));
  CHECK(run(rt, d, do_load{ids[3]}));  // unfinished sagas are never forgotten
  // The forgotten saga's key is free again.
  auto again = run(rt, d, do_create{stored_saga{store->next_id(), "k0", saga_state::pending, "r"}});
  REQUIRE(again);
  CHECK_FALSE(again->has_value());
}
