#include "net/tls_stream.hpp"

#include <gnutls/gnutls.h>
#include <gnutls/socket.h>
#include <sys/uio.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "net/log.hpp"
#include "net/tls_context.hpp"
#include "net/uring_loop.hpp"

namespace nbdd::net {
namespace asio = boost::asio;

namespace {

// Ciphertext read from the inner stream per read, at most (a TLS record is at most
// 16 KiB plus a few hundred bytes, so several arrive per read under load).
constexpr std::size_t inbound_bytes = 128 * 1024;
// GnuTLS is told to wait (EAGAIN) once this much ciphertext is waiting to be sent: a
// client that stops reading holds at most this much per connection, plus one record.
constexpr std::size_t outbound_limit = 256 * 1024;
// Small buffers of one write share records up to this size (a reply header and its 4 KiB
// payload make one record and one send, not two); larger ones are encrypted as they are.
// nbdkit corks below the same size.
constexpr std::size_t cork_bytes_max = 64 * 1024;
// How long shutdown_and_close() waits for close_notify to leave before closing anyway.
constexpr auto close_notify_wait = std::chrono::seconds(1);
// Non-fatal GnuTLS results (a warning alert) retried in a row before giving up.
constexpr int nonfatal_retries_max = 16;

bool would_block(long r) { return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED; }

boost::system::error_code tls_error() { return {EPROTO, boost::system::system_category()}; }

using Timer = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Strand>;

}  // namespace

struct TlsStream::Engine : std::enable_shared_from_this<Engine> {
  enum class State { idle, handshaking, failed, up, shutting_down, closed };

  Engine(const Strand& s, std::unique_ptr<Stream> i, gnutls_session_t g, std::string l)
      : strand(s), loop(UringLoop::of(s.context())), inner(std::move(i)), session(g), label(std::move(l)), timer(s),
        in(inbound_bytes) {
    gnutls_transport_set_ptr(session, this);
    gnutls_transport_set_vec_push_function(session, &Engine::push);
    gnutls_transport_set_pull_function(session, &Engine::pull);
    gnutls_transport_set_pull_timeout_function(session, &Engine::pull_timeout);
  }
  ~Engine() { gnutls_deinit(session); }

  Strand strand;
  // The shard's ring, or null on epoll: a post from a socket completion on a ring shard is
  // outside Asio's own loop and must wake it (post_and_wake).
  UringLoop* loop;
  std::unique_ptr<Stream> inner;
  gnutls_session_t session;
  std::string label;  // "conn=N", for log lines
  Timer timer;
  State state = State::idle;
  std::atomic<bool> closing{false};  // close() or shutdown_and_close() was called (read by ~TlsStream)
  bool pump_posted = false;

  // Inbound ciphertext: in[in_begin, in_end) is read and not yet taken by GnuTLS.
  std::vector<std::byte> in;
  std::size_t in_begin = 0;
  std::size_t in_end = 0;
  bool inner_reading = false;
  bool inner_ended = false;   // the inner stream reported EOF or an error
  bool inner_failed = false;  // ... an error (a reset) rather than EOF
  bool wants_input = false;   // GnuTLS asked for more than `in` holds

  // Outbound ciphertext: GnuTLS appends to out_fill; out_sending is the inner write in flight.
  std::vector<std::byte> out_fill;
  std::vector<std::byte> out_sending;
  std::vector<asio::const_buffer> out_buffers;  // the inner write's one buffer (kept: no allocation)
  bool inner_writing = false;
  bool inner_write_failed = false;

  TlsHandshakeHandler handshake_handler;
  std::string failure;  // why the handshake failed, reported once its alert is flushed

  IoHandler read_handler;
  std::span<std::byte> read_into;

  IoHandler write_handler;
  std::vector<asio::const_buffer> write_buffers;
  std::size_t write_index = 0;
  std::size_t write_offset = 0;
  std::size_t write_total = 0;
  bool corked = false;    // GnuTLS gathers record_send data (gnutls_record_cork)
  bool flushing = false;  // gnutls_record_uncork returned EAGAIN: call it again

  // --- GnuTLS transport callbacks (called from inside gnutls_* on the strand) ---

