//! The session index, `audit_sessions`: one row per session (who, from
//! where, the span `first_seq..=last_seq` of its instance's chain that
//! holds its records, their first and last times, and how many statements
//! and refusals). The writer updates it in the transaction that commits
//! the records, so it is never behind them; replay, the viewer and
//! `export --session` read a session's span of the chain instead of an
//! index of the records by session (which, with many sessions open at
//! once, would cost each commit one page per session); the session list
//! reads this table alone. `audit verify` checks it against the records.
//!
//! Stores made before the table existed are filled from their records
//! once, at open ([`Store::upgrade`]).

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::{AnyPool, Row};

use super::{bind_args, Filter, SessionSummary, Store, StoreError};
use crate::audit::record::{Stored, KIND_STATEMENT};

/// A session's row of the index, or what a batch of records adds to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRow {
    /// Session id.
    pub session_id: String,
    /// Instance whose chain holds the records.
    pub instance: String,
    /// User.
    pub user: String,
    /// Connection.
    pub connection: String,
    /// Client address.
    pub client_addr: String,
    /// application_name.
    pub application: String,
    /// First record.
    pub first_seq: i64,
    /// Last record.
    pub last_seq: i64,
    /// Earliest record time (µs).
    pub first_us: i64,
    /// Latest record time (µs).
    pub last_us: i64,
    /// Statements among the records.
    pub statements: i64,
    /// Refusals among them.
    pub denied: i64,
}

/// The action of a refused statement.
const DENY: &str = "deny";

impl SessionRow {
    /// The row of `s`'s session as `s` alone makes it.
    pub fn start(s: &Stored) -> Self {
        let mut row = Self {
            session_id: s.session_id.clone(),
            instance: s.instance.clone(),
            user: s.user.clone(),
            connection: s.connection.clone(),
            client_addr: s.client_addr.clone(),
            application: s.application.clone(),
            first_seq: s.seq,
            last_seq: s.seq,
            first_us: s.at_us,
            last_us: s.at_us,
            statements: 0,
            denied: 0,
        };
        row.count(s);
        row
    }

    /// Widens the row to another record of the session.
    pub fn add(&mut self, s: &Stored) {
        self.first_seq = self.first_seq.min(s.seq);
        self.last_seq = self.last_seq.max(s.seq);
        self.first_us = self.first_us.min(s.at_us);
        self.last_us = self.last_us.max(s.at_us);
        self.count(s);
    }

    fn count(&mut self, s: &Stored) {
        self.statements += i64::from(s.kind == KIND_STATEMENT);
        self.denied += i64::from(s.action == DENY);
    }
}

/// What `batch` adds to each session's row, in the order the sessions
/// first appear in it.
pub fn deltas(batch: &[&Stored]) -> Vec<SessionRow> {
    let mut out: Vec<SessionRow> = Vec::new();
    let mut at: HashMap<(&str, &str), usize> = HashMap::new();
    for s in batch {
        match at.entry((s.session_id.as_str(), s.instance.as_str())) {
            std::collections::hash_map::Entry::Occupied(e) => out[*e.get()].add(s),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(SessionRow::start(s));
            }
        }
    }
    out
}

/// The upsert of one [`SessionRow`] (12 parameters, in its field
/// order): a new session's row, or an existing row widened and its
/// counts added to. `least`/`greatest`: the backend's two-argument
/// minimum and maximum.
fn upsert_sql(marks: &[String], least: &str, greatest: &str) -> String {
    format!(
        "INSERT INTO audit_sessions (session_id, instance, user_name, connection, client_addr, \
         application, first_seq, last_seq, first_us, last_us, statements, denied) VALUES ({}) \
         ON CONFLICT (session_id, instance) DO UPDATE SET \
         first_seq = {least}(audit_sessions.first_seq, excluded.first_seq), \
         last_seq = {greatest}(audit_sessions.last_seq, excluded.last_seq), \
         first_us = {least}(audit_sessions.first_us, excluded.first_us), \
         last_us = {greatest}(audit_sessions.last_us, excluded.last_us), \
         statements = audit_sessions.statements + excluded.statements, \
         denied = audit_sessions.denied + excluded.denied",
        marks.join(", ")
    )
}

/// The upsert for SQLite (anonymous placeholders), built once.
pub static UPSERT_SQLITE: LazyLock<String> =
    LazyLock::new(|| upsert_sql(&vec!["?".to_string(); 12], "MIN", "MAX"));

