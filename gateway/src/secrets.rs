//! Secret files the gateway creates for itself (signing keys, tokens):
//! read when present, otherwise created with mode 0600 — never replaced.
//! SQLite stores (audit records, approval requests) are created private
//! the same way.

use std::io::Write as _;
use std::path::Path;

/// The trimmed content of `path`; when it does not exist, `make()` is
/// written there (mode 0600, failing if another process created it
/// meanwhile) and returned.
pub fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => return Ok(s.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let value = make();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(value.as_bytes())?;
    Ok(value)
}

/// Creates the file of a `sqlite://FILE[?options]` URL, empty and with
/// mode 0600, when it does not exist yet, so that SQLite (which would
/// create it 0644, and its `-wal` and `-shm` files with the same mode)
/// opens a private file. An existing file is left as it is, with a
/// warning if other users may read it; other URLs (PostgreSQL, in-memory
/// SQLite) are ignored.
pub fn create_private_sqlite(url: &str) -> std::io::Result<()> {
    if let Some((file, mode)) = sqlite_file_readable_by_others(url) {
        tracing::warn!(file = %file, mode = format_args!("{mode:o}"), "this SQLite store is readable by other users; `chmod 600` it (and its -wal and -shm files)");
    }
    create_sqlite_file(url)
}

/// The file of a `sqlite://` URL and its mode, when it exists and its
/// group or others may read it.
fn sqlite_file_readable_by_others(url: &str) -> Option<(String, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = sqlite_file(url)?;
        let mode = std::fs::metadata(file).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| (file.to_string(), mode))
    }
    #[cfg(not(unix))]
    {
        let _ = url;
        None
    }
}

/// The file of a `sqlite://FILE[?options]` URL (none for other URLs and
/// in-memory databases).
pub fn sqlite_file(url: &str) -> Option<&str> {
    let file = url.strip_prefix("sqlite://")?.split('?').next()?;
    (!file.is_empty() && !file.starts_with(':') && !file.starts_with("file:")).then_some(file)
}

fn create_sqlite_file(url: &str) -> std::io::Result<()> {
    let Some(file) = sqlite_file(url) else {
        return Ok(());
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn created_once_private_then_read() {
        let dir = std::env::temp_dir().join(format!("pc-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k");
        assert_eq!(
            super::read_or_create(&f, || "one\n".into()).unwrap(),
            "one\n"
        );
        assert_eq!(super::read_or_create(&f, || "two".into()).unwrap(), "one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&f).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[cfg(unix)]
    #[test]
    fn sqlite_files_are_created_private_and_existing_ones_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pc-sqlite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mode = |f: &std::path::Path| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        let new = dir.join("new.db");
        super::create_private_sqlite(&format!("sqlite://{}?mode=rwc", new.display())).unwrap();
        assert_eq!(mode(&new), 0o600);
        assert_eq!(
            super::sqlite_file_readable_by_others(&format!("sqlite://{}", new.display())),
            None
        );
        assert_eq!(std::fs::metadata(&new).unwrap().len(), 0);
        let old = dir.join("old.db");
        std::fs::write(&old, b"kept").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
        let url = format!("sqlite://{}", old.display());
        assert_eq!(
            super::sqlite_file_readable_by_others(&url),
            Some((old.display().to_string(), 0o640)),
            "warned about"
        );
        super::create_private_sqlite(&url).unwrap();
        assert_eq!(mode(&old), 0o640);
        assert_eq!(std::fs::read(&old).unwrap(), b"kept");
        for url in [
            "sqlite://:memory:",
            "postgres://h/db",
            "sqlite://file:x?mode=memory",
        ] {
            super::create_private_sqlite(url).unwrap();
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
