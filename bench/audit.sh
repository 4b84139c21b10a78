#!/usr/bin/env bash
# The cost of the audit record: pgbench -S with 8 clients (CLIENTS=N for
# another number; simple and
# prepared) through four gateways in one run — recording off, `batched`,
# `strict` (SQLite store, audit.sync = full: each commit fsynced) and
# `strict` with audit.sync = normal (survives a gateway crash, not a machine
# crash) — each cell 3 times, the gateways interleaved and rotated between
# repetitions. Prints the median TPS and the
# ratios to recording off, and appends them with date and machine to
# BENCHMARKS.md.
#
#   [CLIENTS=N] bash bench/audit.sh [SECONDS_PER_RUN]      (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
clients="${CLIENTS:-8}"
reps=3
source bench/lib.sh

targets=(off batched strict strictnormal)
declare -A ports
for t in "${targets[@]}"; do
  ports[$t]=$(free_port)
  case $t in
    strictnormal) start_gateway "$t" "${ports[$t]}" --audit strict --audit-sync normal ;;
    *) start_gateway "$t" "${ports[$t]}" --audit "$t" ;;
  esac
done
tok() { local v="token_$1"; echo "${!v}"; }
echo "bench: ${secs}s per run, $reps repetitions per cell, $clients clients"
for rep in $(seq 1 "$reps"); do
  for mode in simple prepared; do
    for i in 0 1 2 3; do
      t=${targets[$(( (i + rep - 1) % 4 ))]}
      run "$t" "${ports[$t]}" bench@example.com "$(tok "$t")" "$mode" "$clients" dev "$rep"
    done
  done
done
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
table="| mode | clients | recording off tps | batched tps | strict tps | strict, sync normal tps | batched/off | strict/off | strict (sync normal)/off |
|---|---|---|---|---|---|---|---|---|"
for mode in simple prepared; do
  c=$clients
  o=$(median "${tps_runs[off,$mode,$c]}"); b=$(median "${tps_runs[batched,$mode,$c]}"); s=$(median "${tps_runs[strict,$mode,$c]}"); n=$(median "${tps_runs[strictnormal,$mode,$c]}")
  table+="
| $mode | $c | ${o%.*} | ${b%.*} | ${s%.*} | ${n%.*} | $(ratio "$b" "$o") | $(ratio "$s" "$o") | $(ratio "$n" "$o") |"
done
echo
echo "$table"
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — audit record cost — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), ${secs}s per run, median of $reps runs"
  echo
  echo "$table"
  echo
  echo "\`bash bench/audit.sh\`: pgbench -S, scale 10, $clients clients, through four release-build gateways in one run (shipped policy, decision logging on): audit recording off, \`batched\` (flush every 20 ms), \`strict\` (ReadyForQuery waits until the record is in the journal beside the SQLite store; the store commits in batches behind it) with \`audit.sync = full\` (each journal append fdatasynced) and \`strict\` with \`audit.sync = normal\` (appends reach the OS, not the disk); SQLite store on the same disk."
} >> BENCHMARKS.md
echo "bench: results appended to BENCHMARKS.md"
