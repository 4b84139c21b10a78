//! Reading the store back: the chain's head and hashes (for the writer
//! and the journal's recovery), records streamed in chain order (export,
//! replay, verify), sessions, and pruning to a checkpoint.

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::any::AnyRow;
use sqlx::Row;

use std::collections::HashMap;

use super::sessions::session_rows;
use super::{bind_args, Filter, SessionRow, Store, StoreError, COLUMNS};
use crate::audit::record::Stored;

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

impl Store {
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

    /// Records matching `f`, in chain order (instance, seq), streamed. A
    /// session's records are read from its span of the chain (the session
    /// index, [`Store::session_spans`]).
    pub fn stream<'a>(&'a self, f: &Filter) -> BoxStream<'a, Result<Stored, StoreError>> {
        // The query borrows its SQL and arguments: a task owns them while
        // it streams.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Stored, StoreError>>(256);
        let (store, f) = (self.clone(), f.clone());
        tokio::spawn(async move {
            let spans = match &f.session {
                Some(id) => match store.session_spans(id).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                },
                None => None,
            };
            let (w, args) = f.sql("at_us >=", "at_us <", spans.as_deref());
            let sql = format!("SELECT {COLUMNS} FROM audit_records{w} ORDER BY instance, seq");
            forward(bind_args(sqlx::query(&sql), &args).fetch(&store.pool), &tx).await;
        });
        tokio_stream_from(rx).boxed()
    }

    /// `instance`'s rows of the session index and its records in chain
    /// order, both as of one moment (one read transaction: repeatable
    /// read on PostgreSQL, SQLite's snapshot in WAL mode), so a gateway
    /// writing meanwhile does not make them disagree.
    pub async fn snapshot(
        &self,
        instance: &str,
    ) -> Result<
        (
            HashMap<String, SessionRow>,
            BoxStream<'static, Result<Stored, StoreError>>,
        ),
        StoreError,
    > {
        let (rows_tx, rows_rx) = tokio::sync::oneshot::channel();
        // The records are read once the stream is first polled.
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Stored, StoreError>>(256);
        let (pool, sqlite, instance) = (self.pool.clone(), self.sqlite, instance.to_string());
        tokio::spawn(async move {
            let read = async {
                let mut t = pool.begin().await?;
                if !sqlite {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        .execute(&mut *t)
                        .await?;
                }
                let rows = session_rows(&mut *t, &instance).await?;
                Ok::<_, StoreError>((t, rows))
            };
            let mut t = match read.await {
                Ok((t, rows)) => {
                    let _ = rows_tx.send(Ok(rows));
                    t
                }
                Err(e) => {
                    let _ = rows_tx.send(Err(e));
                    return;
                }
            };
            if go_rx.await.is_err() {
                return;
            }
            let sql =
                format!("SELECT {COLUMNS} FROM audit_records WHERE instance = $1 ORDER BY seq");
            forward(sqlx::query(&sql).bind(&instance).fetch(&mut *t), &tx).await;
        });
        let rows = rows_rx.await.map_err(|_| {
            StoreError::Db(sqlx::Error::Protocol("the snapshot reader stopped".into()))
        })??;
        let start = futures_util::stream::once(async move {
            let _ = go_tx.send(());
            None
        });
        let records = start
            .filter_map(std::future::ready)
            .chain(tokio_stream_from(rx));
        Ok((rows, records.boxed()))
    }

    /// Deletes the records of `instance` up to the last checkpoint signed
    /// before `before_us` — a prefix of the chain, all older than that
    /// time — so what remains verifies from that checkpoint. Returns how
    /// many were deleted. The session index loses the rows of sessions
    /// wholly deleted; a session the cut goes through keeps its row (its
    /// span then starts before the first record stored).
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
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM audit_records WHERE instance = $1 AND seq <= $2")
            .bind(instance)
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() > 0 {
            sqlx::query("DELETE FROM audit_sessions WHERE instance = $1 AND last_seq <= $2")
                .bind(instance)
                .bind(upto)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
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

/// Sends `rows` to `tx` as records, until the reader is gone or a row
/// fails (the error is sent).
async fn forward(
    mut rows: BoxStream<'_, Result<sqlx::any::AnyRow, sqlx::Error>>,
    tx: &tokio::sync::mpsc::Sender<Result<Stored, StoreError>>,
) {
    while let Some(r) = rows.next().await {
        let item = r
            .map_err(StoreError::from)
            .and_then(|row| Ok(stored(&row)?));
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            break;
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
