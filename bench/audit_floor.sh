#!/usr/bin/env bash
# What the audit targets leave per record on this machine, against what no
# gateway code can go below:
#
# - the budget: a release gateway with recording off under pgbench -S -M
#   prepared with 8 clients (bench/audit_cpu.sh off): its tps and the
#   machine's CPU per transaction; a ratio r to recording off, with the
#   machine as busy, leaves cpu_off * (1/r - 1) of machine CPU per record;
# - the SQLite floor (bench/sqlite_floor): CPU per record of the writer's
#   own insert of a pgbench-sized record, 700 per transaction (a 20 ms
#   batch at 35 k records/s), into the shipped schema and into a bare table
#   with the same columns and no index at all;
# - the disk floor of `strict` with `audit.sync = full`: latency and machine
#   CPU of one write + fdatasync of a 1,600-byte group (three records) on
#   the disk under /tmp, appended (the file grows: its size is committed
#   too) and overwritten in place; and the bound it sets: each client's
#   transaction takes at least its recording-off time plus one fdatasync,
#   so tps <= clients / (clients / tps_off + fdatasync).
#
# Appends the figures to BENCHMARKS.md.
#
#   bash bench/audit_floor.sh [SECS]      (default 10 s for the recording-off run)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
bash scripts/install-deps.sh >/dev/null
cargo build --release -q -p portcullis
cargo build --release -q --manifest-path bench/sqlite_floor/Cargo.toml
work=$(mktemp -d /tmp/portcullis-floor.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "floor: recording off, pgbench -S -M prepared, 8 clients, ${secs}s"
off=$(bash bench/audit_cpu.sh off "$secs" "$CARGO_TARGET_DIR/release/portcullis")
echo "$off"
tps=$(echo "$off" | sed -n 's/^mode=off tps=\([0-9]*\).*/\1/p')
cpu_tx=$(echo "$off" | sed -n 's/.*cpu\/tx \([0-9.]*\) us.*/\1/p')
busy=$(echo "$off" | sed -n 's/.*machine busy \([0-9]*\)%.*/\1/p')

echo "floor: SQLite insert per record"
sqlite=$("$CARGO_TARGET_DIR/release/sqlite_floor" migrations/sqlite/0001_audit.sql "$work")
echo "$sqlite"
shipped=$(echo "$sqlite" | sed -n 's/^shipped .*cpu_us=\([0-9.]*\).*/\1/p')
bare=$(echo "$sqlite" | sed -n 's/^bare .*cpu_us=\([0-9.]*\).*/\1/p')

echo "floor: write + fdatasync of a 1,600-byte group"
sync=$(python3 - "$work" <<'EOF'
import os, sys, time
def machine():
    f = list(map(int, open('/proc/stat').readline().split()[1:]))
    return f[0] + f[1] + f[2] + f[5] + f[6]
def run(overwrite, n=3000, size=1600):
    path = os.path.join(sys.argv[1], 'sync-test')
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    if overwrite:
        os.write(fd, b'\0' * (n * size)); os.fsync(fd); os.lseek(fd, 0, 0)
    buf = b'x' * size
    c, t = machine(), time.perf_counter()
    for _ in range(n):
        os.write(fd, buf); os.fdatasync(fd)
    wall, cpu = time.perf_counter() - t, machine() - c
    os.close(fd); os.unlink(path)
    # /proc/stat counts 10 ms ticks.
    return wall / n * 1e6, cpu * 10000 / n
a = [run(False) for _ in range(2)]; o = [run(True) for _ in range(2)]
med = lambda xs, i: sorted(x[i] for x in xs)[len(xs) // 2]
print(f"append_us={med(a,0):.0f} append_cpu_us={med(a,1):.0f} overwrite_us={med(o,0):.0f} overwrite_cpu_us={med(o,1):.0f}")
EOF
)
echo "$sync"
val() { echo "$sync" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

summary=$(python3 - "$tps" "$cpu_tx" "$busy" "$shipped" "$bare" "$(val append_us)" "$(val append_cpu_us)" "$(val overwrite_us)" "$(val overwrite_cpu_us)" <<'EOF'
import sys
tps, cpu_tx, busy, shipped, bare, app, app_cpu, ow, ow_cpu = map(float, sys.argv[1:])
b95, b80 = cpu_tx * (1 / 0.95 - 1), cpu_tx * (1 / 0.8 - 1)
rtt = 8 / tps * 1e6
bound = lambda s: 8 / ((rtt + s) / 1e6)
print(f"| recording off, prepared, 8 clients | {tps:.0f} tps, machine {busy:.0f} % busy, {cpu_tx:.1f} µs of machine CPU per transaction |")
print(f"| machine CPU a record may add: batched ≥ 0.95× / strict ≥ 0.8× | {b95:.1f} µs / {b80:.1f} µs |")
print(f"| SQLite insert per record, shipped schema / bare table (700 per transaction) | {shipped:.2f} µs / {bare:.2f} µs of CPU |")
print(f"| write + fdatasync of a group, appended / overwritten | {app:.0f} µs ({app_cpu:.0f} µs machine CPU) / {ow:.0f} µs ({ow_cpu:.0f} µs) |")
print(f"| strict, sync full: tps bound at 8 clients (appended / overwritten) | {bound(app):.0f} ({bound(app)/tps:.2f}×) / {bound(ow):.0f} ({bound(ow)/tps:.2f}×) |")
EOF
)
echo "$summary"
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — audit floors — $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo
  echo "| what | measured |"
  echo "|---|---|"
  echo "$summary"
  echo
  echo "\`bash bench/audit_floor.sh $secs\`: the budget the targets leave per record (from a recording-off run), the SQLite insert alone (\`bench/sqlite_floor\`: the writer's statement and schema, nothing else in the process), and the disk's fdatasync (see the script's header)."
} >> BENCHMARKS.md
echo "floor: appended to BENCHMARKS.md"
