// TLS with real clients (issue 24): nbdinfo, nbdsh, nbdcopy, /usr/bin/python3 libnbd and
// qemu-img against `nbdd --tls=...`, with certificates and PSK files made by certtool and
// psktool at run time (tests/net/tls_certs.hpp). Refusals are checked against the clients'
// own messages, and where nbdkit is installed against what it does with the same files.
#include <gtest/gtest.h>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/net/raw_client.hpp"
#include "tests/net/tls_certs.hpp"

namespace nbdd::itest {
namespace {

class Tls : public ::testing::Test {
 protected:
  static TempDir* pki;
  static void SetUpTestSuite() {
    pki = new TempDir;
    const std::string failed = testing::make_test_pki(pki->path);
    ASSERT_EQ(failed, "") << "certtool/psktool (gnutls-bin) failed at " << failed;
  }
  static void TearDownTestSuite() {
    delete pki;
    pki = nullptr;
  }
  static std::string at(const std::string& name) { return pki->file(name); }

  static std::string nbds(const Daemon& d, const std::string& query, const std::string& user = "") {
    return "nbds://" + (user.empty() ? "" : user + "@") + "localhost:" + std::to_string(d.port()) + "/?" + query;
  }
  static std::string certs(const std::string& client_dir) { return "tls-certificates=" + at(client_dir); }

