#!/usr/bin/env bash
# Fuzzing beyond CI.
#
#   bench/fuzz.sh              a longer run of the hostcall fuzz test (proxy/tests/e2e/fuzz.rs):
#                              REQUESTS random-hostcall requests (default 200,000) through the
#                              real binary; prints requests, hung requests, how many ran the
#                              filter, the log size and the plugin's failure count
#   bench/fuzz.sh --decoders   the cargo-fuzz targets in fuzz/ (decoders of guest bytes), SECONDS
#                              each (default 60); needs the nightly toolchain and cargo-fuzz
#                              (`cargo install cargo-fuzz`)
#
# Loopback only; bounded by REQUESTS and SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
if [ "${1:-}" = "--decoders" ]; then
  cd fuzz
  for target in $(cargo +nightly fuzz list); do
    echo "== $target"
    cargo +nightly fuzz run "$target" -- -max_total_time="${SECONDS_EACH:-60}" 2>&1 | grep -E '^(Done|#[0-9]+ *DONE)|panicked|SUMMARY|ERROR' || true
  done
  exit 0
fi
WEIR_FUZZ_REQUESTS="${REQUESTS:-200000}" cargo test --workspace --test e2e -- fuzz --nocapture 2>&1 | grep -E '^fuzz:|test result'
