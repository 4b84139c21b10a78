//! The writer: sessions hand records to [`Auditor::submit`] (a channel
//! send, nothing else on the hot path); one task per gateway numbers them,
//! seals their bodies, chains their hashes and writes them in batches, one
//! commit per batch (group commit across sessions). In `strict` mode the
//! submitter gets a receiver that resolves when its record is committed.
//! Every `checkpoint_every` records (or `checkpoint_interval`) the chain
//! head is signed with the instance's Ed25519 key. When the store cannot
//! be written, records stay in memory and are retried; nothing is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::signature::Ed25519KeyPair;
use tokio::sync::{mpsc, oneshot};

use super::config::{AuditConfig, Durability};
use super::crypt::Keys;
use super::record::{now_us, Record, Stored, GENESIS};
use super::sink::Sinks;
use super::store::{Checkpoint, Store};

/// What the writer answers a strict submitter.
pub type Ack = oneshot::Receiver<Result<(), String>>;

enum Msg {
    Record(Box<Record>, Option<oneshot::Sender<Result<(), String>>>),
    Flush(oneshot::Sender<()>),
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct AuditStats {
    /// Records submitted and not yet committed.
    pub queued: AtomicUsize,
    /// Records committed.
    pub written: AtomicU64,
    /// Records lost (never happens; exported so it can be watched).
    pub dropped: AtomicU64,
    /// Commits.
    pub commits: AtomicU64,
    /// Sum of commit latencies (µs).
    pub commit_us: AtomicU64,
    /// The store failed on the last attempt.
    pub failing: AtomicBool,
}

/// The sessions' handle.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::UnboundedSender<Msg>,
    strict: bool,
    buffer_limit: usize,
    /// Counters.
    pub stats: Arc<AuditStats>,
    /// Caps for what a record keeps.
    pub caps: Caps,
}

/// What a statement record keeps.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Rows.
    pub rows: usize,
    /// Bytes of rows.
    pub result_bytes: usize,
    /// Bytes of each parameter.
    pub param_bytes: usize,
}

impl Auditor {
    /// Hands a record to the writer. Strict mode: the receiver resolves
    /// when it is committed (or failed).
    pub fn submit(&self, r: Record) -> Option<Ack> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        let (ack, rx) = if self.strict {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        if self.tx.send(Msg::Record(Box::new(r), ack)).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("audit writer is gone; record lost");
        }
        rx
    }

    /// Why new statements must be refused now, if they must.
    pub fn refusal(&self) -> Option<&'static str> {
        let failing = self.stats.failing.load(Ordering::Relaxed);
        if self.strict && failing {
            return Some("portcullis: the audit store cannot be written (durability strict): statements are refused until it recovers");
        }
        if self.stats.queued.load(Ordering::Relaxed) >= self.buffer_limit {
            return Some("portcullis: the audit buffer is full (the store cannot keep up or cannot be written): statements are refused until it drains");
        }
        None
    }

    /// Whether clients wait for their records.
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// Writes everything submitted so far (and a checkpoint); for
    /// shutdown.
    pub async fn flush(&self) {
        let (t, r) = oneshot::channel();
        if self.tx.send(Msg::Flush(t)).is_ok() {
            let _ = r.await;
        }
    }
}

/// Errors starting the writer.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store.
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    /// The signing key.
    #[error("audit.signing_key_file {path}: {why}")]
    Key {
        /// File.
        path: String,
        /// Reason.
        why: String,
    },
    /// Encryption keys.
    #[error(transparent)]
    Crypt(#[from] super::crypt::CryptError),
}

/// Loads the instance's signing key, creating it (mode 0600) if missing.
pub fn signing_key(path: &std::path::Path) -> Result<Ed25519KeyPair, StartError> {
    let err = |why: String| StartError::Key {
        path: path.display().to_string(),
        why,
    };
    let seed = crate::secrets::read_or_create(path, || {
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    })
    .map_err(|e| err(e.to_string()))?;
    crate::approvals::protocol::key_from_seed(&seed)
        .ok_or_else(|| err("not a base64 32-byte Ed25519 seed".into()))
}

/// Starts the writer for `cfg` on `store`.
pub async fn start(cfg: &AuditConfig, store: Store) -> Result<Auditor, StartError> {
    let key = signing_key(&cfg.signing_key_file)?;
    let public = crate::approvals::protocol::public_key_b64(&key);
    let on_record = store.announce(&cfg.instance, &public).await?;
    if on_record != public {
        tracing::warn!(instance = %cfg.instance, "the audit store holds another public key for this instance; `portcullis audit verify` will report checkpoints signed with this key as foreign");
    }
    let keys = super::read_keys(cfg).map_err(|e| match e {
        super::AuditError::Crypt(c) => StartError::Crypt(c),
        other => StartError::Key {
            path: "audit keys".into(),
            why: other.to_string(),
        },
    })?;
    let head = store.head(&cfg.instance).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(AuditStats::default());
    let w = Writer {
        store,
        instance: cfg.instance.clone(),
        key,
        keys,
        seq: head.as_ref().map_or(0, |h| h.0),
        hash: head.map_or_else(|| GENESIS.to_string(), |h| h.1),
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
        cfg: cfg.clone(),
        stats: stats.clone(),
        sinks: Sinks::new(&cfg.sinks),
    };
    tokio::spawn(w.run(rx));
    Ok(Auditor {
        tx,
        strict: cfg.durability == Durability::Strict,
        buffer_limit: cfg.buffer_limit,
        stats,
        caps: Caps {
            rows: cfg.max_rows,
            result_bytes: cfg.max_result_bytes,
            param_bytes: cfg.max_param_bytes,
        },
    })
}

