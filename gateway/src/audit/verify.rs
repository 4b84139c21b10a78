//! `portcullis audit verify`: walks each instance's chain in order and
//! checks every link (sequence, previous hash, own hash) and every signed
//! checkpoint; names the first record that breaks it and how (edited,
//! deleted, reordered, inserted). Then checks the session index against
//! the records (a row edited or deleted there would hide records from
//! replay and the viewer).

use std::collections::HashMap;

use base64::Engine as _;
use futures_util::StreamExt;
use ring::signature::{UnparsedPublicKey, ED25519};

use super::record::{Stored, GENESIS};
use super::store::{Checkpoint, SessionRow, Store, StoreError};

/// What verification found for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Instance.
    pub instance: String,
    /// Records checked.
    pub records: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// Records after the last checkpoint (covered by the chain only).
    pub unsigned_tail: u64,
    /// The first problem, if any.
    pub broken: Option<Broken>,
}

/// The first problem in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Sequence number where it shows.
    pub seq: i64,
    /// Record id there (empty when the record is missing).
    pub id: String,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.seq, self.id.is_empty()) {
            // A whole instance, not one record.
            (0, true) => write!(f, "— {}", self.what),
            (_, true) => write!(f, "at record {}: {}", self.seq, self.what),
            _ => write!(f, "at record {} ({}): {}", self.seq, self.id, self.what),
        }
    }
}

fn check_signature(cp: &Checkpoint, public_b64: &str) -> bool {
    let (Ok(pk), Ok(sig)) = (
        base64::engine::general_purpose::STANDARD.decode(public_b64.trim()),
        base64::engine::general_purpose::STANDARD.decode(&cp.signature),
    ) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, pk)
        .verify(
            &Checkpoint::message(&cp.instance, cp.seq, &cp.hash, cp.at_us),
            &sig,
        )
        .is_ok()
}

/// Verifies every instance in the store — each with a public key on
/// record and each with records — and each instance in `trusted`.
/// `trusted`: public keys given on the command line (instance → key);
/// otherwise the keys on record are used (and the report says so).
/// `retention`: `audit.retention`, under which an instance whose records
/// were all signed longer ago than that may have none left.
pub async fn verify(
    store: &Store,
    trusted: &HashMap<String, String>,
    retention: Option<std::time::Duration>,
) -> Result<Vec<Report>, StoreError> {
    let mut out = Vec::new();
    let listed = store.instances().await?;
    for (instance, stored_key) in &listed {
        let key = trusted.get(instance).unwrap_or(stored_key);
        if key.is_empty() {
            // Records whose instance has no key on record: its row in
            // audit_instances was deleted (or never written).
            out.push(Report {
                broken: Some(Broken {
                    seq: 0,
                    id: String::new(),
                    what: "records of an instance with no public key on record (pass --public-key INSTANCE=KEY)".into(),
                }),
                ..Report::new(instance)
            });
            continue;
        }
        out.push(verify_instance(store, instance, key, retention).await?);
    }
    // A key given for an instance the store no longer holds: its records
    // and its key were removed.
    let mut missing: Vec<&String> = trusted
        .keys()
        .filter(|i| !listed.iter().any(|(l, _)| l == *i))
        .collect();
    missing.sort();
    for instance in missing {
        out.push(Report {
            broken: Some(Broken {
                seq: 0,
                id: String::new(),
                what: "no records and no key of this instance in the store (deleted?)".into(),
            }),
            ..Report::new(instance)
        });
    }
    Ok(out)
}

impl Report {
    fn new(instance: &str) -> Self {
        Self {
            instance: instance.to_string(),
            records: 0,
            checkpoints: 0,
            unsigned_tail: 0,
            broken: None,
        }
    }
}

