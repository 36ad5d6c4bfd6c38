// SPDX-License-Identifier: BSL-1.0
// The shop's services and the order saga (see shop.hpp and README.md).

#include "shop.hpp"

#include <sqlite3.h>
#include <xxhash.h>

#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <troupe/actors/router.hpp>
#include <troupe/core.hpp>
#include <troupe/net/http.hpp>
#include <troupe/net/node.hpp>
#include <troupe/saga.hpp>

using namespace std::chrono_literals;
namespace json = boost::json;
namespace saga = troupe::saga;
using troupe::result;
using troupe::task;

// --- messages between the saga's steps and the services (wire ids 2001..) ---
// Every operation carries the step's idempotency key; a service applies each
// key at most once and answers a repeat with the first answer.

struct inv_reserve {
  std::string key, order, sku;
  std::int64_t qty = 0;
  template <class A>
  void serialize(A& a) {
    a(key, order, sku, qty);
  }
};
struct inv_release {
  std::string key, order;
  template <class A>
  void serialize(A& a) {
    a(key, order);
  }
};
struct inv_commit {
  std::string key, order;
  template <class A>
  void serialize(A& a) {
    a(key, order);
  }
};
struct pay_charge {
  std::string key, order, customer;
  std::int64_t cents = 0;
  template <class A>
  void serialize(A& a) {
    a(key, order, customer, cents);
  }
};
struct pay_refund {
  std::string key, order;
  template <class A>
  void serialize(A& a) {
    a(key, order);
  }
};
struct ship_create {
  std::string key, order, sku;
  std::int64_t qty = 0;
  template <class A>
  void serialize(A& a) {
    a(key, order, sku, qty);
  }
};
struct ship_cancel {
  std::string key, order;
  template <class A>
  void serialize(A& a) {
    a(key, order);
  }
};
TROUPE_REMOTE_MESSAGE(inv_reserve, 2001);
TROUPE_REMOTE_MESSAGE(inv_release, 2002);
TROUPE_REMOTE_MESSAGE(inv_commit, 2003);
TROUPE_REMOTE_MESSAGE(pay_charge, 2004);
TROUPE_REMOTE_MESSAGE(pay_refund, 2005);
TROUPE_REMOTE_MESSAGE(ship_create, 2006);
TROUPE_REMOTE_MESSAGE(ship_cancel, 2007);

