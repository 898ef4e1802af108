#include "sim/trace.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <variant>

namespace nbdd::sim {

std::string format_time(core::Instant at) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%llu.%06llums", static_cast<unsigned long long>(at.ns / 1'000'000),
                static_cast<unsigned long long>(at.ns % 1'000'000));
  return buf;
}

Trace::Trace(bool full, std::FILE* out, std::size_t tail) : full_(full), out_(out) { ring_.resize(tail); }

void Trace::set_tail(std::size_t n) {
  ring_.clear();
  ring_.resize(std::max<std::size_t>(n, 1));
  ring_pos_ = 0;
}

// FNV-1a style, a 64-bit word at a time (the value only has to be stable and sensitive).
void Trace::mix_bytes(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    mix(w);
  }
  std::uint64_t tail = n;
  for (; i < n; ++i) tail = (tail << 8) | p[i];
  mix(tail);
}

void Trace::head(core::Instant at, std::uint64_t conn, const char* kind, Type type, std::uint64_t alt) {
  ++records_;
  // The kind's three characters, little-endian (every kind is three: "in ", "act", "srv"...).
  const auto* kc = reinterpret_cast<const unsigned char*>(kind);
  const std::uint32_t k = kc[0] | (static_cast<std::uint32_t>(kc[1]) << 8) | (static_cast<std::uint32_t>(kc[2]) << 16);
  mix(at.ns);
  mix(conn);
  mix((static_cast<std::uint64_t>(k) << 16) | (static_cast<std::uint64_t>(type) << 8) | alt);
}

Trace::Rec& Trace::push(core::Instant at, std::uint64_t conn, const char* kind, Type type) {
  Rec& r = ring_[ring_pos_];
  ring_pos_ = ring_pos_ + 1 == ring_.size() ? 0 : ring_pos_ + 1;
  r.at = at;
  r.conn = conn;
  r.kind = kind;
  r.type = type;
  return r;
}

void Trace::record(core::Instant at, std::uint64_t conn, const char* kind, std::string_view text) {
  head(at, conn, kind, Type::text, 0);
  mix_bytes(text.data(), text.size());
  if (ring_.empty()) return;
  Rec& r = push(at, conn, kind, Type::text);
  r.text.assign(text);
  if (full_) emit(r);
}

void Trace::record(core::Instant at, std::uint64_t conn, const char* kind, const core::Input& in) {
  head(at, conn, kind, Type::input, in.index());
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, core::input::BytesReceived>) {
          mix(v.bytes.size());
        } else if constexpr (std::is_same_v<T, core::input::PluginDone>) {
          mix((static_cast<std::uint64_t>(static_cast<std::uint32_t>(v.slot)) << 32) |
              static_cast<std::uint32_t>(v.err));
        } else if constexpr (std::is_same_v<T, core::input::DisconnectRequested>) {
          mix(v.force ? 1 : 0);
        }
      },
      in);
  if (ring_.empty()) return;
  Rec& r = push(at, conn, kind, Type::input);
  r.in = in;
  if (full_) emit(r);
}

void Trace::record(core::Instant at, std::uint64_t conn, const char* kind, const core::Action& act) {
  head(at, conn, kind, Type::action, act.index());
  Rec* r = ring_.empty() ? nullptr : &push(at, conn, kind, Type::action);
  if (r) r->act = act;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, core::action::Send>) {
          mix((static_cast<std::uint64_t>(v.header.size()) << 32) ^ v.payload.size());
        } else if constexpr (std::is_same_v<T, core::action::CallPlugin>) {
          const auto& c = v.call;
          mix((static_cast<std::uint64_t>(static_cast<std::uint32_t>(v.slot)) << 32) |
              (static_cast<std::uint64_t>(c.kind) << 8) | (c.readonly ? 1 : 0));
          if (c.kind == core::CallKind::open) {
            mix_bytes(c.export_name.data(), c.export_name.size());
            mix(c.want_description ? 1 : 0);
            if (r) r->text.assign(c.export_name.substr(0, 64));
          } else if (c.kind == core::CallKind::list_exports) {
            mix(c.exports_max);
          } else if (!core::is_lifecycle(c.kind)) {
            mix(c.offset);
            mix(c.count);
            mix(c.flags);
          }
        } else if constexpr (std::is_same_v<T, core::action::Close>) {
          mix(static_cast<std::uint64_t>(v.mode));
        }
      },
      act);
  if (full_ && r) emit(*r);
}

void Trace::record(core::Instant at, std::uint64_t conn, const char* kind, const core::ServerAction& act) {
  head(at, conn, kind, Type::server, act.index());
  if (const auto* e = std::get_if<core::server_action::EndConnection>(&act)) mix((e->id << 1) | (e->force ? 1 : 0));
  if (ring_.empty()) return;
  Rec& r = push(at, conn, kind, Type::server);
  r.srv = act;
  if (full_) emit(r);
}

void Trace::record(core::Instant at, std::uint64_t conn, const char* kind, const PluginReturn& ret) {
  head(at, conn, kind, Type::plugin, 0);
  mix((static_cast<std::uint64_t>(static_cast<std::uint32_t>(ret.err)) << 8) | (ret.disconnect ? 1 : 0) |
      (ret.force ? 2 : 0) | (ret.shutdown ? 4 : 0));
  if (ring_.empty()) return;
  Rec& r = push(at, conn, kind, Type::plugin);
  r.ret = ret;
  if (full_) emit(r);
}

std::string Trace::text_of(const Rec& r) {
  switch (r.type) {
    case Type::text: return r.text;
    case Type::input: return core::describe(r.in);
    case Type::action: {
      core::Action a = r.act;  // spans are only measured; the export name lives in r.text
      if (auto* c = std::get_if<core::action::CallPlugin>(&a)) {
        // the call's core-owned pointers are long gone: describe() must not follow them
        c->call.export_name = r.text;
        c->call.info = nullptr;
        c->call.exports = nullptr;
        c->call.extents = nullptr;
        c->call.buffer = {};
      }
      return core::describe(a);
    }
    case Type::server: return core::describe(r.srv);
    case Type::plugin:
      return "callback returns err=" + std::to_string(r.ret.err) +
             (r.ret.disconnect ? (r.ret.force ? " after disconnect(true)" : " after disconnect(false)") : "") +
             (r.ret.shutdown ? " after shutdown()" : "");
  }
  return "?";
}

void Trace::print_rec(std::FILE* out, const Rec& r) const {
  std::fprintf(out, "  %s conn=%llu %s %s\n", format_time(r.at).c_str(), static_cast<unsigned long long>(r.conn), r.kind,
               text_of(r).c_str());
}

void Trace::emit(const Rec& r) const { print_rec(out_, r); }

void Trace::print_tail(std::FILE* out, std::size_t n) const {
  const std::size_t have = std::min<std::size_t>(ring_.size(), records_);
  n = std::min(n, have);
  std::fprintf(out, "trace (last %zu of %llu records):\n", n, static_cast<unsigned long long>(records_));
  // the newest record is just before ring_pos_
  for (std::size_t i = n; i > 0; --i) {
    const std::size_t idx = (ring_pos_ + ring_.size() - i) % ring_.size();
    print_rec(out, ring_[idx]);
  }
}

}  // namespace nbdd::sim