struct Writer {
    store: Store,
    instance: String,
    key: Ed25519KeyPair,
    keys: Keys,
    seq: i64,
    hash: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    cfg: AuditConfig,
    stats: Arc<AuditStats>,
    sinks: Sinks,
}

type Waiter = Option<oneshot::Sender<Result<(), String>>>;

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let strict = self.cfg.durability == Durability::Strict;
        // Sealed and chained, not yet committed (kept across failures).
        let mut pending: Vec<(Stored, Waiter)> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut closed = false;
        let mut tick =
            tokio::time::interval(self.cfg.checkpoint_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if pending.is_empty() && flushes.is_empty() {
                if closed {
                    break;
                }
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => self.take(m, &mut pending, &mut flushes),
                        None => closed = true,
                    },
                    _ = tick.tick() => {
                        self.maybe_checkpoint(false).await;
                        // Retention runs while idle too.
                        if let Some(ret) = self.cfg.retention {
                            self.prune(ret).await;
                        }
                        continue;
                    }
                }
                // Batched: let a batch gather; strict: commit now (the
                // group forms while the previous commit runs).
                if !strict {
                    tokio::time::sleep(self.cfg.flush_interval).await;
                }
            }
            // What waits joins this group (committed in batches of
            // batch_size), so the writer keeps up with any rate the store
            // can take.
            while pending.len() < self.cfg.batch_size {
                match rx.try_recv() {
                    Ok(m) => self.take(m, &mut pending, &mut flushes),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if !pending.is_empty() && !self.commit(&mut pending).await {
                // Keep them; try again shortly (new records queue behind).
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            if !flushes.is_empty() {
                self.maybe_checkpoint(true).await;
                for f in flushes.drain(..) {
                    let _ = f.send(());
                }
            } else {
                self.maybe_checkpoint(false).await;
            }
        }
        self.maybe_checkpoint(true).await;
    }

    fn take(
        &mut self,
        m: Msg,
        pending: &mut Vec<(Stored, Waiter)>,
        flushes: &mut Vec<oneshot::Sender<()>>,
    ) {
        match m {
            Msg::Record(r, ack) => {
                let s = self.chain(*r);
                pending.push((s, ack));
            }
            Msg::Flush(t) => flushes.push(t),
        }
    }

    /// Numbers, seals and chains a record.
    fn chain(&mut self, r: Record) -> Stored {
        let body = serde_json::to_string(&r.body).unwrap_or_default();
        let (key_id, body) = match &self.keys.current {
            Some(k) => (k.id.clone(), k.seal(body.as_bytes())),
            None => (String::new(), body),
        };
        self.seq += 1;
        let i = &r.session;
        let mut s = Stored {
            instance: self.instance.clone(),
            seq: self.seq,
            id: r.id,
            at_us: r.at_us,
            kind: r.kind.to_string(),
            session_id: i.session_id.clone(),
            user: i.user.clone(),
            groups_json: r.groups_json.to_string(),
            client_addr: i.client_addr.clone(),
            application: i.application.clone(),
            connection: i.connection.clone(),
            action: r.action.to_string(),
            approval_id: r.approval_id,
            command_tag: r.command_tag,
            rows_affected: r.rows_affected,
            duration_us: r.duration_us,
            error_code: r.error_code,
            key_id,
            body,
            prev_hash: std::mem::take(&mut self.hash),
            hash: String::new(),
        };
        s.hash = s.expected_hash();
        self.hash.clone_from(&s.hash);
        s
    }

    /// Commits `pending` as one transaction; false when the store failed
    /// (all of it stays pending).
    async fn commit(&mut self, pending: &mut Vec<(Stored, Waiter)>) -> bool {
        // One transaction (one fsync) for the whole group: the commit rate,
        // not the row rate, is what a disk limits.
        let n = pending.len();
        let started = Instant::now();
        let result = {
            let rows: Vec<&Stored> = pending.iter().map(|(s, _)| s).collect();
            let r = self.store.insert(&rows).await;
            if r.is_ok() {
                self.sinks.send(&rows);
            }
            r
        };
        let result = match result {
            Err(e) => match self.already_committed(pending).await {
                true => {
                    tracing::warn!(error = %e, records = n, "audit commit reported an error but the store holds the group (the answer was lost); counted as committed");
                    Ok(())
                }
                false => Err(e),
            },
            ok => ok,
        };
        match result {
            Ok(()) => {
                let us = started.elapsed().as_micros() as u64;
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.commit_us.fetch_add(us, Ordering::Relaxed);
                self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
                self.stats.queued.fetch_sub(n, Ordering::Relaxed);
                if self.stats.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("audit store writable again");
                }
                self.since_checkpoint += n as u64;
                for (_, w) in pending.drain(..) {
                    if let Some(w) = w {
                        let _ = w.send(Ok(()));
                    }
                }
                true
            }
            Err(e) => {
                if !self.stats.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, pending = pending.len(), "audit store cannot be written; records kept in memory and retried");
                }
                // Strict submitters learn now; their records stay queued
                // and are written when the store recovers.
                for (_, w) in pending.iter_mut() {
                    if let Some(w) = w.take() {
                        let _ = w.send(Err(e.to_string()));
                    }
                }
                false
            }
        }
    }

    /// After a failed commit: whether the store's head is the group's last
    /// record (a commit whose answer was lost, e.g. the connection broke
    /// after the server committed). A head inside or past the group with
    /// another hash means another writer uses this instance's chain.
    async fn already_committed(&self, pending: &[(Stored, Waiter)]) -> bool {
        let (Some((first, _)), Some((last, _))) = (pending.first(), pending.last()) else {
            return false;
        };
        match self.store.head(&self.instance).await {
            Ok(Some((seq, hash))) if seq == last.seq && hash == last.hash => true,
            Ok(Some((seq, _))) if seq >= first.seq => {
                tracing::error!(instance = %self.instance, head = seq, "the audit store's chain for this instance moved on without this gateway: another gateway uses the same audit.instance; records are kept in memory and statements will be refused");
                false
            }
            _ => false,
        }
    }

    async fn maybe_checkpoint(&mut self, force: bool) {
        if self.since_checkpoint == 0 {
            return;
        }
        let due = force
            || self.since_checkpoint >= self.cfg.checkpoint_every
            || self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval;
        if !due {
            return;
        }
        let at_us = now_us();
        let msg = Checkpoint::message(&self.instance, self.seq, &self.hash, at_us);
        let cp = Checkpoint {
            instance: self.instance.clone(),
            seq: self.seq,
            hash: self.hash.clone(),
            at_us,
            signature: base64::engine::general_purpose::STANDARD.encode(self.key.sign(&msg)),
        };
        match self.store.checkpoint(&cp).await {
            Ok(()) => {
                self.since_checkpoint = 0;
                self.last_checkpoint = Instant::now();
                if let Some(ret) = self.cfg.retention {
                    self.prune(ret).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot store an audit checkpoint; will retry"),
        }
    }

    /// Deletes records older than `retention`, only up to a signed
    /// checkpoint so what remains still verifies from there.
    async fn prune(&self, retention: Duration) {
        let before = now_us() - retention.as_micros() as i64;
        match self.store.prune(&self.instance, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "audit records past retention pruned"),
            Err(e) => tracing::warn!(error = %e, "audit retention prune failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::config::SyncMode;
    use crate::audit::record::{Record, KIND_STATEMENT};

    fn writer(store: Store) -> Writer {
        Writer {
            store,
            instance: "gw".into(),
            key: Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap(),
            keys: Keys::default(),
            seq: 0,
            hash: GENESIS.into(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            cfg: AuditConfig::default(),
            stats: Arc::new(AuditStats::default()),
            sinks: Sinks::new(&[]),
        }
    }

    fn group(w: &mut Writer, n: usize) -> Vec<(Stored, Waiter)> {
        (0..n)
            .map(|_| {
                let r = Record {
                    kind: KIND_STATEMENT,
                    ..Default::default()
                };
                (w.chain(r), None)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_commit_whose_answer_was_lost_counts_and_a_fork_does_not() {
        let (dir, url) = crate::audit::store::tests::temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
        let mut w = writer(store.clone());
        let mut pending = group(&mut w, 3);
        // The batch reached the store, but the writer never heard so.
        let rows: Vec<&Stored> = pending.iter().map(|(s, _)| s).collect();
        store.insert(&rows).await.unwrap();
        assert!(w.commit(&mut pending).await, "the store holds the group");
        assert!(pending.is_empty());
        assert_eq!(w.stats.written.load(Ordering::Relaxed), 3);
        assert!(!w.stats.failing.load(Ordering::Relaxed));
        // A second writer on the same instance starts a chain from the
        // beginning: its commit fails, and is not taken for committed.
        let mut other = writer(store.clone());
        let mut forked = group(&mut other, 1);
        assert!(!other.commit(&mut forked).await);
        assert_eq!(forked.len(), 1, "kept for a retry");
        assert!(other.stats.failing.load(Ordering::Relaxed));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
