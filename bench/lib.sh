# Shared by the benchmark scripts (sourced): a release build, a throwaway
# PostgreSQL cluster initialised for pgbench, gateways started with
# `portcullis dev --upstream`, and pgbench runs collected per cell.
# Expects `secs` and `reps` to be set by the caller.
# PORTCULLIS_BIN=/path/to/portcullis: measure that binary (an earlier
# commit's release build, for a comparison on the same host) instead of
# building this tree.
bash scripts/install-deps.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
if [ -n "${PORTCULLIS_BIN:-}" ]; then
  gw_bin=$PORTCULLIS_BIN
else
  cargo build --release -q -p portcullis
  gw_bin="$CARGO_TARGET_DIR/release/portcullis"
fi
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


# start_gateway NAME PORT [DEV ARGS...]: a dev gateway on PORT in front of the
# cluster; sets token_NAME to a token for user bench (group dev).
start_gateway() {
  local name=$1 port=$2
  shift 2
  "$gw_bin" dev --upstream "postgres://postgres:$pw@127.0.0.1:$pg_port/postgres" --listen "127.0.0.1:$port" \
    --admin-listen 127.0.0.1:0 --state-dir "$work/dev-$name" --user bench --groups dev --no-approvals "$@" \
    > "$work/gw-$name.out" 2> "$work/gw-$name.log" &
  pids+=($!)
  for _ in $(seq 1 300); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  printf -v "token_$name" '%s' "$("$gw_bin" token --dev --state-dir "$work/dev-$name" --user bench --groups dev)"
}

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
