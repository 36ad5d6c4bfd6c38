// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Message payloads: encode/decode with cereal through a bounded archive pair,
/// and stable message type ids (wire_id, TROUPE_WIRE_MESSAGE, wire_message).
///
/// A payload is the cereal serialization of one value, written with
/// wire_output_archive and read with bounded_input_archive:
///
/// - arithmetic values: their bytes, little-endian (bool is one byte, 0 or 1);
/// - container sizes (cereal's size tags): u32 little-endian;
/// - everything else the way cereal's binary archives lay it out (a struct is
///   its fields in `serialize` order, a string its size then its bytes, ...).
///
/// Decoding trusts nothing. Cereal's stock binary archive resizes a container
/// to whatever size the input claims, so a 100-byte payload could demand
/// gigabytes. bounded_input_archive instead refuses, before anything is
/// allocated, any size tag that is larger than the bytes left in the payload,
/// or that would bring the sum of all size tags above the payload's length
/// (an element takes at least one byte); std::vector and std::basic_string are
/// loaded so that memory grows only with bytes actually read; no read passes
/// the end; nesting is limited to max_depth; a bool byte other than 0 or 1 is
/// refused. Every refusal is frame_errc::bad_payload.
///
/// Consequences for message types: elements that serialize to zero bytes
/// (empty structs) cannot be put in containers; polymorphic pointers are not
/// supported (this header registers no archive for them, which is deliberate:
/// a peer must not pick which type we construct); enums are carried as their
/// underlying integer, unchecked, so validate them (or use enums with a fixed
/// underlying type) before trusting their value.
///
/// Supported out of the box (their cereal headers are included here):
/// std::string, vector, array, map, unordered_map, set, unordered_set, optional,
/// variant, pair, tuple and chrono durations.

#include <algorithm>
#include <bit>
#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <troupe/core/assert.hpp>
#include <troupe/core/error.hpp>
#include <troupe/net/frame.hpp>
#include <type_traits>

namespace troupe::net {

static_assert(std::endian::native == std::endian::little,
              "troupe's wire format is little-endian and is only implemented for "
              "little-endian hosts");

namespace detail {
/// Appends n bytes (the output archives' one way of writing).
inline void append_bytes(std::string& out, const void* data, std::size_t n) {
  if (n != 0) out.append(static_cast<const char*>(data), n);
}
/// Appends a container size as a u32 size tag.
inline void append_size(std::string& out, std::uint64_t n) {
  TROUPE_ASSERT(n <= std::numeric_limits<std::uint32_t>::max(),
                "wire: container too large for a u32 size tag");
  const auto v = static_cast<std::uint32_t>(n);
  append_bytes(out, &v, sizeof v);
}
}  // namespace detail

/// Writes a payload by appending to a std::string. Sizes are written as u32;
/// a container with more than 2^32 - 1 elements is a bug (it could never fit
/// in a frame) and asserts.
class wire_output_archive
    : public cereal::OutputArchive<wire_output_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit wire_output_archive(std::string& out) noexcept
      : OutputArchive<wire_output_archive, cereal::AllowEmptyClassElision>(this), out_(&out) {}

  /// Appends what follows to `out` instead.
  void retarget(std::string& out) noexcept { out_ = &out; }
  /// Set when cereal kept state in the archive that would change how a later
  /// value is written (a class version is written once per archive, shared
  /// pointers are numbered per archive, ...): such an archive must not serve
  /// another payload (see encode()).
  void mark_stateful() noexcept { stateful_ = true; }
  bool stateful() const noexcept { return stateful_; }

  void write(const void* data, std::size_t n) { detail::append_bytes(*out_, data, n); }
  void write_size(std::uint64_t n) { detail::append_size(*out_, n); }

 private:
  std::string* out_;
  bool stateful_ = false;
};

/// The checks every payload read goes through: a cursor over the payload's
/// bytes with its size budget and nesting depth. bounded_input_archive reads
/// through one; so does decode()'s direct reader, which lends its cursor to
/// the archive only for values cereal must handle.
class bounded_reader {
 public:
  /// How deeply values may nest (every struct, container, element and field
  /// counts one level), so hostile input cannot exhaust the stack.
  static constexpr unsigned max_depth = 128;

