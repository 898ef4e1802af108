// The simulator's wire codec (sim/wire.hpp), client -> server half: encoding options and
// requests, and decoding the bytes a client sends (ClientStreamDecoder). The server -> client half: sim/wire_server.cpp.
#include "sim/wire.hpp"

#include <algorithm>

namespace nbdd::sim::wire {

namespace {
// Big-endian, one resize per field instead of a push_back per byte.
template <int Bytes>
void put_be(std::vector<std::byte>& out, std::uint64_t v) {
  const std::size_t at = out.size();
  out.resize(at + Bytes);
  for (int i = Bytes - 1; i >= 0; --i) {
    out[at + static_cast<std::size_t>(i)] = static_cast<std::byte>(v);
    v >>= 8;
  }
}
}  // namespace

void put16(std::vector<std::byte>& out, std::uint16_t v) { put_be<2>(out, v); }
void put32(std::vector<std::byte>& out, std::uint32_t v) { put_be<4>(out, v); }
void put64(std::vector<std::byte>& out, std::uint64_t v) { put_be<8>(out, v); }
void put_bytes(std::vector<std::byte>& out, std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), p, p + s.size());
}

const char* command_name(std::uint16_t type) {
  switch (type) {
    case cmd::read: return "READ";
    case cmd::write: return "WRITE";
    case cmd::disc: return "DISC";
    case cmd::flush: return "FLUSH";
    case cmd::trim: return "TRIM";
    case cmd::cache: return "CACHE";
    case cmd::write_zeroes: return "WRITE_ZEROES";
    case cmd::block_status: return "BLOCK_STATUS";
    default: return "CMD?";
  }
}
const char* option_name(std::uint32_t option) {
  switch (option) {
    case opt::export_name: return "EXPORT_NAME";
    case opt::abort: return "ABORT";
    case opt::list: return "LIST";
    case opt::starttls: return "STARTTLS";
    case opt::info: return "INFO";
    case opt::go: return "GO";
    case opt::structured_reply: return "STRUCTURED_REPLY";
    case opt::list_meta: return "LIST_META_CONTEXT";
    case opt::set_meta: return "SET_META_CONTEXT";
    case opt::extended_headers: return "EXTENDED_HEADERS";
    default: return "OPT?";
  }
}

namespace {
template <int Bytes>
void store_be(std::byte* at, std::uint64_t v) {
  for (int i = Bytes - 1; i >= 0; --i) {
    at[i] = static_cast<std::byte>(v);
    v >>= 8;
  }
}
}  // namespace

void encode_option_header(std::byte* out, std::uint32_t option, std::size_t data_bytes) {
  store_be<8>(out, ihaveopt);
  store_be<4>(out + 8, option);
  store_be<4>(out + 12, static_cast<std::uint32_t>(data_bytes));
}

std::vector<std::byte> encode_option(std::uint32_t option, std::span<const std::byte> data) {
  std::vector<std::byte> out(16 + data.size());
  encode_option_header(out.data(), option, data.size());
  std::copy(data.begin(), data.end(), out.begin() + 16);
  return out;
}

void encode_request_header(std::byte* out, const Request& req, bool extended) {
  store_be<4>(out, extended ? ext_request_magic : request_magic);
  store_be<2>(out + 4, req.flags);
  store_be<2>(out + 6, req.type);
  store_be<8>(out + 8, req.cookie);
  store_be<8>(out + 16, req.offset);
  if (extended)
    store_be<8>(out + 24, req.length);
  else
    store_be<4>(out + 24, static_cast<std::uint32_t>(req.length));
}

void encode_request_header(std::vector<std::byte>& out, const Request& req, bool extended) {
  const std::size_t at = out.size();
  out.resize(at + request_header_bytes(extended));
  encode_request_header(out.data() + at, req, extended);
}

std::vector<std::byte> encode_request(const Request& req, bool extended) {
  std::vector<std::byte> out;
  out.reserve((extended ? 32 : 28) + req.payload.size());
  encode_request_header(out, req, extended);
  out.insert(out.end(), req.payload.begin(), req.payload.end());
  return out;
}

// ================================ client -> server =========================================

