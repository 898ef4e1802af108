// sim::SimClient: an NBD client that does real fixed-newstyle handshakes (LIST, INFO, GO,
// EXPORT_NAME, STRUCTURED_REPLY, LIST/SET_META_CONTEXT, EXTENDED_HEADERS, unknown options,
// ABORT) — asking for the plugin's exports by name, the empty name (the default export) or
// names the plugin refuses, learning the size and flags from the server's replies — and
// then pipelines random commands with random flags, sends DISC, or vanishes
// (half-close or reset, also in the middle of a request). It parses every byte it receives
// with sim::wire::ServerStreamDecoder (independent of core's encoder) and follows the
// spec's client duties: ERR_SHUTDOWN -> ABORT, ESHUTDOWN -> DISC (unless "lazy", a client
// that never ends by itself, which makes the server's grace period matter).
//
// Scripted clients (scenario mode) do the handshake by themselves and send requests only
// when a Step says so.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/fault_profile.hpp"
#include "sim/network.hpp"
#include "sim/prng.hpp"
#include "sim/wire.hpp"

namespace nbdd::sim {

class World;

class SimClient {
 public:
  enum class Style : std::uint8_t { simple, structured, extended };
  SimClient(World& world, std::uint32_t index, Prng prng, const FaultProfile& profile, bool scripted,
            Style style = Style::structured);

  void start();                                   // connect now
  void attach(Pipe* to_server) { to_server_ = to_server; }
  void refused();                                 // the server did not admit us
  void on_bytes(std::span<const std::byte> bytes);    // from the server
  void on_end(bool reset);                        // FIN or RST from the server

  // scenario mode
  void script_options(bool list, bool info) {
    script_list_ = list;
    script_info_ = info;
  }
  bool send_command(std::uint16_t type, std::uint64_t offset, std::uint32_t length, std::uint16_t flags);
  void vanish(bool reset);

  std::uint32_t index() const { return index_; }
  bool in_transmission() const { return dec_.in_transmission(); }
  bool done() const { return done_; }
  std::uint64_t requests_sent() const { return requests_sent_; }

 private:
  void plan_handshake();
  void next_option();
  void send_option(std::uint32_t option, std::span<const std::byte> data);
  void on_option_reply(const wire::ServerStreamDecoder::Event& ev);
  void enter_transmission();
  void schedule_next();
  void act();
  void send_random_request();
  void send_request(const wire::Request& req, std::uint64_t payload_bytes);
  void boundary_request(wire::Request& rq, std::uint64_t size);
  bool reply_before_request_arrived(std::uint64_t cookie);
  void send_disc();
  void write(std::span<const std::byte> bytes);
  std::vector<std::byte> info_data(const std::string& name, bool go);
  std::vector<std::byte> meta_data(const std::string& name, const std::vector<std::string>& queries);
  std::string pick_name();

  World& world_;
  std::uint32_t index_;
  Prng prng_;
  const FaultProfile& profile_;
  bool scripted_;
  Style style_;
  bool script_list_ = false, script_info_ = false;  // scenario: LIST first, INFO before GO
  bool lazy_ = false;
  Pipe* to_server_ = nullptr;
  wire::ServerStreamDecoder dec_;
  std::vector<wire::ServerStreamDecoder::Event> events_;
  std::vector<std::byte> out_;  // a request sent only in part (vanishing in its middle)
  std::vector<std::pair<std::uint32_t, std::vector<std::byte>>> plan_;
  std::size_t plan_pos_ = 0;
  std::string export_name_;
  std::uint32_t current_option_ = 0;
  bool go_retry_used_ = false;
  bool done_ = false, write_closed_ = false, disc_sent_ = false, quiet_ = false, act_scheduled_ = false;
  std::uint32_t outstanding_ = 0;
  std::uint64_t next_cookie_ = 1;
  std::uint64_t requests_sent_ = 0;
  // Requests with a payload, in send order: cookie and the end of their last byte in the
  // stream to the server. Like libnbd (1.14), a reply to a request whose bytes have not all
  // reached the server means a broken server ("no matching cookie"): the client gives up.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> payload_ends_;
};

}  // namespace nbdd::sim