  explicit bounded_reader(std::string_view bytes) noexcept
      : pos_(bytes.data()), end_(bytes.data() + bytes.size()), size_budget_(bytes.size()) {}

  /// Bytes not read yet.
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - pos_); }

  /// The next `n` bytes, in place; refuses to read past the end.
  std::string_view take(std::size_t n) {
    if (n > remaining()) reject("read past the end of the payload");
    std::string_view v(pos_, n);
    pos_ += n;
    return v;
  }

  /// Copies the next `n` bytes to `data`; refuses to read past the end.
  void read(void* data, std::size_t n) {
    if (n > remaining()) reject("read past the end of the payload");
    if (n != 0) std::memcpy(data, pos_, n);
    pos_ += n;
  }

  /// Refuses unless the next `n` bytes are there and are each 0 or 1.
  void check_bools(std::size_t n) {
    if (n > remaining()) reject("read past the end of the payload");
    for (std::size_t i = 0; i < n; ++i)
      if (static_cast<unsigned char>(pos_[i]) > 1) reject("bool byte is neither 0 nor 1");
  }

  /// Reads a size tag: refused if larger than the bytes left, or if all size
  /// tags together would claim more elements than the payload has bytes.
  std::uint64_t read_size() {
    std::uint32_t n;
    read(&n, sizeof n);
    // Every element takes at least one byte, so a size beyond the bytes left is
    // a lie; refusing it here, before the container is sized, is what keeps a
    // small hostile payload from demanding a huge allocation. The budget bounds
    // the sum of all sizes too, which catches nested containers each claiming
    // "the rest".
    if (n > remaining()) reject("size tag larger than the bytes left");
    if (n > size_budget_) reject("size tags claim more elements than the payload has bytes");
    size_budget_ -= n;
    return n;
  }

  /// Refuses `n` elements of `element_bytes` bytes each unless the bytes left
  /// hold them all (used before sizing a buffer that is then filled in bulk).
  void require(std::uint64_t n, std::size_t element_bytes) {
    if (n > remaining() / element_bytes) reject("size tag larger than the bytes left");
  }

  void enter() {
    if (++depth_ > max_depth) reject("values nest deeper than max_depth");
  }
  void leave() noexcept { --depth_; }

  /// Throws wire_error with `why`.
  [[noreturn]] static void reject(const char* why);

 private:
  const char* pos_;
  const char* end_;
  std::size_t size_budget_;  // elements the remaining size tags may still claim
  unsigned depth_ = 0;
};

/// Reads a payload from a std::string_view, refusing anything the bytes cannot
/// back (see the file comment). Refusals throw wire_error, which decode()
/// turns into frame_errc::bad_payload; the view must outlive the archive.
class bounded_input_archive
    : public cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision>,
      public bounded_reader {
 public:
  explicit bounded_input_archive(std::string_view bytes) noexcept
      : InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision>(this),
        bounded_reader(bytes) {}

  /// Reads `bytes` next, from the start: for an archive that is not
  /// stateful() and whose last read ended without an error (see decode()).
  void reset(std::string_view bytes) noexcept { reader() = bounded_reader(bytes); }
  /// The cursor, to hand over and take back (decode()'s direct reader).
  bounded_reader& reader() noexcept { return *this; }

  /// As wire_output_archive::mark_stateful: cereal kept state (class
  /// versions are read once per archive, shared pointers are numbered per
  /// archive, ...), so the archive must not read another payload.
  void mark_stateful() noexcept { stateful_ = true; }
  bool stateful() const noexcept { return stateful_; }

 private:
  bool stateful_ = false;
};

class wire_error : public cereal::Exception {
 public:
  using cereal::Exception::Exception;
};

// ---- How the two archives handle cereal's primitives. Found by argument-
// dependent lookup; more specialised than cereal's generic overloads, which
// they therefore replace for these archives.

