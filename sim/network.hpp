// sim::Pipe: one direction of a TCP-shaped byte stream. Bytes arrive in order, after a
// delay, cut into segments of random size; close() delivers FIN after everything written;
// reset() drops what is still in flight and tells the receiver at once. No loss, no
// reordering, no duplication (TCP gives none of those to the application).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/time.hpp"
#include "sim/event_queue.hpp"
#include "sim/fifo.hpp"
#include "sim/prng.hpp"

namespace nbdd::sim {

class Pipe {
 public:
  // The span is valid only during the call.
  using Deliver = std::function<void(std::span<const std::byte>)>;
  using End = std::function<void(bool reset)>;
  struct Shape {
    std::uint64_t delay_min_ns = 0, delay_max_ns = 0;
    std::uint32_t segment_bytes_max = 65536;
    bool cut = true;  // cut writes at random points (Pipe::cut); false: one segment each
  };
  Pipe(EventQueue& queue, const Clock& clock, Prng prng, Shape shape, Deliver deliver, End end)
      : queue_(queue), clock_(clock), prng_(prng), shape_(shape), deliver_(std::move(deliver)), end_(std::move(end)) {}

  void write(std::span<const std::byte> bytes);
  // One message in two parts (a Send's header and payload): cut as one write.
  void write(std::span<const std::byte> first, std::span<const std::byte> second);
  // One message written in place (a client's request: header and WRITE data are produced
  // straight into the pipe's buffer, no staging copy): begin_write(n) returns room for n
  // bytes, valid until end_write(n), which sends them as write() would. Nothing may be
  // written to or delivered from this pipe in between. nullptr (and no end_write) when the
  // pipe is closed.
  std::byte* begin_write(std::size_t n);
  void end_write(std::size_t n);
  void close();  // FIN after the data already written
  void reset();  // RST: undelivered bytes are lost
  bool closed() const { return closed_; }
  std::uint64_t bytes_written() const { return written_; }
  // Bytes handed to the receiver so far (a prefix of what was written).
  std::uint64_t bytes_delivered() const { return delivered_; }
  // A receiver that reads the delivered bytes in place (the server side): they stay in this
  // pipe's buffer until consume()d, and the span a delivery passes is only a notice.
  // Otherwise a delivered span is consumed when the delivery returns.
  void set_receiver_consumes(bool yes) { receiver_consumes_ = yes; }
  std::span<const std::byte> unread() const { return {bytes_.data() + consumed_, bytes_head_ - consumed_}; }
  void consume(std::size_t n) { consumed_ += n; }
  void consume_all() { consumed_ = bytes_head_; }

 private:
  core::Instant arrival();
  // Segments in flight, in arrival order; only the head has an event in the queue, so the
  // event heap stays small however finely a write is cut. Their bytes are consecutive in
  // bytes_ from bytes_head_ on (one buffer per pipe, no allocation per segment).
  struct Segment {
    core::Instant at;
    std::uint32_t length = 0;
    bool fin = false;
  };
  // The pipe's bytes: a growable buffer that, unlike std::vector, does not zero what it
  // grows by (every byte is written right after).
  class Buffer {
   public:
    std::byte* data() { return data_.get(); }
    const std::byte* data() const { return data_.get(); }
    std::size_t size() const { return size_; }
    void clear() { size_ = 0; }
    void shrink_to(std::size_t n) { size_ = n; }
    bool fits(std::size_t n) const { return size_ + n <= cap_; }
    std::byte* grow(std::size_t n);  // size += n; returns the new tail
    void drop_front(std::size_t n);  // the first n bytes go, the rest moves to the front

   private:
    std::unique_ptr<std::byte[]> data_;
    std::size_t size_ = 0, cap_ = 0;
  };
  void make_room(std::size_t n);     // before a write of n: reuse or compact the consumed front
  void cut_written(std::size_t total);  // segments for the `total` bytes just appended
  void push(Segment seg);
  void cut(std::size_t from, std::size_t to);  // segments for bytes [from, to) of a write
  void deliver_head(std::uint64_t gen);
  Fifo<Segment> in_flight_;
  // bytes_[0, consumed_) is consumed, [consumed_, bytes_head_) delivered and unread,
  // [bytes_head_, end) in flight.
  Buffer bytes_;
  std::size_t bytes_head_ = 0;
  std::size_t consumed_ = 0;
  bool receiver_consumes_ = false;
  bool head_scheduled_ = false;
  EventQueue& queue_;
  const Clock& clock_;
  Prng prng_;
  Shape shape_;
  Deliver deliver_;
  End end_;
  core::Instant last_{};
  std::uint64_t generation_ = 0;
  bool closed_ = false;
  bool reset_ = false;
  std::uint64_t written_ = 0;
  std::uint64_t delivered_ = 0;
};

}  // namespace nbdd::sim
