// STARTTLS on the daemon side (action::StartTls): the session's stream is wrapped in a
// TlsStream, the server handshake runs on the session's strand, and its outcome is fed to
// the core as input::TlsDone. Everything after that travels through the TlsStream.
#include <string>

#include "net/connection_session.hpp"
#include "net/log.hpp"
#include "net/tls_stream.hpp"
#include "plugins/nbdkit/connection_events.hpp"

namespace nbdd::net {

void ConnectionSession::do_start_tls(std::span<const std::byte> early) {
  const std::string label = "conn=" + std::to_string(id_);
  if (context_.tls == nullptr) {  // the core was configured for TLS but the server has no credentials
    log::error(label + " tls: STARTTLS accepted without TLS credentials (Server::set_tls was not called)");
    feed(core::input::TlsDone{false});
    return;
  }
  std::string error;
  auto tls = TlsStream::create(strand_, std::move(stream_), *context_.tls, label, error);
  if (!tls) {  // stream_ is still the plaintext stream; the core closes it
    log::debug(label + " tls: " + error);
    feed(core::input::TlsDone{false});
    return;
  }
  TlsStream* stream = tls.get();
  stream_ = std::move(tls);
  // early (the bytes after STARTTLS the core had read) is copied by the stream now. The
  // handler runs on the strand; if close() cut the handshake it says !ok, and the core
  // ignores a TlsDone after a close.
  stream->async_handshake(early, [self = shared_from_this(), stream, label](bool ok, const std::string& detail) {
    if (self->finished_ || self->stream_closed_) return;
    if (ok) {
      plugin::nbdkit_abi::connection_tls_started(self->id_);  // nbdkit_is_tls() is 1 from now on
      if (log::verbose())
        log::debug(label + " tls: handshake done: " + stream->describe() +
                   (stream->ktls() ? ", kernel TLS" : ", TLS in GnuTLS (no kernel TLS)"));
    } else {
      log::debug(label + " tls: handshake failed: " + detail);
    }
    self->feed(core::input::TlsDone{ok});
  });
}

}  // namespace nbdd::net