namespace detail {
template <class T>
concept wire_arithmetic = std::is_arithmetic_v<T>;

template <class T>
constexpr void check_arithmetic() {
  static_assert(!std::is_same_v<T, long double>, "wire: long double has no portable layout");
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                "wire: floating point must be IEEE 754");
}

/// Initial reservation for a vector being decoded: it then grows with the
/// elements actually read, never to what the size tag merely claims.
template <class T>
constexpr std::size_t vector_reserve_max = std::max<std::size_t>(1, 4096 / sizeof(T));
}  // namespace detail

template <detail::wire_arithmetic T>
void CEREAL_SAVE_FUNCTION_NAME(wire_output_archive& ar, const T& v) {
  detail::check_arithmetic<T>();
  if constexpr (std::is_same_v<T, bool>) {
    const std::uint8_t b = v ? 1 : 0;
    ar.write(&b, 1);
  } else {
    ar.write(&v, sizeof v);
  }
}

namespace detail {
// The reading side of an arithmetic value and of binary data, for the
// archive and the direct reader alike.
template <class T>
void read_arithmetic(bounded_reader& r, T& v) {
  check_arithmetic<T>();
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t b;
    r.read(&b, 1);
    if (b > 1) bounded_reader::reject("bool byte is neither 0 nor 1");
    v = b == 1;
  } else {
    r.read(&v, sizeof v);
  }
}
template <class T>
void read_binary(bounded_reader& r, cereal::BinaryData<T>& bd) {
  // Cereal loads arrays of arithmetic values (bool ones too: std::array<bool, N>,
  // bool[N]) as raw bytes; a bool byte other than 0 or 1 would be undefined.
  using element = std::remove_all_extents_t<
      std::remove_cv_t<std::remove_pointer_t<std::remove_reference_t<T>>>>;
  if constexpr (std::is_same_v<element, bool>) r.check_bools(static_cast<std::size_t>(bd.size));
  r.read(bd.data, static_cast<std::size_t>(bd.size));
}
}  // namespace detail

template <detail::wire_arithmetic T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, T& v) {
  detail::read_arithmetic(ar.reader(), v);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_output_archive& ar, const cereal::SizeTag<T>& tag) {
  ar.write_size(tag.size);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::SizeTag<T>& tag) {
  tag.size = ar.read_size();
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_output_archive& ar, const cereal::NameValuePair<T>& nvp) {
  ar(nvp.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::NameValuePair<T>& nvp) {
  ar(nvp.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_output_archive& ar, const cereal::BinaryData<T>& bd) {
  ar.write(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::BinaryData<T>& bd) {
  detail::read_binary(ar.reader(), bd);
}

/// Strings: the size is checked against the bytes left before the resize.
template <class C, class Traits, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::basic_string<C, Traits, Alloc>& s) {
  cereal::size_type n;
  ar(cereal::make_size_tag(n));
  ar.require(n, sizeof(C));
  if constexpr (sizeof(C) == 1) {
    // Copied straight from the payload (no zero-fill first).
    const std::string_view bytes = ar.take(static_cast<std::size_t>(n));
    s.assign(reinterpret_cast<const C*>(bytes.data()), bytes.size());
  } else {
    s.resize(static_cast<std::size_t>(n));
    ar.read(s.data(), static_cast<std::size_t>(n) * sizeof(C));
  }
}

/// Vectors: arithmetic elements are checked against the bytes left and read in
/// bulk; other elements are read one by one, so memory follows the bytes read.
template <class T, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::vector<T, Alloc>& v) {
  cereal::size_type n;
  ar(cereal::make_size_tag(n));
  v.clear();
  if constexpr (std::is_arithmetic_v<T>) {
    detail::check_arithmetic<T>();
    ar.require(n, sizeof(T));
    v.resize(static_cast<std::size_t>(n));
    ar.read(v.data(), static_cast<std::size_t>(n) * sizeof(T));
  } else {
    v.reserve(std::min<std::size_t>(static_cast<std::size_t>(n), detail::vector_reserve_max<T>));
    for (cereal::size_type i = 0; i < n; ++i) {
      v.emplace_back();
      ar(v.back());
    }
  }
}
template <class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::vector<bool, Alloc>& v) {
  cereal::size_type n;
  ar(cereal::make_size_tag(n));
  v.clear();
  for (cereal::size_type i = 0; i < n; ++i) {
    bool b;
    ar(b);
    v.push_back(b);
  }
}

