#include "sim/marks.hpp"

#include <array>

namespace nbdd::sim {

std::span<const char* const> required_marks() {
  static constexpr std::array<const char*, 36> marks{
      "shutdown_in_handshake", "shutdown_in_transmission", "option_after_shutdown", "handshake_err_shutdown",
      "graceful_with_running_call", "graceful_with_queued_request", "graceful_mid_write_payload",
      "request_after_graceful", "write_after_graceful", "eshutdown_reply", "inflight_completed_while_draining",
      "disc_while_draining", "disconnect_graceful", "disconnect_forced", "force_with_running_call",
      "force_with_queued_request", "disconnect_outside_transmission", "close_abort", "close_flush",
      "plugin_done_after_abort", "close_call_after_force", "open_failed", "plugin_errno", "second_shutdown_forces",
      "refused_during_shutdown", "read_overlaps_write", "go_simple", "go_structured", "go_extended", "export_name",
      "client_reset", "client_half_close", "client_vanished_mid_request", "gate_handover", "parallel_calls",
      "unload"};
  return marks;
}

}  // namespace nbdd::sim