/// The upsert for PostgreSQL, built once.
pub static UPSERT_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    let marks: Vec<String> = (1..=12).map(|i| format!("${i}")).collect();
    upsert_sql(&marks, "LEAST", "GREATEST")
});

/// Fills `audit_sessions` from the records of a store made before it
/// (whose records still have their index by session).
const BACKFILL: &str = "INSERT INTO audit_sessions (session_id, instance, user_name, connection, \
    client_addr, application, first_seq, last_seq, first_us, last_us, statements, denied) \
    SELECT session_id, instance, MAX(user_name), MAX(connection), MAX(client_addr), \
    MAX(application), MIN(seq), MAX(seq), MIN(at_us), MAX(at_us), \
    SUM(CASE WHEN kind = 'statement' THEN 1 ELSE 0 END), \
    SUM(CASE WHEN action = 'deny' THEN 1 ELSE 0 END) \
    FROM audit_records WHERE 1 = 1 GROUP BY session_id, instance \
    ON CONFLICT (session_id, instance) DO NOTHING";

/// The per-record indexes a store made before `audit_sessions` has.
const OLD_INDEXES: [&str; 2] = ["audit_records_session", "audit_records_user"];

impl Store {
    /// Fills the session index of a store made before it, once, and drops
    /// the per-record indexes it replaces. Several gateways opening a
    /// shared PostgreSQL store at once take turns (an advisory lock).
    pub(super) async fn upgrade(pool: &AnyPool, sqlite: bool) -> Result<(), StoreError> {
        if !has_old_index(pool, sqlite).await? {
            return Ok(());
        }
        tracing::info!("audit store made before the session index: filling it from the records (one pass) and dropping the per-record indexes by session and user; stop every gateway sharing this store before upgrading them");
        let mut tx = pool.begin().await?;
        if !sqlite {
            // 0x706f7274 ("port"): any constant both sides agree on.
            sqlx::query("SELECT pg_advisory_xact_lock(1886351988)")
                .execute(&mut *tx)
                .await?;
            if !has_old_index(&mut *tx, sqlite).await? {
                return Ok(());
            }
        }
        let filled = sqlx::query(BACKFILL).execute(&mut *tx).await?;
        for ix in OLD_INDEXES {
            sqlx::query(&format!("DROP INDEX IF EXISTS {ix}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(
            sessions = filled.rows_affected(),
            "audit store upgraded: session index filled from the records"
        );
        Ok(())
    }

    /// Where session `id`'s records are: (instance, first seq, last seq)
    /// per instance that holds any.
    pub async fn session_spans(&self, id: &str) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, first_seq, last_seq FROM audit_sessions WHERE session_id = $1 \
             ORDER BY instance",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("instance")?,
                    r.try_get("first_seq")?,
                    r.try_get("last_seq")?,
                ))
            })
            .collect()
    }

    /// Sessions matching `f` (a session matches the time bounds when it
    /// has records within them), newest first, at most `limit`.
    pub async fn sessions(
        &self,
        f: &Filter,
        limit: i64,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let (w, args) = f.sql("last_us >=", "first_us <", None);
        let sql = format!(
            "SELECT session_id, user_name, connection, client_addr, first_us, last_us, \
             statements, denied FROM audit_sessions{w} ORDER BY first_us DESC LIMIT {limit}"
        );
        let q = bind_args(sqlx::query(&sql), &args);
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(SessionSummary {
                    session_id: r.try_get("session_id")?,
                    user: r.try_get("user_name")?,
                    connection: r.try_get("connection")?,
                    client_addr: r.try_get("client_addr")?,
                    first_us: r.try_get("first_us")?,
                    last_us: r.try_get("last_us")?,
                    statements: r.try_get("statements")?,
                    denied: r.try_get("denied")?,
                })
            })
            .collect()
    }
}

/// `instance`'s rows of the session index, by session id, read on
/// `executor` (the snapshot `audit verify` reads the records in).
pub(super) async fn session_rows<'e, E>(
    executor: E,
    instance: &str,
) -> Result<HashMap<String, SessionRow>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT session_id, instance, user_name, connection, client_addr, application, \
         first_seq, last_seq, first_us, last_us, statements, denied FROM audit_sessions \
         WHERE instance = $1",
    )
    .bind(instance)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| {
            let row = SessionRow {
                session_id: r.try_get("session_id")?,
                instance: r.try_get("instance")?,
                user: r.try_get("user_name")?,
                connection: r.try_get("connection")?,
                client_addr: r.try_get("client_addr")?,
                application: r.try_get("application")?,
                first_seq: r.try_get("first_seq")?,
                last_seq: r.try_get("last_seq")?,
                first_us: r.try_get("first_us")?,
                last_us: r.try_get("last_us")?,
                statements: r.try_get("statements")?,
                denied: r.try_get("denied")?,
            };
            Ok((row.session_id.clone(), row))
        })
        .collect()
}

