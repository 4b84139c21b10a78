"""psycopg 3 against the gateway: rows, parameters, prepared statements,
a denied statement followed by a working one, and cancelling pg_sleep.
Prints one JSON object."""
import json
import os
import threading
import time

import psycopg

conninfo = dict(host=os.environ["PCG_HOST"], port=os.environ["PCG_PORT"], user=os.environ["PCG_USER"],
                password=os.environ["PCG_PASSWORD"], dbname=os.environ["PCG_DB"], sslmode="disable",
                application_name="psycopg-e2e")
out = {}
with psycopg.connect(**conninfo, autocommit=True) as conn:
    out["one"] = conn.execute("select 1").fetchone()[0]
    out["param"] = conn.execute("select name from items where id = %s", (3,)).fetchone()[0]
    ids = []
    with conn.cursor() as cur:
        for i in range(1, 7):
            cur.execute("select id from items where id = %s", (i,), prepare=True)
            ids.append(cur.fetchone()[0])
    out["prepared"] = ids
    try:
        conn.execute("delete from items")
        out["denied"] = None
    except psycopg.Error as e:
        out["denied"] = e.sqlstate
        out["denied_msg"] = str(e)
    out["after"] = conn.execute("select count(*) from items").fetchone()[0]

    # Cancel: a watcher connection waits (with a deadline) until the sleep
    # is running, then cancels it from the client side.
    def watcher():
        with psycopg.connect(**conninfo, autocommit=True) as w:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                n = w.execute("select count(*) from pg_stat_activity where state = 'active' and query = 'select pg_sleep(60)'").fetchone()[0]
                if n:
                    break
                time.sleep(0.05)
        (conn.cancel_safe if hasattr(conn, "cancel_safe") else conn.cancel)()

    t = threading.Thread(target=watcher)
    t.start()
    started = time.monotonic()
    try:
        conn.execute("select pg_sleep(60)")
        out["cancelled"] = None
    except psycopg.Error as e:
        out["cancelled"] = e.sqlstate
    out["cancel_secs"] = time.monotonic() - started
    t.join()
    out["after_cancel"] = conn.execute("select 2").fetchone()[0]
print(json.dumps(out))
