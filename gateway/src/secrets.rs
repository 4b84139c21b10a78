//! Secret files the gateway creates for itself (signing keys, tokens):
//! read when present, otherwise created with mode 0600 — never replaced.

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
}
