//! The audit store: SQLite (embedded default) or PostgreSQL (several
//! gateways share it), through sqlx; the schema of each backend is in
//! `migrations/<backend>/` and applied at open. Reads stream rows, so an
//! export of millions of records runs in constant memory.

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AnyPool, Row};
use std::str::FromStr;

use super::config::SyncMode;
use super::record::Stored;

const SQLITE_SCHEMA: &str = include_str!("../../../migrations/sqlite/0001_audit.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../migrations/postgres/0001_audit.sql");

const COLUMNS: &str = "instance, seq, id, at_us, kind, session_id, user_name, groups_json, \
    client_addr, application, connection, action, approval_id, command_tag, rows_affected, \
    duration_us, error_code, key_id, body, prev_hash, hash";

/// Rows per INSERT statement (21 parameters each: within SQLite's and
/// PostgreSQL's limits).
pub const ROWS_PER_INSERT: usize = 100;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("audit store: {0}")]
    Db(#[from] sqlx::Error),
    /// The URL is not one the store takes.
    #[error("store.url must start with sqlite:// or postgres://")]
    Url,
    /// An in-memory SQLite database would lose the record at exit (and
    /// each connection would see a different one).
    #[error("store.url: an in-memory SQLite database cannot hold the audit record; give a file (sqlite:///path/audit.db)")]
    Memory,
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Instance.
    pub instance: String,
    /// Last record covered.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// When it was signed (µs).
    pub at_us: i64,
    /// Ed25519 signature (base64) over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The signed message.
    pub fn message(instance: &str, seq: i64, hash: &str, at_us: i64) -> Vec<u8> {
        format!("portcullis-audit-checkpoint\n{instance}\n{seq}\n{hash}\n{at_us}").into_bytes()
    }
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// From this time (µs), inclusive.
    pub since_us: Option<i64>,
    /// Before this time (µs).
    pub until_us: Option<i64>,
    /// This user.
    pub user: Option<String>,
    /// This connection.
    pub connection: Option<String>,
    /// This session.
    pub session: Option<String>,
    /// This instance.
    pub instance: Option<String>,
}

impl Filter {
    fn sql(&self) -> (String, Vec<String>, Vec<i64>) {
        let mut conds = Vec::new();
        let (mut texts, mut ints) = (Vec::new(), Vec::new());
        // Placeholders are numbered in the order binds are added: texts
        // first, then integers (see `bind`).
        let text_conds = [
            ("user_name", &self.user),
            ("connection", &self.connection),
            ("session_id", &self.session),
            ("instance", &self.instance),
        ];
        for (col, v) in text_conds {
            if let Some(v) = v {
                texts.push(v.clone());
                conds.push(format!("{col} = ${}", texts.len()));
            }
        }
        for (op, v) in [(">=", self.since_us), ("<", self.until_us)] {
            if let Some(v) = v {
                ints.push(v);
                conds.push(format!("at_us {op} ${}", texts.len() + ints.len()));
            }
        }
        let w = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (w, texts, ints)
    }
}

/// A session as listed by `portcullis audit sessions`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SessionSummary {
    /// Session id.
    pub session_id: String,
    /// User.
    pub user: String,
    /// Connection.
    pub connection: String,
    /// Client address.
    pub client_addr: String,
    /// First record (µs).
    pub first_us: i64,
    /// Last record (µs).
    pub last_us: i64,
    /// Statements recorded.
    pub statements: i64,
    /// Of which denied.
    pub denied: i64,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    /// Reads, checkpoints and pruning (both backends); the viewer's
    /// sign-ins ([`super::logins`]).
    pub(super) pool: AnyPool,
    /// SQLite, opened by the writer: its inserts, through sqlx's native
    /// driver.
    writer: Option<SqlitePool>,
    /// The store is SQLite.
    sqlite: bool,
}

