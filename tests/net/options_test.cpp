// The nbdkit-compatible command line (net/options.hpp).
#include <gtest/gtest.h>

#include "net/call_log.hpp"
#include "net/options.hpp"

#include <cerrno>

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
  EXPECT_EQ(r.options.io_uring, IoUringUse::unix_only);
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
                         "--handshake-timeout=2.5", "--busy-poll=250", "--io-uring=off", "null"});
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
  EXPECT_EQ(o.io_uring, IoUringUse::off);
  EXPECT_EQ(parse({"--io-uring=on", "null"}).options.io_uring, IoUringUse::on);
  EXPECT_EQ(parse({"--io-uring=unix", "null"}).options.io_uring, IoUringUse::unix_only);
  EXPECT_FALSE(o.wants_tcp());
}

// nbdkit's getopt_long permutes: options after the plugin name are options too, and the
// words that are not options keep their order ("-" alone is a word).
TEST(Options, OptionsAnywhereOnTheLine) {
  auto r = parse({"-f", "sh", "-", "-v", "size=1"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.options.verbose);
  EXPECT_EQ(r.options.plugin, "sh");
  EXPECT_EQ(r.options.plugin_args, (std::vector<std::string>{"-", "size=1"}));

  r = parse({"file", "x.img", "-r"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.options.readonly);
  EXPECT_EQ(r.options.plugin, "file");
  EXPECT_EQ(r.options.plugin_args, std::vector<std::string>{"x.img"});

  r = parse({"-U", "-", "memory", "1G", "--run", "nbdinfo $uri"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.unix_path, "-");
  EXPECT_EQ(r.options.run, "nbdinfo $uri");
  EXPECT_EQ(r.options.plugin_args, std::vector<std::string>{"1G"});

  r = parse({"memory", "--dump-plugin"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.options.dump_plugin);
  EXPECT_TRUE(r.options.plugin_args.empty());

  // Words between options, and an option's value that looks like an option.
  r = parse({"memory", "-e", "-r", "size=1M", "--filter", "cow", "a=b", "-fv"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.exportname, "-r");
  EXPECT_FALSE(r.options.readonly);
  EXPECT_EQ(r.options.filters, std::vector<std::string>{"cow"});
  EXPECT_TRUE(r.options.foreground && r.options.verbose);
  EXPECT_EQ(r.options.plugin_args, (std::vector<std::string>{"size=1M", "a=b"}));
}

TEST(Options, DoubleDashEndsOptions) {
  auto r = parse({"-f", "--", "-weird-plugin-name"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.plugin, "-weird-plugin-name");
  r = parse({"sh", "script", "--", "-v", "--run=x"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(r.options.verbose);
  EXPECT_FALSE(r.options.run);
  EXPECT_EQ(r.options.plugin_args, (std::vector<std::string>{"script", "-v", "--run=x"}));
}

// glibc's getopt under POSIXLY_CORRECT stops at the first word that is not an option.
TEST(Options, PosixlyCorrectStopsAtThePlugin) {
  const auto r = parse_options(std::vector<std::string>{"nbdd", "-f", "file", "x.img", "-r"}, true);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.options.foreground);
  EXPECT_FALSE(r.options.readonly);
  EXPECT_EQ(r.options.plugin_args, (std::vector<std::string>{"x.img", "-r"}));
}

// Every alias of nbdkit 1.32's option table sets what its short form sets.
TEST(Options, NbdkitAliases) {
  struct Case {
    std::vector<std::string> args;
    bool (*holds)(const Options&);
  };
  const Case cases[] = {
      {{"--read-only"}, [](const Options& o) { return o.readonly; }},
      {{"--readonly"}, [](const Options& o) { return o.readonly; }},
      {{"--pid-file=/p"}, [](const Options& o) { return o.pidfile == "/p"; }},
      {{"--pidfile", "/p"}, [](const Options& o) { return o.pidfile == "/p"; }},
      {{"--export-name=x"}, [](const Options& o) { return o.exportname == "x"; }},
      {{"--export", "x"}, [](const Options& o) { return o.exportname == "x"; }},
      {{"--exportname=x"}, [](const Options& o) { return o.exportname == "x"; }},
      {{"--foreground"}, [](const Options& o) { return o.foreground; }},
      {{"--no-fork"}, [](const Options& o) { return o.foreground; }},
      {{"--ip-addr=::1"}, [](const Options& o) { return o.ipaddr == "::1"; }},
      {{"--ipaddr", "::1"}, [](const Options& o) { return o.ipaddr == "::1"; }},
      {{"--new-style"}, [](const Options& o) { return !o.readonly; }},
      {{"--newstyle"}, [](const Options& o) { return !o.readonly; }},
      {{"--single"}, [](const Options& o) { return o.single; }},
      {{"--stdin"}, [](const Options& o) { return o.single; }},
      {{"--unix=/s"}, [](const Options& o) { return o.unix_path == "/s"; }},
      {{"--port=10810"}, [](const Options& o) { return o.port == "10810"; }},
      {{"--threads=3"}, [](const Options& o) { return o.threads == 3; }},
      {{"--verbose"}, [](const Options& o) { return o.verbose; }},
      {{"--version"}, [](const Options& o) { return o.version; }},
      {{"--ipv4-only"}, [](const Options& o) { return o.family == AddressFamily::ipv4; }},
      {{"-4"}, [](const Options& o) { return o.family == AddressFamily::ipv4; }},
      {{"--ipv6-only"}, [](const Options& o) { return o.family == AddressFamily::ipv6; }},
      {{"-6"}, [](const Options& o) { return o.family == AddressFamily::ipv6; }},
      {{"-u", "nobody"}, [](const Options& o) { return o.user == "nobody"; }},
      {{"--user=nobody"}, [](const Options& o) { return o.user == "nobody"; }},
      {{"-g", "nogroup"}, [](const Options& o) { return o.group == "nogroup"; }},
      {{"--group=nogroup"}, [](const Options& o) { return o.group == "nogroup"; }},
      {{"--log=null"}, [](const Options& o) { return o.log == LogDestination::null_log; }},
      {{"--log=stderr"}, [](const Options& o) { return o.log == LogDestination::stderr_log; }},
      {{"--swap"}, [](const Options& o) { return o.swap; }},
      {{"-D", "memory.x=1"}, [](const Options& o) { return o.debug_flags == std::vector<std::string>{"memory.x=1"}; }},
      {{"--debug=a.b=0x10"}, [](const Options& o) { return o.debug_flags.size() == 1; }},
      {{"--mask-handshake=3"}, [](const Options& o) { return !o.readonly; }},
      {{"--mask-handshake=0xffffffff"}, [](const Options& o) { return !o.readonly; }},
      // Unambiguous prefixes, and prefixes shared only by aliases of one option.
      {{"--fore"}, [](const Options& o) { return o.foreground; }},
      {{"--read"}, [](const Options& o) { return o.readonly; }},
      {{"--exp=x"}, [](const Options& o) { return o.exportname == "x"; }},
      {{"--thr", "5"}, [](const Options& o) { return o.threads == 5; }},
      {{"--verb"}, [](const Options& o) { return o.verbose; }},
      {{"--new"}, [](const Options&) { return true; }},
      // Prefixes nbdkit resolves keep nbdkit's meaning despite nbdd's own options.
      {{"--exit"}, [](const Options& o) { return o.exit_with_parent; }},
      {{"--gr", "0"}, [](const Options& o) { return o.group == "0"; }},
      {{"--h"}, [](const Options& o) { return o.help; }},
      {{"--ma=3"}, [](const Options& o) { return o.max_connections == 0; }},  // --mask-handshake
      // nbdd's own options abbreviate where nothing of nbdkit's competes.
      {{"--exit-t=1"}, [](const Options& o) { return o.exit_timeout == core::Duration::from_s(1); }},
      {{"--grace=2"}, [](const Options& o) { return o.grace_period == core::Duration::from_s(2); }},
      {{"--max=5"}, [](const Options& o) { return o.max_connections == 5; }},
      {{"--busy=7"}, [](const Options& o) { return o.busy_poll_us == 7; }},
  };
  for (const auto& c : cases) {
    auto args = c.args;
    args.insert(args.end(), {"memory", "1M"});
    const auto r = parse(args);
    ASSERT_TRUE(r.ok()) << ::testing::PrintToString(c.args) << ": " << r.error;
    EXPECT_TRUE(c.holds(r.options)) << ::testing::PrintToString(c.args);
  }
}

TEST(Options, ThreadsAsNbdkitReadsThem) {
  EXPECT_EQ(parse({"-t", "0", "memory"}).options.threads, 16u);  // 0 = the default
  EXPECT_EQ(parse({"-t", "0x10", "memory"}).options.threads, 16u);
  EXPECT_EQ(parse({"-t", "010", "memory"}).options.threads, 8u);
  EXPECT_EQ(parse({"-t", " 4", "memory"}).options.threads, 4u);
  EXPECT_EQ(parse({"-t1", "memory"}).options.threads, 1u);
  for (const char* bad : {"-1", "", "4x", "1025", "+3"})
    EXPECT_FALSE(parse({"-t", bad, "memory"}).ok()) << bad;
}

TEST(Options, TlsOptions) {
  auto r = parse({"--tls=require", "--tls-certificates=/etc/pki/nbdkit", "--tls-verify-peer", "memory", "1M"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.tls, Options::Tls::require);
  EXPECT_TRUE(r.options.tls_given);
  EXPECT_EQ(r.options.tls_certificates, "/etc/pki/nbdkit");
  EXPECT_TRUE(r.options.tls_verify_peer);
  EXPECT_FALSE(parse({"memory"}).options.tls_given);
  r = parse({"memory", "--tls", "on", "--tls-psk", "keys.psk"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.tls, Options::Tls::on);
  EXPECT_EQ(r.options.tls_psk, "keys.psk");
  // nbdkit: require/required/force (any case), else nbdkit_parse_bool's words.
  const std::pair<const char*, Options::Tls> spellings[] = {
      {"off", Options::Tls::off},     {"0", Options::Tls::off},          {"No", Options::Tls::off},
      {"on", Options::Tls::on},       {"yes", Options::Tls::on},         {"TRUE", Options::Tls::on},
      {"1", Options::Tls::on},        {"require", Options::Tls::require}, {"Required", Options::Tls::require},
      {"force", Options::Tls::require}};
  for (const auto& [text, mode] : spellings) {
    const auto t = parse({std::string("--tls=") + text, "memory"});
    ASSERT_TRUE(t.ok()) << text << ": " << t.error;
    EXPECT_EQ(t.options.tls, mode) << text;
  }
  EXPECT_FALSE(parse({"--tls=maybe", "memory"}).ok());
}

TEST(Options, ExitTimeout) {
  EXPECT_EQ(parse({"memory"}).options.exit_timeout, core::Duration::from_s(2));
  EXPECT_EQ(parse({"--exit-timeout=500ms", "memory"}).options.exit_timeout, core::Duration::from_ms(500));
  EXPECT_EQ(parse({"memory", "--exit-timeout", "3"}).options.exit_timeout, core::Duration::from_s(3));
  EXPECT_FALSE(parse({"--exit-timeout=soon", "memory"}).ok());
}

// --dump-config, --long-options and --short-options act when met (nbdkit exits inside its
// getopt loop): what follows is not parsed, what came before is.
TEST(Options, ImmediateActions) {
  EXPECT_EQ(parse({"--dump-config"}).options.immediate, ImmediateAction::dump_config);
  EXPECT_EQ(parse({"--dump-config", "--bogus"}).options.immediate, ImmediateAction::dump_config);
  EXPECT_TRUE(parse({"--dump-config", "--bogus"}).ok());
  EXPECT_FALSE(parse({"--bogus", "--dump-config"}).ok());
  EXPECT_EQ(parse({"--long-options"}).options.immediate, ImmediateAction::long_options);
  EXPECT_EQ(parse({"--short-options"}).options.immediate, ImmediateAction::short_options);
  EXPECT_EQ(short_options_text(), "-4\n-6\n-D\n-e\n-f\n-g\n-i\n-n\n-o\n-p\n-P\n-r\n-s\n-t\n-u\n-U\n-v\n-V\n");
}

// nbdkit 1.32.5's `nbdkit --long-options`: each is known to nbdd (works or is refused by
// name, never "unknown"), listed by nbdd's --long-options, and spelled out in full wins over
// any longer name it is a prefix of.
TEST(Options, EveryNbdkitLongOptionIsKnown) {
  const char* nbdkit_long[] = {
      "ipv4-only",   "ipv6-only",     "debug",   "dump-config",   "dump-plugin",   "exit-with-parent",
      "export",      "export-name",   "exportname", "filter",     "foreground",    "no-fork",
      "group",       "help",          "ip-addr", "ipaddr",        "log",           "mask-handshake",
      "new-style",   "newstyle",      "no-sr",   "old-style",     "oldstyle",      "pid-file",
      "pidfile",     "port",          "read-only", "readonly",    "run",           "selinux-label",
      "single",      "stdin",         "swap",    "threads",       "tls",           "tls-certificates",
      "tls-psk",     "tls-verify-peer", "unix",  "user",          "verbose",       "version",
      "vsock"};
  const std::string listed = long_options_text();
  for (const char* name : nbdkit_long) {
    EXPECT_NE(listed.find(std::string("--") + name + "\n"), std::string::npos) << name;
    const auto r = parse({std::string("--") + name, "x", "memory"});
    EXPECT_EQ(r.error.find("unknown option"), std::string::npos) << name << ": " << r.error;
    EXPECT_EQ(r.error.find("ambiguous"), std::string::npos) << name << ": " << r.error;
  }
}

TEST(Options, MaskHandshakeAndNoSrAreKept) {
  auto r = parse({"--mask-handshake=1", "--no-sr", "memory"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.handshake_flags_mask, 1);
  EXPECT_TRUE(r.options.no_structured_replies);
  r = parse({"--mask-handshake=0", "memory"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.options.handshake_flags_mask, 0);
  r = parse({"memory"});
  EXPECT_EQ(r.options.handshake_flags_mask, 0xffff);
  EXPECT_FALSE(r.options.no_structured_replies);
}

TEST(Options, AmbiguousPrefixesNameTheCandidates) {
  auto r = parse({"--no", "memory"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("ambiguous"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("--no-fork"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("--no-sr"), std::string::npos) << r.error;
  EXPECT_FALSE(parse({"--ip=x", "memory"}).ok());   // ip-addr, ipaddr, ipv4-only, ipv6-only
  EXPECT_FALSE(parse({"--tls-", "x", "memory"}).ok());
  EXPECT_FALSE(parse({"--p", "1", "memory"}).ok());  // pid-file, pidfile, port
}

// The rest of nbdkit's options: refused, naming the option and saying nbdd lacks it.
TEST(Options, UnsupportedNbdkitOptionsAreRefusedByName) {
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"-o"}, "-o"},
      {{"--oldstyle"}, "--oldstyle"},
      {{"--old-style"}, "--old-style"},
      {{"--vsock"}, "--vsock"},
      {{"--selinux-label=system_u:object_r:svirt_t:s0"}, "--selinux-label"},
  };
  for (const auto& [args, name] : cases) {
    auto full = args;
    full.insert(full.end(), {"memory", "1M"});
    const auto r = parse(full);
    EXPECT_FALSE(r.ok()) << name;
    EXPECT_NE(r.error.find(name), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("not supported"), std::string::npos) << r.error;
  }
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
      {{"-t", "-1", "memory"}, "thread"},
      {{"--dump-plugin"}, "--dump-plugin"},
      {{"-s", "--dump-plugin", "memory"}, "-s"},
      {{"-D", "nodot", "memory"}, "NAME.FLAG=N"},
      {{"-D", "a.b", "memory"}, "NAME.FLAG=N"},
      {{"-D", "a.b=x", "memory"}, "NAME.FLAG=N"},
      {{"--mask-handshake=x", "memory"}, "--mask-handshake"},
      {{"--log=null2", "memory"}, "--log"},
      {{"--port", "", "memory"}, "port"},
      {{"memory", "--port"}, "requires an argument"},
      {{"-t"}, "requires an argument"},
      {{"--log=foo", "memory"}, "--log"},
      {{"--log=syslogx", "memory"}, "--log"},
      {{"--grace-period=soon", "memory"}, "--grace-period"},
      {{"--max-connections=-1", "memory"}, "--max-connections"},
      {{"--busy-poll=10001", "memory"}, "--busy-poll"},
      {{"--busy-poll=fast", "memory"}, "--busy-poll"},
      {{"--io-uring=yes", "memory"}, "--io-uring"},
      {{"--io-uring=tcp", "memory"}, "--io-uring"},
      {{"-s", "-p", "1", "memory"}, "-s"},
      {{"-s", "--run", "true", "memory"}, "-s"},
      {{"-o", "memory"}, "oldstyle"},
      {{"--filter=", "memory"}, "filter"},
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

// -v's plugin-call line (net/call_log.hpp): nbdkit's words for each call, then the result.
TEST(CallLog, NbdkitWordsAndTheResult) {
  core::PluginCall call;
  call.kind = core::CallKind::pread;
  call.count = 4096;
  call.offset = 0;
  EXPECT_EQ(describe_plugin_call("memory", call, 0), "memory: pread count=4096 offset=0 -> 0");
  EXPECT_EQ(describe_plugin_call("memory", call, EIO), "memory: pread count=4096 offset=0 -> error EIO");
  call.kind = core::CallKind::pwrite;
  call.offset = 1024;
  call.count = 512;
  call.flags = core::call_flag::fua;
  EXPECT_EQ(describe_plugin_call("file", call, ENOSPC), "file: pwrite count=512 offset=1024 fua=1 -> error ENOSPC");
  call.kind = core::CallKind::zero;
  call.flags = core::call_flag::may_trim | core::call_flag::fast_zero;
  EXPECT_EQ(describe_plugin_call("m", call, ENOTSUP),
            "m: zero count=512 offset=1024 may_trim=1 fua=0 fast=1 -> error ENOTSUP");
  call.kind = core::CallKind::trim;
  call.flags = 0;
  EXPECT_EQ(describe_plugin_call("m", call, 0), "m: trim count=512 offset=1024 fua=0 -> 0");
  call.kind = core::CallKind::flush;
  EXPECT_EQ(describe_plugin_call("m", call, 0), "m: flush -> 0");
  call.kind = core::CallKind::cache;
  EXPECT_EQ(describe_plugin_call("m", call, 0), "m: cache count=512 offset=1024 -> 0");
  std::vector<core::Extent> extents{{0, 512, 0}, {512, 512, 3}};
  call.kind = core::CallKind::extents;
  call.flags = core::call_flag::req_one;
  call.extents = &extents;
  EXPECT_EQ(describe_plugin_call("m", call, 0), "m: extents count=512 offset=1024 req_one=1 -> 0 extents=2");
  EXPECT_EQ(describe_plugin_call("m", call, 12345), "m: extents count=512 offset=1024 req_one=1 -> error errno 12345");
}

TEST(CallLog, LifecycleCallsAndHostileExportNames) {
  core::PluginCall call;
  call.kind = core::CallKind::open;
  call.readonly = true;
  const std::string name = std::string("a\"b\n") + std::string(300, 'x');
  call.export_name = name;
  core::ExportInfo info;
  info.name = "disk";
  info.size_bytes = 1048576;
  call.info = &info;
  const std::string line = describe_plugin_call("sh", call, 0);
  EXPECT_EQ(line.rfind("sh: open readonly=1 exportname=\"a\\\"b\\x0a", 0), 0u) << line;
  EXPECT_NE(line.find("x\"... -> 0 exportname=\"disk\" size=1048576"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_LT(line.size(), 400u);  // bounded whatever the client sent
  call.kind = core::CallKind::preconnect;
  EXPECT_EQ(describe_plugin_call("sh", call, EPERM), "sh: preconnect readonly=1 -> error EPERM");
  call.kind = core::CallKind::close;
  EXPECT_EQ(describe_plugin_call("sh", call, 0), "sh: close -> 0");
  std::vector<core::ExportEntry> exports{{"a", ""}};
  call.kind = core::CallKind::list_exports;
  call.readonly = false;
  call.exports = &exports;
  EXPECT_EQ(describe_plugin_call("sh", call, 0), "sh: list_exports readonly=0 -> 0 exports=1");
}

}  // namespace
}  // namespace nbdd::net
