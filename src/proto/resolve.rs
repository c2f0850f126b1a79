//! Who answers a call (DESIGN §7), as a pure function of what the caller knows: the
//! providers of a function with their resources, visibility, distance and load.
//!
//! The runtime gathers [`Provider`]s from the local registry, its connections and the member
//! directory; this module filters them ([`qualifies`]), picks one ([`choose`]) and, when none
//! qualifies, says why ([`explain`]). Randomness and the round-robin counter are passed in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::function::{FnSpec, Visibility};
use crate::proto::catalog::{admits, Relation};

/// How far from the caller a call may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only in the calling process.
    Node,
    /// Only on the caller's host.
    Host,
    /// Anywhere in the cluster.
    #[default]
    Network,
}

impl Scope {
    /// Whether a provider in `relation` to the caller is inside this scope.
    pub fn contains(self, relation: Relation) -> bool {
        match self {
            Scope::Network => true,
            Scope::Host => relation != Relation::OtherHost,
            Scope::Node => relation == Relation::SameNode,
        }
    }
}

/// How to choose among the qualifying providers of the nearest unsaturated tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Power of two choices on calls in flight.
    #[default]
    LeastLoaded,
    /// Uniformly at random.
    Random,
    /// In turn, in name order.
    RoundRobin,
}

/// Restricts candidates to one host or one node (`mpreg::on_host("lab-pc")`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Perspective {
    /// No restriction.
    #[default]
    Any,
    /// Only nodes whose host id is this.
    Host(String),
    /// Only the node with this name.
    Node(String),
}

/// Everything about a call that decides who may answer it besides the function name. It
/// travels with forwarded calls so the forwarding node resolves with the caller's rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Route {
    /// Resources the provider must offer (MPREG `locs`).
    #[serde(default)]
    pub locs: Vec<String>,
    /// How far the call may travel.
    #[serde(default)]
    pub scope: Scope,
    /// Host or node restriction.
    #[serde(default)]
    pub perspective: Perspective,
    /// Choice among candidates.
    #[serde(default)]
    pub policy: Policy,
}

macro_rules! text_enum {
    ($ty:ty, $what:literal, $($name:literal => $v:expr),+) => {
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($v),)+
                    other => Err(format!(
                        concat!("unknown ", $what, " `{}` (expected one of: {})"),
                        other,
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                $(if *self == $v { return f.write_str($name); })+
                Ok(())
            }
        }
    };
}

text_enum!(Scope, "scope", "node" => Scope::Node, "host" => Scope::Host, "network" => Scope::Network);
text_enum!(Policy, "policy", "least_loaded" => Policy::LeastLoaded, "random" => Policy::Random,
    "round_robin" => Policy::RoundRobin);

/// One node that serves the function, as the choosing node sees it.
#[derive(Debug, Clone)]
pub struct Provider<'a> {
    /// Node name (unique in the cluster).
    pub name: &'a str,
    /// Host id of the node.
    pub host: &'a str,
    /// Distance from the choosing node: the tier it belongs to.
    pub tier: Relation,
    /// Resources of the node.
    pub resources: &'a [String],
    /// The node's description of the function.
    pub spec: &'a FnSpec,
    /// Calls the choosing node has in flight with it.
    pub in_flight: usize,
}

impl Provider<'_> {
    /// Whether the node offers every one of `locs`, through its own or the function's
    /// resources.
    pub fn offers(&self, locs: &[String]) -> bool {
        locs.iter()
            .all(|l| self.resources.contains(l) || self.spec.resources.contains(l))
    }

    /// Its resource set as shown in errors: node and function resources, sorted.
    pub fn resource_set(&self) -> Vec<String> {
        let mut set: Vec<String> = self
            .resources
            .iter()
            .chain(&self.spec.resources)
            .cloned()
            .collect();
        set.sort();
        set.dedup();
        set
    }
}

/// A call to resolve.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Function name.
    pub fun: &'a str,
    /// Locs, scope, perspective and policy.
    pub route: &'a Route,
    /// Host of the original caller when the choosing node forwards for another node; `None`
    /// when the choosing node is the caller.
    pub origin_host: Option<&'a str>,
}

impl Query<'_> {
    /// Where `p` stands relative to the original caller: the tier itself for our own calls,
    /// else same host or other host of the forwarded-for caller (never the same node).
    pub fn relation(&self, p: &Provider<'_>) -> Relation {
        match self.origin_host {
            None => p.tier,
            Some(h) => Relation::of_peer(h, p.host),
        }
    }
}

/// Why a provider does not qualify, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Another function.
    Function,
    /// Its visibility does not admit the caller.
    Visibility,
    /// Outside the call's scope.
    Scope,
    /// Not the host or node the perspective names.
    Perspective,
    /// Lacks some of the locs.
    Resources,
}

/// Checks one provider against the query.
pub fn check(q: &Query<'_>, p: &Provider<'_>) -> Result<(), Mismatch> {
    let relation = q.relation(p);
    if p.spec.name != q.fun {
        return Err(Mismatch::Function);
    }
    if !admits(p.spec.visibility, relation) {
        return Err(Mismatch::Visibility);
    }
    if !q.route.scope.contains(relation) {
        return Err(Mismatch::Scope);
    }
    let in_view = match &q.route.perspective {
        Perspective::Any => true,
        Perspective::Host(h) => p.host == h,
        Perspective::Node(n) => p.name == n,
    };
    if !in_view {
        return Err(Mismatch::Perspective);
    }
    if !p.offers(&q.route.locs) {
        return Err(Mismatch::Resources);
    }
    Ok(())
}

