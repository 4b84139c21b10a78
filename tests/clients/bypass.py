"""Runs statements through the gateway with psycopg 3 (extended protocol)
and reports each outcome. Usage: bypass.py MODE < statements.json
MODE `each`: every statement on its own (autocommit);
MODE `pipeline`: all statements in one psycopg pipeline (one batch, one
Sync at the end). Prints a JSON list of {ok, sqlstate, message, rows}."""
import json
import os
import sys

import psycopg

mode = sys.argv[1]
statements = json.loads(sys.argv[2]) if len(sys.argv) > 2 else json.load(sys.stdin)
conninfo = dict(host=os.environ["PCG_HOST"], port=os.environ["PCG_PORT"], user=os.environ["PCG_USER"],
                password=os.environ["PCG_PASSWORD"], dbname=os.environ["PCG_DB"], sslmode="disable",
                application_name="bypass-e2e")
out = []


def outcome(cur):
    try:
        rows = cur.fetchall() if cur.description else []
    except psycopg.Error:
        rows = []
    return {"ok": True, "rows": [[str(v) for v in r] for r in rows]}


with psycopg.connect(**conninfo, autocommit=True) as conn:
    if mode == "param_oid":
        # statements: [sql, type oid, value]: a Parse that fixes the
        # parameter's type, then Bind/Execute.
        sql, oid, value = statements
        pg = conn.pgconn
        res = pg.prepare(b"s1", sql.encode(), [int(oid)])
        if res.status == psycopg.pq.ExecStatus.COMMAND_OK:
            res = pg.exec_prepared(b"s1", [value.encode()])
        ok = res.status in (psycopg.pq.ExecStatus.TUPLES_OK, psycopg.pq.ExecStatus.COMMAND_OK)
        msg = (res.error_message or b"").decode(errors="replace")
        out.append({"ok": ok, "message": msg})
        out.append(outcome(conn.execute("select 'usable'")))
    elif mode == "prepared_across_change":
        # Prepare and run a named statement, say "ready", wait until the
        # test changed the catalog (a line on stdin), run it again.
        pg = conn.pgconn
        sql = statements[0].encode()
        res = pg.prepare(b"s2", sql)
        res = pg.exec_prepared(b"s2", [])
        out.append({"ok": res.status == psycopg.pq.ExecStatus.TUPLES_OK,
                    "message": (res.error_message or b"").decode(errors="replace")})
        print("ready", flush=True)
        sys.stdin.readline()
        res = pg.exec_prepared(b"s2", [])
        out.append({"ok": res.status == psycopg.pq.ExecStatus.TUPLES_OK,
                    "message": (res.error_message or b"").decode(errors="replace")})
        out.append(outcome(conn.execute("select 'usable'")))
    elif mode == "each":
        for sql in statements:
            try:
                out.append(outcome(conn.execute(sql)))
            except psycopg.Error as e:
                out.append({"ok": False, "sqlstate": e.sqlstate, "message": str(e)})
    else:
        cursors = []
        try:
            with conn.pipeline():
                for sql in statements:
                    cursors.append(conn.execute(sql))
        except psycopg.Error as e:
            out.append({"ok": False, "sqlstate": e.sqlstate, "message": str(e)})
        # The session stays usable after the batch.
        out.append(outcome(conn.execute("select 'usable'")))
print(json.dumps(out))
