// The invariant checker's issue-22 rules on hand-made conversations: no reply before the
// payload, the validity model, oversized options, the gate handed on.
#include <gtest/gtest.h>

#include "tests/sim/checker_harness.hpp"

namespace nbdd::sim {
namespace {

using namespace wire;
using namespace checker_test;

std::vector<std::byte> write_header(std::uint64_t cookie, std::uint64_t offset, std::uint32_t length) {
  std::vector<std::byte> h;
  put32(h, request_magic);
  put16(h, 0);
  put16(h, cmd::write);
  put64(h, cookie);
  put64(h, offset);
  put32(h, length);
  return h;
}

TEST(Issue22Checker, FlagsAnErrorReplyBeforeTheWritePayloadArrived) {
  Harness h;
  h.handshake();
  h.client(write_header(9, 4000, 200));  // past the end of the 4096-byte export
  h.client(std::vector<std::byte>(199, std::byte{1}));
  h.server(simple_reply(err::enospc, 9));
  EXPECT_EQ(h.first(), "INV-NO-REPLY-BEFORE-PAYLOAD");
}

TEST(Issue22Checker, AcceptsTheRefusalAfterTheLastPayloadByte) {
  Harness h;
  h.handshake();
  h.client(write_header(9, 4000, 200));
  h.client(std::vector<std::byte>(200, std::byte{1}));
  h.server(simple_reply(err::enospc, 9));
  EXPECT_EQ(h.first(), "none");
}

TEST(Issue22Checker, FlagsAValidRequestRefused) {
  Harness h;
  h.handshake();
  h.client(Harness::request(cmd::read, 7, 3584, 512));  // ends exactly at the end: valid
  h.server(simple_reply(err::einval, 7));
  EXPECT_EQ(h.first(), "INV-REFUSAL-MATCHES-VALIDITY");
}

TEST(Issue22Checker, FlagsTheWrongErrorForAWritePastTheEnd) {
  Harness h;
  h.handshake();
  h.client(Harness::request(cmd::write, 7, 4000, 200, std::vector<std::byte>(200, std::byte{2})));
  h.server(simple_reply(err::einval, 7));  // the protocol's error is ENOSPC
  EXPECT_EQ(h.first(), "INV-REFUSAL-MATCHES-VALIDITY");
}

TEST(Issue22Checker, AcceptsAZeroLengthReadAtTheEnd) {
  Harness h;
  h.handshake();
  h.client(Harness::request(cmd::read, 7, 4096, 0));
  h.server(simple_reply(0, 7));
  EXPECT_EQ(h.first(), "none");
}

TEST(Issue22Checker, FlagsAnUnofferedFlagThatWasServed) {
  Harness h;
  h.handshake();  // flags: HAS_FLAGS only, no SEND_FUA
  Request r;
  r.type = cmd::read;
  r.flags = cflag::fua;
  r.cookie = 7;
  r.length = 512;
  h.client(encode_request(r, false));
  h.server(simple_reply(0, 7));
  h.server(std::vector<std::byte>(512));  // the data: the reply is complete
  EXPECT_EQ(h.first(), "INV-REFUSAL-MATCHES-VALIDITY");
}

TEST(Issue22Checker, FlagsTooBigForAnOptionAtTheLimitAndAnythingElseForOneOver) {
  core::Limits limits;
  limits.option_data_bytes_max = 16;
  {
    Harness h(limits);
    h.options();
    h.client(encode_option(42, std::vector<std::byte>(16, std::byte{3})));
    h.server(option_reply(42, rep::err_too_big));
    EXPECT_EQ(h.first(), "INV-OPTION-TOO-BIG");
  }
  {
    Harness h(limits);
    h.options();
    h.client(encode_option(42, std::vector<std::byte>(17, std::byte{3})));
    h.server(option_reply(42, rep::err_unsup));
    EXPECT_EQ(h.first(), "INV-OPTION-TOO-BIG");
  }
  {
    Harness h(limits);
    h.options();
    h.client(encode_option(42, std::vector<std::byte>(17, std::byte{3})));
    h.server(option_reply(42, rep::err_too_big));
    EXPECT_EQ(h.first(), "none");
  }
}

TEST(Issue22Checker, FlagsAGateKeptWithNothingRunningWhileAnotherWaits) {
  for (bool handed_on : {false, true}) {
    CheckerConfig config;
    config.thread_model = core::ThreadModel::serialize_all_requests;
    InvariantChecker checker(config);
    const core::Instant t{};
    checker.on_connection(1, t);
    checker.on_connection(2, t);
    checker.on_gate(1, t, InvariantChecker::GateCall::try_acquire, true);
    checker.on_gate(2, t, InvariantChecker::GateCall::try_acquire, false);
    if (handed_on) {
      checker.on_gate(1, t, InvariantChecker::GateCall::release, true);
      checker.on_input(2, t, core::input::GateOpened{});
      checker.on_status(2, t, core::Status::active);
      EXPECT_FALSE(checker.violation()) << "a waiter that holds the gate before its call starts";
    }
    checker.on_status(1, t, core::Status::active);
    if (handed_on) {
      EXPECT_FALSE(checker.violation());
    } else {
      ASSERT_TRUE(checker.violation()) << "connection 1 keeps the gate with no call while 2 waits";
      EXPECT_EQ(checker.violation()->invariant, "INV-GATE-HANDED-ON");
    }
  }
}

}  // namespace
}  // namespace nbdd::sim