namespace detail {
/// True for the names cereal gives the values it writes for its own
/// bookkeeping, which depends on what the archive saw before: a class
/// version (written once per archive and type), shared pointers
/// (`ptr_wrapper`: numbered per archive), polymorphic types (numbered per
/// archive). Seeing one makes the archive stateful.
inline bool cereal_bookkeeping(const char* name) noexcept {
  return name != nullptr &&
         (std::strcmp(name, "cereal_class_version") == 0 || std::strcmp(name, "ptr_wrapper") == 0 ||
          std::strcmp(name, "polymorphic_id") == 0);
}
}  // namespace detail

/// Values that leave state in a cereal archive (see cereal_bookkeeping;
/// virtual base classes are written once per archive, deferred data waits in
/// it) mark it stateful, so it is not reused for another payload.
template <class T>
void prologue(wire_output_archive& ar, const cereal::NameValuePair<T>& nvp) {
  if (detail::cereal_bookkeeping(nvp.name)) ar.mark_stateful();
}
template <class T>
void prologue(wire_output_archive& ar, const cereal::virtual_base_class<T>&) {
  ar.mark_stateful();
}
template <class T>
void prologue(wire_output_archive& ar, const cereal::DeferredData<T>&) {
  ar.mark_stateful();
}

/// Counts nesting around every value cereal loads, and marks the archive
/// stateful as the output archive does.
template <class T>
void prologue(bounded_input_archive& ar, const T&) {
  ar.enter();
}
template <class T>
void prologue(bounded_input_archive& ar, const cereal::NameValuePair<T>& nvp) {
  ar.enter();
  if (detail::cereal_bookkeeping(nvp.name)) ar.mark_stateful();
}
template <class T>
void prologue(bounded_input_archive& ar, const cereal::virtual_base_class<T>&) {
  ar.enter();
  ar.mark_stateful();
}
template <class T>
void prologue(bounded_input_archive& ar, const cereal::DeferredData<T>&) {
  ar.enter();
  ar.mark_stateful();
}
template <class T>
void epilogue(bounded_input_archive& ar, const T&) {
  ar.leave();
}

// ---- encode / decode

namespace detail {
/// Lends a payload the thread's cereal archive, so an encode or decode does
/// not build and destroy one (cereal's archives hold hash tables for pointer
/// tracking and class versions). The archive goes back for reuse only if the
/// payload was done (keep()) and left no state in it (stateful()); otherwise
/// it is destroyed and the next payload gets a fresh one, so every payload is
/// written and read exactly as by an archive of its own. A payload encoded
/// while the thread's archive is lent (from inside a serialize function)
/// gets an archive of its own.
class output_lease {
 public:
  explicit output_lease(std::string& out);
  ~output_lease();
  output_lease(const output_lease&) = delete;
  output_lease& operator=(const output_lease&) = delete;
  wire_output_archive& archive() noexcept { return *ar_; }
  void keep() noexcept { keep_ = true; }

 private:
  wire_output_archive* ar_;
  std::optional<wire_output_archive> own_;
  bool keep_ = false;
};

class input_lease {
 public:
  explicit input_lease(std::string_view bytes);
  ~input_lease();
  input_lease(const input_lease&) = delete;
  input_lease& operator=(const input_lease&) = delete;
  bounded_input_archive& archive() noexcept { return *ar_; }
  void keep() noexcept { keep_ = true; }

 private:
  bounded_input_archive* ar_;
  std::optional<bounded_input_archive> own_;
  bool keep_ = false;
};
}  // namespace detail

namespace detail {
template <class T>
struct is_char_string : std::false_type {};
template <class A>
struct is_char_string<std::basic_string<char, std::char_traits<char>, A>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};  // vector<bool> is left to cereal
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::bool_constant<!std::is_same_v<T, bool>> {};

