// Several exports (an `sh` script's list_exports), and a loadable plugin (.so) served
// by the daemon end to end.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"

namespace nbdd::itest {
namespace {

// Exports "alpha" (1 MiB of 'a', the default) and "beta" (2 MiB of 'b'); the handle is the name.
const char* script = R"(#!/bin/sh
case "$1" in
  thread_model) echo parallel ;;
  list_exports) printf 'NAMES\nalpha\nbeta\n' ;;
  default_export) echo alpha ;;
  open) if [ -z "$3" ]; then echo alpha; else echo "$3"; fi ;;
  get_size) if [ "$2" = beta ]; then echo 2097152; else echo 1048576; fi ;;
  pread) if [ "$2" = beta ]; then c=b; else c=a; fi
         head -c "$3" /dev/zero | tr '\0' "$c" ;;
  *) exit 2 ;;
esac
)";

TEST(Exports, SeveralExportsListedAndServed) {
  TempDir dir;
  const std::string path = dir.file("exports.sh");
  write_file(path, script, true);
  auto d = Daemon::start_unix(dir, {"sh", path});
  ASSERT_TRUE(d);
  const auto list = run_shell("nbdinfo --list --json '" + d->uri() + "'");
  EXPECT_EQ(list.status, 0) << list.output;
  EXPECT_NE(list.output.find("\"alpha\""), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("\"beta\""), std::string::npos) << list.output;
  struct Want {
    const char* name;
    std::int64_t size;
    char fill;
  };
  for (const Want& w : {Want{"alpha", 1 << 20, 'a'}, Want{"beta", 2 << 20, 'b'}, Want{"", 1 << 20, 'a'}}) {
    Nbd h;
    ASSERT_EQ(nbd_connect_uri(h, d->uri(w.name).c_str()), 0) << w.name << ": " << Nbd::error();
    EXPECT_EQ(nbd_get_size(h), w.size) << w.name;
    std::vector<char> buf(4096);
    ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 8192, 0), 0) << Nbd::error();
    EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [&](char c) { return c == w.fill; })) << w.name;
  }
  // A name the list does not show still goes to the script's open, which accepts it (as
  // nbdkit does: the plugin decides, not the list).
  Nbd unlisted;
  ASSERT_EQ(nbd_connect_uri(unlisted, d->uri("gamma").c_str()), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(unlisted), 1 << 20);
}

#ifdef NBDD_EXAMPLE_PLUGIN
TEST(Exports, LoadablePluginByPath) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {NBDD_EXAMPLE_PLUGIN, "4194304"});
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(h), 4 << 20);
  std::vector<char> data(65536, 'x'), back(65536);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 4096, 0), 0) << Nbd::error();
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 4096, 0), 0) << Nbd::error();
  EXPECT_EQ(back, data);
}
#endif

}  // namespace
}  // namespace nbdd::itest
