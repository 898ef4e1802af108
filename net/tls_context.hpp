// The server's TLS credentials, loaded once at startup with nbdkit's options and meanings
// (nbdkit-tls(1)): X.509 from a directory (ca-cert.pem, server-cert.pem, server-key.pem,
// optional ca-crl.pem), or pre-shared keys from psktool's file (--tls-psk wins over
// certificates). Each STARTTLS makes one GnuTLS server session from it (net/tls_stream.hpp).
// Immutable after creation, so every I/O thread may use it at once.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/connection.hpp"

struct gnutls_session_int;  // gnutls_session_t, kept out of this header

namespace nbdd::net {

struct Options;

class TlsContext {
 public:
  enum class Kind { x509, psk };
  struct Impl;
  explicit TlsContext(std::unique_ptr<Impl> impl);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  Kind kind() const;
  // The directory or PSK file the credentials came from (for logs).
  const std::string& source() const;
  // A nonblocking server session with these credentials and nbdkit's priority string
  // (NORMAL, plus the PSK key exchanges for PSK). nullptr and error on failure. The caller
  // owns it (gnutls_deinit).
  gnutls_session_int* new_session(std::string& error) const;

 private:
  std::unique_ptr<Impl> impl_;
};

// Loads the credentials --tls, --tls-certificates, --tls-psk and --tls-verify-peer ask for.
// Without --tls (Options::tls_given false) TLS is on when credentials load, as nbdkit's.
// nullptr with an empty error: TLS is off, either asked for (--tls=off) or because no
// certificates were found (with an explicit --tls=on a warning is logged, as nbdkit's;
// STARTTLS is then refused). nullptr with an error: the server must not start (--tls=require without
// credentials, unreadable or malformed files).
std::unique_ptr<TlsContext> make_tls_context(const Options& options, std::string& error);

// The mode the connections' cores run in: Options::tls, or off when make_tls_context()
// returned no context.
core::TlsMode effective_tls_mode(const Options& options, const TlsContext* context);

// Where certificates are looked for without --tls-certificates, in order (nbdkit's
// defaults: $HOME/.pki/nbdkit and $HOME/.config/pki/nbdkit, or /etc/pki/nbdkit as root).
std::vector<std::string> default_certificate_dirs();

}  // namespace nbdd::net
