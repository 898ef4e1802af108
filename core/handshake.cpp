// Fixed-newstyle option negotiation (spec §3). Every option gets its final reply before
// the next is read; failures are option error replies and negotiation continues, except
// where the spec calls for a hard disconnect (bad IHAVEOPT, EXPORT_NAME failures, DoS).
// LIST, INFO, GO and EXPORT_NAME ask the plugin (lifecycle.cpp) and are answered when
// its call returns; nothing about exports is known ahead of time.
// TLS (§11): STARTTLS is acknowledged, then action::StartTls hands the transport to the
// driver's TLS layer and input::TlsDone says how it ended; everything negotiated before is
// forgotten. With TlsMode::require, on_option_before_tls is the one gate every option
// passes until TLS is up.
#include <cerrno>

#include "core/assert.hpp"
#include "core/connection_impl.hpp"
#include "core/option_parser.hpp"
#include "core/wire.hpp"

namespace nbdd::core {
namespace {

std::string_view as_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void put_u16(std::vector<std::byte>& out, std::uint16_t v) {
  const std::size_t at = out.size();
  out.resize(at + 2);
  wire::store_u16(out.data() + at, v);
}
void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  const std::size_t at = out.size();
  out.resize(at + 4);
  wire::store_u32(out.data() + at, v);
}
void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  const std::size_t at = out.size();
  out.resize(at + 8);
  wire::store_u64(out.data() + at, v);
}
void put_string(std::vector<std::byte>& out, std::string_view s) {
  const auto b = as_bytes(s);
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace

void Connection::Impl::on_client_flags(std::span<const std::byte> data) {
  const std::uint32_t flags = wire::load_u32(data.data());
  consume(4);
  // Spec §3.2: unknown client flags, or flags the server did not offer (--mask-handshake),
  // MUST make the server close. Clients without FIXED_NEWSTYLE (pre-2013) are served like
  // fixed ones. (The client flag bits are the greeting's bits.)
  if (flags & ~static_cast<std::uint32_t>(offered_handshake_flags())) {
    abort(EndReason::protocol_violation);
    return;
  }
  no_zeroes_ = (flags & nbd::flag_c_no_zeroes) != 0;
  reader_ = Reader::option_header;
}

void Connection::Impl::on_option_header(std::span<const std::byte> data) {
  const std::uint64_t magic = wire::load_u64(data.data());
  option_ = wire::load_u32(data.data() + 8);
  option_len_ = wire::load_u32(data.data() + 12);
  consume(nbd::option_header_bytes);
  if (magic != nbd::opts_magic || ++stats_.options > limits_.options_per_handshake_max) {
    abort(EndReason::protocol_violation);  // framing lost, or a DoS
    return;
  }
  if (option_len_ <= limits_.option_data_bytes_max) {
    reader_ = Reader::option_data;
    return;
  }
  if (option_len_ > limits_.option_discard_bytes_max || option_ == static_cast<std::uint32_t>(nbd::Opt::export_name)) {
    // EXPORT_NAME cannot be answered with an error: an overlong name is a hard disconnect.
    abort(option_ == static_cast<std::uint32_t>(nbd::Opt::export_name) ? EndReason::export_name_failed
                                                                       : EndReason::protocol_violation);
    return;
  }
  discard_left_ = option_len_;
  reader_ = Reader::option_discard;
}

void Connection::Impl::option_reply(nbd::Rep type, std::span<const std::byte> data) {
  append_option_reply(handshake_buffer(), option_, type, data);
  emit_handshake_buffer();
}

void Connection::Impl::option_error(nbd::Rep type, std::string_view message) {
  option_reply(type, as_bytes(message));
}

void Connection::Impl::on_option(std::span<const std::byte> data) {
  if (status_ == Status::draining) {
    on_option_while_draining(data);
    return;
  }
  if (tls_required_now()) {
    on_option_before_tls(data);
    return;
  }
  switch (static_cast<nbd::Opt>(option_)) {
    case nbd::Opt::export_name: handle_export_name(data); return;
    case nbd::Opt::abort:
      // Soft disconnect: ACK (the client may not read it), then close.
      option_reply(nbd::Rep::ack);
      begin_closing(EndReason::client_abort);
      return;
    case nbd::Opt::list: handle_list(data); return;
    case nbd::Opt::starttls: handle_starttls(data); return;
    case nbd::Opt::info: handle_info_or_go(data, false); return;
    case nbd::Opt::go: handle_info_or_go(data, true); return;
    case nbd::Opt::structured_reply:
    case nbd::Opt::extended_headers: handle_flag_option(data); return;
    case nbd::Opt::list_meta_context: handle_meta_context(data, false); return;
    case nbd::Opt::set_meta_context: handle_meta_context(data, true); return;
    default: option_error(nbd::Rep::err_unsup, "unknown option"); return;
  }
}

// Spec §3.11: every option but ABORT gets ERR_SHUTDOWN; EXPORT_NAME cannot, so it ends.
void Connection::Impl::on_option_while_draining(std::span<const std::byte>) {
  switch (static_cast<nbd::Opt>(option_)) {
    case nbd::Opt::abort:
      option_reply(nbd::Rep::ack);
      begin_closing(EndReason::client_abort);
      return;
    case nbd::Opt::export_name: abort(EndReason::export_name_failed); return;
    default: refuse_shutting_down(); return;
  }
}

// FORCEDTLS before TLS: nothing about exports leaves the server (§11).
void Connection::Impl::on_option_before_tls(std::span<const std::byte> data) {
  switch (static_cast<nbd::Opt>(option_)) {
    case nbd::Opt::abort:
      option_reply(nbd::Rep::ack);
      begin_closing(EndReason::client_abort);
      return;
    case nbd::Opt::starttls: handle_starttls(data); return;
    case nbd::Opt::export_name: abort(EndReason::tls_required); return;  // cannot be refused
    default: option_error(nbd::Rep::err_tls_reqd, "TLS is required"); return;
  }
}

void Connection::Impl::handle_starttls(std::span<const std::byte> data) {
  if (config_.tls == TlsMode::off) {
    if (!data.empty()) return option_error(nbd::Rep::err_invalid, "STARTTLS takes no data");
    return option_error(nbd::Rep::err_policy, "TLS is not configured on this server");
  }
  if (!data.empty()) return option_error(nbd::Rep::err_invalid, "STARTTLS takes no data");
  if (tls_up_) return option_error(nbd::Rep::err_invalid, "TLS is already on");
  option_reply(nbd::Rep::ack);
  // Bytes after this option that were already read belong to the TLS handshake (a client
  // should wait for the ACK, but may not): the driver's TLS layer takes them first. They
  // stay staged, untouched, until TlsDone (nothing is read meanwhile).
  const std::size_t rest = staged() - option_len_;
  reader_ = Reader::awaiting_tls;
  emit(action::StartTls{std::span<const std::byte>(stage_.get() + stage_begin_ + option_len_, rest)});
}

void Connection::Impl::on_tls_done(bool ok) {
  if (reader_ != Reader::awaiting_tls) return;  // closed meanwhile: the driver ended it
  if (!ok) {
    abort(EndReason::tls_failed);  // plain text is impossible now: close, nothing sent
    return;
  }
  consume(staged());  // the early bytes went to TLS
  tls_up_ = true;
  // §3.10: everything negotiated before TLS is forgotten (the client flags are not options).
  structured_ = false;
  extended_ = false;
  meta_selected_ = false;
  meta_export_.clear();
  reader_ = Reader::option_header;
}

void Connection::Impl::refuse_shutting_down() { option_error(nbd::Rep::err_shutdown, "server is shutting down"); }

void Connection::Impl::handle_flag_option(std::span<const std::byte> data) {
  const bool ext = static_cast<nbd::Opt>(option_) == nbd::Opt::extended_headers;
  if (!config_.structured_replies)  // --no-sr: ERR_UNSUP, as nbdkit (qemu 4.2 wants that one)
    return option_error(nbd::Rep::err_unsup, "structured replies are disabled on this server");
  if (!data.empty()) return option_error(nbd::Rep::err_invalid, "option takes no data");
  if (!ext && extended_) return option_error(nbd::Rep::err_ext_header_reqd, "extended headers already on");
  if ((ext && extended_) || (!ext && structured_))
    return option_error(nbd::Rep::err_invalid, "option already negotiated");
  if (ext)
    extended_ = true;
  else
    structured_ = true;
  option_reply(nbd::Rep::ack);
}

void Connection::Impl::handle_export_name(std::span<const std::byte> data) {
  const std::string_view name = as_string(data);
  if (!valid_nbd_string(name, limits_) || extended_) {  // extended clients MUST NOT use EXPORT_NAME
    abort(EndReason::export_name_failed);
    return;
  }
  requested_name_.assign(name);
  pending_ = PendingOption{nbd::Opt::export_name};
  start_lifecycle(CallKind::open);
}

void Connection::Impl::handle_list(std::span<const std::byte> data) {
  if (!data.empty()) return option_error(nbd::Rep::err_invalid, "LIST takes no data");
  pending_ = PendingOption{nbd::Opt::list};
  start_lifecycle(CallKind::list_exports);
}

// One SERVER reply per export the plugin listed, then ACK. Names that are not valid NBD
// strings cannot be sent and are skipped; a description is cut to the string bound.
void Connection::Impl::send_list() {
  std::vector<std::byte>& out = handshake_buffer();
  std::uint32_t sent = 0;
  for (const ExportEntry& e : listing_) {
    if (sent == limits_.exports_listed_max) break;
    if (!valid_nbd_string(e.name, limits_)) continue;
    std::string_view description = e.description;
    if (description.size() > limits_.string_bytes_max) description = description.substr(0, limits_.string_bytes_max);
    if (description.find('\0') != std::string_view::npos) description = {};
    const std::size_t at = start_option_reply(out, option_, nbd::Rep::server);
    put_u32(out, static_cast<std::uint32_t>(e.name.size()));
    put_string(out, e.name);
    put_string(out, description);  // libnbd reads the rest as the description
    finish_option_reply(out, at);
    ++sent;
  }
  append_option_reply(out, option_, nbd::Rep::ack);
  listing_.clear();
  emit_handshake_buffer();
}

std::uint16_t Connection::Impl::export_flags() const {
  return transmission_flags(export_, config_.read_only, structured_, extended_);
}

void Connection::Impl::append_info_replies(std::vector<std::byte>& out) const {
  const ExportInfo& info = export_;
  std::size_t at = start_option_reply(out, option_, nbd::Rep::info);
  put_u16(out, static_cast<std::uint16_t>(nbd::Info::export_));
  put_u64(out, info.size_bytes);
  put_u16(out, export_flags());
  finish_option_reply(out, at);
  // The plugin's strings are sent only when they are valid NBD strings.
  if (pending_.wants_name && valid_nbd_string(info.name, limits_)) {
    at = start_option_reply(out, option_, nbd::Rep::info);
    put_u16(out, static_cast<std::uint16_t>(nbd::Info::name));
    put_string(out, info.name);
    finish_option_reply(out, at);
  }
  if (pending_.wants_description && !info.description.empty() && valid_nbd_string(info.description, limits_)) {
    at = start_option_reply(out, option_, nbd::Rep::info);
    put_u16(out, static_cast<std::uint16_t>(nbd::Info::description));
    put_string(out, info.description);
    finish_option_reply(out, at);
  }
  if (info.block_size.advertised()) {  // sent whether asked or not, as nbdkit does
    at = start_option_reply(out, option_, nbd::Rep::info);
    put_u16(out, static_cast<std::uint16_t>(nbd::Info::block_size));
    put_u32(out, info.block_size.minimum);
    put_u32(out, info.block_size.preferred);
    put_u32(out, info.block_size.maximum);
    finish_option_reply(out, at);
  }
}

void Connection::Impl::handle_info_or_go(std::span<const std::byte> data, bool go) {
  InfoRequest req;
  if (!parse_info_request(data, limits_, req)) return option_error(nbd::Rep::err_invalid, "malformed request");
  requested_name_.assign(req.export_name);
  pending_ = PendingOption{go ? nbd::Opt::go : nbd::Opt::info, req.wants_name, req.wants_description,
                           req.wants_block_size};
  start_lifecycle(CallKind::open);
}

void Connection::Impl::handle_meta_context(std::span<const std::byte> data, bool set) {
  if (set) meta_selected_ = false;  // SET replaces the selection even when it fails
  if (!structured_ && !extended_)
    return option_error(nbd::Rep::err_invalid, "negotiate structured replies first");
  MetaContextRequest req;
  if (!parse_meta_context_request(data, limits_, req))
    return option_error(nbd::Rep::err_invalid, "malformed request");
  // As nbdkit, the name is not checked here (only open can tell); GO keeps a selection
  // only when it names the same export (§8.2).
  const std::string_view base = nbd::base_allocation;
  bool match = !set && req.queries.empty();  // LIST with no query lists everything
  for (std::string_view q : req.queries) {
    if (q == base || (!set && q == "base:")) match = true;  // "base:" is a LIST wildcard only
  }
  if (match) {
    std::vector<std::byte>& out = handshake_buffer();
    const std::size_t at = start_option_reply(out, option_, nbd::Rep::meta_context);
    put_u32(out, set ? nbd::base_allocation_id : 0);  // LIST replies carry id 0
    put_string(out, base);
    finish_option_reply(out, at);
    emit_handshake_buffer();
  }
  if (set && match) {
    meta_selected_ = true;
    meta_export_.assign(req.export_name);
  }
  option_reply(nbd::Rep::ack);
}

// ---- answering from the opened export -----------------------------------------------------

// The open call succeeded (and no shutdown came): answer INFO and close again, refuse a
// GO that ignores the block size the plugin requires, or serve the export.
void Connection::Impl::answer_opened() {
  if (pending_.option == nbd::Opt::export_name) {
    emit_handshake_bytes(encode_export_name_reply(export_.size_bytes, export_flags(), no_zeroes_));
    return enter_transmission();
  }
  reader_ = Reader::option_header;
  std::vector<std::byte>& out = handshake_buffer();
  append_info_replies(out);
  // §9: a client that does not promise to honour a minimum block size above 1 is refused
  // at GO (INFO commits it to nothing, so INFO is answered in full).
  const bool block_size_refused =
      pending_.option == nbd::Opt::go && export_.block_size.minimum > 1 && !pending_.wants_block_size;
  if (pending_.option == nbd::Opt::info || block_size_refused) {
    if (block_size_refused)
      append_option_reply(out, option_, nbd::Rep::err_block_size_reqd, as_bytes(std::string_view("request NBD_INFO_BLOCK_SIZE")));
    else
      append_option_reply(out, option_, nbd::Rep::ack);
    emit_handshake_buffer();
    close_handle();  // as nbdkit: INFO's handle is closed once answered
    return;
  }
  append_option_reply(out, option_, nbd::Rep::ack);
  emit_handshake_buffer();
  enter_transmission();
}

void Connection::Impl::enter_transmission() {
  phase_ = Phase::transmission;
  reader_ = Reader::request_header;
  style_ = extended_ ? ReplyStyle::extended : structured_ ? ReplyStyle::structured : ReplyStyle::simple;
  tctx_.eflags = export_flags();
  tctx_.size_bytes = export_.size_bytes;
  tctx_.structured = structured_ || extended_;
  tctx_.extended = extended_;
  // Spec §8.2: a selection made for another export does not carry over.
  tctx_.meta_selected = meta_selected_ && meta_export_ == requested_name_;
  tctx_.request_bytes_max = limits_.request_bytes_max;
  if (export_.block_size.maximum != 0 && export_.block_size.maximum < tctx_.request_bytes_max)
    tctx_.request_bytes_max = export_.block_size.maximum;
  tctx_.minimum_block = export_.block_size.minimum > 1 ? export_.block_size.minimum : 1;
}

}  // namespace nbdd::core
