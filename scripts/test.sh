#!/usr/bin/env bash
# The one test command (README): installs what is missing, then runs
# formatting and lint checks, the policy tests, every unit and end-to-end
# test, and a short fuzzing pass of the wire codec.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build"
cargo build --workspace --bins
echo "== policy tests"
"$CARGO_TARGET_DIR/debug/portcullis" policy test policies
echo "== unit and end-to-end tests"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --workspace --lib --bins --tests 2>&1 | tee "$results"
if [ "${PORTCULLIS_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== fuzz (short)"
  bash scripts/fuzz.sh "${PORTCULLIS_FUZZ_SECONDS:-20}"
fi
# One closing line with the totals of every cargo test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
