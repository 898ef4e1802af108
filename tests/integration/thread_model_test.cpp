// The plugin's thread model is honoured end to end (the core gates, net/ only executes):
// an `sh` script that declares its model and detects overlapping calls with a mkdir lock.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"

namespace nbdd::itest {
namespace {

const char* script = R"(#!/bin/sh
case "$1" in
  config) [ "$2" = model ] && echo "$3" > "$tmpdir/model" ;;
  thread_model) cat "$tmpdir/model" ;;
  get_size) echo 1048576 ;;
  open) echo handle ;;
  pread)
    if ! mkdir "$tmpdir/busy" 2>/dev/null; then echo "EIO calls overlap" >&2; exit 1; fi
    sleep 0.05
    head -c "$3" /dev/zero
    rmdir "$tmpdir/busy" ;;
  *) exit 2 ;;
esac
)";

class ThreadModel : public ::testing::TestWithParam<const char*> {};

TEST_P(ThreadModel, SerializedModelsNeverOverlapCalls) {
  TempDir dir;
  const std::string path = dir.file("plugin.sh");
  write_file(path, script, true);
  auto d = Daemon::start_unix(dir, {"sh", path, std::string("model=") + GetParam()});
  ASSERT_TRUE(d);
  const bool one_connection_at_a_time = std::string(GetParam()) == "serialize_connections";
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 3; ++c) {
    clients.emplace_back([&] {
      Nbd h;
      if (nbd_connect_uri(h, d->uri().c_str()) != 0) {
        ++failures;
        return;
      }
      std::vector<char> buf(4096);
      for (int i = 0; i < 4; ++i)
        if (nbd_pread(h, buf.data(), buf.size(), 4096u * i, 0) != 0) ++failures;
      nbd_shutdown(h, 0);  // serialize_connections: lets the next client in
    });
    if (one_connection_at_a_time) std::this_thread::sleep_for(50ms);
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0) << d->stderr_text();
}

INSTANTIATE_TEST_SUITE_P(Models, ThreadModel,
                         ::testing::Values("serialize_connections", "serialize_all_requests"));

}  // namespace
}  // namespace nbdd::itest
