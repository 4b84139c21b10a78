//! The service's own store (sqlx: SQLite by default, PostgreSQL by URL):
//! requests, votes and every state change with who, when and why. Votes
//! go through one lock in the process and one transaction in the store,
//! so concurrent approvers race safely.

use portcullis::approvals::protocol::{
    statement_hash, NewRequest, Requester, SignedDecision, State,
};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use tokio::sync::Mutex;

use crate::rules::{self, Approver, Ballot, Effect, Vote, VoteError};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    /// No such request.
    #[error("no such request")]
    NotFound,
    /// The id is taken.
    #[error("a request with this id exists")]
    Duplicate,
    /// The vote is refused by the rules.
    #[error(transparent)]
    Vote(#[from] VoteError),
    /// A stored value does not parse.
    #[error("store holds a malformed {0}")]
    Corrupt(&'static str),
    /// The SQLite file could not be created.
    #[error("store_url: cannot create the SQLite file: {0}")]
    Create(std::io::Error),
}

/// A stored request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Request {
    /// Id.
    pub id: String,
    /// Gateway instance.
    pub gateway: String,
    /// Who asked.
    pub requester: Requester,
    /// Client address.
    pub client_addr: String,
    /// Connection.
    pub connection: String,
    /// Database.
    pub database: String,
    /// Statement text.
    pub statement: String,
    /// Parameters.
    pub params: Vec<Option<String>>,
    /// Hash of statement and parameters.
    pub statement_sha256: String,
    /// Facts.
    pub facts: serde_json::Value,
    /// Policy reasons.
    pub reasons: Vec<String>,
    /// Groups that may approve.
    pub groups: Vec<String>,
    /// Approvals needed.
    pub quorum: u32,
    /// `hold` or `retry`.
    pub mode: String,
    /// State.
    pub state: State,
    /// Deciding comment.
    pub comment: String,
    /// Created (unix ms).
    pub created_at: i64,
    /// Expires (unix ms).
    pub expires_at: i64,
    /// Signed decision, once decided.
    pub decision: Option<SignedDecision>,
}

/// One recorded state change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// When (unix ms).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What (`created`, `approved`, `rejected`, `expired`, `withdrawn`,
    /// `vote`).
    pub action: String,
    /// Comment.
    pub comment: String,
}

/// The store. Votes, closes and grant uses run in a transaction that
/// first takes the request's row lock, so service instances sharing one
/// PostgreSQL store decide each request once; within one process a lock
/// also keeps SQLite from contending with itself.
pub struct Store {
    pool: AnyPool,
    votes: Mutex<()>,
}

/// Now, unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const COLUMNS: &str = "id, gateway, requester_json, client_addr, connection, database_name, \
    statement, params_json, statement_sha256, facts_json, reasons_json, groups_json, quorum, mode, \
    state, comment, created_at, expires_at, decision_json";

