//! The writer: sessions hand records to [`Auditor::submit`] (a channel
//! send, nothing else on the hot path); one task per gateway numbers them,
//! seals their bodies and chains their hashes, and hands them in groups to
//! the committer ([`super::commit`]), which writes them in batches, one
//! commit per batch (group commit across sessions). A batched writer on a
//! SQLite store commits each batch itself, on its own thread, so no
//! runtime worker waits for SQLite; when a commit fails, the committer
//! takes that batch and the ones after it and retries them in order,
//! until it has caught up. In `strict` mode the
//! submitter gets a receiver that resolves when its record is durable:
//! in the journal (SQLite, [`super::journal`]) or committed to the store
//! (PostgreSQL, or when the journal cannot be written).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use ring::signature::Ed25519KeyPair;
use tokio::sync::{mpsc, oneshot};

use super::commit::{Batch, Committer, Waiter};
use super::config::{AuditConfig, Durability};
use super::crypt::Keys;
use super::journal::{self, Journal};
use super::record::{Record, Stored, GENESIS};
use super::sink::Sinks;
use super::store::{SqliteWriter, Store, YIELD_EVERY};

/// What the writer answers a strict submitter.
pub type Ack = oneshot::Receiver<Result<(), String>>;

type Flush = oneshot::Sender<()>;