/// Whether the store still has the per-record session index of a store
/// made before `audit_sessions`.
async fn has_old_index<'e, E>(executor: E, sqlite: bool) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = if sqlite {
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name = $1"
    } else {
        "SELECT COUNT(*) AS n FROM pg_class WHERE relkind = 'i' AND relname = $1 \
         AND pg_table_is_visible(oid)"
    };
    let r = sqlx::query(sql)
        .bind(OLD_INDEXES[0])
        .fetch_one(executor)
        .await?;
    Ok(r.try_get::<i64, _>("n")? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::config::SyncMode;
    use crate::audit::store::tests::temp_sqlite;
    use futures_util::StreamExt;

    fn rec(seq: i64, session: &str, kind: &str, action: &str, at_us: i64) -> Stored {
        Stored {
            instance: "gw".into(),
            seq,
            session_id: session.into(),
            user: format!("user-of-{session}"),
            kind: kind.into(),
            action: action.into(),
            at_us,
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_adds_one_delta_per_session_with_its_span_times_and_counts() {
        let batch = [
            rec(5, "a", "session_start", "", 100),
            rec(6, "b", KIND_STATEMENT, "allow", 90),
            rec(7, "a", KIND_STATEMENT, "deny", 120),
            rec(8, "a", KIND_STATEMENT, "allow", 110),
            rec(9, "b", "session_end", "", 130),
        ];
        let refs: Vec<&Stored> = batch.iter().collect();
        let d = deltas(&refs);
        assert_eq!(d.len(), 2, "{d:?}");
        let a = &d[0];
        assert_eq!((a.session_id.as_str(), a.user.as_str()), ("a", "user-of-a"));
        assert_eq!((a.first_seq, a.last_seq), (5, 8));
        assert_eq!(
            (a.first_us, a.last_us),
            (100, 120),
            "min and max, not first and last"
        );
        assert_eq!((a.statements, a.denied), (2, 1));
        let b = &d[1];
        assert_eq!(
            (b.session_id.as_str(), b.first_seq, b.last_seq),
            ("b", 6, 9)
        );
        assert_eq!((b.statements, b.denied), (1, 0));
    }

    #[test]
    fn the_upserts_name_twelve_parameters_in_the_deltas_order() {
        let s = UPSERT_SQLITE.as_str();
        assert_eq!(s.matches('?').count(), 12, "{s}");
        assert!(s.contains("MIN(audit_sessions.first_seq"), "{s}");
        let p = UPSERT_POSTGRES.as_str();
        assert!(p.contains("$12)") && !p.contains("$13"), "{p}");
        assert!(p.contains("GREATEST(audit_sessions.last_seq"), "{p}");
    }

    /// Two batches: session a (start, a refused statement, a statement)
    /// and session b (a statement, its end) interleaved.
    fn two_batches() -> (Vec<Stored>, Vec<Stored>) {
        (
            vec![
                rec(1, "a", "session_start", "", 100),
                rec(2, "b", KIND_STATEMENT, "allow", 110),
                rec(3, "a", KIND_STATEMENT, "deny", 120),
            ],
            vec![
                rec(4, "a", KIND_STATEMENT, "allow", 130),
                rec(5, "b", "session_end", "", 140),
            ],
        )
    }

    async fn kept_across_batches(store: &Store) {
        let (one, two) = two_batches();
        store.insert(&one.iter().collect::<Vec<_>>()).await.unwrap();
        store.insert(&two.iter().collect::<Vec<_>>()).await.unwrap();
        let list = store.sessions(&Filter::default(), 10).await.unwrap();
        let got: Vec<_> = list
            .iter()
            .map(|s| {
                (
                    s.session_id.as_str(),
                    s.first_us,
                    s.last_us,
                    s.statements,
                    s.denied,
                )
            })
            .collect();
        assert_eq!(
            got,
            [("b", 110, 140, 1, 0), ("a", 100, 130, 2, 1)],
            "newest first"
        );
        assert_eq!(list[1].user, "user-of-a");
        assert_eq!(
            store.session_spans("a").await.unwrap(),
            [("gw".to_string(), 1, 4)]
        );
        // A session's records: only its own, in chain order.
        let f = Filter {
            session: Some("a".into()),
            ..Default::default()
        };
        let seqs: Vec<i64> = store.stream(&f).map(|r| r.unwrap().seq).collect().await;
        assert_eq!(seqs, [1, 3, 4]);
        // With a time bound as well; and a session the store does not have.
        let f = Filter {
            since_us: Some(125),
            ..f
        };
        let seqs: Vec<i64> = store.stream(&f).map(|r| r.unwrap().seq).collect().await;
        assert_eq!(seqs, [4]);
        let none = Filter {
            session: Some("nobody".into()),
            ..Default::default()
        };
        assert_eq!(store.stream(&none).count().await, 0);
        // The list's time bounds: sessions with records within them.
        let late = Filter {
            since_us: Some(135),
            ..Default::default()
        };
        let ids: Vec<(String, i64)> = store
            .sessions(&late, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.session_id, s.statements))
            .collect();
        // b's one statement (at 110) is before the window: the counts
        // are the whole session's.
        assert_eq!(ids, [("b".to_string(), 1)]);
    }

    #[tokio::test]
    async fn the_writer_keeps_the_session_index_with_the_records() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        kept_across_batches(&store).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_pool_keeps_the_session_index_with_the_records() {
        // A `portcullis audit` command recovering a journal inserts
        // through the pool (as the PostgreSQL store always does).
        let (dir, url) = temp_sqlite();
        let store = Store::open(&url).await.unwrap();
        assert!(store.writer.is_none());
        kept_across_batches(&store).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_pool_stores_a_batch_and_its_index_rows_whole_or_not_at_all() {
        let (dir, url) = temp_sqlite();
        let store = Store::open(&url).await.unwrap();
        let (one, two) = two_batches();
        store.insert(&[&one[2]]).await.unwrap();
        // Record 3 is there already: the batch conflicts after its first
        // rows went in.
        let all: Vec<&Stored> = one.iter().chain(&two).collect();
        assert!(store.insert(&all).await.is_err());
        assert_eq!(store.hashes("gw", 1, 10).await.unwrap().len(), 1);
        assert_eq!(
            store.session_spans("a").await.unwrap(),
            [("gw".to_string(), 3, 3)]
        );
        assert!(store.session_spans("b").await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_store_made_before_the_index_is_filled_from_its_records_at_open() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let (one, two) = two_batches();
        let all: Vec<&Stored> = one.iter().chain(&two).collect();
        store.insert(&all).await.unwrap();
        let before = store.sessions(&Filter::default(), 10).await.unwrap();
        // As a store of an earlier version: no session table, and the
        // per-record indexes by session and user.
        for sql in [
            "DROP TABLE audit_sessions",
            "CREATE INDEX audit_records_session ON audit_records (session_id)",
            "CREATE INDEX audit_records_user ON audit_records (user_name)",
        ] {
            sqlx::query(sql).execute(&store.pool).await.unwrap();
        }
        drop(store);
        let store = Store::open(&url).await.unwrap();
        let after = store.sessions(&Filter::default(), 10).await.unwrap();
        let key = |v: &[SessionSummary]| {
            v.iter()
                .map(|s| {
                    (
                        s.session_id.clone(),
                        s.first_us,
                        s.last_us,
                        s.statements,
                        s.denied,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&after), key(&before));
        assert_eq!(
            store.session_spans("b").await.unwrap(),
            [("gw".to_string(), 2, 5)]
        );
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('audit_records_session', 'audit_records_user')",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(left, 0, "the indexes the table replaces are dropped");
        // Opening again changes nothing.
        drop(store);
        let store = Store::open(&url).await.unwrap();
        assert_eq!(
            key(&store.sessions(&Filter::default(), 10).await.unwrap()),
            key(&before)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn verify_reads_the_index_and_the_records_as_of_one_moment() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let (one, two) = two_batches();
        store.insert(&one.iter().collect::<Vec<_>>()).await.unwrap();
        let (rows, recs) = store.snapshot("gw").await.unwrap();
        // A gateway commits while verify reads.
        store.insert(&two.iter().collect::<Vec<_>>()).await.unwrap();
        let seqs: Vec<i64> = recs.map(|r| r.unwrap().seq).collect().await;
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!((rows["a"].last_seq, rows["b"].last_seq), (3, 2));
        let (rows, recs) = store.snapshot("gw").await.unwrap();
        assert_eq!(recs.count().await, 5);
        assert_eq!(rows["a"].last_seq, 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
