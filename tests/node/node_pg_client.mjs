// node-pg against the gateway: rows, parameters, a named prepared
// statement, a denied statement followed by a working one.
import pg from 'pg';

const c = new pg.Client({
  host: process.env.PCG_HOST, port: Number(process.env.PCG_PORT), user: process.env.PCG_USER,
  password: process.env.PCG_PASSWORD, database: process.env.PCG_DB, ssl: false,
});
await c.connect();
const out = {};
out.one = (await c.query('select 1 as x')).rows[0].x;
out.param = (await c.query('select name from items where id = $1', [3])).rows[0].name;
out.prepared = [];
for (const id of [4, 5]) {
  const r = await c.query({ name: 'get-item', text: 'select id from items where id = $1', values: [id] });
  out.prepared.push(r.rows[0].id);
}
try {
  await c.query('delete from items');
  out.denied = null;
} catch (e) {
  out.denied = e.code;
  out.denied_msg = e.message;
}
try {
  await c.query({ text: 'delete from items where $1::int > 0 or true', values: [1] });
  out.denied_extended = null;
} catch (e) {
  out.denied_extended = e.code;
}
out.after = Number((await c.query('select count(*) as n from items')).rows[0].n);
await c.end();
console.log(JSON.stringify(out));
