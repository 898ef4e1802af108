#include "sim/marks.hpp"

#include <array>

namespace nbdd::sim {

std::span<const char* const> required_marks() {
  static constexpr std::array<const char*, 76> marks{
      "shutdown_in_handshake", "shutdown_in_transmission", "option_after_shutdown", "handshake_err_shutdown",
      "graceful_with_running_call", "graceful_with_queued_request", "graceful_mid_write_payload",
      "request_after_graceful", "write_after_graceful", "eshutdown_reply", "inflight_completed_while_draining",
      "disc_while_draining", "disconnect_graceful", "disconnect_forced", "force_with_running_call",
      "force_with_queued_request", "disconnect_outside_transmission", "close_abort", "close_flush",
      "plugin_done_after_abort", "close_call_after_force", "open_failed", "plugin_errno", "second_shutdown_forces",
      "refused_during_shutdown", "read_overlaps_write", "go_simple", "go_structured", "go_extended", "export_name",
      "client_reset", "client_half_close", "client_vanished_mid_request", "gate_handover", "parallel_calls",
      "unload",
      // issue 21: the plugin's lifecycle in the handshake
      "preconnect_refused", "shutdown_before_preconnect", "shutdown_during_preconnect", "shutdown_during_list",
      "shutdown_during_open", "shutdown_with_open_queued", "err_shutdown_after_running_open",
      "err_shutdown_for_queued_open", "list_answered_from_plugin", "list_err_platform",
      "list_invalid_name_from_plugin", "open_for_info", "go_after_info", "size_differs_between_opens",
      "close_in_handshake", "close_in_handshake_after_shutdown", "go_refused_block_size",
      "disconnect_during_lifecycle_call", "lifecycle_call_shutdown", "client_asked_unknown_name",
      "shutdown_during_close",
      // issue 22: boundaries, validity, oversized options
      "request_at_export_end_served", "zero_length_served", "zero_length_at_export_end_served",
      "largest_request_served", "invalid_request_refused", "write_over_limit_discarded",
      "option_over_limit_too_big", "option_over_limit_err_shutdown",
      // issues 24 and 27: STARTTLS and the TLS modes, the server's forced shutdown
      "err_tls_reqd", "option_over_limit_err_tls_reqd", "starttls_refused", "tls_up", "tls_up_while_draining",
      "tls_failed", "tls_stalled", "shutdown_forced_in_handshake", "shutdown_forced_in_transmission",
      "shutdown_forced_with_running_call", "grace_ran_out_forces"};
  return marks;
}

}  // namespace nbdd::sim
