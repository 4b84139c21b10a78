"""Parses a Portcullis audit export with Python's standard parsers and prints
how many records it holds: usage audit_parse.py FILE jsonl|csv"""
import csv
import json
import sys

path, fmt = sys.argv[1], sys.argv[2]
n = 0
with open(path, newline="") as f:
    if fmt == "csv":
        for row in csv.DictReader(f):
            assert row["kind"] and row["hash"], row
            n += 1
    else:
        for line in f:
            rec = json.loads(line)
            assert rec["kind"] and len(rec["hash"]) > 0, rec
            n += 1
print(n)
