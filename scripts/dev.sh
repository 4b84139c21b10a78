#!/usr/bin/env bash
# One command from a fresh checkout to a running gateway: installs what is
# missing, builds, and runs `portcullis dev` (built-in OIDC issuer with a
# sign-in page, shipped policy, a throwaway PostgreSQL, the approvals
# service). Extra arguments go to `portcullis dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
cargo build --release -p portcullis -p portcullis-approvals --bins
exec "$CARGO_TARGET_DIR/release/portcullis" dev "$@"
