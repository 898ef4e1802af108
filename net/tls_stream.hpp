// A Stream carrying TLS over another Stream (a socket or -s's pipes): the server side of
// a GnuTLS session whose transport is the inner stream's async operations, so the session
// never blocks its I/O thread. Ciphertext goes through two buffers: what the inner stream
// read and GnuTLS has not yet taken, and what GnuTLS produced and the inner stream has not
// yet written (bounded: GnuTLS is told to wait when it is full).
//
// Like every Stream: used from its strand only, and every completion handler runs there,
// never inside the call that started the operation. async_read_some decrypts straight into
// the caller's buffer; async_write gathers small buffers into one TLS record (as nbdkit
// corks sends below 64 KiB) and encrypts large ones in place, so a write completes once
// GnuTLS holds its ciphertext (the caller's buffers are free again) and the inner stream
// sends it in the background.
//
// Kernel TLS: GnuTLS hands records to the kernel only when it owns the socket descriptor;
// over the inner Stream it never does (ktls() reports what GnuTLS says). docs/tls.md.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "net/stream.hpp"

namespace nbdd::net {

class TlsContext;

// ok: TLS is up. Otherwise detail says why (GnuTLS's message and where it stopped).
using TlsHandshakeHandler = std::function<void(bool ok, const std::string& detail)>;

class TlsStream final : public Stream {
 public:
  // Takes the inner stream (the caller's plaintext stream before STARTTLS). label prefixes
  // this stream's -v log lines ("conn=N"). nullptr and error if GnuTLS could not make a
  // session; inner is then left untouched, still the caller's.
  static std::unique_ptr<TlsStream> create(const Strand& strand, std::unique_ptr<Stream>&& inner,
                                           const TlsContext& context, std::string label, std::string& error);
  ~TlsStream() override;

  // Runs the server handshake. `early`: bytes already read from the inner stream that
  // belong to TLS (copied now). The handler runs once: with ok, or with !ok on failure or
  // when close() cut the handshake. Reads and writes only after ok.
  void async_handshake(std::span<const std::byte> early, TlsHandshakeHandler handler);
  // After the handshake: the negotiated protocol, key exchange and cipher, and whether
  // kernel TLS carries the records.
  std::string describe() const;
  bool ktls() const;

  void async_read_some(std::span<std::byte> into, IoHandler handler) override;
  void async_write(const std::vector<boost::asio::const_buffer>& buffers, IoHandler handler) override;
  // Sends close_notify (best effort, bounded by a short timer), then shuts the inner
  // stream down and closes it.
  void shutdown_and_close() override;
  // Cancels everything pending (handlers run with operation_aborted; a handshake in
  // progress reports !ok) and closes the inner stream at once.
  void close() override;

  struct Engine;  // shared with the handlers in flight, which outlive the stream object

 private:
  explicit TlsStream(std::shared_ptr<Engine> engine);
  std::shared_ptr<Engine> engine_;
};

}  // namespace nbdd::net
