#include "net/tls_context.hpp"

#include <gnutls/gnutls.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>

#include "net/log.hpp"
#include "net/options.hpp"

namespace nbdd::net {

namespace {

// nbdkit's configure default (--with-tls-priority=NORMAL).
constexpr const char* priority_x509 = "NORMAL";
constexpr const char* priority_psk = "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK";

std::string gnutls_message(const std::string& what, int err) { return what + ": " + gnutls_strerror(err); }

bool readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

std::string absolute(const std::string& path) {
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return path;
  std::string out(resolved);
  std::free(resolved);
  return out;
}

void global_init() {
  // GnuTLS initialises itself when loaded; the explicit call (reference counted) makes a
  // failure visible here instead of at the first handshake.
  static std::once_flag once;
  std::call_once(once, [] {
    if (const int err = gnutls_global_init(); err < 0) log::error(gnutls_message("gnutls_global_init", err));
  });
}

// nbdkit's default without --tls is "on if credentials load": a PSK file, or certificates
// in --tls-certificates or the default directories; otherwise off, silently.
Options::Tls requested_tls(const Options& options) { return options.tls_given ? options.tls : Options::Tls::on; }

}  // namespace

struct TlsContext::Impl {
  Kind kind = Kind::x509;
  std::string source;
  bool verify_peer = false;
  gnutls_certificate_credentials_t x509 = nullptr;
  gnutls_psk_server_credentials_t psk = nullptr;
  gnutls_priority_t priority = nullptr;

  ~Impl() {
    if (priority) gnutls_priority_deinit(priority);
    if (x509) gnutls_certificate_free_credentials(x509);
    if (psk) gnutls_psk_free_server_credentials(psk);
  }
};

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;
TlsContext::Kind TlsContext::kind() const { return impl_->kind; }
const std::string& TlsContext::source() const { return impl_->source; }

gnutls_session_int* TlsContext::new_session(std::string& error) const {
  gnutls_session_t session = nullptr;
  int err = gnutls_init(&session, GNUTLS_SERVER | GNUTLS_NONBLOCK);
  if (err < 0) {
    error = gnutls_message("gnutls_init", err);
    return nullptr;
  }
  if (impl_->kind == Kind::x509) {
    err = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, impl_->x509);
    if (err >= 0 && impl_->verify_peer) {
      // nbdkit-tls(1): with --tls-verify-peer a client without a valid certificate signed
      // by the CA (and not revoked in ca-crl.pem) is denied.
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
      gnutls_session_set_verify_cert(session, nullptr, 0);
    }
  } else {
    err = gnutls_credentials_set(session, GNUTLS_CRD_PSK, impl_->psk);
  }
  if (err >= 0) err = gnutls_priority_set(session, impl_->priority);
  if (err < 0) {
    error = gnutls_message("gnutls session setup", err);
    gnutls_deinit(session);
    return nullptr;
  }
  // The core's handshake timeout bounds the whole handshake; GnuTLS keeps no clock of its own.
  gnutls_handshake_set_timeout(session, 0);
  return session;
}

std::vector<std::string> default_certificate_dirs() {
  if (::geteuid() == 0) return {"/etc/pki/nbdkit"};
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return {};
  return {std::string(home) + "/.pki/nbdkit", std::string(home) + "/.config/pki/nbdkit"};
}

