//! Reading the store back: the chain's head and hashes (for the writer
//! and the journal's recovery), records streamed in chain order (export,
//! replay, verify), sessions, and pruning to a checkpoint.

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Filter, SessionSummary, Store, StoreError, COLUMNS};
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
