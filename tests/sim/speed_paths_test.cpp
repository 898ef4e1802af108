// The simulator's fast paths (issue 22, speed) against their plain equivalents: the event
// queue's root replacement, the table-driven write payloads, the decoders taking payloads
// and READ data as they arrive, and the pipe's same-instant delivery and in-place writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "sim/event_queue.hpp"
#include "sim/fifo.hpp"
#include "sim/network.hpp"
#include "sim/prng.hpp"
#include "sim/wire.hpp"
#include "tests/sim/checker_harness.hpp"

namespace nbdd::sim {
namespace {

using namespace wire;
using checker_test::greeting;
using checker_test::option_reply;
using checker_test::simple_reply;

// Events that schedule events (the popped root is replaced by the first push) run in
// (time, insertion) order, as a reference ordered map says.
TEST(EventQueue, EventsScheduledWhileRunningKeepTimeThenInsertionOrder) {
  EventQueue q;
  Prng p(11);
  std::map<std::pair<std::uint64_t, int>, int> reference;  // (at, insertion) -> id
  std::vector<int> ran;
  int next_id = 0;
  core::Instant now{};
  struct Ctx {
    EventQueue* q;
    Prng* p;
    std::map<std::pair<std::uint64_t, int>, int>* reference;
    std::vector<int>* ran;
    int* next_id;
    core::Instant* now;
  } ctx{&q, &p, &reference, &ran, &next_id, &now};
  struct Schedule {
    static void one(Ctx* c, std::uint64_t at) {
      const int id = (*c->next_id)++;
      c->reference->emplace(std::make_pair(at, id), id);
      c->q->at(core::Instant{at}, [c, id] {
        c->ran->push_back(id);
        if (*c->next_id < 3000)
          for (auto n = 1 + c->p->below(2); n > 0; --n) one(c, c->now->ns + c->p->below(50));
      });
    }
  };
  for (int i = 0; i < 5; ++i) Schedule::one(&ctx, p.below(50));
  while (!q.empty()) {
    core::Instant at;
    auto fn = q.pop(at);
    EXPECT_GE(at.ns, now.ns);
    now = at;
    fn();
  }
  std::vector<int> expected;
  for (const auto& [key, id] : reference) expected.push_back(id);
  ASSERT_GT(ran.size(), 100u);
  EXPECT_EQ(ran, expected);
}

TEST(Prng, FillGivesDistinctWordsWithinAndAcrossPayloads) {
  Prng p(5);
  std::array<std::byte, 8192> a{}, b{};
  p.fill(a);
  p.fill(b);
  std::set<std::uint64_t> words;
  for (std::size_t i = 0; i < a.size(); i += 8) {
    std::uint64_t w, v;
    std::memcpy(&w, a.data() + i, 8);
    std::memcpy(&v, b.data() + i, 8);
    words.insert(w);
    words.insert(v);
  }
  EXPECT_EQ(words.size(), 2 * a.size() / 8);  // no word repeats, within or across
  std::array<std::byte, 13> odd{};           // a tail shorter than a word is filled too
  p.fill(odd);
  EXPECT_NE(std::count(odd.begin(), odd.end(), std::byte{0}), 13);
}

TEST(Fifo, ReusesItsStorageOnceDrained) {
  Fifo<int> f;
  EXPECT_TRUE(f.empty());
  f.push_back(1);
  f.push_back(2);
  EXPECT_EQ(f.front(), 1);
  f.pop_front();
  f.push_back(3);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_EQ(f.front(), 2);
  f.pop_front();
  f.pop_front();
  EXPECT_TRUE(f.empty());
  f.emplace_back(4);
  EXPECT_EQ(f.front(), 4);
}

// A decoder in transmission, structured replies negotiated or not.
ServerStreamDecoder transmission(bool structured, bool keep_data) {
  ServerStreamDecoder d = checker_test::decoder_in_transmission(structured, 1 << 20, 1);
  d.keep_read_data(keep_data);
  EXPECT_TRUE(d.in_transmission());
  return d;
}

std::vector<std::byte> pattern(std::size_t n, int salt) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 7 + static_cast<std::size_t>(salt)) & 0xff);
  return v;
}

