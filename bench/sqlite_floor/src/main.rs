//! The SQLite floor of an audit record: CPU per record of the gateway's
//! own insert (`INSERT OR FAIL`, one cached single-row statement per
//! record, 21 bound columns, one transaction per batch, WAL with
//! `synchronous = NORMAL`) of a pgbench-sized statement record, into
//!
//! - `shipped`: the gateway's SQLite schema (`migrations/sqlite`), with the
//!   session index row the writer upserts for each session in each batch;
//! - `bare`: a table with the same columns and no key, no index, no
//!   session index: what no schema change can go below.
//!
//! Nothing else runs in this process: the figures are SQLite's work alone,
//! without the gateway's chaining, sessions or network.
//!
//!   sqlite_floor SCHEMA.sql DIR [RECORDS] [BATCH] [SESSIONS]

#![forbid(unsafe_code)]

use std::time::Instant;

use rusqlite::{params, Connection};

const COLUMNS: &str = "instance, seq, id, at_us, kind, session_id, user_name, groups_json, \
     client_addr, application, connection, action, approval_id, command_tag, rows_affected, \
     duration_us, error_code, key_id, body, prev_hash, hash";

/// A pgbench -S statement record's body, as the writer stores it (no
/// encryption).
const BODY: &str = r#"{"statement":"SELECT abalance FROM pgbench_accounts WHERE aid = $1;","params":["734512"],"reasons":["read-only statements run without approval"],"policy_hash":"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8","columns":["abalance"],"rows":[["0"]]}"#;

/// CPU time of this thread so far, µs.
fn thread_cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime (fields 14 and 15 of stat), in clock ticks of 10 ms.
    (ticks(11) + ticks(12)) * 10_000.0
}

fn run(
    schema: &str,
    dir: &str,
    variant: &str,
    records: usize,
    batch: usize,
    sessions: usize,
) -> rusqlite::Result<(f64, f64)> {
    let path = format!("{dir}/floor-{variant}.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let conn = Connection::open(&path)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(schema)?;
    let table = match variant {
        "shipped" => "audit_records",
        _ => {
            // Same columns, no key, no index.
            conn.execute_batch(
                "CREATE TABLE bare AS SELECT * FROM audit_records WHERE 0; \
                 DROP TABLE audit_sessions",
            )?;
            "bare"
        }
    };
    let marks = vec!["?"; 21].join(", ");
    let insert = format!("INSERT OR FAIL INTO {table} ({COLUMNS}) VALUES ({marks})");
    let upsert = "INSERT INTO audit_sessions (session_id, instance, user_name, connection, \
         client_addr, application, first_seq, last_seq, first_us, last_us, statements, denied) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, instance) DO UPDATE \
         SET last_seq = excluded.last_seq, last_us = excluded.last_us, \
         statements = statements + excluded.statements, denied = denied + excluded.denied";
    let session_ids: Vec<String> = (0..sessions)
        .map(|i| format!("0194f2c1-7b7e-7cc1-9a4b-5b2f3f7d{i:04x}"))
        .collect();
    let ids: Vec<String> = (0..records)
        .map(|i| format!("0194f2c1-{:04x}-7cc1-9a4b-{:012x}", i % 0xffff, i))
        .collect();
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let started = Instant::now();
    let cpu0 = thread_cpu_us();
    let mut seq = 0usize;
    while seq < records {
        let tx = conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(&insert)?;
            let end = (seq + batch).min(records);
            for i in seq..end {
                let at_us = 1_764_000_000_000_000 + i as i64 * 25;
                st.execute(params![
                    "gw-bench",
                    i as i64 + 1,
                    ids[i],
                    at_us,
                    "statement",
                    session_ids[i % sessions],
                    "bench@example.com",
                    r#"["dev"]"#,
                    "127.0.0.1:51234",
                    "pgbench",
                    "dev",
                    "allow",
                    "",
                    "SELECT 1",
                    1,
                    118,
                    "",
                    "",
                    BODY,
                    hash,
                    hash,
                ])?;
            }
            if variant == "shipped" {
                let mut up = tx.prepare_cached(upsert)?;
                for (k, s) in session_ids
                    .iter()
                    .enumerate()
                    .take((end - seq).min(sessions))
                {
                    let at_us = 1_764_000_000_000_000 + (seq + k) as i64 * 25;
                    up.execute(params![
                        s,
                        "gw-bench",
                        "bench@example.com",
                        "dev",
                        "127.0.0.1:51234",
                        "pgbench",
                        (seq + k + 1) as i64,
                        end as i64,
                        at_us,
                        at_us,
                        ((end - seq) / sessions) as i64,
                        0
                    ])?;
                }
            }
            seq = end;
        }
        tx.commit()?;
    }
    let cpu = (thread_cpu_us() - cpu0) / records as f64;
    let wall = started.elapsed().as_secs_f64() * 1e6 / records as f64;
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    Ok((cpu, wall))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: sqlite_floor SCHEMA.sql DIR [RECORDS] [BATCH] [SESSIONS]");
        std::process::exit(2);
    }
    let schema = match std::fs::read_to_string(&args[1]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sqlite_floor: {}: {e}", args[1]);
            std::process::exit(2);
        }
    };
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (records, batch, sessions) = (num(3, 300_000), num(4, 700), num(5, 8).max(1));
    for variant in ["shipped", "bare"] {
        match run(&schema, &args[2], variant, records, batch, sessions) {
            Ok((cpu, wall)) => println!(
                "{variant} records={records} batch={batch} sessions={sessions} cpu_us={cpu:.2} wall_us={wall:.2}"
            ),
            Err(e) => {
                eprintln!("sqlite_floor: {variant}: {e}");
                std::process::exit(1);
            }
        }
    }
}
