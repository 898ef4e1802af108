// nbdkit's command line, as its users type it, under nbdd and (when it is installed) under
// nbdkit 1.32: each row is one command line with `nbdkit` replaced by the server under test.
// Every row states what nbdd must do on its own (exit status, and what its output must
// contain), so a row fails even where nbdkit is absent; with nbdkit present the two must also
// agree: the same exit status, the same `nbdinfo --json` (less the "uri" line, which names
// each server's own socket), or the same --dump-plugin/--*-options lines, as the row says.
// Rows that nbdd's own checks cannot tell apart from nbdkit's (must_contain "") still fail
// on the exit status. Against the nbdd of commit 4ba31bb, 38 of the rows fail.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

namespace nbdd::itest {
namespace {

// How the two outputs (stdout) are compared.
enum class Compare {
  status,          // the exit status only
  json,            // nbdinfo --json output, less "uri" lines
  exact,           // stdout byte for byte
  nbdkit_lines,    // every line nbdkit prints, nbdd prints too (nbdd may print more)
  config_keys,     // --dump-config: every key nbdd prints but version_git is one of nbdkit's,
                   // and plugindir/filterdir/exit_with_parent say the same
  fixed_fields,    // path, name, version, api_version, thread_model, magic_config_key,
                   // has_pread: present in both, name/api_version/thread_model/magic equal
};

struct Row {
  const char* name;
  // After the program name. {dir}: this row's directory (disk.img: 1 MiB of 'd'),
  // {port}: a free TCP port, {J}: `nbdinfo --json "$uri"`, {so}: nbdkit's data plugin .so.
  const char* args;
  Compare compare;
  int status;              // what both must exit with
  const char* must_contain = "";  // in nbdd's stdout
  bool root_only = false;
  // A JSON line that differs on purpose (left out of the comparison, with the reason):
  // nbdd's file plugin offers FAST_ZERO (it fails ENOTSUP at once where fallocate cannot
  // zero), nbdkit 1.32's file plugin does not (docs/plugins.md).
  const char* differs = nullptr;
};

constexpr const char* file_fast_zero = "\"can_fast_zero\"";

const Row rows[] = {
    // Options before, between and after the plugin and its parameters (getopt permutes).
    {"plain", "-U - memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"readonly_after_plugin", "-U - memory 1M -r --run '{J}'", Compare::json, 0, "\"is_read_only\": true"},
    {"run_before_plugin", "--run '{J}' -U - memory size=1M", Compare::json, 0, "\"export-size\": 1048576"},
    {"double_dash", "-U - --run '{J}' -- memory 1M", Compare::json, 0, "\"export-size\": 1048576"},
    {"file_readonly_after", "-U - file {dir}/disk.img -r --run '{J}'", Compare::json, 0, "\"is_read_only\": true"},
    // nbdkit's long names and aliases.
    {"read_only", "-U - --read-only memory 1M --run '{J}'", Compare::json, 0, "\"is_read_only\": true"},
    {"readonly", "-U - --readonly memory 1M --run '{J}'", Compare::json, 0, "\"is_read_only\": true"},
    {"export_name", "-U - --export-name=foo memory 1M --run '{J}'", Compare::json, 0, "\"export-name\": \"foo\""},
    {"export", "-U - --export foo memory 1M --run '{J}'", Compare::json, 0, "\"export-name\": \"foo\""},
    {"exportname_after", "-U - memory 1M --exportname=foo --run '{J}'", Compare::json, 0, "\"export-name\": \"foo\""},
    {"abbreviation", "--fore -U - memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"abbreviation_exit", "-U - --exit --thr=2 memory 1M --run '{J}'", Compare::json, 0, "\"export-size\""},
    {"no_fork", "--no-fork --unix - memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"threads_zero", "-U - -t 0 memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"threads_long", "-U - --threads=4 memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"verbose", "-U - --verbose memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"log_null", "-U - --log=null memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"newstyle", "-U - -n --new-style --newstyle memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"mask_handshake_all", "-U - --mask-handshake=3 memory 1M --run '{J}'", Compare::json, 0, "\"export-size\""},
    // Only fixed newstyle offered (no NO_ZEROES), and no structured replies: libnbd copes
    // with both; --no-sr shows as no structured replies and no block status.
    {"mask_handshake_fixed_only", "-U - --mask-handshake=1 memory 1M --run '{J}'", Compare::json, 0, "\"export-size\""},
    {"no_sr", "-U - --no-sr memory 1M --run '{J}'", Compare::json, 0, "\"can_df\": false"},
    {"tls_off", "-U - --tls=off memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    // TLS with pre-shared keys ({dir}/keys.psk, user alice): $tls and an nbds URI, then a
    // TLS client ({JT}: nbdinfo with alice's key).
    {"tls_require_psk", "-U - --tls=require --tls-psk={dir}/keys.psk memory 1M --run 'echo tls=$tls; {JT}'",
     Compare::json, 0, "\"TLS\": true"},
    // --tls=on: $uri stays nbd+unix (TLS is offered, not required), so this client stays plain.
    {"tls_on_psk", "-U - --tls=on --tls-psk={dir}/keys.psk memory 1M --run 'echo tls=$tls; {JT}'", Compare::json, 0,
     "tls=1\n"},
    {"tls_require_plain_client", "-U - --tls=require --tls-psk={dir}/keys.psk memory 1M --run '{J}'", Compare::status,
     1},
    {"debug_flag", "-U - -D memory.unused=1 memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"swap", "-U - --swap memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"tcp", "-i 127.0.0.1 -p {port} memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"tcp_long", "--ip-addr=127.0.0.1 --port={port} memory 1M --run '{J}'", Compare::json, 0, "\"export-size\""},
    {"ipv4_only", "-4 -p {port} memory 1M --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"user_group", "-U {dir}/u.sock -u nobody -g nogroup memory 1M --run '{J}'", Compare::json, 0, "\"export-size\"",
     true},
    // Plugin parameters users rely on.
    {"memory_sparse", "-U - memory 1M allocator=sparse --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"memory_malloc", "-U - memory 1M allocator=malloc --run '{J}'", Compare::json, 0, "\"export-size\": 1048576"},
    {"memory_malloc_mlock", "-U - memory size=1M allocator=malloc,mlock=true --run '{J}'", Compare::json, 0,
     "\"export-size\": 1048576"},
    {"file_cache_fadvise", "-U - file file={dir}/disk.img cache=none fadvise=random --run '{J}'", Compare::json, 0,
     "\"export-size\": 1048576", false, file_fast_zero},
    {"file_fadvise_seq", "-U - file {dir}/disk.img fadvise=sequential cache=default --run '{J}'", Compare::json, 0,
     "\"export-size\": 1048576", false, file_fast_zero},
    // Bad usage: both exit 1 (-f: a server that wrongly starts is killed by the time limit).
    {"unknown_option", "-f --bogus memory 1M", Compare::status, 1},
    {"unknown_after_plugin", "-f memory 1M --bogus", Compare::status, 1},
    {"ambiguous", "-f --no memory 1M", Compare::status, 1},
    {"negative_threads", "-f -t -1 memory 1M", Compare::status, 1},
    {"missing_value", "-f memory 1M --run", Compare::status, 1},
    {"no_plugin", "-f", Compare::status, 1},
    {"dump_plugin_alone", "--dump-plugin", Compare::status, 1},
    {"single_and_port", "-f -s -p 10809 memory 1M", Compare::status, 1},
    {"bad_log", "-f --log=foo memory 1M", Compare::status, 1},
    {"bad_tls", "-f --tls=maybe memory 1M", Compare::status, 1},
    {"bad_debug_flag", "-f -D nodot memory 1M", Compare::status, 1},
    {"bad_mask", "-f --mask-handshake=x memory 1M", Compare::status, 1},
    {"no_such_user", "-f -U - -u no-such-user-here memory 1M", Compare::status, 1},
    {"bad_allocator", "-f -U - memory 1M allocator=foo", Compare::status, 1},
    {"bad_mlock", "-f -U - memory 1M allocator=malloc,mlock=maybe", Compare::status, 1},
    {"bad_cache", "-f -U - file {dir}/disk.img cache=bogus", Compare::status, 1},
    {"bad_fadvise", "-f -U - file {dir}/disk.img fadvise=bogus", Compare::status, 1},
    // What the server says about itself.
    {"help", "--help", Compare::status, 0, "--run"},
    {"help_abbreviated", "--h", Compare::status, 0, "--run"},
    {"version", "--version", Compare::status, 0},
    {"short_options", "--short-options", Compare::exact, 0, "-V\n"},
    {"long_options", "--long-options", Compare::nbdkit_lines, 0, "--read-only\n"},
    {"dump_config", "--dump-config", Compare::config_keys, 0, "plugindir=/"},
    {"dump_config_first", "--dump-config --bogus", Compare::config_keys, 0, "binary=/"},
    {"dump_plugin_after", "memory --dump-plugin", Compare::fixed_fields, 0, "name=memory\n"},
    {"dump_plugin_file", "--dump-plugin file", Compare::fixed_fields, 0, "magic_config_key=file\n"},
    {"dump_plugin_nbdkit_so", "{so} --dump-plugin", Compare::exact, 0, "has_pread=1\n"},
};

struct Outcome {
  int status = -1;
  std::string out;
  std::string err;
};

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

Outcome run_row(const std::string& binary, const Row& row, const TempDir& dir, const std::string& tag) {
  std::string args = replaced(row.args, "{J}", "nbdinfo --json \"$uri\"");
  // nbdinfo as alice over TLS: the user goes into the URI's authority, the key file into its query.
  args = replaced(args, "{JT}", "nbdinfo --json \"$(echo \"$uri\" | sed s,//,//alice@,)&tls-psk-file={dir}/keys.psk\"");
  args = replaced(args, "{dir}", dir.path);
  args = replaced(args, "{port}", std::to_string(free_tcp_port()));
  args = replaced(args, "{so}", std::string(NBDD_NBDKIT_PLUGINDIR) + "/nbdkit-data-plugin.so");
  ::unlink(dir.file("u.sock").c_str());
  const std::string err = dir.file(tag + ".err");
  // Under ASan: nbdkit's own plugins leak at dlopen (tests/nbdkit/lsan.supp says which, and
  // that nbdkit leaks the same); nbdd's own leaks are still reported.
  const std::string env =
      "LSAN_OPTIONS=suppressions=" + std::string(NBDD_NBDKIT_LSAN_SUPP) + ":fast_unwind_on_malloc=0 ";
  const auto r = run_shell(env + "'" + binary + "' " + args + " 2>'" + err + "'", 60);
  return {r.status, r.output, read_file(err)};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string without_uri(const std::string& json, const char* differs) {
  std::string out;
  for (const auto& line : lines_of(json))
    if (line.find("\"uri\"") == std::string::npos && (!differs || line.find(differs) == std::string::npos))
      out += line + "\n";
  return out;
}

std::string value_of(const std::string& text, const std::string& key) {
  for (const auto& line : lines_of(text))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return "<absent>";
}

class CliTable : public ::testing::TestWithParam<Row> {};

TEST_P(CliTable, SameAsNbdkit) {
  const Row& row = GetParam();
  if (row.root_only && ::geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir;
  ::chmod(dir.path.c_str(), 0755);  // reachable after -u nobody
  write_file(dir.file("disk.img"), std::string(1 << 20, 'd'));
  ASSERT_EQ(run_shell("psktool -u alice -p '" + dir.file("keys.psk") + "' >/dev/null").status, 0)
      << "psktool (gnutls-bin)";
  const Outcome nbdd = run_row(nbdd_binary(), row, dir, "nbdd");
  EXPECT_EQ(nbdd.status, row.status) << row.args << "\nstdout:\n" << nbdd.out << "stderr:\n" << nbdd.err;
  EXPECT_NE(nbdd.out.find(row.must_contain), std::string::npos) << row.args << "\nstdout:\n" << nbdd.out
                                                                 << "stderr:\n" << nbdd.err;
  for (const char* bad : {"ThreadSanitizer", "AddressSanitizer", "runtime error:"})
    EXPECT_EQ(nbdd.err.find(bad), std::string::npos) << nbdd.err;

  const std::string nbdkit_path = nbdkit_binary();
  if (nbdkit_path.empty()) return;  // the comparison needs nbdkit; nbdd's own checks ran
  const Outcome nbdkit = run_row(nbdkit_path, row, dir, "nbdkit");
  ASSERT_EQ(nbdkit.status, row.status) << "nbdkit: " << row.args << "\n" << nbdkit.out << nbdkit.err;
  switch (row.compare) {
    case Compare::status:
      break;
    case Compare::json:
      EXPECT_EQ(without_uri(nbdd.out, row.differs), without_uri(nbdkit.out, row.differs)) << row.args;
      break;
    case Compare::exact:
      EXPECT_EQ(nbdd.out, nbdkit.out) << row.args;
      break;
    case Compare::nbdkit_lines: {
      const auto ours = lines_of(nbdd.out);
      for (const auto& line : lines_of(nbdkit.out))
        EXPECT_NE(std::find(ours.begin(), ours.end(), line), ours.end()) << "nbdd lacks: " << line;
      break;
    }
    case Compare::config_keys: {
      std::vector<std::string> theirs;
      for (const auto& line : lines_of(nbdkit.out)) theirs.push_back(line.substr(0, line.find('=')));
      for (const auto& line : lines_of(nbdd.out)) {
        const std::string key = line.substr(0, line.find('='));
        if (key == "version_git") continue;  // nbdd's own
        EXPECT_NE(std::find(theirs.begin(), theirs.end(), key), theirs.end()) << "not one of nbdkit's keys: " << key;
      }
      for (const char* key : {"plugindir", "filterdir", "exit_with_parent"})
        EXPECT_EQ(value_of(nbdd.out, key), value_of(nbdkit.out, key)) << key;
      break;
    }
    case Compare::fixed_fields:
      for (const char* key : {"path", "version", "has_pread"}) {
        EXPECT_NE(value_of(nbdd.out, key), "<absent>") << key << " in nbdd's:\n" << nbdd.out;
        EXPECT_NE(value_of(nbdkit.out, key), "<absent>") << key << " in nbdkit's:\n" << nbdkit.out;
      }
      for (const char* key : {"name", "api_version", "thread_model", "magic_config_key"})
        EXPECT_EQ(value_of(nbdd.out, key), value_of(nbdkit.out, key)) << key;
      EXPECT_EQ(nbdd.out.rfind("path=", 0), 0u) << "path first, as nbdkit's";
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(NbdkitCommandLines, CliTable, ::testing::ValuesIn(rows),
                         [](const ::testing::TestParamInfo<Row>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace nbdd::itest
