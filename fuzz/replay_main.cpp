// Standalone runner for builds without libFuzzer (gcc, NBDD_FUZZ=OFF): replays every file
// named on the command line, and every regular file inside each directory named there
// (sorted, not recursive), through LLVMFuzzerTestOneInput. Arguments starting with '-'
// (libFuzzer flags such as -runs=0) are ignored so ctest can use one command line for both.
//
// A crash or hang names its input: the current file is printed by the signal handler, and
// each input gets an alarm of FUZZ_TIMEOUT_SECS seconds (default 25; curl-fuzzer's rule).
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

char current_input[4096] = "(none)";

void write_stderr(const char* s) {
  const ssize_t ignored = write(STDERR_FILENO, s, std::strlen(s));
  (void)ignored;
}

extern "C" void on_fatal_signal(int sig) {
  write_stderr(sig == SIGALRM ? "\nreplay: TIMEOUT on input: " : "\nreplay: CRASH on input: ");
  write_stderr(current_input);
  write_stderr("\n");
  std::signal(sig, SIG_DFL);
  if (sig == SIGALRM) std::_Exit(70);
  std::raise(sig);
}

bool run_file(const std::filesystem::path& path, unsigned timeout_s) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::snprintf(current_input, sizeof current_input, "%s", path.c_str());
  // A private copy of exactly the input's size, so ASan sees reads past its end.
  auto* data = static_cast<std::uint8_t*>(std::malloc(bytes.empty() ? 1 : bytes.size()));
  if (!bytes.empty()) std::memcpy(data, bytes.data(), bytes.size());
  alarm(timeout_s);
  LLVMFuzzerTestOneInput(data, bytes.size());
  alarm(0);
  std::free(data);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned timeout_s = 25;
  if (const char* t = std::getenv("FUZZ_TIMEOUT_SECS")) timeout_s = static_cast<unsigned>(std::atoi(t));
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGALRM}) std::signal(sig, on_fatal_signal);

  std::size_t ran = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;
    const std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(arg))
        if (entry.is_regular_file()) files.push_back(entry.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        ok = run_file(f, timeout_s) && ok;
        ++ran;
      }
    } else if (std::filesystem::exists(arg, ec)) {
      ok = run_file(arg, timeout_s) && ok;
      ++ran;
    } else {
      std::fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
      ok = false;
    }
  }
  std::printf("replay: %zu inputs ran without a crash\n", ran);
  return ok ? 0 : 1;
}
