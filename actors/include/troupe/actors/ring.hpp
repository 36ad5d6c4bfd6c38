// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// ring: a consistent-hash ring with virtual points, usable on its own.
///
/// Each member gets round(points × weight) points on a 64-bit circle (a
/// 32-bit one in MD5 / SHA1 mode). With xxh3 (the default) a key belongs to
/// the member of the point nearest its hash, either way round
/// (ring_rule::nearest); with MD5 or SHA1, or ring_rule::successor, to the
/// member of the first point clockwise, as in ketama. Adding or removing a
/// member moves only the keys of the arcs it gains or loses. The ring depends
/// only on its set of members and their weights — not on the order they
/// joined — so every node computes the same answers.
///
/// Hashes: xxh3 (default, libxxhash), or MD5 / SHA1 (OpenSSL) for ketama
/// compatibility: in MD5 mode a member's points are the four little-endian
/// 32-bit words of md5("member-i") for i < points/4, and a key hashes to the
/// first word of md5(key), as libketama does. ring_options::ketama() is the
/// whole ketama setting (MD5, 160 points, the successor rule).
///
/// Not thread-safe: one ring belongs to one actor (the ring-router) or thread.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <troupe/core/error.hpp>
#include <unordered_map>
#include <vector>

namespace troupe::actors {

enum class ring_hash : std::uint8_t { xxh3, md5, sha1 };

/// Which point a key belongs to.
enum class ring_rule : std::uint8_t {
  /// The nearest point, clockwise or not. A point's arc is half the gap before
  /// it plus half the gap after it, so a member's share varies by
  /// 1/√(2 × points) instead of 1/√points: the balance of √2 times the points
  /// at the same lookup cost.
  nearest,
  /// The first point clockwise (the classic ring, and ketama's rule).
  successor,
  /// nearest with xxh3; successor with MD5 or SHA1, so that picking a
  /// ketama hash gives ketama's placement. A ring's options() name the rule
  /// it resolved to.
  automatic,
};

struct ring_options {
  std::uint32_t points = 160;  ///< virtual points per member of weight 1
  ring_hash hash = ring_hash::xxh3;
  ring_rule rule = ring_rule::automatic;

  /// libketama's placement: MD5, 160 points, the first point clockwise.
  static constexpr ring_options ketama() noexcept {
    return {160, ring_hash::md5, ring_rule::successor};
  }
};

/// Why a ring operation was refused.
enum class ring_errc {
  empty_key = 1,
  empty_ring,
  empty_member,
  duplicate_member,
  unknown_member,
  bad_weight,    ///< zero, negative, not finite, or too large
  bad_points,    ///< zero points, or more than ring::points_max per member
  bad_replicas,  ///< owners(key, 0)
  not_assigned,  ///< bounded_load::release of an item the member does not hold
};
const boost::system::error_category& ring_category() noexcept;
inline boost::system::error_code make_error_code(ring_errc e) noexcept {
  return {static_cast<int>(e), ring_category()};
}

class ring {
 public:
  static constexpr std::uint32_t points_max = 1u << 20;  ///< per member, after weighting

  /// Throws std::invalid_argument for zero points (or more than points_max).
  explicit ring(ring_options opts = {});

  /// Adds a member with a weight (its points are points × weight, rounded, at least 1).
  boost::system::error_code add(std::string member, double weight = 1.0);
  /// Removes a member; its keys move to the neighbouring points.
  boost::system::error_code remove(std::string_view member);
  bool contains(std::string_view member) const noexcept;

  /// The member that owns key: one index load for most keys, a step over a
  /// point or two for the rest.
  result<std::string_view> owner(std::string_view key) const;
  /// r distinct members, the owner then clockwise from the owner's point
  /// (fewer if the ring has fewer): a replica set.
  result<std::vector<std::string_view>> owners(std::string_view key, std::size_t r) const;

  /// The key's position on the circle (what owner() looks up).
  std::uint64_t hash_key(std::string_view key) const;

  std::size_t size() const noexcept { return members_.size(); }
  std::size_t point_count() const noexcept { return points_.size(); }
  /// The fraction of the circle (of all possible keys) that member owns; 0
  /// for a name that is not on the ring.
  double share(std::string_view member) const noexcept;
  /// Increases on every change of the member set or a weight.
  std::uint64_t epoch() const noexcept { return epoch_; }
  /// A 64-bit digest of the placement (hash mode, rule, points, their
  /// members' names); 0 only for a ring that never had a member. Equal rings
  /// have equal digests, so nodes can tell whether their rings agree without
  /// comparing them.
  std::uint64_t digest() const noexcept { return digest_; }
  std::vector<std::string> members() const;
  const ring_options& options() const noexcept { return opts_; }

