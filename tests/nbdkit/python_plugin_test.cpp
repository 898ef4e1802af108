// nbdkit's python language plugin (Debian's nbdkit-plugin-python: nbdkit-python-plugin.so
// running script=FILE) hosted through the adaptor: served as nbdkit serves it, and a script
// calling nbdkit.shutdown() reaches the Host's shutdown, the daemon's graceful path. Skipped
// when the package is not installed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/nbdkit/served_compare.hpp"

namespace {

// A 1 MiB RAM disk whose first sector's "SHUTDOWN" asks the server to shut down, and whose
// reads from 512 KiB report the export name (nbdkit.export_name(), via nbdkit_export_name).
constexpr const char* script_text = R"(import nbdkit

API_VERSION = 2
disk = bytearray(1024 * 1024)

def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS

def open(readonly):
    return {"name": nbdkit.export_name()}

def get_size(h):
    return len(disk)

def can_write(h):
    return True

def can_flush(h):
    return True

def pread(h, buf, offset, flags):
    end = offset + len(buf)
    buf[:] = disk[offset:end]

def pwrite(h, buf, offset, flags):
    disk[offset:offset + len(buf)] = buf
    if offset == 0 and bytes(buf[:8]) == b"SHUTDOWN":
        nbdkit.shutdown()

def flush(h, flags):
    pass
)";

class PythonPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(nbdd::test::nbdkit_plugin_path("python")))
      GTEST_SKIP() << "nbdkit-plugin-python is not installed";
    script_ = "/tmp/nbdd-python-plugin-" + std::to_string(::getpid()) + ".py";
    std::ofstream(script_) << script_text;
  }
  void TearDown() override {
    if (!script_.empty()) std::filesystem::remove(script_);
  }
  std::string script_;
};

// One test, one interpreter: the python plugin initializes Python at load and finalizes it
// at unload, which CPython supports only so many times in one process.
TEST_F(PythonPlugin, ServedAsNbdkitServesItAndShutsDownThroughTheHost) {
  nbdd::test::CommandLine cmd{{}, "python", {"script=" + script_}};
  const nbdd::test::Served expected = nbdd::test::served_by_nbdkit(cmd);
  EXPECT_EQ(expected.size, 1u << 20);

  auto plugin = nbdd::test::chain_of(cmd);
  ASSERT_TRUE(plugin);
  nbdd::test::HostHarness h(std::move(plugin));
  ASSERT_EQ(h.start(cmd.args), "");
  EXPECT_EQ(h.host->plugin().thread_model(), nbdd::core::ThreadModel::serialize_all_requests);
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  nbdd::core::ExportInfo info;
  ASSERT_EQ(h.open(c, false, "", &info), 0) << nbdd::plugin::PluginHost::last_error();
  EXPECT_EQ(info.size_bytes, expected.size);
  EXPECT_EQ(info.caps.can_write, expected.can_write);
  EXPECT_EQ(info.caps.can_flush, expected.can_flush);
  EXPECT_EQ(info.caps.can_zero, expected.can_zero);
  EXPECT_EQ(info.caps.can_fua, expected.can_fua);
  std::vector<std::byte> back(4096);
  EXPECT_EQ(h.pread(c, back, 0), 0);
  EXPECT_EQ(back, std::vector<std::byte>(expected.bytes.begin(), expected.bytes.begin() + 4096));

  const auto data = nbdd::test::filled(4096, 0x5a);
  EXPECT_EQ(h.pwrite(c, data, 8192), 0);
  EXPECT_EQ(h.pread(c, back, 8192), 0);
  EXPECT_EQ(back, data);
  EXPECT_EQ(h.shutdowns.load(), 0);

  std::vector<std::byte> shutdown(512);
  std::memcpy(shutdown.data(), "SHUTDOWN", 8);
  EXPECT_EQ(h.pwrite(c, shutdown, 0), 0);
  EXPECT_EQ(h.shutdowns.load(), 1);
  EXPECT_EQ(h.close(c), 0);
}

}  // namespace
