// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Reading a saga's start input: JSON parsed by Boost.JSON into a buffer of
/// its own, then read into the context by a cereal input archive over the
/// parsed value.
///
/// Every saga start parses its input, so this is on the hot path. cereal's
/// JSONInputArchive reads through a std::istream one character at a time and
/// its rapidjson document allocates a 64 KiB chunk per archive; here the text
/// is parsed from memory and a small input allocates nothing.
///
/// json_input_archive reads exactly as cereal's JSONInputArchive does: a
/// named field (NVP) is taken from the next member if its name matches, else
/// searched by name in the current object, and is an error when missing;
/// unnamed values are read in order; a wrong type is an error (an int field
/// takes only an integer within the range of int, an unsigned field a
/// non-negative one, a floating-point field any number); sizes come from
/// arrays. Errors are thrown as cereal::Exception. One difference: when an
/// object has the same key twice, the last one counts (Boost.JSON keeps only
/// the last; cereal's archive read the first).

#include <boost/container/small_vector.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>
#include <cereal/archives/json.hpp>
#include <cereal/cereal.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace troupe::saga::detail {

/// A parsed JSON text. Its memory comes from a buffer inside the object
/// (spilling to the heap only for a large input): keep it on the stack.
class json_document {
 public:
  json_document() = default;
  json_document(const json_document&) = delete;
  json_document& operator=(const json_document&) = delete;

  /// False when `text` is not one JSON value (trailing text included).
  bool parse(std::string_view text);
  const boost::json::value& root() const noexcept { return root_; }

 private:
  alignas(std::max_align_t) unsigned char buffer_[1024];
  boost::json::monotonic_resource memory_{buffer_, sizeof(buffer_)};
  // The same memory resource as the parse, so the parsed value moves in without a copy.
  boost::json::value root_ = boost::json::value(boost::json::storage_ptr(&memory_));
};

