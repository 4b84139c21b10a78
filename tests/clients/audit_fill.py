"""Fills a Portcullis SQLite audit store with N synthetic records (instance
"bulk") for the export test: usage audit_fill.py STORE.db N"""
import json
import sqlite3
import sys

db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode = WAL")
body = json.dumps({"statement": "select * from orders where id = $1", "params": ["42"],
                   "columns": ["id", "total"], "rows": [["42", "19.90"]], "policy_hash": "abc123"})


def rows():
    for i in range(1, n + 1):
        yield ("bulk", i, "0193%028x" % i, 1_790_000_000_000_000 + i, "statement", "s%d" % (i // 50),
               "user%d@example.com" % (i % 100), '["dev"]', "127.0.0.1:5000", "psql", "app", "allow",
               "", "SELECT 1", 1, 250, "", "", body, "0" * 64, "%064x" % i)


c.executemany("INSERT INTO audit_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
c.commit()
print(c.execute("SELECT count(*) FROM audit_records").fetchone()[0])
