// Daemon logging: stderr or syslog, thread-safe, one line per call.
// debug() lines appear only with -v; error() lines always.
#pragma once
#include <string_view>

namespace nbdd::net::log {

// null_sink: --log=null, every line (errors too) is dropped, as nbdkit's.
enum class Sink { stderr_sink, syslog_sink, null_sink };

void configure(Sink sink, bool verbose);
bool verbose();
void debug(std::string_view line);
void error(std::string_view line);

}  // namespace nbdd::net::log