class direct_writer;
template <class T>
concept member_serialize_for_direct = std::is_class_v<T> && requires(T& t, direct_writer& w) {
  t.serialize(w);
};
template <class T>
concept member_save_for_direct = std::is_class_v<T> && requires(const T& t, direct_writer& w) {
  t.save(w);
};

/// The encoder of most messages: it writes the values that need none of
/// cereal's bookkeeping — arithmetic values, enums, strings, vectors of
/// those, classes whose one-argument member serialize() or save() it can
/// call — straight into the output, the way wire_output_archive lays them
/// out, and hands every other value (maps, optionals, variants, versioned
/// classes, base classes, ...) to the thread's cereal archive, which appends
/// to the same string. Same bytes either way (tested); what it saves is
/// cereal's dispatch, which reloads the archive's `self` pointer at every
/// nesting level.
class direct_writer {
 public:
  using is_loading = std::false_type;
  using is_saving = std::true_type;

  explicit direct_writer(std::string& out) noexcept : out_(&out) {}

  template <class... Ts>
  direct_writer& operator()(const Ts&... values) {
    (put(values), ...);
    return *this;
  }
  /// The payload is complete: a borrowed archive goes back to the thread
  /// (else, after an exception, it is rebuilt for the next payload).
  void done() noexcept {
    if (lease_) lease_->keep();
  }

 private:
  void write(const void* data, std::size_t n) { detail::append_bytes(*out_, data, n); }
  void write_size(std::uint64_t n) { detail::append_size(*out_, n); }

  template <class T>
  void put(const T& v) {
    if constexpr (std::is_arithmetic_v<T>) {
      check_arithmetic<T>();
      if constexpr (std::is_same_v<T, bool>) {
        const std::uint8_t b = v ? 1 : 0;
        write(&b, 1);
      } else {
        write(&v, sizeof v);
      }
    } else if constexpr (std::is_enum_v<T>) {
      put(static_cast<std::underlying_type_t<T>>(v));
    } else if constexpr (is_char_string<T>::value) {
      write_size(v.size());
      write(v.data(), v.size());
    } else if constexpr (is_vector<T>::value) {
      write_size(v.size());
      if constexpr (std::is_arithmetic_v<typename T::value_type>) {
        check_arithmetic<typename T::value_type>();
        write(v.data(), v.size() * sizeof(typename T::value_type));
      } else {
        for (const auto& e : v) put(e);
      }
    } else if constexpr (member_serialize_for_direct<T>) {
      const_cast<T&>(v).serialize(*this);  // as cereal calls it
    } else if constexpr (member_save_for_direct<T>) {
      v.save(*this);
    } else {
      cereal_archive()(v);
    }
  }
  template <class T>
  void put(const cereal::NameValuePair<T>& nvp) {
    if (cereal_bookkeeping(nvp.name)) {
      cereal_archive()(nvp);
    } else {
      put(nvp.value);
    }
  }
  template <class T>
  void put(const cereal::SizeTag<T>& tag) {
    write_size(tag.size);
  }
  template <class T>
  void put(const cereal::BinaryData<T>& bd) {
    write(bd.data, static_cast<std::size_t>(bd.size));
  }

  wire_output_archive& cereal_archive() {
    if (!lease_) lease_.emplace(*out_);
    return lease_->archive();
  }

  std::string* out_;
  std::optional<output_lease> lease_;
};
}  // namespace detail

/// Appends the payload encoding of `value` to `out`.
template <class T>
void encode(const T& value, std::string& out) {
  detail::direct_writer w(out);
  w(value);
  w.done();
}

/// encode() through a cereal archive for every value (the reference the
/// direct path is tested against).
template <class T>
void encode_with_cereal(const T& value, std::string& out) {
  detail::output_lease lease(out);
  lease.archive()(value);
  lease.keep();
}