namespace shop {

namespace {

// --- errors ---

struct shop_category_impl final : boost::system::error_category {
  const char* name() const noexcept override { return "shop"; }
  std::string message(int ev) const override {
    switch (static_cast<shop_errc>(ev)) {
      case shop_errc::declined:
        return "payment declined";
      case shop_errc::insufficient_funds:
        return "insufficient funds";
      case shop_errc::out_of_stock:
        return "out of stock";
      case shop_errc::unknown_item:
        return "unknown item";
      case shop_errc::order_cancelled:
        return "order already cancelled";
      case shop_errc::not_reserved:
        return "no held reservation";
      case shop_errc::already_shipped:
        return "reservation already shipped";
    }
    return "shop error " + std::to_string(ev);
  }
};

// --- a little SQLite ---

// One connection, used by one actor (so on one thread). WAL with
// synchronous=NORMAL: a committed transaction survives the process being
// killed (not a power cut); every operation is one IMMEDIATE transaction.
class db {
 public:
  explicit db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      std::string e = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path + ": " + e);
    }
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
  }
  ~db() {
    for (auto& [_, s] : cache_) sqlite3_finalize(s);
    sqlite3_close(db_);
  }
  db(const db&) = delete;
  db& operator=(const db&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string e = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error("sqlite: " + e + " in: " + sql);
    }
  }

  // A prepared statement, bound to `args`, stepped by the caller.
  class stmt {
   public:
    explicit stmt(sqlite3_stmt* s) : s_(s) {}
    ~stmt() { sqlite3_reset(s_), sqlite3_clear_bindings(s_); }
    bool row() {
      int rc = sqlite3_step(s_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(sqlite3_db_handle(s_)));
    }
    std::int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
    std::string text(int c) const {
      const auto* p = sqlite3_column_text(s_, c);
      return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
    }

   private:
    sqlite3_stmt* s_;
  };

  template <class... Args>
  stmt query(const char* sql, const Args&... args) {
    sqlite3_stmt*& s = cache_[sql];
    if (!s && sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db_) + " in: " + sql);
    int i = 1;
    (bind(s, i++, args), ...);
    return stmt(s);
  }
  template <class... Args>
  void run(const char* sql, const Args&... args) {
    auto s = query(sql, args...);
    while (s.row()) {
    }
  }
  template <class... Args>
  std::optional<std::int64_t> scalar(const char* sql, const Args&... args) {
    auto s = query(sql, args...);
    if (!s.row()) return std::nullopt;
    return s.i64(0);
  }

  // Runs `f` in one IMMEDIATE transaction unless operation `op` was applied
  // with `key` before: then the first answer comes back and nothing changes.
  // (An action and its compensation share a key; the op tells them apart.)
  template <class F>
  std::int32_t once(const std::string& key, const std::string& op, F&& f) {
    exec("BEGIN IMMEDIATE");
    try {
      if (auto prev = scalar("SELECT code FROM applied WHERE key = ? AND op = ?", key, op)) {
        exec("COMMIT");
        return static_cast<std::int32_t>(*prev);
      }
      const std::int32_t code = f();
      run("INSERT INTO applied(key, op, code) VALUES (?, ?, ?)", key, op, std::int64_t{code});
      exec("COMMIT");
      return code;
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

 private:
  static void bind(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  static void bind(sqlite3_stmt* s, int i, std::int64_t v) { sqlite3_bind_int64(s, i, v); }

  sqlite3* db_ = nullptr;
  std::map<std::string, sqlite3_stmt*> cache_;
};

std::string db_path(const troupe::net::node_context& n, const std::string& service) {
  return n.data_dir.empty() ? ":memory:" : n.data_dir + "/shop-" + service + ".db";
}

constexpr std::int32_t ok = 0;
std::int32_t code(shop_errc e) { return static_cast<std::int32_t>(e); }

struct shop_config {
  std::string layout;  ///< "inventory=node-1,payment=node-2,shipping=node-3"; empty: all here
  std::int64_t skus = 10, stock = 500, customers = 100, balance = 100'000;
  std::int64_t decline_percent = 10;
};

// --- report queries (local, over HTTP) ---

struct inventory_q {};
struct payment_q {};
struct shipping_q {};
template <class Q>
Q any_body(const json::value& v) {
  if (!v.is_null() && !v.is_object()) throw std::invalid_argument("expected no body or {}");
  return Q{};
}

// --- the services ---

class inventory : public troupe::actor {
 public:
  using remote_messages = troupe::net::message_list<inv_reserve, inv_release, inv_commit>;

  inventory(std::string path, const shop_config& c) : db_(path) {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS stock(sku TEXT PRIMARY KEY, initial INT, available INT, "
        "reserved INT, shipped INT);"
        "CREATE TABLE IF NOT EXISTS reservations(order_id TEXT PRIMARY KEY, sku TEXT, qty INT, "
        "state TEXT);"
        "CREATE TABLE IF NOT EXISTS applied(key TEXT, op TEXT, code INT, PRIMARY KEY(key, op))");
    if (db_.scalar("SELECT count(*) FROM stock").value_or(0) == 0) {
      db_.exec("BEGIN");
      for (std::int64_t i = 0; i < c.skus; ++i)
        db_.run("INSERT INTO stock VALUES (?, ?, ?, 0, 0)", "sku-" + std::to_string(i), c.stock,
                c.stock);
      db_.exec("COMMIT");
    }
  }

  std::int32_t handle(const inv_reserve& m) {
    return db_.once(m.key, "reserve", [&] {
      auto s = db_.query("SELECT state FROM reservations WHERE order_id = ?", m.order);
      if (s.row()) return s.text(0) == "released" ? code(shop_errc::order_cancelled) : ok;
      const auto avail = db_.scalar("SELECT available FROM stock WHERE sku = ?", m.sku);
      if (!avail || m.qty <= 0) return code(shop_errc::unknown_item);
      if (*avail < m.qty) return code(shop_errc::out_of_stock);
      db_.run("UPDATE stock SET available = available - ?, reserved = reserved + ? WHERE sku = ?",
              m.qty, m.qty, m.sku);
      db_.run("INSERT INTO reservations VALUES (?, ?, ?, 'held')", m.order, m.sku, m.qty);
      return ok;
    });
  }
  // The compensation of reserve. Arriving before its reserve (which then
  // never applies), it leaves a tombstone.
  std::int32_t handle(const inv_release& m) {
    return db_.once(m.key, "release", [&] {
      auto s = db_.query("SELECT sku, qty, state FROM reservations WHERE order_id = ?", m.order);
      if (!s.row()) {
        db_.run("INSERT INTO reservations VALUES (?, '', 0, 'released')", m.order);
        return ok;
      }
      const std::string sku = s.text(0), state = s.text(2);
      const std::int64_t qty = s.i64(1);
      if (state == "shipped") return code(shop_errc::already_shipped);
      if (state == "held") {
        db_.run("UPDATE stock SET available = available + ?, reserved = reserved - ? WHERE sku = ?",
                qty, qty, sku);
        db_.run("UPDATE reservations SET state = 'released' WHERE order_id = ?", m.order);
      }
      return ok;
    });
  }
  std::int32_t handle(const inv_commit& m) {
    return db_.once(m.key, "commit", [&] {
      auto s = db_.query("SELECT sku, qty, state FROM reservations WHERE order_id = ?", m.order);
      if (!s.row()) return code(shop_errc::not_reserved);
      const std::string sku = s.text(0), state = s.text(2);
      const std::int64_t qty = s.i64(1);
      if (state == "shipped") return ok;
      if (state != "held") return code(shop_errc::not_reserved);
      db_.run("UPDATE stock SET reserved = reserved - ?, shipped = shipped + ? WHERE sku = ?", qty,
              qty, sku);
      db_.run("UPDATE reservations SET state = 'shipped' WHERE order_id = ?", m.order);
      return ok;
    });
  }
  inventory_report handle(inventory_q) {
    inventory_report r;
    auto s = db_.query("SELECT sku, initial, available, reserved, shipped FROM stock ORDER BY sku");
    while (s.row()) r.skus.push_back({s.text(0), s.i64(1), s.i64(2), s.i64(3), s.i64(4)});
    auto c = db_.query("SELECT state, count(*) FROM reservations WHERE qty > 0 GROUP BY state");
    while (c.row()) {
      const std::string st = c.text(0);
      (st == "held" ? r.held : st == "released" ? r.released : r.committed) = c.i64(1);
    }
    return r;
  }

 private:
  db db_;
};

class payment : public troupe::actor {
 public:
  using remote_messages = troupe::net::message_list<pay_charge, pay_refund>;

  payment(std::string path, const shop_config& c) : db_(path), decline_percent_(c.decline_percent) {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS accounts(id TEXT PRIMARY KEY, initial INT, balance INT);"
        "CREATE TABLE IF NOT EXISTS payments(order_id TEXT PRIMARY KEY, customer TEXT, cents INT, "
        "state TEXT);"
        "CREATE TABLE IF NOT EXISTS applied(key TEXT, op TEXT, code INT, PRIMARY KEY(key, op))");
    if (db_.scalar("SELECT count(*) FROM accounts").value_or(0) == 0) {
      db_.exec("BEGIN");
      for (std::int64_t i = 0; i < c.customers; ++i)
        db_.run("INSERT INTO accounts VALUES (?, ?, ?)", "customer-" + std::to_string(i), c.balance,
                c.balance);
      db_.run("INSERT INTO accounts VALUES ('merchant', 0, 0)");
      db_.exec("COMMIT");
    }
  }

  std::int32_t handle(const pay_charge& m) {
    return db_.once(m.key, "charge", [&] {
      auto s = db_.query("SELECT state FROM payments WHERE order_id = ?", m.order);
      if (s.row()) {
        const std::string st = s.text(0);
        return st == "charged" || st == "refunded" ? ok
               : st == "declined"                  ? code(shop_errc::declined)
                                                   : code(shop_errc::order_cancelled);
      }
      const auto bal = db_.scalar("SELECT balance FROM accounts WHERE id = ?", m.customer);
      if (!bal || m.customer == "merchant" || m.cents <= 0) return code(shop_errc::unknown_item);
      // The card network's verdict, the same on every retry of this order.
      if (XXH3_64bits(m.order.data(), m.order.size()) % 100 <
          static_cast<std::uint64_t>(decline_percent_)) {
        db_.run("INSERT INTO payments VALUES (?, ?, ?, 'declined')", m.order, m.customer, m.cents);
        return code(shop_errc::declined);
      }
      if (*bal < m.cents) return code(shop_errc::insufficient_funds);
      db_.run("UPDATE accounts SET balance = balance - ? WHERE id = ?", m.cents, m.customer);
      db_.run("UPDATE accounts SET balance = balance + ? WHERE id = 'merchant'", m.cents);
      db_.run("INSERT INTO payments VALUES (?, ?, ?, 'charged')", m.order, m.customer, m.cents);
      return ok;
    });
  }
  std::int32_t handle(const pay_refund& m) {
    return db_.once(m.key, "refund", [&] {
      auto s = db_.query("SELECT customer, cents, state FROM payments WHERE order_id = ?", m.order);
      if (!s.row()) {
        db_.run("INSERT INTO payments VALUES (?, '', 0, 'voided')", m.order);
        return ok;
      }
      const std::string customer = s.text(0), state = s.text(2);
      const std::int64_t cents = s.i64(1);
      if (state == "charged") {
        db_.run("UPDATE accounts SET balance = balance + ? WHERE id = ?", cents, customer);
        db_.run("UPDATE accounts SET balance = balance - ? WHERE id = 'merchant'", cents);
        db_.run("UPDATE payments SET state = 'refunded' WHERE order_id = ?", m.order);
      }
      return ok;
    });
  }
  payment_report handle(payment_q) {
    payment_report r;
    auto a = db_.query("SELECT sum(initial), sum(balance) FROM accounts WHERE id != 'merchant'");
    if (a.row()) r.customers_initial = a.i64(0), r.customers_balance = a.i64(1);
    r.merchant = db_.scalar("SELECT balance FROM accounts WHERE id = 'merchant'").value_or(0);
    auto c = db_.query("SELECT state, count(*) FROM payments GROUP BY state");
    while (c.row()) {
      const std::string st = c.text(0);
      if (st == "charged") r.charged = c.i64(1);
      if (st == "refunded") r.refunded = c.i64(1);
      if (st == "declined") r.declined = c.i64(1);
    }
    return r;
  }

 private:
  db db_;
  std::int64_t decline_percent_;
};

class shipping : public troupe::actor {
 public:
  using remote_messages = troupe::net::message_list<ship_create, ship_cancel>;

  explicit shipping(std::string path) : db_(path) {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS shipments(order_id TEXT PRIMARY KEY, sku TEXT, qty INT, "
        "state TEXT);"
        "CREATE TABLE IF NOT EXISTS applied(key TEXT, op TEXT, code INT, PRIMARY KEY(key, op))");
  }
  std::int32_t handle(const ship_create& m) {
    return db_.once(m.key, "ship", [&] {
      auto s = db_.query("SELECT state FROM shipments WHERE order_id = ?", m.order);
      if (s.row()) return s.text(0) == "created" ? ok : code(shop_errc::order_cancelled);
      db_.run("INSERT INTO shipments VALUES (?, ?, ?, 'created')", m.order, m.sku, m.qty);
      return ok;
    });
  }
  std::int32_t handle(const ship_cancel& m) {
    return db_.once(m.key, "cancel", [&] {
      auto s = db_.query("SELECT state FROM shipments WHERE order_id = ?", m.order);
      if (!s.row())
        db_.run("INSERT INTO shipments VALUES (?, '', 0, 'cancelled')", m.order);
      else
        db_.run("UPDATE shipments SET state = 'cancelled' WHERE order_id = ?", m.order);
      return ok;
    });
  }
  shipping_report handle(shipping_q) {
    shipping_report r;
    r.created = db_.scalar("SELECT count(*) FROM shipments WHERE state = 'created'").value_or(0);
    r.cancelled = db_.scalar("SELECT count(*) FROM shipments WHERE state = 'cancelled' AND qty > 0")
                      .value_or(0);
    return r;
  }

 private:
  db db_;
};

// --- reaching a service from a saga step ---

// A service by node and name: a local ref when it lives here, else a remote
// ref looked up on first use and again after a failure (a restarted node's
// actors need a fresh lookup). Used on the orchestrator's shard only.
template <class T>
class service {
 public:
  service(troupe::net::node& n, std::string node, std::string name)
      : node_(n), peer_(std::move(node)), name_(std::move(name)) {}
  void set_local(troupe::actor_ref<T> a) { ref_ = std::move(a), local_ = true; }

  // Asks the service; its reply code becomes a step result.
  template <class M>
  task<saga::step_result> call(M m) {
    if (!ref_) {
      auto lookup = node_.remote<T>(peer_, name_, 1s);
      result<troupe::actor_ref<T>> r = co_await std::move(lookup);
      if (!r) co_return r.error();
      ref_ = *r;
    }
    auto ask = ref_->ask(std::move(m), 2s);
    result<std::int32_t> c = co_await ask;
    if (!c) {
      if (!local_) ref_.reset();
      co_return c.error();
    }
    if (*c != 0) co_return make_error_code(static_cast<shop_errc>(*c));
    co_return saga::step_result{};
  }

 private:
  troupe::net::node& node_;
  std::string peer_, name_;
  std::optional<troupe::actor_ref<T>> ref_;
  bool local_ = false;
};

struct services {
  std::unique_ptr<service<inventory>> inv;
  std::unique_ptr<service<payment>> pay;
  std::unique_ptr<service<shipping>> ship;
};

// --- the order saga ---

struct order_ctx {
  std::string order, sku, customer;
  std::int64_t qty = 0, cents = 0;
  template <class A>
  void serialize(A& a) {
    a(order, sku, customer, qty, cents);
  }
};

// {"order": "order-17", "sku": "sku-3", "qty": 2, "customer": "customer-5", "cents": 1999}
result<order_ctx> parse_order(std::string_view text) {
  auto bad = [] { return troupe::failure<order_ctx>(saga::saga_errc::malformed_input); };
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return bad();
  const json::object& o = v.as_object();
  order_ctx c;
  for (auto [field, out] : {std::pair{"order", &c.order}, std::pair{"sku", &c.sku},
                            std::pair{"customer", &c.customer}}) {
    auto it = o.find(field);
    if (it == o.end() || !it->value().is_string() || it->value().as_string().empty()) return bad();
    *out = std::string(it->value().as_string());
  }
  for (auto [field, out] : {std::pair{"qty", &c.qty}, std::pair{"cents", &c.cents}}) {
    auto it = o.find(field);
    if (it == o.end() || !it->value().is_int64() || it->value().as_int64() <= 0) return bad();
    *out = it->value().as_int64();
  }
  return c;
}

std::shared_ptr<saga::definition<order_ctx>> order_definition(std::shared_ptr<services> s) {
  auto def = std::make_shared<saga::definition<order_ctx>>("order");
  def->input_parser(&parse_order);
  // Transient failures (a node down, a timeout) retry for ~30 s; a
  // service's refusal never does. Compensations keep trying for longer.
  saga::retry_policy retry{
      .initial = 50ms, .multiplier = 2, .max_interval = 1s, .max_attempts = 40};
  for (int e = 1; e <= static_cast<int>(shop_errc::already_shipped); ++e)
    retry.non_retryable.push_back(make_error_code(static_cast<shop_errc>(e)));
  saga::retry_policy comp{
      .initial = 50ms, .multiplier = 2, .max_interval = 1s, .max_attempts = 120};
  def->step("reserve")
      .action([s](order_ctx& o, saga::step_call c) -> task<saga::step_result> {
        inv_reserve m{std::move(c.idempotency_key), o.order, o.sku, o.qty};
        co_return co_await s->inv->call(std::move(m));
      })
      .compensate([s](order_ctx& o, saga::step_call c) -> task<saga::step_result> {
        inv_release m{std::move(c.idempotency_key), o.order};
        co_return co_await s->inv->call(std::move(m));
      })
      .retry(retry)
      .compensation_retry(comp)
      .timeout(3s);
  def->step("charge")
      .action([s](order_ctx& o, saga::step_call c) -> task<saga::step_result> {
        pay_charge m{std::move(c.idempotency_key), o.order, o.customer, o.cents};
        co_return co_await s->pay->call(std::move(m));
      })
      .compensate([s](order_ctx& o, saga::step_call c) -> task<saga::step_result> {
        pay_refund m{std::move(c.idempotency_key), o.order};
        co_return co_await s->pay->call(std::move(m));
      })
      .retry(retry)
      .compensation_retry(comp)
      .timeout(3s);
  def->step("ship")
      .action([s](order_ctx& o, saga::step_call c) -> task<saga::step_result> {
        ship_create m{std::move(c.idempotency_key), o.order, o.sku, o.qty};
        co_return co_await s->ship->call(std::move(m));
      })
      .compensate([s](order_ctx& o, saga::step_call c) -> task<saga::step_result> {
        ship_cancel m{std::move(c.idempotency_key), o.order};
        co_return co_await s->ship->call(std::move(m));
      })
      .retry(retry)
      .compensation_retry(comp)
      .timeout(3s);
  // The reservation becomes shipped stock: the saga's last step.
  def->step("commit")
      .action([s](order_ctx& o, saga::step_call c) -> task<saga::step_result> {
        inv_commit m{std::move(c.idempotency_key), o.order};
        co_return co_await s->inv->call(std::move(m));
      })
      .retry(retry)
      .timeout(3s);
  return def;
}

// "inventory=node-1,payment=node-2" -> service -> node; a service not named
// lives on this node.
std::map<std::string, std::string> parse_layout(const std::string& text, const std::string& self) {
  std::map<std::string, std::string> where{
      {"inventory", self}, {"payment", self}, {"shipping", self}};
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw std::invalid_argument("--shop-layout entry '" + item + "' is not SERVICE=NODE");
    const std::string svc = item.substr(0, eq);
    if (!where.count(svc))
      throw std::invalid_argument("--shop-layout: unknown service '" + svc +
                                  "' (inventory, payment, shipping)");
    where[svc] = item.substr(eq + 1);
  }
  return where;
}

}  // namespace

