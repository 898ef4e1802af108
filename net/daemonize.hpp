// Process-level chores: fork into the background like nbdkit, the pid file, and
// --exit-with-parent.
#pragma once
#include <boost/asio/io_context.hpp>
#include <optional>
#include <string>

namespace nbdd::net {

// Forks, starts a new session, chdir("/"), stdio to /dev/null. Must run before any thread
// is started. Returns an error message or "". The parent waits until the child calls
// daemon_ready(ready_fd) (after writing the pid file), then exits 0; it exits 1 if the child
// dies first. So when `nbdd` returns, the pid file exists and clients can connect.
std::string daemonize(boost::asio::io_context& ioc, int& ready_fd);
void daemon_ready(int& ready_fd);
// Writes "PID\n" atomically (temp file + rename). Returns an error message or "".
// Before forking: whether the pid file can be written at all (a write probe, removed again).
std::string check_pidfile_writable(const std::string& path);
std::string write_pidfile(const std::string& path);
// SIGTERM when the parent exits (prctl PR_SET_PDEATHSIG), as nbdkit does.
std::string exit_with_parent();
// -u USER / -g GROUP (names or numbers): after listening, before serving, as nbdkit. Without
// -g the user's primary group is taken (and supplementary groups dropped). "" or a message.
std::string change_user(const std::optional<std::string>& user, const std::optional<std::string>& group);

}  // namespace nbdd::net
