// Hand-made conversations for the invariant checker's tests (checker_test.cpp,
// checker_issue22_test.cpp): a greeting, option and simple replies, and a Harness that
// feeds one connection's inputs and actions to an InvariantChecker.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "sim/invariants/checker.hpp"
#include "sim/wire.hpp"

namespace nbdd::sim::checker_test {

using namespace wire;

inline std::vector<std::byte> greeting() {
  std::vector<std::byte> g;
  put64(g, nbdmagic);
  put64(g, ihaveopt);
  put16(g, 3);
  return g;
}

inline std::vector<std::byte> option_reply(std::uint32_t option, std::uint32_t type, std::vector<std::byte> data = {}) {
  std::vector<std::byte> r;
  put64(r, rep_magic);
  put32(r, option);
  put32(r, type);
  put32(r, static_cast<std::uint32_t>(data.size()));
  r.insert(r.end(), data.begin(), data.end());
  return r;
}

// A server-stream decoder taken through the handshake to transmission (GO with an INFO of
// `size` and `flags`), with structured replies negotiated first or not.
inline ServerStreamDecoder decoder_in_transmission(bool structured, std::uint64_t size, std::uint16_t flags) {
  ServerStreamDecoder d;
  std::vector<ServerStreamDecoder::Event> ev;
  d.feed(greeting(), ev);
  d.client_flags(1);
  if (structured) {
    d.option_sent(opt::structured_reply, {});
    d.feed(option_reply(opt::structured_reply, rep::ack), ev);
  }
  std::vector<std::byte> go;
  put32(go, 0);
  put16(go, 0);
  d.option_sent(opt::go, go);
  std::vector<std::byte> info;
  put16(info, 0);
  put64(info, size);
  put16(info, flags);
  d.feed(option_reply(opt::go, rep::info, info), ev);
  d.feed(option_reply(opt::go, rep::ack), ev);
  return d;
}

inline std::vector<std::byte> simple_reply(std::uint32_t error, std::uint64_t cookie) {
  std::vector<std::byte> r;
  put32(r, simple_magic);
  put32(r, error);
  put64(r, cookie);
  return r;
}

struct Harness {
  InvariantChecker checker;
  core::Instant t{};
  // What the plugin's open reports for GO "" (the driver fills it at PluginDone).
  core::ExportInfo export_info{"d", "", 4096, {}, {}};
  static CheckerConfig config(core::Limits limits = {}) {
    CheckerConfig c;
    c.limits = limits;
    return c;
  }
  // With `preconnect`, the plugin's preconnect has already run and succeeded.
  explicit Harness(core::Limits limits = {}, bool preconnect = true) : checker(config(limits)) {
    checker.on_connection(1, t);
    if (!preconnect) return;
    action(core::action::CallPlugin{core::lifecycle_slot, core::PluginCall{core::CallKind::preconnect}});
    input(core::input::PluginDone{core::lifecycle_slot, 0});
  }
  static core::PluginCall open_call(core::ExportInfo* info) {
    core::PluginCall c{core::CallKind::open};
    c.info = info;
    return c;
  }
  void client(const std::vector<std::byte>& b) { checker.on_input(1, t, core::input::BytesReceived{b}); }
  void server(const std::vector<std::byte>& b) { checker.on_action(1, t, core::action::Send{b, {}}); }
  void input(const core::Input& in) { checker.on_input(1, t, in); }
  void action(const core::Action& a) { checker.on_action(1, t, a); }
  std::string first() const { return checker.violation() ? checker.violation()->invariant : "none"; }

  // Greeting, client flags, GO "" -> open -> INFO_EXPORT + ACK: transmission with simple replies.
  // Greeting and client flags: the handshake is ready for options.
  void options() {
    server(greeting());
    input(core::input::SendDone{});
    std::vector<std::byte> flags;
    put32(flags, 1);
    client(flags);
  }
  static std::vector<std::byte> info_request(std::string_view name = "") {
    std::vector<std::byte> d;
    put32(d, static_cast<std::uint32_t>(name.size()));
    put_bytes(d, name);
    put16(d, 0);
    return d;
  }
  static std::vector<std::byte> info_export(std::uint64_t size, std::uint16_t flags = 1) {
    std::vector<std::byte> info;
    put16(info, 0);
    put64(info, size);
    put16(info, flags);
    return info;
  }
  void handshake() {
    server(greeting());
    input(core::input::SendDone{});
    std::vector<std::byte> flags;
    put32(flags, 1);
    client(flags);
    std::vector<std::byte> go;
    put32(go, 0);
    put16(go, 0);
    client(encode_option(opt::go, go));
    action(core::action::CallPlugin{core::lifecycle_slot, open_call(&export_info)});
    input(core::input::PluginDone{core::lifecycle_slot, 0});
    std::vector<std::byte> info;
    put16(info, 0);
    put64(info, 4096);
    put16(info, 1);
    server(option_reply(opt::go, rep::info, info));
    server(option_reply(opt::go, rep::ack));
    input(core::input::SendDone{});
    input(core::input::SendDone{});
  }
  void read(std::uint64_t cookie) {
    Request r;
    r.type = cmd::read;
    r.cookie = cookie;
    r.length = 0;
    client(encode_request(r, false));
  }
  static std::vector<std::byte> request(std::uint16_t type, std::uint64_t cookie, std::uint64_t offset,
                                        std::uint64_t length, std::vector<std::byte> payload = {}) {
    Request r;
    r.type = type;
    r.cookie = cookie;
    r.offset = offset;
    r.length = length;
    r.payload = std::move(payload);
    return encode_request(r, false);
  }
};

// A few tiny-profile Limits of the fuzz harness (fuzz/driver.hpp make_limits).
inline core::Limits tiny_limits() {
  core::Limits l;
  l.request_bytes_max = 4096;
  l.in_flight_max = 3;
  l.slot_buffer_bytes_max = 8192;
  return l;
}

}  // namespace nbdd::sim::checker_test
