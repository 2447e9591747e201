#!/usr/bin/env bash
# A longer run of the hostcall fuzz test (proxy/tests/e2e/fuzz.rs): REQUESTS random-hostcall
# requests (default 200,000) through the real binary; prints requests, hung requests, how many
# ran the filter, log size and the plugin's failure count. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
WEIR_FUZZ_REQUESTS="${REQUESTS:-200000}" cargo test -p weir --test e2e -- fuzz --nocapture 2>&1 | grep -E '^fuzz:|test result'