// OFFSET_DATA chunk of `data` at `offset`, flags `flags`.
std::vector<std::byte> offset_data(std::uint64_t cookie, std::uint64_t offset, const std::vector<std::byte>& data,
                                   std::uint16_t flags) {
  std::vector<std::byte> r;
  put32(r, structured_magic);
  put16(r, flags);
  put16(r, 1);
  put64(r, cookie);
  put32(r, static_cast<std::uint32_t>(8 + data.size()));
  put64(r, offset);
  r.insert(r.end(), data.begin(), data.end());
  return r;
}

struct Outcome {
  std::uint32_t error = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;  // (offset, length)
  std::vector<std::byte> bytes;
  bool mid_frame_seen = false;
  int done = 0, errors = 0;
};

// Feeds `stream` in pieces of `piece` bytes (0: whole) to a decoder with one READ of
// `length` bytes at offset 4096 outstanding.
Outcome read_reply(bool structured, const std::vector<std::byte>& stream, std::size_t piece, std::uint64_t length) {
  ServerStreamDecoder d = transmission(structured, true);
  Request r;
  r.type = cmd::read;
  r.cookie = 9;
  r.offset = 4096;
  r.length = length;
  d.request_sent(r);
  Outcome o;
  std::vector<ServerStreamDecoder::Event> ev;
  const std::size_t step = piece == 0 ? stream.size() : piece;
  for (std::size_t at = 0; at < stream.size(); at += step) {
    ev.clear();
    d.feed(std::span(stream).subspan(at, std::min(step, stream.size() - at)), ev);
    for (const auto& e : ev) {
      if (e.kind == ServerStreamDecoder::Event::Kind::error) ++o.errors;
      if (e.kind != ServerStreamDecoder::Event::Kind::reply_done) continue;
      ++o.done;
      o.error = e.reply.error;
      for (const auto& run : e.reply.runs) o.runs.emplace_back(run.offset, run.length);
      o.bytes.assign(e.reply.bytes.begin(), e.reply.bytes.end());
    }
    if (at + step < stream.size() && d.mid_frame()) o.mid_frame_seen = true;
  }
  return o;
}

TEST(ServerStreamDecoder, ReadDataInPiecesGivesTheSameReplyAsWhole) {
  const auto data = pattern(1000, 3);
  std::vector<std::byte> simple = simple_reply(0, 9);
  simple.insert(simple.end(), data.begin(), data.end());
  const Outcome whole = read_reply(false, simple, 0, 1000);
  ASSERT_EQ(whole.done, 1);
  EXPECT_EQ(whole.bytes, data);
  for (std::size_t piece : {1u, 7u, 16u, 17u, 999u}) {
    const Outcome o = read_reply(false, simple, piece, 1000);
    EXPECT_EQ(o.done, 1) << piece;
    EXPECT_EQ(o.errors, 0) << piece;
    EXPECT_EQ(o.runs, whole.runs) << piece;
    EXPECT_EQ(o.bytes, data) << piece;
    EXPECT_TRUE(o.mid_frame_seen) << piece;
  }

  const auto first = pattern(600, 5), second = pattern(400, 9);
  std::vector<std::byte> chunks = offset_data(9, 4096 + 400, first, 0);
  const auto last = offset_data(9, 4096, second, 1);  // DONE
  chunks.insert(chunks.end(), last.begin(), last.end());
  const Outcome swhole = read_reply(true, chunks, 0, 1000);
  ASSERT_EQ(swhole.done, 1);
  EXPECT_EQ(swhole.runs, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{400, 600}, {0, 400}}));
  for (std::size_t piece : {1u, 5u, 28u, 29u, 640u}) {
    const Outcome o = read_reply(true, chunks, piece, 1000);
    EXPECT_EQ(o.done, 1) << piece;
    EXPECT_EQ(o.errors, 0) << piece;
    EXPECT_EQ(o.runs, swhole.runs) << piece;
    EXPECT_EQ(o.bytes, swhole.bytes) << piece;
  }
}