  static ssize_t push(gnutls_transport_ptr_t ptr, const giovec_t* iov, int count) {
    auto* e = static_cast<Engine*>(ptr);
    if (e->inner_write_failed || e->state == State::closed) {
      gnutls_transport_set_errno(e->session, EPIPE);
      return -1;
    }
    if (e->out_fill.size() >= outbound_limit) {
      gnutls_transport_set_errno(e->session, EAGAIN);  // resumed when the inner write completes
      return -1;
    }
    std::size_t total = 0;
    for (int i = 0; i < count; ++i) {
      const auto* p = static_cast<const std::byte*>(iov[i].iov_base);
      e->out_fill.insert(e->out_fill.end(), p, p + iov[i].iov_len);
      total += iov[i].iov_len;
    }
    return static_cast<ssize_t>(total);
  }

  static ssize_t pull(gnutls_transport_ptr_t ptr, void* data, std::size_t size) {
    auto* e = static_cast<Engine*>(ptr);
    const std::size_t available = e->in_end - e->in_begin;
    if (available > 0) {
      const std::size_t n = std::min(available, size);
      std::memcpy(data, e->in.data() + e->in_begin, n);
      e->in_begin += n;
      return static_cast<ssize_t>(n);
    }
    if (e->inner_ended) {
      if (!e->inner_failed) return 0;
      gnutls_transport_set_errno(e->session, ECONNRESET);
      return -1;
    }
    e->wants_input = true;  // resumed when the inner read completes
    gnutls_transport_set_errno(e->session, EAGAIN);
    return -1;
  }

  static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int /*ms*/) {
    auto* e = static_cast<Engine*>(ptr);
    if (e->in_end > e->in_begin || e->inner_ended) return 1;
    e->wants_input = true;
    gnutls_transport_set_errno(e->session, EAGAIN);
    return -1;
  }

  // --- the pump: retry whatever waits, then keep the inner stream busy ---

  void schedule() {
    if (pump_posted || state == State::closed) return;
    pump_posted = true;
    post_and_wake(strand, loop, [self = shared_from_this()] {
      self->pump_posted = false;
      self->pump();
    });
  }

  void pump() {
    if (state == State::handshaking) step_handshake();
    if (state == State::failed) report_failure_once_flushed();
    if (state == State::up && read_handler) step_read();
    if (state == State::up && write_handler) step_write();
    if (state == State::shutting_down && (inner_write_failed || (!inner_writing && out_fill.empty()))) {
      finish_shutdown();
      return;
    }
    service_inner();
  }

  void service_inner() {
    if (state == State::closed) return;
    if (!inner_writing && !out_fill.empty() && !inner_write_failed) start_inner_write();
    if (wants_input && !inner_reading && !inner_ended && state != State::shutting_down) start_inner_read();
  }

  void start_inner_read() {
    if (in_begin == in_end) {
      in_begin = in_end = 0;
    } else if (in_end == in.size()) {
      std::memmove(in.data(), in.data() + in_begin, in_end - in_begin);
      in_end -= in_begin;
      in_begin = 0;
    }
    if (in_end == in.size()) return;  // GnuTLS has a whole buffer to take first
    inner_reading = true;
    inner->async_read_some(std::span<std::byte>(in.data() + in_end, in.size() - in_end),
                           [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                             self->on_inner_read(ec, n);
                           });
  }

  void on_inner_read(const boost::system::error_code& ec, std::size_t n) {
    inner_reading = false;
    if (state == State::closed) return;
    if (ec) {
      inner_ended = true;
      inner_failed = ec != asio::error::eof;
    } else {
      in_end += n;
    }
    wants_input = false;
    pump();
  }

  void start_inner_write() {
    out_sending.swap(out_fill);
    out_fill.clear();
    out_buffers.assign(1, asio::const_buffer(out_sending.data(), out_sending.size()));
    inner_writing = true;
    inner->async_write(out_buffers, [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
      self->on_inner_write(ec);
    });
  }

  void on_inner_write(const boost::system::error_code& ec) {
    inner_writing = false;
    out_sending.clear();
    if (state == State::closed) return;
    if (ec) inner_write_failed = true;
    pump();
  }

  // --- the handshake ---

