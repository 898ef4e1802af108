// fuzz_handshake: client bytes fed to a fresh core::Connection (a plugin with two named
// exports that may also accept other names, fuzz/driver.hpp), in a fragmentation chosen by
// the input; actions drained; the plugin's preconnect, list_exports, open and close
// answered with success or an errno, and open/list_exports with what the plugin describes
// (sizes, names, capabilities), all chosen by the input; then the session is ended and
// must reach Finished (liveness).
//
// TLS: config bits 2-3 choose the server's --tls mode (off, on, require, require); after a
// StartTls the seed decides how the TLS handshake ends (up, failed, or stalled until the
// handshake timeout), with the checker watching (INV-TLS-*).
//
// Input layout (FuzzedDataProvider): from the END, one config byte (bit 0: Limits profile,
// bit 1: server read-only, bits 2-3: TLS mode) and a u32 seed that drives fragmentation, errnos and the
// plugin's answers; all the
// bytes before that are the client's byte stream (so a recorded session is a seed as is,
// followed by 5 trailer bytes; tools/make_seeds.py writes them).
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fuzz/driver.hpp"
#include "fuzz/observer.hpp"

namespace {

using namespace nbdd::fuzz;

// xorshift32: the input's seed decides, no other randomness.
struct Choices {
  std::uint32_t s;
  std::uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};

int pick_errno(std::uint32_t r) {
  // ESHUTDOWN too: core maps it to NBD_ESHUTDOWN, which is not a drain (FINDINGS.md C3).
  static constexpr int table[] = {EIO, ENOSPC, EPERM, EINVAL, ENOTSUP, ENOMEM, EFBIG, EROFS};
  if (r % 4 != 0) return 0;
  return (r >> 2) % 64 == 63 ? ESHUTDOWN : table[(r >> 2) % 8];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  const auto config = fdp.ConsumeIntegral<std::uint8_t>();
  Choices rng{fdp.ConsumeIntegral<std::uint32_t>() | 1u};
  const std::vector<std::uint8_t> raw = fdp.ConsumeRemainingBytes<std::uint8_t>();
  const std::span<const std::byte> client(reinterpret_cast<const std::byte*>(raw.data()), raw.size());

  const bool read_only = (config & 2) != 0;
  const unsigned tls_bits = (config >> 2) & 3;
  const TlsMode tls = tls_bits == 0 ? TlsMode::off : tls_bits == 1 ? TlsMode::on : TlsMode::require;
  const Limits limits = make_limits(config & 1);
  const auto observer = make_observer(limits, ThreadModel::parallel, read_only, tls);
  Driver d(limits, ThreadModel::parallel, read_only, observer.get(), tls);

  std::size_t pos = 0;
  while (!d.finished()) {
    if (d.pending_calls() > 0) {
      const std::uint32_t r = rng.next();
      // A refused preconnect ends the session before the greeting: rarely, so most
      // inputs reach the options.
      const int err = d.pending_kind(0) == CallKind::preconnect ? (r % 32 == 0 ? EACCES : 0) : pick_errno(r);
      const auto seed = static_cast<std::uint8_t>(r >> 24);
      d.complete(0, err, ExtentShape{static_cast<std::uint8_t>(seed % 6), seed});
      continue;
    }
    if (d.send_done()) continue;
    if (d.tls_pending()) {
      const std::uint32_t r = rng.next();
      if (r % 8 == 1) break;  // stalls: finish() lets the handshake timeout or the peer end it
      d.tls_done(r % 8 != 0);
      continue;
    }
    if (pos == client.size()) break;
    const std::uint32_t r = rng.next();
    std::size_t piece = client.size() - pos;  // half the time: as much as the core takes
    if (r % 4 == 1) piece = std::min<std::size_t>(piece, 1 + (r >> 8) % 16);
    if (r % 4 == 2) piece = 1 + (r >> 8) % piece;
    const std::size_t n = d.deliver(client.subspan(pos, piece), (r >> 4) % 3);
    if (n == 0) break;  // the core does not read now: end the session
    pos += n;
  }
  d.finish(10000);
  return 0;
}
