// SPDX-License-Identifier: BSL-1.0
#include <openssl/evp.h>
#define XXH_INLINE_ALL  // the key hash is inlined into the lookup
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <troupe/actors/ring.hpp>
#include <troupe/core/assert.hpp>
#include <tuple>

namespace troupe::actors {

namespace {
class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "troupe.ring"; }
  std::string message(int ev) const override {
    switch (static_cast<ring_errc>(ev)) {
      case ring_errc::empty_key:
        return "the key is empty";
      case ring_errc::empty_ring:
        return "the ring has no members";
      case ring_errc::empty_member:
        return "a member name must not be empty";
      case ring_errc::duplicate_member:
        return "the member is already on the ring";
      case ring_errc::unknown_member:
        return "no such member on the ring";
      case ring_errc::bad_weight:
        return "a weight must be finite and greater than zero";
      case ring_errc::bad_points:
        return "the number of points must be between 1 and 2^20 per member";
      case ring_errc::bad_replicas:
        return "a replica set needs at least one member";
      case ring_errc::not_assigned:
        return "the member holds no item with that key";
    }
    return "unknown ring error";
  }
};

// Digest of `data` with an OpenSSL digest (MD5 or SHA1). OpenSSL 3's one-shot
// EVP_Digest looks the algorithm up and builds a context on every call (~400 ns
// here); a per-thread context and a fetched algorithm make it ~4x cheaper.
void md_digest(bool md5, std::string_view data, unsigned char out[20]) {
  struct cached {
    EVP_MD* md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
    EVP_MD* sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~cached() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md5);
      EVP_MD_free(sha1);
    }
  };
  thread_local cached c;
  unsigned int len = 0;
  if (!c.ctx || !(md5 ? c.md5 : c.sha1) ||
      EVP_DigestInit_ex2(c.ctx, md5 ? c.md5 : c.sha1, nullptr) != 1 ||
      EVP_DigestUpdate(c.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(c.ctx, out, &len) != 1)
    throw std::runtime_error("troupe: ring digest (OpenSSL MD5/SHA1) failed");
}
std::uint32_t le32(const unsigned char* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
}  // namespace

const boost::system::error_category& ring_category() noexcept {
  static const category c;
  return c;
}

ring::ring(ring_options opts) : opts_(opts) {
  if (opts_.points == 0 || opts_.points > points_max)
    throw std::invalid_argument("troupe: " + make_error_code(ring_errc::bad_points).message());
  if (opts_.rule == ring_rule::automatic)
    opts_.rule = opts_.hash == ring_hash::xxh3 ? ring_rule::nearest : ring_rule::successor;
  if (opts_.rule != ring_rule::nearest && opts_.rule != ring_rule::successor)
    throw std::invalid_argument("troupe: ring: unknown ring_rule");
}

std::uint64_t ring::hash_key(std::string_view key) const {
  switch (opts_.hash) {
    case ring_hash::xxh3:
      return XXH3_64bits(key.data(), key.size());
    case ring_hash::md5:
    case ring_hash::sha1: {
      unsigned char d[20];
      md_digest(opts_.hash == ring_hash::md5, key, d);
      return le32(d);  // ketama: a 32-bit circle
    }
  }
  return 0;
}

boost::system::error_code ring::add(std::string name, double weight) {
  if (name.empty()) return ring_errc::empty_member;
  if (!std::isfinite(weight) || weight <= 0 || weight * opts_.points > points_max)
    return ring_errc::bad_weight;
  auto it = std::lower_bound(members_.begin(), members_.end(), name,
                             [](const member& m, const std::string& n) { return m.name < n; });
  if (it != members_.end() && it->name == name) return ring_errc::duplicate_member;
  members_.insert(it, member{std::move(name), weight});
  rebuild();
  return {};
}

boost::system::error_code ring::remove(std::string_view name) {
  auto it = std::lower_bound(members_.begin(), members_.end(), name,
                             [](const member& m, std::string_view n) { return m.name < n; });
  if (it == members_.end() || it->name != name) return ring_errc::unknown_member;
  members_.erase(it);
  rebuild();
  return {};
}

