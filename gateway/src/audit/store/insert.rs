//! Writing records: the gateway's SQLite writer inserts through its own
//! connection ([`super::SqliteWriter`]); PostgreSQL (and a `portcullis
//! audit` command recovering a journal) through the pool, a batch in one
//! transaction of multi-row INSERTs of up to [`ROWS_PER_INSERT`] records
//! each, followed by what it adds to the session index.

use sqlx::AnyPool;

use super::sessions::{deltas, UPSERT_POSTGRES, UPSERT_SQLITE};
use super::{Store, StoreError, COLUMNS, ROWS_PER_INSERT};
use crate::audit::record::Stored;

/// Inserts `batch` and its session index rows on `pool` in one
/// transaction: all of it or none.
async fn insert_pool(pool: &AnyPool, batch: &[&Stored], sqlite: bool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let r: Result<(), sqlx::Error> = async {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for chunk in batch.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(chunk.len(), sqlite);
            let mut q = sqlx::query::<sqlx::Any>(&sql);
            for s in chunk {
                q = q
                    .bind(s.instance.as_str())
                    .bind(s.seq)
                    .bind(s.id.as_str())
                    .bind(s.at_us)
                    .bind(s.kind.as_str())
                    .bind(s.session_id.as_str())
                    .bind(s.user.as_str())
                    .bind(s.groups_json.as_str())
                    .bind(s.client_addr.as_str())
                    .bind(s.application.as_str())
                    .bind(s.connection.as_str())
                    .bind(s.action.as_str())
                    .bind(s.approval_id.as_str())
                    .bind(s.command_tag.as_str())
                    .bind(s.rows_affected)
                    .bind(s.duration_us)
                    .bind(s.error_code.as_str())
                    .bind(s.key_id.as_str())
                    .bind(s.body.as_str())
                    .bind(s.prev_hash.as_str())
                    .bind(s.hash.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        let up = if sqlite {
            &UPSERT_SQLITE
        } else {
            &UPSERT_POSTGRES
        };
        for d in deltas(batch) {
            sqlx::query::<sqlx::Any>(up)
                .bind(d.session_id.as_str())
                .bind(d.instance.as_str())
                .bind(d.user.as_str())
                .bind(d.connection.as_str())
                .bind(d.client_addr.as_str())
                .bind(d.application.as_str())
                .bind(d.first_seq)
                .bind(d.last_seq)
                .bind(d.first_us)
                .bind(d.last_us)
                .bind(d.statements)
                .bind(d.denied)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = r {
        // SQLite may have rolled the whole transaction back itself (disk
        // full, I/O error) while sqlx believes it open, and would then
        // nest the next batches in savepoints that are never committed: a
        // connection in doubt is closed, and the pool opens a fresh one.
        let _ = conn.close().await;
        return Err(e.into());
    }
    Ok(())
}

/// `INSERT ... VALUES (...), ...` for `rows` rows, run inside the batch's
/// transaction: anonymous `?` placeholders for SQLite (it looks a
/// numbered parameter's name up linearly, so `$n` costs grow with the
/// square of the parameters in a statement), `$n` for PostgreSQL.
///
/// SQLite: `INSERT OR FAIL`. A plain INSERT inside a transaction may abort
/// halfway, so SQLite copies every page it touches to a statement journal
/// first (about 15 % of the store's cost per record); FAIL needs no such
/// copy, and any error rolls the whole transaction back, so the batch
/// stays atomic.
fn insert_sql(rows: usize, sqlite: bool) -> String {
    let verb = if sqlite { "INSERT OR FAIL" } else { "INSERT" };
    let mut sql = format!("{verb} INTO audit_records ({COLUMNS}) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 1..=21 {
            if c > 1 {
                sql.push_str(", ");
            }
            if sqlite {
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
    /// Inserts a batch, with what it adds to the session index, in one
    /// transaction (one commit for the group). The gateway's SQLite
    /// inserts go through the writer's own connection, off the runtime's
    /// worker.
    pub async fn insert(&self, batch: &[&Stored]) -> Result<(), StoreError> {
        match &self.writer {
            Some(w) => w.insert_async(batch).await?,
            None => insert_pool(&self.pool, batch, self.sqlite).await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::config::SyncMode;
    use crate::audit::store::tests::temp_sqlite;

    #[test]
    fn sqlite_inserts_may_fail_without_a_statement_journal() {
        assert!(insert_sql(2, true).starts_with("INSERT OR FAIL INTO"));
        assert_eq!(insert_sql(2, true).matches('?').count(), 42);
        let pg = insert_sql(2, false);
        assert!(
            pg.starts_with("INSERT INTO") && pg.ends_with("$42)"),
            "{pg}"
        );
    }

    #[tokio::test]
    async fn a_single_insert_that_conflicts_stores_none_of_its_rows() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let recs = crate::audit::journal::tests::chain(ROWS_PER_INSERT as i64);
        store.insert(&[&recs[49]]).await.unwrap();
        let refs: Vec<&Stored> = recs.iter().collect();
        assert!(store.insert(&refs).await.is_err());
        assert_eq!(store.hashes("gw", 1, 1000).await.unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn after_sqlite_rolls_a_batch_back_itself_later_batches_still_commit() {
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let w = store.writer.clone().unwrap();
        let recs = crate::audit::journal::tests::chain(2 * ROWS_PER_INSERT as i64 + 50);
        let all: Vec<&Stored> = recs.iter().collect();
        // The disk is full: SQLite rolls the whole transaction back.
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        w.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 2))
            .unwrap();
        let e = store.insert(&all).await.unwrap_err();
        assert!(e.to_string().contains("full"), "{e}");
        w.execute_batch("PRAGMA max_page_count = 1000000").unwrap();
        // A batch that fails on a conflict, then one that must commit.
        store.insert(&[&recs[240]]).await.unwrap();
        assert!(store.insert(&all).await.is_err());
        let rest: Vec<&Stored> = recs.iter().filter(|r| r.seq != 241).collect();
        store.insert(&rest).await.unwrap();
        // Committed: another connection sees every record.
        assert_eq!(store.hashes("gw", 1, 1000).await.unwrap().len(), recs.len());
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
        // Nor any of what it adds to the session index.
        let span = store.session_spans("").await.unwrap();
        assert_eq!(span, [("gw".to_string(), 230, 230)]);
        // The connection is usable again and takes the batch without it.
        let rest: Vec<&Stored> = recs.iter().filter(|r| r.seq != 230).collect();
        store.insert(&rest).await.unwrap();
        assert_eq!(store.hashes("gw", 1, 1000).await.unwrap().len(), recs.len());
        let span = store.session_spans("").await.unwrap();
        assert_eq!(span, [("gw".to_string(), 1, recs.len() as i64)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
