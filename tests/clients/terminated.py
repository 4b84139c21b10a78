"""psycopg 3: a long statement whose backend an administrator terminates.
Prints one JSON object with what the driver saw."""
import json
import os

import psycopg

conn = psycopg.connect(host=os.environ["PCG_HOST"], port=os.environ["PCG_PORT"], user=os.environ["PCG_USER"],
                       password=os.environ["PCG_PASSWORD"], dbname=os.environ["PCG_DB"], sslmode="disable",
                       application_name="to-be-terminated", autocommit=True)
out = {}
try:
    conn.execute("select pg_sleep(60)")
    out["error"] = None
except psycopg.Error as e:
    out["error"] = e.sqlstate
    out["message"] = str(e)
out["closed"] = conn.closed
print(json.dumps(out))
