#include "net/log.hpp"

#include <syslog.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace nbdd::net::log {
namespace {
std::mutex mutex;
std::atomic<bool> verbose_on{false};
std::atomic<Sink> sink_kind{Sink::stderr_sink};

void write(int priority, std::string_view line) {
  if (sink_kind.load() == Sink::null_sink) return;
  if (sink_kind.load() == Sink::syslog_sink) {
    syslog(priority, "%.*s", static_cast<int>(line.size()), line.data());
    return;
  }
  std::string text = "nbdd: ";
  text.append(line);
  text.push_back('\n');
  const std::lock_guard lock(mutex);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}
}  // namespace

void configure(Sink sink, bool verbose) {
  sink_kind.store(sink);
  verbose_on.store(verbose);
  if (sink == Sink::syslog_sink) openlog("nbdd", LOG_PID, LOG_DAEMON);
}

bool verbose() { return verbose_on.load(std::memory_order_relaxed); }

void debug(std::string_view line) {
  if (verbose()) write(LOG_DEBUG, line);
}

void error(std::string_view line) { write(LOG_ERR, line); }

}  // namespace nbdd::net::log
