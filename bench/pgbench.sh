#!/usr/bin/env bash
# pgbench -S (select-only) in simple and prepared mode, 1 and 8 clients,
# against direct PostgreSQL, pgbouncer (session pool) and the gateway (shipped
# policy, decision logging and the audit record on), in one run on this machine. Every cell runs 3
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
reps=3
source bench/lib.sh
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

# The gateway with the dev issuer, the shipped policy, decision logs and the
# audit record (batched) on.
gw_port=$(free_port)
start_gateway gateway "$gw_port"
token=$token_gateway
for _ in $(seq 1 200); do
  (echo > "/dev/tcp/127.0.0.1/$bn_port") 2>/dev/null && break
  sleep 0.1
done

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

decisions=$(grep -c 'portcullis::decision' "$work/gw-gateway.log" || true)
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
  echo "Gateway: release build, shipped policy, decision logging on (info level, $decisions decision lines written), audit record on (batched, SQLite)."
} >> BENCHMARKS.md
echo "bench: results appended to BENCHMARKS.md"
