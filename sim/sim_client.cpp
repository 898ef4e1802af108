#include "sim/sim_client.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/wire.hpp"
#include "sim/world.hpp"

namespace nbdd::sim {

using namespace wire;

SimClient::SimClient(World& world, std::uint32_t index, Prng prng, const FaultProfile& profile, bool scripted,
                     Style style)
    : world_(world), index_(index), prng_(prng), profile_(profile), scripted_(scripted), style_(style) {
  lazy_ = !scripted_ && prng_.chance(profile_.client_lazy);
  // The simulated TLS layer answers an accepted STARTTLS with its hello: not NBD bytes.
  if (profile_.tls != core::TlsMode::off) dec_.set_tls_hello_bytes(sim_tls_hello_bytes);
  dec_.keep_read_data(false);  // the client acts on each reply's cookie and error only
}

void SimClient::start() {
  world_.trace().record(world_.now(), 0, "cli", "client " + std::to_string(index_) + " connects" + (lazy_ ? " (lazy)" : ""));
  world_.connect(*this);
}

void SimClient::refused() {
  done_ = true;
  world_.marks().hit("client_refused");
}

void SimClient::write(std::span<const std::byte> bytes) {
  if (!to_server_ || write_closed_ || done_) return;
  to_server_->write(bytes);
}

void SimClient::vanish(bool reset) {
  if (done_ || !to_server_) return;
  world_.trace().record(world_.now(), 0, "cli", "client " + std::to_string(index_) + (reset ? " resets" : " half-closes"));
  world_.marks().hit(reset ? "client_reset" : "client_half_close");
  quiet_ = true;
  write_closed_ = true;
  if (reset) {
    to_server_->reset();
    done_ = true;
  } else {
    to_server_->close();
  }
}

// ---- handshake ---------------------------------------------------------------------------

std::vector<std::byte> SimClient::info_data(const std::string& name, bool go) {
  std::vector<std::byte> d;
  d.reserve(4 + name.size() + 2 + 2 * 5);  // one allocation, not one per doubling
  put32(d, static_cast<std::uint32_t>(name.size()));
  put_bytes(d, name);
  std::vector<std::uint16_t> infos;
  if (!scripted_) {
    for (std::uint16_t t : {std::uint16_t{1}, std::uint16_t{2}, std::uint16_t{3}})
      if (prng_.coin()) infos.push_back(t);
    if (prng_.below(8) == 0) infos.push_back(0);
    if (!go && prng_.below(10) == 0) infos.push_back(77);  // unknown: must be ignored
  }
  put16(d, static_cast<std::uint16_t>(infos.size()));
  for (auto t : infos) put16(d, t);
  return d;
}

std::vector<std::byte> SimClient::meta_data(const std::string& name, const std::vector<std::string>& queries) {
  std::vector<std::byte> d;
  std::size_t bytes = 4 + name.size() + 4;
  for (const auto& q : queries) bytes += 4 + q.size();
  d.reserve(bytes);
  put32(d, static_cast<std::uint32_t>(name.size()));
  put_bytes(d, name);
  put32(d, static_cast<std::uint32_t>(queries.size()));
  for (const auto& q : queries) {
    put32(d, static_cast<std::uint32_t>(q.size()));
    put_bytes(d, q);
  }
  return d;
}

// "" (the default export), one of the plugin's names, or (client_odd_name) one it refuses.
std::string SimClient::pick_name() {
  if (prng_.chance(profile_.client_odd_name)) {
    world_.marks().hit("client_asked_unknown_name");
    return prng_.coin() ? "nope" : "disk" + std::to_string(profile_.exports + prng_.below(3));
  }
  const std::uint64_t which = prng_.below(profile_.exports + 1);
  return which == 0 ? std::string() : "disk" + std::to_string(which - 1);
}

void SimClient::plan_handshake() {
  plan_.clear();
  plan_.reserve(12);
  if (scripted_) {
    export_name_ = "";
    if (script_list_) plan_.push_back({opt::list, {}});
    if (script_info_) plan_.push_back({opt::info, info_data(export_name_, false)});
    if (style_ == Style::extended) plan_.push_back({opt::extended_headers, {}});
    if (style_ == Style::structured) plan_.push_back({opt::structured_reply, {}});
    if (style_ != Style::simple) plan_.push_back({opt::set_meta, meta_data(export_name_, {"base:allocation"})});
    plan_.push_back({opt::go, info_data(export_name_, true)});
    return;
  }
  export_name_ = pick_name();
  // Special cases are drawn as non-zero values, so a ChoiceTape's zeros give a plain GO.
  if (prng_.below(3) == 1) plan_.push_back({opt::list, {}});
  if (prng_.below(3) == 1) {
    plan_.push_back({opt::info, info_data(prng_.below(6) == 1 ? pick_name() : export_name_, false)});
    if (prng_.below(4) == 1) plan_.push_back({opt::list, {}});  // LIST between INFO and GO
  }
  const bool ext = prng_.below(3) == 1, sr = prng_.coin();
  if (ext && sr && prng_.coin()) {
    plan_.push_back({opt::structured_reply, {}});
    plan_.push_back({opt::extended_headers, {}});
  } else {
    if (ext) plan_.push_back({opt::extended_headers, {}});
    if (sr) plan_.push_back({opt::structured_reply, {}});
  }
  if (prng_.below(4) == 1) plan_.push_back({opt::list_meta, meta_data(export_name_, prng_.coin() ? std::vector<std::string>{} : std::vector<std::string>{"base:"})});
  if ((ext || sr || prng_.below(6) == 0) && prng_.below(4) != 0) {
    std::vector<std::string> q{"base:allocation"};
    if (prng_.below(4) == 0) q.insert(q.begin(), "x-nbdd-sim:nothing");
    plan_.push_back({opt::set_meta, meta_data(export_name_, q)});
  }
  if (prng_.below(8) == 1) {
    std::vector<std::byte> junk(prng_.below(40), std::byte{0x5a});
    plan_.push_back({prng_.coin() ? 42u : 4u, junk});  // unknown / withdrawn: ERR_UNSUP
  }
  if (profile_.client_big_option.numerator != 0 && profile_.option_data_bytes_max <= 4096 &&
      prng_.chance(profile_.client_big_option)) {
    // Exactly the option limit (answered as usual), or longer: read and discarded, then
    // NBD_REP_ERR_TOO_BIG (ERR_SHUTDOWN once shutting down).
    // One to four of them, so that one is often still being read when shutdown comes.
    static constexpr std::uint32_t options[] = {42u, opt::list, opt::info, opt::set_meta};
    for (auto n = prng_.range_inclusive(1, 4); n > 0; --n) {
      // Longer ones take a while to discard: a window for shutdown to arrive meanwhile.
      const std::uint32_t over =
          prng_.coin() ? 0 : static_cast<std::uint32_t>(prng_.range_inclusive(1, 4ull * profile_.option_data_bytes_max));
      std::vector<std::byte> junk(profile_.option_data_bytes_max + over, std::byte{0x5b});
      // An oversized SET_META_CONTEXT too: it must drop the selection (sim/FINDINGS.md S22-1).
      const std::uint32_t option = options[prng_.below(4)];
      plan_.push_back({option, std::move(junk)});
      world_.marks().hit(over ? "client_option_over_limit" : "client_option_at_limit");
    }
  }
  if (profile_.tls != core::TlsMode::off) {
    // A TLS server: STARTTLS first, as clients that need TLS should (§11), or later, or
    // never (then --tls=require refuses every option).
    if (!prng_.chance(profile_.client_no_starttls)) {
      const auto at = prng_.below(4) == 1 ? prng_.below(plan_.size() + 1) : 0;
      plan_.insert(plan_.begin() + static_cast<std::ptrdiff_t>(at), std::make_pair(opt::starttls, std::vector<std::byte>{}));
      if (prng_.below(10) == 1) plan_.push_back({opt::starttls, {}});  // a second one: ERR_INVALID
    }
  } else if (prng_.below(12) == 1) {
    plan_.push_back({opt::starttls, {}});
  }
  if (prng_.below(12) == 1) plan_.push_back({opt::structured_reply, {}});  // repeated
  // the final option
  const std::uint64_t fin = prng_.below(20);
  if (fin == 19)
    plan_.push_back({opt::abort, {}});
  else if (fin >= 15 && !ext) {
    std::vector<std::byte> name;
    put_bytes(name, export_name_);
    plan_.push_back({opt::export_name, name});
  } else {
    plan_.push_back({opt::go, info_data(export_name_, true)});
  }
}

void SimClient::send_option(std::uint32_t option, std::span<const std::byte> data) {
  current_option_ = option;
  dec_.option_sent(option, data);
  // Encoded in place in the pipe's buffer (as encode_option would); after ABORT the server
  // answers ACK and closes; we half-close on the ACK.
  if (!to_server_ || write_closed_ || done_) return;
  std::byte* at = to_server_->begin_write(16 + data.size());
  if (!at) return;
  encode_option_header(at, option, data.size());
  if (!data.empty()) std::memcpy(at + 16, data.data(), data.size());
  to_server_->end_write(16 + data.size());
}

void SimClient::next_option() {
  if (quiet_ || done_) return;
  if (plan_pos_ >= plan_.size()) {
    send_option(opt::abort, {});
    return;
  }
  auto [option, data] = std::move(plan_[plan_pos_++]);
  if (!scripted_ && prng_.chance(profile_.client_mid_request_vanish)) {
    auto bytes = encode_option(option, data);
    write(std::span(bytes).first(prng_.below(bytes.size())));
    world_.marks().hit("client_vanished_mid_option");
    vanish(prng_.coin());
    return;
  }
  send_option(option, std::move(data));
}

void SimClient::on_option_reply(const ServerStreamDecoder::Event& ev) {
  if (!ev.final_reply) return;
  if (ev.type == rep::err_shutdown) {
    world_.marks().hit("client_saw_err_shutdown");
    if (lazy_) {
      quiet_ = true;  // a lazy client never ends by itself
      return;
    }
    if (ev.option != opt::abort) send_option(opt::abort, {});
    return;
  }
  if (ev.option == opt::abort) {
    vanish(false);
    return;
  }
  if (ev.option == opt::starttls && ev.type == rep::ack) {
    // Our TLS hello (the decoder drops the server's); a wrong one is a failed handshake.
    // The next option follows it at once and waits in the socket until TLS is up.
    std::array<std::byte, sim_tls_hello_bytes> hello;
    std::copy_n(sim_tls_client_hello, sim_tls_hello_bytes, hello.begin());
    if (prng_.chance(profile_.client_bad_tls)) hello[3] = std::byte{'X'};
    world_.marks().hit("client_tls_hello");
    write(hello);
  }
  if (ev.option == opt::go) {
    if (ev.type == rep::ack) {
      enter_transmission();
      return;
    }
    if (!go_retry_used_ && !scripted_) {  // try once more, plainly: the default export
      go_retry_used_ = true;
      if (ev.type == rep::err_unknown) export_name_.clear();
      const auto go = info_data(export_name_, true);
      send_option(opt::go, go);
      return;
    }
    send_option(opt::abort, {});
    return;
  }
  next_option();
}

void SimClient::on_bytes(std::span<const std::byte> bytes) {
  if (done_) return;
  auto& evs = events_;  // reused: on_bytes is never re-entered
  evs.clear();
  dec_.feed(bytes, evs);
  for (auto& ev : evs) {
    switch (ev.kind) {
      case ServerStreamDecoder::Event::Kind::greeting: {
        std::uint32_t flags = 1;
        if ((ev.option & 2) && prng_.coin()) flags |= 2;
        dec_.client_flags(flags);
        std::array<std::byte, 4> out;
        core::wire::store_u32(out.data(), flags);
        write(out);
        plan_handshake();
        next_option();
        break;
      }
      case ServerStreamDecoder::Event::Kind::option_reply:
        on_option_reply(ev);
        break;
      case ServerStreamDecoder::Event::Kind::export_block:
        enter_transmission();
        break;
      case ServerStreamDecoder::Event::Kind::reply_done: {
        if (outstanding_ > 0) --outstanding_;
        if (reply_before_request_arrived(ev.reply.request.cookie)) {
          world_.client_failure(index_,
                                "reply to cookie " + std::to_string(ev.reply.request.cookie) +
                                    " arrived before the request's last payload byte reached the server "
                                    "(libnbd: no matching cookie, the server is broken)",
                                "INV-NO-REPLY-BEFORE-PAYLOAD");
          vanish(true);  // libnbd drops the connection with every request in flight
          return;
        }
        if (ev.reply.error == err::eshutdown) {
          world_.marks().hit("client_saw_eshutdown");
          if (lazy_) {
            quiet_ = true;
          } else if (!disc_sent_) {
            send_disc();
          }
        }
        schedule_next();
        break;
      }
      case ServerStreamDecoder::Event::Kind::error:
        world_.client_failure(index_, "client parser: " + ev.error);
        done_ = true;
        return;
    }
  }
}

void SimClient::on_end(bool reset) {
  if (done_) return;
  done_ = true;
  world_.marks().hit(reset ? "client_saw_reset" : "client_saw_eof");
  if (dec_.mid_frame()) world_.marks().hit("client_saw_truncated_frame");
  if (!write_closed_ && to_server_) {
    write_closed_ = true;
    to_server_->close();
  }
}

// ---- transmission ------------------------------------------------------------------------

void SimClient::enter_transmission() {
  world_.marks().hit("client_in_transmission");
  if (scripted_) return;
  schedule_next();
}

void SimClient::schedule_next() {
  if (scripted_ || act_scheduled_ || quiet_ || done_ || disc_sent_ || !dec_.in_transmission()) return;
  act_scheduled_ = true;
  world_.queue().at(world_.now() + core::Duration{prng_.range_inclusive(0, profile_.think_max_ns)}, [this] {
    act_scheduled_ = false;
    act();
  });
}

void SimClient::act() {
  if (quiet_ || done_ || disc_sent_) return;
  if (world_.faults_active() && prng_.chance(profile_.client_vanish)) {
    vanish(prng_.coin());
    return;
  }
  if (requests_sent_ >= profile_.requests_max || (world_.faults_active() && prng_.chance(profile_.client_early_disc))) {
    if (outstanding_ == 0 || prng_.chance(profile_.client_early_disc)) {
      if (!lazy_) send_disc();
      else quiet_ = true;
    }
    return;
  }
  if (outstanding_ >= profile_.pipeline_max) return;  // a reply will reschedule
  send_random_request();
  schedule_next();
}

void SimClient::send_random_request() {
  const std::uint16_t ef = dec_.eflags();
  const std::uint64_t size = dec_.export_size();
  const bool ro = ef & eflag::read_only;
  std::uint16_t cmds[12];
  std::size_t ncmds = 0;
  cmds[ncmds++] = cmd::read;
  cmds[ncmds++] = cmd::read;
  if (!ro)
    for (int i = 0; i < 3; ++i) cmds[ncmds++] = cmd::write;
  if (ef & eflag::send_flush) cmds[ncmds++] = cmd::flush;
  if (!ro && (ef & eflag::send_trim)) cmds[ncmds++] = cmd::trim;
  if (!ro && (ef & eflag::send_write_zeroes)) cmds[ncmds++] = cmd::write_zeroes;
  if (ef & eflag::send_cache) cmds[ncmds++] = cmd::cache;
  if (dec_.meta_selected()) cmds[ncmds++] = cmd::block_status;
  Request rq;
  rq.type = cmds[prng_.below(ncmds)];
  rq.cookie = (static_cast<std::uint64_t>(index_) << 32) | next_cookie_++;
  if (rq.type != cmd::flush && size > 0) {
    std::uint64_t len = prng_.coin() ? 512 * prng_.range_inclusive(1, 8) : prng_.range_inclusive(1, 4096);
    len = std::min(len, size);
    std::uint64_t off = prng_.below(size - len + 1);
    if (prng_.coin()) off -= off % 512;
    rq.offset = off;
    rq.length = len;
  }
  if ((ef & eflag::send_fua) && prng_.below(4) == 0) rq.flags |= cflag::fua;
  if (rq.type == cmd::read && (ef & eflag::send_df) && prng_.below(3) == 0) rq.flags |= cflag::df;
  if (rq.type == cmd::write_zeroes && prng_.coin()) rq.flags |= cflag::no_hole;
  if (rq.type == cmd::write_zeroes && (ef & eflag::send_fast_zero) && prng_.below(3) == 0) rq.flags |= cflag::fast_zero;
  if (rq.type == cmd::block_status && prng_.coin()) rq.flags |= cflag::req_one;
  if (rq.type != cmd::flush && profile_.client_boundary.numerator != 0 && prng_.chance(profile_.client_boundary))
    boundary_request(rq, size);
  if (prng_.chance(profile_.client_bad_request)) {
    world_.marks().hit("client_bad_request");
    switch (prng_.below(4)) {
      case 0: rq.offset = size + 512 * prng_.range_inclusive(0, 4); break;  // out of range
      case 1: rq.flags |= 0x0080; break;                                      // an undefined flag
      case 2: {
        // a command the server did not offer (a write to a read-only export among them)
        static constexpr std::uint16_t types[] = {cmd::write, cmd::trim, cmd::write_zeroes, cmd::cache,
                                                  cmd::block_status};
        rq.type = types[prng_.below(5)];
        break;
      }
      default: {
        // a flag the server did not offer (or that does not apply to this command)
        static constexpr std::uint16_t flags[] = {cflag::fua, cflag::df, cflag::fast_zero, cflag::req_one,
                                                  cflag::no_hole};
        rq.flags |= flags[prng_.below(5)];
      }
    }
  }
  if (rq.type == cmd::write && dec_.extended()) rq.flags |= cflag::payload_len;
  send_request(rq, rq.type == cmd::write ? rq.length : 0);
}

bool SimClient::reply_before_request_arrived(std::uint64_t cookie) {
  for (auto it = payload_ends_.begin(); it != payload_ends_.end(); ++it) {
    if (it->first != cookie) continue;
    const bool early = to_server_ && it->second > to_server_->bytes_delivered();
    payload_ends_.erase(it);
    return early;
  }
  return false;
}

// The edges of what the server must accept: a request ending exactly at the export's end,
// zero length (also at the end, and BLOCK_STATUS's, which is invalid), the largest allowed
// length, and one byte more (READ: refused; compact WRITE: payload read and discarded).
void SimClient::boundary_request(Request& rq, std::uint64_t size) {
  const bool data = rq.type == cmd::read || rq.type == cmd::write;
  const std::uint64_t largest = std::min<std::uint64_t>(size, profile_.request_bytes_max);
  switch (prng_.range_inclusive(1, 5)) {
    case 1:
      if (rq.length > size) rq.length = size;
      rq.offset = size - rq.length;
      world_.marks().hit("client_request_at_export_end");
      break;
    case 2:
      rq.length = 0;
      world_.marks().hit("client_zero_length_request");
      break;
    case 3:
      rq.offset = size;
      rq.length = 0;
      world_.marks().hit("client_zero_length_at_export_end");
      break;
    case 4:
      rq.length = data ? largest : size;
      rq.offset = prng_.coin() ? 0 : size - rq.length;
      world_.marks().hit("client_largest_request");
      break;
    default:
      // Over the limit; not with extended headers (an oversized PAYLOAD_LEN is a hard
      // disconnect) and only where the limit is small enough to be cheap.
      if (data && profile_.request_bytes_max <= 65536 && !(rq.type == cmd::write && dec_.extended())) {
        rq.length = std::uint64_t{profile_.request_bytes_max} + 1;
        rq.offset = 0;
        world_.marks().hit("client_request_over_limit");
      }
      break;
  }
}

// The header and `payload_bytes` random bytes (a WRITE's data), produced straight into the
// pipe's buffer (Pipe::begin_write): no allocation and no staging copy per request. A client
// that vanishes in the middle stages the request in out_ to send a prefix of it.
void SimClient::send_request(const Request& rq, std::uint64_t payload_bytes) {
  ++requests_sent_;
  world_.note_request();
  ++outstanding_;
  dec_.request_sent(rq);
  const bool extended = dec_.extended();
  const std::size_t header = request_header_bytes(extended);
  const std::size_t total = header + payload_bytes;
  if (!scripted_ && world_.faults_active() && prng_.chance(profile_.client_mid_request_vanish)) {
    std::vector<std::byte>& bytes = out_;
    bytes.resize(total);
    encode_request_header(bytes.data(), rq, extended);
    if (payload_bytes != 0) prng_.fill(std::span(bytes).subspan(header));
    write(std::span(bytes).first(prng_.below(bytes.size())));
    world_.marks().hit(rq.type == cmd::write && bytes.size() > 40 ? "client_vanished_mid_write" : "client_vanished_mid_request");
    vanish(prng_.coin());
    return;
  }
  if (!to_server_ || write_closed_ || done_) return;
  std::byte* at = to_server_->begin_write(total);
  if (!at) return;
  encode_request_header(at, rq, extended);
  if (payload_bytes != 0) prng_.fill(std::span(at + header, payload_bytes));
  to_server_->end_write(total);
  if (payload_bytes != 0) payload_ends_.emplace_back(rq.cookie, to_server_->bytes_written());
}

void SimClient::send_disc() {
  if (disc_sent_ || done_ || write_closed_) return;
  disc_sent_ = true;
  Request rq;
  rq.type = cmd::disc;
  rq.cookie = (static_cast<std::uint64_t>(index_) << 32) | next_cookie_++;
  dec_.request_sent(rq);
  write(encode_request(rq, dec_.extended()));
  world_.marks().hit(outstanding_ ? "client_disc_with_inflight" : "client_disc_idle");
  write_closed_ = true;  // a client sends nothing after DISC; half-close, keep reading
  to_server_->close();
}

bool SimClient::send_command(std::uint16_t type, std::uint64_t offset, std::uint32_t length, std::uint16_t flags) {
  if (done_ || write_closed_ || !dec_.in_transmission()) return false;
  if (type == cmd::disc) {
    send_disc();
    return true;
  }
  Request rq;
  rq.type = type;
  rq.flags = flags;
  rq.cookie = (static_cast<std::uint64_t>(index_) << 32) | next_cookie_++;
  rq.offset = offset;
  rq.length = length;
  if (type == cmd::write && dec_.extended()) rq.flags |= cflag::payload_len;
  send_request(rq, type == cmd::write ? length : 0);
  return true;
}

}  // namespace nbdd::sim
