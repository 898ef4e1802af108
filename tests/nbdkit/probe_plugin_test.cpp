// nbdd's own nbdkit plugin (probe_plugin.c, built against nbdkit's header) through the
// adaptor and PluginHost: the whole lifecycle in nbdkit's order, export names and lists,
// nbdkit_set_error, and nbdkit_disconnect(0/1)/nbdkit_shutdown reaching the host's own
// disconnect/shutdown paths (the hooks the daemon implements), nanosleep waking early.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include "plugins/nbdkit/connection_events.hpp"
#include "plugins/nbdkit/nbdkit_headers.hpp"
#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"
#include "tests/plugins/host_harness.hpp"

namespace {

namespace abi = nbdd::plugin::nbdkit_abi;
using namespace std::chrono_literals;
using nbdd::test::ConnectionPluginState;
using nbdd::test::HostHarness;

std::unique_ptr<nbdd::plugin::Plugin> load_probe() {
  std::string error;
  auto p = abi::load_nbdkit_plugin(NBDD_NBDKIT_PROBE_PLUGIN, error);
  EXPECT_TRUE(p) << error;
  return p;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct ProbeTest : ::testing::Test {
  void SetUp() override { abi::reset_for_tests(); }
  void TearDown() override {
    abi::reset_for_tests();
    ::unlink(log.c_str());
  }
  std::string log = "/tmp/nbdd-probe-" + std::to_string(::getpid()) + ".log";
};

TEST_F(ProbeTest, LifecycleInNbdkitOrder) {
  {
    HostHarness h(load_probe());
    ASSERT_EQ(h.start({"65536", "log=" + log}), "");  // bare first argument: the magic key (size)
    ConnectionPluginState c;
    c.id = 4;
    EXPECT_EQ(h.preconnect(c), 0);
    EXPECT_EQ(h.listed_names(), (std::vector<std::string>{"a", "b", "default"}));
    nbdd::core::ExportInfo info;
    ASSERT_EQ(h.open(c, false, "", &info, true), 0);
    EXPECT_EQ(info.name, "default");
    EXPECT_EQ(info.description, "export=default tls=0");
    EXPECT_EQ(info.size_bytes, 65536u);
    EXPECT_FALSE(info.caps.can_write);
    EXPECT_TRUE(info.caps.can_multi_conn);
    std::vector<std::byte> buf(512);
    EXPECT_EQ(h.pread(c, buf, 0), 0);
    EXPECT_EQ(buf[3], std::byte{3});
    EXPECT_EQ(h.pread(c, buf, 5 * 512), ENOSPC);  // nbdkit_set_error
    EXPECT_EQ(h.close(c), 0);
    ConnectionPluginState c2;
    c2.id = 5;
    EXPECT_EQ(h.open(c2, true, "missing"), ENOENT);
    EXPECT_NE(nbdd::plugin::PluginHost::last_error().find("no export named missing"), std::string::npos);
    ASSERT_EQ(h.open(c2, true, "b", &info, true), 0);
    EXPECT_EQ(info.description, "export=b tls=0");
    EXPECT_EQ(h.close(c2), 0);
  }  // harness gone: unload (load itself ran before log= was known, so it is not logged)
  EXPECT_EQ(read_file(log),
            "config_complete\nget_ready\nafter_fork\npreconnect\nopen default\nclose default\n"
            "open b\nclose b\ncleanup\nunload\n");
}

TEST_F(ProbeTest, DisconnectAndShutdownReachTheHost) {
  HostHarness h(load_probe());
  ASSERT_EQ(h.start({}), "");
  ConnectionPluginState c;
  c.id = 11;
  ASSERT_EQ(h.open(c), 0);
  std::vector<std::byte> buf(512);
  EXPECT_EQ(h.pread(c, buf, 1 * 512), 0);  // nbdkit_disconnect(0)
  EXPECT_EQ(h.pread(c, buf, 2 * 512), 0);  // nbdkit_disconnect(1)
  EXPECT_EQ(h.disconnects(), (std::vector<std::pair<nbdd::core::ConnectionId, bool>>{{11, false}, {11, true}}));
  EXPECT_EQ(h.shutdowns.load(), 0);
  EXPECT_EQ(h.pread(c, buf, 3 * 512), 0);  // nbdkit_shutdown()
  EXPECT_EQ(h.shutdowns.load(), 1);
  EXPECT_EQ(h.close(c), 0);
}

TEST_F(ProbeTest, ShutdownFromAPluginThreadReachesTheHost) {
  HostHarness h(load_probe());
  ASSERT_EQ(h.start({}), "");
  std::thread([] { nbdkit_shutdown(); }).join();
  EXPECT_EQ(h.shutdowns.load(), 1);
}

TEST_F(ProbeTest, NanosleepWakesOnTheConnectionsEnd) {
  HostHarness h(load_probe());
  ASSERT_EQ(h.start({}), "");
  ConnectionPluginState c;
  c.id = 21;
  ASSERT_EQ(h.open(c), 0);
  auto sleeper = std::async(std::launch::async, [&] {
    std::vector<std::byte> buf(512);
    return h.pread(c, buf, 4 * 512);  // nbdkit_nanosleep(30, 0)
  });
  std::this_thread::sleep_for(50ms);
  abi::connection_ending(22);  // another connection: no effect
  EXPECT_EQ(sleeper.wait_for(100ms), std::future_status::timeout);
  abi::connection_ending(21);
  ASSERT_EQ(sleeper.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(sleeper.get(), ESHUTDOWN);
  EXPECT_EQ(h.close(c), 0);
  abi::connection_finished(21);
}

TEST_F(ProbeTest, DumpAndThreadModel) {
  auto plugin = load_probe();
  ASSERT_TRUE(plugin);
  const auto fields = plugin->dump_fields();
  auto has = [&](const std::string& k, const std::string& v) {
    for (const auto& [key, value] : fields)
      if (key == k && value == v) return true;
    return false;
  };
  EXPECT_TRUE(has("api_version", "2"));
  EXPECT_TRUE(has("max_thread_model", "parallel"));
  EXPECT_TRUE(has("has_after_fork", "1"));
  EXPECT_TRUE(has("probe_dump", "yes"));  // the plugin's own dump_plugin() lines
  EXPECT_EQ(plugin->magic_config_key(), "size");
  EXPECT_EQ(plugin->config_help(), "size=SIZE  log=FILE  thread_model=N");

  HostHarness h(load_probe());
  ASSERT_EQ(h.start({"thread_model=1"}), "");  // the .thread_model callback lowers the model
  EXPECT_EQ(h.host->plugin().thread_model(), nbdd::core::ThreadModel::serialize_all_requests);
}

}  // namespace
