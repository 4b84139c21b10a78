"""psycopg 3 against the gateway: what a client can observe of the session
apart from policy decisions. Prints one JSON object.

  - the backend pid it is told is the real one (pg_backend_pid(), NOTIFY)
  - ParameterStatus reports its own application_name
  - client_encoding LATIN9 and SJIS (at startup and by SET) with non-ASCII
    identifiers and literals
  - startup settings in `options` and as parameters take effect
"""
import json
import os

import psycopg

base = dict(host=os.environ["PCG_HOST"], port=os.environ["PCG_PORT"], user=os.environ["PCG_USER"],
            password=os.environ["PCG_PASSWORD"], dbname=os.environ["PCG_DB"], sslmode="disable")
out = {}

with psycopg.connect(**base, application_name="transparency-e2e", autocommit=True) as conn:
    out["pid_told"] = conn.info.backend_pid
    out["pid_real"] = conn.execute("select pg_backend_pid()").fetchone()[0]
    out["app_reported"] = conn.info.parameter_status("application_name")
    out["app_show"] = conn.execute("show application_name").fetchone()[0]
    conn.execute("listen portcullis_chan")
    conn.execute("notify portcullis_chan, 'hello'")
    n = next(conn.notifies(timeout=10, stop_after=1), None)
    out["notify_pid"] = n.pid if n else None
    out["notify_payload"] = n.payload if n else None
    # Mid-session SET client_encoding, then non-ASCII literal and identifier.
    conn.execute("set client_encoding to 'LATIN9'")
    out["enc_after_set"] = conn.info.parameter_status("client_encoding")
    out["latin9_literal"] = conn.execute("select 'prix: 5 €' as \"Café\"").fetchone()[0]
    out["latin9_column"] = conn.execute("select 1 as \"Café\"").description[0].name
    conn.execute("set client_encoding to 'SJIS'")
    # 表 is 0x95 0x5c in SJIS: its second byte is a backslash.
    out["sjis_literal"] = conn.execute("select '表示' as \"列表\"").fetchone()[0]
    out["sjis_column"] = conn.execute("select 1 as \"列表\"").description[0].name
    out["sjis_param"] = conn.execute("select %s::text", ("表",)).fetchone()[0]

with psycopg.connect(**base, client_encoding="SJIS", autocommit=True) as conn:
    out["sjis_startup_enc"] = conn.info.parameter_status("client_encoding")
    out["sjis_startup"] = conn.execute("select '表' || %s", ("示",)).fetchone()[0]

with psycopg.connect(**base, options="-c default_transaction_isolation=serializable",
                     autocommit=True) as conn:
    out["isolation"] = conn.execute("show transaction_isolation").fetchone()[0]

# statement_timeout as a startup parameter (libpq passes unknown keys only
# through options, so use the PGOPTIONS form of a plain parameter too).
with psycopg.connect(**base, options="--statement-timeout=4321", autocommit=True) as conn:
    out["statement_timeout"] = conn.execute("show statement_timeout").fetchone()[0]

try:
    psycopg.connect(**base, options="-c role=postgres", autocommit=True).close()
    out["role_option"] = "connected"
except psycopg.OperationalError as e:
    out["role_option"] = str(e)

print(json.dumps(out))