bool ring::contains(std::string_view name) const noexcept {
  auto it = std::lower_bound(members_.begin(), members_.end(), name,
                             [](const member& m, std::string_view n) { return m.name < n; });
  return it != members_.end() && it->name == name;
}

std::vector<std::string> ring::members() const {
  std::vector<std::string> out;
  for (auto& m : members_) out.push_back(m.name);
  return out;
}

void ring::rebuild() {
  ++epoch_;
  // (position, member) for every point; members_ is sorted by name, so ties
  // on a position resolve the same way on every node.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> all;
  for (std::uint32_t m = 0; m < members_.size(); ++m) {
    const auto n = std::max<std::uint32_t>(
        1, static_cast<std::uint32_t>(std::lround(opts_.points * members_[m].weight)));
    const std::string& name = members_[m].name;
    if (opts_.hash == ring_hash::xxh3) {
      std::string label;
      for (std::uint32_t i = 0; i < n; ++i) {
        label = name;
        label += '-';
        label += std::to_string(i);
        all.emplace_back(XXH3_64bits(label.data(), label.size()), m);
      }
    } else {
      // ketama: four 32-bit points per digest of "name-i".
      unsigned char d[20];
      for (std::uint32_t i = 0; i * 4 < n; ++i) {
        md_digest(opts_.hash == ring_hash::md5, name + "-" + std::to_string(i), d);
        for (std::uint32_t k = 0; k < 4 && i * 4 + k < n; ++k) all.emplace_back(le32(d + 4 * k), m);
      }
    }
  }
  std::sort(all.begin(), all.end());
  if (opts_.rule == ring_rule::nearest && all.size() > 1) {
    // Each point's arc ends halfway to the next point clockwise. The ends
    // keep the points' circular order; only the last one may wrap past 0,
    // so the sort below is a rotation, with ties still ordered by member.
    const std::uint64_t mask = circle_mask();
    const std::uint64_t first = all.front().first;
    for (std::size_t i = 0; i < all.size(); ++i) {
      const std::uint64_t here = all[i].first;
      const std::uint64_t next = i + 1 < all.size() ? all[i + 1].first : first;
      all[i].first = (here + ((next - here) & mask) / 2) & mask;
    }
    std::sort(all.begin(), all.end());
  }
  points_.resize(all.size());
  owner_of_point_.resize(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) std::tie(points_[i], owner_of_point_[i]) = all[i];
  // Index by the top bits of a position: eight to sixteen buckets per arc
  // end while that stays within 2^15 buckets (128 KiB: a two-member ring's
  // index is 16 KiB), two to four past that (16,000 points take 128 KiB). Most
  // buckets hold no arc end: every position in one belongs to the member of
  // the next one, and the entry says so (index_pure | member), so a lookup
  // is one load. For the others the entry is the bucket's first arc end, and
  // a lookup steps over the one or two before its position. (With two to
  // four buckets per point, a quarter to a third of the lookups take that
  // step; in a routed stream over a two-member ring its mispredicted branch
  // and extra loads cost ~13 ns per message. With eight to sixteen, one in
  // ten or fewer.)
  TROUPE_ASSERT(points_.size() < index_pure, "ring: too many points");
  const auto width = static_cast<unsigned>(std::bit_width(points_.size()));
  const unsigned bits = std::min<unsigned>(std::max(std::min(width + 3, 15u), width + 1), 22);
  shift_ = (opts_.hash == ring_hash::xxh3 ? 64 : 32) - bits;
  const std::size_t buckets = std::size_t{1} << bits;
  index_.assign(buckets, 0);
  std::size_t next = 0;  // the first point at or after the current bucket's start
  for (std::size_t b = 0; b < buckets; ++b) {
    while (next < points_.size() && (points_[next] >> shift_) < b) ++next;
    if (next < points_.size() && (points_[next] >> shift_) == b) {
      index_[b] = static_cast<std::uint32_t>(next);
    } else {  // no point in this bucket: the next one's member (wrapping around)
      const std::uint32_t m = points_.empty() ? 0 : owner_of_point_[next % points_.size()];
      index_[b] = index_pure | m;
    }
  }
  // The digest covers everything a lookup reads: the key hash, the points,
  // whose they are, and the members' names.
  XXH3_state_t* st = XXH3_createState();
  if (!st) throw std::bad_alloc();
  XXH3_64bits_reset(st);
  const std::uint8_t mode[2] = {static_cast<std::uint8_t>(opts_.hash),
                                static_cast<std::uint8_t>(opts_.rule)};
  XXH3_64bits_update(st, mode, sizeof mode);
  XXH3_64bits_update(st, points_.data(), points_.size() * sizeof(points_[0]));
  XXH3_64bits_update(st, owner_of_point_.data(),
                     owner_of_point_.size() * sizeof(owner_of_point_[0]));
  for (const member& m : members_) {
    const std::uint64_t len = m.name.size();
    XXH3_64bits_update(st, &len, sizeof len);
    XXH3_64bits_update(st, m.name.data(), m.name.size());
  }
  digest_ = std::max<std::uint64_t>(1, XXH3_64bits_digest(st));  // 0 means "unknown"
  XXH3_freeState(st);
}

