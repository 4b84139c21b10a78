#!/usr/bin/env bash
# pgbench -S (select-only) in simple and prepared mode, 1 and 8 clients,
# against direct PostgreSQL, pgbouncer (session pool) and the gateway (shipped
# policy, decision logging on), in one run on this machine. Every cell runs 3
# times; the targets are interleaved within each repetition (and their order
# rotated between repetitions) so drift hits all of them alike. Prints the
# median TPS and median average latency of the 3 runs, the ratios
# gateway/direct and gateway/pgbouncer, and, at 1 client, p50 and p99 latency
# pooled over the 3 runs' per-transaction logs; appends the results with date
# and machine to BENCHMARKS.md.
#
#   bash bench/pgbench.sh [SECONDS_PER_RUN]      (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
bash scripts/install-deps.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
cargo build --release -q -p portcullis
gw_bin="$CARGO_TARGET_DIR/release/portcullis"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

work=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # pgbouncer runs under runuser: stop it by its own command line.
  pkill -f "pgbouncer $work/pgbouncer.ini" 2>/dev/null || true
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

pw="bench$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
echo "$pw" > "$work/pwfile"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$work"
pg_port=$(free_port)
as_pg "$pgbin/initdb" -D "$work/data" --auth=scram-sha-256 -U postgres --pwfile="$work/pwfile" --no-sync >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" -l "$work/pg.log" -w start >/dev/null
export PGPASSWORD="$pw"
echo "bench: initialising pgbench scale 10 on port $pg_port"
pgbench -i -q -s 10 -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

# pgbouncer, session pooling, trust from clients, SCRAM to the server.
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
pids+=($!)

# The gateway with the dev issuer, the shipped policy and decision logs on.
gw_port=$(free_port)
"$gw_bin" dev --upstream "postgres://postgres:$pw@127.0.0.1:$pg_port/postgres" --listen "127.0.0.1:$gw_port" \
  --admin-listen 127.0.0.1:0 --state-dir "$work/dev" --user bench --groups dev > "$work/gw.out" 2> "$work/gw.log" &
pids+=($!)
for _ in $(seq 1 200); do
  (echo > "/dev/tcp/127.0.0.1/$gw_port") 2>/dev/null && (echo > "/dev/tcp/127.0.0.1/$bn_port") 2>/dev/null && break
  sleep 0.1
done
token=$("$gw_bin" token --dev --state-dir "$work/dev" --user bench --groups dev)

reps=3
declare -A tps_runs lat_runs
run() { # name port user password mode clients db rep
  local out logs=() prefix="$work/txlog_$1_$5_$6_r$8" t l
  # Single-client runs log every transaction's latency (pooled over the reps).
  [ "$6" -eq 1 ] && logs=(-l "--log-prefix=$prefix")
  out=$(cd "$work" && PGPASSWORD="$4" pgbench -S -n -T "$secs" -M "$5" -c "$6" -j "$(( $6 < 2 ? 1 : 2 ))" "${logs[@]}" -h 127.0.0.1 -p "$2" -U "$3" "$7" 2>&1) || { echo "$out" >&2; return 1; }
  t=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)
  l=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  tps_runs[$1,$5,$6]+="$t "
  lat_runs[$1,$5,$6]+="$l "
  printf '  rep %d  %-9s %-8s c%-2s %10.0f tps  %7.3f ms\n' "$8" "$1" "$5" "$6" "$t" "$l"
}
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Nearest-rank percentile ($1 in 0..1) of column 3 (latency, µs) of the given pgbench logs.
pctl() { local q=$1; shift; cat "$@" | awk '{print $3}' | sort -n | awk -v q="$q" '{a[NR]=$1} END {i=int(NR*q); if (i<NR*q) i++; if (i<1) i=1; print a[i]}'; }
targets=(direct pgbouncer gateway)
run_target() { # name mode clients rep
  case $1 in
    direct)    run direct "$pg_port" postgres "$pw" "$2" "$3" postgres "$4" ;;
    pgbouncer) run pgbouncer "$bn_port" postgres "$pw" "$2" "$3" postgres "$4" ;;
    gateway)   run gateway "$gw_port" bench@example.com "$token" "$2" "$3" dev "$4" ;;
  esac
}
echo "bench: ${secs}s per run, $reps repetitions per cell"
for rep in $(seq 1 "$reps"); do
  for mode in simple prepared; do
    for c in 1 8; do
      for i in 0 1 2; do
        run_target "${targets[$(( (i + rep - 1) % 3 ))]}" "$mode" "$c" "$rep"
      done
    done
  done
done
declare -A tps lat p50 p99
for name in "${targets[@]}"; do
  for mode in simple prepared; do
    for c in 1 8; do
      tps[$name,$mode,$c]=$(median "${tps_runs[$name,$mode,$c]}")
      lat[$name,$mode,$c]=$(median "${lat_runs[$name,$mode,$c]}")
    done
    p50[$name,$mode]=$(pctl 0.50 "$work/txlog_${name}_${mode}_1_r"*)
    p99[$name,$mode]=$(pctl 0.99 "$work/txlog_${name}_${mode}_1_r"*)
    rm -f "$work/txlog_${name}_${mode}_1_r"*
  done
done

decisions=$(grep -c 'portcullis::decision' "$work/gw.log" || true)
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
added() { python3 -c "print(f'{($1-$2)*1000:.0f}')"; }
table="| mode | clients | direct tps | pgbouncer tps | gateway tps | gateway/direct | gateway/pgbouncer | gateway avg latency (ms) | added vs direct (µs) |
|---|---|---|---|---|---|---|---|---|"
for mode in simple prepared; do
  for c in 1 8; do
    d=${tps[direct,$mode,$c]}; b=${tps[pgbouncer,$mode,$c]}; g=${tps[gateway,$mode,$c]}
    table+="
| $mode | $c | ${d%.*} | ${b%.*} | ${g%.*} | $(ratio "$g" "$d") | $(ratio "$g" "$b") | ${lat[gateway,$mode,$c]} | $(added "${lat[gateway,$mode,$c]}" "${lat[direct,$mode,$c]}") |"
  done
done
table+="

| mode (1 client) | direct p50 (µs) | direct p99 (µs) | pgbouncer p50 (µs) | pgbouncer p99 (µs) | gateway p50 (µs) | gateway p99 (µs) | gateway added p50 vs direct (µs) | gateway added p99 vs direct (µs) |
|---|---|---|---|---|---|---|---|---|"
for mode in simple prepared; do
  table+="
| $mode | ${p50[direct,$mode]} | ${p99[direct,$mode]} | ${p50[pgbouncer,$mode]} | ${p99[pgbouncer,$mode]} | ${p50[gateway,$mode]} | ${p99[gateway,$mode]} | $(( ${p50[gateway,$mode]} - ${p50[direct,$mode]} )) | $(( ${p99[gateway,$mode]} - ${p99[direct,$mode]} )) |"
done
echo
echo "$table"
echo "(gateway logged $decisions decision lines)"
[ -f BENCHMARKS.md ] || printf '# Benchmarks\n\nAppended by `bash bench/pgbench.sh`. pgbench -S, scale 10, loopback, all targets in one run.\n' > BENCHMARKS.md
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), ${secs}s per run, median of $reps runs"
  echo
  echo "$table"
  echo
  echo "TPS and average latency: median of $reps runs per cell (targets interleaved in each repetition). p50/p99: pooled per-transaction latencies of the $reps one-client runs."
  echo
  echo "Gateway: release build, shipped policy, decision logging on (info level, $decisions decision lines written)."
} >> BENCHMARKS.md
echo "bench: results appended to BENCHMARKS.md"