const boost::system::error_category& shop_category() noexcept {
  static const shop_category_impl c;
  return c;
}

void tag_invoke(json::value_from_tag, json::value& v, const inventory_report& r) {
  json::array skus;
  for (const auto& s : r.skus)
    skus.push_back(json::object{{"sku", s.sku},
                                {"initial", s.initial},
                                {"available", s.available},
                                {"reserved", s.reserved},
                                {"shipped", s.shipped}});
  v = json::object{
      {"skus", std::move(skus)},
      {"reservations",
       json::object{{"held", r.held}, {"released", r.released}, {"committed", r.committed}}}};
}
void tag_invoke(json::value_from_tag, json::value& v, const payment_report& r) {
  v = json::object{
      {"customers_initial", r.customers_initial},
      {"customers_balance", r.customers_balance},
      {"merchant", r.merchant},
      {"payments",
       json::object{{"charged", r.charged}, {"refunded", r.refunded}, {"declined", r.declined}}}};
}
void tag_invoke(json::value_from_tag, json::value& v, const shipping_report& r) {
  v = json::object{{"shipments", json::object{{"created", r.created}, {"cancelled", r.cancelled}}}};
}
inventory_report tag_invoke(json::value_to_tag<inventory_report>, const json::value& v) {
  inventory_report r;
  for (const auto& s : v.at("skus").as_array())
    r.skus.push_back({std::string(s.at("sku").as_string()), s.at("initial").as_int64(),
                      s.at("available").as_int64(), s.at("reserved").as_int64(),
                      s.at("shipped").as_int64()});
  const auto& res = v.at("reservations");
  r.held = res.at("held").as_int64();
  r.released = res.at("released").as_int64();
  r.committed = res.at("committed").as_int64();
  return r;
}
payment_report tag_invoke(json::value_to_tag<payment_report>, const json::value& v) {
  payment_report r;
  r.customers_initial = v.at("customers_initial").as_int64();
  r.customers_balance = v.at("customers_balance").as_int64();
  r.merchant = v.at("merchant").as_int64();
  const auto& p = v.at("payments");
  r.charged = p.at("charged").as_int64();
  r.refunded = p.at("refunded").as_int64();
  r.declined = p.at("declined").as_int64();
  return r;
}
shipping_report tag_invoke(json::value_to_tag<shipping_report>, const json::value& v) {
  shipping_report r;
  r.created = v.at("shipments").at("created").as_int64();
  r.cancelled = v.at("shipments").at("cancelled").as_int64();
  return r;
}

}  // namespace shop

