//! A node's shared secrets (#18 item 2, Serf's keyring model): it encrypts with the
//! **primary** and accepts every key it holds, so a cluster rotates without downtime —
//! install the new key everywhere, make it primary everywhere, remove the old one.
//!
//! Keys are named by their [`fingerprint`], never shown.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::proto::crypto::fingerprint;

/// Why a keyring change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No key with this fingerprint is held.
    #[error("no key with fingerprint {0} on this node")]
    Unknown(String),
    /// The primary cannot be removed: another key must be made primary first.
    #[error("key {0} is the primary: make another key primary (`keys use`) before removing it")]
    Primary(String),
    /// An empty key would authenticate anybody.
    #[error("an empty key is not a key")]
    Empty,
}

/// The keys of one node, the primary first. Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Keyring {
    /// Fingerprints only: a keyring in a log must not leak its keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| fingerprint(k)))
            .finish()
    }
}

impl Keyring {
    /// A keyring of `keys`, the first the primary; `Err` when there is none or one is empty.
    pub fn new(keys: Vec<Vec<u8>>) -> Result<Self, KeyringError> {
        if keys.is_empty() || keys.iter().any(Vec::is_empty) {
            return Err(KeyringError::Empty);
        }
        let mut unique: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        Ok(Keyring { keys: unique })
    }

    /// A keyring of one key (panics on an empty one: for tests and literals).
    pub fn single(key: &[u8]) -> Self {
        Keyring::new(vec![key.to_vec()]).expect("a non-empty key")
    }

    /// The key everything is encrypted with.
    pub fn primary(&self) -> &[u8] {
        &self.keys[0]
    }

    /// Every key, the primary first: what is accepted.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// Fingerprints, the primary first.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| fingerprint(k)).collect()
    }

    fn position(&self, fp: &str) -> Result<usize, KeyringError> {
        self.keys
            .iter()
            .position(|k| fingerprint(k) == fp)
            .ok_or_else(|| KeyringError::Unknown(fp.to_string()))
    }

    /// Adds `key` (accepted from now on, not yet used); `false` if it was already held.
    pub fn install(&mut self, key: &[u8]) -> Result<bool, KeyringError> {
        if key.is_empty() {
            return Err(KeyringError::Empty);
        }
        if self.keys.iter().any(|k| k == key) {
            return Ok(false);
        }
        self.keys.push(key.to_vec());
        Ok(true)
    }

    /// Makes the key with fingerprint `fp` the primary; `false` if it already was.
    pub fn use_key(&mut self, fp: &str) -> Result<bool, KeyringError> {
        let i = self.position(fp)?;
        let k = self.keys.remove(i);
        self.keys.insert(0, k);
        Ok(i != 0)
    }

    /// Removes the key with fingerprint `fp` (not the primary); `false` if it was not held.
    pub fn remove(&mut self, fp: &str) -> Result<bool, KeyringError> {
        match self.position(fp) {
            Ok(0) => Err(KeyringError::Primary(fp.to_string())),
            Ok(i) => {
                self.keys.remove(i);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }
}

/// A keyring shared by a node's tasks: a change is seen by the next handshake or datagram.
/// Readers take a snapshot (an `Arc`), so a change never waits on a slow reader.
#[derive(Clone, Debug)]
pub struct SharedKeyring(Arc<RwLock<Arc<Keyring>>>);

impl SharedKeyring {
    /// Shares `ring`.
    pub fn new(ring: Keyring) -> Self {
        SharedKeyring(Arc::new(RwLock::new(Arc::new(ring))))
    }

    /// The keyring as it is now.
    pub fn get(&self) -> Arc<Keyring> {
        self.0.read().clone()
    }

    /// Applies `f` to the keyring (all or nothing: a failed change leaves it as it was).
    pub fn change<R, E>(&self, f: impl FnOnce(&mut Keyring) -> Result<R, E>) -> Result<R, E> {
        let mut guard = self.0.write();
        let mut next = Keyring::clone(&guard);
        let r = f(&mut next)?;
        *guard = Arc::new(next);
        Ok(r)
    }
}

/// Whether `s` reads as a fingerprint (16 lowercase hex digits) rather than a file name.
pub fn is_fingerprint(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_install_use_remove() {
        let (a, b) = (b"key a".as_slice(), b"key b".as_slice());
        let (fa, fb) = (fingerprint(a), fingerprint(b));
        let mut r = Keyring::single(a);
        assert_eq!(r.install(b), Ok(true));
        assert_eq!(r.install(b), Ok(false), "installing twice changes nothing");
        assert_eq!(r.primary(), a, "installing does not change the primary");
        assert_eq!(r.remove(&fa), Err(KeyringError::Primary(fa.clone())));
        assert_eq!(r.use_key(&fb), Ok(true));
        assert_eq!(r.use_key(&fb), Ok(false));
        assert_eq!((r.primary(), r.keys().len()), (b, 2));
        assert_eq!(r.remove(&fa), Ok(true));
        assert_eq!(r.remove(&fa), Ok(false), "removing twice is no error");
        assert_eq!(r.fingerprints(), vec![fb]);
        let e = r.use_key(&fa).unwrap_err();
        assert!(e.to_string().starts_with("no key with fingerprint"), "{e}");
    }

    #[test]
    fn empty_keys_and_duplicates() {
        assert_eq!(Keyring::new(vec![]), Err(KeyringError::Empty));
        assert_eq!(Keyring::new(vec![vec![]]), Err(KeyringError::Empty));
        let r = Keyring::new(vec![b"a".to_vec(), b"b".to_vec(), b"a".to_vec()]).unwrap();
        assert_eq!(r.keys().len(), 2);
        assert_eq!(Keyring::single(b"a").install(b""), Err(KeyringError::Empty));
    }

    #[test]
    fn debug_shows_fingerprints_not_keys() {
        let text = format!("{:?}", Keyring::single(b"hunter2"));
        assert!(!text.contains("hunter2") && text.contains(&fingerprint(b"hunter2")));
    }

    #[test]
    fn fingerprints_are_told_from_file_names() {
        assert!(is_fingerprint(&fingerprint(b"x")));
        assert!(!is_fingerprint("keys/new.key"));
        assert!(!is_fingerprint("0123456789ABCDEF"));
    }
}