async fn verify_instance(
    store: &Store,
    instance: &str,
    key: &str,
    retention: Option<std::time::Duration>,
) -> Result<Report, StoreError> {
    let cps = store.checkpoints(instance).await?;
    let mut report = Report::new(instance);
    let mut by_seq: HashMap<i64, &Checkpoint> = HashMap::new();
    for cp in &cps {
        if !check_signature(cp, key) {
            report.broken = Some(Broken {
                seq: cp.seq,
                id: String::new(),
                what: "checkpoint signature does not verify with the instance's public key".into(),
            });
            return Ok(report);
        }
        report.checkpoints += 1;
        by_seq.insert(cp.seq, cp);
    }
    // The session index and the records as of one moment.
    let (index, mut rows) = store.snapshot(instance).await?;
    // (seq, hash) of the previous record; None before the first one.
    let mut prev: Option<(i64, String)> = None;
    let mut last_cp_seq = 0;
    // Each session's records as the chain holds them.
    let mut seen: HashMap<String, SessionRow> = HashMap::new();
    let mut first_stored = None;
    let fail = |r: &Stored, what: &str| Broken {
        seq: r.seq,
        id: r.id.clone(),
        what: what.to_string(),
    };
    while let Some(r) = rows.next().await {
        let r = r?;
        report.records += 1;
        let problem = match &prev {
            None => {
                // The chain starts at 1, or right after a pruned prefix
                // whose end a signed checkpoint vouches for.
                if r.seq == 1 {
                    (r.prev_hash != GENESIS).then(|| {
                        fail(
                            &r,
                            "first record does not start the chain (inserted before it, or edited)",
                        )
                    })
                } else {
                    match by_seq.get(&(r.seq - 1)) {
                        Some(cp) if cp.hash == r.prev_hash => None,
                        _ => Some(Broken {
                            seq: r.seq - 1,
                            id: String::new(),
                            what: "records before this one are missing and no signed checkpoint covers their removal (deleted)".into(),
                        }),
                    }
                }
            }
            Some((pseq, phash)) => {
                if r.seq != pseq + 1 {
                    Some(Broken {
                        seq: pseq + 1,
                        id: String::new(),
                        what: format!(
                            "missing (deleted): the chain jumps from {pseq} to {}",
                            r.seq
                        ),
                    })
                } else if &r.prev_hash != phash {
                    Some(fail(&r, "does not follow the previous record (inserted, reordered, or the previous one was edited)"))
                } else {
                    None
                }
            }
        };
        let problem = problem.or_else(|| {
            (!r.hash_matches()).then(|| fail(&r, "content does not match its hash (edited)"))
        });
        let problem = problem.or_else(|| {
            by_seq.get(&r.seq).and_then(|cp| {
                (cp.hash != r.hash).then(|| {
                    fail(
                        &r,
                        "differs from the signed checkpoint (the chain up to here was rewritten)",
                    )
                })
            })
        });
        if let Some(b) = problem {
            report.broken = Some(b);
            return Ok(report);
        }
        if by_seq.contains_key(&r.seq) {
            last_cp_seq = r.seq;
        }
        first_stored.get_or_insert(r.seq);
        match seen.get_mut(&r.session_id) {
            Some(row) => row.add(&r),
            None => {
                seen.insert(r.session_id.clone(), SessionRow::start(&r));
            }
        }
        prev = Some((r.seq, r.hash));
    }
    // Checkpoints past the last record: records at the end were deleted —
    // unless retention pruned them all (it prunes up to a checkpoint
    // signed before its cut, so none remain only when the last one is
    // older than the retention).
    if let Some(cp) = cps.last() {
        let last = prev.as_ref().map_or(0, |p| p.0);
        let pruned = prev.is_none()
            && retention
                .is_some_and(|r| cp.at_us < crate::audit::record::now_us() - r.as_micros() as i64);
        if cp.seq > last && !pruned {
            report.broken = Some(Broken {
                seq: last + 1,
                id: String::new(),
                what: format!(
                    "missing (deleted): a signed checkpoint covers records up to {}, the chain ends at {last}",
                    cp.seq
                ),
            });
            return Ok(report);
        }
    }
    report.unsigned_tail = prev.map_or(0, |p| (p.0 - last_cp_seq).max(0) as u64);
    report.broken = check_sessions(&seen, &index, first_stored.unwrap_or(0));
    Ok(report)
}

/// What an index row must always agree on with the records: who, from
/// where, and where the session ends.
fn who_and_end(a: &SessionRow) -> (&str, &str, &str, &str, i64, i64) {
    (
        &a.user,
        &a.connection,
        &a.client_addr,
        &a.application,
        a.last_seq,
        a.last_us,
    )
}

