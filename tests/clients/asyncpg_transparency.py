"""asyncpg: what a client can observe of the session apart from policy
decisions (backend pid, NOTIFY pid, application_name, startup settings),
then a long statement an administrator terminates. Prints one JSON object."""
import asyncio
import json
import os

import asyncpg


async def main():
    conn = await asyncpg.connect(host=os.environ["PCG_HOST"], port=int(os.environ["PCG_PORT"]),
                                 user=os.environ["PCG_USER"], password=os.environ["PCG_PASSWORD"],
                                 database=os.environ["PCG_DB"], ssl=False,
                                 server_settings={"application_name": "asyncpg-tr",
                                                  "default_transaction_isolation": "serializable",
                                                  "statement_timeout": "4321"})
    out = {"pid_told": conn.get_server_pid(),
           "pid_real": await conn.fetchval("select pg_backend_pid()"),
           "app_reported": conn.get_settings().application_name,
           "isolation": await conn.fetchval("show transaction_isolation"),
           "statement_timeout": await conn.fetchval("show statement_timeout")}
    got = asyncio.get_running_loop().create_future()
    await conn.add_listener("tr_chan", lambda c, pid, ch, payload: got.done() or got.set_result(pid))
    await conn.execute("notify tr_chan, 'x'")
    out["notify_pid"] = await asyncio.wait_for(got, 10)
    await conn.execute("set statement_timeout = 0")
    try:
        await conn.execute("select pg_sleep(60)")
        out["terminated"] = None
    except asyncpg.PostgresError as e:
        out["terminated"] = e.sqlstate
    except Exception as e:  # a connection error instead of the server's
        out["terminated"] = type(e).__name__
    out["closed"] = conn.is_closed()
    print(json.dumps(out))


asyncio.run(main())