namespace detail {
class direct_reader;
template <class T>
concept member_serialize_for_direct_read = std::is_class_v<T> && requires(T& t, direct_reader& r) {
  t.serialize(r);
};
template <class T>
concept member_load_for_direct_read = std::is_class_v<T> && requires(T& t, direct_reader& r) {
  t.load(r);
};

/// direct_writer's counterpart: reads the same shapes straight from the
/// payload through a bounded_reader of its own (size tags against the bytes
/// left and the size budget, bool bytes, nesting depth counted level for
/// level as cereal counts it), and lends that cursor to the thread's
/// bounded_input_archive for every other value, borrowing the archive only
/// then. Same results and the same refusals (tested).
class direct_reader {
 public:
  using is_loading = std::true_type;
  using is_saving = std::false_type;

  explicit direct_reader(std::string_view bytes) noexcept : cur_(bytes) {}

  template <class... Ts>
  direct_reader& operator()(Ts&&... values) {
    (get(values), ...);
    return *this;
  }
  /// The payload was read whole: a borrowed archive goes back to the thread
  /// (else, after an exception, it is rebuilt for the next payload).
  void done() noexcept {
    if (lease_) lease_->keep();
  }
  std::size_t remaining() const noexcept { return cur_.remaining(); }

 private:
  template <class T>
  void get(T& v) {
    if constexpr (std::is_arithmetic_v<T>) {
      cur_.enter();
      read_arithmetic(cur_, v);
      cur_.leave();
    } else if constexpr (std::is_enum_v<T>) {
      cur_.enter();  // cereal: the enum, then its underlying value
      std::underlying_type_t<T> u;
      get(u);
      v = static_cast<T>(u);
      cur_.leave();
    } else if constexpr (is_char_string<T>::value) {
      cur_.enter();
      const std::uint64_t n = size_tag();
      cur_.require(n, 1);
      const std::string_view bytes = cur_.take(static_cast<std::size_t>(n));
      v.assign(bytes.data(), bytes.size());
      cur_.leave();
    } else if constexpr (is_vector<T>::value) {
      cur_.enter();
      const std::uint64_t n = size_tag();
      v.clear();
      using E = typename T::value_type;
      if constexpr (std::is_arithmetic_v<E>) {
        check_arithmetic<E>();
        cur_.require(n, sizeof(E));
        v.resize(static_cast<std::size_t>(n));
        cur_.read(v.data(), static_cast<std::size_t>(n) * sizeof(E));
      } else {
        v.reserve(std::min<std::size_t>(static_cast<std::size_t>(n), vector_reserve_max<E>));
        for (std::uint64_t i = 0; i < n; ++i) {
          v.emplace_back();
          get(v.back());
        }
      }
      cur_.leave();
    } else if constexpr (member_serialize_for_direct_read<T>) {
      cur_.enter();
      v.serialize(*this);
      cur_.leave();
    } else if constexpr (member_load_for_direct_read<T>) {
      cur_.enter();
      v.load(*this);
      cur_.leave();
    } else {
      with_archive([&](bounded_input_archive& ar) { ar(v); });
    }
  }
  template <class T>
  void get(cereal::NameValuePair<T>& nvp) {
    if (cereal_bookkeeping(nvp.name)) {
      with_archive([&](bounded_input_archive& ar) { ar(nvp); });
      return;
    }
    cur_.enter();
    get(nvp.value);
    cur_.leave();
  }
  template <class T>
  void get(cereal::SizeTag<T>& tag) {
    tag.size = static_cast<std::remove_reference_t<T>>(size_tag());
  }
  template <class T>
  void get(cereal::BinaryData<T>& bd) {
    cur_.enter();
    read_binary(cur_, bd);
    cur_.leave();
  }
  // A size tag, a level of its own as in cereal.
  std::uint64_t size_tag() {
    cur_.enter();
    const std::uint64_t n = cur_.read_size();
    cur_.leave();
    return n;
  }
  // Runs `f` on the thread's archive reading from where this reader is, and
  // takes the position back.
  template <class F>
  void with_archive(F&& f) {
    if (!lease_) lease_.emplace(std::string_view{});
    bounded_input_archive& ar = lease_->archive();
    ar.reader() = cur_;
    f(ar);
    cur_ = ar.reader();
  }

