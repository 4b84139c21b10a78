//! The writer's tests, on real SQLite files.

use super::*;
use crate::audit::config::SyncMode;
use crate::audit::record::{Record, KIND_STATEMENT};

/// A writer for instance `gw` whose committer channel goes nowhere.
fn chainer(committed: Arc<AtomicI64>) -> Writer {
    Writer {
        instance: "gw".into(),
        keys: Keys::default(),
        seq: 0,
        hash: GENESIS.into(),
        journal: None,
        hold_until: 0,
        committed,
        cfg: AuditConfig::default(),
        to_commit: mpsc::unbounded_channel().0,
        direct: None,
        forwarded: 0,
        direct_failed: false,
    }
}

/// A writer (whose committer channel goes nowhere) and a committer
/// on `store`, for instance `gw`.
fn writer(store: Store) -> (Writer, Committer) {
    let committed = Arc::new(AtomicI64::new(0));
    let w = chainer(committed.clone());
    let c = Committer {
        store,
        instance: "gw".into(),
        key: Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap(),
        head: (0, GENESIS.into()),
        committed,
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
        gather: false,
        cfg: AuditConfig::default(),
        stats: Arc::new(AuditStats::default()),
        sinks: Sinks::new(&[]),
    };
    (w, c)
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

/// Leaves `records` in the journal at `paths`, as a crashed strict
/// gateway would.
fn crashed_journal(paths: &[PathBuf; 2], records: &[&Stored]) {
    let last = records.last().map_or(0, |r| r.seq);
    Journal::open(paths, SyncMode::Full)
        .unwrap()
        .0
        .append(&journal::encode(records).unwrap(), last, 0)
        .unwrap();
}

/// Settings for instance `gw` with its signing key in `dir`.
fn settings(dir: &std::path::Path, durability: Durability) -> AuditConfig {
    AuditConfig {
        instance: "gw".into(),
        durability,
        signing_key_file: dir.join("signing.key"),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_strict_start_recovers_the_journal_and_refuses_a_gap() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
    let paths = journal::paths_for(&url).unwrap();
    let recs = journal::tests::chain(3);
    let refs: Vec<&Stored> = recs.iter().collect();
    // A crashed gateway's journal: records 1..=3, none in the store.
    crashed_journal(&paths, &refs);
    let cfg = settings(&dir, Durability::Strict);
    let a = start(&cfg, store.clone(), Some(paths.clone()))
        .await
        .unwrap();
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 3, "recovered");
    assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), 0);
    // A new record is answered once journaled, and committed after.
    let ack = a.submit(Record {
        kind: KIND_STATEMENT,
        ..Default::default()
    });
    assert_eq!(ack.expect("strict").await.unwrap(), Ok(()));
    a.flush().await;
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 4);
    assert!(std::fs::metadata(&paths[0]).unwrap().len() > 0, "journaled");
    drop(a);
    // A journal that does not continue the store's chain stops the
    // start, naming the journal.
    let (dir2, url2) = crate::audit::store::tests::temp_sqlite();
    let store2 = Store::open_writer(&url2, SyncMode::Full).await.unwrap();
    let paths2 = journal::paths_for(&url2).unwrap();
    crashed_journal(&paths2, &refs[1..]);
    let cfg2 = settings(&dir2, Durability::Strict);
    let e = start(&cfg2, store2, Some(paths2)).await.err().unwrap();
    assert!(e.to_string().contains(".audit-journal.0"), "{e}");
    assert!(e.to_string().contains("do not continue"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[tokio::test]
async fn a_start_waits_for_a_held_journal_then_refuses() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let paths = journal::paths_for(&url).unwrap();
    let held = Journal::open(&paths, SyncMode::Full).unwrap();
    let started = Instant::now();
    let e = open_journal(&paths, SyncMode::Full).await.err().unwrap();
    assert!(started.elapsed() >= JOURNAL_LOCK_WAIT, "it waited");
    assert!(e.to_string().contains("locked by another process"), "{e}");
    drop(held);
    assert!(open_journal(&paths, SyncMode::Full).await.is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_batched_start_recovers_a_strict_journal_and_refuses_one_that_differs() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
    let paths = journal::paths_for(&url).unwrap();
    let recs = journal::tests::chain(3);
    let refs: Vec<&Stored> = recs.iter().collect();
    store.insert(&refs[..1]).await.unwrap();
    crashed_journal(&paths, &refs);
    let cfg = settings(&dir, Durability::Batched);
    let a = start(&cfg, store.clone(), Some(paths.clone()))
        .await
        .unwrap();
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 3, "recovered");
    // Batched mode does not keep the journal (or its lock).
    assert!(Journal::open(&paths, SyncMode::Full).unwrap().1.is_empty());
    drop(a);
    // A journal whose record 2 is not the store's record 2 (say the
    // store went on without it) is refused, not skipped.
    let mut other = journal::tests::chain(2);
    other[1].command_tag = "forged".into();
    other[1].hash = other[1].expected_hash();
    let orefs: Vec<&Stored> = other.iter().collect();
    crashed_journal(&paths, &orefs);
    let e = start(&cfg, store, Some(paths)).await.err().unwrap();
    assert!(
        e.to_string().contains("record 2 of instance gw differs"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clients_wait_for_the_store_when_the_journal_cannot_be_written() {
    let mut w = chainer(Arc::new(AtomicI64::new(0)));
    w.journal = Some(Journal::over(
        std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap(),
    ));
    let (mut group, mut r) = one(&mut w);
    w.journal(&mut group);
    assert!(group[0].1.is_some(), "left for the committer to answer");
    assert!(r.try_recv().is_err(), "not answered yet");
    // Once the journal works again, groups still wait for the store
    // until it has committed the failed one (the journal must not
    // skip a record).
    let dir = std::env::temp_dir().join(format!("portcullis-j-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = [dir.join("j.0"), dir.join("j.1")];
    let journaled = || std::fs::metadata(&paths[0]).unwrap().len();
    w.journal = Some(Journal::open(&paths, SyncMode::Normal).unwrap().0);
    let (mut second, mut r2) = one(&mut w);
    w.journal(&mut second);
    assert!(second[0].1.is_some() && r2.try_recv().is_err(), "held");
    assert_eq!(journaled(), 0);
    // The store committed record 1 but not yet the held record 2: a
    // later group still waits (journaling it would skip record 2, and a
    // crash would leave an answered record the chain cannot reach).
    w.committed.store(1, Ordering::Release);
    let (mut third, mut r3) = one(&mut w);
    w.journal(&mut third);
    assert!(third[0].1.is_some() && r3.try_recv().is_err(), "held too");
    assert_eq!(journaled(), 0);
    // The store has every held record: the journal answers again.
    w.committed.store(3, Ordering::Release);
    let (mut fourth, mut r4) = one(&mut w);
    w.journal(&mut fourth);
    assert!(fourth[0].1.is_none());
    assert_eq!(r4.try_recv().unwrap(), Ok(()));
    assert!(journaled() > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A group of one new statement record, and its submitter's answer.
fn one(w: &mut Writer) -> (Vec<(Stored, Waiter)>, Ack) {
    let (t, r) = oneshot::channel();
    let s = w.chain(Record {
        kind: KIND_STATEMENT,
        ..Default::default()
    });
    (vec![(s, Some(t))], r)
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_counts_and_a_fork_does_not() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
    let (mut w, mut c) = writer(store.clone());
    let mut pending = group(&mut w, 3);
    // The batch reached the store, but the writer never heard so.
    let rows: Vec<&Stored> = pending.iter().map(|(s, _)| s).collect();
    store.insert(&rows).await.unwrap();
    assert!(c.commit(&mut pending).await, "the store holds the group");
    assert!(pending.is_empty());
    assert_eq!(c.stats.written.load(Ordering::Relaxed), 3);
    assert!(!c.stats.failing.load(Ordering::Relaxed));
    assert_eq!(
        c.committed.load(Ordering::Relaxed),
        3,
        "the journal learns it"
    );
    // A second writer on the same instance starts a chain from the
    // beginning: its commit fails, and is not taken for committed.
    let (mut other, mut oc) = writer(store.clone());
    let mut forked = group(&mut other, 1);
    assert!(!oc.commit(&mut forked).await);
    assert_eq!(forked.len(), 1, "kept for a retry");
    assert!(oc.stats.failing.load(Ordering::Relaxed));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_lost_answer_merged_with_a_later_group_is_booked_and_the_rest_committed() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
    let (mut w, mut c) = writer(store.clone());
    // The store holds the first group, but its committer never heard.
    let mut pending = group(&mut w, 3);
    let rows: Vec<&Stored> = pending.iter().map(|(s, _)| s).collect();
    store.insert(&rows).await.unwrap();
    pending.extend(group(&mut w, 2));
    assert!(
        c.commit(&mut pending).await,
        "booked, and the rest committed"
    );
    assert!(pending.is_empty());
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 5);
    assert_eq!(c.head.0, 5);
    assert_eq!(c.stats.written.load(Ordering::Relaxed), 5);
    assert!(!c.stats.failing.load(Ordering::Relaxed));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `batched`: the writer is a thread of its own, so records submitted
/// from a current-thread runtime (`gateway.worker_threads = 1`) are
/// chained and committed while that runtime only awaits the flush; more
/// records than one yield interval arrive as one chain.
#[tokio::test]
async fn a_batched_writer_on_its_thread_commits_what_a_single_threaded_runtime_submits() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
    let a = start(&settings(&dir, Durability::Batched), store.clone(), None)
        .await
        .unwrap();
    let n = 3 * YIELD_EVERY + 5;
    for _ in 0..n {
        let ack = a.submit(Record {
            kind: KIND_STATEMENT,
            ..Default::default()
        });
        assert!(ack.is_none(), "batched: nobody waits");
    }
    a.flush().await;
    let hashes = store.hashes("gw", 1, n as i64).await.unwrap();
    assert_eq!(hashes.len(), n);
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, n as i64);
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Makes the writer's connection to `store` fail its commits (the disk is
/// full) or take them again.
fn disk_full(store: &Store, full: bool) {
    // SQLite raises a maximum below the file's size to its size.
    let pages = if full { 1 } else { 1_000_000 };
    store
        .sqlite_writer()
        .unwrap()
        .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
        .unwrap();
}

/// A statement record too big for the free room of a page.
fn big() -> Record {
    let mut r = Record {
        kind: KIND_STATEMENT,
        ..Default::default()
    };
    r.body.statement = "x".repeat(8192);
    r
}

fn big_group(w: &mut Writer, n: usize) -> Vec<(Stored, Waiter)> {
    (0..n).map(|_| (w.chain(big()), None)).collect()
}

#[tokio::test]
async fn a_batched_writer_commits_on_its_thread_only_when_the_committer_holds_nothing() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
    let committed = Arc::new(AtomicI64::new(0));
    let mut w = chainer(committed.clone());
    w.direct = store.sqlite_writer();
    let stored = || async { store.hashes("gw", 1, 1000).await.unwrap().len() };
    // Nothing pending: the writer commits the group itself.
    let g = big_group(&mut w, 5);
    assert!(matches!(w.commit(g), Batch::Committed(r, _) if r.len() == 5));
    assert_eq!(stored().await, 5);
    committed.store(5, Ordering::Release);
    // Its commit fails: the committer gets the group.
    disk_full(&store, true);
    let g = big_group(&mut w, 5);
    let Batch::Records(second) = w.commit(g) else {
        panic!("a failed group goes to the committer");
    };
    // The store takes records again, but the committer has not committed
    // that group yet: the next one must not overtake it.
    disk_full(&store, false);
    let g = big_group(&mut w, 5);
    let Batch::Records(third) = w.commit(g) else {
        panic!("a group behind one the committer holds goes to the committer");
    };
    assert_eq!(stored().await, 5, "nothing after the held group is stored");
    // The committer commits both; the writer commits again.
    let rows: Vec<&Stored> = second.iter().chain(&third).map(|(s, _)| s).collect();
    store.insert(&rows).await.unwrap();
    committed.store(15, Ordering::Release);
    let g = big_group(&mut w, 5);
    assert!(matches!(w.commit(g), Batch::Committed(..)));
    assert_eq!(stored().await, 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_store_that_fails_keeps_every_record_in_chain_order_until_it_recovers() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
    let cfg = AuditConfig {
        flush_interval: std::time::Duration::from_millis(1),
        ..settings(&dir, Durability::Batched)
    };
    let a = start(&cfg, store.clone(), None).await.unwrap();
    let submit = |n: usize| {
        for _ in 0..n {
            a.submit(big());
        }
    };
    submit(10);
    a.flush().await;
    disk_full(&store, true);
    submit(10);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while !a.stats.failing.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the failure is reported");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 10);
    submit(10);
    disk_full(&store, false);
    submit(10);
    a.flush().await;
    assert!(!a.stats.failing.load(Ordering::Relaxed));
    assert_eq!(a.stats.written.load(Ordering::Relaxed), 40);
    assert_eq!(a.stats.queued.load(Ordering::Relaxed), 0);
    // All of them, one unbroken chain.
    let reports = crate::audit::verify::verify(&store, &Default::default(), None)
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.broken.is_none()), "{reports:?}");
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 40);
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn only_a_batched_writer_on_sqlite_commits_its_own_groups() {
    let (dir, url) = crate::audit::store::tests::temp_sqlite();
    let writer_store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
    let reader_store = Store::open(&url).await.unwrap();
    let batched = settings(&dir, Durability::Batched);
    let strict = settings(&dir, Durability::Strict);
    assert!(own_commits(&batched, &writer_store).is_some());
    assert!(own_commits(&strict, &writer_store).is_none());
    assert!(own_commits(&batched, &reader_store).is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A random run (fixed seed) of groups, failed appends (cut off) and store
/// commits, across rotations; after each step, a crash must leave every
/// record answered from the journal recoverable: every record up to it is
/// in the journal files or committed.
#[test]
fn answered_records_never_follow_a_gap() {
    use rand::{Rng, SeedableRng};
    let dir = std::env::temp_dir().join(format!("portcullis-rv-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = [dir.join("j.0"), dir.join("j.1")];
    let committed = Arc::new(AtomicI64::new(0));
    let mut w = chainer(committed.clone());
    w.journal = Some(Journal::open(&paths, SyncMode::Normal).unwrap().0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut answered: Vec<i64> = Vec::new();
    let mut last_seq = 0i64;
    let mut rotations_seen = std::collections::HashSet::new();
    let read_file = |p: &PathBuf| -> Vec<i64> {
        let b = std::fs::read(p).unwrap();
        let mut rest = &b[..];
        let mut out = Vec::new();
        while let Some((len, body)) = rest.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            out.push(Stored::from_frame(&body[..len]).unwrap().seq);
            rest = &body[len..];
        }
        assert!(rest.is_empty());
        out
    };
    let mut hot = 0;
    for step in 0..4000 {
        if hot > 0 {
            hot -= 1;
        }
        if rng.gen_bool(0.6) {
            let n = rng.gen_range(1..=4);
            let mut g = Vec::new();
            let mut rxs = Vec::new();
            for _ in 0..n {
                let (t, r) = oneshot::channel();
                let s = w.chain(Record {
                    kind: KIND_STATEMENT,
                    command_tag: "x".repeat(8000),
                    ..Default::default()
                });
                last_seq = s.seq;
                g.push((s, Some(t)));
                rxs.push(r);
            }
            if rng.gen_bool(0.05) {
                if let Some(j) = w.journal.as_mut() {
                    j.fail_after = Some(rng.gen_range(0..200));
                    hot = 20;
                }
            }
            w.journal(&mut g);
            for ((s, _), mut r) in g.iter().zip(rxs) {
                if let Ok(Ok(())) = r.try_recv() {
                    answered.push(s.seq);
                }
            }
        } else {
            // The store commits a prefix of what was chained.
            let c = committed.load(Ordering::Acquire);
            if c < last_seq {
                let to = rng.gen_range(c + 1..=last_seq);
                committed.store(to, Ordering::Release);
            }
        }
        // Crash now: what is durable?
        if (hot > 0 && step % 3 == 0) || step % 101 == 0 {
            let mut durable: std::collections::BTreeSet<i64> =
                read_file(&paths[0]).into_iter().collect();
            let second = read_file(&paths[1]);
            if !second.is_empty() {
                rotations_seen.insert(step / 1000);
            }
            durable.extend(second);
            let c = committed.load(Ordering::Acquire);
            if let Some(&top) = answered.last() {
                for s in c + 1..=top {
                    assert!(
                        durable.contains(&s),
                        "step {step}: record {top} answered, record {s} neither journaled nor committed ({c})"
                    );
                }
            }
        }
    }
    assert!(!rotations_seen.is_empty(), "the run rotated");
    assert!(
        answered.len() > 1000,
        "answered {} of {last_seq}",
        answered.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