enum Msg {
    Record(Box<Record>, Waiter),
    Flush(Flush),
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
    /// when it is durable (in the journal, or committed) or failed.
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

#[cfg(test)]
impl Auditor {
    /// A batched-mode auditor with no writer: what sessions submit is
    /// read back with the returned function (tests of the session side).
    pub(crate) fn capturing() -> (Self, impl FnMut() -> Vec<Record>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let auditor = Self {
            tx,
            strict: false,
            buffer_limit: usize::MAX,
            stats: Arc::default(),
            caps: Caps {
                rows: 10,
                result_bytes: 1 << 20,
                param_bytes: 1 << 10,
            },
        };
        let drain = move || {
            std::iter::from_fn(|| rx.try_recv().ok())
                .filter_map(|m| match m {
                    Msg::Record(r, _) => Some(*r),
                    Msg::Flush(_) => None,
                })
                .collect()
        };
        (auditor, drain)
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
    /// The strict-mode journal.
    #[error(transparent)]
    Journal(#[from] super::journal::JournalError),
    /// The writer's thread.
    #[error("cannot start the audit writer's thread: {0}")]
    Thread(std::io::Error),
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

/// How long a start waits for a journal another process holds (the
/// `portcullis audit` commands hold it while they recover it).
const JOURNAL_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the journal, waiting up to [`JOURNAL_LOCK_WAIT`] for another
/// holder.
async fn open_journal(
    paths: &[PathBuf; 2],
    sync: super::config::SyncMode,
) -> Result<(Journal, Vec<Stored>), StartError> {
    let deadline = Instant::now() + JOURNAL_LOCK_WAIT;
    let mut told = false;
    loop {
        match Journal::open(paths, sync) {
            Err(journal::JournalError::Locked { path }) if Instant::now() < deadline => {
                if !told {
                    tracing::warn!(journal = %path, "the audit journal is locked by another process; waiting");
                    told = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            r => return Ok(r?),
        }
    }
}

/// Starts the writer for `cfg` on `store`; `journal`: the journal's
/// files of a SQLite store (see [`super::journal`]): recovered in any
/// mode, written in strict mode.
pub async fn start(
    cfg: &AuditConfig,
    store: Store,
    journal: Option<[PathBuf; 2]>,
) -> Result<Auditor, StartError> {
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
    // A journal left by a crash (whatever the durability now) goes into
    // the store before anything else; strict mode keeps it open.
    let journal = match journal {
        Some(paths) => {
            let (mut j, held) = open_journal(&paths, cfg.sync).await?;
            let n = journal::recover(&store, j.name(), held).await?;
            if n > 0 {
                tracing::info!(records = n, journal = %j.name(), "audit records recovered from the journal into the store");
            }
            j.clear()?;
            (cfg.durability == Durability::Strict).then_some(j)
        }
        None => None,
    };
    let head = store
        .head(&cfg.instance)
        .await?
        .unwrap_or_else(|| (0, GENESIS.to_string()));
    let (tx, rx) = mpsc::unbounded_channel();
    let (to_commit, batches) = mpsc::unbounded_channel();
    let stats = Arc::new(AuditStats::default());
    let committed = Arc::new(AtomicI64::new(head.0));
    let committer = Committer {
        store,
        instance: cfg.instance.clone(),
        key,
        head: head.clone(),
        committed: committed.clone(),
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
        gather: journal.is_some(),
        cfg: cfg.clone(),
        stats: stats.clone(),
        sinks: Sinks::new(&cfg.sinks),
    };
    let strict = cfg.durability == Durability::Strict;
    let direct = own_commits(cfg, &committer.store);
    let w = Writer {
        instance: cfg.instance.clone(),
        keys,
        seq: head.0,
        hash: head.1,
        journal,
        hold_until: 0,
        committed,
        cfg: cfg.clone(),
        to_commit,
        direct,
        forwarded: 0,
        direct_failed: false,
    };
    tokio::spawn(committer.run(batches));
    // A thread of its own where the writer blocks (a journal append that
    // waits for the disk) or does a whole batch's work at once (batched:
    // chaining a flush interval's records would hold a runtime worker,
    // and the sessions queued on it, for milliseconds).
    if !strict || w.journal.as_ref().is_some_and(Journal::syncs) {
        std::thread::Builder::new()
            .name("portcullis-audit-writer".into())
            .spawn(move || w.run_blocking(rx))
            .map_err(StartError::Thread)?;
    } else {
        tokio::spawn(w.run(rx));
    }
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

/// The connection a writer commits its own groups by: batched on SQLite
/// (strict mode commits behind the journal, in batches the committer
/// gathers; PostgreSQL through the committer).
fn own_commits(cfg: &AuditConfig, store: &Store) -> Option<SqliteWriter> {
    match cfg.durability {
        Durability::Strict => None,
        Durability::Batched => store.sqlite_writer(),
    }
}

/// The writer's first task: numbers, seals and chains records, journals
/// them in strict mode with a journal, and hands them to the committer.
struct Writer {
    instance: String,
    keys: Keys,
    seq: i64,
    hash: String,
    journal: Option<Journal>,
    /// After a failed journal append: groups are neither journaled nor
    /// answered from it until the store has committed up to here (the
    /// journal must not skip records).
    hold_until: i64,
    committed: Arc<AtomicI64>,
    cfg: AuditConfig,
    to_commit: mpsc::UnboundedSender<Batch>,
    /// Batched on SQLite: the store's writer connection, to commit each
    /// group on this thread.
    direct: Option<SqliteWriter>,
    /// The last record handed to the committer uncommitted: groups after
    /// it are committed here only once the committer has committed it.
    forwarded: i64,
    /// The last commit on this thread failed (logged once per run).
    direct_failed: bool,
}

impl Writer {
    /// Strict mode without a journal, or with one whose appends do not
    /// wait for the disk (a `write` to the page cache): a task on the
    /// runtime, taking each group as soon as it forms (the next group
    /// forms while this one is committed).
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(first) = rx.recv().await {
            self.group(first, &mut rx);
        }
    }

    /// A thread of its own: `batched` (after the first record, a batch
    /// gathers for `flush_interval`), or strict mode with a journal whose
    /// appends wait for the disk (`sync = full`: each group's fdatasync
    /// blocks).
    fn run_blocking(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let gather = self.cfg.durability != Durability::Strict;
        while let Some(first) = rx.blocking_recv() {
            if gather {
                std::thread::sleep(self.cfg.flush_interval);
            }
            self.group(first, &mut rx);
        }
    }

    /// Chains `first` and what else waits, journals the group and hands
    /// it to the committer.
    fn group(&mut self, first: Msg, rx: &mut mpsc::UnboundedReceiver<Msg>) {
        let mut group = Vec::new();
        let mut flushes = Vec::new();
        self.take(first, &mut group, &mut flushes);
        while group.len() < self.cfg.batch_size {
            // A batched group is a flush interval's records: let what
            // waits for this core run now and then (see YIELD_EVERY).
            if group.len() % YIELD_EVERY == 0 {
                std::thread::yield_now();
            }
            match rx.try_recv() {
                Ok(m) => self.take(m, &mut group, &mut flushes),
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            self.journal(&mut group);
            let batch = self.commit(group);
            let _ = self.to_commit.send(batch);
        }
        for f in flushes {
            let _ = self.to_commit.send(Batch::Flush(f));
        }
    }

    fn take(&mut self, m: Msg, group: &mut Vec<(Stored, Waiter)>, flushes: &mut Vec<Flush>) {
        match m {
            Msg::Record(r, ack) => {
                let s = self.chain(*r);
                group.push((s, ack));
            }
            Msg::Flush(t) => flushes.push(t),
        }
    }

    /// Strict mode with a journal: appends the group to it and answers its
    /// submitters. If the journal cannot be written, they (and the groups
    /// after them, until the store has committed them) wait for the
    /// store's commit instead.
    fn journal(&mut self, group: &mut [(Stored, Waiter)]) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let rows: Vec<&Stored> = group.iter().map(|(s, _)| s).collect();
        let last = rows.last().map_or(0, |s| s.seq);
        let committed = self.committed.load(Ordering::Acquire);
        if committed < self.hold_until {
            // Held too: the journal resumes only after the store has
            // this group as well (it must not skip records).
            self.hold_until = last;
            return;
        }
        match journal::encode(&rows).and_then(|buf| j.append(&buf, last, committed)) {
            Ok(()) => {
                for (_, w) in group.iter_mut() {
                    if let Some(w) = w.take() {
                        let _ = w.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                self.hold_until = last;
                tracing::warn!(error = %e, journal = %j.name(), "cannot write the audit journal; strict clients wait for the store's commits until it has these records");
                if j.broken() {
                    tracing::error!(journal = %j.name(), "a failed audit journal append could not be cut off; the journal is no longer used (strict clients wait for the store's commits)");
                    self.journal = None;
                }
            }
        }
    }

    /// Commits `group` here when this writer commits its own groups and
    /// the committer has nothing left to retry; otherwise (or when the
    /// commit fails) hands it to the committer, which commits it in order.
    fn commit(&mut self, group: Vec<(Stored, Waiter)>) -> Batch {
        let last = group.last().map_or(self.forwarded, |(s, _)| s.seq);
        if let Some(direct) = &self.direct {
            if self.committed.load(Ordering::Acquire) >= self.forwarded {
                let started = Instant::now();
                let rows: Vec<&Stored> = group.iter().map(|(s, _)| s).collect();
                match direct.insert(&rows) {
                    Ok(()) => {
                        self.direct_failed = false;
                        return Batch::Committed(group, started.elapsed().as_micros() as u64);
                    }
                    // Said once per run of failures; the committer says
                    // whether its retries fail too.
                    Err(e) if !self.direct_failed => {
                        self.direct_failed = true;
                        tracing::warn!(error = %e, records = rows.len(), "audit commit failed on the writer's thread; the committer retries it and the batches after it in order");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "audit commit failed on the writer's thread")
                    }
                }
            }
        }
        self.forwarded = last;
        Batch::Records(group)
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
}

#[cfg(test)]
mod tests;