std::size_t ring::point_index(std::uint64_t h) const noexcept {
  auto it = std::lower_bound(points_.begin(), points_.end(), h);
  if (it == points_.end()) return 0;  // wrap around the circle
  return static_cast<std::size_t>(it - points_.begin());
}

double ring::share(std::string_view name) const noexcept {
  if (points_.empty()) return 0;
  auto it = std::lower_bound(members_.begin(), members_.end(), name,
                             [](const member& m, std::string_view n) { return m.name < n; });
  if (it == members_.end() || it->name != name) return 0;
  const auto m = static_cast<std::uint32_t>(it - members_.begin());
  if (members_.size() == 1) return 1;
  // Arc i runs from the end of arc i-1 (exclusive) to points_[i]; on the
  // 64-bit circle the difference wraps by itself, on the 32-bit one the mask
  // wraps it.
  const std::uint64_t mask = circle_mask();
  double owned = 0;
  for (std::size_t i = 0; i < points_.size(); ++i) {
    if (owner_of_point_[i] != m) continue;
    const std::uint64_t prev = points_[i == 0 ? points_.size() - 1 : i - 1];
    owned += static_cast<double>((points_[i] - prev) & mask);
  }
  return owned / (static_cast<double>(mask) + 1.0);
}

std::uint32_t ring::owner_index(std::string_view key) const {
  TROUPE_ASSERT(!key.empty() && !points_.empty(), "ring::owner_index: empty key or ring");
  return member_index(hash_key(key));
}

result<std::string_view> ring::owner(std::string_view key) const {
  if (key.empty()) return failure<std::string_view>(make_error_code(ring_errc::empty_key));
  if (points_.empty()) return failure<std::string_view>(make_error_code(ring_errc::empty_ring));
  return std::string_view(member_name(owner_index(key)));
}

result<std::vector<std::string_view>> ring::owners(std::string_view key, std::size_t r) const {
  using out_t = std::vector<std::string_view>;
  if (key.empty()) return failure<out_t>(make_error_code(ring_errc::empty_key));
  if (points_.empty()) return failure<out_t>(make_error_code(ring_errc::empty_ring));
  if (r == 0) return failure<out_t>(make_error_code(ring_errc::bad_replicas));
  r = std::min(r, members_.size());
  out_t out;
  std::vector<bool> taken(members_.size(), false);
  for (std::size_t i = point_index(hash_key(key)), seen = 0;
       out.size() < r && seen < points_.size(); i = (i + 1) % points_.size(), ++seen) {
    const std::uint32_t m = owner_of_point_[i];
    if (!taken[m]) {
      taken[m] = true;
      out.push_back(members_[m].name);
    }
  }
  return out;
}

