//! The committer: the writer's second task. It takes groups of chained
//! records from the writer and commits them to the store in batches (one
//! transaction per batch), answers the strict submitters the journal did
//! not already answer, feeds the live sinks, signs checkpoints and prunes
//! past retention. When the store cannot be written, the records stay in
//! memory and are retried; nothing is dropped. A batched writer on a SQLite
//! store commits its groups itself, on its own thread, while the committer
//! has nothing left to retry ([`Batch::Committed`]); the committer keeps
//! the books for them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::signature::Ed25519KeyPair;
use tokio::sync::{mpsc, oneshot};

use super::config::AuditConfig;
use super::record::{now_us, Stored};
use super::sink::Sinks;
use super::store::{Checkpoint, Store};
use super::writer::AuditStats;

/// A strict submitter still waiting for its record.
pub type Waiter = Option<oneshot::Sender<Result<(), String>>>;

/// What the writer hands the committer.
pub enum Batch {
    /// Chained records, in chain order.
    Records(Vec<(Stored, Waiter)>),
    /// Chained records the writer has committed itself, after every
    /// group before them was committed, and how long it took (µs).
    Committed(Vec<(Stored, Waiter)>, u64),
    /// Answer once everything before is committed (and checkpointed).
    Flush(oneshot::Sender<()>),
}

/// The committer's state.
pub struct Committer {
    /// The store.
    pub store: Store,
    /// This gateway's instance.
    pub instance: String,
    /// The instance's signing key.
    pub key: Ed25519KeyPair,
    /// The last committed record: (seq, hash).
    pub head: (i64, String),
    /// Shared with the writer: the last committed seq (for the journal).
    pub committed: Arc<AtomicI64>,
    /// Records committed since the last checkpoint.
    pub since_checkpoint: u64,
    /// When the last checkpoint was made.
    pub last_checkpoint: Instant,
    /// Wait `flush_interval` after a group arrives, so batches gather
    /// (when the journal already answered the submitters).
    pub gather: bool,
    /// Settings.
    pub cfg: AuditConfig,
    /// Counters.
    pub stats: Arc<AuditStats>,
    /// Live sinks.
    pub sinks: Sinks,
}

