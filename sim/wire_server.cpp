// The server -> client half of the simulator's wire codec (sim/wire.hpp): what a client
// and the checker make of the bytes the server sends, checked against what was asked.
#include <algorithm>

#include "sim/wire.hpp"

namespace nbdd::sim::wire {

// ================================ server -> client =========================================

namespace {
// The export name at the start of INFO/GO/*_META_CONTEXT data (u32 length, name).
std::string name_in(const std::vector<std::byte>& data) {
  if (data.size() < 4) return {};
  const std::uint32_t n = load32(data.data());
  if (n > data.size() - 4) return {};
  return {reinterpret_cast<const char*>(data.data() + 4), n};
}
}  // namespace

void ServerStreamDecoder::option_sent(std::uint32_t option, std::span<const std::byte> data) {
  options_.push_back(option);
  option_data_.emplace_back(data.begin(), data.end());
}

void ServerStreamDecoder::request_sent(const Request& req) {
  if (req.type == cmd::disc) {
    ++disc_cookies_[req.cookie];
    return;
  }
  // A cookie already outstanding (a client bug) is replaced, as before.
  Pending* p = find(req.cookie);
  if (!p) {
    std::size_t i = 0;
    while (i < slot_.size() && slot_[i].state != SlotState::free) ++i;
    if (i == slot_.size()) {
      if (slot_.empty()) {  // room for a full pipeline at once: a Pending is moved, vectors and all, on growth
        slot_.reserve(16);
        pending_.reserve(16);
      }
      slot_.emplace_back();
      pending_.emplace_back();
    }
    slot_[i] = Slot{req.cookie, SlotState::outstanding};
    p = &pending_[i];
    ++outstanding_;
  }
  p->req.flags = req.flags;  // field by field: a WRITE's payload is not copied
  p->req.type = req.type;
  p->req.cookie = req.cookie;
  p->req.offset = req.offset;
  p->req.length = req.length;
  p->error = 0;
  p->chunks = 0;
  p->any_error = p->none_seen = false;
  p->content_chunks = p->status_chunks = 0;
  // Nothing is allocated for the READ's data here: runs are stored as the data arrives.
  p->runs.clear();
  p->bytes.clear();
  p->covered.clear();
  p->error_offsets.clear();
}

bool ServerStreamDecoder::fail(std::vector<Event>& out, std::string why) {
  Event ev{};
  ev.kind = Event::Kind::error;
  ev.error = std::move(why);
  out.push_back(std::move(ev));
  state_ = State::broken;
  return false;
}

void ServerStreamDecoder::feed(std::span<const std::byte> bytes, std::vector<Event>& out) {
  // Replies completed by the previous feed() were read by now: their slots are free again.
  for (Slot& slot : slot_)
    if (slot.state == SlotState::done) slot.state = SlotState::free;
  if (state_ == State::broken) return;
  if (pos_ == buf_.size()) {  // everything decoded: start over instead of growing
    buf_.clear();
    pos_ = 0;
  }
  const std::size_t skipped = std::min(skip_, bytes.size());
  skip_ -= skipped;
  bytes = bytes.subspan(skipped);
  if (buf_.empty()) {
    // Nothing buffered: decode straight from the caller's bytes, keep only an unfinished tail.
    src_ = bytes.data();
    src_size_ = bytes.size();
    while (step(out)) {
    }
    buf_.assign(src_ + pos_, src_ + src_size_);
    pos_ = 0;
  } else {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    src_ = buf_.data();
    src_size_ = buf_.size();
    while (step(out)) {
    }
    if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
      pos_ = 0;
    }
  }
  src_ = buf_.data();
  src_size_ = buf_.size();
}

ServerStreamDecoder::Pending* ServerStreamDecoder::find(std::uint64_t cookie) {
  for (std::size_t i = 0; i < slot_.size(); ++i)
    if (slot_[i].cookie == cookie && slot_[i].state == SlotState::outstanding) return &pending_[i];
  return nullptr;
}

