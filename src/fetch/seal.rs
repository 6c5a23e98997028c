//! The per-user key that signs state files (`NAME.part.state`, see
//! `store`), so that a later run trusts only a state this user's trident
//! wrote.
//!
//! A state file says how many bytes of `NAME.part` may be kept. A digest
//! of the part file alone would not make that claim checkable: whoever
//! plants both files (a server once could, by naming its files so; anyone
//! who can write the download directory still can) computes the digest of
//! their own bytes. A keyed MAC (HMAC-SHA256, `ring`) cannot be made
//! without the key, which lives outside every download directory:
//! `$XDG_STATE_HOME/trident/state.key`, else
//! `$HOME/.local/state/trident/state.key`, 32 random bytes (hex), mode
//! 0600 in a 0700 directory, created on first use (written to a temporary
//! name, then linked: concurrent first runs agree on one key).
//!
//! A key file that is not a regular file owned by this user, is readable
//! by others, or cannot be read or created is not used: the process then
//! signs with a random key of its own, so its states resume within the run
//! but no later run trusts them (a download then starts over, which is
//! always safe).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of a key.
const KEY_BYTES: usize = 32;

/// A signing key.
pub struct Key(hmac::Key);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from its bytes.
    fn from_bytes(bytes: &[u8]) -> Self {
        Key(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// A new random key (`None`: the system has no randomness to give).
    pub fn random() -> Option<Self> {
        random_bytes().map(|b| Key::from_bytes(&b))
    }

    /// The MAC of `data`, in hex.
    pub fn sign(&self, data: &[u8]) -> String {
        hex(hmac::sign(&self.0, data).as_ref())
    }

    /// Whether `mac` (hex) is the MAC of `data` (compared in constant time).
    pub fn verify(&self, data: &[u8], mac: &str) -> bool {
        unhex(mac).is_some_and(|tag| hmac::verify(&self.0, data, &tag).is_ok())
    }

    /// The key stored at `path`, created there if there is none.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match read_key(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_key(path)?;
                read_key(path)
            }
            other => other,
        }
    }
}

/// The key of this user (see the module docs), loaded once per process;
/// `None` only without any randomness for a fallback key.
pub fn key() -> Option<&'static Key> {
    static KEY: OnceLock<Option<Key>> = OnceLock::new();
    KEY.get_or_init(|| key_path().and_then(|p| Key::load_or_create(&p).ok()).or_else(Key::random)).as_ref()
}

/// Where this user's key is kept (`None`: no `$XDG_STATE_HOME`, no `$HOME`).
fn key_path() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = std::env::var_os("XDG_STATE_HOME")
        .and_then(absolute)
        .or_else(|| std::env::var_os("HOME").and_then(absolute).map(|h| h.join(".local/state")))?;
    Some(base.join("trident").join("state.key"))
}

fn random_bytes() -> Option<[u8; KEY_BYTES]> {
    let mut bytes = [0u8; KEY_BYTES];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes)
}

/// Reads a key file: a regular file (not a symlink) of this user, private
/// to them, holding the key in hex.
fn read_key(path: &Path) -> io::Result<Key> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path)?;
    let meta = file.metadata()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "key file not private to this user"));
    }
    let mut text = String::new();
    file.take(4 * KEY_BYTES as u64).read_to_string(&mut text)?;
    let bytes = unhex(text.trim()).filter(|b| b.len() == KEY_BYTES);
    bytes.map(|b| Key::from_bytes(&b)).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a key"))
}

/// Creates the key file: written in full under a temporary name, then
/// linked to `path` (which fails if another process made one first: that
/// one is used).
fn create_key(path: &Path) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no directory"))?;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let bytes = random_bytes().ok_or_else(|| io::Error::other("no randomness"))?;
    let tmp = dir.join(format!(".state.key.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(hex(&bytes).as_bytes())?;
        f.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })();
    let _ = fs::remove_file(&tmp);
    written
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_created_once_private_and_then_reused() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("a/trident/state.key");
        let k1 = Key::load_or_create(&path).expect("created");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().expect("dir"))), (0o600, 0o700));
        let k2 = Key::load_or_create(&path).expect("loaded");
        let mac = k1.sign(b"state");
        assert!(k2.verify(b"state", &mac), "the same key");
        assert!(!k2.verify(b"other", &mac) && !k2.verify(b"state", "00") && !k2.verify(b"state", "zz"));
        assert!(!Key::random().expect("random").verify(b"state", &mac), "another key");
        assert_eq!(fs::read_dir(path.parent().expect("dir")).expect("dir").count(), 1, "no temporary left");
    }

    #[test]
    fn a_key_file_others_can_read_or_a_symlink_is_not_used() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("state.key");
        fs::write(&path, hex(&[7; KEY_BYTES])).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(Key::load_or_create(&path).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(Key::load_or_create(&path).is_ok());
        let link = d.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        assert!(Key::load_or_create(&link).is_err());
        fs::write(&path, "short").expect("write");
        assert!(Key::load_or_create(&path).is_err());
    }
}
