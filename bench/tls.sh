#!/usr/bin/env bash
# TLS rows (issue 24): nbdd and nbdkit, both --tls=require on the same X.509 certificates,
# driven by fio's nbd engine (libnbd) over nbds:// on TCP loopback. The certificates are
# made here with certtool in a temporary directory (removed on exit); fio finds the client
# certificates where libnbd looks by default ($HOME/.pki/libnbd, HOME pointed there).
#
#   bench/tls.sh                 the TLS table (bench/run.sh table with BENCH_TLS set)
#   NBDD=build/tls/nbdd bench/tls.sh
#
# Defaults (each can be overridden as in bench/run.sh): BENCH_SERVERS=nbdd,nbdkit
# BENCH_TRANSPORTS=tcp BENCH_WORKLOADS=4k-randread-qd16,4k-randwrite-qd16,1m-read-qd4,1m-write-qd4
# (qemu-nbd also works: BENCH_SERVERS=nbdd,nbdkit,qemu-nbd, with tls-creds-x509.)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
command -v certtool >/dev/null || { echo "bench/tls.sh: certtool missing (gnutls-bin)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/nbdd-bench-tls-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  mkdir -p server home/.pki/libnbd
  printf 'cn = nbdd bench CA\nca\ncert_signing_key\nexpiration_days = 7\n' > ca.info
  printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 7\n' > server.info
  printf 'cn = bench client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 7\n' > client.info
  # RSA 3072 (certtool's default), as a site following nbdkit-tls(1) would have
  certtool --generate-privkey --outfile ca-key.pem
  certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem
  for who in server client; do
    certtool --generate-privkey --outfile $who-key.pem
    certtool --generate-certificate --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem \
      --load-privkey $who-key.pem --template $who.info --outfile $who-cert.pem
  done
  cp ca-cert.pem server-cert.pem server-key.pem server/
  cp ca-cert.pem client-cert.pem client-key.pem home/.pki/libnbd/
) >/dev/null 2>&1 || { echo "bench/tls.sh: certtool failed" >&2; exit 1; }

export BENCH_TLS=$tmp HOME=$tmp/home
export BENCH_SERVERS=${BENCH_SERVERS:-nbdd,nbdkit}
export BENCH_TRANSPORTS=${BENCH_TRANSPORTS:-tcp}
export BENCH_WORKLOADS=${BENCH_WORKLOADS:-4k-randread-qd16,4k-randwrite-qd16,1m-read-qd4,1m-write-qd4}
"$here/run.sh" table
