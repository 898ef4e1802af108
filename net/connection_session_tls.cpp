// PLACEHOLDER (replaced by the TLS work of issue 24): no TLS layer yet, so a STARTTLS that
// the core accepted fails its handshake at once.
#include "net/connection_session.hpp"

namespace nbdd::net {

void ConnectionSession::do_start_tls(std::span<const std::byte> /*early*/) {
  feed(core::input::TlsDone{false});
}

}  // namespace nbdd::net
