// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// TLS for cluster links and the HTTP gateway (OpenSSL through Asio's ssl::stream).
///
/// One certificate, its key and a CA serve both: on cluster links both ends
/// present their certificate and verify the peer's against the CA (mutual
/// TLS 1.3), and the certificate must name the node its owner claims in the
/// handshake's hello (certificate_names); the gateway serves HTTPS with the
/// same certificate and asks clients for none. The three files are given
/// together or not at all.
///
///   troupe::net::tls_options tls{"node-a.crt", "node-a.key", "ca.crt"};
///   opts.tls = tls;       // node_options: links speak TLS
///   http_opts.tls = tls;  // http_options: the gateway speaks HTTPS

#include <memory>
#include <string>
#include <string_view>

namespace boost::asio::ssl {
class context;
}
struct x509_st;  // OpenSSL's X509

namespace troupe::net {

struct tls_options {
  std::string cert_file;  ///< PEM: this node's certificate (then any intermediates)
  std::string key_file;   ///< PEM: its private key
  std::string ca_file;    ///< PEM: the CA certificate(s) peers' certificates chain to
  /// Any of the three set: TLS is wanted (and make_tls_context insists on all three).
  bool enabled() const noexcept {
    return !cert_file.empty() || !key_file.empty() || !ca_file.empty();
  }
};

/// What a context serves: cluster links verify the peer's certificate
/// (mutual TLS); the gateway presents its certificate and asks for none.
enum class tls_role { cluster, gateway };

/// Builds the TLS 1.3-only context for `role` from the three files, once per
/// node or gateway. A partial set, an unreadable file, a file that is not
/// PEM of the right kind, or a key that does not match the certificate
/// throws std::invalid_argument with one line naming the flag and the file
/// ("--tls-key /etc/troupe/a.key: cannot read: Permission denied").
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_options& o, tls_role role);

/// True if `cert` names `node`: one of its subjectAltName DNS entries equals
/// `node` byte for byte, or, when it has no DNS entry, its subject's common
/// name does. No wildcards, no case folding.
bool certificate_names(const x509_st* cert, std::string_view node) noexcept;

}  // namespace troupe::net
