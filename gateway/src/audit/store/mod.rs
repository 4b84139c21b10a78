//! The audit store: SQLite (embedded default) or PostgreSQL (several
//! gateways share it), through sqlx; the schema of each backend is in
//! `migrations/<backend>/` and applied at open. Reads stream rows, so an
//! export of millions of records runs in constant memory.
//!
//! Opening and the schema are here; writing records in [`insert`], reading
//! them in [`read`], the session index in [`sessions`], the viewer's
//! sign-ins in [`logins`].

mod insert;
mod logins;
mod read;
mod sessions;
mod sqlite_writer;

pub use sessions::{deltas, SessionRow};
pub use sqlite_writer::{SqliteWriter, YIELD_EVERY};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use super::config::SyncMode;

const SQLITE_SCHEMA: &str = include_str!("../../../../migrations/sqlite/0001_audit.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../../migrations/postgres/0001_audit.sql");

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
    /// The SQLite writer's connection refused or failed.
    #[error("audit store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite writer's blocking thread ended without an answer.
    #[error("audit store: the writer's thread failed: {0}")]
    Thread(#[from] tokio::task::JoinError),
    /// The URL is not one the store takes.
    #[error("store.url must start with sqlite:// or postgres://")]
    Url,
    /// An in-memory SQLite database would lose the record at exit (and
    /// each connection would see a different one).
    #[error("store.url: an in-memory SQLite database cannot hold the audit record; give a file (sqlite:///path/audit.db)")]
    Memory,
    /// The SQLite file could not be created.
    #[error("store.url: cannot create the SQLite file: {0}")]
    Create(std::io::Error),
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

/// A value bound to a read query, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Text(String),
    Int(i64),
}

/// A session's records: (instance, first seq, last seq) per instance.
type Spans = [(String, i64, i64)];

impl Filter {
    /// The WHERE clause of the filter (empty when it has no conditions)
    /// and its arguments, numbered `$1, $2, ...` in order. `since` and
    /// `until`: the conditions the time bounds put on the table read
    /// (`"at_us >="`, `"at_us <"` on records). `spans`: where the
    /// filter's session's records are, when it has one and the table
    /// read is the records.
    fn sql(&self, since: &str, until: &str, spans: Option<&Spans>) -> (String, Vec<Arg>) {
        let mut conds = Vec::new();
        let mut args = Vec::new();
        let arg = |a: Arg, args: &mut Vec<Arg>| {
            args.push(a);
            format!("${}", args.len())
        };
        let text_conds = [
            ("user_name", &self.user),
            ("connection", &self.connection),
            ("session_id", &self.session),
            ("instance", &self.instance),
        ];
        for (col, v) in text_conds {
            if let Some(v) = v {
                conds.push(format!("{col} = {}", arg(Arg::Text(v.clone()), &mut args)));
            }
        }
        for (cond, v) in [(since, self.since_us), (until, self.until_us)] {
            if let Some(v) = v {
                conds.push(format!("{cond} {}", arg(Arg::Int(v), &mut args)));
            }
        }
        if let Some(spans) = spans {
            let mut ors = Vec::new();
            for (instance, first, last) in spans {
                let i = arg(Arg::Text(instance.clone()), &mut args);
                let (f, l) = (
                    arg(Arg::Int(*first), &mut args),
                    arg(Arg::Int(*last), &mut args),
                );
                ors.push(format!("(instance = {i} AND seq BETWEEN {f} AND {l})"));
            }
            // No span: the session has no records.
            conds.push(if ors.is_empty() {
                "1 = 0".to_string()
            } else {
                format!("({})", ors.join(" OR "))
            });
        }
        let w = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (w, args)
    }
}

/// Binds `args` to `q` in order.
fn bind_args<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(t) => q.bind(t.as_str()),
            Arg::Int(i) => q.bind(*i),
        };
    }
    q
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
    /// sign-ins.
    pool: AnyPool,
    /// SQLite, opened by the writer: its inserts, on a connection of its
    /// own ([`SqliteWriter`]).
    writer: Option<SqliteWriter>,
    /// The store is SQLite.
    sqlite: bool,
}

/// Connections of a store's pool for reads (and the writes that are not
/// records: sign-ins, checkpoints, pruning).
const READERS: u32 = 4;

