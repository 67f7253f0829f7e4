#!/bin/sh
# Regenerates the RSA CSR fixtures used by the unit tests (rcgen with ring
# cannot make RSA keys). Run from this directory: sh make-fixtures.sh
# The keys are throw-away and not kept.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

csr() { # bits out [extra openssl req args...]
    bits=$1; out=$2; shift 2
    openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" -out "$tmp/key.pem" 2>/dev/null
    openssl req -new -key "$tmp/key.pem" -subj "/CN=device" -sha256 "$@" -out "$out"
}

csr 1024 rsa1024.csr.pem
csr 2048 rsa2048.csr.pem
# A hostile request: CA:TRUE, keyCertSign, serverAuth+codeSigning, foreign SANs.
csr 2048 rsa2048-hostile.csr.pem \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -addext "extendedKeyUsage=serverAuth,codeSigning,clientAuth" \
    -addext "subjectAltName=URI:https://care.example.jp/users/1,DNS:evil.example,email:root@example.jp"
