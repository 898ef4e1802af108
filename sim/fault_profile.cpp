#include "sim/fault_profile.hpp"

#include <array>

namespace nbdd::sim {

std::string to_string(Ratio r) { return std::to_string(r.numerator) + "/" + std::to_string(r.denominator); }

namespace {
// Off in about half the runs; otherwise 1 in [lo, hi]. (A tape's 0 means off.)
Ratio maybe(Prng& p, std::uint32_t lo, std::uint32_t hi) {
  if (!p.coin()) return Ratio{0, 1};
  return Ratio{1, static_cast<std::uint32_t>(p.range_inclusive(lo, hi))};
}
}  // namespace

FaultProfile FaultProfile::from_seed(std::uint64_t seed) { return from_seed(seed, nullptr); }

FaultProfile FaultProfile::from_seed(std::uint64_t seed, ChoiceTape* recorder) {
  Prng p(seed ^ 0x5eed'f00d'0000'0001ull, recorder);
  FaultProfile f = from_prng(p);
  f.seed = seed;
  return f;
}

// Where a knob is a rare special case, the draw that picks it is not 0, so that a ChoiceTape's
// zeros (an exhausted or shrunk tape) give a plain world: one client, no faults, no signal.
FaultProfile FaultProfile::from_prng(Prng& p) {
  FaultProfile f;
  f.clients = static_cast<std::uint32_t>(p.range_inclusive(1, 4));
  f.late_clients = static_cast<std::uint32_t>(p.below(3));
  f.requests_max = static_cast<std::uint32_t>(p.range_inclusive(1, 60));
  f.pipeline_max = static_cast<std::uint32_t>(p.range_inclusive(1, 12));
  f.export_bytes = 512u * p.range_inclusive(8, 256);
  if (p.below(8) == 7) f.export_bytes += p.below(512);  // an unaligned tail
  f.exports = static_cast<std::uint32_t>(p.range_inclusive(1, 2));
  static constexpr std::array models{core::ThreadModel::serialize_connections,
                                     core::ThreadModel::serialize_all_requests,
                                     core::ThreadModel::serialize_requests, core::ThreadModel::parallel};
  f.thread_model = models[p.below(models.size())];
  f.read_only = p.below(10) == 9;
  f.plugin_read_only = p.below(10) == 9;
  if (p.below(3) == 2) f.size_shrink_max = static_cast<std::uint32_t>(p.range_inclusive(1, 7));
  f.caps_vary = p.below(4) == 3;
  if (p.below(8) == 7) f.block_min = 512;
  f.list_invalid_name = p.below(4) == 3;
  f.can_flush = p.below(5) != 0;
  f.can_trim = p.below(4) != 0;
  f.can_zero = p.below(4) != 0;
  f.can_fast_zero = f.can_zero && p.coin();
  f.can_fua = p.below(3) != 0;
  f.can_cache = p.coin();
  f.can_extents = p.below(4) != 0;
  f.can_multi_conn = p.coin();
  f.net_delay_max_ns = p.range_inclusive(1'000, 2'000'000);
  f.net_delay_min_ns = p.below(f.net_delay_max_ns);
  // Tiny segments find framing bugs but cost many events: one run in four gets them.
  static constexpr std::array tiny{1u, 3u, 7u, 29u};
  static constexpr std::array large{512u, 1500u, 4096u, 65536u};
  f.segment_bytes_max = p.below(4) == 3 ? tiny[p.below(tiny.size())] : large[p.below(large.size())];
  f.read_bytes_max = p.below(4) == 3 ? tiny[p.below(tiny.size())] : large[p.below(large.size())];
  f.latency_max_ns = p.range_inclusive(1'000, 5'000'000);
  f.latency_min_ns = p.below(f.latency_max_ns);
  f.plugin_stall = maybe(p, 20, 400);
  f.plugin_error = maybe(p, 5, 200);
  f.open_error = maybe(p, 3, 30);
  f.preconnect_error = maybe(p, 3, 40);
  f.list_error = maybe(p, 2, 20);
  f.plugin_disconnect_graceful = maybe(p, 10, 300);
  f.plugin_disconnect_force = maybe(p, 10, 400);
  f.plugin_shutdown = maybe(p, 20, 800);
  f.client_vanish = maybe(p, 20, 500);
  f.client_mid_request_vanish = maybe(p, 30, 600);
  f.client_lazy = maybe(p, 2, 6);
  f.client_early_disc = maybe(p, 20, 300);
  f.client_bad_request = maybe(p, 10, 100);
  f.client_odd_name = maybe(p, 3, 20);
  f.think_max_ns = p.range_inclusive(0, 2'000'000);
  f.connect_spread_ns = p.range_inclusive(0, 50'000'000);
  if (p.below(3) == 2) {
    static constexpr std::array inflight{1u, 2u, 3u, 8u};
    f.in_flight_max = inflight[p.below(inflight.size())];
  }
  if (p.below(3) == 2) f.grace_period_ns = p.range_inclusive(1'000'000, 300'000'000);
  if (p.below(8) == 7) f.handshake_timeout_ns = p.range_inclusive(20'000'000, 500'000'000);
  if (p.below(4) == 3) f.staged_bytes_max = static_cast<std::uint32_t>(p.range_inclusive(64, 8192));
  if (p.below(4) != 0) f.shutdown_at_ns = p.range_inclusive(0, 150'000'000);
  if (f.shutdown_at_ns && p.below(3) == 2) f.second_signal_at_ns = *f.shutdown_at_ns + p.range_inclusive(0, 1'500'000'000);
  f.faults_end_ns = p.range_inclusive(50'000'000, 400'000'000);
  // issue 22 (drawn last, so the knobs above stay what they were for a seed)
  f.client_boundary = maybe(p, 2, 12);
  f.client_big_option = maybe(p, 1, 2);
  if (p.below(3) == 2) f.request_bytes_max = 4096u * static_cast<std::uint32_t>(p.range_inclusive(1, 4));
  // Oversized options only where the limit is small: they stay a few KiB, not 64 KiB+.
  if (f.client_big_option.numerator != 0 || p.below(2) == 1)
    f.option_data_bytes_max = static_cast<std::uint32_t>(p.range_inclusive(256, 2048));
  // issue 24 (drawn last again)
  const std::uint64_t tls = p.below(4);
  f.tls = tls < 2 ? core::TlsMode::off : tls == 2 ? core::TlsMode::on : core::TlsMode::require;
  if (f.tls != core::TlsMode::off) {
    f.tls_fail = maybe(p, 1, 8);
    f.tls_stall = maybe(p, 1, 30);
    f.client_no_starttls = maybe(p, 1, 6);
    f.client_bad_tls = maybe(p, 1, 10);
  }
  // issue 22, speed (drawn last again; a tape's zeros give whole messages)
  f.cut_writes = p.below(2) == 1;
  f.partial_reads = p.below(2) == 1;
  return f;
}

void FaultProfile::print(std::FILE* out) const {
  std::fprintf(out,
               "  clients=%u late_clients=%u requests_max=%u pipeline_max=%u export_bytes=%llu exports=%u\n"
               "  size_shrink_max=%u caps_vary=%d block_min=%u list_invalid_name=%d plugin_read_only=%d\n"
               "  preconnect_error=%s list_error=%s odd_name=%s\n"
               "  thread_model=%s read_only=%d flush=%d trim=%d zero=%d fast_zero=%d fua=%d cache=%d extents=%d "
               "multi_conn=%d plugin=%s\n"
               "  net_delay_ns=[%llu,%llu] segment_bytes_max=%u read_bytes_max=%u\n"
               "  plugin_latency_ns=[%llu,%llu] stall=%s plugin_error=%s open_error=%s disconnect=%s "
               "force_disconnect=%s plugin_shutdown=%s\n"
               "  client_vanish=%s mid_request_vanish=%s lazy=%s early_disc=%s bad_request=%s think_max_ns=%llu "
               "connect_spread_ns=%llu\n"
               "  in_flight_max=%u grace_period_ns=%llu handshake_timeout_ns=%llu staged_bytes_max=%u\n"
               "  boundary=%s big_option=%s request_bytes_max=%u option_data_bytes_max=%u\n"
               "  shutdown_at_ns=%s second_signal_at_ns=%s faults_end_ns=%llu liveness_bound_ns=%llu\n",
               clients, late_clients, requests_max, pipeline_max, static_cast<unsigned long long>(export_bytes),
               exports, size_shrink_max, caps_vary, block_min, list_invalid_name, plugin_read_only,
               to_string(preconnect_error).c_str(), to_string(list_error).c_str(), to_string(client_odd_name).c_str(),
               core::to_string(thread_model), read_only, can_flush, can_trim, can_zero, can_fast_zero,
               can_fua, can_cache, can_extents, can_multi_conn, memory_plugin ? "memory" : "sim",
               static_cast<unsigned long long>(net_delay_min_ns), static_cast<unsigned long long>(net_delay_max_ns),
               segment_bytes_max, read_bytes_max, static_cast<unsigned long long>(latency_min_ns),
               static_cast<unsigned long long>(latency_max_ns), to_string(plugin_stall).c_str(),
               to_string(plugin_error).c_str(), to_string(open_error).c_str(),
               to_string(plugin_disconnect_graceful).c_str(), to_string(plugin_disconnect_force).c_str(),
               to_string(plugin_shutdown).c_str(), to_string(client_vanish).c_str(),
               to_string(client_mid_request_vanish).c_str(), to_string(client_lazy).c_str(),
               to_string(client_early_disc).c_str(), to_string(client_bad_request).c_str(),
               static_cast<unsigned long long>(think_max_ns), static_cast<unsigned long long>(connect_spread_ns),
               in_flight_max, static_cast<unsigned long long>(grace_period_ns),
               static_cast<unsigned long long>(handshake_timeout_ns), staged_bytes_max,
               to_string(client_boundary).c_str(), to_string(client_big_option).c_str(), request_bytes_max,
               option_data_bytes_max, shutdown_at_ns ? std::to_string(*shutdown_at_ns).c_str() : "none",
               second_signal_at_ns ? std::to_string(*second_signal_at_ns).c_str() : "none",
               static_cast<unsigned long long>(faults_end_ns), static_cast<unsigned long long>(liveness_bound_ns));
  std::fprintf(out, "  tls=%s tls_fail=%s tls_stall=%s client_no_starttls=%s client_bad_tls=%s\n", core::to_string(tls),
               to_string(tls_fail).c_str(), to_string(tls_stall).c_str(), to_string(client_no_starttls).c_str(),
               to_string(client_bad_tls).c_str());
  std::fprintf(out, "  cut_writes=%d partial_reads=%d\n", cut_writes, partial_reads);
}

}  // namespace nbdd::sim