// The report queries come from this node's own gateway only (no wire id).
namespace shop {
namespace {
inventory_q tag_invoke(json::value_to_tag<inventory_q>, const json::value& v) {
  return any_body<inventory_q>(v);
}
payment_q tag_invoke(json::value_to_tag<payment_q>, const json::value& v) {
  return any_body<payment_q>(v);
}
shipping_q tag_invoke(json::value_to_tag<shipping_q>, const json::value& v) {
  return any_body<shipping_q>(v);
}
}  // namespace

troupe::net::node_extension shop_extension() {
  auto cfg = std::make_shared<shop_config>();
  troupe::net::node_extension e;
  e.name = "shop";
  e.add_flags = [cfg](CLI::App& app) {
    app.add_option("--shop-layout", cfg->layout,
                   "where the shop's services run: inventory=NODE,payment=NODE,shipping=NODE "
                   "(unnamed ones run here)");
    app.add_option("--shop-skus", cfg->skus, "SKUs in a new inventory")
        ->check(CLI::Range(1, 100'000))
        ->capture_default_str();
    app.add_option("--shop-stock", cfg->stock, "units of each SKU in a new inventory")
        ->check(CLI::Range(0, 1'000'000'000))
        ->capture_default_str();
    app.add_option("--shop-customers", cfg->customers, "customers of a new payment service")
        ->check(CLI::Range(1, 1'000'000))
        ->capture_default_str();
    app.add_option("--shop-balance", cfg->balance, "each new customer's balance, in cents")
        ->check(CLI::Range(0, 1'000'000'000))
        ->capture_default_str();
    app.add_option("--shop-decline-percent", cfg->decline_percent,
                   "share of orders the payment service declines")
        ->check(CLI::Range(0, 100))
        ->capture_default_str();
  };
  e.start = [cfg](troupe::net::node_context& n) {
    const auto where = parse_layout(cfg->layout, n.name);
    auto s = std::make_shared<services>();
    s->inv = std::make_unique<service<inventory>>(n.cluster, where.at("inventory"), "inventory");
    s->pay = std::make_unique<service<payment>>(n.cluster, where.at("payment"), "payment");
    s->ship = std::make_unique<service<shipping>>(n.cluster, where.at("shipping"), "shipping");
    // The services' SQLite work runs off the node's shard (the node, the
    // gateway and the orchestrator live on shard 0).
    troupe::spawn_options so;
    so.shard = n.rt.shard_count() > 1 ? 1 : 0;
    namespace http = troupe::net::http;
    if (where.at("inventory") == n.name) {
      auto a = n.rt.spawn<inventory>(so, db_path(n, "inventory"), *cfg);
      n.cluster.publish(a, "inventory");
      s->inv->set_local(a);
      n.http.expose<inventory, inventory_q>(http::verb::get, "/api/v1/shop/inventory", a);
    }
    if (where.at("payment") == n.name) {
      auto a = n.rt.spawn<payment>(so, db_path(n, "payment"), *cfg);
      n.cluster.publish(a, "payment");
      s->pay->set_local(a);
      n.http.expose<payment, payment_q>(http::verb::get, "/api/v1/shop/payments", a);
    }
    if (where.at("shipping") == n.name) {
      auto a = n.rt.spawn<shipping>(so, db_path(n, "shipping"));
      n.cluster.publish(a, "shipping");
      s->ship->set_local(a);
      n.http.expose<shipping, shipping_q>(http::verb::get, "/api/v1/shop/shipping", a);
    }
    n.sagas.add(order_definition(s));
    n.rt.log("shop on " + n.name + ": inventory@" + where.at("inventory") + " payment@" +
             where.at("payment") + " shipping@" + where.at("shipping"));
  };
  return e;
}

}  // namespace shop
