// node-pg: what a client can observe of the session apart from policy
// decisions (backend pid, NOTIFY pid, application_name, startup settings),
// then a long statement an administrator terminates. Prints one JSON object.
import pg from 'pg';

const c = new pg.Client({
  host: process.env.PCG_HOST, port: Number(process.env.PCG_PORT), user: process.env.PCG_USER,
  password: process.env.PCG_PASSWORD, database: process.env.PCG_DB, ssl: false,
  application_name: 'nodepg-tr', statement_timeout: 4321,
  options: '-c default_transaction_isolation=serializable',
});
const params = {};
c.connection.on('parameterStatus', (m) => { params[m.parameterName] = m.parameterValue; });
const errors = [];
c.on('error', (e) => errors.push(e.code || e.message));
await c.connect();
const out = {};
out.pid_told = c.processID;
out.pid_real = (await c.query('select pg_backend_pid() as p')).rows[0].p;
out.app_reported = params.application_name;
out.isolation = (await c.query('show transaction_isolation')).rows[0].transaction_isolation;
out.statement_timeout = (await c.query('show statement_timeout')).rows[0].statement_timeout;
const notified = new Promise((resolve) => c.on('notification', (n) => resolve(n.processId)));
await c.query('listen tr_chan');
await c.query("notify tr_chan, 'x'");
out.notify_pid = await Promise.race([notified, new Promise((r) => setTimeout(() => r(null), 10000))]);
await c.query('set statement_timeout = 0');
try {
  await c.query('select pg_sleep(60)');
  out.terminated = null;
} catch (e) {
  out.terminated = e.code || e.message;
}
out.async_errors = errors;
console.log(JSON.stringify(out));
process.exit(0);
