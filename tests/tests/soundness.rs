//! The differential soundness oracle: every statement the analyser calls
//! `read_only` is run against a real cluster inside a transaction that is
//! rolled back, and what it did is observed there — a transaction id
//! assigned (any write, DDL, large object), locks beyond plain reads,
//! settings changed, rows counted by `pg_stat_xact_user_tables`, user
//! functions run (`pg_stat_xact_user_functions`), the sequence moved,
//! large objects, another session terminated, our own connection lost.
//! Any effect fails the test with the statement printed.
//!
//! CI runs the deterministic corpus (every built-in of `pg_proc`, the
//! analyser's corpus, the fixture's attack forms, lexer and encoding
//! cases) plus random mutations for `SOUNDNESS_SECONDS` (default 60) on
//! seed `SOUNDNESS_SEED` (default 7); `scripts/soundness.sh MINUTES` runs
//! it longer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use portcullis::catalog::client::{Client, Outcome};
use portcullis::catalog::{load_with, Catalog};
use portcullis::config::ConnectionConfig;
use portcullis::pg::encoding::TextDecoder;
use portcullis::sql::{analyze_with, corpus_tests::corpus_sql, ParseSettings, StatementFacts};
use portcullis_e2e::oracle::{
    Builtin, Case, Generator, Operator, Sources, BUILTINS_SQL, CASTS_SQL, CONTROLS, FIXTURE,
    OPERATORS_SQL, READ_ONLY,
};
use portcullis_e2e::postgres;

/// What a statement may have done, read in the same transaction.
const OBSERVE: &str = "SELECT txid_current_if_assigned() IS NOT NULL, \
    (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND (locktype = 'advisory' \
      OR (locktype = 'relation' AND mode NOT IN ('AccessShareLock', 'RowShareLock', \
      'RowExclusiveLock')))), \
    (SELECT md5(string_agg(name || '=' || coalesce(setting, ''), ',' ORDER BY name)) \
      FROM pg_settings), \
    (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables), \
    (SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcid >= 16384), \
    (SELECT last_value::text || is_called::text FROM oracle.s1), \
    (SELECT count(*) FROM pg_largeobject_metadata)";

const WHAT: [&str; 7] = [
    "assigned a transaction id (it wrote)",
    "took a lock stronger than reading or writing rows",
    "changed a setting",
    "changed rows",
    "ran a user function",
    "moved a sequence",
    "created or dropped a large object",
];

const CONNECT: &str = "RESET search_path; SET statement_timeout = '3s'; SET lock_timeout = '1s'";

fn connection() -> ConnectionConfig {
    let pg = postgres();
    toml::from_str(&format!(
        "name = \"app\"\nupstream = \"127.0.0.1:{}\"\nuser = \"svc\"\npassword_file = \"{}\"",
        pg.port,
        pg.svc_password_file.display()
    ))
    .expect("connection config")
}

struct Oracle {
    conn: ConnectionConfig,
    client: Client,
    sentinel: Client,
    cat: Catalog,
}

/// What one run observed.
#[derive(Default)]
struct Seen {
    effects: Vec<&'static str>,
    failed: bool,
    /// The server's error, when the statement failed.
    error: Option<String>,
}

impl Oracle {
    async fn connect(conn: &ConnectionConfig) -> Client {
        let mut c = Client::connect(conn, "soundness oracle")
            .await
            .expect("connect");
        c.query(CONNECT.as_bytes()).await.expect("session setup");
        c
    }

    async fn observe(&mut self, prefix: &str) -> Option<Vec<Option<String>>> {
        let sql = format!("{prefix}{OBSERVE}");
        match self.client.query(sql.as_bytes()).await.ok()?.pop()? {
            Outcome::Done { mut rows, .. } => rows.pop(),
            Outcome::Failed(_) => None,
        }
    }

