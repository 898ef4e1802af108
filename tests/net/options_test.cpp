// The nbdkit-compatible command line (net/options.hpp).
#include <gtest/gtest.h>

#include "net/options.hpp"

namespace nbdd::net {
namespace {

ParseResult parse(std::vector<std::string> args) {
  args.insert(args.begin(), "nbdd");
  return parse_options(args);
}

TEST(Options, DefaultsMatchNbdkit) {
  const auto r = parse({"memory", "1G"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.plugin, "memory");
  EXPECT_EQ(r.options.plugin_args, std::vector<std::string>{"1G"});
  EXPECT_EQ(r.options.threads, 16u);
  EXPECT_FALSE(r.options.foreground);
  EXPECT_FALSE(r.options.readonly);
  EXPECT_TRUE(r.options.wants_tcp());
  EXPECT_FALSE(r.options.port);
  EXPECT_EQ(r.options.grace_period, core::Duration::from_s(1));
  EXPECT_EQ(r.options.handshake_timeout, core::Duration::from_s(10));
  EXPECT_EQ(r.options.max_connections, 0u);
  EXPECT_EQ(r.options.busy_poll_us, 300u);
}

TEST(Options, ShortFlagsWithSeparateAndAttachedValues) {
  const auto r = parse({"-f", "-r", "-v", "-t", "4", "-p10810", "-i", "::1", "-e", "disk", "-P", "/tmp/p",
                        "memory", "size=1M"});
  ASSERT_TRUE(r.ok()) << r.error;
  const auto& o = r.options;
  EXPECT_TRUE(o.foreground && o.readonly && o.verbose);
  EXPECT_EQ(o.threads, 4u);
  EXPECT_EQ(o.port, "10810");
  EXPECT_EQ(o.ipaddr, "::1");
  EXPECT_EQ(o.exportname, "disk");
  EXPECT_EQ(o.pidfile, "/tmp/p");
  EXPECT_EQ(o.plugin_args, std::vector<std::string>{"size=1M"});
}

TEST(Options, BundledShortFlags) {
  const auto r = parse({"-fvr", "memory"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.options.foreground && r.options.verbose && r.options.readonly);
}

TEST(Options, LongOptionsWithEqualsOrSeparateValue) {
  const auto r = parse({"--foreground", "--readonly", "--threads=8", "--port", "1234", "--unix=/tmp/s",
                        "--run", "nbdinfo $uri", "--exit-with-parent", "--log=syslog", "--max-connections=3",
                        "--grace-period=250ms", "--handshake-timeout=2.5", "null"});
  ASSERT_TRUE(r.ok()) << r.error;  // -U with -p serves both
  EXPECT_TRUE(r.options.wants_tcp());
  EXPECT_EQ(r.options.unix_path, std::optional<std::string>("/tmp/s"));
  const auto ok = parse({"--foreground", "--threads=8", "--unix=/tmp/s", "--run", "nbdinfo $uri",
                         "--exit-with-parent", "--log=syslog", "--max-connections=3", "--grace-period=250ms",
                         "--handshake-timeout=2.5", "--busy-poll=250", "null"});
  ASSERT_TRUE(ok.ok()) << ok.error;
  const auto& o = ok.options;
  EXPECT_EQ(o.threads, 8u);
  EXPECT_EQ(o.unix_path, "/tmp/s");
  EXPECT_EQ(o.run, "nbdinfo $uri");
  EXPECT_TRUE(o.exit_with_parent);
  EXPECT_EQ(o.log, LogDestination::syslog_log);
  EXPECT_EQ(o.max_connections, 3u);
  EXPECT_EQ(o.grace_period, core::Duration::from_ms(250));
  EXPECT_EQ(o.handshake_timeout, core::Duration::from_ms(2500));
  EXPECT_EQ(o.busy_poll_us, 250u);
  EXPECT_FALSE(o.wants_tcp());
}

TEST(Options, PluginArgumentsAreNotOptions) {
  const auto r = parse({"-f", "sh", "-", "-v", "size=1"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(r.options.verbose);
  EXPECT_EQ(r.options.plugin, "sh");
  EXPECT_EQ(r.options.plugin_args, (std::vector<std::string>{"-", "-v", "size=1"}));
}

TEST(Options, DoubleDashEndsOptions) {
  const auto r = parse({"-f", "--", "-weird-plugin-name"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.plugin, "-weird-plugin-name");
}

TEST(Options, BadUsageNamesWhatWasWrong) {
  struct Case {
    std::vector<std::string> args;
    const char* mentions;
  };
  const Case cases[] = {
      {{}, "no plugin"},
      {{"-f"}, "no plugin"},
      {{"-x", "memory"}, "-x"},
      {{"--bogus", "memory"}, "--bogus"},
      {{"-p", "99999", "memory"}, "port"},
      {{"-p", "abc", "memory"}, "port"},
      {{"-t", "0", "memory"}, "thread"},
      {{"-t"}, "requires an argument"},
      {{"--log=foo", "memory"}, "--log"},
      {{"--grace-period=soon", "memory"}, "--grace-period"},
      {{"--max-connections=-1", "memory"}, "--max-connections"},
      {{"--busy-poll=10001", "memory"}, "--busy-poll"},
      {{"--busy-poll=fast", "memory"}, "--busy-poll"},
      {{"-s", "-p", "1", "memory"}, "-s"},
      {{"-s", "--run", "true", "memory"}, "-s"},
      {{"-o", "memory"}, "oldstyle"},
      {{"--filter=", "memory"}, "filter"},
      {{"--tls=require", "memory"}, "TLS"},
      {{"--foreground=yes", "memory"}, "takes no argument"},
  };
  for (const auto& c : cases) {
    const auto r = parse(c.args);
    EXPECT_FALSE(r.ok()) << "accepted: " << ::testing::PrintToString(c.args);
    EXPECT_NE(r.error.find(c.mentions), std::string::npos) << r.error;
  }
}

TEST(Options, FiltersKeepTheirOrder) {
  const auto r = parse({"--filter=cow", "--filter", "/x/nbdkit-delay-filter.so", "memory", "1M"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.filters, (std::vector<std::string>{"cow", "/x/nbdkit-delay-filter.so"}));
  EXPECT_EQ(r.options.plugin, "memory");
}

TEST(Options, HelpAndVersionNeedNoPlugin) {
  EXPECT_TRUE(parse({"--help"}).ok());
  EXPECT_TRUE(parse({"-V"}).ok());
  EXPECT_TRUE(parse({"--version"}).options.version);
  EXPECT_TRUE(parse({"--dump-plugin", "memory"}).options.dump_plugin);
  EXPECT_NE(usage_text().find("--max-connections"), std::string::npos);
}

TEST(Options, SingleAndUnixDisableTcp) {
  EXPECT_FALSE(parse({"-s", "memory"}).options.wants_tcp());
  EXPECT_FALSE(parse({"-U", "-", "memory"}).options.wants_tcp());
  EXPECT_FALSE(parse({"--run", "true", "memory"}).options.wants_tcp());
  EXPECT_TRUE(parse({"--run", "true", "-p", "0", "memory"}).options.wants_tcp());
}

TEST(Options, Durations) {
  EXPECT_EQ(parse_duration("1"), core::Duration::from_s(1));
  EXPECT_EQ(parse_duration("2s"), core::Duration::from_s(2));
  EXPECT_EQ(parse_duration("500ms"), core::Duration::from_ms(500));
  EXPECT_EQ(parse_duration("0.25"), core::Duration::from_ms(250));
  EXPECT_EQ(parse_duration("0"), core::Duration{0});
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("1."));
  EXPECT_FALSE(parse_duration("x"));
  EXPECT_FALSE(parse_duration("-1"));
}

}  // namespace
}  // namespace nbdd::net