bool ServerStreamDecoder::step(std::vector<Event>& out) {
  const std::size_t avail = src_size_ - pos_;
  const std::byte* p = src_ + pos_;
  switch (state_) {
    case State::broken:
      return false;
    case State::greeting: {
      if (avail < 18) return false;
      if (load64(p) != nbdmagic) return fail(out, "greeting: bad NBDMAGIC");
      if (load64(p + 8) != ihaveopt) return fail(out, "greeting: bad IHAVEOPT");
      handshake_flags_ = load16(p + 16);
      if ((handshake_flags_ & 1) == 0) return fail(out, "greeting: FIXED_NEWSTYLE not set");
      if (handshake_flags_ & ~3u) return fail(out, "greeting: unknown handshake flag");
      pos_ += 18;
      state_ = State::options;
      Event ev{};
      ev.kind = Event::Kind::greeting;
      ev.option = handshake_flags_;
      out.push_back(std::move(ev));
      return true;
    }
    case State::options: {
      if (avail == 0) return false;
      if (options_.empty()) return fail(out, "option reply bytes with no option outstanding");
      if (options_.front() == opt::export_name) {
        state_ = State::export_block;
        return true;
      }
      if (avail < 20) return false;
      if (load64(p) != rep_magic) return fail(out, "option reply: bad NBD_REP_MAGIC");
      const std::uint32_t option = load32(p + 8);
      const std::uint32_t type = load32(p + 12);
      const std::uint32_t len = load32(p + 16);
      if (len > (16u << 20)) return fail(out, "option reply: absurd length");
      if (avail < 20 + static_cast<std::size_t>(len)) return false;
      const std::span<const std::byte> data(p + 20, len);  // read in place (src_ outlives the step)
      pos_ += 20 + len;
      return option_reply(out, option, type, data);
    }
    case State::export_block: {
      const bool no_zeroes = (handshake_flags_ & 2) && (client_flags_ & 2);
      const std::size_t need = no_zeroes ? 10 : 134;
      if (avail < need) return false;
      for (std::size_t i = 10; i < need; ++i)
        if (p[i] != std::byte{0}) return fail(out, "EXPORT_NAME reply: nonzero padding");
      export_size_ = load64(p);
      eflags_ = load16(p + 8);
      pos_ += need;
      options_.pop_front();
      const std::vector<std::byte> sent_name = std::move(option_data_.front());
      option_data_.pop_front();
      if (!(eflags_ & eflag::has_flags)) return fail(out, "transmission flags without HAS_FLAGS");
      if ((eflags_ & eflag::send_df) && !structured_) return fail(out, "SEND_DF without structured replies");
      if (eflags_ & 0xe000) return fail(out, "unknown transmission flag");
      structured_ = structured_ || extended_;
      state_ = State::transmission;
      // §8.2 (and nbdkit): a selection made for another export name does not carry over.
      if (std::string_view(reinterpret_cast<const char*>(sent_name.data()), sent_name.size()) != meta_export_)
        meta_ids_.clear();
      Event ev{};
      ev.kind = Event::Kind::export_block;
      ev.size = export_size_;
      ev.eflags = eflags_;
      out.push_back(std::move(ev));
      return true;
    }
    case State::transmission: {
      if (avail < 4) return false;
      const std::uint32_t magic = load32(p);
      if (magic == simple_magic) {
        if (extended_) return fail(out, "simple reply after extended headers were negotiated");
        if (avail < 16) return false;
        const std::uint32_t error = load32(p + 4);
        const std::uint64_t cookie = load64(p + 8);
        Pending* found = find(cookie);
        if (!found) return fail(out, "simple reply for unknown cookie (or a second reply, or DISC)");
        Pending& pend = *found;
        if (pend.chunks != 0) return fail(out, "simple reply after structured chunks");
        const bool is_read = pend.req.type == cmd::read;
        if (is_read && structured_) return fail(out, "simple reply to READ with structured replies negotiated");
        std::size_t need = 16;
        if (is_read && error == 0) need += pend.req.length;
        if (avail < need) {
          if (avail < 16 || !is_read || error != 0) return false;
          // The data is still arriving: take it as it comes (State::read_data).
          pend.runs.push_back(ReplyDone::Run{0, pend.req.length, pend.bytes.size(), false});
          pos_ += 16;
          data_slot_ = static_cast<std::size_t>(&pend - pending_.data());
          data_left_ = pend.req.length;
          data_chunk_ = false;
          state_ = State::read_data;
          return true;
        }
        if (is_read && error == 0 && pend.req.length > 0) {
          pend.runs.push_back(ReplyDone::Run{0, pend.req.length, pend.bytes.size(), false});
          if (keep_read_data_) pend.bytes.insert(pend.bytes.end(), p + 16, p + need);
        }
        pend.error = error;
        pend.chunks = 1;
        pos_ += need;
        return complete(out, pend);
      }
      if (magic == structured_magic || magic == extended_magic) {
        const bool ext = magic == extended_magic;
        if (ext != extended_)
          return fail(out, ext ? "extended chunk without extended headers" : "structured chunk with extended headers");
        if (!structured_) return fail(out, "structured chunk without structured replies");
        const std::size_t hb = ext ? 32 : 20;
        if (avail < hb) return false;
        const std::uint16_t flags = load16(p + 4);
        const std::uint16_t type = load16(p + 6);
        const std::uint64_t cookie = load64(p + 8);
        const std::uint64_t offset_field = ext ? load64(p + 16) : 0;
        const std::uint64_t plen = ext ? load64(p + 24) : load32(p + 16);
        if (plen > (64u << 20) + 64) return fail(out, "chunk payload absurdly long");
        if (avail < hb + plen) {
          // OFFSET_DATA still arriving: judged from its offset now, its data taken as it comes.
          if (type != 1 || plen < 9 || avail < hb + 8) return false;
          pos_ += hb + 8;
          return chunk(out, cookie, flags, type, offset_field, ext, std::span<const std::byte>(p + hb, 8), plen - 8);
        }
        std::span<const std::byte> payload(p + hb, plen);
        pos_ += hb + plen;
        return chunk(out, cookie, flags, type, offset_field, ext, payload);
      }
      return fail(out, "reply with unknown magic");
    }
    case State::read_data:
      return read_data(out);
  }
  return false;
}

