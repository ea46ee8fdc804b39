#!/usr/bin/env bash
# The test command: sets up what the tests need, then runs every test against a
# real redis-server started per test: the whole suite on Redis 8.2 (with FalkorDB),
# and the engine's suites again on Debian's Redis 7.0 when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked
if [ -x /usr/bin/redis-server ]; then
  echo "== engine suites on $(/usr/bin/redis-server --version | cut -d' ' -f1-3)"
  SECONDME_REDIS_SERVER=/usr/bin/redis-server cargo test --locked --test rules --test faults --test gateway --test isolation
fi
