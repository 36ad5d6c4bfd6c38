// SPDX-License-Identifier: BSL-1.0
#pragma once
// The order-saga demo's shop: three services as actors (inventory, payment,
// shipping), each keeping its state in SQLite under the node's data dir, and
// the "order" saga that runs across them. shop_extension() adds all of it to
// a troupe-node (troupe::net::node_main); a flag says which node hosts which
// service, so three processes form one shop.

#include <boost/json.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <string>
#include <troupe/net/node_main.hpp>
#include <vector>

namespace shop {

/// Why a service refused an operation for good (never retried by the saga).
enum class shop_errc {
  declined = 1,        ///< payment: the card was declined
  insufficient_funds,  ///< payment: the balance does not cover the order
  out_of_stock,        ///< inventory: not enough available
  unknown_item,        ///< inventory: no such SKU; payment: no such customer
  order_cancelled,     ///< the order was compensated before this action arrived
  not_reserved,        ///< inventory: commit without a held reservation
  already_shipped,     ///< inventory: release of a reservation already shipped
};
const boost::system::error_category& shop_category() noexcept;
inline boost::system::error_code make_error_code(shop_errc e) noexcept {
  return {static_cast<int>(e), shop_category()};
}

// --- service state, as the demo's HTTP routes report it ---

struct sku_state {
  std::string sku;
  std::int64_t initial = 0, available = 0, reserved = 0, shipped = 0;
};
struct inventory_report {
  std::vector<sku_state> skus;
  std::int64_t held = 0, released = 0, committed = 0;  ///< reservations by state
};
struct payment_report {
  std::int64_t customers_initial = 0;                    ///< the customers' money at the start
  std::int64_t customers_balance = 0;                    ///< the customers' money now
  std::int64_t merchant = 0;                             ///< what the shop has been paid
  std::int64_t charged = 0, refunded = 0, declined = 0;  ///< payments by state
};
struct shipping_report {
  std::int64_t created = 0, cancelled = 0;
};

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const inventory_report& r);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const payment_report& r);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const shipping_report& r);
inventory_report tag_invoke(boost::json::value_to_tag<inventory_report>, const boost::json::value&);
payment_report tag_invoke(boost::json::value_to_tag<payment_report>, const boost::json::value&);
shipping_report tag_invoke(boost::json::value_to_tag<shipping_report>, const boost::json::value&);

/// The node extension: flags --shop-layout, --shop-skus, --shop-stock,
/// --shop-customers, --shop-balance, --shop-decline-percent.
troupe::net::node_extension shop_extension();

}  // namespace shop

template <>
struct boost::system::is_error_code_enum<shop::shop_errc> : std::true_type {};
