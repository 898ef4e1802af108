#include "sim/network.hpp"

#include <algorithm>
#include <cstring>

namespace nbdd::sim {

core::Instant Pipe::arrival() {
  const core::Instant at = clock_.now() + core::Duration{prng_.range_inclusive(shape_.delay_min_ns, shape_.delay_max_ns)};
  last_ = std::max(last_, at);  // in order: never before an earlier segment
  return last_;
}

std::byte* Pipe::Buffer::grow(std::size_t n) {
  if (size_ + n > cap_) {
    const std::size_t cap = std::max<std::size_t>({size_ + n, 2 * cap_, 16384});
    std::unique_ptr<std::byte[]> bigger(new std::byte[cap]);
    if (size_ != 0) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    cap_ = cap;
  }
  std::byte* tail = data_.get() + size_;
  size_ += n;
  return tail;
}

void Pipe::Buffer::drop_front(std::size_t n) {
  std::memmove(data_.get(), data_.get() + n, size_ - n);
  size_ -= n;
}

void Pipe::make_room(std::size_t n) {
  if (consumed_ == bytes_.size()) {
    bytes_.clear();
    bytes_head_ = consumed_ = 0;
  } else if (consumed_ != 0 && (!bytes_.fits(n) || (consumed_ > 65536 && consumed_ * 2 > bytes_.size()))) {
    // Before growing (and when the consumed front is large): move only the unconsumed bytes.
    bytes_.drop_front(consumed_);
    bytes_head_ -= consumed_;
    consumed_ = 0;
  }
}

void Pipe::write(std::span<const std::byte> bytes) { write(bytes, {}); }

void Pipe::write(std::span<const std::byte> first, std::span<const std::byte> second) {
  const std::size_t total = first.size() + second.size();
  if (closed_ || total == 0) return;
  make_room(total);
  std::byte* to = bytes_.grow(total);
  if (!first.empty()) std::memcpy(to, first.data(), first.size());
  if (!second.empty()) std::memcpy(to + first.size(), second.data(), second.size());
  cut_written(total);
}

std::byte* Pipe::begin_write(std::size_t n) {
  if (closed_) return nullptr;
  make_room(n);
  return bytes_.grow(n);
}

void Pipe::end_write(std::size_t n) {
  if (n != 0) cut_written(n);
}

void Pipe::cut_written(std::size_t total) {
  written_ += total;
  // Tiny segments matter where framing is decided (the first bytes of a message): with a
  // tiny segment_bytes_max, one write in four has a window of 16 bytes somewhere in its first
  // 64 cut that finely (every position of every header is reached over a run, and a write
  // costs about 18 deliveries instead of 64); the rest of it is cut like any other write.
  if (shape_.segment_bytes_max < 512 && prng_.below(4) == 0) {
    const std::size_t window_at = prng_.below(std::min<std::size_t>(total, 64));
    const std::size_t window_end = std::min<std::size_t>(total, window_at + 16);
    if (window_at > 0) push(Segment{arrival(), static_cast<std::uint32_t>(window_at), false});
    std::size_t pos = window_at;
    while (pos < window_end) {
      const std::size_t n = prng_.range_inclusive(1, std::min<std::size_t>(shape_.segment_bytes_max, window_end - pos));
      pos += n;
      push(Segment{arrival(), static_cast<std::uint32_t>(n), false});
    }
    cut(pos, total);
    return;
  }
  cut(0, total);
}

// Half the time (always unless Shape::cut) the bytes go out as one segment, as TCP mostly
// does; otherwise they are cut
// at one to three points drawn uniformly, so any byte boundary can be a segment boundary
// while a message costs at most four deliveries (cutting what is left again and again at
// random made about nine of a 4 KiB one). Pieces a real stack would send back to back (one
// MSS after another) arrive together, so segment_bytes_max does not cut them further.
void Pipe::cut(std::size_t from, std::size_t to) {
  if (from >= to) return;
  const std::size_t total = to - from;
  std::size_t cuts[4];
  std::size_t ncuts = 0;
  if (shape_.cut && total > 1 && prng_.coin()) {
    const std::size_t k = prng_.range_inclusive(1, std::min<std::size_t>(3, total - 1));
    for (std::size_t i = 0; i < k; ++i) cuts[ncuts++] = prng_.range_inclusive(1, total - 1);
    for (std::size_t i = 1; i < ncuts; ++i)  // at most three: an insertion sort
      for (std::size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; --j) std::swap(cuts[j - 1], cuts[j]);
  }
  cuts[ncuts++] = total;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < ncuts; ++i) {
    if (cuts[i] == pos) continue;  // equal cut points: no empty segment
    push(Segment{arrival(), static_cast<std::uint32_t>(cuts[i] - pos), false});
    pos = cuts[i];
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
  Segment seg = in_flight_.front();
  in_flight_.pop_front();
  // Segments that arrive at the same instant are one delivery, as a receive buffer holds
  // them (a read the server queued for exactly this instant could have seen the first alone;
  // a cut between them costs an event and a read and explores next to nothing).
  if (!seg.fin)
    while (!in_flight_.empty() && !in_flight_.front().fin && in_flight_.front().at == seg.at) {
      seg.length += in_flight_.front().length;
      in_flight_.pop_front();
    }
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
    if (!receiver_consumes_) consumed_ = bytes_head_;
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
  bytes_.shrink_to(bytes_head_);  // what was delivered stays readable until the receiver hears RST
  head_scheduled_ = false;
  const std::uint64_t gen = generation_;
  queue_.at(clock_.now() + core::Duration{prng_.range_inclusive(shape_.delay_min_ns, shape_.delay_max_ns)},
            [this, gen] {
              if (gen == generation_) end_(true);
            });
}

}  // namespace nbdd::sim
