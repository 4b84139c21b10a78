//! The strict-mode journal of a SQLite store: two append-only files beside
//! the database (`<db>.audit-journal.0` and `.1`). In `strict` mode the
//! writer appends each group of chained records to the journal (one
//! `write`, plus `fdatasync` with `audit.sync = full`) and lets the clients
//! go on; the store's commit follows in the background, in larger batches,
//! as in `batched` mode. A record is durable once it is in the journal or
//! in the store.
//!
//! The writer holds an exclusive lock on both files. When the current file
//! has grown past [`ROTATE_BYTES`], appends move to the other file once
//! every record in it is in the store (it is then emptied), so the journal
//! stays small under a constant load. After a crash, [`recover`] moves the
//! records the store lacks into it: the gateway does so at start, and the
//! `portcullis audit` commands do so when no gateway holds the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::config::SyncMode;
use super::record::{Stored, GENESIS};
use super::store::{Store, StoreError};

/// Appends move to the other file once the current one is this long.
pub const ROTATE_BYTES: u64 = 4 << 20;

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing a journal file.
    #[error("audit journal {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the journal.
    #[error("audit journal {path} is locked by another process (another gateway using this SQLite store?); give each gateway its own store, or use PostgreSQL to share one")]
    Locked {
        /// File.
        path: String,
    },
    /// A complete record that cannot be read.
    #[error("audit journal {path}: the record at byte {offset} cannot be read ({why}); look at the file before deleting it")]
    Corrupt {
        /// File.
        path: String,
        /// Where.
        offset: usize,
        /// Why.
        why: String,
    },
    /// The journal holds a record the store holds with other contents.
    #[error("audit journal {path}: record {seq} of instance {instance} differs from the store's record {seq}; look at the files before deleting them")]
    Differs {
        /// First file.
        path: String,
        /// Instance.
        instance: String,
        /// The record.
        seq: i64,
    },
    /// The journal's records do not continue the store's chain.
    #[error("audit journal {path}: its records do not continue the store's chain for instance {instance} (the store ends at record {head}; the journal's record {next} does not follow it); look at the files before deleting them")]
    Gap {
        /// First file.
        path: String,
        /// Instance.
        instance: String,
        /// The store's last record.
        head: i64,
        /// The journal's record that does not link.
        next: i64,
    },
    /// Writing the recovered records.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The journal's files for the SQLite store at `url` (none for PostgreSQL).
pub fn paths_for(url: &str) -> Option<[PathBuf; 2]> {
    let file = crate::secrets::sqlite_file(url)?;
    Some([0, 1].map(|i| PathBuf::from(format!("{file}.audit-journal.{i}"))))
}

/// One journal file.
struct Part {
    file: File,
    len: u64,
    /// The last record appended since the file was emptied (0: none).
    last_seq: i64,
}

impl Part {
    /// Opens and locks a journal file; returns it with its records.
    fn open(path: &Path) -> Result<(Self, Vec<Stored>), JournalError> {
        let mut file = open_part(path)?;
        try_lock(&file, path)?;
        let held = read_records(&mut file, path)?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let last_seq = held.iter().map(|r| r.seq).max().unwrap_or(0);
        Ok((
            Self {
                file,
                len,
                last_seq,
            },
            held,
        ))
    }
}

/// The writer's open, locked journal.
pub struct Journal {
    parts: [Part; 2],
    current: usize,
    sync: bool,
    /// A failed append could not be cut off: the file must not be
    /// appended to again.
    broken: bool,
    name: String,
    /// Tests: the next append writes this many bytes, then fails.
    #[cfg(test)]
    pub(crate) fail_after: Option<usize>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Opens (creating, mode 0600: records hold statements and rows) a
/// journal file.
fn open_part(path: &Path) -> Result<File, JournalError> {
    let mut o = OpenOptions::new();
    o.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map_err(io_err(path))
}

/// Takes the file's lock without waiting.
fn try_lock(file: &File, path: &Path) -> Result<(), JournalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(JournalError::Locked {
            path: path.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(io_err(path)(e)),
    }
}

/// The records in a journal file, in order. An incomplete last record
/// (a write cut short by a crash; a failed append is cut off at once)
/// ends them; a complete record that cannot be read is an error.
fn read_records(file: &mut File, path: &Path) -> Result<Vec<Stored>, JournalError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while let Some((len, body)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(frame) = body.get(..len) else { break };
        let r = decode(frame).map_err(|why| JournalError::Corrupt {
            path: path.display().to_string(),
            offset: bytes.len() - rest.len(),
            why,
        })?;
        out.push(r);
        rest = &body[len..];
    }
    if !rest.is_empty() {
        tracing::warn!(path = %path.display(), bytes = rest.len(), "audit journal ends in an incomplete record (a write cut short); it was never acknowledged and is ignored");
    }
    Ok(out)
}