impl Store {
    /// Opens (creating a SQLite file if needed) and applies the schema.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        // One schema for both backends (types and statements they share).
        let schema = include_str!("../migrations/0001_init.sql");
        let url = match url.strip_prefix("sqlite://") {
            Some(file) => {
                portcullis::secrets::create_private_sqlite(url).map_err(StoreError::Create)?;
                format!("sqlite://{file}?mode=rwc")
            }
            None => url.to_string(),
        };
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 8 })
            .connect(&url)
            .await?;
        for stmt in portcullis::audit::store::schema_statements(schema) {
            sqlx::query(&stmt).execute(&pool).await?;
        }
        Ok(Self {
            pool,
            votes: Mutex::new(()),
        })
    }

    /// Stores a new request.
    pub async fn create(&self, r: &NewRequest, expires_at: i64) -> Result<Request, StoreError> {
        let now = now_ms();
        let hash = statement_hash(&r.statement, &r.params);
        let res = sqlx::query(
            "INSERT INTO requests (id, gateway, requester_sub, requester_email, requester_json, \
             client_addr, connection, database_name, statement, params_json, statement_sha256, \
             facts_json, reasons_json, groups_json, quorum, mode, state, comment, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, 'pending', '', $17, $18)",
        )
        .bind(&r.id)
        .bind(&r.gateway)
        .bind(&r.requester.sub)
        .bind(&r.requester.email)
        .bind(json(&r.requester))
        .bind(&r.client_addr)
        .bind(&r.connection)
        .bind(&r.database)
        .bind(&r.statement)
        .bind(json(&r.params))
        .bind(&hash)
        .bind(json(&r.facts))
        .bind(json(&r.reasons))
        .bind(json(&r.groups))
        .bind(i64::from(r.quorum))
        .bind(&r.mode)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Duplicate)
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        self.event(&r.id, &r.requester.email, "created", "").await?;
        self.get(&r.id).await
    }

    /// One request.
    pub async fn get(&self, id: &str) -> Result<Request, StoreError> {
        fetch_request(&self.pool, id).await
    }

    /// Requests in `state` (all when `None`), newest first, at most `limit`.
    pub async fn list(&self, state: Option<State>, limit: i64) -> Result<Vec<Request>, StoreError> {
        let rows = match state {
            Some(s) => {
                sqlx::query(&format!(
                "SELECT {COLUMNS} FROM requests WHERE state = $1 ORDER BY created_at DESC LIMIT $2"
            ))
                .bind(s.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM requests ORDER BY created_at DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(request).collect()
    }

    /// Every state change of a request, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, comment FROM events WHERE request_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Event {
                at: r.try_get("at").unwrap_or(0),
                actor: r.try_get("actor").unwrap_or_default(),
                action: r.try_get("action").unwrap_or_default(),
                comment: r.try_get("comment").unwrap_or_default(),
            })
            .collect())
    }

    /// Records a vote; `sign` makes the signed decision when it decides.
    /// Returns the request after the vote and what the vote did.
    pub async fn vote(
        &self,
        id: &str,
        approver: &Approver,
        approve: bool,
        comment: &str,
        sign: impl FnOnce(&Request, State, Vec<String>) -> SignedDecision,
    ) -> Result<(Request, Effect), StoreError> {
        let _one_at_a_time = self.votes.lock().await;
        let mut tx = self.pool.begin().await?;
        // The request's row lock serialises votes across service
        // instances sharing one PostgreSQL store (SQLite: the write lock).
        lock_request(&mut tx, id).await?;
        let req = fetch_request(&mut *tx, id).await?;
        let votes = fetch_votes(&mut *tx, id).await?;
        let now = now_ms();
        let effect = rules::vote(
            &Ballot {
                requester: &req.requester,
                groups: &req.groups,
                quorum: req.quorum,
                state: req.state,
                expires_at: req.expires_at,
                votes: &votes,
            },
            approver,
            approve,
            now,
        )?;
        if effect == Effect::Repeat {
            return Ok((req, effect));
        }
        let who = approver.id();
        sqlx::query(
            "INSERT INTO votes (request_id, approver, vote, comment, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&who)
        .bind(if approve { "approve" } else { "reject" })
        .bind(comment)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            id,
            &who,
            if approve {
                "vote approve"
            } else {
                "vote reject"
            },
            comment,
            now,
        )
        .await?;
        if let Effect::Decides(state) = effect {
            let mut approvers: Vec<String> = votes
                .iter()
                .filter(|v| v.approve == approve)
                .map(|v| v.approver.clone())
                .collect();
            approvers.push(who.clone());
            let mut decided = req.clone();
            decided.comment = comment.to_string();
            let signed = sign(&decided, state, approvers);
            close(&mut tx, id, state, comment, &signed, now).await?;
            insert_event(&mut tx, id, &who, state.as_str(), comment, now).await?;
        }
        tx.commit().await?;
        Ok((self.get(id).await?, effect))
    }

    /// Closes a pending request without votes (`withdrawn`, `expired`);
    /// false when it was not pending.
    pub async fn close_pending(
        &self,
        id: &str,
        state: State,
        actor: &str,
        sign: impl FnOnce(&Request, State, Vec<String>) -> SignedDecision,
    ) -> Result<bool, StoreError> {
        let _one_at_a_time = self.votes.lock().await;
        let mut tx = self.pool.begin().await?;
        lock_request(&mut tx, id).await?;
        let req = fetch_request(&mut *tx, id).await?;
        if req.state != State::Pending {
            return Ok(false);
        }
        let now = now_ms();
        let signed = sign(&req, state, Vec::new());
        close(&mut tx, id, state, "", &signed, now).await?;
        insert_event(&mut tx, id, actor, state.as_str(), "", now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Uses up the approval of a `retry` request by `requester_sub` for
    /// this statement hash on this gateway, if one is approved, unused and
    /// still valid.
    pub async fn consume(
        &self,
        gateway: &str,
        requester_sub: &str,
        hash: &str,
        now: i64,
    ) -> Result<Option<Request>, StoreError> {
        let _one_at_a_time = self.votes.lock().await;
        let rows = sqlx::query(
            "SELECT id FROM requests WHERE state = 'approved' AND mode = 'retry' AND consumed = 0 \
             AND gateway = $1 AND requester_sub = $2 AND statement_sha256 = $3 ORDER BY decided_at",
        )
        .bind(gateway)
        .bind(requester_sub)
        .bind(hash)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let req = self.get(&id).await?;
            let valid = req
                .decision
                .as_ref()
                .is_some_and(|d| d.payload.valid_until > now);
            if !valid {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            let claimed =
                sqlx::query("UPDATE requests SET consumed = 1 WHERE id = $1 AND consumed = 0")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if claimed != 1 {
                // Another instance used it meanwhile.
                continue;
            }
            insert_event(&mut tx, &id, requester_sub, "used", "", now).await?;
            tx.commit().await?;
            return Ok(Some(req));
        }
        Ok(None)
    }

    /// Pending requests past their expiry.
    pub async fn due(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT id FROM requests WHERE state = 'pending' AND expires_at <= $1")
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().filter_map(|r| r.try_get("id").ok()).collect())
    }

    async fn event(
        &self,
        id: &str,
        actor: &str,
        action: &str,
        comment: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, id, actor, action, comment, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Takes the request's row lock for the rest of the transaction (a no-op
/// write); NotFound when there is no such request.
async fn lock_request(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<(), StoreError> {
    let n = sqlx::query("UPDATE requests SET quorum = quorum WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn fetch_request<'e, E>(ex: E, id: &str) -> Result<Request, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM requests WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .ok_or(StoreError::NotFound)?;
    request(&row)
}

async fn fetch_votes<'e, E>(ex: E, id: &str) -> Result<Vec<Vote>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query("SELECT approver, vote FROM votes WHERE request_id = $1")
        .bind(id)
        .fetch_all(ex)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Vote {
            approver: r.try_get("approver").unwrap_or_default(),
            approve: r.try_get::<String, _>("vote").ok().as_deref() == Some("approve"),
        })
        .collect())
}

async fn close(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    state: State,
    comment: &str,
    signed: &SignedDecision,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE requests SET state = $1, comment = $2, decided_at = $3, decision_json = $4 \
         WHERE id = $5 AND state = 'pending'",
    )
    .bind(state.as_str())
    .bind(comment)
    .bind(now)
    .bind(serde_json::to_string(signed).unwrap_or_default())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    actor: &str,
    action: &str,
    comment: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO events (id, request_id, at, actor, action, comment) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(id)
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(comment)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn request(row: &sqlx::any::AnyRow) -> Result<Request, StoreError> {
    fn parse<T: serde::de::DeserializeOwned>(
        row: &sqlx::any::AnyRow,
        col: &'static str,
    ) -> Result<T, StoreError> {
        let s: String = row.try_get(col)?;
        serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(col))
    }
    let state: String = row.try_get("state")?;
    let decision: Option<String> = row.try_get("decision_json")?;
    Ok(Request {
        id: row.try_get("id")?,
        gateway: row.try_get("gateway")?,
        requester: parse(row, "requester_json")?,
        client_addr: row.try_get("client_addr")?,
        connection: row.try_get("connection")?,
        database: row.try_get("database_name")?,
        statement: row.try_get("statement")?,
        params: parse(row, "params_json")?,
        statement_sha256: row.try_get("statement_sha256")?,
        facts: parse(row, "facts_json")?,
        reasons: parse(row, "reasons_json")?,
        groups: parse(row, "groups_json")?,
        quorum: u32::try_from(row.try_get::<i64, _>("quorum")?).unwrap_or(1),
        mode: row.try_get("mode")?,
        state: State::parse(&state).ok_or(StoreError::Corrupt("state"))?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        decision: decision
            .filter(|d| !d.is_empty())
            .map(|d| serde_json::from_str(&d).map_err(|_| StoreError::Corrupt("decision_json")))
            .transpose()?,
    })
}

/// JSON text of a value (for binds).
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_sqlite_store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pc-approvals-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("approvals.db");
        let store = super::Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
