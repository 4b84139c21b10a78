#!/usr/bin/env bash
# Gateway CPU per transaction, two gateway builds (or worker settings)
# against pgbouncer, in one setup: pgbench -S -M simple -c 8, alternating
# 8 s runs, CPU = utime+stime of each proxy process from /proc/PID/stat.
# Less noisy than TPS on a shared 2-core machine.
#
#   bash bench/cpu_per_tx.sh [BIN_A] [BIN_B]     (default: the release build twice)
#   BIN_B_WORKERS=1 bash bench/cpu_per_tx.sh      (B with PORTCULLIS_WORKER_THREADS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
bin_a="${1:-$CARGO_TARGET_DIR/release/portcullis}"
bin_b="${2:-$bin_a}"
secs="${SECS:-8}"
reps="${REPS:-3}"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
work=$(mktemp -d /tmp/portcullis-cpu.XXXXXX); chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "pgbouncer $work/pgbouncer.ini" 2>/dev/null || true
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
pw="bench$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; echo "$pw" > "$work/pwfile"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$work"
pg_port=$(free_port)
as_pg "$pgbin/initdb" -D "$work/data" --auth=scram-sha-256 -U postgres --pwfile="$work/pwfile" --no-sync >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" -l "$work/pg.log" -w start >/dev/null
export PGPASSWORD="$pw"
pgbench -i -q -s 10 -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1
bn_port=$(free_port)
cat > "$work/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$pg_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bn_port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = $work/pgbouncer.log
INI
echo "\"postgres\" \"$pw\"" > "$work/userlist.txt"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$work"
as_pg pgbouncer "$work/pgbouncer.ini" >/dev/null 2>&1 &
declare -A port gpid tok
start_gw() { # name binary workers
  local p; p=$(free_port); port[$1]=$p
  PORTCULLIS_WORKER_THREADS=$3 "$2" dev --upstream "postgres://postgres:$pw@127.0.0.1:$pg_port/postgres" \
    --listen "127.0.0.1:$p" --admin-listen 127.0.0.1:0 --state-dir "$work/dev_$1" --user bench --groups dev \
    > "$work/gw_$1.out" 2> "$work/gw_$1.log" &
  gpid[$1]=$!; pids+=($!)
  for _ in $(seq 1 200); do (echo > "/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
  tok[$1]=$("$2" token --dev --state-dir "$work/dev_$1" --user bench --groups dev)
}
start_gw a "$bin_a" "${BIN_A_WORKERS:-0}"
start_gw b "$bin_b" "${BIN_B_WORKERS:-0}"
for _ in $(seq 1 100); do pgrep -f "pgbouncer $work/pgbouncer.ini" >/dev/null && break; sleep 0.1; done
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
measure() { # label pid port user password db
  local a b out tx
  a=$(ticks "$2")
  out=$(PGPASSWORD="$5" pgbench -S -n -T "$secs" -M simple -c 8 -j 2 -h 127.0.0.1 -p "$3" -U "$4" "$6" 2>&1)
  b=$(ticks "$2")
  tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
  python3 -c "print(f'$1 tps={$tx/$secs:.0f} cpu_us_per_tx={($b-$a)*10000/$tx:.1f}')"
}
for rep in $(seq 1 "$reps"); do
  echo "rep $rep $(measure pgbouncer "$(pgrep -f "pgbouncer $work/pgbouncer.ini" | tail -1)" "$bn_port" postgres "$pw" postgres)"
  echo "rep $rep $(measure gateway-a "${gpid[a]}" "${port[a]}" bench@example.com "${tok[a]}" dev)"
  echo "rep $rep $(measure gateway-b "${gpid[b]}" "${port[b]}" bench@example.com "${tok[b]}" dev)"
done
