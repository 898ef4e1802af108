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

#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

InvariantChecker::Disk& InvariantChecker::disk_for(Conn& c) {
  std::string key = c.export_name;
  if (config_.catalog) {
    if (const auto* info = config_.catalog->find(c.export_name)) key = info->name;
  }
  auto& d = disks_[key];
  if (!d) d = std::make_unique<Disk>();
  return *d;
}

void InvariantChecker::disk_write(Conn& c, const wire::Request& req) {
  if (!config_.check_disk || req.length > (64u << 20)) return;
  Disk& d = disk_for(c);
  Disk::Write w;
  w.offset = req.offset;
  w.length = req.length;
  if (req.type == wire::cmd::write) {
    w.data = req.payload;
    w.length = req.payload.size();
  }
  w.any = req.type == wire::cmd::trim;
  w.start_tick = tick_;
  d.by_cookie[{c.id, req.cookie}] = d.writes.size();
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

void InvariantChecker::disk_read_done(Conn& c, core::Instant now, const wire::ReplyDone& done) {
  if (!config_.check_disk) return;
  Disk& d = disk_for(c);
  auto it = d.read_start.find({c.id, done.request.cookie});
  if (it == d.read_start.end()) return;
  const std::uint64_t s = it->second, e = tick_;
  d.read_start.erase(it);
  const std::uint64_t rb = done.request.offset, re = rb + done.request.length;
  std::vector<const Disk::Write*> near;
  for (const auto& w : d.writes)
    if (w.start_tick < e && w.offset < re && rb < w.offset + w.length) near.push_back(&w);
  if (!near.empty()) marks_.hit("read_overlaps_write");
  for (std::uint64_t b = rb; b < re; ++b) {
    const std::byte got = done.data[b - rb];
    std::uint64_t floor = 0;
    bool definite = false;
    for (const auto* w : near)
      if (w->ok && w->ack_tick < s && b >= w->offset && b < w->offset + w->length) {
        floor = std::max(floor, w->start_tick);
        definite = true;
      }
    bool allowed = !definite && got == std::byte{0};
    for (const auto* w : near) {
      if (allowed) break;
      if (b < w->offset || b >= w->offset + w->length) continue;
      if (definite && w->ack_tick < floor) continue;  // certainly overwritten before the read
      if (w->any) allowed = true;
      else if (w->data.empty()) allowed = got == std::byte{0};
      else allowed = w->data[b - w->offset] == got;
    }
    if (!allowed) {
      fail("INV-READ-MODEL", c.id, now,
           "READ cookie " + std::to_string(done.request.cookie) + " byte at offset " + std::to_string(b) + " is " +
               std::to_string(std::to_integer<unsigned>(got)) + ", which no write (nor the initial zero) allows");
      return;
    }
  }
}

}  // namespace nbdd::sim
