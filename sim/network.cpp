#include "sim/network.hpp"

#include <algorithm>

namespace nbdd::sim {

core::Instant Pipe::arrival() {
  const core::Instant at = clock_.now() + core::Duration{prng_.range_inclusive(shape_.delay_min_ns, shape_.delay_max_ns)};
  last_ = std::max(last_, at);  // in order: never before an earlier segment
  return last_;
}

void Pipe::write(std::span<const std::byte> bytes) {
  if (closed_ || bytes.empty()) return;
  written_ += bytes.size();
  if (bytes_head_ == bytes_.size()) {
    bytes_.clear();
    bytes_head_ = 0;
  } else if (bytes_head_ > 65536 && bytes_head_ * 2 > bytes_.size()) {
    bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(bytes_head_));
    bytes_head_ = 0;
  }
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  // Tiny segments matter where framing is decided (the first bytes of a message); past
  // that they only multiply events, so a long payload continues in larger pieces, and with a
  // tiny segment_bytes_max only one write in four is cut that finely (events per request are
  // what bounds the simulator's speed). Half of the other writes go out as one segment when
  // they fit, as TCP mostly does; the rest are cut at random.
  std::size_t seg_max = shape_.segment_bytes_max;
  bool tiny = seg_max < 512;
  if (tiny && prng_.below(4) != 0) {
    tiny = false;
    seg_max = 4096;
  }
  const bool whole = !tiny && prng_.coin();
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const std::size_t cap = tiny && pos >= 64 ? 4096 : seg_max;
    const std::size_t max = std::min<std::size_t>(cap, bytes.size() - pos);
    const std::size_t n = whole ? max : prng_.range_inclusive(1, max);
    pos += n;
    push(Segment{arrival(), static_cast<std::uint32_t>(n), false});
  }
}

void Pipe::push(Segment seg) {
  in_flight_.push_back(seg);
  if (head_scheduled_) return;
  head_scheduled_ = true;
  const std::uint64_t gen = generation_;
  queue_.at(in_flight_.front().at, [this, gen] { deliver_head(gen); });
}

void Pipe::deliver_head(std::uint64_t gen) {
  head_scheduled_ = false;
  if (gen != generation_ || in_flight_.empty()) return;  // reset meanwhile
  const Segment seg = in_flight_.front();
  in_flight_.pop_front();
  if (!in_flight_.empty()) {
    head_scheduled_ = true;
    queue_.at(in_flight_.front().at, [this, gen] { deliver_head(gen); });
  }
  if (seg.fin) {
    end_(false);
  } else {
    // The receiver never writes into this pipe while it is delivering (the server side only
    // queues a read, the client writes to the other direction), so the span stays valid.
    const std::span<const std::byte> data(bytes_.data() + bytes_head_, seg.length);
    bytes_head_ += seg.length;
    delivered_ += seg.length;
    deliver_(data);
  }
}

void Pipe::close() {
  if (closed_) return;
  closed_ = true;
  push(Segment{arrival(), 0, true});
}

void Pipe::reset() {
  if (reset_) return;
  reset_ = closed_ = true;
  ++generation_;
  in_flight_.clear();
  bytes_.clear();
  bytes_head_ = 0;
  head_scheduled_ = false;
  const std::uint64_t gen = generation_;
  queue_.at(clock_.now() + core::Duration{prng_.range_inclusive(shape_.delay_min_ns, shape_.delay_max_ns)},
            [this, gen] {
              if (gen == generation_) end_(true);
            });
}

}  // namespace nbdd::sim
