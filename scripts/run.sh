#!/usr/bin/env bash
# The run command: sets up, builds, and opens the demo (a private Redis, simulated
# WhatsApp traffic, the control room with the worker).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --locked --bin secondme
exec target/release/secondme demo "$@"
