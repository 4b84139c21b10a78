#!/usr/bin/env bash
# Time from an approver's decision to the held query's result (p50 over N
# runs, default 20), with real PostgreSQL, OIDC provider, approvals service
# and gateway (release builds). Appends the result to BENCHMARKS.md.
#   bash bench/approval_latency.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
cargo build -q --release -p portcullis -p portcullis-approvals
cargo run -q --release -p portcullis-e2e --example approval_latency -- "${1:-20}"