    /// Runs `case` in a transaction that is rolled back; what it changed.
    async fn run(&mut self, case: &Case, sets_settings: bool) -> Seen {
        let mut seen = Seen::default();
        let prefix = format!(
            "BEGIN; SET LOCAL client_encoding = '{}'; SET LOCAL standard_conforming_strings = {}; \
             SAVEPOINT s; ",
            case.encoding,
            if case.std_strings { "on" } else { "off" }
        );
        let Some(before) = self.observe(&prefix).await else {
            panic!("the observer failed before {:?}", lossy(case));
        };
        let ran =
            tokio::time::timeout(Duration::from_secs(30), self.client.query(&case.bytes)).await;
        let outcomes = match ran {
            Ok(Ok(o)) => o,
            Ok(Err(_)) | Err(_) => {
                seen.effects
                    .push("lost the connection (terminated or hung)");
                self.client = Self::connect(&self.conn).await;
                return seen;
            }
        };
        seen.error = outcomes.iter().find_map(|o| match o {
            Outcome::Failed(e) => Some(format!("{} ({})", e.message, e.code)),
            Outcome::Done { .. } => None,
        });
        seen.failed = seen.error.is_some();
        if !seen.failed {
            if let Some(after) = self.observe("").await {
                compare(&before, &after, sets_settings, &mut seen.effects);
            }
        }
        match self.observe("ROLLBACK TO s; ").await {
            Some(after) => compare(&before, &after, false, &mut seen.effects),
            None => seen.effects.push("left the session unusable"),
        }
        let _ = self.client.query(b"ROLLBACK").await;
        if self.sentinel.query(b"SELECT 1").await.is_err() {
            seen.effects.push("terminated another session");
            self.sentinel = Self::connect(&self.conn).await;
        }
        seen
    }
}

fn compare(
    before: &[Option<String>],
    after: &[Option<String>],
    sets_settings: bool,
    out: &mut Vec<&'static str>,
) {
    for (i, what) in WHAT.iter().enumerate() {
        if i == 2 && sets_settings {
            continue;
        }
        let (b, a) = (before.get(i), after.get(i));
        let changed = match i {
            1 | 3 | 4 => num(a) > num(b),
            _ => a != b,
        };
        if changed && !out.contains(what) {
            out.push(what);
        }
    }
}