class json_input_archive : public cereal::InputArchive<json_input_archive>,
                           public cereal::traits::TextArchive {
 public:
  /// `root` must be an object or an array (else cereal::Exception) and
  /// outlive the archive.
  explicit json_input_archive(const boost::json::value& root)
      : cereal::InputArchive<json_input_archive>(this) {
    if (root.is_array()) {
      stack_.push_back(level::of(root.get_array()));
    } else if (root.is_object()) {
      stack_.push_back(level::of(root.get_object()));
    } else {
      throw cereal::Exception("JSON input: not an object or an array");
    }
    root_ = &root;
  }

  // --- the interface cereal's load functions use (as JSONInputArchive) ---

  void startNode() {
    search();
    const boost::json::value& v = stack_.back().value();
    if (v.is_array()) {
      stack_.push_back(level::of(v.get_array()));
    } else if (v.is_object()) {
      stack_.push_back(level::of(v.get_object()));
    } else {
      throw cereal::Exception("JSON input: expected an object or an array");
    }
  }
  void finishNode() {
    stack_.pop_back();
    ++stack_.back().index;
  }
  const char* getNodeName() const { return stack_.back().name(); }
  void setNextName(const char* name) { next_name_ = name; }

  template <class T,
            cereal::traits::EnableIf<std::is_signed<T>::value, sizeof(T) < sizeof(std::int64_t)> =
                cereal::traits::sfinae>
  void loadValue(T& val) {
    const boost::json::value& v = next();
    std::int64_t i = 0;
    if (!as_int64(v, i) || i < INT32_MIN || i > INT32_MAX)
      throw cereal::Exception("JSON input: expected an int");
    val = static_cast<T>(i);
    advance();
  }
  template <class T,
            cereal::traits::EnableIf<std::is_unsigned<T>::value, sizeof(T) < sizeof(std::uint64_t),
                                     !std::is_same<bool, T>::value> = cereal::traits::sfinae>
  void loadValue(T& val) {
    const boost::json::value& v = next();
    std::uint64_t u = 0;
    if (!as_uint64(v, u) || u > UINT32_MAX)
      throw cereal::Exception("JSON input: expected an unsigned int");
    val = static_cast<T>(u);
    advance();
  }
  void loadValue(bool& val) {
    const boost::json::value& v = next();
    if (!v.is_bool()) throw cereal::Exception("JSON input: expected a bool");
    val = v.get_bool();
    advance();
  }
  void loadValue(std::int64_t& val) {
    const boost::json::value& v = next();
    if (!as_int64(v, val)) throw cereal::Exception("JSON input: expected an int64");
    advance();
  }
  void loadValue(std::uint64_t& val) {
    const boost::json::value& v = next();
    if (!as_uint64(v, val)) throw cereal::Exception("JSON input: expected a uint64");
    advance();
  }
  void loadValue(float& val) {
    double d = 0;
    loadValue(d);
    val = static_cast<float>(d);
  }
  void loadValue(double& val) {
    const boost::json::value& v = next();
    if (v.is_double()) {
      val = v.get_double();
    } else if (v.is_int64()) {
      val = static_cast<double>(v.get_int64());
    } else if (v.is_uint64()) {
      val = static_cast<double>(v.get_uint64());
    } else {
      throw cereal::Exception("JSON input: expected a number");
    }
    advance();
  }
  void loadValue(std::string& val) {
    const boost::json::value& v = next();
    if (!v.is_string()) throw cereal::Exception("JSON input: expected a string");
    const boost::json::string& s = v.get_string();
    val.assign(s.data(), s.size());
    advance();
  }
  void loadValue(std::nullptr_t&) {
    const boost::json::value& v = next();
    if (!v.is_null()) throw cereal::Exception("JSON input: expected null");
    advance();
  }

  // long and unsigned long where they are not int64_t/uint64_t, and long long,
  // unsigned long long and long double: as JSONInputArchive reads them.
  template <class T>
  typename std::enable_if<std::is_same<T, long>::value && sizeof(T) >= sizeof(std::int64_t) &&
                          !std::is_same<T, std::int64_t>::value>::type
  loadValue(T& t) {
    std::int64_t v = 0;
    loadValue(v);
    t = static_cast<T>(v);
  }
  template <class T>
  typename std::enable_if<std::is_same<T, unsigned long>::value &&
                          sizeof(T) >= sizeof(std::uint64_t) &&
                          !std::is_same<T, std::uint64_t>::value>::type
  loadValue(T& t) {
    std::uint64_t v = 0;
    loadValue(v);
    t = static_cast<T>(v);
  }
  template <class T,
            cereal::traits::EnableIf<
                std::is_arithmetic<T>::value, !std::is_same<T, long>::value,
                !std::is_same<T, unsigned long>::value, !std::is_same<T, std::int64_t>::value,
                !std::is_same<T, std::uint64_t>::value,
                (sizeof(T) >= sizeof(long double) || sizeof(T) >= sizeof(long long))> =
                cereal::traits::sfinae>
  void loadValue(T& val) {
    std::string encoded;
    loadValue(encoded);
    string_to_number(encoded, val);
  }

  void loadSize(cereal::size_type& size) {
    const boost::json::value& v = stack_.size() == 1 ? *root_ : stack_[stack_.size() - 2].value();
    if (!v.is_array()) throw cereal::Exception("JSON input: expected an array");
    size = v.get_array().size();
  }

 private:
  /// One level of the document being read: an object's members or an array's elements.
  struct level {
    const boost::json::key_value_pair* members = nullptr;  // an object
    const boost::json::value* elements = nullptr;          // an array
    std::size_t index = 0;
    std::size_t size = 0;

    static level of(const boost::json::object& o) noexcept {
      return level{o.empty() ? nullptr : &*o.begin(), nullptr, 0, o.size()};
    }
    static level of(const boost::json::array& a) noexcept {
      return level{nullptr, a.data(), 0, a.size()};
    }
    const boost::json::value& value() const {
      if (index >= size) throw cereal::Exception("JSON input: no more values");
      return members ? members[index].value() : elements[index];
    }
    /// The current member's name; nullptr in an array or past the end.
    const char* name() const noexcept {
      return members && index < size ? members[index].key_c_str() : nullptr;
    }
    bool name_is(const char* want, std::size_t len, std::size_t i) const noexcept {
      boost::json::string_view k = members[i].key();
      return k.size() == len && std::memcmp(k.data(), want, len) == 0;
    }
    void search(const char* want) {
      const std::size_t len = std::strlen(want);
      for (std::size_t i = 0; members && i < size; ++i) {
        if (name_is(want, len, i)) {
          index = i;
          return;
        }
      }
      throw cereal::Exception("JSON input: no field \"" + std::string(want) + "\"");
    }
  };

  /// Positions the current level on the value named by the last NVP, if any.
  void search() {
    const char* want = next_name_;
    next_name_ = nullptr;
    if (!want) return;
    level& l = stack_.back();
    if (l.members && l.index < l.size && l.name_is(want, std::strlen(want), l.index)) return;
    l.search(want);
  }
  const boost::json::value& next() {
    search();
    return stack_.back().value();
  }
  void advance() noexcept { ++stack_.back().index; }

  static bool as_int64(const boost::json::value& v, std::int64_t& out) noexcept {
    if (v.is_int64()) {
      out = v.get_int64();
      return true;
    }
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
      out = static_cast<std::int64_t>(v.get_uint64());
      return true;
    }
    return false;
  }
  static bool as_uint64(const boost::json::value& v, std::uint64_t& out) noexcept {
    if (v.is_uint64()) {
      out = v.get_uint64();
      return true;
    }
    if (v.is_int64() && v.get_int64() >= 0) {
      out = static_cast<std::uint64_t>(v.get_int64());
      return true;
    }
    return false;
  }
  static void string_to_number(const std::string& s, long long& v) { v = std::stoll(s); }
  static void string_to_number(const std::string& s, unsigned long long& v) { v = std::stoull(s); }
  static void string_to_number(const std::string& s, long double& v) { v = std::stold(s); }

  const boost::json::value* root_ = nullptr;
  const char* next_name_ = nullptr;
  boost::container::small_vector<level, 8> stack_;
};