fn stored(r: &AnyRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        instance: r.try_get("instance")?,
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        at_us: r.try_get("at_us")?,
        kind: r.try_get("kind")?,
        session_id: r.try_get("session_id")?,
        user: r.try_get("user_name")?,
        groups_json: r.try_get("groups_json")?,
        client_addr: r.try_get("client_addr")?,
        application: r.try_get("application")?,
        connection: r.try_get("connection")?,
        action: r.try_get("action")?,
        approval_id: r.try_get("approval_id")?,
        command_tag: r.try_get("command_tag")?,
        rows_affected: r.try_get("rows_affected")?,
        duration_us: r.try_get("duration_us")?,
        error_code: r.try_get("error_code")?,
        key_id: r.try_get("key_id")?,
        body: r.try_get("body")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// Binds the 21 columns of a record, in [`COLUMNS`] order (texts as
/// `&str`, which the SQLite driver binds without copying).
macro_rules! bind_row {
    ($q:expr, $s:expr) => {
        $q.bind($s.instance.as_str())
            .bind($s.seq)
            .bind($s.id.as_str())
            .bind($s.at_us)
            .bind($s.kind.as_str())
            .bind($s.session_id.as_str())
            .bind($s.user.as_str())
            .bind($s.groups_json.as_str())
            .bind($s.client_addr.as_str())
            .bind($s.application.as_str())
            .bind($s.connection.as_str())
            .bind($s.action.as_str())
            .bind($s.approval_id.as_str())
            .bind($s.command_tag.as_str())
            .bind($s.rows_affected)
            .bind($s.duration_us)
            .bind($s.error_code.as_str())
            .bind($s.key_id.as_str())
            .bind($s.body.as_str())
            .bind($s.prev_hash.as_str())
            .bind($s.hash.as_str())
    };
}

/// Runs one multi-row INSERT of `chunk` on `executor` (`$in_tx`: inside
/// a transaction of several; see [`insert_sql`]).
macro_rules! insert_chunk {
    ($db:ty, $executor:expr, $chunk:expr, $anonymous:expr, $in_tx:expr) => {{
        let sql = insert_sql($chunk.len(), $anonymous, $in_tx);
        let mut q = sqlx::query::<$db>(&sql);
        for s in $chunk {
            q = bind_row!(q, s);
        }
        q.execute($executor).await?;
    }};
}

/// Inserts `batch` on `pool` atomically: one INSERT when it fits in one,
/// else one transaction of [`ROWS_PER_INSERT`]-row INSERTs.
macro_rules! insert_batch {
    ($db:ty, $pool:expr, $batch:expr, $anonymous:expr) => {{
        if $batch.len() <= ROWS_PER_INSERT {
            insert_chunk!($db, $pool, $batch, $anonymous, false);
        } else {
            let mut tx = $pool.begin().await?;
            for chunk in $batch.chunks(ROWS_PER_INSERT) {
                insert_chunk!($db, &mut *tx, chunk, $anonymous, true);
            }
            tx.commit().await?;
        }
    }};
}

/// `INSERT ... VALUES (...), ...` for `rows` rows: anonymous `?`
/// placeholders for SQLite (it looks a numbered parameter's name up
/// linearly, so `$n` costs grow with the square of the parameters in a
/// statement), `$n` for PostgreSQL.
///
/// SQLite inside a transaction of several INSERTs (`in_tx`): `INSERT OR
/// FAIL`. A plain INSERT there may abort halfway, so SQLite copies every
/// page it touches to a statement journal first (about 15 % of the
/// store's cost per record); FAIL needs no such copy, and the caller rolls
/// the whole transaction back on any error, so the batch stays atomic.
/// Alone (autocommit) a statement keeps the plain INSERT: FAIL would
/// commit the rows before a conflict, and SQLite keeps no statement
/// journal in autocommit anyway.
fn insert_sql(rows: usize, anonymous: bool, in_tx: bool) -> String {
    let verb = if anonymous && in_tx {
        "INSERT OR FAIL"
    } else {
        "INSERT"
    };
    let mut sql = format!("{verb} INTO audit_records ({COLUMNS}) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 1..=21 {
            if c > 1 {
                sql.push_str(", ");
            }
            if anonymous {
                sql.push('?');
            } else {
                sql.push_str(&format!("${}", i * 21 + c));
            }
        }
        sql.push(')');
    }
    sql
}

