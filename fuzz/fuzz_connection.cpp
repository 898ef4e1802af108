// fuzz_connection: the whole connection as a script (ngtcp2's read_write_pkt pattern).
//
// The input is read by FuzzedDataProvider: integers from the END are the script (config,
// then one op at a time, each op with a fixed number of argument bytes whatever the
// state, so tools/make_seeds.py can write scripts), and bytes from the FRONT are the
// client's byte stream, pulled by the delivery ops.
//
//   config  c0: thread model (bits 0-1), Limits profile (bit 2), server read-only (-r, bit 3),
//               handshake prefix (bits 4-7 % 5: none, GO, structured+meta+GO,
//               extended+meta+GO, EXPORT_NAME)
//           c1: prefix export (% 3: "", "disk", "small"), bit 2: NO_ZEROES, bit 3: the
//               plugin's preconnect is left to the script (else it succeeds at once)
//   ops     (op byte % 16, then its arguments)
//     0-2   deliver: u16 n; up to n+1 client bytes (0: read_window, 1: foreign buffer,
//           2: read_window() asked for, then a foreign buffer)
//     3     PluginDone: u8 which call, u8 errno choice, u8 shape (extents; for open and
//           list_exports what the plugin answers: size, unknown names, capabilities,
//           listed names — see ExtentShape in driver.hpp)
//     4     PluginDone{0} for every running call, oldest first
//     5     SendDone for the oldest Send          6  SendDone for every Send
//     7     SendFailed                            8  PeerClosed
//     9     ShutdownRequested                     10 DisconnectRequested: u8 force (bit 0)
//     11    time jump: u16 milliseconds (deadlines passed on the way fire on time)
//     12    jump to deadline() and fire it       13 another connection takes/gives the gate
//     14    deliver a pending GateOpened
//     15    pump: deliver pending client bytes, complete calls, ack sends until quiet
// When the script ends, the session is driven to Finished (finish(): complete calls, ack
// sends, PeerClosed, deadlines) and must get there within a bounded number of inputs.
//
// Oracle: the core's NBDD_ASSERTs, the driver's contract checks (driver.hpp), ASan/UBSan,
// and the simulator's invariants (sim::InvariantChecker) after every step.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/wire.hpp"
#include "fuzz/driver.hpp"
#include "fuzz/observer.hpp"

