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
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    // Tiny segments matter where framing is decided (the first bytes of a message); past
    // that they only multiply events, so a long payload continues in larger pieces.
    std::size_t seg_max = shape_.segment_bytes_max;
    if (seg_max < 512 && pos >= 64) seg_max = 4096;
    const std::size_t max = std::min<std::size_t>(seg_max, bytes.size() - pos);
    const std::size_t n = prng_.range_inclusive(1, max);
    std::vector<std::byte> seg(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                               bytes.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
    push(Segment{arrival(), std::move(seg), false});
  }
}

void Pipe::push(Segment seg) {
  in_flight_.push_back(std::move(seg));
  if (head_scheduled_) return;
  head_scheduled_ = true;
  const std::uint64_t gen = generation_;
  queue_.at(in_flight_.front().at, [this, gen] { deliver_head(gen); });
}

void Pipe::deliver_head(std::uint64_t gen) {
  head_scheduled_ = false;
  if (gen != generation_ || in_flight_.empty()) return;  // reset meanwhile
  Segment seg = std::move(in_flight_.front());
  in_flight_.pop_front();
  if (!in_flight_.empty()) {
    head_scheduled_ = true;
    queue_.at(in_flight_.front().at, [this, gen] { deliver_head(gen); });
  }
  if (seg.fin)
    end_(false);
  else
    deliver_(std::move(seg.bytes));
}

void Pipe::close() {
  if (closed_) return;
  closed_ = true;
  push(Segment{arrival(), {}, true});
}

void Pipe::reset() {
  if (reset_) return;
  reset_ = closed_ = true;
  ++generation_;
  in_flight_.clear();
  head_scheduled_ = false;
  const std::uint64_t gen = generation_;
  queue_.at(clock_.now() + core::Duration{prng_.range_inclusive(shape_.delay_min_ns, shape_.delay_max_ns)},
            [this, gen] {
              if (gen == generation_) end_(true);
            });
}

}  // namespace nbdd::sim