impl Store {
    /// Opens the store for reading (the CLI, the viewer), creating a
    /// SQLite file and applying the schema if needed.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, None).await
    }

    /// Opens the store for the writer, committing as `sync` says.
    pub async fn open_writer(url: &str, sync: SyncMode) -> Result<Self, StoreError> {
        Self::connect(url, Some(sync)).await
    }

    async fn connect(url: &str, writer: Option<SyncMode>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, schema, sqlite) = if let Some(file) = url.strip_prefix("sqlite://") {
            if file.starts_with(":memory:") || file.contains("mode=memory") {
                return Err(StoreError::Memory);
            }
            (format!("sqlite://{file}?mode=rwc"), SQLITE_SCHEMA, true)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), POSTGRES_SCHEMA, false)
        } else {
            return Err(StoreError::Url);
        };
        let relaxed = writer == Some(SyncMode::Normal);
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 4 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // audit.sync = "normal" on PostgreSQL: the writer's
                    // commits do not wait for the server's WAL flush.
                    if relaxed && !sqlite {
                        sqlx::query("SET synchronous_commit = off")
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if sqlite {
            // WAL: readers (export, the viewer) do not block the writer.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        for stmt in schema_statements(schema) {
            sqlx::query(&stmt).execute(&pool).await?;
        }
        let writer = match (sqlite, writer) {
            (true, Some(sync)) => {
                let opts = SqliteConnectOptions::from_str(&url)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(match sync {
                        SyncMode::Full => SqliteSynchronous::Full,
                        SyncMode::Normal => SqliteSynchronous::Normal,
                    });
                Some(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts)
                        .await?,
                )
            }
            _ => None,
        };
        Ok(Self {
            pool,
            writer,
            sqlite,
        })
    }

    /// How this store's commits are made durable: SQLite's `synchronous`
    /// on the writer's connection (`0` off, `1` normal, `2` full; empty for
    /// a reader), or PostgreSQL's `synchronous_commit` on the pool's
    /// connections.
    pub async fn commit_setting(&self) -> Result<String, StoreError> {
        if let Some(w) = &self.writer {
            let r = sqlx::query("PRAGMA synchronous").fetch_one(w).await?;
            return Ok(r.try_get::<i64, _>(0)?.to_string());
        }
        if self.sqlite {
            return Ok(String::new());
        }
        let r = sqlx::query("SELECT current_setting('synchronous_commit') AS s")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("s")?)
    }

    /// Where `instance`'s chain ends: (seq, hash) of its last record, or
    /// of its last checkpoint when retention pruned every record up to
    /// it (the chain goes on from there).
    pub async fn head(&self, instance: &str) -> Result<Option<(i64, String)>, StoreError> {
        let mut head = None;
        for table in ["audit_records", "audit_checkpoints"] {
            let row = sqlx::query(&format!(
                "SELECT seq, hash FROM {table} WHERE instance = $1 ORDER BY seq DESC LIMIT 1"
            ))
            .bind(instance)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = row {
                let (seq, hash): (i64, String) = (r.try_get("seq")?, r.try_get("hash")?);
                if head.as_ref().is_none_or(|(s, _)| seq > *s) {
                    head = Some((seq, hash));
                }
            }
        }
        Ok(head)
    }

    /// The hashes of `instance`'s records `from..=to` that are stored, by
    /// seq.
    pub async fn hashes(
        &self,
        instance: &str,
        from: i64,
        to: i64,
    ) -> Result<std::collections::HashMap<i64, String>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, hash FROM audit_records WHERE instance = $1 AND seq >= $2 AND seq <= $3",
        )
        .bind(instance)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?)))
            .collect()
    }

    /// Records `instance`'s public key at its first start; returns the key
    /// on record (which may differ: the caller decides).
    pub async fn announce(&self, instance: &str, public_key: &str) -> Result<String, StoreError> {
        let known = sqlx::query("SELECT public_key FROM audit_instances WHERE instance = $1")
            .bind(instance)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = known {
            return Ok(r.try_get("public_key")?);
        }
        sqlx::query(
            "INSERT INTO audit_instances (instance, public_key, created_us) VALUES ($1, $2, $3)",
        )
        .bind(instance)
        .bind(public_key)
        .bind(super::record::now_us())
        .execute(&self.pool)
        .await?;
        Ok(public_key.to_string())
    }

    /// Every instance with a public key on record or with records, and
    /// its key (empty when none is on record).
    pub async fn instances(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.instance AS instance, COALESCE(k.public_key, '') AS public_key \
             FROM (SELECT instance FROM audit_instances UNION SELECT DISTINCT instance FROM audit_records) i \
             LEFT JOIN audit_instances k ON k.instance = i.instance ORDER BY i.instance",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("instance")?, r.try_get("public_key")?)))
            .collect()
    }

    /// Inserts a batch atomically: one multi-row INSERT (a transaction of
    /// its own) when it has at most [`ROWS_PER_INSERT`] rows, else one
    /// transaction of such INSERTs — one commit for the group either way.
    /// The writer's SQLite inserts go through sqlx's own SQLite driver,
    /// which binds the texts without copying them.
    pub async fn insert(&self, batch: &[&Stored]) -> Result<(), StoreError> {
        match &self.writer {
            Some(pool) => insert_batch!(sqlx::Sqlite, pool, batch, true),
            None => insert_batch!(sqlx::Any, &self.pool, batch, self.sqlite),
        }
        Ok(())
    }

    /// Stores a signed checkpoint.
    pub async fn checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (instance, seq, hash, at_us, signature) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.instance)
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.at_us)
        .bind(&c.signature)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Checkpoints of `instance`, oldest first.
    pub async fn checkpoints(&self, instance: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, seq, hash, at_us, signature FROM audit_checkpoints WHERE instance = $1 ORDER BY seq",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    instance: r.try_get("instance")?,
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                    at_us: r.try_get("at_us")?,
                    signature: r.try_get("signature")?,
                })
            })
            .collect()
    }

    /// Records matching `f`, in chain order (instance, seq), streamed.
    pub fn stream<'a>(&'a self, f: &Filter) -> BoxStream<'a, Result<Stored, StoreError>> {
        let (w, texts, ints) = f.sql();
        let sql = format!("SELECT {COLUMNS} FROM audit_records{w} ORDER BY instance, seq");
        async_stream_rows(&self.pool, sql, texts, ints)
    }

    /// Sessions matching `f`, newest first, at most `limit`.
    pub async fn sessions(
        &self,
        f: &Filter,
        limit: i64,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let (w, texts, ints) = f.sql();
        let sql = format!(
            "SELECT session_id, MAX(user_name) AS user_name, MAX(connection) AS connection, \
             MAX(client_addr) AS client_addr, MIN(at_us) AS first_us, MAX(at_us) AS last_us, \
             SUM(CASE WHEN kind = 'statement' THEN 1 ELSE 0 END) AS statements, \
             SUM(CASE WHEN action = 'deny' THEN 1 ELSE 0 END) AS denied \
             FROM audit_records{w} GROUP BY session_id ORDER BY MIN(at_us) DESC LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        for t in &texts {
            q = q.bind(t);
        }
        for i in &ints {
            q = q.bind(*i);
        }
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

    /// Deletes the records of `instance` up to the last checkpoint signed
    /// before `before_us` — a prefix of the chain, all older than that
    /// time — so what remains verifies from that checkpoint. Returns how
    /// many were deleted.
    pub async fn prune(&self, instance: &str, before_us: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "SELECT MAX(seq) AS s FROM audit_checkpoints WHERE instance = $1 AND at_us < $2",
        )
        .bind(instance)
        .bind(before_us)
        .fetch_one(&self.pool)
        .await?;
        let Some(upto) = r.try_get::<Option<i64>, _>("s")? else {
            return Ok(0);
        };
        let r = sqlx::query("DELETE FROM audit_records WHERE instance = $1 AND seq <= $2")
            .bind(instance)
            .bind(upto)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// The first record of `instance` still stored (after pruning).
    pub async fn first_seq(&self, instance: &str) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("SELECT MIN(seq) AS s FROM audit_records WHERE instance = $1")
            .bind(instance)
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get::<Option<i64>, _>("s")?)
    }
}

