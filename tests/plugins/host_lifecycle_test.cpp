// PluginHost::run() for the lifecycle kinds: preconnect, list_exports (the default list,
// -e, the plugin's own list, the cap), open (default_export for "", every query after
// open, the close of a handle whose queries failed, nbdkit's capability rules,
// export_description only when asked) and close.
#include <gtest/gtest.h>

#include <algorithm>

#include "plugins/plugin_host.hpp"
#include "tests/plugins/host_harness.hpp"
#include "tests/plugins/recording_plugin.hpp"

namespace nbdd::test {
namespace {

struct LifecycleTest : ::testing::Test {
  LifecycleTest() {
    auto p = std::make_unique<RecordingPlugin>();
    rec = p.get();
    h = std::make_unique<HostHarness>(std::move(p));
  }
  void SetUp() override { ASSERT_EQ(h->start({}), ""); }
  int count_in_log(std::string_view line) const {
    const auto log = rec->log();
    return static_cast<int>(std::count(log.begin(), log.end(), line));
  }
  RecordingPlugin* rec;
  std::unique_ptr<HostHarness> h;
};

// --- preconnect --------------------------------------------------------------------------

TEST_F(LifecycleTest, PreconnectGetsReadonlyAndItsErrnoRefuses) {
  ConnectionPluginState c;
  EXPECT_EQ(h->preconnect(c, false), 0);
  EXPECT_EQ(rec->log().back(), "preconnect rw");
  rec->preconnect_result = EACCES;
  EXPECT_EQ(h->preconnect(c, true), EACCES);
  EXPECT_EQ(rec->log().back(), "preconnect ro");
  EXPECT_EQ(plugin::PluginHost::last_error(), "preconnect refused on purpose");
  EXPECT_EQ(rec->opens.load(), 0);
}

TEST_F(LifecycleTest, DisconnectFromPreconnectIsIgnored) {
  rec->disconnect_in = "preconnect";
  ConnectionPluginState c;
  c.id = 5;
  EXPECT_EQ(h->preconnect(c), 0);
  EXPECT_TRUE(h->disconnects().empty());
  EXPECT_TRUE(h->debug_contains("ignored"));
}

// --- list_exports ------------------------------------------------------------------------

TEST_F(LifecycleTest, WithoutListExportsTheDefaultExportIsListedByItsName) {
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{""});
  rec->default_name = "disk";
  EXPECT_EQ(h->listed_names(true), std::vector<std::string>{"disk"});
  EXPECT_EQ(count_in_log("list_exports ro"), 1);
  EXPECT_EQ(count_in_log("default_export ro"), 1);  // asked per listing, with the readonly flag
}

TEST_F(LifecycleTest, WithoutListExportsARefusedDefaultListsNothing) {
  rec->default_name = std::nullopt;
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{});
  rec->default_name = std::string(4097, 'x');  // no client could be told this name
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{});
}

TEST_F(LifecycleTest, ExportNameOptionIsListedInsteadOfTheDefault) {
  rec->default_name = "disk";
  h->host->set_export_name_option("chosen");
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{"chosen"});
  EXPECT_EQ(count_in_log("default_export rw"), 0);
  // ... but "" still opens what default_export names.
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "", &info), 0);
  EXPECT_EQ(info.name, "disk");
}

TEST_F(LifecycleTest, ThePluginsOwnListIsUsedAsIsAndMayAddTheDefault) {
  rec->default_name = "b";
  h->host->set_export_name_option("ignored-with-a-list");
  rec->list_fn = [](plugin::ExportList& out) {
    out.add("a", "first");
    out.add("b");
    return 0;
  };
  ConnectionPluginState c;
  std::vector<core::ExportEntry> out;
  ASSERT_EQ(h->list_exports(c, out), 0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].name, "a");
  EXPECT_EQ(out[0].description, "first");
  EXPECT_EQ(out[1].name, "b");
  EXPECT_EQ(out[1].description, "");

  rec->list_fn = [](plugin::ExportList& out) {
    out.add("a");
    out.use_default();  // nbdkit_use_default_export: appended after the plugin's own
    return 0;
  };
  EXPECT_EQ(h->listed_names(), (std::vector<std::string>{"a", "ignored-with-a-list"}));
}