// --- bounded loads ---

bounded_load::bounded_load(const ring& r, double c)
    : ring_(r), c_(c), epoch_(r.epoch()), names_(r.members()), load_(r.size(), 0) {
  if (!(c > 1.0) || !std::isfinite(c))
    throw std::invalid_argument("troupe: bounded_load needs c > 1");
}

std::size_t bounded_load::cap_for(std::size_t items) const noexcept {
  if (load_.empty()) return 0;
  return static_cast<std::size_t>(
      std::ceil(c_ * static_cast<double>(items) / static_cast<double>(load_.size())));
}

std::size_t bounded_load::capacity() const noexcept { return cap_for(items_); }

std::uint32_t bounded_load::walk(std::string_view key, std::size_t cap) const {
  const std::size_t n = ring_.point_count();
  for (std::size_t i = ring_.point_index(ring_.hash_key(key)), seen = 0; seen < n;
       i = (i + 1) % n, ++seen) {
    const std::uint32_t m = ring_.member_at_point(i);
    if (load_[m] < cap) return m;
  }
  // c > 1 makes members × cap > items: some member is below the cap.
  TROUPE_ASSERT(false,
                "bounded_load: every member at its cap, which the cap's definition rules out");
  return 0;
}

void bounded_load::add(std::vector<held>& hs, std::uint32_t member, std::size_t count) {
  for (held& h : hs)
    if (h.member == member) {
      h.count += count;
      return;
    }
  hs.push_back({member, count});
}

void bounded_load::follow_if_changed() {
  if (ring_.epoch() != epoch_) (void)follow();
}

result<std::string_view> bounded_load::assign(std::string_view key) {
  if (key.empty()) return failure<std::string_view>(make_error_code(ring_errc::empty_key));
  follow_if_changed();
  if (ring_.point_count() == 0)
    return failure<std::string_view>(make_error_code(ring_errc::empty_ring));
  // The cap counts the item being placed, so some member is always below it.
  const std::uint32_t m = walk(key, cap_for(items_ + 1));
  auto it = by_key_.find(key);
  if (it == by_key_.end()) it = by_key_.emplace(std::string(key), std::vector<held>{}).first;
  add(it->second, m, 1);
  ++load_[m];
  ++items_;
  return std::string_view(ring_.member_name(m));
}

boost::system::error_code bounded_load::release(std::string_view key, std::string_view member) {
  follow_if_changed();
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return ring_errc::not_assigned;
  std::vector<held>& hs = it->second;
  for (std::size_t i = 0; i < hs.size(); ++i) {
    if (names_[hs[i].member] != member) continue;
    --load_[hs[i].member];
    --items_;
    if (--hs[i].count == 0) {
      hs.erase(hs.begin() + static_cast<std::ptrdiff_t>(i));
      if (hs.empty()) by_key_.erase(it);
    }
    return {};
  }
  return ring_errc::not_assigned;
}