bool ServerStreamDecoder::read_data(std::vector<Event>& out) {
  const std::size_t avail = src_size_ - pos_;
  if (avail == 0) return false;
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, data_left_));
  Pending& pend = pending_[data_slot_];
  if (keep_read_data_) pend.bytes.insert(pend.bytes.end(), src_ + pos_, src_ + pos_ + n);
  pos_ += n;
  data_left_ -= n;
  if (data_left_ != 0) return false;
  state_ = State::transmission;
  if (data_chunk_) return chunk_end(out, pend, data_chunk_done_);
  pend.error = 0;
  pend.chunks = 1;
  return complete(out, pend);
}

bool ServerStreamDecoder::option_reply(std::vector<Event>& out, std::uint32_t option, std::uint32_t type,
                                       std::span<const std::byte> data) {
  const std::uint32_t sent = options_.front();
  if (option != sent) return fail(out, "option reply names option " + std::to_string(option) + ", sent " + std::to_string(sent));
  if (!current_) current_ = OptionInProgress{sent};
  Event ev{};
  ev.kind = Event::Kind::option_reply;
  ev.option = option;
  ev.type = type;
  if (keep_read_data_) ev.data.assign(data.begin(), data.end());
  const bool error = rep::is_error(type);
  bool final_reply = error || type == rep::ack;
  if (error) {
    if (type == rep::err_unsup && sent == opt::go && extended_) return fail(out, "GO answered ERR_UNSUP after EXTENDED_HEADERS");
    if (sent == opt::set_meta) meta_ids_.clear();  // SET replaces the selection even on failure
  } else {
    switch (type) {
      case rep::ack:
        if ((sent == opt::info || sent == opt::go) && !current_->info_export_seen)
          return fail(out, "INFO/GO acknowledged without NBD_INFO_EXPORT");
        if (sent == opt::list_meta || sent == opt::set_meta || sent == opt::list || sent == opt::info ||
            sent == opt::go || sent == opt::abort || sent == opt::structured_reply ||
            sent == opt::extended_headers || sent == opt::starttls)
          break;
        return fail(out, std::string("ACK to ") + option_name(sent));
      case rep::server:
        if (sent != opt::list) return fail(out, "NBD_REP_SERVER outside LIST");
        if (data.size() < 4 || load32(data.data()) > data.size() - 4) return fail(out, "NBD_REP_SERVER: bad name length");
        break;
      case rep::info: {
        if (sent != opt::info && sent != opt::go) return fail(out, "NBD_REP_INFO outside INFO/GO");
        if (data.size() < 2) return fail(out, "NBD_REP_INFO too short");
        const std::uint16_t info = load16(data.data());
        if (info == 0) {
          if (data.size() != 12) return fail(out, "NBD_INFO_EXPORT length != 12");
          current_->info_export_seen = true;
          current_->size = load64(data.data() + 2);
          current_->eflags = load16(data.data() + 10);
          const std::uint16_t ef = current_->eflags;
          if (!(ef & eflag::has_flags)) return fail(out, "transmission flags without HAS_FLAGS");
          if ((ef & eflag::send_df) && !(structured_ || extended_)) return fail(out, "SEND_DF without structured replies");
          if ((ef & eflag::block_status_payload) && !extended_) return fail(out, "BLOCK_STATUS_PAYLOAD without extended headers");
          if ((ef & eflag::send_fast_zero) && !(ef & eflag::send_write_zeroes)) return fail(out, "SEND_FAST_ZERO without SEND_WRITE_ZEROES");
          if (ef & 0xe000) return fail(out, "unknown transmission flag");
        } else if (info == 3 && data.size() != 14) {
          return fail(out, "NBD_INFO_BLOCK_SIZE length != 14");
        }
        ev.size = current_->size;
        ev.eflags = current_->eflags;
        break;
      }
      case rep::meta_context: {
        if (sent != opt::list_meta && sent != opt::set_meta) return fail(out, "NBD_REP_META_CONTEXT outside *_META_CONTEXT");
        if (data.size() < 5) return fail(out, "NBD_REP_META_CONTEXT too short");
        const std::uint32_t id = load32(data.data());
        if (sent == opt::list_meta && id != 0) return fail(out, "LIST_META_CONTEXT reply with nonzero id");
        if (sent == opt::set_meta) {
          if (id == 0) return fail(out, "SET_META_CONTEXT reply with id 0");
          for (auto known : current_->meta_ids)
            if (known == id) return fail(out, "SET_META_CONTEXT: duplicate id");
          current_->meta_ids.push_back(id);
        }
        break;
      }
      default:
        return fail(out, "unknown option reply type " + std::to_string(type));
    }
  }
  ev.final_reply = final_reply;
  if (final_reply) {
    if (!error) {
      if (sent == opt::starttls) {
        // §3.10: everything negotiated before TLS is forgotten.
        structured_ = extended_ = structured_acked_ = false;
        meta_ids_.clear();
        meta_export_.clear();
        const std::size_t now = std::min(tls_hello_bytes_, src_size_ - pos_);
        pos_ += now;
        skip_ = tls_hello_bytes_ - now;
      }
      if (sent == opt::structured_reply) structured_ = structured_acked_ = true;
      if (sent == opt::extended_headers) extended_ = structured_ = true;
      if (sent == opt::set_meta) {
        meta_ids_ = current_->meta_ids;
        meta_export_ = name_in(option_data_.front());
      }
      if (sent == opt::go) {
        if (name_in(option_data_.front()) != meta_export_) meta_ids_.clear();
        eflags_ = current_->eflags;
        export_size_ = current_->size;
        state_ = State::transmission;
      }
    }
    options_.pop_front();
    option_data_.pop_front();
    current_.reset();
  }
  out.push_back(std::move(ev));
  return state_ != State::broken;
}