/// Whether `p` may answer the query: serves the function, its visibility admits the caller,
/// inside the scope and the perspective, and offers every loc.
pub fn qualifies(q: &Query<'_>, p: &Provider<'_>) -> bool {
    check(q, p).is_ok()
}

/// Inputs of a choice that are not about the providers.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    /// A provider with this many calls in flight counts as saturated: the next tier is tried.
    pub spill_at: usize,
    /// Round-robin counter value for this call (the runtime increments it per function).
    pub turn: u64,
}

/// Picks among `candidates` (all qualifying): nearest tier first; inside it the policy among
/// the unsaturated providers; if every provider of every tier is saturated, the policy among
/// the least loaded tier-by-tier. `rand(n)` returns a uniform index below `n`.
/// Returns an index into `candidates`, `None` if it is empty.
pub fn choose(
    candidates: &[Provider<'_>],
    policy: Policy,
    choice: Choice,
    rand: &mut dyn FnMut(usize) -> usize,
) -> Option<usize> {
    let open = |p: &Provider<'_>| p.in_flight < choice.spill_at;
    let nearest = [Relation::SameNode, Relation::SameHost, Relation::OtherHost]
        .into_iter()
        .find(|&t| candidates.iter().any(|p| p.tier == t && open(p)));
    if let Some(tier) = nearest {
        let among: Vec<usize> = (0..candidates.len())
            .filter(|&i| candidates[i].tier == tier && open(&candidates[i]))
            .collect();
        return Some(pick(candidates, &among, policy, choice.turn, rand));
    }
    // Everyone is saturated: queueing at the least loaded provider beats failing; the
    // busy limit of the provider still bounds it.
    let all: Vec<usize> = (0..candidates.len()).collect();
    (!all.is_empty()).then(|| pick(candidates, &all, policy, choice.turn, rand))
}

fn pick(
    c: &[Provider<'_>],
    among: &[usize],
    policy: Policy,
    turn: u64,
    rand: &mut dyn FnMut(usize) -> usize,
) -> usize {
    if among.len() == 1 {
        return among[0];
    }
    match policy {
        Policy::Random => among[rand(among.len())],
        Policy::RoundRobin => {
            let mut by_name = among.to_vec();
            by_name.sort_by_key(|&i| c[i].name);
            by_name[(turn % by_name.len() as u64) as usize]
        }
        Policy::LeastLoaded => {
            // Power of two choices: two distinct random providers, the less loaded wins.
            let a = rand(among.len());
            let b = (a + 1 + rand(among.len() - 1)) % among.len();
            let (a, b) = (among[a], among[b]);
            if c[b].in_flight < c[a].in_flight {
                b
            } else {
                a
            }
        }
    }
}

/// The sentence after "no provider of `fun` …": what the cluster does offer, given every
/// provider of the function the choosing node knows (qualifying or not).
pub fn explain(q: &Query<'_>, providers: &[Provider<'_>]) -> String {
    let of_fun: Vec<&Provider<'_>> = providers.iter().filter(|p| p.spec.name == q.fun).collect();
    let listed = |ps: &[&Provider<'_>]| -> String {
        let mut v: Vec<String> = ps
            .iter()
            .map(|p| {
                format!(
                    "`{}` on host `{}` with [{}]",
                    p.name,
                    p.host,
                    p.resource_set().join(", ")
                )
            })
            .collect();
        v.sort();
        v.dedup();
        v.join("; ")
    };
    let first_failing = |m: Mismatch| -> Vec<&Provider<'_>> {
        of_fun
            .iter()
            .copied()
            .filter(|p| check(q, p) == Err(m))
            .collect()
    };
    let hidden = first_failing(Mismatch::Visibility);
    let out_of_scope = first_failing(Mismatch::Scope);
    let elsewhere = first_failing(Mismatch::Perspective);
    let lacking = first_failing(Mismatch::Resources);
    let mut parts = Vec::new();
    if !lacking.is_empty() {
        parts.push(format!("resource sets that serve it: {}", listed(&lacking)));
    }
    if !elsewhere.is_empty() {
        parts.push(format!(
            "outside the {} it is served by {}",
            perspective_text(&q.route.perspective),
            listed(&elsewhere)
        ));
    }
    if !out_of_scope.is_empty() {
        parts.push(format!(
            "outside {} scope it is served by {}",
            q.route.scope,
            listed(&out_of_scope)
        ));
    }
    if !hidden.is_empty() {
        let vis: Vec<Visibility> = hidden.iter().map(|p| p.spec.visibility).collect();
        parts.push(format!(
            "{} serves it {}-visible only",
            listed(&hidden),
            vis[0]
        ));
    }
    parts.join("; ")
}

fn perspective_text(p: &Perspective) -> String {
    match p {
        Perspective::Any => "cluster".into(),
        Perspective::Host(h) => format!("host `{h}`"),
        Perspective::Node(n) => format!("node `{n}`"),
    }
}

#[cfg(test)]
#[path = "resolve/tests.rs"]
mod tests;