  void step_handshake() {
    for (int tries = 0;; ++tries) {
      const int r = gnutls_handshake(session);
      if (r == 0) {
        state = State::up;
        auto handler = std::move(handshake_handler);
        handshake_handler = nullptr;
        handler(true, {});
        return;
      }
      if (would_block(r)) return;
      if (gnutls_error_is_fatal(r) == 0 && tries < nonfatal_retries_max) continue;
      failure = std::string(gnutls_strerror(r)) + " (last handshake message in " +
                std::to_string(gnutls_handshake_get_last_in(session)) + ", out " +
                std::to_string(gnutls_handshake_get_last_out(session)) + ")";
      // Tell the client why (a bad certificate, an unknown PSK user) before the session
      // closes: the alert is queued now and the failure reported once it is sent.
      gnutls_alert_send_appropriate(session, r);
      state = State::failed;
      return;
    }
  }

  void report_failure_once_flushed() {
    if (!handshake_handler) return;
    if (!inner_write_failed && (inner_writing || !out_fill.empty())) return;
    auto handler = std::move(handshake_handler);
    handshake_handler = nullptr;
    handler(false, failure);
  }

  // --- records ---

  void step_read() {
    for (int tries = 0;; ++tries) {
      const ssize_t r = gnutls_record_recv(session, read_into.data(), read_into.size());
      if (r > 0) return complete_read({}, static_cast<std::size_t>(r) + read_buffered(static_cast<std::size_t>(r)));
      if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) return complete_read(asio::error::eof, 0);
      if (would_block(r)) return;
      if (gnutls_error_is_fatal(static_cast<int>(r)) == 0 && tries < nonfatal_retries_max) continue;
      log::debug(label + " tls: gnutls_record_recv: " + gnutls_strerror(static_cast<int>(r)));
      return complete_read(tls_error(), 0);
    }
  }

  // One record is at most 16 KiB: while more ciphertext is already here and the caller's
  // buffer has room (a large write payload), decrypt on, so a 1 MiB payload takes a few
  // completions instead of 64. An error or EOF here is left for the next read to report.
  std::size_t read_buffered(std::size_t got) {
    std::size_t more = 0;
    while (got + more < read_into.size() && (in_end > in_begin || gnutls_record_check_pending(session) > 0)) {
      const ssize_t r = gnutls_record_recv(session, read_into.data() + got + more, read_into.size() - got - more);
      if (r <= 0) break;
      more += static_cast<std::size_t>(r);
    }
    return more;
  }

  void complete_read(const boost::system::error_code& ec, std::size_t n) {
    auto handler = std::move(read_handler);
    read_handler = nullptr;
    handler(ec, n);
  }

  void step_write() {
    for (;;) {
      if (flushing) {
        const int r = gnutls_record_uncork(session, 0);
        if (would_block(r)) return;
        if (r < 0) return fail_write("gnutls_record_uncork", r);
        flushing = false;
        corked = false;
        continue;
      }
      if (write_index == write_buffers.size()) {
        if (corked) {
          flushing = true;
          continue;
        }
        return complete_write({}, write_total);
      }
      const auto& buffer = write_buffers[write_index];
      const auto* data = static_cast<const char*>(buffer.data()) + write_offset;
      const std::size_t left = buffer.size() - write_offset;
      if (left == 0) {
        ++write_index;
        write_offset = 0;
        continue;
      }
      const std::size_t held = corked ? gnutls_record_check_corked(session) : 0;
      if (held + left <= cork_bytes_max) {
        if (!corked) {
          gnutls_record_cork(session);
          corked = true;
        }
      } else if (corked) {
        flushing = true;  // send what is gathered before a large buffer
        continue;
      }
      // Corked, this only copies (and takes everything); uncorked, it encrypts up to one
      // record and hands it to push().
      const ssize_t r = gnutls_record_send(session, data, left);
      if (would_block(r)) return;  // called again with the same arguments, as GnuTLS requires
      if (r < 0) return fail_write("gnutls_record_send", static_cast<int>(r));
      write_offset += static_cast<std::size_t>(r);
    }
  }

  void fail_write(const char* what, int err) {
    log::debug(label + " tls: " + what + ": " + gnutls_strerror(err));
    complete_write(tls_error(), 0);
  }

  void complete_write(const boost::system::error_code& ec, std::size_t n) {
    auto handler = std::move(write_handler);
    write_handler = nullptr;
    handler(ec, n);
  }

  // --- the end ---

  // Pending reads and writes end with operation_aborted, a handshake with !ok; never
  // inside the call that ended them.
  void abort_pending() {
    auto post_aborted = [&](IoHandler& handler) {
      if (!handler) return;
      post_and_wake(strand, loop, [h = std::move(handler)] { h(asio::error::operation_aborted, 0); });
      handler = nullptr;
    };
    post_aborted(read_handler);
    post_aborted(write_handler);
    if (handshake_handler) {
      post_and_wake(strand, loop, [h = std::move(handshake_handler)] { h(false, "closed during the handshake"); });
      handshake_handler = nullptr;
    }
  }

  void close() {
    closing = true;
    if (state == State::closed) return;
    state = State::closed;
    timer.cancel();
    inner->close();
    abort_pending();
  }

  void shutdown_and_close() {
    closing = true;
    if (state == State::closed || state == State::shutting_down) return;
    abort_pending();
    if (state != State::up) return close();  // no TLS session to end: nothing to say
    // close_notify, queued in out_fill (a write cut by abort_pending may leave a record
    // half sent; then the alert fails too and the inner stream just closes).
    if (flushing || corked) gnutls_record_uncork(session, 0);
    gnutls_bye(session, GNUTLS_SHUT_WR);
    state = State::shutting_down;
    timer.expires_after(close_notify_wait);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && self->state == State::shutting_down) self->close();  // the peer does not read
    });
    pump();
  }

  void finish_shutdown() {
    state = State::closed;
    timer.cancel();
    inner->shutdown_and_close();
  }
};