  TempDir dir;
};
TempDir* Tls::pki = nullptr;

// nbdinfo --size through TLS: the size, or the client's error text.
CommandResult size_of(const std::string& uri) { return run_shell("nbdinfo --size '" + uri + "'"); }

TEST_F(Tls, X509RequireServesTlsClientsAndRefusesPlainOnes) {
  auto d = Daemon::start_tcp(dir, {"-v", "--tls=require", "--tls-certificates=" + at("server"), "memory", "1M"});
  ASSERT_TRUE(d);
  auto ok = size_of(nbds(*d, certs("client")));
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(ok.output, "1048576\n");
  // A plain client: every option but STARTTLS gets ERR_TLS_REQD, which libnbd reports.
  auto plain = run_shell("nbdinfo --size " + d->uri());
  EXPECT_NE(plain.status, 0) << plain.output;
  auto plain_list = run_shell("nbdinfo --list " + d->uri());
  EXPECT_NE(plain_list.status, 0) << plain_list.output;
  // nbdinfo reports the TLS session it got.
  auto info = run_shell("nbdinfo '" + nbds(*d, certs("client")) + "'");
  EXPECT_NE(info.output.find("with TLS"), std::string::npos) << info.output;
  EXPECT_TRUE(d->wait_log("tls: handshake done: (TLS1.3)"));
  // Still serving after the refusals.
  EXPECT_EQ(size_of(nbds(*d, certs("client"))).status, 0);
}

TEST_F(Tls, DataSurvivesTlsBothWaysThroughLibnbdAndNbdcopy) {
  auto d = Daemon::start_tcp(dir, {"--tls=require", "--tls-certificates=" + at("server"), "memory", "8M"});
  ASSERT_TRUE(d);
  const std::string script = dir.file("rw.py");
  write_file(script, R"(import nbd, os, sys
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_certificates(sys.argv[2])
h.connect_tcp("localhost", sys.argv[1])
assert h.get_tls_negotiated()
for size, off in ((4096, 0), (1 << 20, 4096), (3 * 1024 * 1024 + 17, 2 << 20)):
    data = os.urandom(size)
    h.pwrite(data, off)
    assert h.pread(size, off) == data, size
h.shutdown()
print("ok")
)");
  auto r = run_shell("/usr/bin/python3 " + script + " " + std::to_string(d->port()) + " " + at("client"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "ok\n");
  // nbdcopy: 8 MiB out through TLS into a file and back.
  const std::string src = dir.file("src.img"), back = dir.file("back.img");
  ASSERT_EQ(run_shell("head -c 8388608 /dev/urandom > " + src).status, 0);
  auto up = run_shell("nbdcopy " + src + " '" + nbds(*d, certs("client")) + "'");
  EXPECT_EQ(up.status, 0) << up.output;
  auto down = run_shell("nbdcopy '" + nbds(*d, certs("client")) + "' " + back);
  EXPECT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(run_shell("cmp " + src + " " + back).status, 0);
  // nbdsh, as a user would.
  auto sh = run_shell("nbdsh -c 'h.set_uri_allow_local_file(True)' -c 'h.connect_uri(\"" + nbds(*d, certs("client")) +
                      "\")' -c 'print(h.get_size(), h.get_tls_negotiated())'");
  EXPECT_EQ(sh.output, "8388608 True\n") << sh.output;
}

// libnbd checks the server's certificate over TCP (over a Unix socket it does not, for
// nbdkit as for nbdd): another CA, or an expired certificate, fails the handshake.
TEST_F(Tls, ClientsRefuseAServerCertificateFromAnotherCaOrExpired) {
  auto d = Daemon::start_tcp(dir, {"--tls=require", "--tls-certificates=" + at("server"), "memory", "1M"});
  ASSERT_TRUE(d);
  auto other = size_of(nbds(*d, certs("client-other-ca")));
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.output.find("Error in the certificate verification"), std::string::npos) << other.output;
  TempDir dir2;
  auto expired_d = Daemon::start_tcp(dir2, {"--tls=require", "--tls-certificates=" + at("server-expired"), "memory", "1M"});
  ASSERT_TRUE(expired_d);
  auto expired = size_of(nbds(*expired_d, certs("client")));
  EXPECT_NE(expired.status, 0) << expired.output;
  EXPECT_NE(expired.output.find("Error in the certificate verification"), std::string::npos) << expired.output;
  // The daemon keeps serving good clients.
  EXPECT_EQ(size_of(nbds(*d, certs("client"))).status, 0);
}

TEST_F(Tls, VerifyPeerRefusesExpiredRevokedAndMissingClientCertificates) {
  auto d = Daemon::start_tcp(dir, {"--tls=require", "--tls-verify-peer", "--tls-certificates=" + at("server-crl"),
                                   "memory", "1M"});
  ASSERT_TRUE(d);
  EXPECT_EQ(size_of(nbds(*d, certs("client"))).status, 0);
  const std::string no_cert = dir.file("no-client-cert");
  ASSERT_EQ(run_shell("mkdir -p " + no_cert + " && cp " + at("ca-cert.pem") + " " + no_cert + "/").status, 0);
  for (const std::string& client : {std::string("client-expired"), std::string("client-revoked"), no_cert}) {
    SCOPED_TRACE(client);
    auto r = size_of(nbds(*d, "tls-certificates=" + (client[0] == '/' ? client : at(client))));
    EXPECT_NE(r.status, 0) << r.output;
    // TLS 1.3: the client has finished its side when the server checks its certificate,
    // so libnbd sees the refusal (our alert) on its first record. nbdkit, which closes
    // without an alert, gets "non-properly terminated" there.
    EXPECT_NE(r.output.find("nbd_connect_uri: gnutls_"), std::string::npos) << r.output;
  }
  EXPECT_EQ(size_of(nbds(*d, certs("client"))).status, 0);
}

TEST_F(Tls, PskFromPsktoolsFileForLibnbdAndQemu) {
  auto d = Daemon::start_tcp(dir, {"--tls=require", "--tls-psk=" + at("keys.psk"), "memory", "1M"});
  ASSERT_TRUE(d);
  auto ok = size_of(nbds(*d, "tls-psk-file=" + at("keys.psk"), "alice"));
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(ok.output, "1048576\n");
  auto wrong = size_of(nbds(*d, "tls-psk-file=" + at("wrong.psk"), "alice"));
  EXPECT_NE(wrong.status, 0) << wrong.output;
  EXPECT_NE(wrong.output.find("gnutls_handshake"), std::string::npos) << wrong.output;
  auto qemu = run_shell("qemu-img info --output=json --object tls-creds-psk,id=tls0,dir=" + at("qemu-psk") +
                        ",username=alice,endpoint=client --image-opts driver=nbd,host=127.0.0.1,port=" +
                        std::to_string(d->port()) + ",tls-creds=tls0,export=");
  EXPECT_EQ(qemu.status, 0) << qemu.output;
  EXPECT_NE(qemu.output.find("\"virtual-size\": 1048576"), std::string::npos) << qemu.output;
  EXPECT_EQ(size_of(nbds(*d, "tls-psk-file=" + at("keys.psk"), "alice")).status, 0);
}

TEST_F(Tls, QemuImgWithX509CredentialsReadsAndRefusesAnotherCa) {
  auto d = Daemon::start_tcp(dir, {"--tls=require", "--tls-certificates=" + at("server"), "memory", "1M"});
  ASSERT_TRUE(d);
  auto opts = [&](const std::string& client_dir) {
    return "--object tls-creds-x509,id=tls0,dir=" + at(client_dir) +
           ",endpoint=client --image-opts driver=nbd,host=127.0.0.1,port=" + std::to_string(d->port()) +
           ",tls-creds=tls0,export=";
  };
  auto info = run_shell("qemu-img info --output=json " + opts("client"));
  EXPECT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("\"virtual-size\": 1048576"), std::string::npos) << info.output;
  auto refused = run_shell("qemu-img info " + opts("client-other-ca"));
  EXPECT_NE(refused.status, 0) << refused.output;
  EXPECT_NE(refused.output.find("certificate"), std::string::npos) << refused.output;
  // Plain qemu-img against --tls=require: refused with qemu's own message.
  auto plain = run_shell("qemu-img info nbd://127.0.0.1:" + std::to_string(d->port()) + "/");
  EXPECT_NE(plain.status, 0) << plain.output;
  EXPECT_NE(plain.output.find("TLS negotiation required"), std::string::npos) << plain.output;
}

TEST_F(Tls, OnServesPlainAndTlsClients) {
  auto d = Daemon::start_tcp(dir, {"--tls=on", "--tls-certificates=" + at("server"), "memory", "1M"});
  ASSERT_TRUE(d);
  EXPECT_EQ(run_shell("nbdinfo --size " + d->uri()).output, "1048576\n");
  auto tls = run_shell("nbdinfo '" + nbds(*d, certs("client")) + "'");
  EXPECT_NE(tls.output.find("with TLS"), std::string::npos) << tls.output;
}

// -s: TLS over the stdin socket libnbd's connect_command hands nbdd.
TEST_F(Tls, SingleClientOnStdinRunsTls) {
  const std::string script = dir.file("s.py");
  write_file(script, R"(import nbd, sys
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_certificates(sys.argv[2])
h.connect_command([sys.argv[1], "-s", "--tls=require", "--tls-certificates=" + sys.argv[3], "memory", "1M"])
data = bytes(range(256)) * 300
h.pwrite(data, 0)
assert h.pread(len(data), 0) == data
print(h.get_size(), h.get_tls_negotiated())
h.shutdown()
)");
  auto r = run_shell("/usr/bin/python3 " + script + " " + nbdd_binary() + " " + at("client") + " " + at("server"));
  EXPECT_EQ(r.output, "1048576 True\n");
}

#ifdef NBDD_PROBE_PLUGIN
// nbdkit_is_tls() answers for the calling connection: the probe plugin puts it in the
// export description (tests/nbdkit/probe_plugin.c).
TEST_F(Tls, NbdkitIsTlsSaysWhetherTheConnectionUsesTls) {
  auto d = Daemon::start_tcp(dir, {"--tls=on", "--tls-certificates=" + at("server"), NBDD_PROBE_PLUGIN, "size=1M"});
  ASSERT_TRUE(d);
  auto tls = run_shell("nbdinfo '" + nbds(*d, certs("client")) + "'");
  EXPECT_NE(tls.output.find("description: export=default tls=1"), std::string::npos) << tls.output;
  auto plain = run_shell("nbdinfo " + d->uri());
  EXPECT_NE(plain.output.find("description: export=default tls=0"), std::string::npos) << plain.output;
}
#endif

// The sh plugin's TLS argument (open, list_exports) says whether the connection has TLS up
// (Host::is_tls), as nbdkit's sh plugin does: true over nbds://, false for a plain client.
TEST_F(Tls, ShPluginIsToldWhetherTheConnectionUsesTls) {
  const std::string log = dir.file("sh.log");
  write_file(dir.file("s.sh"), "#!/bin/sh\n"
             "case \"$1\" in\n"
             "  open) echo \"open tls=$4\" >> '" + log + "'; echo h ;;\n"
             "  list_exports) echo \"list tls=$3\" >> '" + log + "'; echo NAMES; echo x ;;\n"
             "  get_size) echo 1048576 ;;\n"
             "  *) exit 2 ;;\n"
             "esac\n", true);
  auto d = Daemon::start_tcp(dir, {"--tls=on", "--tls-certificates=" + at("server"), "sh", dir.file("s.sh")});
  ASSERT_TRUE(d);
  EXPECT_EQ(run_shell("nbdinfo --list '" + nbds(*d, certs("client")) + "'").status, 0);
  const std::string over_tls = read_file(log);  // nbdinfo --list also opens each export
  EXPECT_NE(over_tls.find("list tls=true"), std::string::npos) << over_tls;
  EXPECT_EQ(over_tls.find("tls=false"), std::string::npos) << over_tls;
  write_file(log, "");
  EXPECT_EQ(run_shell("nbdinfo --size " + d->uri()).status, 0);
  const std::string plain = read_file(log);
  EXPECT_NE(plain.find("open tls=false"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("tls=true"), std::string::npos) << plain;
}

TEST_F(Tls, RequireWithoutCertificatesRefusesToStart) {
  auto r = run_shell(std::string(nbdd_binary()) + " -f --tls=require --tls-certificates=" + dir.file("none") +
                     " -U " + dir.file("s") + " memory 1M");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--tls=require"), std::string::npos) << r.output;
}

// A client that sends STARTTLS and then nothing is cut by the handshake timeout, like a
// client that stalls anywhere else in the handshake; the server keeps serving.
TEST_F(Tls, AStalledTlsHandshakeEndsAtTheHandshakeTimeout) {
  auto d = Daemon::start_tcp(dir, {"--handshake-timeout=1", "--tls=require", "--tls-certificates=" + at("server"),
                                   "memory", "1M"});
  ASSERT_TRUE(d);
  nbdd::testing::RawClient c;
  ASSERT_TRUE(c.connect_tcp(d->port()));
  ASSERT_TRUE(c.start_handshake());
  ASSERT_TRUE(c.send_option(5 /* NBD_OPT_STARTTLS */, {}));
  auto ack = c.read_option_reply();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->type, nbdd::testing::nbdc::rep_ack);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_closed(15000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(size_of(nbds(*d, certs("client"))).status, 0);
}

// SIGTERM while a client sits in its TLS handshake: the server still ends at once (the
// handshake is part of the NBD handshake, which a shutdown closes), with status 0.
TEST_F(Tls, ShutdownEndsAConnectionStuckInTheTlsHandshake) {
  auto d = Daemon::start_tcp(dir, {"--tls=require", "--tls-certificates=" + at("server"), "memory", "1M"});
  ASSERT_TRUE(d);
  nbdd::testing::RawClient c;
  ASSERT_TRUE(c.connect_tcp(d->port()));
  ASSERT_TRUE(c.start_handshake());
  ASSERT_TRUE(c.send_option(5 /* NBD_OPT_STARTTLS */, {}));
  ASSERT_TRUE(c.read_option_reply());
  ASSERT_TRUE(c.write_all("\x16\x03\x01", 3));  // the start of a ClientHello, then nothing
  std::this_thread::sleep_for(200ms);
  const auto start = std::chrono::steady_clock::now();
  d->signal(SIGTERM);
  const auto status = d->wait_exit(20s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0) << d->stderr_text();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(c.wait_closed(5000));
}

}  // namespace
}  // namespace nbdd::itest