TEST_F(LifecycleTest, ListIsCappedAtExportsMax) {
  int refused = 0;
  rec->list_fn = [&refused](plugin::ExportList& out) {
    for (int i = 0; i < 10; ++i)
      if (!out.add("e" + std::to_string(i))) ++refused;
    return 0;
  };
  ConnectionPluginState c;
  std::vector<core::ExportEntry> out;
  ASSERT_EQ(h->list_exports(c, out, false, 3), 0);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].name, "e2");
  EXPECT_EQ(refused, 7);  // the plugin is told, so it can stop early
}

TEST_F(LifecycleTest, InvalidNamesAndDescriptionsAreNotListed) {
  std::vector<bool> accepted;
  rec->list_fn = [&accepted](plugin::ExportList& out) {
    accepted.push_back(out.add(std::string(4096, 'n')));
    accepted.push_back(out.add(std::string(4097, 'n')));
    accepted.push_back(out.add(std::string("a\0b", 3)));
    accepted.push_back(out.add("ok", std::string(4097, 'd')));
    return 0;
  };
  ConnectionPluginState c;
  std::vector<core::ExportEntry> out;
  ASSERT_EQ(h->list_exports(c, out), 0);
  EXPECT_EQ(accepted, (std::vector<bool>{true, false, false, false}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name.size(), 4096u);
}

TEST_F(LifecycleTest, AFailedListAppendsNothing) {
  rec->list_fn = [this](plugin::ExportList& out) {
    out.add("half");
    rec->host_for_tests().error("listing broke");
    return EIO;
  };
  ConnectionPluginState c;
  std::vector<core::ExportEntry> out;
  EXPECT_EQ(h->list_exports(c, out), EIO);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(plugin::PluginHost::last_error(), "listing broke");
}

TEST_F(LifecycleTest, ListExportsWithoutAVectorIsRefused) {
  ConnectionPluginState c;
  core::PluginCall call;
  call.kind = core::CallKind::list_exports;
  EXPECT_EQ(h->host->run(c, call), EIO);
  EXPECT_EQ(count_in_log("list_exports rw"), 0);
}

// --- open --------------------------------------------------------------------------------

TEST_F(LifecycleTest, EmptyNameIsResolvedByDefaultExportBeforeOpen) {
  rec->default_name = "disk";
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, true, "", &info), 0);
  const auto log = rec->log();
  const auto d = std::find(log.begin(), log.end(), "default_export ro");
  const auto o = std::find(log.begin(), log.end(), "open disk ro");
  ASSERT_NE(d, log.end());
  ASSERT_NE(o, log.end());
  EXPECT_LT(d, o);
  EXPECT_EQ(info.name, "disk");  // the canonical name, for NBD_INFO_NAME
  EXPECT_TRUE(c.handle != nullptr);
}

TEST_F(LifecycleTest, AGivenNameIsOpenedAsIsWithoutDefaultExport) {
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "any/name at all", &info), 0);
  EXPECT_EQ(count_in_log("open any/name at all"), 1);
  EXPECT_EQ(info.name, "any/name at all");
  EXPECT_EQ(count_in_log("default_export rw"), 0);
}

TEST_F(LifecycleTest, RefusedDefaultExportFailsWithoutOpen) {
  ConnectionPluginState c;
  rec->default_name = std::nullopt;
  EXPECT_EQ(h->open(c), ENOENT);
  EXPECT_NE(plugin::PluginHost::last_error().find("not permitted"), std::string::npos);
  rec->default_name = std::string("a\0b", 3);
  EXPECT_EQ(h->open(c), ENOENT);
  rec->default_name = std::string(4097, 'x');
  EXPECT_EQ(h->open(c), ENOENT);
  EXPECT_EQ(rec->opens.load(), 0);
  EXPECT_EQ(c.handle, nullptr);
}

TEST_F(LifecycleTest, OpenErrorIsReturnedAndNothingIsClosed) {
  rec->open_result = EACCES;
  ConnectionPluginState c;
  EXPECT_EQ(h->open(c), EACCES);
  EXPECT_EQ(c.handle, nullptr);
  EXPECT_EQ(rec->closes.load(), 0);
  EXPECT_EQ(rec->size_queries.load(), 0);
}

