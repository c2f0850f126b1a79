//! Who serves what: a node's own catalog, the copies it holds of its peers' catalogs, and
//! the pure rules for what a peer may see and which names look alike.

use std::collections::HashMap;
use std::sync::Arc;

use crate::function::{FnSpec, Visibility};
use crate::proto::wire::{CatalogMsg, SubSpec};

/// Where a caller stands relative to a provider, for visibility checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The same node (process).
    SameNode,
    /// Another node on the same host.
    SameHost,
    /// A node on another host.
    OtherHost,
}

impl Relation {
    /// Relation of a peer with `peer_host` to a node on `my_host`.
    pub fn of_peer(my_host: &str, peer_host: &str) -> Self {
        if my_host == peer_host {
            Relation::SameHost
        } else {
            Relation::OtherHost
        }
    }
}

/// Whether a function of `visibility` may be called by a caller in `relation`.
pub fn admits(visibility: Visibility, relation: Relation) -> bool {
    match visibility {
        Visibility::Network => true,
        Visibility::Host => relation != Relation::OtherHost,
        Visibility::Node => relation == Relation::SameNode,
    }
}

/// The part of `functions` a peer in `relation` may see, with every subscription, as a
/// catalog message. (Subscriptions have no visibility: a publisher's scope decides.)
pub fn view_for(
    version: u64,
    functions: &[FnSpec],
    subscriptions: &[SubSpec],
    relation: Relation,
) -> CatalogMsg {
    CatalogMsg {
        version,
        functions: functions
            .iter()
            .filter(|f| admits(f.visibility, relation))
            .cloned()
            .collect(),
        subscriptions: subscriptions.to_vec(),
    }
}

/// A peer's catalog as last received, indexed by function name.
#[derive(Debug, Clone, Default)]
pub struct PeerCatalog {
    /// Version of the copy held.
    pub version: u64,
    functions: HashMap<String, Arc<FnSpec>>,
    subscriptions: Vec<SubSpec>,
}

impl PeerCatalog {
    /// Replaces the copy if `msg` is newer; returns whether it changed.
    pub fn update(&mut self, msg: CatalogMsg) -> bool {
        if msg.version < self.version {
            return false;
        }
        self.version = msg.version;
        self.functions = msg
            .functions
            .into_iter()
            .map(|f| (f.name.clone(), Arc::new(f)))
            .collect();
        self.subscriptions = msg.subscriptions;
        true
    }
    /// The peer's topic subscriptions.
    pub fn subscriptions(&self) -> &[SubSpec] {
        &self.subscriptions
    }
    /// The peer's description of `fun`, if it serves it.
    pub fn get(&self, fun: &str) -> Option<&FnSpec> {
        self.functions.get(fun).map(|f| &**f)
    }
    /// A shared handle on the peer's description of `fun` (cheap to keep past the lock).
    pub fn spec(&self, fun: &str) -> Option<Arc<FnSpec>> {
        self.functions.get(fun).cloned()
    }
    /// Names of all functions the peer serves.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
    /// All functions the peer serves.
    pub fn functions(&self) -> impl Iterator<Item = &FnSpec> {
        self.functions.values().map(|f| &**f)
    }
}

/// Levenshtein distance, for "did you mean" hints; small inputs only.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Up to five names from `known` that look like `wanted` (edit distance at most a third of
/// the length, or a shared prefix/substring), closest first, without duplicates.
pub fn close_names<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let limit = (wanted.chars().count() / 3).max(2);
    let lw = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = known
        .into_iter()
        .filter_map(|k| {
            let d = distance(&lw, &k.to_lowercase());
            let related = k.to_lowercase().contains(&lw) || lw.contains(&k.to_lowercase());
            (d <= limit || related).then_some((d, k))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(5)
        .map(|(_, k)| k.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, v: Visibility) -> FnSpec {
        FnSpec {
            name: name.into(),
            params: None,
            resources: vec![],
            visibility: v,
            idempotent: false,
        }
    }

    #[test]
    fn visibility_rules() {
        assert!(admits(Visibility::Network, Relation::OtherHost));
        assert!(admits(Visibility::Host, Relation::SameHost));
        assert!(!admits(Visibility::Host, Relation::OtherHost));
        assert!(admits(Visibility::Node, Relation::SameNode));
        assert!(!admits(Visibility::Node, Relation::SameHost));
    }

    #[test]
    fn views_filter_by_relation() {
        let fns = vec![
            spec("a", Visibility::Network),
            spec("b", Visibility::Host),
            spec("c", Visibility::Node),
        ];
        let names = |r| {
            view_for(1, &fns, &[], r)
                .functions
                .into_iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Relation::OtherHost), vec!["a"]);
        assert_eq!(names(Relation::SameHost), vec!["a", "b"]);
    }

    #[test]
    fn older_catalogs_are_ignored() {
        let mut c = PeerCatalog::default();
        assert!(c.update(CatalogMsg {
            version: 2,
            functions: vec![spec("a", Visibility::Network)],
            subscriptions: vec![]
        }));
        assert!(!c.update(CatalogMsg {
            version: 1,
            functions: vec![],
            subscriptions: vec![]
        }));
        assert!(c.get("a").is_some());
    }

    #[test]
    fn close_names_suggest_typos() {
        let known = ["echo", "echos", "train", "predict"];
        assert_eq!(close_names("ecoh", known), vec!["echo", "echos"]);
        assert_eq!(close_names("tran", known), vec!["train"]);
        assert!(close_names("zzzzzz", known).is_empty());
    }
}
