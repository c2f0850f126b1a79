//! Key rotation through the cluster itself (issue #18 item 2, Serf's keyring model).
//!
//! Every listening node with a shared secret offers four built-ins over its (encrypted)
//! connections: `_keys` lists its keys by fingerprint, `_keys_install`, `_keys_use` and
//! `_keys_remove` change its keyring. [`install`], [`use_key`], [`remove`] and [`list`]
//! call them on every member at once (`mpreg keys ...`). A rotation from key A to key B:
//!
//! 1. `install B` — every node accepts B too, still sends with A;
//! 2. `use B` — every node sends with B (all accept it already);
//! 3. `remove A` — nobody accepts A: a process that knows only A is refused.
//!
//! Connections already open stay open (their keys came from their own key exchange); only
//! new connections and datagrams use the keyring. Only a caller that holds a key of the
//! cluster can call these at all (the connection itself needs one). With a secret file, a
//! node writes its keyring back to it (one key per line, the primary first), so a restart
//! keeps the rotation.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::function::Function;
use crate::proto::keyring::{Keyring, KeyringError};
use crate::runtime::Shared;
use crate::{Error, Node, Result};

/// `_keys()`: this node's keys ([`NodeKey`]s, the primary first).
pub(crate) const LIST: &str = "_keys";
/// `_keys_install(key)`: accepts `key` from now on; `true` if it was new.
pub(crate) const INSTALL: &str = "_keys_install";
/// `_keys_use(fingerprint)`: makes that key the primary; `true` if it was not.
pub(crate) const USE: &str = "_keys_use";
/// `_keys_remove(fingerprint)`: stops accepting that key; `true` if it was held.
pub(crate) const REMOVE: &str = "_keys_remove";

/// Whether `name` is one of the keyring built-ins.
pub(crate) fn is_keys(name: &str) -> bool {
    matches!(name, LIST | INSTALL | USE | REMOVE)
}

/// One key of one node, as `_keys` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKey {
    /// The key's fingerprint (never the key).
    pub fingerprint: String,
    /// Whether the node encrypts with it.
    pub primary: bool,
}

/// One key across the cluster, as [`list`] gathers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterKey {
    /// The key's fingerprint (never the key).
    pub fingerprint: String,
    /// Whether every node holding it encrypts with it.
    pub primary: bool,
    /// Nodes holding it, by name.
    pub nodes: Vec<String>,
    /// Nodes encrypting with it (all of `nodes` once a rotation is done).
    pub primary_on: Vec<String>,
}

/// The built-ins of a node with a secret (none without one: there is no keyring).
pub(crate) fn functions(shared: &Arc<Shared>) -> Vec<Function> {
    if shared.secret.is_none() {
        return Vec::new();
    }
    let w = Arc::downgrade(shared);
    let (w1, w2, w3) = (w.clone(), w.clone(), w.clone());
    vec![
        Function::try_new(
            LIST,
            move |(): ()| -> std::result::Result<Vec<NodeKey>, String> {
                let ring = ring_of(&w)?.get();
                Ok(ring
                    .fingerprints()
                    .into_iter()
                    .enumerate()
                    .map(|(i, fingerprint)| NodeKey {
                        fingerprint,
                        primary: i == 0,
                    })
                    .collect())
            },
        )
        .params(Vec::<&str>::new())
        .idempotent(true),
        Function::try_new(INSTALL, move |(key,): (ByteBuf,)| {
            change(&w1, "installed", |r| r.install(&key))
        })
        .params(["key: bytes"])
        .idempotent(true),
        Function::try_new(USE, move |(fp,): (String,)| {
            change(&w2, "made primary", |r| r.use_key(&fp))
        })
        .params(["fingerprint: str"])
        .idempotent(true),
        Function::try_new(REMOVE, move |(fp,): (String,)| {
            change(&w3, "removed", |r| r.remove(&fp))
        })
        .params(["fingerprint: str"])
        .idempotent(true),
    ]
}