  /// Index of the arc holding position h (internal, for bounded_load), in
  /// O(log points). Arcs are in clockwise order; arc i is its point's.
  std::size_t point_index(std::uint64_t h) const noexcept;
  /// Index of the member owning key (member_name() names it): owner()
  /// without the checks — the key must be nonempty and the ring too.
  std::uint32_t owner_index(std::string_view key) const;
  /// Index of the member owning position h, usually in one load.
  std::uint32_t member_index(std::uint64_t h) const noexcept {
    const std::uint32_t e = index_[static_cast<std::size_t>(h >> shift_)];
    if (e & index_pure) return e & ~index_pure;
    // The bucket's arc ends are sorted and the first one past the bucket is
    // beyond h, so this stops within the bucket or at that one.
    std::size_t i = e;
    while (i < points_.size() && points_[i] < h) ++i;
    return owner_of_point_[i == points_.size() ? 0 : i];
  }
  std::uint32_t member_at_point(std::size_t i) const noexcept { return owner_of_point_[i]; }
  const std::string& member_name(std::uint32_t m) const noexcept { return members_[m].name; }

 private:
  struct member {
    std::string name;
    double weight;
  };
  void rebuild();
  /// Positions wrap at 2^64 with xxh3, at 2^32 with the ketama hashes.
  std::uint64_t circle_mask() const noexcept {
    return opts_.hash == ring_hash::xxh3 ? ~std::uint64_t{0} : 0xffff'ffffu;
  }

  ring_options opts_;
  std::vector<member> members_;  // sorted by name
  // The clockwise end of each point's arc, sorted: the point itself under
  // the successor rule, the midpoint to the next point under the nearest
  // rule. A position belongs to the first end at or after it (wrapping).
  std::vector<std::uint64_t> points_;
  std::vector<std::uint32_t> owner_of_point_;
  // Per bucket of a position's top bits (position >> shift_): index_pure |
  // the member owning the whole bucket, or the bucket's first point.
  static constexpr std::uint32_t index_pure = 0x8000'0000u;
  std::vector<std::uint32_t> index_;
  unsigned shift_ = 63;
  std::uint64_t epoch_ = 0;
  std::uint64_t digest_ = 0;
};

/// Items that moved from one member to another when the ring changed
/// (bounded_load::follow): `count` items of `key`. `to` is empty when the
/// ring has no member left (the items are then released).
struct bounded_move {
  std::string key, from, to;
  std::size_t count = 0;
};

/// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam
/// 2016): each assigned item goes to the first member clockwise from its key
/// whose load is below ceil(c × (items + 1) / members), so no member ever holds
/// more than that. Items are released when done, by key and member.
///
/// It follows the ring's changes (follow()): items of a member that left go
/// to the first member clockwise with room; items whose key now belongs to a
/// member that joined move to it while it has room (the keys plain consistent
/// hashing would move); a member over the new, lower cap sheds items, those
/// of keys it does not own first. Nothing else moves. The cap is the same
/// for every member, whatever its weight (weights shape the ring only).
/// Releases move nothing: a member may then hold more than the cap of the
/// fewer items until it sheds on the next change of the ring.
class bounded_load {
 public:
  /// c > 1 (default 1.25). Throws std::invalid_argument otherwise. The ring
  /// must outlive this.
  explicit bounded_load(const ring& r, double c = 1.25);

  /// Assigns one item with this key; returns its member (a view valid until
  /// the ring changes).
  result<std::string_view> assign(std::string_view key);
  /// Releases one item of `key` held by `member` (as assign() or a move
  /// said); ring_errc::not_assigned if it holds none.
  boost::system::error_code release(std::string_view key, std::string_view member);

  /// Brings the assignment in line with the ring after members came or went,
  /// and returns the items that moved (none if the ring did not change).
  /// assign() and release() follow the ring themselves if it changed since
  /// the last call; the moves are then counted in moved() but not listed, so
  /// call this after changing the ring when the items' holders matter.
  std::vector<bounded_move> follow();

  /// Items `member` holds (as of the last follow).
  std::size_t load(std::string_view member) const noexcept;
  std::size_t items() const noexcept { return items_; }
  /// The current per-member cap: ceil(c × items / members).
  std::size_t capacity() const noexcept;
  /// Items moved by the ring's changes, in all.
  std::size_t moved() const noexcept { return moved_; }

 private:
  struct held {
    std::uint32_t member;  // index into names_
    std::size_t count;
  };
  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view k) const noexcept {
      return std::hash<std::string_view>{}(k);
    }
  };
  using key_map = std::unordered_map<std::string, std::vector<held>, key_hash, std::equal_to<>>;

  void follow_if_changed();
  std::size_t cap_for(std::size_t items) const noexcept;
  /// The first member clockwise from key's position whose load is below cap.
  std::uint32_t walk(std::string_view key, std::size_t cap) const;
  void add(std::vector<held>& hs, std::uint32_t member, std::size_t count);

  const ring& ring_;
  double c_;
  std::uint64_t epoch_;
  std::vector<std::string> names_;  // member index (the ring's, at epoch_) -> name
  std::vector<std::size_t> load_;   // per member index
  key_map by_key_;
  std::size_t items_ = 0;
  std::size_t moved_ = 0;
};

}  // namespace troupe::actors

template <>
struct boost::system::is_error_code_enum<troupe::actors::ring_errc> : std::true_type {};
