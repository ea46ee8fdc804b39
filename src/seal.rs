//! Sealing the WhatsApp session token with AES-256-GCM.
//!
//! Token format (documented in `docs/redis-schema.md`): `v1.` followed by
//! unpadded URL-safe base64 of `nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//! The associated data is the Redis key name (`SESSION:{userId}`), so a token
//! copied to another user's key does not open.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use thiserror::Error;

/// Version prefix of every sealed token.
const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What can go wrong with keys and tokens. No variant carries key or token bytes.
#[derive(Debug, Error)]
pub enum SealError {
    /// The key text is not 32 bytes of base64.
    #[error("the session key from {source_name} is not 32 bytes of base64 (44 characters)")]
    BadKey {
        /// Where the key came from (variable or file path).
        source_name: String,
    },
    /// The key file is readable by others.
    #[error("the session key file {path} is readable by other users: run `chmod 600 {path}`")]
    OpenPermissions {
        /// The key file.
        path: String,
    },
    /// Reading or creating the key file failed.
    #[error("cannot use the session key file {path}: {error}")]
    KeyFile {
        /// The key file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The token is not in the `v1.` format.
    #[error("the session token is not a v1 sealed token")]
    Format,
    /// Wrong key, tampered token, or a token moved from another key name.
    #[error(
        "the session token does not open with this key (wrong SECONDME_SESSION_KEY or key file, or the token was altered or moved)"
    )]
    Open,
    /// Encryption failed (should not happen with a valid key).
    #[error("sealing the session token failed")]
    Seal,
}

/// A 256-bit AES key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A key for another purpose derived from this one (HMAC-SHA256 of `label`),
    /// so one secret serves both without one use revealing the other.
    pub fn subkey(&self, label: &str) -> [u8; 32] {
        use hmac::{KeyInit as _, Mac};
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        Self(key.into())
    }

    /// Parses base64 key text; `source_name` names where it came from in errors.
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, SealError> {
        let bad = || SealError::BadKey {
            source_name: source_name.to_owned(),
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Self(arr))
    }

    /// The key from `env_value` if given, else from `path`, creating the file (mode 0600).
    pub fn load(env_value: Option<&str>, path: &Path) -> Result<Self, SealError> {
        if let Some(text) = env_value {
            return Self::from_base64(text, "SECONDME_SESSION_KEY");
        }
        let shown = path.display().to_string();
        let io_err = |error| SealError::KeyFile {
            path: shown.clone(),
            error,
        };
        match fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(SealError::OpenPermissions { path: shown });
                }
                let text = fs::read_to_string(path).map_err(io_err)?;
                Self::from_base64(&text, &shown)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::create_file(path).map_err(io_err)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn create_file(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            crate::private_file::create_dir(dir)?;
        }
        let key = Self::generate();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        writeln!(file, "{}", STANDARD.encode(key.0))?;
        Ok(key)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

/// Seals `plain` for the key name `aad` with a fresh random nonce.
pub fn seal(key: &SessionKey, plain: &[u8], aad: &str) -> Result<String, SealError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SealError::Seal)?;
    let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&ct);
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(blob)))
}

/// Opens a token sealed by [`seal`] for the same key name.
pub fn open(key: &SessionKey, token: &str, aad: &str) -> Result<Vec<u8>, SealError> {
    let body = token.strip_prefix(PREFIX).ok_or(SealError::Format)?;
    let blob = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SealError::Format)?;
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::Format);
    }
    let (nonce, ct) = blob.split_at(NONCE_LEN);
    key.cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonce() {
        let key = SessionKey::generate();
        let a = seal(&key, b"wa-session", "SESSION:u1").expect("seal");
        let b = seal(&key, b"wa-session", "SESSION:u1").expect("seal");
        assert_ne!(a, b, "each seal uses a new nonce");
        assert_eq!(open(&key, &a, "SESSION:u1").expect("open"), b"wa-session");
    }

    #[test]
    fn wrong_key_tamper_and_moved_token_fail() {
        let key = SessionKey::generate();
        let token = seal(&key, b"secret", "SESSION:u1").expect("seal");
        assert!(matches!(
            open(&SessionKey::generate(), &token, "SESSION:u1"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            open(&key, &token, "SESSION:u2"),
            Err(SealError::Open)
        ));
        // Flip one ciphertext bit (not a base64 character, whose low bits may be padding).
        let mut blob = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(PREFIX).expect("prefix"))
            .expect("base64");
        blob[NONCE_LEN] ^= 1;
        let tampered = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(blob));
        assert!(matches!(
            open(&key, &tampered, "SESSION:u1"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            open(&key, "plain", "SESSION:u1"),
            Err(SealError::Format)
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("secondme-seal-{}", std::process::id()));
        let path = dir.join("session.key");
        let _ = fs::remove_dir_all(&dir);
        let k1 = SessionKey::load(None, &path).expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(
            dir_mode, 0o700,
            "the directory made for the key is private too"
        );
        let k2 = SessionKey::load(None, &path).expect("reuse");
        let token = seal(&k1, b"x", "a").expect("seal");
        assert_eq!(open(&k2, &token, "a").expect("same key"), b"x");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            SessionKey::load(None, &path),
            Err(SealError::OpenPermissions { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
        assert!(format!("{k1:?}").contains(".."));
    }

    #[test]
    fn bad_env_key_is_named() {
        let err = SessionKey::from_base64("short", "SECONDME_SESSION_KEY").expect_err("bad");
        assert!(err.to_string().contains("SECONDME_SESSION_KEY"));
    }
}
