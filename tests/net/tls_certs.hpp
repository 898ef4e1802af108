// Test PKI for the TLS tests, made with certtool and psktool (gnutls-bin) in a temporary
// directory at test time (keys are never committed). ECDSA keys: fast to generate.
//   server/         ca-cert.pem server-cert.pem server-key.pem (nbdd --tls-certificates)
//   server-crl/     the same plus ca-crl.pem revoking the "revoked" client certificate
//   server-expired/ a server certificate that expired in 2020
//   client/         ca-cert.pem client-cert.pem client-key.pem (libnbd's tls-certificates=)
//   client-expired/ client-revoked/  the same CA, a bad client certificate
//   client-other-ca/ trusts another CA (and has a certificate from it)
//   keys.psk (alice), wrong.psk (alice, another key), qemu-psk/keys.psk (qemu's file name)
#pragma once
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace nbdd::testing {

inline bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Returns "" on success, else the failing command.
inline std::string make_test_pki(const std::string& dir) {
  auto run = [&](const std::string& cmd) { return std::system(("cd '" + dir + "' && { " + cmd + "; } >/dev/null 2>&1").c_str()) == 0; };
  const std::string key = "certtool --generate-privkey --key-type=ecdsa --outfile ";
  auto ca = [&](const std::string& name, const std::string& cn) {
    return write_text(dir + "/" + name + ".info", "cn = " + cn + "\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n") &&
           run(key + name + "-key.pem") &&
           run("certtool --generate-self-signed --load-privkey " + name + "-key.pem --template " + name +
               ".info --outfile " + name + "-cert.pem");
  };
  auto leaf = [&](const std::string& ca_name, const std::string& name, const std::string& info) {
    return write_text(dir + "/" + name + ".info", info) && run(key + name + "-key.pem") &&
           run("certtool --generate-certificate --load-ca-certificate " + ca_name + "-cert.pem --load-ca-privkey " +
               ca_name + "-key.pem --load-privkey " + name + "-key.pem --template " + name + ".info --outfile " +
               name + "-cert.pem");
  };
  const std::string server_info =
      "organization = nbdd tests\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\n"
      "tls_www_server\nencryption_key\nsigning_key\n";
  const std::string client_info = "organization = nbdd tests\ncn = client\ntls_www_client\nencryption_key\nsigning_key\n";
  const std::string expired = "activation_date = \"2019-01-01 00:00:00\"\nexpiration_date = \"2020-01-01 00:00:00\"\n";
  if (!ca("ca", "nbdd test CA")) return "ca";
  if (!ca("otherca", "another CA")) return "otherca";
  if (!leaf("ca", "server", server_info + "expiration_days = 30\n")) return "server";
  if (!leaf("ca", "server-expired", server_info + expired)) return "server-expired";
  if (!leaf("ca", "client", client_info + "expiration_days = 30\n")) return "client";
  if (!leaf("ca", "client-expired", client_info + expired)) return "client-expired";
  if (!leaf("ca", "client-revoked", client_info + "serial = 4242\nexpiration_days = 30\n")) return "client-revoked";
  if (!leaf("otherca", "client-other", client_info + "expiration_days = 30\n")) return "client-other";
  if (!write_text(dir + "/crl.info", "crl_next_update = 30\ncrl_number = 1\n")) return "crl.info";
  if (!run("certtool --generate-crl --load-ca-privkey ca-key.pem --load-ca-certificate ca-cert.pem "
           "--load-certificate client-revoked-cert.pem --template crl.info --outfile ca-crl.pem"))
    return "crl";
  const char* layout =
      "mkdir -p server server-crl server-expired client client-expired client-revoked client-other-ca qemu-psk && "
      "for d in server server-crl server-expired client client-expired client-revoked; do cp ca-cert.pem $d/; done && "
      "cp server-cert.pem server-key.pem server/ && cp server-cert.pem server-key.pem ca-crl.pem server-crl/ && "
      "cp server-expired-cert.pem server-expired/server-cert.pem && cp server-expired-key.pem server-expired/server-key.pem && "
      "cp client-cert.pem client-key.pem client/ && "
      "cp client-expired-cert.pem client-expired/client-cert.pem && cp client-expired-key.pem client-expired/client-key.pem && "
      "cp client-revoked-cert.pem client-revoked/client-cert.pem && cp client-revoked-key.pem client-revoked/client-key.pem && "
      "cp otherca-cert.pem client-other-ca/ca-cert.pem && cp client-other-cert.pem client-other-ca/client-cert.pem && "
      "cp client-other-key.pem client-other-ca/client-key.pem && "
      "psktool -u alice -p keys.psk && psktool -u alice -p wrong.psk && cp keys.psk qemu-psk/keys.psk";
  if (!run(layout)) return "layout";
  return {};
}

}  // namespace nbdd::testing
