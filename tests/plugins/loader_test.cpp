#include "plugins/loader.hpp"

#include <gtest/gtest.h>

#include "plugins/registry.hpp"
#include "tests/plugins/host_harness.hpp"

namespace nbdd::test {
namespace {

TEST(Loader, FindsEveryBuiltinByName) {
  for (auto name : plugin::builtin_plugin_names()) {
    std::string error;
    auto p = plugin::load_plugin(name, error);
    ASSERT_NE(p, nullptr) << name << ": " << error;
    EXPECT_EQ(p->name(), name);
  }
}

TEST(Loader, UnknownNameListsTheBuiltins) {
  std::string error;
  EXPECT_EQ(plugin::load_plugin("nosuch", error), nullptr);
  EXPECT_NE(error.find("memory"), std::string::npos) << error;
}

TEST(Loader, LoadsTheExamplePluginAndServesData) {
  std::string error;
  auto p = plugin::load_plugin(NBDD_EXAMPLE_PLUGIN_PATH, error);
  ASSERT_NE(p, nullptr) << error;
  EXPECT_EQ(p->name(), "example");
  HostHarness h(std::move(p));
  ASSERT_EQ(h.start({"65536"}), "");
  core::ExportInfo info;
  ASSERT_EQ(h.probe(info, false, "any name"), 0);
  EXPECT_EQ(info.size_bytes, 65536u);
  EXPECT_TRUE(info.caps.can_write);
  EXPECT_TRUE(info.caps.can_zero);  // emulated with pwrite
  EXPECT_EQ(h.listed_names(), std::vector<std::string>{""});
  ConnectionPluginState c;
  ASSERT_EQ(h.open(c), 0);
  const auto data = bytes_of("from a shared object");
  ASSERT_EQ(h.pwrite(c, data, 100), 0);
  ASSERT_EQ(h.zero(c, 4, 100), 0);  // emulated through the plugin's pwrite
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(h.pread(c, back, 100), 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(back.data()) + 4, back.size() - 4), " a shared object");
  EXPECT_EQ(h.close(c), 0);
  h.host->unload();
}

TEST(Loader, RefusesAnotherApiVersion) {
  std::string error;
  EXPECT_EQ(plugin::load_plugin(NBDD_BAD_VERSION_PLUGIN_PATH, error), nullptr);
  EXPECT_NE(error.find("API version"), std::string::npos) << error;
}

TEST(Loader, BadPathIsAClearError) {
  std::string error;
  EXPECT_EQ(plugin::load_plugin("/nonexistent/dir/libnothing.so", error), nullptr);
  EXPECT_NE(error.find("cannot load plugin"), std::string::npos) << error;
}

}  // namespace
}  // namespace nbdd::test
