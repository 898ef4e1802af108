// Test harness for one core::Connection: a scripted client on one side, a scripted
// plugin (an in-memory disk) on the other, and the driver contract in between.
// Nothing here runs threads or reads clocks; time moves only by advance().
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/call_gate.hpp"
#include "core/connection.hpp"
#include "core/protocol_constants.hpp"
#include "core/wire.hpp"

namespace nbdd::test {

using namespace nbdd::core;
using Bytes = std::vector<std::byte>;

inline void put16(Bytes& b, std::uint16_t v) { b.resize(b.size() + 2); wire::store_u16(b.data() + b.size() - 2, v); }
inline void put32(Bytes& b, std::uint32_t v) { b.resize(b.size() + 4); wire::store_u32(b.data() + b.size() - 4, v); }
inline void put64(Bytes& b, std::uint64_t v) { b.resize(b.size() + 8); wire::store_u64(b.data() + b.size() - 8, v); }
inline void put_str(Bytes& b, std::string_view s) {
  for (char c : s) b.push_back(static_cast<std::byte>(c));
}

inline Bytes option(std::uint32_t opt, const Bytes& data = {}) {
  Bytes b;
  put64(b, nbd::opts_magic);
  put32(b, opt);
  put32(b, static_cast<std::uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}
inline Bytes option(nbd::Opt opt, const Bytes& data = {}) { return option(static_cast<std::uint32_t>(opt), data); }

// INFO/GO payload.
inline Bytes info_request(std::string_view name, std::vector<nbd::Info> infos = {}) {
  Bytes b;
  put32(b, static_cast<std::uint32_t>(name.size()));
  put_str(b, name);
  put16(b, static_cast<std::uint16_t>(infos.size()));
  for (auto i : infos) put16(b, static_cast<std::uint16_t>(i));
  return b;
}

inline Bytes meta_request(std::string_view name, std::vector<std::string> queries) {
  Bytes b;
  put32(b, static_cast<std::uint32_t>(name.size()));
  put_str(b, name);
  put32(b, static_cast<std::uint32_t>(queries.size()));
  for (auto& q : queries) {
    put32(b, static_cast<std::uint32_t>(q.size()));
    put_str(b, q);
  }
  return b;
}

inline Bytes request(nbd::Cmd cmd, std::uint64_t cookie, std::uint64_t offset, std::uint64_t length,
                     std::uint16_t flags = 0, bool extended = false) {
  Bytes b;
  put32(b, extended ? nbd::extended_request_magic : nbd::request_magic);
  put16(b, flags);
  put16(b, static_cast<std::uint16_t>(cmd));
  put64(b, cookie);
  put64(b, offset);
  if (extended)
    put64(b, length);
  else
    put32(b, static_cast<std::uint32_t>(length));
  return b;
}

// The exports the harness's plugin serves: open finds a name here ("" = default_export),
// list_exports lists them all. Test-side only: the core knows nothing ahead of time.
struct TestExports {
  std::vector<ExportInfo> exports;
  std::string default_export;
  bool read_only = false;  // the server's -r
  const ExportInfo* find(std::string_view name) const {
    if (name.empty()) name = default_export;
    for (const auto& e : exports)
      if (e.name == name) return &e;
    return nullptr;
  }
};

inline TestExports default_catalog(std::uint64_t size = 1 << 20) {
  TestExports c;
  ExportInfo e;
  e.name = "disk";
  e.description = "test disk";
  e.size_bytes = size;
  e.caps = Capabilities{true, true, true, true, true, true, true, true, true, false};
  c.exports.push_back(e);
  ExportInfo small = e;
  small.name = "small";
  small.size_bytes = 4096;
  c.exports.push_back(small);
  c.default_export = "disk";
  return c;
}

// The CallGate a driver would provide around ExclusiveGate; handovers are recorded and
// delivered by the test (several harnesses share one gate).
class TestGate : public CallGate {
 public:
  bool try_acquire(ConnectionId id) override { return gate.try_acquire(id); }
  void release(ConnectionId id) override {
    if (auto next = gate.release(id)) opened.push_back(*next);
  }
  bool cancel(ConnectionId id) override {
    const bool was_holder = gate.holder() == id;
    if (auto next = gate.cancel(id)) opened.push_back(*next);
    return was_holder;
  }
  ExclusiveGate gate;
  std::vector<ConnectionId> opened;  // ids to feed GateOpened to
};

struct Harness {
  // answer_preconnect: complete the preconnect call the core asks for first, so the
  // greeting is out when the constructor returns (and clear it from `history`).
  explicit Harness(TestExports cat = default_catalog(), Limits lim = Limits{},
                   ThreadModel model = ThreadModel::parallel, CallGate* gate = nullptr, ConnectionId id = 1,
                   bool answer_preconnect = true, TlsMode tls = TlsMode::off,
                   std::uint16_t handshake_flags_mask = 0xffff, bool structured_replies = true)
      : catalog(std::move(cat)) {
    ConnectionConfig cfg;
    cfg.id = id;
    cfg.accepted_at = now;
    cfg.limits = lim;
    cfg.read_only = catalog.read_only;
    cfg.thread_model = model;
    cfg.gate = gate;
    cfg.tls = tls;
    cfg.handshake_flags_mask = handshake_flags_mask;
    cfg.structured_replies = structured_replies;
    conn = std::make_unique<Connection>(cfg);
    disk.assign(catalog.exports[0].size_bytes > (64u << 20) ? 0 : catalog.exports[0].size_bytes, std::byte{0});
    drain();
    if (answer_preconnect && calls.size() == 1 && calls[0].call.kind == CallKind::preconnect) {
      complete();
      history.clear();
    }
  }

  void input(const Input& in) {
    conn->handle(now, in);
    drain();
  }
  void send(const Bytes& b) {
    ASSERT_TRUE(conn->wants_read()) << "client sends while the server does not read";
    input(input::BytesReceived{b});
  }
  // Delivers through read_window(), in pieces of at most `piece` bytes.
  void send_via_window(const Bytes& b, std::size_t piece = 1 << 30) {
    std::size_t at = 0;
    while (at < b.size()) {
      auto w = conn->read_window();
      ASSERT_FALSE(w.empty());
      const std::size_t n = std::min({w.size(), piece, b.size() - at});
      std::memcpy(w.data(), b.data() + at, n);
      at += n;
      input(input::BytesReceived{std::span<const std::byte>(w.data(), n)});
    }
  }
  void advance(Duration d) { now = now + d; }

  void drain() {
    while (auto act = conn->next_action()) {
      if (auto* s = std::get_if<action::Send>(&*act)) {
        EXPECT_FALSE(closed_abort) << "Send after Close{abort}";
        EXPECT_FALSE(finished);
        out.insert(out.end(), s->header.begin(), s->header.end());
        out.insert(out.end(), s->payload.begin(), s->payload.end());
        ++unacked;
      } else if (auto* c = std::get_if<action::CallPlugin>(&*act)) {
        EXPECT_FALSE(finished);
        calls.push_back(*c);
        history.push_back(c->call.kind);
      } else if (auto* cl = std::get_if<action::Close>(&*act)) {
        ++closes;
        if (cl->mode == CloseMode::abort) closed_abort = true;
        else closed_flush = true;
      } else if (auto* t = std::get_if<action::StartTls>(&*act)) {
        EXPECT_FALSE(finished);
        ++tls_starts;
        tls_early.assign(t->early.begin(), t->early.end());
      } else {
        EXPECT_FALSE(finished) << "Finished twice";
        finished = true;
      }
    }
    if (auto_ack) {
      while (unacked > 0) {
        --unacked;
        conn->handle(now, input::SendDone{});
        drain();
      }
    }
  }

  // Runs the oldest (or the given) pending plugin call against the in-memory disk.
  void complete(std::size_t index = 0, int err = 0) {
    ASSERT_LT(index, calls.size());
    action::CallPlugin c = calls[index];
    calls.erase(calls.begin() + static_cast<std::ptrdiff_t>(index));
    if (err == 0) err = run_on_disk(c.call);
    input(input::PluginDone{c.slot, err});
  }
  void complete_all() {
    while (!calls.empty()) complete(0);
  }

  int run_on_disk(const PluginCall& c) {
    switch (c.kind) {
      case CallKind::pread:
        std::memcpy(c.buffer.data(), disk.data() + c.offset, c.count);
        return 0;
      case CallKind::pwrite:
        std::memcpy(disk.data() + c.offset, c.buffer.data(), c.count);
        return 0;
      case CallKind::zero:
      case CallKind::trim:
        std::fill_n(disk.begin() + static_cast<std::ptrdiff_t>(c.offset), c.count, std::byte{0});
        return 0;
      case CallKind::list_exports:
        for (const auto& e : catalog.exports) c.exports->push_back(ExportEntry{e.name, e.description});
        return 0;
      case CallKind::open: {
        const ExportInfo* e = catalog.find(c.export_name);
        if (e == nullptr) return ENOENT;
        *c.info = *e;
        if (!c.want_description) c.info->description.clear();
        if (catalog.read_only) c.info->caps.can_write = false;
        return 0;
      }
      case CallKind::extents:
        for (std::uint64_t at = c.offset; at < c.offset + c.count && c.extents->size() < c.extents_max;) {
          const std::uint64_t len = std::min<std::uint64_t>(extent_bytes - at % extent_bytes, c.offset + c.count - at);
          c.extents->push_back(Extent{at, len, (at / extent_bytes) % 2 ? nbd::state_hole | nbd::state_zero : 0u});
          at += len;
        }
        return 0;
      default: return 0;
    }
  }

  // ---- client side: reading what the server sent -----------------------------------
  std::size_t unread() const { return out.size() - read_pos; }
  std::uint16_t take16() { auto v = wire::load_u16(out.data() + read_pos); read_pos += 2; return v; }
  std::uint32_t take32() { auto v = wire::load_u32(out.data() + read_pos); read_pos += 4; return v; }
  std::uint64_t take64() { auto v = wire::load_u64(out.data() + read_pos); read_pos += 8; return v; }
  Bytes take(std::size_t n) {
    Bytes b(out.begin() + static_cast<std::ptrdiff_t>(read_pos), out.begin() + static_cast<std::ptrdiff_t>(read_pos + n));
    read_pos += n;
    return b;
  }

  struct OptReply {
    std::uint32_t option;
    std::uint32_t type;
    Bytes data;
  };
  OptReply take_opt_reply() {
    EXPECT_GE(unread(), 20u);
    EXPECT_EQ(take64(), nbd::rep_magic);
    OptReply r;
    r.option = take32();
    r.type = take32();
    r.data = take(take32());
    return r;
  }
  struct SimpleReply {
    std::uint32_t error;
    std::uint64_t cookie;
  };
  SimpleReply take_simple_reply() {
    EXPECT_GE(unread(), 16u);
    EXPECT_EQ(take32(), nbd::simple_reply_magic);
    SimpleReply r;
    r.error = take32();
    r.cookie = take64();
    return r;
  }
  struct Chunk {
    std::uint16_t flags, type;
    std::uint64_t cookie, offset;
    Bytes payload;
  };
  Chunk take_chunk(bool extended = false) {
    Chunk c;
    EXPECT_EQ(take32(), extended ? nbd::extended_reply_magic : nbd::structured_reply_magic);
    c.flags = take16();
    c.type = take16();
    c.cookie = take64();
    std::uint64_t len = 0;
    if (extended) {
      c.offset = take64();
      len = take64();
    } else {
      len = take32();
    }
    c.payload = take(static_cast<std::size_t>(len));
    return c;
  }

  // Greeting, flags, then GO for `name` (optionally after other option bytes). Leaves
  // the connection in transmission with the open call completed.
  void handshake(std::string_view name = "", const std::vector<Bytes>& before = {}) {
    EXPECT_EQ(out.size(), nbd::greeting_bytes);
    read_pos = nbd::greeting_bytes;
    Bytes flags;
    put32(flags, nbd::flag_c_fixed_newstyle | nbd::flag_c_no_zeroes);
    send(flags);
    for (const auto& b : before) {
      send(b);
      while (unread() > 0) take_opt_reply();
    }
    send(option(nbd::Opt::go, info_request(name)));
    EXPECT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].call.kind, CallKind::open);
    complete();
    auto info = take_opt_reply();
    EXPECT_EQ(info.type, static_cast<std::uint32_t>(nbd::Rep::info));
    eflags = wire::load_u16(info.data.data() + 10);
    while (unread() > 0) {
      auto r = take_opt_reply();
      if (r.type == static_cast<std::uint32_t>(nbd::Rep::ack)) break;
    }
    EXPECT_EQ(conn->phase(), Phase::transmission);
  }

  TestExports catalog;
  std::unique_ptr<Connection> conn;
  Instant now{1'000'000'000};
  Bytes out;
  std::size_t read_pos = 0;
  std::size_t unacked = 0;
  bool auto_ack = true;
  std::vector<action::CallPlugin> calls;
  std::vector<CallKind> history;
  int closes = 0;
  bool closed_abort = false;
  bool closed_flush = false;
  bool finished = false;
  int tls_starts = 0;  // action::StartTls seen
  Bytes tls_early;     // the early bytes of the last one
  std::uint16_t eflags = 0;
  Bytes disk;
  std::uint64_t extent_bytes = 65536;
};

}  // namespace nbdd::test
