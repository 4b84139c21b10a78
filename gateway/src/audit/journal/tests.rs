//! The journal's tests, on real files and SQLite stores.

use super::*;
use crate::audit::store::tests::temp_sqlite;

/// A SQLite store (`sync = full`) in a temporary directory: the
/// directory, the store's URL, the store and its journal's files.
async fn setup() -> (PathBuf, String, Store, [PathBuf; 2]) {
    let (dir, url) = temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
    let paths = paths_for(&url).unwrap();
    (dir, url, store, paths)
}

/// `n` records of instance `gw` chained from the genesis.
pub(crate) fn chain(n: i64) -> Vec<Stored> {
    let mut prev = GENESIS.to_string();
    (1..=n)
        .map(|seq| {
            let mut s = Stored {
                instance: "gw".into(),
                seq,
                body: format!("{{\"statement\":\"select {seq}\"}}"),
                prev_hash: prev.clone(),
                ..Default::default()
            };
            s.hash = s.expected_hash();
            prev.clone_from(&s.hash);
            s
        })
        .collect()
}

#[tokio::test]
async fn records_only_the_journal_holds_are_recovered_once() {
    let (dir, url) = temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
    let recs = chain(5);
    let refs: Vec<&Stored> = recs.iter().collect();
    // The store has 1..=3; the journal has 2..=5, across both files,
    // and a torn tail.
    store.insert(&refs[..3]).await.unwrap();
    let paths = paths_for(&url).unwrap();
    let (mut j, held) = Journal::open(&paths, SyncMode::Full).unwrap();
    assert!(held.is_empty());
    j.append(&encode(&refs[1..3]).unwrap(), 3, 0).unwrap();
    j.parts[0].len = ROTATE_BYTES; // as if long: the next append rotates
    j.append(&encode(&refs[3..]).unwrap(), 5, 0).unwrap();
    assert_eq!(j.current, 1, "the other file was empty");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&paths[1])
        .unwrap()
        .write_all(&[0, 0, 1, 0, b'{'])
        .unwrap();
    drop(j);
    let n = recover_idle(&store, &url).await.unwrap();
    assert_eq!(n, Some(2), "records 4 and 5");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "records hold statements and rows");
    }
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 5);
    assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), 0, "emptied");
    assert_eq!(recover_idle(&store, &url).await.unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_held_journal_is_left_to_its_gateway_and_a_gap_is_refused() {
    let (dir, url) = temp_sqlite();
    let store = Store::open_writer(&url, SyncMode::Normal).await.unwrap();
    let recs = chain(4);
    let refs: Vec<&Stored> = recs.iter().collect();
    let paths = paths_for(&url).unwrap();
    let (mut j, _) = Journal::open(&paths, SyncMode::Normal).unwrap();
    // Record 1 never reached the journal or the store.
    j.append(&encode(&refs[1..]).unwrap(), 4, 0).unwrap();
    assert_eq!(recover_idle(&store, &url).await.unwrap(), None, "locked");
    let e = Journal::open(&paths, SyncMode::Normal).err().unwrap();
    assert!(matches!(e, JournalError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("locked by another process"), "{e}");
    drop(j);
    let e = recover_idle(&store, &url).await.unwrap_err().to_string();
    assert!(e.contains("do not continue the store's chain"), "{e}");
    assert!(e.contains("the store ends at record 0"), "{e}");
    assert_eq!(store.head("gw").await.unwrap(), None, "nothing written");
    // The rotation waits for the store: file 0 is long but file 1
    // holds uncommitted records.
    let (mut j, held) = Journal::open(&paths, SyncMode::Normal).unwrap();
    assert_eq!(held.len(), 3);
    j.clear().unwrap();
    j.append(&encode(&refs[..1]).unwrap(), 1, 0).unwrap();
    j.parts[0].len = ROTATE_BYTES;
    j.append(&encode(&refs[1..2]).unwrap(), 2, 0).unwrap();
    assert_eq!(j.current, 1);
    j.parts[1].len = ROTATE_BYTES;
    j.append(&encode(&refs[2..3]).unwrap(), 3, 0).unwrap();
    assert_eq!(j.current, 1, "file 0's record 1 is not committed yet");
    let last = encode(&refs[3..]).unwrap();
    j.append(&last, 4, 1).unwrap();
    assert_eq!(j.current, 0, "record 1 is committed");
    assert_eq!(
        std::fs::metadata(&paths[0]).unwrap().len(),
        last.len() as u64,
        "emptied before reuse"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Frames as gateways before 2026-11-27 wrote them (JSON).
fn encode_json(records: &[&Stored]) -> Vec<u8> {
    let mut buf = Vec::new();
    for r in records {
        let json = serde_json::to_vec(r).unwrap();
        buf.extend((json.len() as u32).to_be_bytes());
        buf.extend(json);
    }
    buf
}

#[tokio::test]
async fn a_journal_an_earlier_version_wrote_is_recovered() {
    let (dir, url, store, paths) = setup().await;
    let recs = chain(3);
    let refs: Vec<&Stored> = recs.iter().collect();
    // JSON frames, then (the same journal, appended to after an
    // upgrade) binary ones.
    let mut bytes = encode_json(&refs[..2]);
    bytes.extend(encode(&refs[2..]).unwrap());
    std::fs::write(&paths[0], &bytes).unwrap();
    assert_eq!(recover_idle(&store, &url).await.unwrap(), Some(3));
    let head = store.head("gw").await.unwrap().unwrap();
    assert_eq!(head, (3, recs[2].hash.clone()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_frames_read_back_as_written() {
    let recs = chain(2);
    let mut r = crate::audit::record::tests::full();
    r.hash = r.expected_hash();
    let refs = [&recs[0], &r, &recs[1]];
    let dir = std::env::temp_dir().join(format!("pc-j-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("j.0");
    std::fs::write(&path, encode(&refs).unwrap()).unwrap();
    let back = read_records(&mut File::open(&path).unwrap(), &path).unwrap();
    assert_eq!(back, [recs[0].clone(), r, recs[1].clone()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_binary_frame_cut_or_padded_inside_its_length_cannot_be_read() {
    let r = crate::audit::record::tests::full();
    let mut frame = Vec::new();
    r.put_frame(&mut frame);
    assert!(decode(&frame).is_ok());
    for bad in [
        &frame[..frame.len() - 1],
        &frame[..1],
        &[frame.as_slice(), &[0]].concat()[..],
        &[2u8][..],
        &[][..],
    ] {
        assert!(decode(bad).is_err(), "{} bytes", bad.len());
    }
    // A length past the frame's end.
    let mut long = frame.clone();
    long[1..9].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(decode(&long).is_err());
}

#[tokio::test]
async fn a_complete_record_that_cannot_be_read_is_an_error() {
    let (dir, url, store, paths) = setup().await;
    let recs = chain(2);
    let mut bytes = encode(&[&recs[0]]).unwrap();
    bytes.extend([0, 0, 0, 2, b'{', b'x']);
    bytes.extend(encode(&[&recs[1]]).unwrap());
    std::fs::write(&paths[0], &bytes).unwrap();
    let e = recover_idle(&store, &url).await.unwrap_err().to_string();
    assert!(e.contains("cannot be read"), "{e}");
    assert!(e.contains(".audit-journal.0"), "{e}");
    assert_eq!(store.head("gw").await.unwrap(), None);
    assert_eq!(
        std::fs::metadata(&paths[0]).unwrap().len(),
        bytes.len() as u64,
        "kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_damaged_length_with_whole_records_after_it_is_refused() {
    let (dir, url, store, paths) = setup().await;
    let recs = chain(5);
    let refs: Vec<&Stored> = recs.iter().collect();
    let whole = encode(&refs).unwrap();
    let third = encode(&refs[..2]).unwrap().len();
    let fifth = encode(&refs[..4]).unwrap().len();
    // One bit of a length flipped: of record 3 (records 4 and 5
    // after it), or of the last record (whole after it).
    for at in [third, fifth] {
        let mut bytes = whole.clone();
        bytes[at] |= 0x80;
        assert!(
            read_at(&dir.join("scratch"), &bytes).is_err(),
            "length at {at}"
        );
        std::fs::write(&paths[0], &bytes).unwrap();
        let e = recover_idle(&store, &url).await.unwrap_err().to_string();
        assert!(
            e.contains(&format!("record at byte {at} cannot be read")),
            "{e}"
        );
        assert!(e.contains("a damaged length"), "{e}");
        assert_eq!(store.head("gw").await.unwrap(), None, "nothing recovered");
        assert_eq!(std::fs::read(&paths[0]).unwrap(), bytes, "kept as it was");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_record_is_recovered_only_with_the_contents_its_hash_covers() {
    let (dir, url, store, paths) = setup().await;
    let recs = chain(5);
    let refs: Vec<&Stored> = recs.iter().collect();
    store.insert(&refs[..3]).await.unwrap();
    let mut edited = recs[1].clone();
    edited.user = "mallory".into();
    // Record 2, which the store holds, edited (keeping the store's
    // hash), and record 4, which it lacks, edited.
    let mut fourth = recs[3].clone();
    fourth.body = "{\"statement\":\"select 'other'\"}".into();
    for (bytes, seq) in [
        (encode(&[&recs[0], &edited, &recs[2], &recs[3]]).unwrap(), 2),
        (encode(&[&recs[2], &fourth]).unwrap(), 4),
    ] {
        std::fs::write(&paths[0], &bytes).unwrap();
        let e = recover_idle(&store, &url).await.unwrap_err();
        assert!(
            matches!(e, JournalError::Damaged { seq: s, .. } if s == seq),
            "{e}"
        );
        assert!(
            e.to_string().contains(&format!(
                "record {seq} of instance gw does not match its hash"
            )),
            "{e}"
        );
        assert_eq!(store.head("gw").await.unwrap().unwrap().0, 3);
        assert_eq!(std::fs::read(&paths[0]).unwrap(), bytes, "kept as it was");
    }
    // A record missing between the store and the journal is named
    // with the record it does not follow.
    std::fs::write(&paths[0], encode(&[&recs[0], &recs[4]]).unwrap()).unwrap();
    let e = recover_idle(&store, &url).await.unwrap_err().to_string();
    assert!(
        e.contains("the journal's record 5 does not follow record 3"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn two_different_records_with_one_number_are_refused_and_one_twice_is_not() {
    let (dir, url, store, paths) = setup().await;
    let recs = chain(3);
    let refs: Vec<&Stored> = recs.iter().collect();
    // Another record 3, hashed after record 2 as it should be.
    let mut other = recs[2].clone();
    other.body = "{\"statement\":\"select 'other'\"}".into();
    other.hash = other.expected_hash();
    std::fs::write(&paths[0], encode(&refs).unwrap()).unwrap();
    std::fs::write(&paths[1], encode(&[&other]).unwrap()).unwrap();
    let e = recover_idle(&store, &url).await.unwrap_err().to_string();
    assert!(e.contains("two different records 3 of instance gw"), "{e}");
    assert_eq!(store.head("gw").await.unwrap(), None);
    assert!(std::fs::metadata(&paths[1]).unwrap().len() > 0, "kept");
    // The same record in both files is recovered once.
    std::fs::write(&paths[1], encode(&refs[2..]).unwrap()).unwrap();
    assert_eq!(recover_idle(&store, &url).await.unwrap(), Some(3));
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_append_is_cut_off_and_what_follows_stays_readable() {
    let dir = std::env::temp_dir().join(format!("pc-j-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = [dir.join("j.0"), dir.join("j.1")];
    let recs = chain(3);
    let (mut j, _) = Journal::open(&paths, SyncMode::Full).unwrap();
    j.append(&encode(&[&recs[0]]).unwrap(), 1, 0).unwrap();
    let one = std::fs::metadata(&paths[0]).unwrap().len();
    j.fail_after = Some(10);
    assert!(j.append(&encode(&[&recs[1]]).unwrap(), 2, 0).is_err());
    assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), one, "cut");
    assert!(!j.broken());
    j.append(&encode(&[&recs[2]]).unwrap(), 3, 0).unwrap();
    drop(j);
    let (_, held) = Journal::open(&paths, SyncMode::Full).unwrap();
    let seqs: Vec<i64> = held.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads `bytes` through `read_records`, reusing one file.
fn read_at(path: &Path, bytes: &[u8]) -> Result<Vec<Stored>, JournalError> {
    std::fs::write(path, bytes).unwrap();
    read_records(&mut File::open(path).unwrap(), path)
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pc-rv-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Records with awkward contents: escapes, control characters, multibyte
/// UTF-8, emoji, extreme integers, empty strings.
fn awkward() -> Vec<Stored> {
    let mut a = crate::audit::record::tests::full();
    a.body = "{\"s\":\"tab\\t nl\\n quote\\\" bs\\\\ \u{1} \u{1f} é 😀 \u{7f}\"}".into();
    a.user = "\u{0}\u{1}\"\\é😀".into();
    a.at_us = i64::MIN;
    a.rows_affected = i64::MAX;
    a.duration_us = -1;
    a.hash = a.expected_hash();
    let mut b = Stored::default();
    b.hash = b.expected_hash();
    let mut c = crate::audit::record::tests::full();
    c.body = "😀".repeat(300);
    c.hash = c.expected_hash();
    vec![a, b, c]
}

#[test]
fn every_cut_of_an_append_is_a_torn_write() {
    let dir = temp_dir();
    let path = dir.join("j.0");
    let mut recs = chain(2);
    recs.extend(awkward());
    let refs: Vec<&Stored> = recs.iter().collect();
    let heads: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("binary", encode(&refs[..1]).unwrap()),
        ("json", encode_json(&refs[..1])),
    ];
    let appends: Vec<(&str, Vec<u8>, Vec<usize>)> = {
        let mut v = Vec::new();
        for (what, enc) in [
            (
                "binary",
                Box::new(|r: &[&Stored]| encode(r).unwrap()) as Box<dyn Fn(&[&Stored]) -> Vec<u8>>,
            ),
            ("json", Box::new(|r: &[&Stored]| encode_json(r))),
        ] {
            let tail = &refs[1..];
            // Frame boundaries of the append.
            let mut bounds = vec![0];
            for i in 1..=tail.len() {
                bounds.push(enc(&tail[..i]).len());
            }
            v.push((what, enc(tail), bounds));
        }
        v
    };
    let mut n = 0;
    for (hw, head) in &heads {
        let head_n = if head.is_empty() { 0 } else { 1 };
        for (aw, app, bounds) in &appends {
            for cut in 0..=app.len() {
                let bytes = [&head[..], &app[..cut]].concat();
                let back = read_at(&path, &bytes).unwrap_or_else(|e| {
                    panic!("head {hw}, append {aw}, cut {cut}/{}: {e}", app.len())
                });
                let whole = bounds.iter().filter(|&&b| b > 0 && b <= cut).count();
                assert_eq!(
                    back.len(),
                    head_n + whole,
                    "head {hw}, append {aw}, cut {cut}"
                );
                n += 1;
            }
        }
    }
    assert!(n > 1000, "{n} cuts");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Any single damaged byte in a length prefix (every value), or a flipped
/// bit anywhere: read_records never returns fewer than the whole records
/// silently, and never panics.
#[test]
fn no_damaged_byte_or_bit_drops_whole_records_silently() {
    let dir = temp_dir();
    let path = dir.join("j.0");
    let mut recs = chain(3);
    recs.extend(awkward());
    let refs: Vec<&Stored> = recs.iter().collect();
    for (what, whole, lens) in [
        ("binary", encode(&refs).unwrap(), {
            (0..refs.len())
                .map(|i| encode(&refs[..i]).unwrap().len())
                .collect::<Vec<_>>()
        }),
        ("json", encode_json(&refs), {
            (0..refs.len())
                .map(|i| encode_json(&refs[..i]).len())
                .collect::<Vec<_>>()
        }),
        (
            "mixed",
            [encode_json(&refs[..3]), encode(&refs[3..]).unwrap()].concat(),
            {
                (0..refs.len())
                    .map(|i| {
                        if i <= 3 {
                            encode_json(&refs[..i]).len()
                        } else {
                            encode_json(&refs[..3]).len() + encode(&refs[3..i]).unwrap().len()
                        }
                    })
                    .collect::<Vec<_>>()
            },
        ),
    ] {
        let mut silent = Vec::new();
        let mut check = |bytes: &[u8], label: String| match read_at(&path, bytes) {
            Ok(back) if back.len() < refs.len() => silent.push((label, back.len())),
            _ => {}
        };
        // Every value of every length byte.
        for &at in &lens {
            for k in 0..4 {
                for v in 0..=255u8 {
                    let mut b = whole.clone();
                    if b[at + k] == v {
                        continue;
                    }
                    b[at + k] = v;
                    check(&b, format!("{what}: length at {at}, byte {k} = {v}"));
                }
            }
        }
        // Every bit of every byte.
        for i in 0..whole.len() {
            for bit in 0..8 {
                let mut b = whole.clone();
                b[i] ^= 1 << bit;
                check(&b, format!("{what}: byte {i} bit {bit}"));
            }
        }
        assert!(
            silent.is_empty(),
            "{what}: {} silent drops, e.g. {:?}",
            silent.len(),
            &silent[..silent.len().min(10)]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Honest journals pass the new refusals: the same record in both files
/// in both encodings, records of two instances, a record with the first
/// (legacy) hash encoding.
#[tokio::test]
async fn honest_journals_are_recovered() {
    let (dir, url, store, paths) = setup().await;
    let mut recs = chain(4);
    recs.extend(awkward().into_iter().map(|mut r| {
        r.instance = "other".into();
        r
    }));
    // chain the "other" records
    let mut prev = GENESIS.to_string();
    for (i, r) in recs[4..].iter_mut().enumerate() {
        r.seq = i as i64 + 1;
        r.prev_hash = prev.clone();
        r.hash = r.expected_hash();
        prev = r.hash.clone();
    }
    let refs: Vec<&Stored> = recs.iter().collect();
    store.insert(&refs[..1]).await.unwrap();
    std::fs::write(
        &paths[0],
        [encode_json(&refs[..3]), encode(&refs[4..6]).unwrap()].concat(),
    )
    .unwrap();
    std::fs::write(
        &paths[1],
        [
            encode(&refs[1..4]).unwrap(),
            encode_json(&refs[5..]),
            vec![0, 0],
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(recover_idle(&store, &url).await.unwrap(), Some(3 + 3));
    assert_eq!(store.head("gw").await.unwrap().unwrap().0, 4);
    assert_eq!(store.head("other").await.unwrap().unwrap().0, 3);
    let _ = std::fs::remove_dir_all(&dir);
}