TEST_F(LifecycleTest, EveryOpenAsksTheSizeAgain) {
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_EQ(info.size_bytes, 1u << 20);
  ASSERT_EQ(h->close(c), 0);
  rec->size = 12345;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_EQ(info.size_bytes, 12345u);
  EXPECT_EQ(rec->size_queries.load(), 2);
}

// A failure after a successful open: the host closes the handle itself, exactly once,
// reports the errno and the reason, and the connection can open again.
struct FailureAfterOpen : LifecycleTest, ::testing::WithParamInterface<const char*> {};

TEST_P(FailureAfterOpen, ClosesTheHandleExactlyOnce) {
  const std::string step = GetParam();
  int expected = ENOSPC;
  if (step == "get_size") {
    rec->get_size_result = EIO;
    expected = EIO;
  } else if (step == "get_size_too_large") {
    rec->size = std::uint64_t{1} << 63;
    expected = EIO;
  } else if (step == "block_size") {
    rec->block_min = 3, rec->block_preferred = 4096, rec->block_max = 4096;  // 3: not a power of 2
    expected = EINVAL;
  } else {
    rec->fail_query = step;
  }
  ConnectionPluginState c;
  core::ExportInfo info;
  info.name = "untouched";
  EXPECT_EQ(h->open(c, false, "x", &info), expected);
  EXPECT_EQ(rec->opens.load(), 1);
  EXPECT_EQ(rec->closes.load(), 1);
  EXPECT_EQ(c.handle, nullptr);
  EXPECT_EQ(info.name, "untouched");  // filled only on success
  EXPECT_FALSE(plugin::PluginHost::last_error().empty());
  // Closing again (the core never does after a failed open) reaches nothing.
  EXPECT_EQ(h->close(c), 0);
  EXPECT_EQ(rec->closes.load(), 1);
  // The next open starts from scratch.
  rec->fail_query.clear();
  rec->get_size_result = 0;
  rec->size = 4096;
  rec->block_min = rec->block_preferred = rec->block_max = 0;
  EXPECT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_EQ(info.name, "x");
  EXPECT_EQ(h->close(c), 0);
  EXPECT_EQ(rec->opens.load(), 2);
  EXPECT_EQ(rec->closes.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(EachStep, FailureAfterOpen,
                         ::testing::Values("get_size", "get_size_too_large", "can_write", "can_zero", "can_trim",
                                           "can_fua", "can_flush", "can_multi_conn", "can_cache", "can_extents",
                                           "block_size"));

TEST_F(LifecycleTest, FailureReasonSurvivesTheClose) {
  rec->fail_query = "can_flush";
  ConnectionPluginState c;
  EXPECT_EQ(h->open(c), ENOSPC);
  EXPECT_NE(plugin::PluginHost::last_error().find("can_flush"), std::string::npos)
      << plugin::PluginHost::last_error();
}

TEST_F(LifecycleTest, OpenOnAnOpenConnectionIsRefusedWithoutReachingThePlugin) {
  ConnectionPluginState c;
  ASSERT_EQ(h->open(c), 0);
  EXPECT_EQ(h->open(c), EIO);
  EXPECT_EQ(rec->opens.load(), 1);
  EXPECT_EQ(rec->closes.load(), 0);
}

TEST_F(LifecycleTest, WritableExportCapabilitiesFollowNbdkitRules) {
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  const core::Capabilities& caps = info.caps;
  EXPECT_TRUE(caps.can_write);
  EXPECT_TRUE(caps.can_flush);
  EXPECT_TRUE(caps.can_trim);
  EXPECT_TRUE(caps.can_zero);       // offered even though zero() is emulated
  EXPECT_FALSE(c.zero_native);      // ... so run(zero) writes zeroes
  EXPECT_TRUE(caps.can_fast_zero);  // and a fast zero fails fast (nbdkit's default)
  EXPECT_TRUE(caps.can_fua);
  EXPECT_EQ(c.fua_mode, plugin::fua_emulate);
  EXPECT_FALSE(caps.can_cache);
  EXPECT_FALSE(caps.can_extents);
  EXPECT_FALSE(caps.can_multi_conn);
  EXPECT_FALSE(info.block_size.advertised());
}

TEST_F(LifecycleTest, NativeZeroWithoutCanFastZeroIsNotAdvertisedFast) {
  rec->native_zero = true;
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_TRUE(info.caps.can_zero);
  EXPECT_TRUE(c.zero_native);
  EXPECT_FALSE(info.caps.can_fast_zero);
}

TEST_F(LifecycleTest, ReadonlyForcesCanWriteFalseWithoutAskingWriteQueries) {
  rec->fua_mode = plugin::fua_native;
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, true, "x", &info), 0);
  EXPECT_FALSE(info.caps.can_write);
  EXPECT_FALSE(info.caps.can_trim);
  EXPECT_FALSE(info.caps.can_zero);
  EXPECT_FALSE(info.caps.can_fast_zero);
  EXPECT_FALSE(info.caps.can_fua);
  EXPECT_EQ(c.fua_mode, plugin::fua_none);
  EXPECT_TRUE(c.readonly);
  for (const char* never : {"can_write", "can_zero", "can_trim", "can_fua"}) EXPECT_EQ(count_in_log(never), 0) << never;
  EXPECT_EQ(count_in_log("can_flush"), 1);
}

