// The sh plugin's per-connection methods before and around open, as nbdkit-sh-plugin(3):
// preconnect, list_exports (its three output formats), default_export, the export name
// passed to open, export_description; and "missing" (exit 2) falling back to nbdkit's
// defaults.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "plugins/sh/export_list_text.hpp"
#include "plugins/sh/sh_plugin.hpp"
#include "tests/plugins/host_harness.hpp"
#include "tests/plugins/temp_dir.hpp"

namespace nbdd::test {
namespace {

using plugin::sh::first_listed_name;
using plugin::sh::ListedExport;
using plugin::sh::parse_export_list;
using plugin::sh::ShPlugin;

std::vector<std::string> names_of(const std::vector<ListedExport>& list) {
  std::vector<std::string> names;
  for (const auto& e : list) names.push_back(e.name + "=" + e.description);
  return names;
}

TEST(ShExportListText, NamesWithOrWithoutHeader) {
  EXPECT_EQ(names_of(parse_export_list("a\nb\n")), (std::vector<std::string>{"a=", "b="}));
  EXPECT_EQ(names_of(parse_export_list("NAMES\na\nb")), (std::vector<std::string>{"a=", "b="}));
  EXPECT_EQ(names_of(parse_export_list("a\n\nc\n")), (std::vector<std::string>{"a=", "=", "c="}));
  EXPECT_EQ(names_of(parse_export_list("")), std::vector<std::string>{});
  EXPECT_EQ(names_of(parse_export_list("NAMES\n")), std::vector<std::string>{});
}

TEST(ShExportListText, Interleaved) {
  EXPECT_EQ(names_of(parse_export_list("INTERLEAVED\na\nfirst\nb\nsecond\n")),
            (std::vector<std::string>{"a=first", "b=second"}));
  EXPECT_EQ(names_of(parse_export_list("INTERLEAVED\na\nfirst\nb\n")), (std::vector<std::string>{"a=first", "b="}));
}

TEST(ShExportListText, NamesThenDescriptions) {
  EXPECT_EQ(names_of(parse_export_list("NAMES+DESCRIPTIONS\na\nb\nfirst\nsecond\n")),
            (std::vector<std::string>{"a=first", "b=second"}));
  EXPECT_EQ(names_of(parse_export_list("NAMES+DESCRIPTIONS\na\nb\nfirst\n")),
            (std::vector<std::string>{"a=first", "b="}));
}

TEST(ShExportListText, FirstListedName) {
  EXPECT_EQ(first_listed_name("disk\n"), "disk");
  EXPECT_EQ(first_listed_name("INTERLEAVED\ndisk\nits description\n"), "disk");
  EXPECT_EQ(first_listed_name("NAMES+DESCRIPTIONS\nx\ny\n"), "x");
  EXPECT_EQ(first_listed_name("NAMES\n"), "");
  EXPECT_EQ(first_listed_name(""), "");
}

// Every call is appended to $tmpdir/calls; each method's behaviour can be switched by a
// file $tmpdir/METHOD holding a shell fragment to run instead of the default.
constexpr const char* logging_script = R"SH(#!/bin/sh
echo "$*" >> "$tmpdir/calls"
if [ -f "$tmpdir/$1" ]; then . "$tmpdir/$1"; exit $?; fi
case "$1" in
  open) echo "h-$3" ;;
  get_size) echo 1M ;;
  pread) head -c "$3" /dev/zero ;;
  *) exit 2 ;;
esac
)SH";

struct ShLifecycleTest : ::testing::Test {
  ShLifecycleTest() {
    script = dir.write("log.sh", logging_script, true);
    h = std::make_unique<HostHarness>(std::make_unique<ShPlugin>());
  }
  void SetUp() override { ASSERT_EQ(h->start({script}), ""); }
  std::string tmp(const std::string& name) const { return h->plugin_as<ShPlugin>().tmpdir() + "/" + name; }
  void behave(const std::string& method, const std::string& fragment) const {
    std::ofstream(tmp(method)) << fragment << "\n";
  }
  std::vector<std::string> calls() const {
    std::ifstream in(tmp("calls"));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  bool called(const std::string& line) const {
    for (const auto& l : calls())
      if (l == line) return true;
    return false;
  }
  TempDir dir;
  std::string script;
  std::unique_ptr<HostHarness> h;
};

TEST_F(ShLifecycleTest, PreconnectGetsReadonlyAndMayRefuse) {
  ConnectionPluginState c;
  EXPECT_EQ(h->preconnect(c, true), 0);  // missing: accepted
  EXPECT_TRUE(called("preconnect true"));
  behave("preconnect", "echo 'EPERM not you' >&2; exit 1");
  EXPECT_EQ(h->preconnect(c, false), EPERM);
  EXPECT_TRUE(called("preconnect false"));
  EXPECT_NE(plugin::PluginHost::last_error().find("not you"), std::string::npos);
  behave("preconnect", "exit 0");
  EXPECT_EQ(h->preconnect(c, false), 0);
}

TEST_F(ShLifecycleTest, OpenGetsTheExportNameAndPrintsTheHandle) {
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, true, "some export", &info), 0);
  EXPECT_TRUE(called("open true some export false"));
  EXPECT_EQ(info.name, "some export");
  EXPECT_TRUE(called("get_size h-some export"));  // the handle is what open printed
  EXPECT_EQ(h->close(c), 0);
  EXPECT_TRUE(called("close h-some export"));
}