impl Store {
    /// Opens the store for reading (the CLI, the viewer), creating a
    /// SQLite file and applying the schema if needed.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, None).await
    }

    /// SQLite opened by the writer: the connection its records go in by.
    pub fn sqlite_writer(&self) -> Option<SqliteWriter> {
        self.writer.clone()
    }

    /// Opens the store for the writer, committing as `sync` says.
    pub async fn open_writer(url: &str, sync: SyncMode) -> Result<Self, StoreError> {
        Self::connect(url, Some(sync)).await
    }

    async fn connect(url: &str, writer: Option<SyncMode>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let mut path = None;
        let (url, schema, sqlite) = if let Some(file) = url.strip_prefix("sqlite://") {
            if file.starts_with(":memory:") || file.contains("mode=memory") {
                return Err(StoreError::Memory);
            }
            crate::secrets::create_private_sqlite(url).map_err(StoreError::Create)?;
            path = Some(file.to_string());
            (format!("sqlite://{file}?mode=rwc"), SQLITE_SCHEMA, true)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), POSTGRES_SCHEMA, false)
        } else {
            return Err(StoreError::Url);
        };
        let relaxed = writer == Some(SyncMode::Normal);
        // Several connections for SQLite too: in WAL mode readers do not
        // block each other, so a long export does not hold up the viewer's
        // pages (or its sign-in checks) while it streams.
        let pool = AnyPoolOptions::new()
            .max_connections(READERS)
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
        Self::upgrade(&pool, sqlite).await?;
        let writer = match (path, writer) {
            (Some(path), Some(sync)) => {
                Some(tokio::task::spawn_blocking(move || SqliteWriter::open(&path, sync)).await??)
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
            return Ok(w.synchronous()?.to_string());
        }
        if self.sqlite {
            return Ok(String::new());
        }
        let r = sqlx::query("SELECT current_setting('synchronous_commit') AS s")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("s")?)
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

    /// Every instance with a public key on record, with records or with
    /// rows in the session index, and its key (empty when none is on
    /// record).
    pub async fn instances(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.instance AS instance, COALESCE(k.public_key, '') AS public_key \
             FROM (SELECT instance FROM audit_instances UNION SELECT DISTINCT instance FROM audit_records \
             UNION SELECT DISTINCT instance FROM audit_sessions) i \
             LEFT JOIN audit_instances k ON k.instance = i.instance ORDER BY i.instance",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("instance")?, r.try_get("public_key")?)))
            .collect()
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::record::Stored;

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
        #[cfg(unix)]
        {
            // The database and its WAL are the owner's alone.
            use std::os::unix::fs::PermissionsExt;
            full.insert(&[&crate::audit::journal::tests::chain(1)[0]])
                .await
                .unwrap();
            for f in ["a.db", "a.db-wal", "a.db-shm"] {
                let meta = std::fs::metadata(dir.join(f)).unwrap();
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
            }
        }
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
    async fn a_long_export_does_not_hold_up_other_reads() {
        use futures_util::StreamExt as _;
        let (dir, url) = temp_sqlite();
        let writer = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let recs = crate::audit::journal::tests::chain(3);
        let refs: Vec<&Stored> = recs.iter().collect();
        writer.insert(&refs).await.unwrap();
        let reader = Store::open(&url).await.unwrap();
        let mut export = reader.stream(&Filter::default());
        // The export is under way, holding its connection...
        assert!(export.next().await.unwrap().is_ok());
        // ...and the viewer still answers.
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            reader.login_user("no such cookie", 0),
        )
        .await
        .expect("a second read waits for the export to end");
        assert_eq!(other.unwrap(), None);
        assert_eq!(export.count().await, 2);
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
        assert_eq!(store.session_spans("").await.unwrap().len(), 1);
        assert_eq!(store.prune("gw", 2).await.unwrap(), 3, "all of them");
        assert_eq!(store.first_seq("gw").await.unwrap(), None);
        // The session's row went with its records.
        assert!(store.session_spans("").await.unwrap().is_empty());
        // The chain goes on after the checkpoint, not from the genesis.
        assert_eq!(
            store.head("gw").await.unwrap(),
            Some((3, recs[2].hash.clone()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
