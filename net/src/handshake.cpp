// SPDX-License-Identifier: BSL-1.0
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>
#include <troupe/net/handshake.hpp>
#include <troupe/net/wire.hpp>

namespace troupe::net {

namespace {
class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "troupe.handshake"; }
  std::string message(int ev) const override {
    switch (static_cast<handshake_errc>(ev)) {
      case handshake_errc::bad_magic:
        return "not a troupe node (bad magic)";
      case handshake_errc::version_mismatch:
        return "protocol version mismatch";
      case handshake_errc::cluster_mismatch:
        return "cluster name mismatch";
      case handshake_errc::bad_proof:
        return "cluster secret mismatch (bad proof)";
      case handshake_errc::duplicate_name:
        return "another process with this node name is already linked";
      case handshake_errc::not_loopback:
        return "no cluster secret configured: only loopback peers may link";
      case handshake_errc::self_link:
        return "this is the node itself (its own address is among its seeds)";
      case handshake_errc::duplicate_link:
        return "these nodes are linked by another connection";
      case handshake_errc::leaving:
        return "the node is shutting down";
    }
    return "unknown handshake error";
  }
};

std::string joined(std::string_view tag, std::initializer_list<std::string_view> parts) {
  // Length-prefix every part so no two different tuples share an encoding.
  std::string s(tag);
  for (std::string_view p : parts) {
    const auto n = static_cast<std::uint32_t>(p.size());
    s.push_back(static_cast<char>(n & 0xff));
    s.push_back(static_cast<char>((n >> 8) & 0xff));
    s.push_back(static_cast<char>((n >> 16) & 0xff));
    s.push_back(static_cast<char>((n >> 24) & 0xff));
    s.append(p);
  }
  return s;
}
}  // namespace

const boost::system::error_category& handshake_category() noexcept {
  static const category c;
  return c;
}

std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len) ||
      len != out.size())
    throw std::runtime_error("troupe: HMAC-SHA256 failed");
  return out;
}

std::string make_nonce() {
  std::string n(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size())) != 1)
    throw std::runtime_error("troupe: no randomness for a handshake nonce");
  return n;
}

std::string proof_mac(std::string_view secret, std::string_view cluster, std::string_view dialer,
                      std::string_view acceptor, std::string_view acceptor_nonce) {
  auto m = hmac_sha256(secret, joined("troupe-proof", {cluster, dialer, acceptor, acceptor_nonce}));
  return std::string(reinterpret_cast<const char*>(m.data()), m.size());
}

std::string welcome_mac(std::string_view secret, std::string_view cluster,
                        std::string_view acceptor, std::string_view dialer,
                        std::string_view dialer_nonce) {
  auto m = hmac_sha256(secret, joined("troupe-welcome", {cluster, acceptor, dialer, dialer_nonce}));
  return std::string(reinterpret_cast<const char*>(m.data()), m.size());
}

bool mac_equal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

result<hello_msg> decode_hello(std::string_view payload) {
  result<hello_msg> h = decode<hello_msg>(payload);
  if (h) return h;
  // Another version's hello: its magic and version are where they always are.
  hello_msg head;
  head.version = 0;
  try {
    bounded_input_archive ar(payload);
    ar(head.magic, head.version);
  } catch (const std::exception&) {
    return h;
  }
  if (head.magic == handshake_magic && head.version == protocol_version) return h;  // malformed
  return head;
}

boost::system::error_code refusal_code(std::string_view reason) noexcept {
  constexpr std::string_view prefix = "handshake refused: ";
  if (reason.starts_with(prefix)) reason.remove_prefix(prefix.size());
  for (int e = static_cast<int>(handshake_errc::bad_magic);
       e <= static_cast<int>(handshake_errc::leaving); ++e) {
    try {
      const std::string m = handshake_category().message(e);
      if (reason.starts_with(m)) return {e, handshake_category()};
    } catch (...) {  // out of memory: no code
      return {};
    }
  }
  return {};
}

boost::system::error_code check_hello(const hello_msg& h, std::string_view cluster) noexcept {
  if (h.magic != handshake_magic) return handshake_errc::bad_magic;
  if (h.version != protocol_version) return handshake_errc::version_mismatch;
  if (h.cluster != cluster) return handshake_errc::cluster_mismatch;
  return {};
}

}  // namespace troupe::net