fn num(v: Option<&Option<String>>) -> i64 {
    v.and_then(|v| v.as_deref())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn lossy(case: &Case) -> String {
    format!(
        "{} [client_encoding {}, standard_conforming_strings {}]",
        String::from_utf8_lossy(&case.bytes),
        case.encoding,
        if case.std_strings { "on" } else { "off" }
    )
}

/// The facts the gateway would derive for `case`, or why it refuses the
/// text outright.
fn facts(case: &Case, cat: &Catalog) -> Result<Vec<StatementFacts>, String> {
    let text = TextDecoder::new(case.encoding, "UTF8")
        .decode(&case.bytes)
        .map_err(|e| e.to_string())?;
    let settings = ParseSettings {
        standard_strings_off: !case.std_strings,
    };
    Ok(analyze_with(&text, settings, cat))
}

/// Transaction control cannot run inside the oracle's own transaction.
fn controls_transaction(f: &StatementFacts) -> bool {
    f.tx_effect != Default::default()
        || matches!(
            f.command_tag.as_str(),
            "SAVEPOINT" | "RELEASE" | "ROLLBACK" | "COMMIT" | "BEGIN" | "START TRANSACTION"
        )
}

#[derive(Default)]
struct Stats {
    tried: usize,
    ran: usize,
    not_read_only: usize,
    refused_text: usize,
    server_errors: usize,
    skipped_tx: usize,
    kinds: BTreeSet<String>,
    functions: BTreeSet<String>,
    encodings: BTreeSet<&'static str>,
    std_off: usize,
}

#[test]
fn read_only_statements_have_no_effect_on_a_real_server() {
    let seconds: u64 = std::env::var("SOUNDNESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("SOUNDNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let pg = postgres();
    pg.psql_super("app", "ALTER ROLE svc SET track_functions = 'all'");
    pg.psql_super("app", &format!("SET ROLE svc; {FIXTURE}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(oracle(seconds, seed));
}

async fn oracle(seconds: u64, seed: u64) {
    let conn = connection();
    let mut client = Oracle::connect(&conn).await;
    let cat = load_with(&mut client).await.expect("catalog loads");
    client.query(CONNECT.as_bytes()).await.expect("reset");
    let builtins: Vec<Builtin> = client
        .rows(BUILTINS_SQL)
        .await
        .expect("pg_proc")
        .into_iter()
        .map(|r| {
            let col = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            Builtin {
                name: col(0),
                args: col(1)
                    .split('|')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                set: col(2) == "t",
                aggregate: col(3) == "t",
            }
        })
        .collect();
    let n_builtins = builtins.len();
    let col = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let operators: Vec<Operator> = client
        .rows(OPERATORS_SQL)
        .await
        .expect("pg_operator")
        .iter()
        .map(|r| Operator {
            name: col(r, 0),
            left: Some(col(r, 1)).filter(|l| !l.is_empty()),
            right: col(r, 2),
        })
        .collect();
    let casts: Vec<(String, String)> = client
        .rows(CASTS_SQL)
        .await
        .expect("pg_cast")
        .iter()
        .map(|r| (col(r, 0), col(r, 1)))
        .collect();
    let fixed_extra = operators.len() + casts.len();
    let sentinel = Oracle::connect(&conn).await;
    let mut o = Oracle {
        conn: conn.clone(),
        client,
        sentinel,
        cat,
    };

    // The observer sees each mechanism, and the analyser flags each.
    for sql in CONTROLS {
        let case = Case::plain(sql.to_string());
        let f = facts(&case, &o.cat).expect("decodes");
        assert!(
            f.iter().any(|f| !f.read_only),
            "analyser calls a writing statement read-only: {sql}"
        );
        let seen = o.run(&case, false).await;
        assert!(
            !seen.effects.is_empty(),
            "the observer saw no effect of {sql} (error: {:?})",
            seen.error
        );
    }
    for sql in READ_ONLY {
        let case = Case::plain(sql.to_string());
        let f = facts(&case, &o.cat).expect("decodes");
        assert!(f.iter().all(|f| f.read_only), "{sql}: {f:?}");
    }

    let corpus: Vec<&str> = corpus_sql().collect();
    let generator = Generator::new(
        seed,
        Sources {
            builtins,
            operators,
            casts,
        },
        &corpus,
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // An upper bound of the fixed part's length (cases without samples are
    // not generated).
    let fixed =
        corpus.len() + CONTROLS.len() + READ_ONLY.len() + 2 * n_builtins + fixed_extra + 200;
    let mut stats = Stats::default();
    let mut violations = Vec::new();
    for case in generator {
        if stats.tried >= fixed && Instant::now() > deadline {
            break;
        }
        stats.tried += 1;
        let f = match facts(&case, &o.cat) {
            Ok(f) => f,
            Err(_) => {
                stats.refused_text += 1;
                continue;
            }
        };
        if f.iter().any(|f| !f.read_only) {
            stats.not_read_only += 1;
            continue;
        }
        if f.iter().any(controls_transaction) {
            stats.skipped_tx += 1;
            continue;
        }
        stats.ran += 1;
        stats.kinds.extend(f.iter().map(|f| f.kind.clone()));
        stats
            .functions
            .extend(f.iter().flat_map(|f| f.functions.iter().cloned()));
        stats.encodings.insert(case.encoding);
        stats.std_off += usize::from(!case.std_strings);
        let sets = f.iter().any(|f| matches!(f.kind.as_str(), "set" | "reset"));
        let seen = o.run(&case, sets).await;
        stats.server_errors += usize::from(seen.failed);
        if !seen.effects.is_empty() {
            violations.push(format!("{}: {}", lossy(&case), seen.effects.join(", ")));
        }
    }
    eprintln!(
        "soundness oracle (seed {seed}): {} statements tried, {} read-only run on the server \
         ({} failed there), {} not read-only, {} refused as unreadable text, {} transaction \
         control skipped; {} distinct kinds, {} distinct functions in read-only statements \
         (of {n_builtins} built-ins), encodings {:?}, {} with standard_conforming_strings off",
        stats.tried,
        stats.ran,
        stats.server_errors,
        stats.not_read_only,
        stats.refused_text,
        stats.skipped_tx,
        stats.kinds.len(),
        stats.functions.len(),
        stats.encodings,
        stats.std_off
    );
    assert!(
        violations.is_empty(),
        "{} read-only statements had an effect:\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(stats.ran > 1000, "too few statements ran: {}", stats.ran);
}
