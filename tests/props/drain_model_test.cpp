// Stateful property (rc::state) over one core::Connection's drain model: the connection is
// driven directly (no network, parallel thread model, handshake done with simple replies),
// a model says what the spec requires, and the InvariantChecker watches the same run.
//
//   ClientRead         before the graceful moment: reaches the plugin; after: ESHUTDOWN at once
//   PluginFinishesOne  the oldest running call completes: a real reply, or nothing if forced
//   GracefulShutdown   ShutdownRequested
//   ForceDisconnect    DisconnectRequested{true}: Close{abort} now, no Send ever after
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <deque>
#include <map>
#include <optional>

#include "core/connection.hpp"
#include "sim/invariants/checker.hpp"
#include "sim/wire.hpp"

namespace nbdd::sim {
namespace {

using namespace wire;

class OneConnection {
 public:
  OneConnection() : checker_(config()) {
    core::ConnectionConfig cfg;
    cfg.id = 1;
    conn_ = std::make_unique<core::Connection>(cfg);
    checker_.on_connection(1, now_);
    drain();
    std::vector<std::byte> flags;
    put32(flags, 1);
    dec_.client_flags(1);
    client(flags);
    std::vector<std::byte> go;
    put32(go, 0);
    put16(go, 0);
    dec_.option_sent(opt::go, go);
    client(encode_option(opt::go, go));
    RC_ASSERT(dec_.in_transmission());
  }

  void client(const std::vector<std::byte>& bytes) { feed(core::input::BytesReceived{bytes}); }
  void read(std::uint64_t cookie, std::uint32_t len) {
    Request r;
    r.type = cmd::read;
    r.cookie = cookie;
    r.length = len;
    dec_.request_sent(r);
    client(encode_request(r, false));
  }
  void complete_oldest() {
    RC_ASSERT(!running_.empty());
    const core::SlotId slot = running_.front();
    running_.pop_front();
    feed(core::input::PluginDone{slot, 0});
  }
  void feed(const core::Input& in) {
    if (finished_) return;  // driver contract: the Connection is gone after Finished
    checker_.on_input(1, now_, in);
    conn_->handle(now_, in);
    drain();
  }
  std::optional<std::uint32_t> reply_error(std::uint64_t cookie) const {
    auto it = replies_.find(cookie);
    if (it == replies_.end()) return std::nullopt;
    return it->second;
  }
  std::size_t running() const { return running_.size(); }
  bool aborted() const { return aborted_; }
  bool finished() const { return finished_; }
  const std::optional<Violation>& violation() const { return checker_.violation(); }

 private:
  static CheckerConfig config() {
    CheckerConfig c;
    c.server_level = false;
    c.check_disk = false;  // this harness never fills READ buffers
    return c;
  }
  void drain() {
    std::uint32_t sends = 0;
    while (auto act = conn_->next_action()) {
      checker_.on_action(1, now_, *act);
      if (auto* s = std::get_if<core::action::Send>(&*act)) {
        ++sends;
        std::vector<ServerStreamDecoder::Event> evs;
        dec_.feed(s->header, evs);
        dec_.feed(s->payload, evs);
        for (auto& ev : evs) {
          RC_ASSERT(ev.kind != ServerStreamDecoder::Event::Kind::error);
          if (ev.kind == ServerStreamDecoder::Event::Kind::reply_done) replies_[ev.reply.request.cookie] = ev.reply.error;
        }
      } else if (auto* c = std::get_if<core::action::CallPlugin>(&*act)) {
        // The plugin serves one export, "d", of 1 MiB (the open describes it at once).
        if (c->call.kind == core::CallKind::open && c->call.info) {
          c->call.info->name = "d";
          c->call.info->size_bytes = 1 << 20;
        }
        if (c->slot == core::lifecycle_slot) lifecycle_.push_back(c->slot);
        else running_.push_back(c->slot);
      } else if (auto* cl = std::get_if<core::action::Close>(&*act)) {
        aborted_ = aborted_ || cl->mode == core::CloseMode::abort;
      } else if (std::holds_alternative<core::action::Finished>(*act)) {
        finished_ = true;
      }
    }
    checker_.on_status(1, now_, conn_->status());
    // The transport writes at once; lifecycle calls (preconnect/open/close) succeed at once.
    for (std::uint32_t i = 0; i < sends && !aborted_ && !finished_; ++i) feed(core::input::SendDone{});
    while (!lifecycle_.empty() && !finished_) {
      lifecycle_.pop_front();
      feed(core::input::PluginDone{core::lifecycle_slot, 0});
    }
  }

