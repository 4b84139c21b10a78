//! The SQLite writer's own connection (rusqlite): the gateway's record
//! inserts, one cached single-row INSERT per record inside one
//! transaction per batch (one commit per group). The texts are bound
//! from the records in place (SQLite copies each as it binds; sqlx made
//! an owned copy of each first, on a runtime worker). A batched writer
//! commits on its own thread; the committer (strict mode, and retries)
//! runs a batch with `block_in_place`, so the sessions' tasks move to
//! another worker while SQLite writes and syncs.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use super::sessions::UPSERT_SQLITE;
use super::{deltas, COLUMNS};
use crate::audit::config::SyncMode;
use crate::audit::record::Stored;

/// How long a write waits for another writer of the same file (the
/// pool's checkpoints and pruning, a `portcullis audit` command).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Records inserted between two yields of the CPU. A batch takes
/// milliseconds; without a yield the scheduler may leave a runtime worker
/// (and every session on it) queued behind it on this core while the other
/// core idles. A yield is a system call per this many records.
pub const YIELD_EVERY: usize = 32;

/// The writer's connection.
#[derive(Clone)]
pub struct SqliteWriter {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteWriter {
    /// Opens `path` (which exists: the pool created it) in WAL mode,
    /// committing as `sync` says.
    pub fn open(path: &str, sync: SyncMode) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
        let level = match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", level)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no transaction open
        // (rusqlite rolls back on drop): the connection is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Inserts `batch` in one transaction, with what it adds to the
    /// session index: all of it or none.
    ///
    /// `INSERT OR FAIL`: a plain INSERT inside a transaction of several
    /// statements may abort halfway, so SQLite copies every page it
    /// touches to a statement journal first; FAIL needs no such copy, and
    /// any error rolls the whole transaction back here (the transaction's
    /// drop), so the batch stays atomic.
    pub fn insert(&self, batch: &[&Stored]) -> Result<(), rusqlite::Error> {
        let mut conn = self.lock();
        // IMMEDIATE: take the write lock at BEGIN, where a busy file is
        // waited for (a deferred upgrade may fail at once instead).
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(&INSERT_ONE)?;
            for (i, s) in batch.iter().enumerate() {
                if i % YIELD_EVERY == YIELD_EVERY - 1 {
                    std::thread::yield_now();
                }
                st.execute(params![
                    s.instance,
                    s.seq,
                    s.id,
                    s.at_us,
                    s.kind,
                    s.session_id,
                    s.user,
                    s.groups_json,
                    s.client_addr,
                    s.application,
                    s.connection,
                    s.action,
                    s.approval_id,
                    s.command_tag,
                    s.rows_affected,
                    s.duration_us,
                    s.error_code,
                    s.key_id,
                    s.body,
                    s.prev_hash,
                    s.hash,
                ])?;
            }
            let mut up = tx.prepare_cached(&UPSERT_SQLITE)?;
            for d in deltas(batch) {
                up.execute(params![
                    d.session_id,
                    d.instance,
                    d.user,
                    d.connection,
                    d.client_addr,
                    d.application,
                    d.first_seq,
                    d.last_seq,
                    d.first_us,
                    d.last_us,
                    d.statements,
                    d.denied,
                ])?;
            }
        }
        tx.commit()
    }

    /// Inserts `batch` without holding up the runtime: on a
    /// multi-threaded runtime in place (the worker's other tasks move to
    /// another thread meanwhile, and nothing is copied); on a
    /// current-thread runtime (`gateway.worker_threads = 1`) on a blocking
    /// thread, with a copy of the batch.
    pub async fn insert_async(&self, batch: &[&Stored]) -> Result<(), super::StoreError> {
        if multi_threaded() {
            return Ok(tokio::task::block_in_place(|| self.insert(batch))?);
        }
        let owned: Vec<Stored> = batch.iter().map(|s| (*s).clone()).collect();
        let w = self.clone();
        tokio::task::spawn_blocking(move || w.insert(&owned.iter().collect::<Vec<_>>())).await??;
        Ok(())
    }

    /// `PRAGMA synchronous` of this connection (`1` normal, `2` full).
    pub fn synchronous(&self) -> Result<i64, rusqlite::Error> {
        self.lock()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
    }

    /// Runs `sql` on the writer's connection (tests: a full disk).
    #[cfg(test)]
    pub fn execute_batch(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.lock().execute_batch(sql)
    }
}

/// The single-row INSERT (21 anonymous placeholders), built once.
static INSERT_ONE: LazyLock<String> = LazyLock::new(|| {
    let marks = vec!["?"; 21].join(", ");
    format!("INSERT OR FAIL INTO audit_records ({COLUMNS}) VALUES ({marks})")
});

/// Whether the current runtime has other workers to take over while one
/// blocks (`block_in_place`).
fn multi_threaded() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::store::tests::temp_sqlite;
    use crate::audit::store::Store;

    /// Both ways of running a batch off the runtime store it whole.
    async fn inserts_a_batch() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let recs = crate::audit::journal::tests::chain(3 * YIELD_EVERY as i64 + 1);
        let refs: Vec<&Stored> = recs.iter().collect();
        store.insert(&refs).await.unwrap();
        assert_eq!(store.hashes("gw", 1, 1000).await.unwrap().len(), recs.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_threaded_runtime_inserts_in_place() {
        assert!(multi_threaded());
        inserts_a_batch().await;
    }

    #[tokio::test]
    async fn a_current_thread_runtime_inserts_on_a_blocking_thread() {
        assert!(!multi_threaded());
        inserts_a_batch().await;
    }
}