fn ring_of(w: &Weak<Shared>) -> std::result::Result<crate::proto::keyring::SharedKeyring, String> {
    let s = w.upgrade().ok_or("the node is shutting down")?;
    s.secret
        .clone()
        .ok_or_else(|| "this node has no shared secret".into())
}

/// Applies `f` to the node's keyring, logs it, and writes the keyring back to the secret
/// file.
fn change(
    w: &Weak<Shared>,
    what: &str,
    f: impl FnOnce(&mut Keyring) -> std::result::Result<bool, KeyringError>,
) -> std::result::Result<bool, String> {
    let s = w.upgrade().ok_or("the node is shutting down")?;
    let keys = s.secret.clone().ok_or("this node has no shared secret")?;
    let changed = keys.change(f).map_err(|e| e.to_string())?;
    let ring = keys.get();
    if changed {
        tracing::info!(keys = ?ring, "keyring changed: key {what}");
        // The mDNS advert's MAC follows the primary.
        if let Some(d) = s.discovery.get() {
            d.readvertise();
        }
        if let Some(path) = &s.config.secret_file {
            if let Err(e) = save(path, &ring) {
                tracing::warn!(file = %path.display(), error = %e,
                    "keyring changed but not saved: a restart would bring back the old keys");
            }
        }
    }
    Ok(changed)
}

/// Writes `ring` to `path`, one key per line, the primary first: through a new file renamed
/// over the old one (readable by its owner only), so a crash never leaves half a keyring.
fn save(path: &std::path::Path, ring: &Keyring) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    for k in ring.keys() {
        f.write_all(k)?;
        f.write_all(b"\n")?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Each member's answer to a keyring change, by node name: `Ok(true)` changed, `Ok(false)`
/// nothing to do, `Err` why not.
pub type Changes = BTreeMap<String, Result<bool>>;

/// Installs `key` on every member (accepted from now on, not yet used to send).
pub async fn install(node: &Node, key: &[u8]) -> Result<Changes> {
    if key.is_empty() {
        return Err(Error::Config("an empty key is not a key".into()));
    }
    node.call_all(INSTALL, (ByteBuf::from(key.to_vec()),)).await
}

/// Makes the key with `fingerprint` the primary on every member.
pub async fn use_key(node: &Node, fingerprint: &str) -> Result<Changes> {
    node.call_all(USE, (fingerprint,)).await
}

/// Removes the key with `fingerprint` from every member.
pub async fn remove(node: &Node, fingerprint: &str) -> Result<Changes> {
    node.call_all(REMOVE, (fingerprint,)).await
}

/// Every key held in the cluster with the nodes holding it, and the members that did not
/// answer (with why).
pub async fn list(node: &Node) -> Result<(Vec<ClusterKey>, BTreeMap<String, Error>)> {
    let answers: BTreeMap<String, Result<Vec<NodeKey>>> = node.call_all(LIST, ()).await?;
    let mut keys: Vec<ClusterKey> = Vec::new();
    let mut failed = BTreeMap::new();
    for (name, answer) in answers {
        let held = match answer {
            Ok(h) => h,
            Err(e) => {
                failed.insert(name, e);
                continue;
            }
        };
        for k in held {
            let i = match keys.iter().position(|c| c.fingerprint == k.fingerprint) {
                Some(i) => i,
                None => {
                    keys.push(ClusterKey {
                        fingerprint: k.fingerprint.clone(),
                        primary: false,
                        nodes: Vec::new(),
                        primary_on: Vec::new(),
                    });
                    keys.len() - 1
                }
            };
            keys[i].nodes.push(name.clone());
            if k.primary {
                keys[i].primary_on.push(name.clone());
            }
        }
    }
    for k in &mut keys {
        k.primary = k.primary_on.len() == k.nodes.len();
    }
    // The primary first, then by how many hold it.
    keys.sort_by(|a, b| {
        (b.primary_on.len(), b.nodes.len(), &a.fingerprint).cmp(&(
            a.primary_on.len(),
            a.nodes.len(),
            &b.fingerprint,
        ))
    });
    Ok((keys, failed))
}