TEST(ServerStreamDecoder, StreamedOffsetDataIsJudgedFromItsOffset) {
  // Outside the request: reported as soon as the offset is there, data still to come.
  const auto data = pattern(100, 1);
  const auto chunk = offset_data(9, 4096 + 950, data, 1);
  const Outcome o = read_reply(true, std::vector<std::byte>(chunk.begin(), chunk.begin() + 40), 0, 1000);
  EXPECT_EQ(o.errors, 1);
  EXPECT_EQ(o.done, 0);
}

TEST(ClientStreamDecoder, AWritePayloadInPiecesArrivesWhole) {
  Request w;
  w.type = cmd::write;
  w.cookie = 3;
  w.offset = 512;
  w.length = 700;
  w.payload = pattern(700, 4);
  std::vector<std::byte> stream;
  put32(stream, 0);  // client flags
  const auto go = encode_option(opt::go, std::vector<std::byte>(6, std::byte{0}));
  stream.insert(stream.end(), go.begin(), go.end());
  const std::size_t handshake = stream.size();
  const auto req = encode_request(w, false);
  stream.insert(stream.end(), req.begin(), req.end());
  for (std::size_t piece : {1u, 13u, 100u, 5000u}) {
    ClientStreamDecoder d;
    std::vector<ClientStreamDecoder::Event> ev;
    d.feed(std::span(stream).first(handshake), ev);
    d.enter_transmission(false, ev);
    ev.clear();
    std::vector<std::byte> got;
    int complete = 0;
    for (std::size_t at = handshake; at < stream.size(); at += piece) {
      d.feed(std::span(stream).subspan(at, std::min(piece, stream.size() - at)), ev);
      for (auto& e : ev)
        if (e.kind == ClientStreamDecoder::Event::Kind::request_complete) {
          ++complete;
          got = e.request.payload;
        }
      ev.clear();
    }
    EXPECT_EQ(complete, 1) << piece;
    EXPECT_EQ(got, w.payload) << piece;
  }
}

// Segments that arrive at one instant are one delivery; bytes written in place arrive as
// written.
TEST(Pipe, SameInstantSegmentsAreOneDeliveryAndInPlaceWritesArrive) {
  EventQueue q;
  Clock clock;
  std::vector<std::vector<std::byte>> got;
  Pipe::Shape shape{1000, 1000, 65536, true};  // one delay: every segment of a write coincides
  Pipe pipe(
      q, clock, Prng(4), shape, [&](std::span<const std::byte> b) { got.emplace_back(b.begin(), b.end()); },
      [](bool) {});
  const auto a = pattern(3000, 2);
  for (int i = 0; i < 20; ++i) pipe.write(a);
  std::byte* at = pipe.begin_write(100);
  ASSERT_NE(at, nullptr);
  const auto b = pattern(100, 8);
  std::copy(b.begin(), b.end(), at);
  pipe.end_write(100);
  while (!q.empty()) {
    core::Instant when;
    auto fn = q.pop(when);
    clock.advance_to(when);
    fn();
  }
  ASSERT_EQ(got.size(), 1u);  // everything was written at t=0 and arrives at t=1000
  std::vector<std::byte> all;
  for (int i = 0; i < 20; ++i) all.insert(all.end(), a.begin(), a.end());
  all.insert(all.end(), b.begin(), b.end());
  EXPECT_EQ(got[0], all);
  EXPECT_EQ(pipe.bytes_delivered(), all.size());
}

}  // namespace
}  // namespace nbdd::sim