  bounded_reader cur_;
  std::optional<input_lease> lease_;
};

template <class T>
result<T> decode_with(std::string_view bytes, bool direct) {
  static_assert(std::is_default_constructible_v<T>, "wire: decode needs a default-constructible T");
  T value{};
  try {
    if (direct) {
      direct_reader r(bytes);
      r(value);
      r.done();
      if (r.remaining() != 0) return failure<T>(make_error_code(frame_errc::trailing_bytes));
    } else {
      input_lease lease(bytes);
      lease.archive()(value);
      lease.keep();
      if (lease.archive().remaining() != 0)
        return failure<T>(make_error_code(frame_errc::trailing_bytes));
    }
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception&) {
    return failure<T>(make_error_code(frame_errc::bad_payload));
  }
  return result<T>(std::move(value));
}
}  // namespace detail

/// Decodes one T that must take exactly all of `bytes`. Errors:
/// frame_errc::bad_payload (malformed, truncated, impossible sizes, too deep,
/// or a serialize function that threw) and frame_errc::trailing_bytes (a valid
/// T followed by more bytes). std::bad_alloc is not caught.
template <class T>
result<T> decode(std::string_view bytes) {
  return detail::decode_with<T>(bytes, true);
}

/// decode() through cereal's dispatch for every value (the reference the
/// direct path is tested against).
template <class T>
result<T> decode_with_cereal(std::string_view bytes) {
  return detail::decode_with<T>(bytes, false);
}

// ---- message type ids

/// The stable id of a message type on the wire, and its name for logs.
/// Specialise it with TROUPE_WIRE_MESSAGE; the primary template stays
/// undefined, so wire_message<T> is false for types that were not registered.
template <class T>
struct wire_id;

/// Ids from here up are reserved for troupe's own messages; 0 means "no
/// message" in a frame header.
constexpr std::uint32_t wire_id_reserved_min = 0xFFFF0000u;

/// True when T was registered with TROUPE_WIRE_MESSAGE (wire_id<T> is specialised).
template <class T>
concept wire_message = requires {
  { wire_id<T>::value } -> std::convertible_to<std::uint32_t>;
  { wire_id<T>::name } -> std::convertible_to<const char*>;
};

}  // namespace troupe::net

/// Registers `Type` as a message that can cross the network, under the stable
/// id `Id` (a nonzero u32 below 0xFFFF0000, unique across the cluster's
/// message types; changing it breaks compatibility with running nodes). Use it
/// at global namespace scope, after Type's serialize function is declared:
///
/// ```
/// struct deposit { std::string account; std::int64_t cents;
///                  template <class A> void serialize(A& a) { a(account, cents); } };
/// TROUPE_WIRE_MESSAGE(deposit, 17);
/// ```
#define TROUPE_WIRE_MESSAGE(Type, Id)                                                        \
  template <>                                                                                \
  struct troupe::net::wire_id<Type> {                                                        \
    static_assert(static_cast<unsigned long long>(Id) != 0,                                  \
                  "TROUPE_WIRE_MESSAGE: id 0 means 'no message' and cannot be used");        \
    static_assert(static_cast<unsigned long long>(Id) < ::troupe::net::wire_id_reserved_min, \
                  "TROUPE_WIRE_MESSAGE: ids from 0xFFFF0000 up are reserved for troupe");    \
    static_assert(::cereal::traits::is_output_serializable<                                  \
                      Type, ::troupe::net::wire_output_archive>::value ||                    \
                      ::std::is_empty_v<Type>,                                               \
                  "TROUPE_WIRE_MESSAGE: " #Type                                              \
                  " has no cereal serialize (or save/load) function");                       \
    static constexpr std::uint32_t value = static_cast<std::uint32_t>(Id);                   \
    static constexpr const char* name = #Type;                                               \
  }

CEREAL_SETUP_ARCHIVE_TRAITS(troupe::net::bounded_input_archive, troupe::net::wire_output_archive)
