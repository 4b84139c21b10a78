"""psycopg 3 through the gateway on a table whose columns the policy masks:
text and binary results, bound parameters, a prepared statement, a
refused statement and the session after it. Prints one JSON object."""
import json
import os

import psycopg

conninfo = dict(host=os.environ["PCG_HOST"], port=os.environ["PCG_PORT"], user=os.environ["PCG_USER"],
                password=os.environ["PCG_PASSWORD"], dbname=os.environ["PCG_DB"], sslmode="disable")
out = {}
with psycopg.connect(**conninfo, autocommit=True) as conn:
    q = "select id, email, card, age, name from mask_people where id = %s"
    out["text"] = list(conn.execute(q, (1,)).fetchone())
    with conn.cursor(binary=True) as cur:
        cur.execute("select id, email, card, age, name from mask_people order by id")
        out["binary"] = [list(r) for r in cur.fetchall()]
    with conn.cursor() as cur:
        got = []
        for i in (1, 2, 1, 2, 1, 2):
            cur.execute(q, (i,), prepare=True)
            got.append(cur.fetchone()[1])
        out["prepared"] = got
    try:
        conn.execute("select upper(email) from mask_people").fetchall()
        out["refused"] = None
    except psycopg.Error as e:
        out["refused"] = e.sqlstate
        out["refused_msg"] = str(e)
    out["after"] = conn.execute("select count(*) from mask_people").fetchone()[0]
    # SQL EXECUTE of the driver's prepared statement would run it under
    # the decision of "execute ..." (no mask rules). Last: it may change
    # the catalog as far as the gateway knows.
    try:
        conn.execute("execute _pg3_0(1)").fetchall()
        out["sql_execute"] = None
    except psycopg.Error as e:
        out["sql_execute"] = e.sqlstate
    # So is a statement that may run code (here a function the catalog
    # does not know: the server would answer 42883).
    try:
        conn.execute("select portcullis_no_such_fn()").fetchall()
        out["code"] = None
    except psycopg.Error as e:
        out["code"] = e.sqlstate
print(json.dumps(out))