namespace {

// nbdkit's test for a certificate directory: the three required files are readable.
bool is_certificate_dir(const std::string& dir) {
  return readable(dir + "/ca-cert.pem") && readable(dir + "/server-cert.pem") &&
         readable(dir + "/server-key.pem");
}

// Past is_certificate_dir(), every problem is fatal (as nbdkit).
bool load_x509(TlsContext::Impl& impl, const std::string& dir, std::string& error) {
  int err = gnutls_certificate_allocate_credentials(&impl.x509);
  if (err < 0) {
    error = gnutls_message("allocating X.509 credentials", err);
    return false;
  }
  const std::string ca = dir + "/ca-cert.pem";
  err = gnutls_certificate_set_x509_trust_file(impl.x509, ca.c_str(), GNUTLS_X509_FMT_PEM);
  if (err < 0) {
    error = gnutls_message("loading " + ca, err);
    return false;
  }
  const std::string crl = dir + "/ca-crl.pem";
  if (readable(crl)) {
    err = gnutls_certificate_set_x509_crl_file(impl.x509, crl.c_str(), GNUTLS_X509_FMT_PEM);
    if (err < 0) {
      error = gnutls_message("loading " + crl, err);
      return false;
    }
  }
  const std::string cert = dir + "/server-cert.pem";
  const std::string key = dir + "/server-key.pem";
  err = gnutls_certificate_set_x509_key_file(impl.x509, cert.c_str(), key.c_str(), GNUTLS_X509_FMT_PEM);
  if (err < 0) {
    error = gnutls_message("loading server certificate and key (" + cert + ", " + key + ")", err);
    return false;
  }
  gnutls_certificate_set_known_dh_params(impl.x509, GNUTLS_SEC_PARAM_MEDIUM);
  impl.kind = TlsContext::Kind::x509;
  impl.source = dir;
  return true;
}

bool load_psk(TlsContext::Impl& impl, const std::string& file, std::string& error) {
  // GnuTLS reads the file at every handshake, after nbdd may have changed to / (daemonize):
  // keep an absolute path, and fail now if it cannot be read.
  if (!readable(file)) {
    error = "--tls-psk: cannot read " + file;
    return false;
  }
  int err = gnutls_psk_allocate_server_credentials(&impl.psk);
  if (err < 0) {
    error = gnutls_message("allocating PSK credentials", err);
    return false;
  }
  impl.source = absolute(file);
  err = gnutls_psk_set_server_credentials_file(impl.psk, impl.source.c_str());
  if (err < 0) {
    error = gnutls_message("--tls-psk " + impl.source, err);
    return false;
  }
  gnutls_psk_set_server_known_dh_params(impl.psk, GNUTLS_SEC_PARAM_MEDIUM);
  impl.kind = TlsContext::Kind::psk;
  return true;
}

}  // namespace

std::unique_ptr<TlsContext> make_tls_context(const Options& options, std::string& error) {
  error.clear();
  const Options::Tls requested = requested_tls(options);
  if (requested == Options::Tls::off) return nullptr;
  global_init();
  auto impl = std::make_unique<TlsContext::Impl>();
  impl->verify_peer = options.tls_verify_peer;
  if (options.tls_psk) {
    if (!load_psk(*impl, *options.tls_psk, error)) return nullptr;
  } else {
    std::vector<std::string> dirs;
    if (options.tls_certificates) dirs.push_back(absolute(*options.tls_certificates));
    else dirs = default_certificate_dirs();
    bool found = false;
    for (const auto& dir : dirs) {
      if (!is_certificate_dir(dir)) continue;
      if (!load_x509(*impl, dir, error)) return nullptr;
      found = true;
      break;
    }
    if (!found) {
      if (requested == Options::Tls::require) {
        error =
            "--tls=require but could not load TLS certificates (ca-cert.pem, server-cert.pem and "
            "server-key.pem). Try --tls-certificates=/path/to/certificates, or see docs/tls.md";
        return nullptr;
      }
      if (options.tls_given)
        log::error("warning: --tls=on but could not load TLS certificates; TLS is disabled and "
                   "STARTTLS will be refused. Try --tls-certificates=/path/to/certificates");
      else
        log::debug("TLS disabled: no certificates found");
      return nullptr;
    }
  }
  const char* priority = impl->kind == TlsContext::Kind::psk ? priority_psk : priority_x509;
  const char* where = nullptr;
  if (const int err = gnutls_priority_init(&impl->priority, priority, &where); err < 0) {
    error = gnutls_message(std::string("TLS priority ") + priority, err);
    return nullptr;
  }
  log::debug(std::string("TLS enabled using ") +
             (impl->kind == TlsContext::Kind::psk ? "Pre-Shared Keys (PSK) from " : "X.509 certificates from ") +
             impl->source + (impl->verify_peer && impl->kind == TlsContext::Kind::x509 ? ", verifying clients" : ""));
  return std::make_unique<TlsContext>(std::move(impl));
}

core::TlsMode effective_tls_mode(const Options& options, const TlsContext* context) {
  if (context == nullptr) return core::TlsMode::off;
  return requested_tls(options) == Options::Tls::require ? core::TlsMode::require : core::TlsMode::on;
}

}  // namespace nbdd::net