namespace {

using namespace nbdd::fuzz;
using Bytes = std::vector<std::byte>;

void put16(Bytes& b, std::uint16_t v) { b.resize(b.size() + 2); wire::store_u16(b.data() + b.size() - 2, v); }
void put32(Bytes& b, std::uint32_t v) { b.resize(b.size() + 4); wire::store_u32(b.data() + b.size() - 4, v); }
void put64(Bytes& b, std::uint64_t v) { b.resize(b.size() + 8); wire::store_u64(b.data() + b.size() - 8, v); }
void put_str(Bytes& b, std::string_view s) {
  for (char c : s) b.push_back(static_cast<std::byte>(c));
}
void option(Bytes& b, nbd::Opt opt, const Bytes& data = {}) {
  put64(b, nbd::opts_magic);
  put32(b, static_cast<std::uint32_t>(opt));
  put32(b, static_cast<std::uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
}

// A valid-ish start of session, so the script spends its bytes in transmission.
Bytes handshake_prefix(unsigned kind, std::uint8_t c1) {
  static constexpr std::string_view names[] = {"", "disk", "small"};
  const std::string_view name = names[c1 % 3];
  Bytes b;
  if (kind == 0) return b;
  put32(b, nbd::flag_c_fixed_newstyle | ((c1 & 4) ? nbd::flag_c_no_zeroes : 0));
  if (kind == 4) {
    put64(b, nbd::opts_magic);
    put32(b, static_cast<std::uint32_t>(nbd::Opt::export_name));
    put32(b, static_cast<std::uint32_t>(name.size()));
    put_str(b, name);
    return b;
  }
  if (kind == 2 || kind == 3) {
    option(b, kind == 2 ? nbd::Opt::structured_reply : nbd::Opt::extended_headers);
    Bytes meta;
    put32(meta, static_cast<std::uint32_t>(name.size()));
    put_str(meta, name);
    put32(meta, 1);
    put32(meta, sizeof nbd::base_allocation - 1);
    put_str(meta, nbd::base_allocation);
    option(b, nbd::Opt::set_meta_context, meta);
  }
  Bytes go;
  put32(go, static_cast<std::uint32_t>(name.size()));
  put_str(go, name);
  put16(go, 1);
  put16(go, static_cast<std::uint16_t>(nbd::Info::block_size));
  option(b, nbd::Opt::go, go);
  return b;
}

int pick_errno(std::uint8_t r) {
  static constexpr int table[] = {0,      0,       0,     0,      0,         0,      0,         0,
                                  EIO,    ENOSPC,  EPERM, EINVAL, ENOTSUP,   ENOMEM, EFBIG,     EOVERFLOW};
  // ESHUTDOWN too: core maps it to NBD_ESHUTDOWN, which is not a drain (FINDINGS.md C3).
  if (r == 255) return ESHUTDOWN;
  return r < 240 ? table[r % 16] : r - 239;  // also raw small errno values (EDQUOT, 0-less...)
}

class Script {
 public:
  Script(FuzzedDataProvider& fdp, Driver& d, Bytes prefix) : fdp_(fdp), d_(d), pending_(std::move(prefix)) {}

  void run() {
    int ops = 0;
    while (fdp_.remaining_bytes() > 0 && !d_.finished() && ++ops < 4096) step(fdp_.ConsumeIntegral<std::uint8_t>() % 16);
  }

 private:
  // Client bytes: what was pulled but not yet taken by the core first, then the front.
  void deliver(std::size_t n, unsigned mode) {
    if (pending_.size() < n) {
      const auto more = fdp_.ConsumeBytes<std::uint8_t>(n - pending_.size());
      for (auto x : more) pending_.push_back(static_cast<std::byte>(x));
    }
    deliver_pending(std::min(n, pending_.size()), mode);
  }
  bool deliver_pending(std::size_t n, unsigned mode) {
    std::size_t at = 0;
    while (at < n) {
      const std::size_t k = d_.deliver(std::span<const std::byte>(pending_).subspan(at, n - at), mode);
      if (k == 0) break;
      at += k;
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(at));
    return at > 0;
  }

  void step(unsigned op) {
    switch (op) {
      case 0:
      case 1:
      case 2: deliver(std::size_t{fdp_.ConsumeIntegral<std::uint16_t>()} + 1, op); break;
      case 3: {
        const auto which = fdp_.ConsumeIntegral<std::uint8_t>();
        const auto err = pick_errno(fdp_.ConsumeIntegral<std::uint8_t>());
        const auto shape = fdp_.ConsumeIntegral<std::uint8_t>();
        d_.complete(which, err, ExtentShape{static_cast<std::uint8_t>(shape % 6), shape});
        break;
      }
      case 4:
        while (d_.complete(0, 0)) {
        }
        break;
      case 5: d_.send_done(); break;
      case 6:
        while (d_.send_done()) {
        }
        break;
      case 7: d_.send_failed(); break;
      case 8: d_.peer_closed(); break;
      case 9: d_.shutdown(); break;
      case 10: d_.disconnect(fdp_.ConsumeIntegral<std::uint8_t>() & 1); break;
      case 11: d_.advance(Duration::from_ms(fdp_.ConsumeIntegral<std::uint16_t>())); break;
      case 12: d_.fire_deadline(); break;
      case 13: d_.phantom_toggle(); break;
      case 14: d_.gate_opened(); break;
      case 15:
        for (int i = 0; i < 256 && !d_.finished(); ++i) {
          if (d_.gate_opened() || d_.complete(0, 0) || d_.send_done() ||
              deliver_pending(pending_.size(), 0))
            continue;
          break;
        }
        break;
    }
  }

  FuzzedDataProvider& fdp_;
  Driver& d_;
  Bytes pending_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  const auto c0 = fdp.ConsumeIntegral<std::uint8_t>();
  const auto c1 = fdp.ConsumeIntegral<std::uint8_t>();
  const auto model = static_cast<ThreadModel>(c0 & 3);
  const bool read_only = (c0 & 8) != 0;
  const Limits limits = make_limits((c0 >> 2) & 1);
  const auto observer = make_observer(limits, model, read_only);
  Driver d(limits, model, read_only, observer.get());
  if (!(c1 & 8)) d.complete(0, 0);  // preconnect
  Script script(fdp, d, handshake_prefix((c0 >> 4) % 5, c1));
  script.run();
  d.finish(20000);
  return 0;
}