  InvariantChecker checker_;
  std::unique_ptr<core::Connection> conn_;
  ServerStreamDecoder dec_;
  core::Instant now_{};
  std::deque<core::SlotId> running_, lifecycle_;
  std::map<std::uint64_t, std::uint32_t> replies_;
  bool aborted_ = false, finished_ = false;
};

struct DrainModel {
  std::deque<std::uint64_t> running;  // cookies whose plugin call runs, oldest first
  bool graceful = false, forced = false;
  std::uint64_t next_cookie = 1;
  std::uint32_t outstanding() const { return static_cast<std::uint32_t>(running.size()); }
};
using Cmd = rc::state::Command<DrainModel, OneConnection>;

struct ClientRead final : Cmd {
  std::uint32_t len = *rc::gen::inRange<std::uint32_t>(1, 4096);
  void checkPreconditions(const DrainModel& m) const override { RC_PRE(m.outstanding() < 32); }
  void apply(DrainModel& m) const override {
    if (!m.graceful && !m.forced) m.running.push_back(m.next_cookie);
    ++m.next_cookie;
  }
  void run(const DrainModel& m, OneConnection& h) const override {
    const std::size_t before = h.running();
    h.read(m.next_cookie, len);
    if (m.forced) {  // the connection is closed: nothing is read, nothing answered
      if (h.reply_error(m.next_cookie).has_value() || h.running() != before)
        RC_FAIL("INV-FORCE-SILENCE: a request sent after the forced disconnect was served");
    } else if (m.graceful) {
      if (h.reply_error(m.next_cookie) != std::optional<std::uint32_t>(err::eshutdown))
        RC_FAIL("INV-GRACEFUL-ESHUTDOWN: a READ after the graceful moment was not answered ESHUTDOWN");
      if (h.running() != before) RC_FAIL("INV-GRACEFUL-NO-NEW-CALL: a READ after the graceful moment reached the plugin");
    } else if (h.running() != before + 1) {
      RC_FAIL("a READ before the graceful moment did not reach the plugin");
    }
  }
  void show(std::ostream& os) const override { os << "ClientRead(" << len << ")"; }
};

struct PluginFinishesOne final : Cmd {
  void checkPreconditions(const DrainModel& m) const override { RC_PRE(!m.running.empty()); }
  void apply(DrainModel& m) const override { m.running.pop_front(); }
  void run(const DrainModel& m, OneConnection& h) const override {
    const std::uint64_t cookie = m.running.front();
    h.complete_oldest();
    if (m.forced && h.reply_error(cookie).has_value())
      RC_FAIL("INV-FORCE-SILENCE: a call that completed after the forced disconnect was answered");
    if (!m.forced && h.reply_error(cookie) != std::optional<std::uint32_t>(0))
      RC_FAIL("INV-GRACEFUL-INFLIGHT-REAL-REPLY: a completed call did not get its real reply");
  }
  void show(std::ostream& os) const override { os << "PluginFinishesOne"; }
};

struct GracefulShutdown final : Cmd {
  void checkPreconditions(const DrainModel& m) const override { RC_PRE(!m.forced && !m.graceful); }
  void apply(DrainModel& m) const override { m.graceful = true; }
  void run(const DrainModel&, OneConnection& h) const override { h.feed(core::input::ShutdownRequested{}); }
  void show(std::ostream& os) const override { os << "GracefulShutdown"; }
};

struct ForceDisconnect final : Cmd {
  void checkPreconditions(const DrainModel& m) const override { RC_PRE(!m.forced); }
  void apply(DrainModel& m) const override { m.forced = true; }
  void run(const DrainModel&, OneConnection& h) const override {
    h.feed(core::input::DisconnectRequested{true});
    if (!h.aborted()) RC_FAIL("INV-FORCE-CLOSES: no Close{abort} after DisconnectRequested{true}");
  }
  void show(std::ostream& os) const override { os << "ForceDisconnect"; }
};

RC_GTEST_PROP(DrainModelProperty, RepliesFollowTheSpec, ()) {
  OneConnection h;
  DrainModel model;
  rc::state::check(model, h,
                   rc::state::gen::execOneOfWithArgs<ClientRead, PluginFinishesOne, GracefulShutdown, ForceDisconnect>());
  // Liveness of the forced path: once every running call returned, the connection is over.
  if (h.aborted()) {
    while (h.running() > 0) h.complete_oldest();
    if (!h.finished()) RC_FAIL("forced connection did not finish after its last call returned");
  }
  if (h.violation()) RC_FAIL(h.violation()->invariant + ": " + h.violation()->message);
}

}  // namespace
}  // namespace nbdd::sim

namespace nbdd::sim {
namespace {
TEST(DrainModel, ForcedConnectionFinishesAfterItsLastCallReturns) {
  OneConnection h;
  h.read(1, 273);
  h.complete_oldest();
  h.read(2, 241);
  h.feed(core::input::ShutdownRequested{});
  h.feed(core::input::DisconnectRequested{true});
  EXPECT_TRUE(h.aborted());
  while (h.running() > 0) h.complete_oldest();
  EXPECT_TRUE(h.finished());
  if (h.violation()) ADD_FAILURE() << h.violation()->invariant << ": " << h.violation()->message;
}
}  // namespace
}  // namespace nbdd::sim
