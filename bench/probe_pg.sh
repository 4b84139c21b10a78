# Sourced by the single-gateway probes (audit_cpu.sh, audit_instr.sh): a
# throwaway PostgreSQL cluster (SCRAM, a free port, in a temp dir)
# initialised for pgbench at scale $scale. Sets pgbin, work, pg_port, pw
# and PGPASSWORD, and free_port and as_pg; the EXIT trap stops the
# cluster, kills the gateway whose pid the caller puts in $gp, and removes
# the temp dir. First the gateway: `bin` is the caller's third argument,
# or this tree's release build (built now).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
[ -n "${3:-}" ] || { bash scripts/install-deps.sh >/dev/null; cargo build --release -q -p portcullis; }
bin=${3:-$CARGO_TARGET_DIR/release/portcullis}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
work=$(mktemp -d /tmp/probe.XXXXXX); chmod 755 $work
gp=""
cleanup() { [ -n "$gp" ] && kill $gp 2>/dev/null; as_pg $pgbin/pg_ctl -D $work/data -m immediate stop >/dev/null 2>&1; rm -rf $work; }
trap cleanup EXIT
pw="bench$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; echo "$pw" > $work/pwfile
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres $work
pg_port=$(free_port)
as_pg $pgbin/initdb -D $work/data --auth=scram-sha-256 -U postgres --pwfile=$work/pwfile --no-sync >/dev/null
as_pg $pgbin/pg_ctl -D $work/data -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" -l $work/pg.log -w start >/dev/null
export PGPASSWORD=$pw
pgbench -i -q -s "$scale" -h 127.0.0.1 -p $pg_port -U postgres postgres >/dev/null 2>&1
