//! Secrets at rest: the master key (the binary's `master_key` setting, base64 of 32 bytes)
//! and the sealed form of every stored secret. A sealed value is text,
//! `hk1:<key id>:<base64(nonce ‖ ciphertext)>`: ChaCha20-Poly1305 with a random 96-bit nonce
//! per value and the owning row named in the associated data, so a blob copied onto another
//! row does not open. The key id (8 hex digits derived from the key) says which key sealed a
//! value, so `hangar keys rotate` and a [`Keyring`] holding the old key beside the new one
//! can move secrets from one key to the next without downtime.
//!
//! This module never reads the environment: the binary resolves the key (flag or env, or the
//! SQLite key file) and hands a [`Keyring`] down. Errors name the secret (its owner), never
//! its value.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

/// The version prefix of sealed values.
const PREFIX: &str = "hk1";

/// What can go wrong with keys and sealed secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A key that is not base64 of exactly 32 bytes.
    #[error(
        "{source_name}: not a master key (expected base64 of 32 bytes, as `hangar keys generate` prints)"
    )]
    BadKey {
        /// Where the key came from (the `master_key` setting's layer, a file path…).
        source_name: String,
    },
    /// The sealed value was made with a key this process does not hold.
    #[error(
        "cannot decrypt {what}: it was sealed with master key {key_id}, and this process holds {held}; give this process that key (or list it after the current one: NEW,OLD)"
    )]
    UnknownKey {
        /// The secret's owner, e.g. `alert channel ach_…`.
        what: String,
        /// The key id in the sealed value.
        key_id: String,
        /// The key ids this process holds.
        held: String,
    },
    /// The key id matched but the value does not open: corrupted, or moved to another row.
    #[error("cannot decrypt {what}: the sealed value is corrupt or belongs to another row")]
    Corrupt {
        /// The secret's owner.
        what: String,
    },
    /// The key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// One 32-byte master key with its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself.
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> MasterKey {
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        MasterKey::from_bytes(key.into())
    }

    /// Parses base64 of 32 bytes; `source_name` names where it came from in the error.
    pub fn parse(text: &str, source_name: &str) -> Result<MasterKey, SecretError> {
        let bad = || SecretError::BadKey {
            source_name: source_name.to_owned(),
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(MasterKey::from_bytes(key))
    }

    fn from_bytes(key: [u8; 32]) -> MasterKey {
        let digest = Sha256::new()
            .chain_update(b"hangar master key id\0")
            .chain_update(key)
            .finalize();
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey { id, key }
    }

    /// The key's id (8 hex digits; safe to log).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as base64, the form the `master_key` setting takes (print it only on request).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(self.key))
    }
}

/// The keys of this process: the first seals, every one opens (old keys stay listed during a
/// rotation).
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(current: MasterKey) -> Keyring {
        Keyring {
            keys: vec![current],
        }
    }

    /// A keyring from `NEW[,OLD…]` (the form of the `master_key` setting).
    pub fn parse(text: &str, source_name: &str) -> Result<Keyring, SecretError> {
        let keys = text
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| MasterKey::parse(k, source_name))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretError::BadKey {
                source_name: source_name.to_owned(),
            });
        }
        Ok(Keyring { keys })
    }

    /// The key that seals new values.
    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// Adds a key that only opens values (an older key).
    pub fn with_old(mut self, old: MasterKey) -> Keyring {
        if !self.keys.iter().any(|k| k.id == old.id) {
            self.keys.push(old);
        }
        self
    }

    /// The ids of the held keys, comma-separated.
    pub fn ids(&self) -> String {
        self.keys
            .iter()
            .map(|k| k.id.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Seals `plaintext` for the row named by `aad` (e.g. `hangar_alert_channels:ach_…`).
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let key = self.current();
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and nonce cannot fail for inputs below 256 GiB.
        let sealed = key
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}:{}:{}", key.id, STANDARD.encode(blob))
    }

    /// Opens a value sealed for `aad`; `what` names the secret's owner in errors.
    pub fn open(&self, sealed: &str, aad: &str, what: &str) -> Result<Vec<u8>, SecretError> {
        let corrupt = || SecretError::Corrupt {
            what: what.to_owned(),
        };
        let mut parts = sealed.splitn(3, ':');
        let (Some(PREFIX), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt());
        };
        let key =
            self.keys
                .iter()
                .find(|k| k.id == key_id)
                .ok_or_else(|| SecretError::UnknownKey {
                    what: what.to_owned(),
                    key_id: key_id.to_owned(),
                    held: self.ids(),
                })?;
        let blob = STANDARD.decode(data).map_err(|_| corrupt())?;
        if blob.len() < 12 + 16 {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = blob.split_at(12);
        key.cipher()
            .decrypt(
                &nonce_of(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| corrupt())
    }

    /// The keys as the key file holds them, `NEW,OLD…` in base64 (write it only to the file).
    fn to_key_file_text(&self) -> String {
        self.keys
            .iter()
            .map(MasterKey::to_base64)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The key id a sealed value names, if it is one.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, ':');
        (parts.next() == Some(PREFIX))
            .then(|| parts.next())
            .flatten()
    }
}