/// Frames `records` for the journal: each as its length (4 bytes,
/// big-endian) and its binary frame ([`Stored::put_frame`]: the columns
/// as the chain hash encodes them, no escaping).
pub fn encode(records: &[&Stored]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(records.len() * 640);
    for r in records {
        let at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        r.put_frame(&mut buf);
        let len = (buf.len() - at - 4) as u32;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    buf
}

/// One record's frame: binary, or JSON (what gateways before 2026-11-27
/// wrote; a journal left by one of them is still recovered).
fn decode(frame: &[u8]) -> Result<Stored, String> {
    match frame.first() {
        Some(b'{') => serde_json::from_slice(frame).map_err(|e| e.to_string()),
        _ => Stored::from_frame(frame),
    }
}

impl Journal {
    /// Opens and locks the journal at `paths` ([`JournalError::Locked`]
    /// if another process holds it); returns it with the records it
    /// holds, oldest first.
    pub fn open(paths: &[PathBuf; 2], sync: SyncMode) -> Result<(Self, Vec<Stored>), JournalError> {
        let (a, mut records) = Part::open(&paths[0])?;
        let (b, more) = Part::open(&paths[1])?;
        records.extend(more);
        let journal = Self {
            parts: [a, b],
            current: 0,
            sync: sync == SyncMode::Full,
            broken: false,
            name: paths[0].display().to_string(),
            #[cfg(test)]
            fail_after: None,
        };
        if journal.sync {
            // The files' names are on disk too.
            if let Some(dir) = paths[0].parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err(dir))?;
            }
        }
        Ok((journal, records))
    }

    /// Empties both files (after [`recover`] put their records in the
    /// store).
    pub fn clear(&mut self) -> Result<(), JournalError> {
        for p in &mut self.parts {
            p.file.set_len(0).map_err(|source| JournalError::Io {
                path: self.name.clone(),
                source,
            })?;
            p.len = 0;
            p.last_seq = 0;
        }
        Ok(())
    }

    /// Appends framed records (see [`encode`]) whose last sequence number
    /// is `last_seq`; `committed` is the store's last committed record, so
    /// the other file may be reused once the current one is long.
    /// Returns when the bytes are written (and, with `sync = full`, on
    /// disk). A failed append is cut off the file, so what follows it
    /// stays readable; if even that fails, the journal is
    /// [`Journal::broken`].
    pub fn append(&mut self, buf: &[u8], last_seq: i64, committed: i64) -> std::io::Result<()> {
        if self.parts[self.current].len >= ROTATE_BYTES {
            let other = 1 - self.current;
            if self.parts[other].last_seq <= committed {
                self.parts[other].file.set_len(0)?;
                self.parts[other].len = 0;
                self.parts[other].last_seq = 0;
                self.current = other;
            }
        }
        let sync = self.sync;
        #[cfg(test)]
        let buf = match self.fail_after.take() {
            Some(n) => {
                let p = &mut self.parts[self.current];
                let _ = p.file.write_all(&buf[..n.min(buf.len())]);
                let e = Err(std::io::Error::other("injected failure"));
                return self.cut(e);
            }
            None => buf,
        };
        let p = &mut self.parts[self.current];
        let written = p.file.write_all(buf).and_then(|()| match sync {
            true => p.file.sync_data(),
            false => Ok(()),
        });
        if written.is_ok() {
            p.len += buf.len() as u64;
            p.last_seq = last_seq;
        }
        self.cut(written)
    }

    /// After a failed append: cuts what it wrote off the current file.
    fn cut(&mut self, written: std::io::Result<()>) -> std::io::Result<()> {
        if written.is_err() {
            let p = &mut self.parts[self.current];
            if p.file.set_len(p.len).is_err() {
                self.broken = true;
            }
        }
        written
    }

    /// Whether a failed append could not be cut off (see
    /// [`Journal::append`]).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Whether appends wait for the disk (`sync = full`).
    pub fn syncs(&self) -> bool {
        self.sync
    }

    /// The first file's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Puts the records of `records` that `store` lacks into it, checking that
/// they continue each instance's chain; returns how many. Records the
/// store already holds are skipped.
pub async fn recover(
    store: &Store,
    name: &str,
    mut records: Vec<Stored>,
) -> Result<usize, JournalError> {
    records.sort_by(|a, b| (&a.instance, a.seq).cmp(&(&b.instance, b.seq)));
    records.dedup_by(|a, b| a.instance == b.instance && a.seq == b.seq);
    let mut added = 0;
    let mut rest = &records[..];
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .position(|r| r.instance != first.instance)
            .unwrap_or(rest.len());
        let (mine, tail) = rest.split_at(n);
        rest = tail;
        let (mut seq, mut hash) = store
            .head(&first.instance)
            .await?
            .unwrap_or_else(|| (0, GENESIS.to_string()));
        let head = seq;
        // Records the store already has must be the same records.
        if let Some(low) = mine.first().map(|r| r.seq).filter(|&s| s <= head) {
            let stored = store.hashes(&first.instance, low, head).await?;
            for r in mine.iter().take_while(|r| r.seq <= head) {
                if stored.get(&r.seq).is_some_and(|h| *h != r.hash) {
                    return Err(JournalError::Differs {
                        path: name.to_string(),
                        instance: first.instance.clone(),
                        seq: r.seq,
                    });
                }
            }
        }
        let missing: Vec<&Stored> = mine.iter().filter(|r| r.seq > head).collect();
        for r in &missing {
            if r.seq != seq + 1 || r.prev_hash != hash || !r.hash_matches() {
                return Err(JournalError::Gap {
                    path: name.to_string(),
                    instance: first.instance.clone(),
                    head,
                    next: r.seq,
                });
            }
            seq = r.seq;
            hash.clone_from(&r.hash);
        }
        for chunk in missing.chunks(1000) {
            store.insert(chunk).await?;
        }
        added += missing.len();
    }
    Ok(added)
}

