#!/usr/bin/env bash
# What an audit record costs in instructions (repeatable on a noisy host,
# where tps and CPU time are not): one release gateway under valgrind's
# callgrind with recording in MODE (off, batched, strict, strictnormal),
# pgbench -S -M prepared, 8 clients, TX transactions each (fixed work),
# then a clean stop (SIGTERM: the writer commits what it holds). Prints
# the gateway's instructions in all and per transaction; the difference
# between two modes over the same TX is what recording adds per record.
# The callgrind output stays in /tmp/audit_instr.MODE.out for
# callgrind_annotate.
#
#   bash bench/audit_instr.sh MODE [TX] [BIN]      (default 500 per client)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "audit_instr: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
mode=$1; per=${2:-500}
scale=1; source bench/probe_pg.sh
port=$(free_port); aport=$(free_port); iport=$(free_port)
case $mode in
  off|batched|strict) extra=(--audit "$mode") ;;
  strictnormal) extra=(--audit strict --audit-sync normal) ;;
  *) echo "audit_instr: MODE must be off, batched, strict or strictnormal" >&2; exit 2 ;;
esac
out=/tmp/audit_instr.$mode.out
mkdir -p $work/dev
# The token first (outside valgrind), so the measured process does only
# the load.
$bin dev --upstream "postgres://postgres:$pw@127.0.0.1:$pg_port/postgres" --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$aport --issuer-listen 127.0.0.1:$iport \
  --state-dir $work/dev --user bench --groups dev --no-approvals "${extra[@]}" > $work/gw0.out 2> $work/gw0.log &
gp=$!
for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
tok=$($bin token --dev --state-dir $work/dev --user bench --groups dev)
kill $gp; wait $gp 2>/dev/null || true; gp=""
valgrind --tool=callgrind --callgrind-out-file=$out --dump-instr=no --fair-sched=yes \
  $bin dev --upstream "postgres://postgres:$pw@127.0.0.1:$pg_port/postgres" --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$aport --issuer-listen 127.0.0.1:$iport \
  --state-dir $work/dev --user bench --groups dev --no-approvals "${extra[@]}" > $work/gw.out 2> $work/gw.log &
gp=$!
for _ in $(seq 1 1200); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
PGPASSWORD=$tok pgbench -S -n -t $per -M prepared -c 8 -j 2 -h 127.0.0.1 -p $port -U bench@example.com dev > $work/pgbench.out 2>&1 \
  || { cat $work/pgbench.out >&2; exit 1; }
tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' $work/pgbench.out)
kill -TERM $gp; wait $gp 2>/dev/null || true; gp=""
total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' $out | head -1)
[ -n "$total" ] || total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' $out | head -1)
echo "mode=$mode tx=$tx instructions=$total per_tx=$((total / tx))"
