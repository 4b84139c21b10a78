#!/usr/bin/env bash
# Where an audit record's CPU goes: one release gateway with recording in
# MODE (off, batched, strict, strictnormal), pgbench -S -M prepared with 8
# clients for SECS seconds (after a 2 s warm-up); prints the gateway's CPU
# per transaction by thread name (tokio-rt-worker, sqlx-sqlite-worker, ...)
# from /proc/PID/task, and the machine's busy share and CPU per transaction
# from /proc/stat. PF=HZ also records `perf` samples of the gateway at HZ
# into /tmp/audit_cpu.MODE.data (PG="--call-graph dwarf" for stacks).
# SCHEMA=FILE.sql creates the SQLite store from that file before the
# gateway starts (a schema variant, tried without a rebuild: the gateway's
# own schema is CREATE ... IF NOT EXISTS). NICE=N renices the gateway's
# audit writer thread once it exists. PSTAT=1 counts the gateway's
# fdatasync, write and futex calls (perf stat) into /tmp/audit_cpu.stat.
# It also prints the records the writer had not committed when the load
# stopped (backlog_at_end, from /metrics).
#
#   bash bench/audit_cpu.sh MODE [SECS] [BIN]      (default 8 s, the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1; secs=${2:-8}
scale=10; source bench/probe_pg.sh
port=$(free_port); aport=$(free_port)
case $mode in
  off|batched|strict) extra=(--audit "$mode") ;;
  strictnormal) extra=(--audit strict --audit-sync normal) ;;
  *) echo "audit_cpu: MODE must be off, batched, strict or strictnormal" >&2; exit 2 ;;
esac
if [ -n "${SCHEMA:-}" ]; then
  mkdir -p $work/dev
  python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(open(sys.argv[2]).read()); c.close()' $work/dev/audit.db "$SCHEMA"
fi
$bin dev --upstream "postgres://postgres:$pw@127.0.0.1:$pg_port/postgres" --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$aport \
  --state-dir $work/dev --user bench --groups dev --no-approvals "${extra[@]}" > $work/gw.out 2> $work/gw.log &
gp=$!
for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
tok=$($bin token --dev --state-dir $work/dev --user bench --groups dev)
# warmup
PGPASSWORD=$tok pgbench -S -n -T 2 -M prepared -c 8 -j 2 -h 127.0.0.1 -p $port -U bench@example.com dev >/dev/null 2>&1
if [ -n "${NICE:-}" ]; then
  for t in /proc/$gp/task/*; do case "$(cat $t/comm)" in portcullis-aud*) renice -n $NICE -p ${t##*/} >/dev/null ;; esac; done
fi
snap() { for t in /proc/$gp/task/*; do echo "$(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done | awk '{a[$1]+=$2} END {for (k in a) print k, a[k]}' | sort; }
cpu() { head -1 /proc/stat | awk '{print $2+$3+$4+$7+$8, $5+$6}'; }
s1=$(snap); c1=$(cpu)
if [ -n "${PSTAT:-}" ]; then perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_write,syscalls:sys_enter_futex -p $gp -o /tmp/audit_cpu.stat -- sleep $secs & perfpid=$!; fi
if [ -n "${PF:-}" ]; then perf record -F $PF ${PG:-} -o /tmp/audit_cpu.$mode.data -p $gp -- sleep $secs >/dev/null 2>&1 & perfpid=$!; fi
out=$(PGPASSWORD=$tok pgbench -S -n -T $secs -M prepared -c 8 -j 2 -h 127.0.0.1 -p $port -U bench@example.com dev 2>&1)
s2=$(snap); c2=$(cpu)
if [ -n "${PF:-}${PSTAT:-}" ]; then wait $perfpid; fi
# What the writer had not committed when the load stopped: a run that
# left work behind would look faster than it is.
backlog=$(python3 -c "
import urllib.request,sys
t=urllib.request.urlopen('http://127.0.0.1:$aport/metrics',timeout=5).read().decode()
print(next((l.split()[1] for l in t.splitlines() if l.startswith('portcullis_audit_queue_depth')),'?'))" 2>/dev/null || echo '?')
tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
echo "mode=$mode tps=$((tx/secs)) backlog_at_end=$backlog"
join <(echo "$s1") <(echo "$s2") | awk -v tx=$tx '{d=$3-$2; if (d>0) printf "  %-20s %6.2f us/tx\n", $1, d*10000/tx}'
join <(echo "$s1") <(echo "$s2") | awk -v tx=$tx '{s+=$3-$2} END {printf "  gateway total        %6.2f us/tx\n", s*10000/tx}'
python3 -c "
b1,i1='$c1'.split(); b2,i2='$c2'.split(); b=int(b2)-int(b1); i=int(i2)-int(i1)
print(f'  machine busy {100*b/(b+i):.0f}%  cpu/tx {b*10000/$tx:.1f} us')"