void ClientStreamDecoder::feed(std::span<const std::byte> bytes, std::vector<Event>& out) {
  if (state_ == State::ended || state_ == State::broken) return;  // nothing more is decoded
  if (pos_ == buf_.size()) {  // everything decoded: start over instead of growing
    buf_.clear();
    pos_ = 0;
  }
  if (buf_.empty()) {
    // Nothing buffered: decode straight from the caller's bytes, keep only an unfinished tail.
    src_ = bytes.data();
    src_size_ = bytes.size();
    run(out);
    buf_.assign(src_ + pos_, src_ + src_size_);
    pos_ = 0;
  } else {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    use_buffer();
    run(out);
  }
  use_buffer();
}

void ClientStreamDecoder::enter_transmission(bool extended, std::vector<Event>& out) {
  if (state_ != State::awaiting_outcome) return;
  use_buffer();
  extended_ = extended;
  state_ = State::request_header;
  run(out);
}

void ClientStreamDecoder::resume_options(std::vector<Event>& out) {
  if (state_ != State::awaiting_outcome) return;
  use_buffer();
  state_ = State::option_header;
  run(out);
}

void ClientStreamDecoder::tls_started(std::size_t early, std::vector<Event>& out) {
  if (state_ != State::awaiting_outcome) return;
  use_buffer();
  pos_ += std::min(early, buf_.size() - pos_);
  state_ = State::option_header;
  run(out);
}

void ClientStreamDecoder::run(std::vector<Event>& out) {
  for (;;) {
    const std::size_t avail = src_size_ - pos_;
    const std::byte* p = src_ + pos_;
    switch (state_) {
      case State::client_flags:
        if (avail < 4) goto done;
        out.push_back({Event::Kind::client_flags, load32(p), {}, {}, {}});
        pos_ += 4;
        state_ = State::option_header;
        break;
      case State::option_header:
        if (avail < 16) goto done;
        if (load64(p) != ihaveopt) {
          out.push_back({Event::Kind::error, 0, {}, {}, "client option without IHAVEOPT"});
          state_ = State::broken;
          goto done;
        }
        option_ = load32(p + 8);
        need_ = load32(p + 12);
        pos_ += 16;
        state_ = State::option_data;
        break;
      case State::option_data: {
        if (avail < need_) goto done;
        Event ev{Event::Kind::option, option_, {p, p + need_}, {}, {}};
        pos_ += need_;
        out.push_back(std::move(ev));
        const bool ends = option_ == opt::go || option_ == opt::export_name || option_ == opt::starttls;
        state_ = option_ == opt::abort ? State::broken : (ends ? State::awaiting_outcome : State::option_header);
        if (option_ == opt::abort) goto done;
        break;
      }
      case State::awaiting_outcome:
      case State::ended:
      case State::broken:
        goto done;
      case State::request_header: {
        const std::size_t hb = extended_ ? 32 : 28;
        if (avail < hb) goto done;
        const std::uint32_t magic = load32(p);
        if (magic != (extended_ ? ext_request_magic : request_magic)) {
          out.push_back({Event::Kind::error, 0, {}, {}, "client request with wrong magic"});
          state_ = State::broken;
          goto done;
        }
        current_ = Request{};
        current_.flags = load16(p + 4);
        current_.type = load16(p + 6);
        current_.cookie = load64(p + 8);
        current_.offset = load64(p + 16);
        current_.length = extended_ ? load64(p + 24) : load32(p + 24);
        pos_ += hb;
        if (extended_)
          need_ = (current_.flags & cflag::payload_len) ? current_.length : 0;
        else
          need_ = current_.type == cmd::write ? current_.length : 0;
        out.push_back({Event::Kind::request_header, 0, {}, current_, {}});
        if (current_.type == cmd::disc) {
          // The client MUST NOT send more after DISC and the server stops reading there:
          // whatever follows (even a payload the DISC header announces) is not decoded.
          state_ = State::ended;
          buf_.clear();
          pos_ = 0;
          src_size_ = 0;  // nothing after it is kept
          return;
        }
        // Room for the payload up front (it arrives in pieces), bounded: a wire length alone
        // never sizes an allocation past 64 KiB.
        current_.payload.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(need_, 64 * 1024)));
        state_ = State::payload;
        break;
      }
      case State::payload: {
        // Taken as it arrives (not buffered whole first): each byte is copied once.
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, need_));
        current_.payload.insert(current_.payload.end(), p, p + n);
        pos_ += n;
        need_ -= n;
        if (need_ != 0) goto done;
        out.push_back({Event::Kind::request_complete, 0, {}, std::move(current_), {}});
        current_ = Request{};
        state_ = State::request_header;
        break;
      }
    }
  }
done:
  if (src_ == buf_.data() && pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
    use_buffer();
  }
}

}  // namespace nbdd::sim::wire