bool ServerStreamDecoder::cover(Pending& pend, std::uint64_t begin, std::uint64_t end, std::vector<Event>& out) {
  for (auto& [b, e] : pend.covered)
    if (begin < e && b < end) return fail(out, "overlapping content chunks");
  pend.covered.emplace_back(begin, end);
  return true;
}

bool ServerStreamDecoder::chunk(std::vector<Event>& out, std::uint64_t cookie, std::uint16_t flags, std::uint16_t type,
                                std::uint64_t offset_field, bool ext, std::span<const std::byte> pl,
                                std::uint64_t streamed) {
  Pending* found = find(cookie);
  if (!found) return fail(out, "chunk for unknown cookie (or after DONE, or for DISC)");
  Pending& pend = *found;
  const Request& rq = pend.req;
  if (flags & ~1u) return fail(out, "chunk with unnegotiated reply flag");
  if (ext && offset_field != rq.offset) return fail(out, "extended chunk offset field != request offset");
  if (pend.none_seen) return fail(out, "chunk after NONE");
  const bool done = (flags & 1) != 0;
  ++pend.chunks;
  const std::uint64_t rbeg = rq.offset, rend = rq.offset + rq.length;
  switch (type) {
    case 0:  // NONE
      if (!pl.empty()) return fail(out, "NONE chunk with payload");
      if (!done) return fail(out, "NONE chunk without DONE");
      pend.none_seen = true;
      break;
    case 1: {  // OFFSET_DATA
      if (rq.type != cmd::read) return fail(out, "OFFSET_DATA for a non-READ");
      if (pl.size() + streamed < 9) return fail(out, "OFFSET_DATA too short");
      const std::uint64_t off = load64(pl.data());
      const std::uint64_t n = pl.size() - 8 + streamed;
      if (off < rbeg || off > rend || n > rend - off) return fail(out, "OFFSET_DATA outside the request");
      if (!cover(pend, off, off + n, out)) return false;
      pend.runs.push_back(ReplyDone::Run{off - rbeg, n, pend.bytes.size(), false});
      ++pend.content_chunks;
      if (streamed != 0) {  // the data follows (State::read_data), then chunk_end
        data_slot_ = static_cast<std::size_t>(&pend - pending_.data());
        data_left_ = streamed;
        data_chunk_ = true;
        data_chunk_done_ = done;
        state_ = State::read_data;
        return true;
      }
      if (keep_read_data_) pend.bytes.insert(pend.bytes.end(), pl.begin() + 8, pl.end());
      break;
    }
    case 2: {  // OFFSET_HOLE
      if (rq.type != cmd::read) return fail(out, "OFFSET_HOLE for a non-READ");
      if (pl.size() != 12) return fail(out, "OFFSET_HOLE length != 12");
      const std::uint64_t off = load64(pl.data());
      const std::uint64_t n = load32(pl.data() + 8);
      if (n == 0) return fail(out, "OFFSET_HOLE of size 0");
      if (off < rbeg || off > rend || n > rend - off) return fail(out, "OFFSET_HOLE outside the request");
      if (!cover(pend, off, off + n, out)) return false;
      pend.runs.push_back(ReplyDone::Run{off - rbeg, n, 0, true});
      ++pend.content_chunks;
      break;
    }
    case 5:
    case 6: {  // BLOCK_STATUS / BLOCK_STATUS_EXT
      if (rq.type != cmd::block_status) return fail(out, "block status chunk for a non-BLOCK_STATUS");
      if ((type == 6) != ext) return fail(out, "block status chunk type does not match header style");
      const std::size_t head = ext ? 8 : 4, each = ext ? 16 : 8;
      if (pl.size() < head + each || (pl.size() - head) % each != 0) return fail(out, "block status chunk bad length");
      status_payload_max_ = std::max<std::uint64_t>(status_payload_max_, pl.size());
      const std::uint32_t id = load32(pl.data());
      if (std::find(meta_ids_.begin(), meta_ids_.end(), id) == meta_ids_.end()) return fail(out, "block status for an unselected context id");
      const std::size_t n = (pl.size() - head) / each;
      if (ext && load32(pl.data() + 4) != n) return fail(out, "BLOCK_STATUS_EXT descriptor count mismatch");
      if ((rq.flags & cflag::req_one) && n != 1) return fail(out, "REQ_ONE answered with several extents");
      std::uint64_t sum = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const std::byte* e = pl.data() + head + i * each;
        const std::uint64_t len = ext ? load64(e) : load32(e);
        const std::uint64_t status = ext ? load64(e + 8) : load32(e + 4);
        if (len == 0) return fail(out, "extent of length 0");
        if (status >> 32) return fail(out, "base:allocation status above 32 bits");
        if (i + 1 < n && sum + len >= rq.length && i + 1 < n) return fail(out, "extents continue past the requested length");
        sum += len;
      }
      if ((rq.flags & cflag::req_one) && sum > rq.length) return fail(out, "REQ_ONE extent longer than the request");
      ++pend.status_chunks;
      if (pend.status_chunks > meta_ids_.size()) return fail(out, "more status chunks than contexts");
      break;
    }
    default: {
      if (!(type & 0x8000)) return fail(out, "unknown non-error chunk type " + std::to_string(type));
      if (pl.size() < 6) return fail(out, "error chunk too short");
      const std::uint32_t error = load32(pl.data());
      const std::uint16_t mlen = load16(pl.data() + 4);
      if (error == 0) return fail(out, "error chunk with error 0");
      if (type == 0x8001) {
        if (pl.size() != 6u + mlen) return fail(out, "ERROR chunk length != 6 + message");
      } else if (type == 0x8002) {
        if (pl.size() != 14u + mlen) return fail(out, "ERROR_OFFSET chunk length != 14 + message");
        if (rq.type == cmd::flush || rq.type == cmd::disc) return fail(out, "ERROR_OFFSET for a command without a range");
        const std::uint64_t off = load64(pl.data() + 6 + mlen);
        if (off < rbeg || off >= rend) return fail(out, "ERROR_OFFSET outside the request");
        for (auto o : pend.error_offsets)
          if (o == off) return fail(out, "ERROR_OFFSET twice with one offset");
        pend.error_offsets.push_back(off);
      } else if (pl.size() < 6u + mlen) {
        return fail(out, "unknown error chunk: message runs past the payload");
      }
      if (!pend.any_error) pend.error = error;
      pend.any_error = true;
      break;
    }
  }
  return chunk_end(out, pend, done);
}

