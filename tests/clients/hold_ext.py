"""psycopg 3 (extended protocol: Parse/Bind/Describe/Execute/Sync) running
one statement that the policy holds for approval. Usage:
hold_ext.py SQL [PARAM...]. Prints JSON {ok, status, sqlstate, message,
notices}; then checks the session is still usable."""
import json
import os
import sys

import psycopg

sql, params = sys.argv[1], sys.argv[2:]
conninfo = dict(host=os.environ["PCG_HOST"], port=os.environ["PCG_PORT"], user=os.environ["PCG_USER"],
                password=os.environ["PCG_PASSWORD"], dbname=os.environ["PCG_DB"], sslmode="disable",
                application_name="hold-ext-e2e")
out = {"notices": []}
with psycopg.connect(**conninfo, autocommit=True) as conn:
    conn.add_notice_handler(lambda d: out["notices"].append(d.message_primary))
    try:
        cur = conn.execute(sql, params or None)
        out.update(ok=True, status=cur.statusmessage)
    except psycopg.Error as e:
        out.update(ok=False, sqlstate=e.sqlstate, message=str(e))
    out["usable"] = conn.execute("select 'usable'").fetchone()[0]
print(json.dumps(out))
