#!/usr/bin/env bash
# Runs the cargo-fuzz targets (wire codec + startup/auth parsing + audit
# journal frames; SQL analysis, literal templates against fresh analysis,
# redaction) for N
# seconds each (default 20; run longer by hand, e.g.
# `bash scripts/fuzz.sh 600`). Uses the stable toolchain with
# RUSTC_BOOTSTRAP=1, as cargo-fuzz needs nightly-only sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}-fuzz"
for target in wire sql; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${secs}s"
  log=$(mktemp)
  if cargo fuzz run --fuzz-dir fuzz "$target" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
    grep -E '^Done [0-9]+ runs' "$log" || tail -n 2 "$log"
    rm -f "$log"
  else
    echo "fuzz: $target FAILED; the crashing input is under fuzz/artifacts/$target/" >&2
    tail -n 60 "$log" >&2
    rm -f "$log"
    exit 1
  fi
done