// How cereal's types meet the archive: the same rules as for JSONInputArchive.
// Names (NVPs), sizes and deferred data open no node; arithmetic values,
// strings and null are read in place; everything else opens a node.

template <class T>
void prologue(json_input_archive&, const cereal::NameValuePair<T>&) {}
template <class T>
void epilogue(json_input_archive&, const cereal::NameValuePair<T>&) {}
template <class T>
void prologue(json_input_archive&, const cereal::DeferredData<T>&) {}
template <class T>
void epilogue(json_input_archive&, const cereal::DeferredData<T>&) {}
template <class T>
void prologue(json_input_archive&, const cereal::SizeTag<T>&) {}
template <class T>
void epilogue(json_input_archive&, const cereal::SizeTag<T>&) {}

template <class T,
          cereal::traits::EnableIf<
              !std::is_arithmetic<T>::value,
              !cereal::traits::has_minimal_base_class_serialization<
                  T, cereal::traits::has_minimal_input_serialization, json_input_archive>::value,
              !cereal::traits::has_minimal_input_serialization<T, json_input_archive>::value> =
              cereal::traits::sfinae>
void prologue(json_input_archive& ar, const T&) {
  ar.startNode();
}
template <class T,
          cereal::traits::EnableIf<
              !std::is_arithmetic<T>::value,
              !cereal::traits::has_minimal_base_class_serialization<
                  T, cereal::traits::has_minimal_input_serialization, json_input_archive>::value,
              !cereal::traits::has_minimal_input_serialization<T, json_input_archive>::value> =
              cereal::traits::sfinae>
void epilogue(json_input_archive& ar, const T&) {
  ar.finishNode();
}

inline void prologue(json_input_archive&, const std::nullptr_t&) {}
inline void epilogue(json_input_archive&, const std::nullptr_t&) {}
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void prologue(json_input_archive&, const T&) {}
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void epilogue(json_input_archive&, const T&) {}
template <class CharT, class Traits, class Alloc>
void prologue(json_input_archive&, const std::basic_string<CharT, Traits, Alloc>&) {}
template <class CharT, class Traits, class Alloc>
void epilogue(json_input_archive&, const std::basic_string<CharT, Traits, Alloc>&) {}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(json_input_archive& ar, cereal::NameValuePair<T>& t) {
  ar.setNextName(t.name);
  ar(t.value);
}
inline void CEREAL_LOAD_FUNCTION_NAME(json_input_archive& ar, std::nullptr_t& t) {
  ar.loadValue(t);
}
template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void CEREAL_LOAD_FUNCTION_NAME(json_input_archive& ar, T& t) {
  ar.loadValue(t);
}
template <class CharT, class Traits, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(json_input_archive& ar, std::basic_string<CharT, Traits, Alloc>& s) {
  ar.loadValue(s);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(json_input_archive& ar, cereal::SizeTag<T>& st) {
  ar.loadSize(st.size);
}

}  // namespace troupe::saga::detail

CEREAL_REGISTER_ARCHIVE(troupe::saga::detail::json_input_archive)

// Minimal (load_minimal) types find their stored type through the matching
// output archive: JSON's. Only this direction: JSONOutputArchive's input
// archive stays cereal's.
namespace cereal::traits::detail {
template <>
struct get_output_from_input<troupe::saga::detail::json_input_archive> {
  using type = cereal::JSONOutputArchive;
};
}  // namespace cereal::traits::detail