TEST_F(LifecycleTest, PluginThatCannotWriteIsReadOnlyToo) {
  rec->can_write_answer = 0;
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_FALSE(info.caps.can_write);
  EXPECT_FALSE(info.caps.can_zero);
  EXPECT_EQ(count_in_log("can_trim"), 0);
}

TEST_F(LifecycleTest, MultiConnNeedsParallelConnections) {
  rec->multi_conn_answer = 1;
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_TRUE(info.caps.can_multi_conn);
  ASSERT_EQ(h->close(c), 0);
  rec->model = plugin::ThreadModel::serialize_connections;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_FALSE(info.caps.can_multi_conn);
}

TEST_F(LifecycleTest, ValidBlockSizeIsPassedOn) {
  rec->block_min = 512, rec->block_preferred = 4096, rec->block_max = 0xffffffffu;
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "x", &info), 0);
  EXPECT_EQ(info.block_size.minimum, 512u);
  EXPECT_EQ(info.block_size.preferred, 4096u);
  EXPECT_EQ(info.block_size.maximum, 0xffffffffu);
}

TEST_F(LifecycleTest, DescriptionOnlyWhenAsked) {
  rec->description = "a fine disk";
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "x", &info, false), 0);
  EXPECT_EQ(info.description, "");
  EXPECT_EQ(count_in_log("export_description"), 0);
  ASSERT_EQ(h->close(c), 0);
  ASSERT_EQ(h->open(c, false, "x", &info, true), 0);
  EXPECT_EQ(info.description, "a fine disk");
  EXPECT_EQ(count_in_log("export_description"), 1);
  ASSERT_EQ(h->close(c), 0);
  rec->description = std::string(4097, 'd');  // too long for the wire: ignored, not fatal
  ASSERT_EQ(h->open(c, false, "x", &info, true), 0);
  EXPECT_EQ(info.description, "");
}

TEST_F(LifecycleTest, DisconnectFromListOrOpenIsIgnoredButFromDataCallsReachesTheConnection) {
  ConnectionPluginState c;
  c.id = 9;
  rec->disconnect_in = "open";
  ASSERT_EQ(h->open(c), 0);
  EXPECT_TRUE(h->disconnects().empty());
  rec->disconnect_in = "pread";
  std::vector<std::byte> buf(8);
  ASSERT_EQ(h->pread(c, buf, 0), 0);
  ASSERT_EQ(h->disconnects().size(), 1u);
  EXPECT_EQ(h->disconnects()[0].first, 9u);
}

TEST_F(LifecycleTest, LifecycleCallsAfterUnloadAreRefused) {
  h->host->unload();
  ConnectionPluginState c;
  EXPECT_EQ(h->preconnect(c), EIO);
  std::vector<core::ExportEntry> out;
  EXPECT_EQ(h->list_exports(c, out), EIO);
  EXPECT_EQ(h->open(c), EIO);
  EXPECT_EQ(rec->log().size(), 0u);
}

}  // namespace
}  // namespace nbdd::test
