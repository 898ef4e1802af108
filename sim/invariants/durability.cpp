// Family "durability": INV-READ-MODEL — every byte a successful READ returns is a value the
// disk could hold at some moment while that READ was being served.
//
// Oracle (per byte, linearizability of single-byte registers): let s and e be the ticks at
// which the READ was parsed and answered. A write W (WRITE data, WRITE_ZEROES zeroes, TRIM
// anything) could have been applied from the tick its payload was parsed until the tick its
// reply was sent (forever if never answered). W is a candidate if it started before e and
// was not certainly overwritten before s, i.e. no successful W2 covering the byte was
// answered before s and started after W was answered. With no successful write answered
// before s, the initial zero is also a candidate. Failed writes are candidates but never
// overwrite (they may or may not have been applied).
#include <algorithm>
#include <cstring>

#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

InvariantChecker::Disk& InvariantChecker::disk_for(Conn& c) {
  if (c.disk) return *c.disk;
  auto& d = disks_[c.export_key];  // the canonical name of the served export (handshake.cpp)
  if (!d) d = std::make_unique<Disk>();
  c.disk = d.get();
  return *d;
}

void InvariantChecker::disk_write(Conn& c, wire::Request& req) {
  if (!config_.check_disk || req.length > (64u << 20)) return;
  Disk& d = disk_for(c);
  Disk::Write w;
  w.offset = req.offset;
  w.length = req.length;
  if (req.type == wire::cmd::write) {
    w.length = req.payload.size();
    w.data = std::move(req.payload);
  }
  w.any = req.type == wire::cmd::trim;
  w.start_tick = tick_;
  d.by_cookie[{c.id, req.cookie}] = d.writes.size();
  d.extents.push_back(Disk::Extent{w.offset, w.offset + w.length, w.start_tick});
  d.writes.push_back(std::move(w));
}

void InvariantChecker::disk_write_done(Conn& c, const wire::Request& req, bool ok) {
  if (!config_.check_disk) return;
  Disk& d = disk_for(c);
  auto it = d.by_cookie.find({c.id, req.cookie});
  if (it == d.by_cookie.end()) return;
  Disk::Write& w = d.writes[it->second];
  w.ack_tick = tick_;
  w.ok = ok;
  d.by_cookie.erase(it);
}

void InvariantChecker::disk_read_started(Conn& c, const wire::Request& req) {
  if (!config_.check_disk) return;
  disk_for(c).read_start[{c.id, req.cookie}] = tick_;
}

namespace {
// Word at a time: READ data is mostly zeroes (holes, untouched disk), checked in bulk.
bool all_zero(const std::byte* p, std::uint64_t n) {
  while (n >= 32) {
    std::uint64_t w[4];
    std::memcpy(w, p, sizeof w);
    if ((w[0] | w[1] | w[2] | w[3]) != 0) return false;
    p += 32;
    n -= 32;
  }
  for (std::uint64_t i = 0; i < n; ++i)
    if (p[i] != std::byte{0}) return false;
  return true;
}
}  // namespace

// The same per-byte rule as the header comment, evaluated per segment: the read range is
// cut at every boundary of a nearby write and of the reply's runs, so inside a segment
// the set of covering writes (and with it the floor and the candidates) is constant. A
// segment passes at once when one candidate (or the initial zero) explains all of it;
// only a segment that mixes values (a read racing several writes) is judged byte by byte.
void InvariantChecker::disk_read_done(Conn& c, core::Instant now, const wire::ReplyDone& done) {
  if (!config_.check_disk) return;
  Disk& d = disk_for(c);
  auto it = d.read_start.find({c.id, done.request.cookie});
  if (it == d.read_start.end()) return;
  const std::uint64_t s = it->second, e = tick_;
  d.read_start.erase(it);
  const std::uint64_t rb = done.request.offset, re = rb + done.request.length;
  std::vector<const Disk::Write*>& near = d.scratch_near;
  std::vector<std::uint64_t>& cuts = d.scratch_cuts;
  near.clear();
  cuts.clear();
  for (std::size_t i = 0; i < d.extents.size(); ++i) {
    const Disk::Extent& x = d.extents[i];
    if (x.start_tick < e && x.offset < re && rb < x.end) {
      near.push_back(&d.writes[i]);
      cuts.push_back(std::max(x.offset, rb));
      cuts.push_back(std::min(x.end, re));
    }
  }
  if (!near.empty()) marks_.hit("read_overlaps_write");
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<const Disk::Write*>& cands = d.scratch_cands;

  auto report = [&](std::uint64_t b, std::byte got) {
    fail("INV-READ-MODEL", c.id, now,
         "READ cookie " + std::to_string(done.request.cookie) + " byte at offset " + std::to_string(b) + " is " +
             std::to_string(std::to_integer<unsigned>(got)) + ", which no write (nor the initial zero) allows");
  };
  // got == nullptr: a hole (zeroes). Returns false after reporting the first bad byte.
  auto check_segment = [&](std::uint64_t x, std::uint64_t y, const std::byte* got) -> bool {
    const std::uint64_t n = y - x;
    std::uint64_t floor = 0;
    bool definite = false;
    for (const auto* w : near)
      if (w->ok && w->ack_tick < s && x >= w->offset && x < w->offset + w->length) {
        floor = std::max(floor, w->start_tick);
        definite = true;
      }
    cands.clear();
    for (const auto* w : near) {
      if (x < w->offset || x >= w->offset + w->length) continue;
      if (definite && w->ack_tick < floor) continue;  // certainly overwritten before the read
      if (w->any) return true;                         // TRIM: anything
      cands.push_back(w);
    }
    const bool zero_ok = !definite;
    // Whole-segment fast paths: one value source explains every byte.
    const bool got_zero = got == nullptr || all_zero(got, n);
    if (got_zero && zero_ok) return true;
    for (const auto* w : cands) {
      if (w->data.empty()) {
        if (got_zero) return true;
      } else if (got != nullptr) {
        if (std::memcmp(got, w->data.data() + (x - w->offset), n) == 0) return true;
      } else if (all_zero(w->data.data() + (x - w->offset), n)) {
        return true;
      }
    }
    // Mixed: byte by byte (each byte may come from a different candidate).
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::byte v = got ? got[i] : std::byte{0};
      bool allowed = zero_ok && v == std::byte{0};
      for (const auto* w : cands) {
        if (allowed) break;
        if (w->data.empty()) allowed = v == std::byte{0};
        else allowed = w->data[x + i - w->offset] == v;
      }
      if (!allowed) {
        report(x + i, v);
        return false;
      }
    }
    return true;
  };

  for (const auto& run : done.runs) {
    const std::uint64_t ra = rb + run.offset, rz = ra + run.length;
    std::uint64_t x = ra;
    auto cut = std::upper_bound(cuts.begin(), cuts.end(), x);
    while (x < rz) {
      const std::uint64_t y = (cut != cuts.end() && *cut < rz) ? *cut : rz;
      const std::byte* got = run.hole ? nullptr : done.bytes.data() + run.pos + (x - ra);
      if (!check_segment(x, y, got)) return;
      x = y;
      if (cut != cuts.end() && *cut <= x) ++cut;
    }
  }
}

}  // namespace nbdd::sim