/// For readers (`portcullis audit ...`): when no gateway holds the
/// journal of the SQLite store at `url`, moves its records into `store`
/// and empties it. Returns how many records it moved (`None`: no journal,
/// or a gateway holds it and will do so itself).
pub async fn recover_idle(store: &Store, url: &str) -> Result<Option<usize>, JournalError> {
    let Some(paths) = paths_for(url) else {
        return Ok(None);
    };
    let mut records = Vec::new();
    let mut files = Vec::new();
    for path in &paths {
        if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
            continue;
        }
        let mut file = open_part(path)?;
        match try_lock(&file, path) {
            Ok(()) => {}
            Err(JournalError::Locked { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        records.extend(read_records(&mut file, path)?);
        files.push((file, path));
    }
    if files.is_empty() {
        return Ok(None);
    }
    let n = recover(store, &paths[0].display().to_string(), records).await?;
    for (file, path) in files {
        file.set_len(0).map_err(io_err(path))?;
    }
    Ok(Some(n))
}

#[cfg(test)]
impl Journal {
    /// A journal over `file` (both parts), e.g. `/dev/full`.
    pub(crate) fn over(file: File) -> Self {
        let part = |file| Part {
            file,
            len: 0,
            last_seq: 0,
        };
        let other = file.try_clone().expect("clone");
        Self {
            parts: [part(file), part(other)],
            current: 0,
            sync: false,
            broken: false,
            name: "test journal".into(),
            fail_after: None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::store::tests::temp_sqlite;

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
        j.append(&encode(&refs[1..3]), 3, 0).unwrap();
        j.parts[0].len = ROTATE_BYTES; // as if long: the next append rotates
        j.append(&encode(&refs[3..]), 5, 0).unwrap();
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
        j.append(&encode(&refs[1..]), 4, 0).unwrap();
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
        j.append(&encode(&refs[..1]), 1, 0).unwrap();
        j.parts[0].len = ROTATE_BYTES;
        j.append(&encode(&refs[1..2]), 2, 0).unwrap();
        assert_eq!(j.current, 1);
        j.parts[1].len = ROTATE_BYTES;
        j.append(&encode(&refs[2..3]), 3, 0).unwrap();
        assert_eq!(j.current, 1, "file 0's record 1 is not committed yet");
        let last = encode(&refs[3..]);
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
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
        let paths = paths_for(&url).unwrap();
        let recs = chain(3);
        let refs: Vec<&Stored> = recs.iter().collect();
        // JSON frames, then (the same journal, appended to after an
        // upgrade) binary ones.
        let mut bytes = encode_json(&refs[..2]);
        bytes.extend(encode(&refs[2..]));
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
        std::fs::write(&path, encode(&refs)).unwrap();
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
        let (dir, url) = temp_sqlite();
        let store = Store::open_writer(&url, SyncMode::Full).await.unwrap();
        let paths = paths_for(&url).unwrap();
        let recs = chain(2);
        let mut bytes = encode(&[&recs[0]]);
        bytes.extend([0, 0, 0, 2, b'{', b'x']);
        bytes.extend(encode(&[&recs[1]]));
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

    #[test]
    fn a_failed_append_is_cut_off_and_what_follows_stays_readable() {
        let dir = std::env::temp_dir().join(format!("pc-j-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = [dir.join("j.0"), dir.join("j.1")];
        let recs = chain(3);
        let (mut j, _) = Journal::open(&paths, SyncMode::Full).unwrap();
        j.append(&encode(&[&recs[0]]), 1, 0).unwrap();
        let one = std::fs::metadata(&paths[0]).unwrap().len();
        j.fail_after = Some(10);
        assert!(j.append(&encode(&[&recs[1]]), 2, 0).is_err());
        assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), one, "cut");
        assert!(!j.broken());
        j.append(&encode(&[&recs[2]]), 3, 0).unwrap();
        drop(j);
        let (_, held) = Journal::open(&paths, SyncMode::Full).unwrap();
        let seqs: Vec<i64> = held.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