/// How an index row differs from what the records make of it.
fn describe(row: &SessionRow, s: &SessionRow) -> String {
    let mut d = Vec::new();
    for (what, a, b) in [
        ("user", &row.user, &s.user),
        ("connection", &row.connection, &s.connection),
        ("client address", &row.client_addr, &s.client_addr),
        ("application", &row.application, &s.application),
    ] {
        if a != b {
            d.push(format!("{what} {a:?}, records {b:?}"));
        }
    }
    for (what, a, b) in [
        ("first record", row.first_seq, s.first_seq),
        ("last record", row.last_seq, s.last_seq),
        ("first time", row.first_us, s.first_us),
        ("last time", row.last_us, s.last_us),
        ("statements", row.statements, s.statements),
        ("denied", row.denied, s.denied),
    ] {
        if a != b {
            d.push(format!("{what} {a}, records {b}"));
        }
    }
    d.join("; ")
}

/// The first disagreement between the session index (`rows`) and the
/// sessions the chain holds (`seen`), by record. `first_stored`: the
/// first record not pruned; a session that began before it keeps its
/// span and counts from before the cut.
fn check_sessions(
    seen: &HashMap<String, SessionRow>,
    rows: &HashMap<String, SessionRow>,
    first_stored: i64,
) -> Option<Broken> {
    let mut problems: Vec<Broken> = Vec::new();
    let broken = |seq: i64, what: String| Broken {
        seq,
        id: String::new(),
        what,
    };
    for (id, s) in seen {
        let Some(row) = rows.get(id) else {
            problems.push(broken(s.first_seq, format!("session {id} has records but no row in the session index (audit_sessions): replay and the viewer would not show them (deleted)")));
            continue;
        };
        // Who and where, and the end of the span, always; the start and
        // the counts unless the session began before the first record
        // stored (retention cut it).
        let agrees = who_and_end(row) == who_and_end(s)
            && if row.first_seq >= first_stored {
                (row.first_seq, row.first_us, row.statements, row.denied)
                    == (s.first_seq, s.first_us, s.statements, s.denied)
            } else {
                // Cut by retention: it began after the chain's start, and
                // the pruned records account for at most the counts the
                // row has beyond the stored ones.
                let pruned = first_stored - row.first_seq;
                first_stored > 1
                    && row.first_seq >= 1
                    && row.first_seq < s.first_seq
                    && row.first_us <= s.first_us
                    && (0..=pruned).contains(&(row.statements - s.statements))
                    && (0..=pruned).contains(&(row.denied - s.denied))
            };
        if !agrees {
            problems.push(broken(s.first_seq, format!(
                "the session index (audit_sessions) row of session {id} differs from its records: {} (edited)",
                describe(row, s)
            )));
        }
    }
    for (id, row) in rows {
        if !seen.contains_key(id) {
            problems.push(broken(row.first_seq, format!("the session index (audit_sessions) names session {id} at records {}..{}, which hold none of its records (inserted)", row.first_seq, row.last_seq)));
        }
    }
    problems.into_iter().min_by_key(|b| b.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, first: i64, last: i64, statements: i64, denied: i64) -> (String, SessionRow) {
        let r = SessionRow {
            session_id: id.into(),
            user: format!("{id}@example.com"),
            first_seq: first,
            last_seq: last,
            first_us: first * 10,
            last_us: last * 10,
            statements,
            denied,
            ..Default::default()
        };
        (id.into(), r)
    }

    #[test]
    fn the_session_index_must_agree_with_the_chain() {
        let seen: HashMap<_, _> = [row("a", 1, 9, 4, 1), row("b", 3, 12, 2, 0)].into();
        assert_eq!(
            check_sessions(&seen, &seen, 1),
            None,
            "as the writer keeps it"
        );
        // A span narrowed: the session's last record hidden from replay.
        let mut rows = seen.clone();
        rows.insert("b".into(), row("b", 3, 11, 2, 0).1);
        let b = check_sessions(&seen, &rows, 1).expect("narrowed");
        assert_eq!(b.seq, 3);
        assert!(
            b.what.contains("session b differs from its records: last record 11, records 12; last time 110, records 120 (edited)"),
            "{}",
            b.what
        );
        // The user edited (the session would not be listed under its user).
        rows = seen.clone();
        if let Some(r) = rows.get_mut("a") {
            r.user = "mallory@example.com".into();
        }
        let b = check_sessions(&seen, &rows, 1).expect("user");
        assert!(
            b.what
                .contains(r#"user "mallory@example.com", records "a@example.com""#),
            "{}",
            b.what
        );
        // Counts edited.
        rows = seen.clone();
        rows.insert("a".into(), row("a", 1, 9, 4, 0).1);
        assert!(check_sessions(&seen, &rows, 1)
            .expect("count")
            .what
            .contains("session a"));
        // A row deleted; a row added for no records.
        rows = seen.clone();
        rows.remove("a");
        let b = check_sessions(&seen, &rows, 1).expect("deleted");
        assert!(b.what.contains("no row in the session index"), "{}", b.what);
        rows = seen.clone();
        rows.extend([row("ghost", 20, 30, 1, 0)]);
        let b = check_sessions(&seen, &rows, 1).expect("inserted");
        assert!(
            b.what.contains("ghost") && b.what.contains("(inserted)"),
            "{}",
            b.what
        );
        // Two problems: the first by record is named.
        rows.remove("a");
        assert_eq!(check_sessions(&seen, &rows, 1).expect("two").seq, 1);
    }

    #[test]
    fn a_session_cut_by_retention_keeps_its_earlier_span_and_counts() {
        // Records up to 5 pruned: the chain now holds a's records from 6.
        let seen: HashMap<_, _> = [row("a", 6, 9, 2, 0)].into();
        let rows: HashMap<_, _> = [row("a", 1, 9, 4, 1)].into();
        assert_eq!(check_sessions(&seen, &rows, 6), None);
        // Its counts may not fall below what is stored, nor exceed it by
        // more than the records pruned; its start stays within the chain.
        for (first, statements) in [(1, 1), (1, 8), (0, 4)] {
            let rows: HashMap<_, _> = [row("a", first, 9, statements, 1)].into();
            assert!(
                check_sessions(&seen, &rows, 6).is_some(),
                "{first} {statements}"
            );
        }
        // Nothing pruned: a row may not claim to begin before the chain.
        let seen1: HashMap<_, _> = [row("a", 1, 9, 2, 0)].into();
        let rows: HashMap<_, _> = [row("a", 0, 9, 0, 0)].into();
        assert!(check_sessions(&seen1, &rows, 1).is_some());
        // Its user must still agree.
        let mut other = rows.clone();
        if let Some(r) = other.get_mut("a") {
            r.user = "mallory@example.com".into();
        }
        assert!(check_sessions(&seen, &other, 6).is_some());
        // But its end must still agree.
        let rows: HashMap<_, _> = [row("a", 1, 8, 4, 1)].into();
        assert!(check_sessions(&seen, &rows, 6).is_some());
    }

    #[tokio::test]
    async fn a_chain_retention_pruned_whole_verifies_and_a_deleted_one_does_not() {
        use crate::audit::config::SyncMode;
        use base64::Engine as _;
        let (dir, url) = crate::audit::store::tests::temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[9u8; 32]).unwrap();
        let public = crate::approvals::protocol::public_key_b64(&key);
        store.announce("gw", &public).await.unwrap();
        let recs = crate::audit::journal::tests::chain(3);
        store
            .insert(&recs.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        // Signed an hour ago, then every record pruned.
        let at_us = crate::audit::record::now_us() - 3_600_000_000;
        let msg = Checkpoint::message("gw", 3, &recs[2].hash, at_us);
        let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&msg));
        let cp = Checkpoint {
            instance: "gw".into(),
            seq: 3,
            hash: recs[2].hash.clone(),
            at_us,
            signature,
        };
        store.checkpoint(&cp).await.unwrap();
        assert_eq!(store.prune("gw", at_us + 1).await.unwrap(), 3);
        let minute = std::time::Duration::from_secs(60);
        let reports = verify(&store, &HashMap::new(), Some(minute)).await.unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].broken, None, "past a retention of a minute");
        assert_eq!((reports[0].records, reports[0].checkpoints), (0, 1));
        // Without retention, or with one longer than their age, the
        // records were deleted.
        for retention in [None, Some(2 * 3600 * minute / 60)] {
            let reports = verify(&store, &HashMap::new(), retention).await.unwrap();
            let b = reports[0].broken.as_ref().expect("deleted");
            assert!(b.what.contains("missing (deleted)"), "{b}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
