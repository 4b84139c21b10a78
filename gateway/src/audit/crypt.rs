//! Encryption at rest of record bodies (statement text, parameters, rows):
//! AES-256-GCM with a random 96-bit nonce per record; the record's key id
//! (first 8 bytes of SHA-256 of the key, hex) is stored beside it so old
//! records stay readable after the key is rotated. Metadata columns stay
//! in the clear and queryable. The chain hash covers the sealed form, so
//! verifying needs no key.

use std::path::Path;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Digest;

/// Errors of sealing and opening.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// A key file is unusable.
    #[error("audit key file {path}: {why}")]
    KeyFile {
        /// File.
        path: String,
        /// Reason.
        why: String,
    },
    /// No key with this id was configured.
    #[error("record sealed with key {0}, which is not configured (audit.decryption_key_files)")]
    UnknownKey(String),
    /// The ciphertext does not open (wrong key or tampered).
    #[error("record body does not decrypt (tampered, or a different key with the same id)")]
    Open,
}

/// One AES-256 key.
pub struct Key {
    /// Its id.
    pub id: String,
    key: LessSafeKey,
}

impl Key {
    /// A key from 32 raw bytes.
    pub fn from_bytes(raw: &[u8]) -> Option<Self> {
        let unbound = UnboundKey::new(&AES_256_GCM, raw).ok()?;
        Some(Self {
            id: hex::encode(&sha2::Sha256::digest(raw)[..8]),
            key: LessSafeKey::new(unbound),
        })
    }

    /// Reads a key file: base64 of 32 random bytes (`openssl rand -base64
    /// 32`).
    pub fn from_file(path: &Path) -> Result<Self, CryptError> {
        let text = std::fs::read_to_string(path).map_err(|e| CryptError::KeyFile {
            path: path.display().to_string(),
            why: e.kind().to_string(),
        })?;
        Self::from_base64(&text, &path.display().to_string())
    }

    /// A key from base64 text; `source` names where it came from in errors.
    pub fn from_base64(text: &str, source: &str) -> Result<Self, CryptError> {
        let err = |why: &str| CryptError::KeyFile {
            path: source.to_string(),
            why: why.to_string(),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| err("not base64"))?;
        if raw.len() != 32 {
            return Err(err(
                "must hold 32 bytes (base64), e.g. `openssl rand -base64 32`",
            ));
        }
        Self::from_bytes(&raw).ok_or_else(|| err("not an AES-256 key"))
    }

    /// Seals `plain`: base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        let _ = SystemRandom::new().fill(&mut nonce);
        let mut buf = plain.to_vec();
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.id.as_bytes()),
                &mut buf,
            )
            .is_err()
        {
            return String::new();
        }
        let mut out = nonce.to_vec();
        out.extend(buf);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// Opens what [`Key::seal`] produced.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| CryptError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(CryptError::Open);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptError::Open)?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(self.id.as_bytes()), &mut buf)
            .map_err(|_| CryptError::Open)?;
        Ok(plain.to_vec())
    }
}

/// The current key (sealing) and older ones (opening).
#[derive(Default)]
pub struct Keys {
    /// Seals new records; None: bodies are stored as plain JSON.
    pub current: Option<Key>,
    /// Open older records.
    pub old: Vec<Key>,
}

impl Keys {
    /// The body as JSON text: opened with the key named `key_id` ("" means
    /// not sealed).
    pub fn open(&self, key_id: &str, body: &str) -> Result<String, CryptError> {
        if key_id.is_empty() {
            return Ok(body.to_string());
        }
        let key = self
            .current
            .iter()
            .chain(self.old.iter())
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptError::UnknownKey(key_id.to_string()))?;
        String::from_utf8(key.open(body)?).map_err(|_| CryptError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bodies_open_only_with_their_key() {
        let k = Key::from_bytes(&[7u8; 32]).unwrap();
        let sealed = k.seal(b"{\"statement\":\"select secret\"}");
        assert!(!sealed.contains("secret"));
        assert_ne!(
            sealed,
            k.seal(b"{\"statement\":\"select secret\"}"),
            "fresh nonce"
        );
        let keys = Keys {
            current: Some(Key::from_bytes(&[9u8; 32]).unwrap()),
            old: vec![k],
        };
        let id = keys.old[0].id.clone();
        assert_eq!(
            keys.open(&id, &sealed).unwrap(),
            "{\"statement\":\"select secret\"}"
        );
        let mut tampered = sealed.into_bytes();
        let n = tampered.len() - 3;
        tampered[n] = if tampered[n] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(keys.open(&id, &tampered), Err(CryptError::Open)));
        assert!(matches!(
            keys.open("nope", "x"),
            Err(CryptError::UnknownKey(_))
        ));
        assert_eq!(keys.open("", "{}").unwrap(), "{}");
    }
}