/// The statements of a schema file (split at `;`, `--` comment lines
/// dropped), as both stores apply them at open.
pub fn schema_statements(schema: &str) -> Vec<String> {
    schema
        .split(';')
        .map(|stmt| {
            stmt.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
        .collect()
}

fn async_stream_rows<'a>(
    pool: &'a AnyPool,
    sql: String,
    texts: Vec<String>,
    ints: Vec<i64>,
) -> BoxStream<'a, Result<Stored, StoreError>> {
    // The query borrows its SQL and binds: keep them alive in the stream.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Stored, StoreError>>(256);
    let pool = pool.clone();
    tokio::spawn(async move {
        let mut q = sqlx::query(&sql);
        for t in &texts {
            q = q.bind(t);
        }
        for i in &ints {
            q = q.bind(*i);
        }
        let mut rows = q.fetch(&pool);
        while let Some(r) = rows.next().await {
            let item = r
                .map_err(StoreError::from)
                .and_then(|row| Ok(stored(&row)?));
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    tokio_stream_from(rx).boxed()
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A new directory for a SQLite store, and the store's URL in it.
    pub(crate) fn temp_sqlite() -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("pc-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("a.db").display());
        (dir, url)
    }

    #[tokio::test]
    async fn the_writer_commits_as_audit_sync_says_and_memory_is_refused() {
        let (dir, url) = temp_sqlite();
        let full = Store::open_writer(&url, SyncMode::Full).await.unwrap();
        assert_eq!(full.commit_setting().await.unwrap(), "2");
        let normal = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        assert_eq!(normal.commit_setting().await.unwrap(), "1");
        let reader = Store::open(&url).await.unwrap();
        assert!(reader.writer.is_none(), "readers open no writer pool");
        for url in ["sqlite://:memory:", "sqlite://file:x?mode=memory"] {
            assert!(matches!(Store::open(url).await, Err(StoreError::Memory)));
        }
        assert!(matches!(
            Store::open("mysql://x").await,
            Err(StoreError::Url)
        ));
        drop((full, normal, reader));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_head_survives_a_prune_of_every_record() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
        let recs = crate::audit::journal::tests::chain(3);
        let refs: Vec<&Stored> = recs.iter().collect();
        store.insert(&refs).await.unwrap();
        store
            .checkpoint(&Checkpoint {
                instance: "gw".into(),
                seq: 3,
                hash: recs[2].hash.clone(),
                at_us: 1,
                signature: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(store.prune("gw", 2).await.unwrap(), 3, "all of them");
        assert_eq!(store.first_seq("gw").await.unwrap(), None);
        // The chain goes on after the checkpoint, not from the genesis.
        assert_eq!(
            store.head("gw").await.unwrap(),
            Some((3, recs[2].hash.clone()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_batch_of_several_inserts_is_stored_whole_or_not_at_all() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let recs = crate::audit::journal::tests::chain(2 * ROWS_PER_INSERT as i64 + 50);
        // Record 230 is already there: the batch's third INSERT conflicts
        // after two have gone in.
        store.insert(&[&recs[229]]).await.unwrap();
        let refs: Vec<&Stored> = recs.iter().collect();
        assert!(store.insert(&refs).await.is_err());
        assert_eq!(store.hashes("gw", 1, 1000).await.unwrap().len(), 1);
        // The connection is usable again and takes the batch without it.
        let rest: Vec<&Stored> = recs.iter().filter(|r| r.seq != 230).collect();
        store.insert(&rest).await.unwrap();
        assert_eq!(store.hashes("gw", 1, 1000).await.unwrap().len(), recs.len());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