fn nonce_of(bytes: &[u8]) -> Nonce {
    let mut nonce = Nonce::default();
    nonce.copy_from_slice(bytes);
    nonce
}

/// Reads the local key file (`NEW[,OLD…]`, as the `master_key` setting), or creates it (mode
/// 0600) with a new key; true when this call created it. For the embedded SQLite default
/// only: PostgreSQL deployments pass the key in the `master_key` setting.
///
/// Processes that start at once on a fresh folder agree on one key: the new file is written
/// under a name of this process's own and then hard-linked to `path`, which fails if the file
/// exists, so exactly one creator wins and the others read the winner's complete file.
pub fn load_or_create_key_file(path: &Path) -> Result<(Keyring, bool), SecretError> {
    let file_error = |source| SecretError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    let read = || -> Result<Option<Keyring>, SecretError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Keyring::parse(&text, &path.display().to_string())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_error(e)),
        }
    };
    if let Some(ring) = read()? {
        return Ok((ring, false));
    }
    let ring = Keyring::new(MasterKey::generate());
    let tmp = private_tmp(path);
    write_private(&tmp, &ring.to_key_file_text()).map_err(file_error)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((ring, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read()?
            .map(|ring| (ring, false))
            .ok_or_else(|| file_error(e)),
        Err(e) => Err(file_error(e)),
    }
}

/// Replaces the key file with `ring` (`NEW,OLD…`: the first seals, every one opens), atomically.
pub fn replace_key_file(path: &Path, ring: &Keyring) -> Result<(), SecretError> {
    let tmp = private_tmp(path);
    write_private(&tmp, &ring.to_key_file_text())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SecretError::KeyFile {
                path: path.display().to_string(),
                source,
            }
        })
}

/// A temporary name next to `path` that no other process uses.
fn private_tmp(path: &Path) -> std::path::PathBuf {
    let mut nonce = [0u8; 8];
    OsRng.fill_bytes(&mut nonce);
    let suffix: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.{suffix}.tmp", std::process::id()));
    name.into()
}

/// Writes `text` to a new file `path` with mode 0600 and syncs it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let ring = Keyring::new(MasterKey::generate());
        let sealed = ring.seal(b"hunter2", "t:1");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(ring.open(&sealed, "t:1", "x").unwrap(), b"hunter2");
        assert!(matches!(
            ring.open(&sealed, "t:2", "x"),
            Err(SecretError::Corrupt { .. })
        ));
        // Two seals of the same value differ (random nonce).
        assert_ne!(sealed, ring.seal(b"hunter2", "t:1"));
    }

    #[test]
    fn wrong_key_names_the_secret_and_the_key() {
        let a = Keyring::new(MasterKey::generate());
        let b = Keyring::new(MasterKey::generate());
        let sealed = a.seal(b"secret", "t:1");
        let error = b.open(&sealed, "t:1", "alert channel ach_1").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("alert channel ach_1"), "{text}");
        assert!(text.contains(a.current().id()), "{text}");
        assert!(!text.contains("secret"), "{text}");
        // With the old key listed after the new one, it opens.
        let both = b.with_old(a.current().clone());
        assert_eq!(both.open(&sealed, "t:1", "x").unwrap(), b"secret");
    }

    #[test]
    fn racing_creators_of_the_key_file_agree_on_one_key() {
        let dir = std::env::temp_dir().join(format!("hangar-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hangar.db.key");
        let _ = std::fs::remove_file(&path);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    load_or_create_key_file(&path).unwrap()
                })
            })
            .collect();
        let results: Vec<(Keyring, bool)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        let ids: std::collections::HashSet<String> =
            results.iter().map(|(ring, _)| ring.ids()).collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        // Rotation writes NEW,OLD: both open.
        let old = results[0].0.clone();
        let sealed = old.seal(b"x", "t:1");
        let rotated = Keyring::new(MasterKey::generate()).with_old(old.current().clone());
        replace_key_file(&path, &rotated).unwrap();
        let (read, created) = load_or_create_key_file(&path).unwrap();
        assert!(!created);
        assert_eq!(read.ids(), rotated.ids());
        assert_eq!(read.open(&sealed, "t:1", "x").unwrap(), b"x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_parsing() {
        let key = MasterKey::generate();
        let parsed = MasterKey::parse(&key.to_base64(), "env").unwrap();
        assert_eq!(parsed.id(), key.id());
        assert!(MasterKey::parse("c2hvcnQ=", "master_key").is_err());
        assert!(format!("{key:?}").contains(key.id()));
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}
