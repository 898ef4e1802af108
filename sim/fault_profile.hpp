// sim::FaultProfile: every knob of one world, drawn from the seed (VOPR's swarm testing:
// each run enables a different mix of faults, so rare combinations get a chance).
// print() lists them all; the seed alone reproduces them.
#pragma once
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "core/connection.hpp"
#include "core/thread_model.hpp"
#include "sim/prng.hpp"

namespace nbdd::sim {

struct FaultProfile {
  std::uint64_t seed = 0;
  // world shape
  std::uint32_t clients = 2;               // connections made over the run
  std::uint32_t late_clients = 0;          // connections arriving after the shutdown request
  std::uint32_t requests_max = 40;         // per client
  std::uint32_t pipeline_max = 4;          // outstanding requests per client
  std::uint64_t export_bytes = 64 * 1024;  // each export's largest size (disk i: + i*512)
  std::uint32_t exports = 1;               // the plugin serves disk0..disk<N-1>; "" is disk0
  core::ThreadModel thread_model = core::ThreadModel::parallel;
  bool read_only = false;                  // the server's -r (ConnectionConfig::read_only)
  bool plugin_read_only = false;           // the plugin's can_write is false
  // Each open reports the disk's size minus 0..size_shrink_max sectors of 512 (0: fixed).
  std::uint32_t size_shrink_max = 0;
  bool caps_vary = false;                  // each open redraws flush/trim/zero/fua/cache/...
  std::uint32_t block_min = 0;             // the plugin's minimum block size (0: none; GO may be refused)
  bool list_invalid_name = false;          // list_exports also returns a name core must skip
  bool can_flush = true, can_trim = true, can_zero = true, can_fast_zero = false, can_fua = true,
       can_cache = true, can_extents = true, can_multi_conn = false;
  bool memory_plugin = false;              // run over the built-in memory plugin
  // network
  std::uint64_t net_delay_min_ns = 1'000, net_delay_max_ns = 200'000;
  // Below 512 (1, 3, 7 or 29): one write in four has 16 bytes cut into pieces of at most this
  // (Pipe::write); larger values only mean "no tiny segments" (pieces a stack sends back to
  // back arrive together, so they are not cut at this size).
  std::uint32_t segment_bytes_max = 65536;
  std::uint32_t read_bytes_max = 65536;     // the driver reads at most this per BytesReceived
  // Half the worlds cut writes at random points (Pipe::cut: half the writes, at one to three
  // points) and make half the server's reads take a random part of what is there; the other
  // half send each write as one segment and read all there is (up to read_bytes_max). Both
  // exercise framing across reads; the whole-message worlds cost about a third fewer events.
  bool cut_writes = true;
  bool partial_reads = true;
  // plugin
  std::uint64_t latency_min_ns = 1'000, latency_max_ns = 500'000;
  Ratio plugin_stall{0, 1};                 // a call takes up to 3 s
  Ratio plugin_error{0, 1};
  Ratio open_error{0, 1};                   // per open (INFO/GO/EXPORT_NAME)
  Ratio preconnect_error{0, 1};             // per connection: preconnect refuses
  Ratio list_error{0, 1};                   // per list_exports
  // disconnect(false/true) from a callback: data calls, and every lifecycle call (where
  // core must ignore it: only connected callbacks of the GO'd handle count)
  Ratio plugin_disconnect_graceful{0, 1};
  Ratio plugin_disconnect_force{0, 1};
  Ratio plugin_shutdown{0, 1};              // per call (lifecycle calls included): shutdown()
  // clients
  Ratio client_vanish{0, 1};                // per request: reset or half-close now
  Ratio client_mid_request_vanish{0, 1};
  Ratio client_lazy{0, 1};                  // per client: never sends DISC or ABORT by itself
  Ratio client_early_disc{0, 1};            // per request: DISC without waiting for replies
  Ratio client_bad_request{0, 1};           // per request: invalid flags or range
  Ratio client_odd_name{0, 1};              // per INFO/GO/EXPORT_NAME: a name the plugin refuses
  // per request: a boundary case — ending exactly at the export's end, zero length (also at
  // the end), the largest allowed length, one byte over it (a compact WRITE's payload is
  // then read and discarded)
  Ratio client_boundary{0, 1};
  // per handshake: an option of exactly the option limit, or longer (read and discarded)
  Ratio client_big_option{0, 1};
  // TLS (issue 24): the server's --tls mode; the simulated TLS layer's handshake fails or
  // stalls (then the handshake timeout ends it); clients that never send STARTTLS, and
  // clients whose TLS hello is wrong (a bad certificate, a wrong key)
  core::TlsMode tls = core::TlsMode::off;
  Ratio tls_fail{0, 1};
  Ratio tls_stall{0, 1};
  Ratio client_no_starttls{0, 1};
  Ratio client_bad_tls{0, 1};
  std::uint64_t think_max_ns = 300'000;
  std::uint64_t connect_spread_ns = 20'000'000;
  // core limits (swarm: small values reach back-pressure and timeout paths)
  std::uint32_t in_flight_max = 64;
  std::uint64_t grace_period_ns = 1'000'000'000;
  std::uint64_t handshake_timeout_ns = 10'000'000'000;
  std::uint32_t staged_bytes_max = 256 * 1024;
  std::uint32_t request_bytes_max = 32u << 20;     // small: the largest lengths are cheap
  std::uint32_t option_data_bytes_max = 64 * 1024;  // small: oversized options are cheap
  // server
  std::optional<std::uint64_t> shutdown_at_ns;       // signal-driven graceful shutdown
  std::optional<std::uint64_t> second_signal_at_ns;  // forces every connection
  std::uint64_t faults_end_ns = 200'000'000;         // then faults stop and shutdown is requested
  std::uint64_t liveness_bound_ns = 30'000'000'000;  // after faults_end, everything must have ended

  static FaultProfile from_seed(std::uint64_t seed);
  // The same, every draw recorded on `recorder` (auto-shrink: see ChoiceTape::start_recording).
  static FaultProfile from_seed(std::uint64_t seed, ChoiceTape* recorder);
  // Every knob drawn from `p` (a seeded Prng or one on a ChoiceTape); seed stays 0.
  static FaultProfile from_prng(Prng& p);
  void print(std::FILE* out) const;
};

std::string to_string(Ratio r);

}  // namespace nbdd::sim
