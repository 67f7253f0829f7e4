#!/bin/sh
# Creates a Python virtual environment with pkilint for the CA lint test.
#
#   sh crates/kizuna-ca/tests/pkilint-setup.sh /path/to/venv
#   KIZUNA_PKILINT_BIN=/path/to/venv/bin cargo test -p kizuna-ca --test independent_verifiers
#
# Needs python3 with the venv module (Debian: python3-venv) and access to PyPI.
# The version is pinned so that new lints do not change CI's verdict unseen;
# override with PKILINT_VERSION=<version> to try another.
# Re-running on an existing venv upgrades nothing and is quick.
set -eu

version=${PKILINT_VERSION:-0.13.3}

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 <venv-directory>" >&2
    exit 2
fi
venv=$1

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if [ ! -x "$venv/bin/lint_pkix_cert" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pkilint==$version"
fi
for tool in lint_pkix_cert lint_pkix_signer_signee_cert_chain lint_crl; do
    if [ ! -x "$venv/bin/$tool" ]; then
        echo "pkilint-setup: $tool missing from $venv/bin" >&2
        exit 1
    fi
done
"$venv/bin/python" -m pip show pkilint 2>/dev/null | sed -n 's/^Version: /pkilint-setup: pkilint /p'
echo "pkilint-setup: export KIZUNA_PKILINT_BIN=$venv/bin"
