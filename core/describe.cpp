// One-line descriptions of inputs and actions, and names of enums. The daemon's -v log
// and the simulator's traces print exactly these, so a trace reads the same in both.
#include <string>

#include "core/action.hpp"
#include "core/connection.hpp"
#include "core/connection_impl.hpp"
#include "core/input.hpp"
#include "core/overloaded.hpp"
#include "core/server_state.hpp"

namespace nbdd::core {

const char* to_string(CallKind kind) {
  switch (kind) {
    case CallKind::preconnect: return "preconnect";
    case CallKind::list_exports: return "list_exports";
    case CallKind::open: return "open";
    case CallKind::close: return "close";
    case CallKind::pread: return "pread";
    case CallKind::pwrite: return "pwrite";
    case CallKind::flush: return "flush";
    case CallKind::trim: return "trim";
    case CallKind::zero: return "zero";
    case CallKind::cache: return "cache";
    case CallKind::extents: return "extents";
  }
  return "?";
}

namespace {

std::string slot_text(SlotId slot) {
  if (slot == lifecycle_slot) return "lifecycle";
  return std::to_string(static_cast<std::uint32_t>(slot));
}

}  // namespace

std::string describe(const Input& in) {
  return std::visit(
      Overloaded{
          [](const input::BytesReceived& b) { return "BytesReceived{bytes=" + std::to_string(b.bytes.size()) + "}"; },
          [](const input::PeerClosed&) { return std::string("PeerClosed"); },
          [](const input::SendDone&) { return std::string("SendDone"); },
          [](const input::SendFailed&) { return std::string("SendFailed"); },
          [](const input::PluginDone& p) {
            return "PluginDone{slot=" + slot_text(p.slot) + " err=" + std::to_string(p.err) + "}";
          },
          [](const input::ShutdownRequested&) { return std::string("ShutdownRequested"); },
          [](const input::ShutdownForced&) { return std::string("ShutdownForced"); },
          [](const input::TlsDone& t) { return std::string("TlsDone{ok=") + (t.ok ? "true" : "false") + "}"; },
          [](const input::DisconnectRequested& d) {
            return std::string("DisconnectRequested{force=") + (d.force ? "true" : "false") + "}";
          },
          [](const input::DeadlineReached&) { return std::string("DeadlineReached"); },
          [](const input::GateOpened&) { return std::string("GateOpened"); },
      },
      in);
}

std::string describe(const Action& act) {
  return std::visit(
      Overloaded{
          [](const action::Send& s) {
            return "Send{header=" + std::to_string(s.header.size()) + " payload=" + std::to_string(s.payload.size()) +
                   "}";
          },
          [](const action::CallPlugin& c) {
            std::string out = "CallPlugin{slot=" + slot_text(c.slot) + " " + to_string(c.call.kind);
            if (c.call.kind == CallKind::open) {
              out += " export=\"" + std::string(c.call.export_name.substr(0, 64)) + "\"";
              out += c.call.readonly ? " readonly" : "";
            } else if (c.call.kind == CallKind::preconnect || c.call.kind == CallKind::list_exports) {
              out += c.call.readonly ? " readonly" : "";
            } else if (c.call.kind != CallKind::close) {
              out += " offset=" + std::to_string(c.call.offset) + " count=" + std::to_string(c.call.count) +
                     " flags=" + std::to_string(c.call.flags);
            }
            return out + "}";
          },
          [](const action::Close& c) { return std::string("Close{") + to_string(c.mode) + "}"; },
          [](const action::StartTls& t) { return "StartTls{early=" + std::to_string(t.early.size()) + "}"; },
          [](const action::Finished&) { return std::string("Finished"); },
      },
      act);
}

std::string describe(const ServerAction& act) {
  return std::visit(Overloaded{
                        [](const server_action::StopAccepting&) { return std::string("StopAccepting"); },
                        [](const server_action::EndConnection& e) {
                          return "EndConnection{conn=" + std::to_string(e.id) +
                                 (e.force ? " force=true}" : " force=false}");
                        },
                        [](const server_action::Unload&) { return std::string("Unload"); },
                        [](const server_action::Exit&) { return std::string("Exit"); },
                    },
                    act);
}

const char* to_string(TlsMode mode) {
  switch (mode) {
    case TlsMode::off: return "off";
    case TlsMode::on: return "on";
    case TlsMode::require: return "require";
  }
  return "?";
}

const char* to_string(CloseMode mode) {
  return mode == CloseMode::abort ? "abort" : "flush_then_close";
}

const char* to_string(Status status) {
  switch (status) {
    case Status::active: return "active";
    case Status::draining: return "draining";
    case Status::closing: return "closing";
    case Status::dead: return "dead";
  }
  return "?";
}

const char* to_string(EndReason reason) {
  switch (reason) {
    case EndReason::none: return "none";
    case EndReason::client_abort: return "client_abort";
    case EndReason::client_disc: return "client_disc";
    case EndReason::peer_closed: return "peer_closed";
    case EndReason::send_failed: return "send_failed";
    case EndReason::protocol_violation: return "protocol_violation";
    case EndReason::handshake_timeout: return "handshake_timeout";
    case EndReason::grace_expired: return "grace_expired";
    case EndReason::forced: return "forced";
    case EndReason::export_name_failed: return "export_name_failed";
    case EndReason::preconnect_refused: return "preconnect_refused";
    case EndReason::shut_down: return "shut_down";
    case EndReason::shutdown_forced: return "shutdown_forced";
    case EndReason::tls_failed: return "tls_failed";
    case EndReason::tls_required: return "tls_required";
  }
  return "?";
}

const char* to_string(HandleState state) {
  switch (state) {
    case HandleState::none: return "none";
    case HandleState::opening: return "opening";
    case HandleState::open: return "open";
    case HandleState::closing: return "closing";
  }
  return "?";
}

const char* to_string(ThreadModel model) {
  switch (model) {
    case ThreadModel::serialize_connections: return "serialize_connections";
    case ThreadModel::serialize_all_requests: return "serialize_all_requests";
    case ThreadModel::serialize_requests: return "serialize_requests";
    case ThreadModel::parallel: return "parallel";
  }
  return "?";
}

const char* to_string(ServerPhase phase) {
  switch (phase) {
    case ServerPhase::accepting: return "accepting";
    case ServerPhase::draining: return "draining";
    case ServerPhase::unloading: return "unloading";
    case ServerPhase::done: return "done";
  }
  return "?";
}

const char* to_string(Reader reader) {
  switch (reader) {
    case Reader::client_flags: return "client_flags";
    case Reader::option_header: return "option_header";
    case Reader::option_data: return "option_data";
    case Reader::option_discard: return "option_discard";
    case Reader::awaiting_plugin: return "awaiting_plugin";
    case Reader::awaiting_tls: return "awaiting_tls";
    case Reader::request_header: return "request_header";
    case Reader::write_payload: return "write_payload";
    case Reader::payload_discard: return "payload_discard";
    case Reader::stopped: return "stopped";
  }
  return "?";
}

}  // namespace nbdd::core
