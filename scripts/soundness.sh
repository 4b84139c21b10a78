#!/usr/bin/env bash
# Runs the differential soundness oracle (tests/tests/soundness.rs) for
# longer than CI does: MINUTES of random statements after the fixed corpus.
#   scripts/soundness.sh [MINUTES] [SEED]     (defaults: 30, random)
# Prints the statements tried, kinds and functions covered; exits non-zero
# with every read-only statement that had an effect on the server.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
seed="${2:-$RANDOM$RANDOM}"
case "$minutes" in ''|*[!0-9]*) echo "usage: $0 [MINUTES] [SEED]" >&2; exit 2;; esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
echo "soundness: $minutes minutes, seed $seed"
SOUNDNESS_SECONDS=$((minutes * 60)) SOUNDNESS_SEED="$seed" \
  cargo test -q -p portcullis-e2e --test soundness -- --nocapture
