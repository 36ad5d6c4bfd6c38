// SPDX-License-Identifier: BSL-1.0
// TLS contexts from the three PEM files, and the node-name check of a peer's certificate.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <troupe/net/tls.hpp>

namespace troupe::net {

namespace asio = boost::asio;

namespace {

[[noreturn]] void bad(const char* flag, const std::string& file, const std::string& why) {
  throw std::invalid_argument(std::string(flag) + " " + file + ": " + why);
}

// A clear line for a missing or unreadable file before OpenSSL's terser one.
void readable(const char* flag, const std::string& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) bad(flag, file, std::string("cannot read: ") + std::strerror(errno));
}

bool equals(const ASN1_STRING* s, std::string_view name) noexcept {
  return s != nullptr && static_cast<std::size_t>(ASN1_STRING_length(s)) == name.size() &&
         std::memcmp(ASN1_STRING_get0_data(s), name.data(), name.size()) == 0;
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_tls_context(const tls_options& o, tls_role role) {
  if (o.cert_file.empty() || o.key_file.empty() || o.ca_file.empty())
    throw std::invalid_argument(
        "TLS needs all three of --tls-cert, --tls-key and --tls-ca (or none of them)");
  readable("--tls-cert", o.cert_file);
  readable("--tls-key", o.key_file);
  readable("--tls-ca", o.ca_file);
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1)
    throw std::invalid_argument("TLS: this OpenSSL cannot require TLS 1.3");
  ctx->set_options(asio::ssl::context::no_compression);
  // AES-128-GCM first: with AES-NI the cheapest per byte of the three TLS
  // 1.3 suites (10 rounds against AES-256's 14), and links move bulk.
  if (SSL_CTX_set_ciphersuites(
          native, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") !=
      1)
    throw std::invalid_argument("TLS: this OpenSSL lacks the TLS 1.3 cipher suites");
  // No session resumption: links and gateway clients are long-lived, and a
  // ticket the peer never uses is bytes on every handshake.
  SSL_CTX_set_num_tickets(native, 0);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(o.cert_file, ec);
  if (ec) bad("--tls-cert", o.cert_file, "not a PEM certificate (" + ec.message() + ")");
  ctx->use_private_key_file(o.key_file, asio::ssl::context::pem, ec);
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
    bad("--tls-key", o.key_file, "does not match the certificate in " + o.cert_file);
  if (ec) bad("--tls-key", o.key_file, "not a PEM private key (" + ec.message() + ")");
  if (SSL_CTX_check_private_key(native) != 1)
    bad("--tls-key", o.key_file, "does not match the certificate in " + o.cert_file);
  ctx->load_verify_file(o.ca_file, ec);
  if (ec) bad("--tls-ca", o.ca_file, "not a PEM CA certificate (" + ec.message() + ")");
  if (role == tls_role::cluster) {
    // Mutual: a peer without a certificate, or with one that does not chain
    // to the CA, fails the TLS handshake.
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none);  // HTTP clients present no certificate
  }
  return ctx;
}

bool certificate_names(const x509_st* cert, std::string_view node) noexcept {
  if (cert == nullptr || node.empty()) return false;
  bool has_dns = false;
  bool found = false;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type != GEN_DNS) continue;
      has_dns = true;
      found = equals(n->d.dNSName, node);
    }
    GENERAL_NAMES_free(names);
  }
  if (has_dns) return found;
  const X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    if (equals(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)), node)) return true;
  }
  return false;
}

}  // namespace troupe::net