std::unique_ptr<TlsStream> TlsStream::create(const Strand& strand, std::unique_ptr<Stream>&& inner,
                                             const TlsContext& context, std::string label, std::string& error) {
  gnutls_session_int* session = context.new_session(error);
  if (session == nullptr) return nullptr;
  return std::unique_ptr<TlsStream>(
      new TlsStream(std::make_shared<Engine>(strand, std::move(inner), session, std::move(label))));
}

TlsStream::TlsStream(std::shared_ptr<Engine> engine) : engine_(std::move(engine)) {}

TlsStream::~TlsStream() {
  // The session closes its stream before it ends; a stream dropped open (a server torn
  // down mid-run) is closed on its strand. A graceful end in progress finishes on its own:
  // its handlers hold the engine.
  if (!engine_->closing) post_and_wake(engine_->strand, engine_->loop, [engine = engine_] { engine->close(); });
}

void TlsStream::async_handshake(std::span<const std::byte> early, TlsHandshakeHandler handler) {
  Engine& e = *engine_;
  if (e.state != Engine::State::idle) {
    post_and_wake(e.strand, e.loop, [h = std::move(handler)] { h(false, "handshake already started or stream closed"); });
    return;
  }
  if (early.size() > e.in.size()) e.in.resize(early.size());
  if (!early.empty()) std::memcpy(e.in.data(), early.data(), early.size());  // an empty span may hold null
  e.in_begin = 0;
  e.in_end = early.size();
  e.state = Engine::State::handshaking;
  e.handshake_handler = std::move(handler);
  e.schedule();
}

std::string TlsStream::describe() const {
  char* desc = gnutls_session_get_desc(engine_->session);
  std::string out = desc ? desc : "?";
  gnutls_free(desc);
  return out;
}

bool TlsStream::ktls() const { return gnutls_transport_is_ktls_enabled(engine_->session) != 0; }

void TlsStream::async_read_some(std::span<std::byte> into, IoHandler handler) {
  Engine& e = *engine_;
  if (e.state != Engine::State::up || e.read_handler) {
    post_and_wake(e.strand, e.loop, [h = std::move(handler)] { h(asio::error::operation_aborted, 0); });
    return;
  }
  e.read_into = into;
  e.read_handler = std::move(handler);
  e.schedule();
}

void TlsStream::async_write(const std::vector<asio::const_buffer>& buffers, IoHandler handler) {
  Engine& e = *engine_;
  if (e.state != Engine::State::up || e.write_handler) {
    post_and_wake(e.strand, e.loop, [h = std::move(handler)] { h(asio::error::operation_aborted, 0); });
    return;
  }
  e.write_buffers.assign(buffers.begin(), buffers.end());  // keeps its capacity: no allocation
  e.write_index = 0;
  e.write_offset = 0;
  e.write_total = 0;
  for (const auto& b : buffers) e.write_total += b.size();
  e.write_handler = std::move(handler);
  e.schedule();
}

void TlsStream::shutdown_and_close() { engine_->shutdown_and_close(); }

void TlsStream::close() { engine_->close(); }

}  // namespace nbdd::net
