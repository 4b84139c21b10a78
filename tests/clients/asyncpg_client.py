"""asyncpg against the gateway: rows, parameters, a denied statement
followed by a working one, and a client-side timeout that cancels."""
import asyncio
import json
import os
import time

import asyncpg


async def main():
    conn = await asyncpg.connect(host=os.environ["PCG_HOST"], port=int(os.environ["PCG_PORT"]),
                                 user=os.environ["PCG_USER"], password=os.environ["PCG_PASSWORD"],
                                 database=os.environ["PCG_DB"], ssl=False)
    out = {"one": await conn.fetchval("select 1"),
           "param": await conn.fetchval("select name from items where id = $1", 3)}
    stmt = await conn.prepare("select id from items where id = $1")
    out["prepared"] = [await stmt.fetchval(i) for i in range(1, 4)]
    try:
        await conn.execute("delete from items")
        out["denied"] = None
    except asyncpg.PostgresError as e:
        out["denied"] = e.sqlstate
    out["after"] = await conn.fetchval("select count(*) from items")
    started = time.monotonic()
    try:
        await conn.execute("select pg_sleep(60)", timeout=1.5)
        out["cancelled"] = False
    except asyncio.TimeoutError:
        out["cancelled"] = True
    out["cancel_secs"] = time.monotonic() - started
    out["after_cancel"] = await conn.fetchval("select 2")
    await conn.close()
    print(json.dumps(out))


asyncio.run(main())
