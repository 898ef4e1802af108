// Runs one child process with stdin fed from memory and stdout/stderr captured, the way
// the sh plugin runs its script for every callback. Safe to call from many threads at
// once: every pipe is O_CLOEXEC and the child closes every descriptor above 2 (no leaks
// into children, whoever opened the descriptor), stdin is written
// and stdout/stderr are read in one poll() loop (no deadlock whatever order the child
// uses), SIGPIPE from a child that exits early is swallowed on this thread only, and the
// child is always reaped before returning.
//
// Each child runs in its own process group (the script and everything it starts), so the
// server's forced shutdown can end a stuck script with all its children: stop_all_scripts().
#pragma once
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace nbdd::plugin::sh {

// Where the child's stdout goes: straight into `fixed` (pread data, no extra copy), or
// else appended to `text` up to text_max bytes. Bytes beyond either are counted, dropped.
struct OutputSink {
  std::span<std::byte> fixed;
  std::string text;
  std::size_t text_max = 1 << 20;
  std::size_t total = 0;  // every byte the child wrote
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string error_text;  // stderr, at most 64 KiB
};

// argv[0] is the program path. Returns 0, or the errno of a failed spawn/pipe/poll.
int run_process(const std::vector<std::string>& argv, char* const* envp, std::span<const std::byte> input,
                OutputSink& out, ProcessResult& result);

// The server's forced shutdown. Every script running now gets SIGTERM (to its process
// group) at once, one started later once it has run for kill_after; SIGKILL follows
// kill_after after SIGTERM. run_process() then returns (the child killed by a signal, so
// the call fails) without waiting for output a grandchild that left the group may hold
// open beyond another kill_after. Thread-safe; the first call's kill_after stays.
void stop_all_scripts(std::chrono::milliseconds kill_after);
// Whether stop_all_scripts() was called (and not undone by resume_scripts()).
bool scripts_stopping();
// Undoes stop_all_scripts() for scripts started from now on. Tests only: a daemon never
// resumes after a forced shutdown.
void resume_scripts();

}  // namespace nbdd::plugin::sh
