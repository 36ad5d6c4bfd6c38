// SPDX-License-Identifier: BSL-1.0
#pragma once
// A throwaway certificate authority for the TLS tests and benchmarks: an EC
// P-256 CA and the certificates it issues, written as PEM files into a fresh
// temporary directory that is removed with the object. OpenSSL's C API, no
// openssl program needed.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <troupe/net/tls.hpp>
#include <vector>

namespace troupe::test {

class test_ca {
 public:
  /// A new CA named `name`, its certificate in <dir>/<stem>-ca.crt.
  explicit test_ca(const std::string& name = "troupe test CA", const std::string& stem = "ca") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "troupe-tls-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("test_ca: mkdtemp failed");
    dir_ = tmpl;
    key_ = new_key();
    cert_ = X509_new();
    fill(cert_, name, key_);
    X509_set_issuer_name(cert_, X509_get_subject_name(cert_));
    add_ext(cert_, cert_, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert_, cert_, NID_key_usage, "critical,keyCertSign,cRLSign");
    sign(cert_, key_);
    ca_file_ = dir_ + "/" + stem + "-ca.crt";
    write_cert(ca_file_, cert_);
  }
  ~test_ca() {
    X509_free(cert_);
    EVP_PKEY_free(key_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  test_ca(const test_ca&) = delete;
  test_ca& operator=(const test_ca&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& ca_file() const { return ca_file_; }

  /// A certificate for `dns` names (subjectAltName DNS entries; none: only
  /// the subject CN `cn`), signed by this CA, with its key: files
  /// <dir>/<stem>.crt and <dir>/<stem>.key. The options trust `trust`
  /// (default: this CA).
  net::tls_options issue(const std::string& stem, const std::vector<std::string>& dns,
                         const std::string& cn = "troupe test node",
                         const std::string& trust = {}) const {
    EVP_PKEY* key = new_key();
    X509* c = X509_new();
    fill(c, cn, key);
    X509_set_issuer_name(c, X509_get_subject_name(cert_));
    add_ext(c, cert_, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(c, cert_, NID_key_usage, "critical,digitalSignature");
    add_ext(c, cert_, NID_ext_key_usage, "serverAuth,clientAuth");
    if (!dns.empty()) {
      std::string san;
      for (const std::string& d : dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
      add_ext(c, cert_, NID_subject_alt_name, san);
    }
    sign(c, key_);
    net::tls_options o;
    o.cert_file = dir_ + "/" + stem + ".crt";
    o.key_file = dir_ + "/" + stem + ".key";
    o.ca_file = trust.empty() ? ca_file_ : trust;
    write_cert(o.cert_file, c);
    FILE* f = std::fopen(o.key_file.c_str(), "w");
    if (!f || PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
      throw std::runtime_error("test_ca: cannot write " + o.key_file);
    std::fclose(f);
    X509_free(c);
    EVP_PKEY_free(key);
    return o;
  }

 private:
  static EVP_PKEY* new_key() {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    if (!k) throw std::runtime_error("test_ca: EC key generation failed");
    return k;
  }
  static void fill(X509* c, const std::string& cn, EVP_PKEY* key) {
    X509_set_version(c, 2);  // v3
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), 24 * 3600);
    X509_NAME* n = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_pubkey(c, key);
  }
  static void add_ext(X509* c, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, c, nullptr, nullptr, 0);
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!e) throw std::runtime_error("test_ca: bad extension " + value);
    X509_add_ext(c, e, -1);
    X509_EXTENSION_free(e);
  }
  static void sign(X509* c, EVP_PKEY* key) {
    if (X509_sign(c, key, EVP_sha256()) == 0) throw std::runtime_error("test_ca: signing failed");
  }
  static void write_cert(const std::string& path, X509* c) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f || PEM_write_X509(f, c) != 1) throw std::runtime_error("test_ca: cannot write " + path);
    std::fclose(f);
  }

  std::string dir_, ca_file_;
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
};

}  // namespace troupe::test