std::vector<bounded_move> bounded_load::follow() {
  std::vector<bounded_move> moves;
  if (ring_.epoch() == epoch_) return moves;
  // The ring's members now, by index (sorted by name, as the ring keeps them).
  std::vector<std::string> names(ring_.size());
  for (std::uint32_t m = 0; m < names.size(); ++m) names[m] = ring_.member_name(m);
  auto index_in = [](const std::vector<std::string>& v, std::string_view name) {
    auto it = std::lower_bound(v.begin(), v.end(), name);
    return it != v.end() && *it == name ? static_cast<std::size_t>(it - v.begin()) : v.size();
  };
  std::vector<bool> joined(names.size());
  bool any_joined = false;
  for (std::uint32_t m = 0; m < names.size(); ++m)
    any_joined |= joined[m] = index_in(names_, names[m]) == names_.size();
  std::vector<std::uint32_t> renumber(names_.size());  // names.size(): the member left
  for (std::uint32_t o = 0; o < names_.size(); ++o)
    renumber[o] = static_cast<std::uint32_t>(index_in(names, names_[o]));

  // Items stay where their member stayed; those of members that left wait.
  struct waiting_items {
    key_map::value_type* entry;
    std::string from;
    std::size_t count;
  };
  std::vector<waiting_items> waiting;
  std::vector<std::size_t> load(names.size(), 0);
  for (auto& entry : by_key_) {
    std::vector<held> kept;
    for (const held& h : entry.second) {
      const std::uint32_t n = renumber[h.member];
      if (n == names.size()) {
        waiting.push_back({&entry, names_[h.member], h.count});
      } else {
        kept.push_back({n, h.count});
        load[n] += h.count;
      }
    }
    entry.second = std::move(kept);
  }
  names_ = std::move(names);
  load_ = std::move(load);
  epoch_ = ring_.epoch();

  auto record = [&](const std::string& key, std::string from, std::string to, std::size_t count) {
    moved_ += count;
    if (!moves.empty() && moves.back().key == key && moves.back().from == from &&
        moves.back().to == to) {
      moves.back().count += count;
      return;
    }
    moves.push_back({key, std::move(from), std::move(to), count});
  };
  auto drop_empty = [](std::vector<held>& hs) {
    std::erase_if(hs, [](const held& h) { return h.count == 0; });
  };

  if (names_.empty()) {  // no member left: every item is released
    for (waiting_items& w : waiting) record(w.entry->first, std::move(w.from), {}, w.count);
    by_key_.clear();
    items_ = 0;
    return moves;
  }
  const std::size_t cap = cap_for(items_);

  // 1. A key that now belongs to a member that joined moves to it, while it
  //    has room: the keys plain consistent hashing would move.
  if (any_joined) {
    for (auto& [key, hs] : by_key_) {
      const std::uint32_t o = ring_.owner_index(key);
      if (!joined[o]) continue;
      std::size_t taken = 0;
      for (held& h : hs) {
        const std::size_t room = cap - load_[o];
        if (room == 0) break;
        const std::size_t k = std::min(h.count, room);
        h.count -= k;
        load_[h.member] -= k;
        load_[o] += k;
        taken += k;
        record(key, names_[h.member], names_[o], k);
      }
      if (taken == 0) continue;
      drop_empty(hs);
      add(hs, o, taken);
    }
  }
  // 2. A member over the new cap (lower when members joined) sheds items:
  //    first those of keys it does not own, then its own.
  for (const bool own : {false, true}) {
    for (auto& entry : by_key_) {
      std::vector<held>& hs = entry.second;
      bool shed = false;
      for (held& h : hs) {
        if (load_[h.member] <= cap || (ring_.owner_index(entry.first) == h.member) != own) continue;
        const std::size_t k = std::min(h.count, load_[h.member] - cap);
        h.count -= k;
        load_[h.member] -= k;
        waiting.push_back({&entry, names_[h.member], k});
        shed = true;
      }
      if (shed) drop_empty(hs);
    }
  }
  // 3. Waiting items go to the first member clockwise from their key with
  //    room (the key's owner, when it has room). They are not in load_ yet,
  //    so some member is below the cap.
  for (waiting_items& w : waiting) {
    while (w.count > 0) {
      const std::uint32_t m = walk(w.entry->first, cap);
      const std::size_t k = std::min(w.count, cap - load_[m]);
      load_[m] += k;
      add(w.entry->second, m, k);
      w.count -= k;
      record(w.entry->first, w.from, names_[m], k);
    }
  }
  std::erase_if(by_key_, [](const auto& e) { return e.second.empty(); });
  return moves;
}

std::size_t bounded_load::load(std::string_view member) const noexcept {
  for (std::uint32_t m = 0; m < load_.size(); ++m)
    if (names_[m] == member) return load_[m];
  return 0;
}

}  // namespace troupe::actors