impl Committer {
    /// Commits what arrives until the writer is gone.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Batch>) {
        let mut pending: Vec<(Stored, Waiter)> = Vec::new();
        let mut done: Done = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut closed = false;
        let mut tick =
            tokio::time::interval(self.cfg.checkpoint_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if pending.is_empty() && flushes.is_empty() && done.is_empty() {
                if closed {
                    break;
                }
                tokio::select! {
                    b = rx.recv() => match b {
                        Some(b) => take(b, &mut pending, &mut done, &mut flushes),
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
                if self.gather && flushes.is_empty() {
                    tokio::time::sleep(self.cfg.flush_interval).await;
                }
            }
            // What waits joins this batch.
            while pending.len() < self.cfg.batch_size {
                match rx.try_recv() {
                    Ok(b) => take(b, &mut pending, &mut done, &mut flushes),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            // Groups the writer committed come before any it hands over
            // after them: it commits only when the committer holds none.
            if !done.is_empty() {
                // One sink batch for all of them, in chain order.
                let commits = done.len() as u64;
                let us = done.iter().map(|(_, us)| us).sum();
                let mut all: Vec<_> = done.drain(..).flat_map(|(g, _)| g).collect();
                self.committed_ok(&mut all, us, commits);
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

    /// Commits `pending` as one transaction; false when the store failed
    /// (all of it stays pending).
    pub async fn commit(&mut self, pending: &mut Vec<(Stored, Waiter)>) -> bool {
        // One transaction (one fsync) for the whole batch: the commit
        // rate, not the row rate, is what a disk limits.
        let n = pending.len();
        let started = Instant::now();
        let result = {
            let rows: Vec<&Stored> = pending.iter().map(|(s, _)| s).collect();
            self.store.insert(&rows).await
        };
        let result = match result {
            Err(e) => match self.already_committed(pending).await {
                k if k == n => {
                    tracing::warn!(error = %e, records = n, "audit commit reported an error but the store holds the group (the answer was lost); counted as committed");
                    Ok(())
                }
                0 => Err(e),
                k => {
                    // An earlier commit whose answer was lost holds the
                    // first k: book them, commit the rest now.
                    tracing::warn!(error = %e, records = k, "the audit store already holds the first records of this batch (an earlier commit's answer was lost); counted as committed, the rest is committed now");
                    let mut held: Vec<_> = pending.drain(..k).collect();
                    self.committed_ok(&mut held, started.elapsed().as_micros() as u64, 1);
                    let rows: Vec<&Stored> = pending.iter().map(|(s, _)| s).collect();
                    self.store.insert(&rows).await
                }
            },
            ok => ok,
        };
        match result {
            Ok(()) => {
                self.committed_ok(pending, started.elapsed().as_micros() as u64, 1);
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

    /// The books for `group`, now in the store (in `commits` commits
    /// that took `us` µs): counters, the head, the live sinks (one batch),
    /// and the submitters still waiting.
    fn committed_ok(&mut self, group: &mut Vec<(Stored, Waiter)>, us: u64, commits: u64) {
        let n = group.len();
        self.stats.commits.fetch_add(commits, Ordering::Relaxed);
        self.stats.commit_us.fetch_add(us, Ordering::Relaxed);
        self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.queued.fetch_sub(n, Ordering::Relaxed);
        if self.stats.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("audit store writable again");
        }
        self.since_checkpoint += n as u64;
        if let Some((last, _)) = group.last() {
            self.head = (last.seq, last.hash.clone());
            self.committed.store(last.seq, Ordering::Release);
        }
        let rows: Vec<&Stored> = group.iter().map(|(s, _)| s).collect();
        self.sinks.send(&rows);
        for (_, w) in group.drain(..) {
            if let Some(w) = w {
                let _ = w.send(Ok(()));
            }
        }
    }

    /// After a failed commit: how many of the group's first records the
    /// store already holds — all of them when its head is the group's
    /// last record (a commit whose answer was lost, e.g. the connection
    /// broke after the server committed), the first k when it is the
    /// group's k-th (an earlier commit's lost answer, merged with what
    /// came after it). A head inside or past the group with another hash
    /// means another writer uses this instance's chain.
    async fn already_committed(&self, pending: &[(Stored, Waiter)]) -> usize {
        let Some((first, _)) = pending.first() else {
            return 0;
        };
        match self.store.head(&self.instance).await {
            Ok(Some((seq, hash))) if seq >= first.seq => {
                let k = usize::try_from(seq - first.seq + 1).unwrap_or(usize::MAX);
                match pending.get(k - 1) {
                    Some((s, _)) if s.seq == seq && s.hash == hash => k,
                    _ => {
                        tracing::error!(instance = %self.instance, head = seq, "the audit store's chain for this instance moved on without this gateway: another gateway uses the same audit.instance; records are kept in memory and statements will be refused");
                        0
                    }
                }
            }
            _ => 0,
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
        let (seq, hash) = &self.head;
        let msg = Checkpoint::message(&self.instance, *seq, hash, at_us);
        let cp = Checkpoint {
            instance: self.instance.clone(),
            seq: *seq,
            hash: hash.clone(),
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

/// Groups the writer committed itself, with their commit times (µs).
type Done = Vec<(Vec<(Stored, Waiter)>, u64)>;

fn take(
    b: Batch,
    pending: &mut Vec<(Stored, Waiter)>,
    done: &mut Done,
    flushes: &mut Vec<oneshot::Sender<()>>,
) {
    match b {
        Batch::Records(mut r) => pending.append(&mut r),
        Batch::Committed(r, us) => done.push((r, us)),
        Batch::Flush(t) => flushes.push(t),
    }
}
