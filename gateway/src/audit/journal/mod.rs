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
    /// The journal holds two different records with one number.
    #[error("audit journal {path}: it holds two different records {seq} of instance {instance}; look at the files before deleting them")]
    Forked {
        /// First file.
        path: String,
        /// Instance.
        instance: String,
        /// The record.
        seq: i64,
    },
    /// A record whose contents do not match its hash.
    #[error("audit journal {path}: record {seq} of instance {instance} does not match its hash (edited or damaged); look at the files before deleting them")]
    Damaged {
        /// First file.
        path: String,
        /// Instance.
        instance: String,
        /// The record.
        seq: i64,
    },
    /// The journal's records do not continue the store's chain.
    #[error("audit journal {path}: its records do not continue the store's chain for instance {instance} (the store ends at record {head}; the journal's record {next} does not follow record {after}); look at the files before deleting them")]
    Gap {
        /// First file.
        path: String,
        /// Instance.
        instance: String,
        /// The store's last record.
        head: i64,
        /// The record the chain had reached (the store's, or the
        /// journal's before `next`).
        after: i64,
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
/// ends them; a complete record that cannot be read is an error, and so
/// is a length that runs past the end of the file over bytes that are
/// not the beginning of a record (a damaged length, with whole records
/// after it).
fn read_records(file: &mut File, path: &Path) -> Result<Vec<Stored>, JournalError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while let Some((len, body)) = rest.split_first_chunk::<4>() {
        let corrupt = |why: String| JournalError::Corrupt {
            path: path.display().to_string(),
            offset: bytes.len() - rest.len(),
            why,
        };
        let len = u32::from_be_bytes(*len) as usize;
        let Some(frame) = body.get(..len) else {
            if is_cut_short(body) {
                break;
            }
            return Err(corrupt(format!(
                "its length ({len} bytes) runs past the end of the file, and the {} bytes after it are not the beginning of a record: a damaged length, with records after it",
                body.len()
            )));
        };
        let r = decode(frame).map_err(corrupt)?;
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
/// as the chain hash encodes them, no escaping). A record whose frame is
/// longer than a length can say (4 GiB) is an error.
pub fn encode(records: &[&Stored]) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(records.len() * 640);
    for r in records {
        let at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        r.put_frame(&mut buf);
        let len = u32::try_from(buf.len() - at - 4).map_err(|_| {
            std::io::Error::other(format!(
                "record {} is too large for a journal frame (over 4 GiB)",
                r.seq
            ))
        })?;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(buf)
}

/// Whether `bytes`, fewer than their length says, are the beginning of
/// one record's frame (what a write cut short by a crash leaves).
fn is_cut_short(bytes: &[u8]) -> bool {
    match bytes.first() {
        Some(b'{') => serde_json::from_slice::<Stored>(bytes).is_err_and(|e| e.is_eof()),
        _ => Stored::is_cut_frame(bytes),
    }
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
    // A record may be in it twice; two different records with one
    // number are refused.
    if let Some(w) = records
        .windows(2)
        .find(|w| w[0].instance == w[1].instance && w[0].seq == w[1].seq && w[0] != w[1])
    {
        return Err(JournalError::Forked {
            path: name.to_string(),
            instance: w[0].instance.clone(),
            seq: w[0].seq,
        });
    }
    records.dedup();
    // Each record's contents are the ones its hash covers (so one the
    // store holds under the same hash is the same record).
    if let Some(r) = records.iter().find(|r| !r.hash_matches()) {
        return Err(JournalError::Damaged {
            path: name.to_string(),
            instance: r.instance.clone(),
            seq: r.seq,
        });
    }
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
            if r.seq != seq + 1 || r.prev_hash != hash {
                return Err(JournalError::Gap {
                    path: name.to_string(),
                    instance: first.instance.clone(),
                    head,
                    after: seq,
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
pub(crate) mod tests;
