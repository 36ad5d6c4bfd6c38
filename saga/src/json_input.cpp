// SPDX-License-Identifier: BSL-1.0
#include <boost/json/parse.hpp>
#include <troupe/saga/detail/json_input.hpp>

namespace troupe::saga::detail {

bool json_document::parse(std::string_view text) {
  boost::json::parse_options opt;
  opt.allow_invalid_utf8 = true;  // as cereal's JSON archive (rapidjson does not validate UTF-8)
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(boost::json::string_view(text.data(), text.size()), ec,
                                            boost::json::storage_ptr(&memory_), opt);
  if (ec) return false;
  root_ = std::move(v);  // the same memory resource: moved, not copied
  return true;
}

}  // namespace troupe::saga::detail
