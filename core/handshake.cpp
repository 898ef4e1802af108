// Fixed-newstyle option negotiation (spec §3). Every option gets its final reply before
// the next is read; failures are option error replies and negotiation continues, except
// where the spec calls for a hard disconnect (bad IHAVEOPT, EXPORT_NAME failures, DoS).
// TLS: nbdd has none yet, so STARTTLS is refused with ERR_POLICY like a server without
// TLS configured. A later "start TLS" step fits in on_option (an action that hands the
// stream to a TLS layer) and a tls=require policy in one check at the top of on_option.
#include <cerrno>

#include "core/assert.hpp"
#include "core/connection_impl.hpp"
#include "core/option_parser.hpp"
#include "core/wire.hpp"

namespace nbdd::core {
namespace {

constexpr std::uint32_t known_client_flags = nbd::flag_c_fixed_newstyle | nbd::flag_c_no_zeroes;

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

// Why the plugin's open refused a client, as an option error (GO can report it).
nbd::Rep open_error_reply(int err) {
  switch (err) {
    case EPERM:
    case EACCES: return nbd::Rep::err_policy;
    case ENOENT: return nbd::Rep::err_unknown;
#ifdef ESHUTDOWN
    case ESHUTDOWN: return nbd::Rep::err_shutdown;
#endif
    default: return nbd::Rep::err_invalid;
  }
}

}  // namespace

void Connection::Impl::on_client_flags(std::span<const std::byte> data) {
  const std::uint32_t flags = wire::load_u32(data.data());
  consume(4);
  // Spec §3.2: unknown client flags MUST make the server close. Clients without
  // FIXED_NEWSTYLE (pre-2013) are served like fixed ones, as nbdkit does.
  if (flags & ~known_client_flags) {
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
  std::vector<std::byte> out;
  append_option_reply(out, option_, type, data);
  emit_handshake_bytes(std::move(out));
}

void Connection::Impl::option_error(nbd::Rep type, std::string_view message) {
  option_reply(type, as_bytes(message));
}

void Connection::Impl::on_option(std::span<const std::byte> data) {
  if (status_ == Status::draining) {
    on_option_while_draining(data);
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
    case nbd::Opt::starttls:
      if (!data.empty())
        option_error(nbd::Rep::err_invalid, "STARTTLS takes no data");
      else
        option_error(nbd::Rep::err_policy, "TLS is not configured on this server");
      return;
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
    default: option_error(nbd::Rep::err_shutdown, "server is shutting down"); return;
  }
}

void Connection::Impl::handle_flag_option(std::span<const std::byte> data) {
  const bool ext = static_cast<nbd::Opt>(option_) == nbd::Opt::extended_headers;
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
  const ExportInfo* info = valid_nbd_string(name, limits_) ? config_.catalog->find(name) : nullptr;
  if (info == nullptr || extended_) {  // extended clients MUST NOT use EXPORT_NAME
    abort(EndReason::export_name_failed);
    return;
  }
  export_ = info;
  go_is_export_name_ = true;
  start_open();
}

void Connection::Impl::handle_list(std::span<const std::byte> data) {
  if (!data.empty()) return option_error(nbd::Rep::err_invalid, "LIST takes no data");
  if (!config_.catalog->list_allowed) return option_error(nbd::Rep::err_policy, "listing is disabled");
  for (const ExportInfo& e : config_.catalog->exports) {
    std::vector<std::byte> body;
    put_u32(body, static_cast<std::uint32_t>(e.name.size()));
    put_string(body, e.name);
    put_string(body, e.description);  // libnbd reads the rest as the description
    option_reply(nbd::Rep::server, body);
  }
  option_reply(nbd::Rep::ack);
}

std::uint16_t Connection::Impl::export_flags(const ExportInfo& info) const {
  return transmission_flags(info, config_.catalog->read_only, structured_, extended_);
}

void Connection::Impl::append_info_replies(std::vector<std::byte>& out, const ExportInfo& info) const {
  std::vector<std::byte> body;
  put_u16(body, static_cast<std::uint16_t>(nbd::Info::export_));
  put_u64(body, info.size_bytes);
  put_u16(body, export_flags(info));
  append_option_reply(out, option_, nbd::Rep::info, body);
  if (go_wants_name_) {
    body.clear();
    put_u16(body, static_cast<std::uint16_t>(nbd::Info::name));
    put_string(body, info.name);
    append_option_reply(out, option_, nbd::Rep::info, body);
  }
  if (go_wants_description_ && !info.description.empty()) {
    body.clear();
    put_u16(body, static_cast<std::uint16_t>(nbd::Info::description));
    put_string(body, info.description);
    append_option_reply(out, option_, nbd::Rep::info, body);
  }
  if (info.block_size.advertised()) {  // sent whether asked or not, as nbdkit does
    body.clear();
    put_u16(body, static_cast<std::uint16_t>(nbd::Info::block_size));
    put_u32(body, info.block_size.minimum);
    put_u32(body, info.block_size.preferred);
    put_u32(body, info.block_size.maximum);
    append_option_reply(out, option_, nbd::Rep::info, body);
  }
}

void Connection::Impl::handle_info_or_go(std::span<const std::byte> data, bool go) {
  InfoRequest req;
  if (!parse_info_request(data, limits_, req)) return option_error(nbd::Rep::err_invalid, "malformed request");
  const ExportInfo* info = config_.catalog->find(req.export_name);
  if (info == nullptr) return option_error(nbd::Rep::err_unknown, "no such export");
  go_wants_name_ = req.wants_name;
  go_wants_description_ = req.wants_description;
  // §9: a client that does not promise to honour a minimum block size above 1 is refused
  // at GO (INFO commits it to nothing, so INFO is answered in full).
  if (go && info->block_size.minimum > 1 && !req.wants_block_size) {
    std::vector<std::byte> out;
    append_info_replies(out, *info);
    emit_handshake_bytes(std::move(out));
    return option_error(nbd::Rep::err_block_size_reqd, "request NBD_INFO_BLOCK_SIZE");
  }
  if (!go) {
    std::vector<std::byte> out;
    append_info_replies(out, *info);
    append_option_reply(out, option_, nbd::Rep::ack);
    emit_handshake_bytes(std::move(out));
    return;
  }
  export_ = info;
  go_is_export_name_ = false;
  start_open();
}

void Connection::Impl::handle_meta_context(std::span<const std::byte> data, bool set) {
  if (set) meta_selected_ = false;  // SET replaces the selection even when it fails
  if (!structured_ && !extended_)
    return option_error(nbd::Rep::err_invalid, "negotiate structured replies first");
  MetaContextRequest req;
  if (!parse_meta_context_request(data, limits_, req))
    return option_error(nbd::Rep::err_invalid, "malformed request");
  if (config_.catalog->find(req.export_name) == nullptr)
    return option_error(nbd::Rep::err_unknown, "no such export");
  const std::string_view base = nbd::base_allocation;
  bool match = !set && req.queries.empty();  // LIST with no query lists everything
  for (std::string_view q : req.queries) {
    if (q == base || (!set && q == "base:")) match = true;  // "base:" is a LIST wildcard only
  }
  if (match) {
    std::vector<std::byte> body;
    put_u32(body, set ? nbd::base_allocation_id : 0);  // LIST replies carry id 0
    put_string(body, base);
    option_reply(nbd::Rep::meta_context, body);
  }
  if (set && match) {
    meta_selected_ = true;
    meta_export_.assign(req.export_name);
  }
  option_reply(nbd::Rep::ack);
}

// ---- opening the export ------------------------------------------------------------------

void Connection::Impl::start_open() {
  reader_ = Reader::awaiting_plugin;
  call_queue_.push_back(QueuedCall{CallKind::open, true, 0});
  start_calls();
}

// A GO/EXPORT_NAME whose open has not started yet (waiting for the thread-model gate)
// is withdrawn when the connection starts draining or closing.
void Connection::Impl::cancel_pending_open() {
  if (reader_ != Reader::awaiting_plugin || lifecycle_running_) return;
  for (auto it = call_queue_.begin(); it != call_queue_.end(); ++it) {
    if (it->lifecycle && it->lifecycle_kind == CallKind::open) {
      call_queue_.erase(it);
      break;
    }
  }
  if (gate_ == GateState::waiting) gate_release();
  if (status_ >= Status::closing) return;
  reader_ = Reader::option_header;
  if (go_is_export_name_)
    abort(EndReason::export_name_failed);
  else
    option_error(nbd::Rep::err_shutdown, "server is shutting down");
}

void Connection::Impl::on_open_done(int err) {
  if (err != 0) {
    // open failed: no close call will follow; the thread-model gate is given back.
    release_gate_if_idle();
    if (status_ >= Status::closing) return;
    if (go_is_export_name_) return abort(EndReason::export_name_failed);
    reader_ = Reader::option_header;
    return option_error(open_error_reply(err), "the plugin refused the connection");
  }
  stats_.opened = true;
  if (status_ >= Status::closing) return;  // check_end runs the close call
  if (status_ == Status::draining) {
    // Shutdown arrived while open ran: refuse the export; close runs at the end.
    if (go_is_export_name_) return abort(EndReason::export_name_failed);
    reader_ = Reader::option_header;
    return option_error(nbd::Rep::err_shutdown, "server is shutting down");
  }
  finish_go();
}

void Connection::Impl::finish_go() {
  NBDD_ASSERT(export_ != nullptr);
  if (go_is_export_name_) {
    emit_handshake_bytes(encode_export_name_reply(export_->size_bytes, export_flags(*export_), no_zeroes_));
  } else {
    std::vector<std::byte> out;
    append_info_replies(out, *export_);
    append_option_reply(out, option_, nbd::Rep::ack);
    emit_handshake_bytes(std::move(out));
  }
  enter_transmission();
}

void Connection::Impl::enter_transmission() {
  phase_ = Phase::transmission;
  reader_ = Reader::request_header;
  style_ = extended_ ? ReplyStyle::extended : structured_ ? ReplyStyle::structured : ReplyStyle::simple;
  tctx_.eflags = export_flags(*export_);
  tctx_.size_bytes = export_->size_bytes;
  tctx_.structured = structured_ || extended_;
  tctx_.extended = extended_;
  // Spec §8.2: a selection made for another export does not carry over.
  tctx_.meta_selected = meta_selected_ && config_.catalog->find(meta_export_) == export_;
  tctx_.request_bytes_max = limits_.request_bytes_max;
  if (export_->block_size.maximum != 0 && export_->block_size.maximum < tctx_.request_bytes_max)
    tctx_.request_bytes_max = export_->block_size.maximum;
  tctx_.minimum_block = export_->block_size.minimum > 1 ? export_->block_size.minimum : 1;
}

}  // namespace nbdd::core