TEST_F(ShLifecycleTest, MissingDefaultExportMeansTheEmptyName) {
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "", &info), 0);
  EXPECT_TRUE(called("default_export false false"));
  EXPECT_TRUE(called("open false  false"));  // opened as ""
  EXPECT_EQ(info.name, "");
}

TEST_F(ShLifecycleTest, DefaultExportNamesTheExportForTheEmptyName) {
  behave("default_export", "printf 'INTERLEAVED\\ndisk\\nthe disk\\n'");
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, true, "", &info), 0);
  EXPECT_TRUE(called("default_export true false"));
  EXPECT_TRUE(called("open true disk false"));
  EXPECT_EQ(info.name, "disk");
}

TEST_F(ShLifecycleTest, FailingDefaultExportRefusesTheEmptyName) {
  behave("default_export", "exit 1");
  ConnectionPluginState c;
  EXPECT_EQ(h->open(c), ENOENT);
  for (const auto& line : calls()) EXPECT_NE(line.rfind("open", 0), 0u) << line;
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{});  // the default is not listed either
}

TEST_F(ShLifecycleTest, MissingListExportsListsTheDefaultExport) {
  EXPECT_EQ(h->listed_names(true), std::vector<std::string>{""});
  EXPECT_TRUE(called("list_exports true false"));
  behave("default_export", "echo disk");
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{"disk"});
  h->host->set_export_name_option("from-e");
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{"from-e"});
}

TEST_F(ShLifecycleTest, ListExportsInEachFormat) {
  ConnectionPluginState c;
  std::vector<core::ExportEntry> out;
  behave("list_exports", "printf 'NAMES+DESCRIPTIONS\\nx\\ny\\nthe x\\nthe y\\n'");
  ASSERT_EQ(h->list_exports(c, out), 0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].name, "y");
  EXPECT_EQ(out[1].description, "the y");
  behave("list_exports", "printf 'one\\ntwo\\nthree\\n'");
  EXPECT_EQ(h->listed_names(), (std::vector<std::string>{"one", "two", "three"}));
  // Asked afresh each time: a changed answer is seen by the next listing.
  behave("list_exports", "echo four");
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{"four"});
}

TEST_F(ShLifecycleTest, FailingListExportsIsAnError) {
  behave("list_exports", "echo 'EACCES no list for you' >&2; exit 1");
  ConnectionPluginState c;
  std::vector<core::ExportEntry> out;
  EXPECT_EQ(h->list_exports(c, out), EIO);  // EACCES is not among the errno names sh reads
  EXPECT_TRUE(out.empty());
  behave("list_exports", "echo 'ENOSPC full' >&2; exit 1");
  EXPECT_EQ(h->list_exports(c, out), ENOSPC);
  behave("list_exports", "exit 3");  // false is meaningless here
  EXPECT_EQ(h->list_exports(c, out), EIO);
}

TEST_F(ShLifecycleTest, ExportDescriptionOnlyWhenAsked) {
  behave("export_description", "echo \"about $2\"");
  ConnectionPluginState c;
  core::ExportInfo info;
  ASSERT_EQ(h->open(c, false, "d", &info, false), 0);
  EXPECT_FALSE(called("export_description h-d"));
  EXPECT_EQ(info.description, "");
  ASSERT_EQ(h->close(c), 0);
  ASSERT_EQ(h->open(c, false, "d", &info, true), 0);
  EXPECT_TRUE(called("export_description h-d"));
  EXPECT_EQ(info.description, "about h-d");  // one trailing newline removed
  ASSERT_EQ(h->close(c), 0);
  behave("export_description", "exit 1");  // a failure only means "no description"
  ASSERT_EQ(h->open(c, false, "d", &info, true), 0);
  EXPECT_EQ(info.description, "");
}

TEST_F(ShLifecycleTest, AFailingQueryAfterOpenClosesTheHandle) {
  behave("get_size", "echo 'EIO gone' >&2; exit 1");
  ConnectionPluginState c;
  EXPECT_EQ(h->open(c, false, "x"), EIO);
  EXPECT_TRUE(called("close h-x"));
  EXPECT_EQ(c.handle, nullptr);
}

}  // namespace
}  // namespace nbdd::test
