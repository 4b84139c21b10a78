#!/usr/bin/env bash
# One command from a fresh checkout to a running gateway: installs what is
# missing, builds, and runs `portcullis dev` (built-in OIDC issuer, shipped
# policy, a throwaway PostgreSQL). Extra arguments go to `portcullis dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
exec cargo run --release -p portcullis -- dev "$@"