// What every chunk is judged by once it is all there (an OFFSET_DATA's data too).
bool ServerStreamDecoder::chunk_end(std::vector<Event>& out, Pending& pend, bool done) {
  const Request& rq = pend.req;
  if (rq.type == cmd::read && (rq.flags & cflag::df) && pend.content_chunks > 1)
    return fail(out, "DF read answered with several content chunks");
  if (!done) return true;
  if (!pend.any_error) {
    if (rq.type == cmd::read) {
      std::uint64_t total = 0;
      for (auto& [b, e] : pend.covered) total += e - b;
      if (total != rq.length) return fail(out, "successful READ reply does not cover the range");
    }
    if (rq.type == cmd::block_status && pend.status_chunks != meta_ids_.size())
      return fail(out, "successful BLOCK_STATUS without one chunk per context");
  }
  return complete(out, pend);
}

bool ServerStreamDecoder::complete(std::vector<Event>& out, Pending& pend) {
  Event& ev = out.emplace_back();
  ev.kind = Event::Kind::reply_done;
  ev.reply.request.flags = pend.req.flags;
  ev.reply.request.type = pend.req.type;
  ev.reply.request.cookie = pend.req.cookie;
  ev.reply.request.offset = pend.req.offset;
  ev.reply.request.length = pend.req.length;
  ev.reply.error = pend.error;
  ev.reply.chunks = pend.chunks;
  if (pend.error == 0) {
    ev.reply.runs = pend.runs;
    ev.reply.bytes = pend.bytes;
  }
  // Free at the next feed(): the spans stay valid until then.
  slot_[static_cast<std::size_t>(&pend - pending_.data())].state = SlotState::done;
  --outstanding_;
  return true;
}

}  // namespace nbdd::sim::wire
