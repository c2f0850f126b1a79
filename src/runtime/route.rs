//! Resolution in the runtime (DESIGN §7): gather the providers of a function from the
//! registry, the connections and the member directory; let `proto::resolve` choose; reach
//! the choice in this process, over its connection, by dialing it, or through a node that
//! can reach it (forwarding). Idempotent functions are retried after a lost node.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::function::{FnSpec, Function};
use crate::proto::catalog::{close_names, Relation};
use crate::proto::resolve::{self, Choice, Perspective, Policy, Provider, Query, Route};
use crate::proto::wire::{Call, FailureKind};
use crate::runtime::connection::{Relay, NOT_SENT};
use crate::runtime::{dispatch, Connection, Shared};

/// Other providers tried after a node was lost in the middle of an idempotent call (the
/// call may have run there: each retry may run it once more). Attempts that never reached
/// a provider are not counted: they end when no candidate is left.
const MAX_RETRIES: usize = 3;

/// Longest a call that found no provider waits for connections being opened.
const SETTLE_FOR: Duration = Duration::from_secs(1);

/// How long a member we failed to dial is reached through another node instead.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

/// One call to resolve and run.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub fun: String,
    pub args: Bytes,
    pub kwargs: Option<Bytes>,
    pub timeout: Duration,
    pub route: Route,
    /// Host of the original caller when we resolve for another node; we then never relay
    /// further (one hop at most, so forwarding cannot loop).
    pub origin_host: Option<String>,
}

/// The result and the node that produced it.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub value: Bytes,
    pub node: String,
}

/// How to reach a provider.
#[derive(Clone)]
enum Reach {
    Local(Arc<Function>),
    Conn(Arc<Connection>),
    /// A member we are not connected to: dial it.
    Member(SocketAddr),
    /// A member we could not dial recently: through another node.
    Relay,
}

/// A provider with what we need to reach it. Its name, host and resources are borrowed
/// from this node or the provider's connection (no copies per call), and owned only for a
/// member known from the directory.
#[derive(Clone)]
struct Known<'a> {
    id: u64,
    name: Cow<'a, str>,
    host: Cow<'a, str>,
    tier: Relation,
    resources: Cow<'a, [String]>,
    spec: Arc<FnSpec>,
    in_flight: usize,
    reach: Reach,
}

impl Known<'_> {
    fn view(&self) -> Provider<'_> {
        Provider {
            name: &self.name,
            host: &self.host,
            tier: self.tier,
            resources: &self.resources,
            spec: &self.spec,
            in_flight: self.in_flight,
        }
    }
}

/// Why a provider was left out of a call, for the error when no provider is left:
/// `(id, name, why, busy, through another node)`.
struct Tried(Vec<(u64, String, String, bool, bool)>);

impl Tried {
    /// Providers not to choose again: all tried, or for reaching through another node,
    /// those already tried that way (one we failed to dial may still be relayed to).
    fn ids(&self, relays: bool) -> Vec<u64> {
        self.0
            .iter()
            .filter(|t| !relays || t.4)
            .map(|t| t.0)
            .collect()
    }

    /// Whether something was tried and every provider tried answered "busy".
    fn all_busy(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|t| t.3)
    }

    fn note(&mut self, k: &Known<'_>, why: &Error) {
        let relayed = matches!(k.reach, Reach::Relay);
        let entry = (
            k.id,
            k.name.to_string(),
            why.to_string(),
            is_busy(why),
            relayed,
        );
        self.0.push(entry);
    }

    /// "`a`: why; `b`: why".
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(_, name, why, _, relayed)| match relayed {
                // Not reached directly: `why` is the forwarder's answer (naming the
                // forwarder), or why none could be asked.
                true => format!("`{name}` (not reachable from here): {why}"),
                false => format!("`{name}`: {why}"),
            })
            .collect();
        format!("providers tried: {}", parts.join("; "))
    }
}

/// What became of one attempt on one provider.
enum Attempt {
    Done(Result<Outcome>),
    /// The call never ran there (cannot dial, lost before it was sent, busy, or a
    /// forwarder that could not place it): try the next candidate.
    Missed(Error),
}

/// What [`Shared::invoke`] does after one attempt.
enum Next {
    /// The call is over: its result, or an error no other provider can change.
    Return(Result<Outcome>),
    /// The call never reached the provider: try the next candidate.
    Missed(Error),
    /// The provider was lost during an idempotent call: retry elsewhere (counted).
    Lost(Error),
}

/// Sorts out one attempt on `chosen`: a miss is tried elsewhere for any function, a node
/// lost mid-call only for an idempotent one (it may have run); other errors end the call.
fn judge(inv: &Invocation, chosen: &Known, attempt: Attempt) -> Next {
    match attempt {
        Attempt::Done(Ok(o)) => Next::Return(Ok(o)),
        Attempt::Missed(e) => Next::Missed(e),
        Attempt::Done(Err(e @ Error::NodeLost { .. })) if chosen.spec.idempotent => {
            tracing::info!(fun = %inv.fun, node = %chosen.name, "node lost; retrying an idempotent call elsewhere");
            Next::Lost(e)
        }
        Attempt::Done(Err(Error::NodeLost { fun, node, reason })) => {
            Next::Return(Err(Error::NodeLost {
                fun: fun.clone(),
                node,
                reason: format!("{reason}; not retried: `{fun}` is not registered idempotent"),
            }))
        }
        // The deadline covers the whole call; report it, not what was left of it.
        Attempt::Done(Err(Error::Timeout { fun, node, .. })) => Next::Return(Err(Error::Timeout {
            fun,
            node,
            after: inv.timeout,
        })),
        Attempt::Done(other) => Next::Return(other),
    }
}

impl Shared {
    /// Resolves and runs one call. A provider that cannot be reached, refuses the call as
    /// busy, or is lost before the call reached it is left out and the next candidate is
    /// tried; a provider lost *during* the call is retried elsewhere only for idempotent
    /// functions (it may have run), at most [`MAX_RETRIES`] times. The call fails when no
    /// candidate is left (or at its deadline), naming every provider tried and why.
    ///
    /// Bounded: a provider is tried at most once directly and, if it could not be dialed,
    /// once more through a forwarder (another node may reach it when we cannot), so a call
    /// makes at most two attempts per candidate.
    ///
    /// Every step counts against the call's deadline, dials and handshakes included (a
    /// handshake with a host being cut off may stall for seconds): the call fails with
    /// [`Error::Timeout`] at its deadline whatever it was doing. Only the steps that dial
    /// are bounded here; the rest wait with the deadline already.
    pub(crate) async fn invoke(self: &Arc<Self>, inv: &Invocation) -> Result<Outcome> {
        self.invoke_since(inv, Instant::now()).await
    }

    /// [`invoke`](Self::invoke) for a call made at `start` (its deadline counts from then),
    /// which must be a moment ago: a caller that read the clock already spares a read.
    pub(crate) async fn invoke_since(
        self: &Arc<Self>,
        inv: &Invocation,
        start: Instant,
    ) -> Result<Outcome> {
        let deadline = start + inv.timeout;
        let mut tried = Tried(Vec::new());
        let (mut refreshed, mut settled, mut waited) = (false, false, false);
        // Providers lost in the middle of an idempotent call (it may have run there).
        let mut lost = 0;
        loop {
            let conns = self.connections();
            let known = self.providers_of(&inv.fun, &conns);
            let Some(chosen) = self.choose(inv, &known, &tried) else {
                // Every provider we know refused as busy: learning more will not help,
                // and a burst must not turn into a member-list request per busy call
                // (nor, on a node alone, into a wait for a cluster).
                if tried.all_busy() {
                    return Err(self.none_left(inv, &known, &tried));
                }
                if !waited && self.lonely() {
                    waited = true;
                    // A provider registered here meanwhile (a gateway client's function)
                    // ends the wait as a peer does.
                    let offered = || !self.providers_of(&inv.fun, &self.connections()).is_empty();
                    // Cold paths are boxed here and below: a future is as big as its
                    // biggest state, and every call would otherwise carry (and move) the
                    // room a dial and handshake need.
                    if Box::pin(self.await_cluster_or(deadline, offered)).await {
                        continue;
                    }
                    return Err(self.no_cluster());
                }
                if !refreshed {
                    refreshed = true;
                    let refresh = Box::pin(self.refresh(&inv.fun));
                    match tokio::time::timeout_at(deadline.into(), refresh).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(_) => return Err(deadline_passed(inv, String::new())),
                    }
                }
                if !settled {
                    settled = true;
                    if Box::pin(self.settle(deadline)).await {
                        continue;
                    }
                }
                // Members we cannot reach and know nothing of may serve it: a member we
                // are connected to knows more, so let it resolve (one hop).
                if let Some(via) = self.relay_for_unknown(inv) {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let route = Some(&inv.route);
                    return Box::pin(self.over(&via, inv, remaining, route)).await;
                }
                return Err(self.none_left(inv, &known, &tried));
            };
            // A first attempt made without waiting for anything has its whole timeout
            // left (`start` was read just before): a clock read spared per call.
            let first = tried.0.is_empty() && !(refreshed || settled || waited);
            let remaining = match first {
                true => inv.timeout,
                false => deadline.saturating_duration_since(Instant::now()),
            };
            let chosen = &known[chosen];
            let attempt = self.attempt(inv, chosen, remaining).await;
            let e = match judge(inv, chosen, attempt) {
                Next::Return(r) => return r,
                Next::Missed(e) => e,
                Next::Lost(e) => {
                    lost += 1;
                    e
                }
            };
            tracing::debug!(fun = %inv.fun, node = %chosen.name, error = %e, "provider missed; trying the next");
            tried.note(chosen, &e);
            // Misses are not counted: each provider is left out once tried, so the
            // candidates run out by themselves. Only retries of a call that may have run
            // are capped.
            if lost > MAX_RETRIES || Instant::now() >= deadline {
                return Err(self.none_left(inv, &known, &tried));
            }
        }
    }

    /// Whether this node knows no other node at all (no connection, no member).
    fn lonely(&self) -> bool {
        self.peers.read().is_empty() && self.directory.read().is_empty()
    }

    /// Waits for a first peer until the discovery wait (counted from start) or `deadline`
    /// ends; whether one appeared.
    pub(crate) async fn await_cluster(&self, deadline: Instant) -> bool {
        self.await_cluster_or(deadline, || false).await
    }

    /// [`Shared::await_cluster`] that also ends, with `true`, as soon as `ready` holds.
    async fn await_cluster_or(&self, deadline: Instant, ready: impl Fn() -> bool) -> bool {
        let until = deadline.min(self.started + self.config.discovery_wait());
        let mut changes = self.view_epoch.subscribe();
        loop {
            changes.mark_unchanged();
            if !self.lonely() || ready() {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Polled as well: a client's first connection comes from a dial, not a view.
            let tick = left.min(Duration::from_millis(20));
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// The error when no peer was found at all: what was tried and why it found nobody.
    pub(crate) fn no_cluster(&self) -> Error {
        let c = &self.config;
        let ifaces = if c.interfaces.is_empty() {
            "all multicast-capable interfaces".to_string()
        } else {
            c.interfaces.join(", ")
        };
        let mut parts = vec![
            format!("interfaces {ifaces}"),
            if c.beacon {
                format!("beacon on UDP port {}: no answer", c.beacon_port)
            } else {
                "beacon off".into()
            },
            if c.mdns {
                format!("mDNS on UDP port {}: no answer", c.mdns_port)
            } else {
                "mDNS off".into()
            },
        ];
        let errors = self.seed_errors.lock();
        if c.seeds.is_empty() {
            parts.push("no seeds".into());
        }
        for seed in &c.seeds {
            match errors.get(seed) {
                Some(e) => parts.push(format!("seed {seed}: {e}")),
                None => parts.push(format!("seed {seed}: no connection")),
            }
        }
        Error::NoCluster {
            waited: c.discovery_wait(),
            tried: parts.join("; "),
        }
    }

    /// The error when no candidate is left: what was tried, else who serves it at all.
    fn none_left(&self, inv: &Invocation, known: &[Known], tried: &Tried) -> Error {
        if let Some(last) = tried.0.last().filter(|_| tried.all_busy()) {
            // Every provider is saturated: that is "busy", not "no provider".
            return Error::Busy {
                fun: inv.fun.clone(),
                node: last.1.clone(),
                detail: tried.describe(),
            };
        }
        match self.no_provider(inv, known) {
            Error::NoProvider {
                fun,
                locs,
                within,
                detail,
            } if !tried.0.is_empty() => Error::NoProvider {
                fun,
                locs,
                within,
                detail: if detail.is_empty() {
                    tried.describe()
                } else {
                    format!("{}; {detail}", tried.describe())
                },
            },
            _ if !tried.0.is_empty() => Error::NoProvider {
                fun: inv.fun.clone(),
                locs: inv.route.locs.clone(),
                within: format!("{} scope", inv.route.scope),
                detail: tried.describe(),
            },
            other => other,
        }
    }

    /// Runs the call on `k`, telling a miss (the call never ran there) from an outcome.
    async fn attempt(self: &Arc<Self>, inv: &Invocation, k: &Known<'_>, left: Duration) -> Attempt {
        match self.reach(inv, k, left).await {
            Err(e) if missed(&e) || relayed_miss(k, &e) => {
                if matches!(k.reach, Reach::Member(_) | Reach::Relay) && !is_busy(&e) {
                    self.unreachable.lock().insert(k.id, Instant::now());
                }
                Attempt::Missed(e)
            }
            other => Attempt::Done(other),
        }
    }

    #[cfg(feature = "http")]
    /// Whether any node we know of offers `fun` at all (to tell "no such command" from a
    /// failed one after a workflow fails).
    pub(crate) fn knows_function(&self, fun: &str) -> bool {
        !self.providers_of(fun, &self.connections()).is_empty()
    }

    #[cfg(feature = "http")]
    /// Whether `inv` found no provider only because every one's visibility refuses its
    /// caller (the gateway names visibility in that refusal).
    pub(crate) fn hidden_from(&self, inv: &Invocation) -> bool {
        let conns = self.connections();
        let known = self.providers_of(&inv.fun, &conns);
        let q = Query {
            fun: &inv.fun,
            route: &inv.route,
            origin_host: inv.origin_host.as_deref(),
        };
        !known.is_empty()
            && known
                .iter()
                .all(|k| resolve::check(&q, &k.view()) == Err(resolve::Mismatch::Visibility))
    }

    /// Every provider of `fun` we know of: ourselves, connected peers (of `conns`, this
    /// node's connections), and members from the directory whose catalog (from a member
    /// list) includes it.
    fn providers_of<'a>(&'a self, fun: &str, conns: &'a [Arc<Connection>]) -> Vec<Known<'a>> {
        let mut out = Vec::new();
        if let Some(f) = self.registry.read().get(fun) {
            out.push(Known {
                id: self.id,
                name: Cow::Borrowed(&self.name),
                host: Cow::Borrowed(&self.host_id),
                tier: Relation::SameNode,
                resources: Cow::Borrowed(&self.resources),
                spec: f.spec.clone(),
                in_flight: f.in_flight.load(Relaxed),
                reach: Reach::Local(f.clone()),
            });
        }
        for c in conns {
            let Some(spec) = c.catalog.read().spec(fun) else {
                continue;
            };
            out.push(Known {
                id: c.peer.id,
                name: Cow::Borrowed(&c.peer.name),
                host: Cow::Borrowed(&c.peer.host_id),
                tier: Relation::of_peer(&self.host_id, &c.peer.host_id),
                resources: Cow::Borrowed(&c.peer.resources),
                spec,
                in_flight: c.in_flight.load(Relaxed),
                reach: Reach::Conn(c.clone()),
            });
        }
        for e in self.directory.read().values() {
            // Only a client's directory holds catalogs: a member's skips each entry here,
            // before comparing it with every connection.
            let spec = e
                .catalog
                .as_ref()
                .and_then(|c| c.functions.iter().find(|f| f.name == fun));
            let Some(spec) = spec else { continue };
            if conns.iter().any(|c| c.peer.id == e.member.id) {
                continue;
            }
            let recently_failed = self.recently_unreachable(e.member.id);
            out.push(Known {
                id: e.member.id,
                name: Cow::Owned(e.member.name.clone()),
                host: Cow::Owned(e.member.host.clone()),
                tier: Relation::of_peer(&self.host_id, &e.member.host),
                resources: Cow::Owned(e.resources.clone()),
                spec: Arc::new(spec.clone()),
                in_flight: 0,
                reach: if recently_failed {
                    Reach::Relay
                } else {
                    Reach::Member(e.member.addr)
                },
            });
        }
        out
    }

    /// Applies the resolver to `known` minus `excluded`; the index of the chosen provider,
    /// if any qualifies.
    fn choose(&self, inv: &Invocation, known: &[Known], tried: &Tried) -> Option<usize> {
        // Providers we recently failed to dial are reached through another node, which
        // costs a hop and may fail the same way: only when nobody else qualifies.
        self.choose_among(inv, known, &tried.ids(false), false)
            .or_else(|| self.choose_among(inv, known, &tried.ids(true), true))
    }

    fn choose_among(
        &self,
        inv: &Invocation,
        known: &[Known],
        excluded: &[u64],
        relays: bool,
    ) -> Option<usize> {
        let q = Query {
            fun: &inv.fun,
            route: &inv.route,
            origin_host: inv.origin_host.as_deref(),
        };
        let qualified = known
            .iter()
            .enumerate()
            .filter(|(_, k)| !excluded.contains(&k.id))
            .filter(|(_, k)| matches!(k.reach, Reach::Relay) == relays)
            .map(|(i, k)| (i, k.view()))
            .filter(|(_, p)| resolve::qualifies(&q, p));
        // One qualified provider is the choice under every policy (`resolve::choose` picks
        // the only one, loaded or not): found without building the candidate lists.
        let mut probe = qualified.clone().map(|(i, _)| i);
        match (probe.next(), probe.next()) {
            (None, _) => return None,
            (Some(only), None) => return Some(only),
            _ => {}
        }
        let (idx, cands): (Vec<usize>, Vec<Provider<'_>>) = qualified.unzip();
        let turn = match inv.route.policy {
            Policy::RoundRobin if cands.len() > 1 => self.next_turn(&inv.fun),
            _ => 0,
        };
        let choice = Choice {
            spill_at: self.config.spill_at,
            turn,
        };
        let mut rand = |n: usize| rand::random_range(0..n);
        let i = resolve::choose(&cands, inv.route.policy, choice, &mut rand)?;
        Some(idx[i])
    }

    /// The round-robin counter of `fun`, advanced.
    fn next_turn(&self, fun: &str) -> u64 {
        let mut turns = self.turns.lock();
        if let Some(t) = turns.get_mut(fun) {
            *t += 1;
            return *t - 1;
        }
        turns.insert(fun.to_string(), 1);
        0
    }

    /// Learns more before giving up: dials members whose catalog we have not seen and, for
    /// a client, fetches the member list again. Returns whether anything was tried.
    async fn refresh(self: &Arc<Self>, fun: &str) -> bool {
        let unseen: Vec<String> = {
            let peers = self.peers.read();
            self.directory
                .read()
                .values()
                .filter(|e| !peers.contains_key(&e.member.id) && e.catalog.is_none())
                .filter(|e| !self.recently_unreachable(e.member.id))
                .map(|e| e.member.addr.to_string())
                .collect()
        };
        let dials = unseen.iter().map(|a| self.connect_to(a));
        for (addr, r) in unseen
            .iter()
            .zip(futures_util::future::join_all(dials).await)
        {
            if let Err(e) = r {
                tracing::debug!(%addr, error = %e, "cannot reach a member whose catalog is unknown");
                self.mark_unreachable(addr);
            }
        }
        let mut tried = !unseen.is_empty();
        if !self.config.listen {
            if let Some(conn) = self.connections().into_iter().next() {
                tracing::debug!(%fun, "refreshing the member list");
                tried |= crate::runtime::bootstrap::learn_members(self, &conn)
                    .await
                    .is_ok();
            }
        }
        tried
    }

    fn recently_unreachable(&self, id: u64) -> bool {
        self.unreachable
            .lock()
            .get(&id)
            .is_some_and(|t| t.elapsed() < UNREACHABLE_FOR)
    }

    /// Records that the member at `addr` could not be dialed.
    fn mark_unreachable(&self, addr: &str) {
        let id = self
            .directory
            .read()
            .values()
            .find(|e| e.member.addr.to_string() == addr)
            .map(|e| e.member.id);
        if let Some(id) = id {
            self.unreachable.lock().insert(id, Instant::now());
        }
    }

    /// A connected member to relay through when some member we could not reach has a
    /// catalog we never saw (only for our own calls: relays never relay again).
    fn relay_for_unknown(&self, inv: &Invocation) -> Option<Arc<Connection>> {
        if inv.origin_host.is_some() {
            return None;
        }
        let blind = self
            .directory
            .read()
            .values()
            .any(|e| e.catalog.is_none() && self.recently_unreachable(e.member.id));
        if !blind {
            return None;
        }
        self.connections()
            .into_iter()
            .find(|c| c.peer.listen_port != 0)
    }

    /// Waits (at most `SETTLE_FOR`, and never past `deadline`) for connections the
    /// membership is opening right now, e.g. to a member that just joined and whose
    /// catalog will come with its connection. Returns whether any was in progress.
    async fn settle(&self, deadline: Instant) -> bool {
        let until = deadline.min(Instant::now() + SETTLE_FOR);
        if self.dialing.lock().is_empty() {
            return false;
        }
        // Polled: dial tasks signal nothing, and this runs only when a call would
        // otherwise fail with "no provider".
        while !self.dialing.lock().is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Runs the call on `k` within `remaining`.
    async fn reach(
        self: &Arc<Self>,
        inv: &Invocation,
        k: &Known<'_>,
        remaining: Duration,
    ) -> Result<Outcome> {
        match &k.reach {
            Reach::Local(f) => self.run_local(inv, f, remaining).await,
            Reach::Conn(c) => self.over(c, inv, remaining, None).await,
            Reach::Member(addr) => Box::pin(async move {
                // The dial counts against the call's deadline (see `invoke`).
                let until = Instant::now() + remaining;
                let addr_text = addr.to_string();
                let dial = tokio::time::timeout_at(until.into(), self.connect_to(&addr_text));
                match dial.await {
                    Ok(Ok(c)) => {
                        let left = until.saturating_duration_since(Instant::now());
                        self.over(&c, inv, left, None).await
                    }
                    Ok(Err(e)) => {
                        tracing::info!(node = %k.name, %addr, error = %e, "cannot reach the provider");
                        Err(e)
                    }
                    Err(_) => Err(deadline_passed(inv, k.name.to_string())),
                }
            })
            .await,
            Reach::Relay => {
                let why = Error::Protocol {
                    peer: k.name.to_string(),
                    detail: "not reachable from here".into(),
                };
                Box::pin(self.relay(inv, k, remaining, why)).await
            }
        }
    }

    /// Asks a connected member to run the call on `k` for us (we cannot reach `k`).
    async fn relay(
        self: &Arc<Self>,
        inv: &Invocation,
        k: &Known<'_>,
        remaining: Duration,
        why: Error,
    ) -> Result<Outcome> {
        let via = self
            .connections()
            .into_iter()
            .find(|c| c.peer.listen_port != 0 && c.peer.id != k.id);
        let Some(via) = via else {
            return Err(why);
        };
        let mut route = inv.route.clone();
        route.perspective = Perspective::Node(k.name.to_string());
        let r = self.over(&via, inv, remaining, Some(&route)).await;
        // The forwarder answers for `k`: say who forwarded and what its answer means, so the
        // forwarder is not taken for the culprit.
        r.map_err(|mut e| {
            if let Error::NoProvider { detail, .. } | Error::UnknownFunction { detail, .. } =
                &mut e
            {
                let note = format!(
                    "forwarded through `{}`, which cannot reach `{}` either: `{}` is gone or cut off",
                    via.peer.name, k.name, k.name
                );
                *detail = match detail.is_empty() {
                    true => note,
                    false => format!("{detail}; {note}"),
                };
            }
            e
        })
    }

    /// The call over one connection, counted in its load.
    pub(crate) async fn over(
        &self,
        c: &Arc<Connection>,
        inv: &Invocation,
        remaining: Duration,
        route: Option<&Route>,
    ) -> Result<Outcome> {
        let relay = Relay {
            route,
            origin_host: inv.origin_host.as_deref(),
        };
        c.in_flight.fetch_add(1, Relaxed);
        self.counters.requests_sent.fetch_add(1, Relaxed);
        let r = c
            .call_via(&inv.fun, &inv.args, inv.kwargs.as_ref(), remaining, relay)
            .await;
        c.in_flight.fetch_sub(1, Relaxed);
        r.map(|(value, node)| Outcome { value, node })
    }

    /// Runs a local function in the caller's task, with the same argument fitting, panic
    /// isolation and deadline as a remote call.
    async fn run_local(
        &self,
        inv: &Invocation,
        func: &Function,
        timeout: Duration,
    ) -> Result<Outcome> {
        // A synchronous local function answers without ever returning `Pending`, so a loop
        // of such calls would hold its worker thread forever and starve every other task
        // (found by the chaos soak's call loops). Spending a unit of tokio's cooperative
        // budget yields once the task has done its share, as tokio's own channels do.
        tokio::task::consume_budget().await;
        let fun = &inv.fun;
        let me = &self.name;
        let fitted = dispatch::fitted(func, &inv.args, inv.kwargs.as_deref())
            .map_err(|f| Error::from_failure(f, fun, me))?
            .unwrap_or_else(|| inv.args.clone());
        let call = Call {
            id: 0,
            fun: fun.clone(),
            args: inv.args.clone(),
            kwargs: inv.kwargs.clone(),
            timeout_ms: timeout.as_millis() as u64,
            route: None,
            // Relayed and gateway calls run here for a caller elsewhere: a function that
            // decides by its caller's host is told it (the others need no copy).
            origin_host: func.wants_caller.then(|| inv.origin_host.clone()).flatten(),
        };
        match dispatch::run(func, fitted, Some(timeout), &call, self.metrics.enabled).await {
            Ok(value) => Ok(Outcome {
                value,
                node: me.clone(),
            }),
            Err(f) if f.kind == FailureKind::Timeout => Err(Error::Timeout {
                fun: fun.clone(),
                node: me.clone(),
                after: timeout,
            }),
            Err(f) => Err(Error::from_failure(f, fun, me)),
        }
    }

    /// The error for a call nobody qualifies for: "unknown function" when no node we know
    /// serves `fun` at all, else which providers exist and why none fits.
    fn no_provider(&self, inv: &Invocation, known: &[Known]) -> Error {
        if known.is_empty() {
            return self.unknown(&inv.fun);
        }
        let q = Query {
            fun: &inv.fun,
            route: &inv.route,
            origin_host: inv.origin_host.as_deref(),
        };
        let views: Vec<Provider<'_>> = known.iter().map(Known::view).collect();
        let scope = format!("{} scope", inv.route.scope);
        let within = match &inv.route.perspective {
            Perspective::Any => scope,
            Perspective::Host(h) => format!("{scope} on host `{h}`"),
            Perspective::Node(n) => format!("{scope} on node `{n}`"),
        };
        Error::NoProvider {
            fun: inv.fun.clone(),
            locs: inv.route.locs.clone(),
            within,
            detail: resolve::explain(&q, &views),
        }
    }

    /// "offered by none of the 3 members known: a, b, c": whom we know of the cluster
    /// (members and connected peers); "this node" only for a node that serves functions.
    fn offered_by_none(&self, conns: &[Arc<Connection>]) -> String {
        const SHOWN: usize = 8;
        let mut known: Vec<String> = conns.iter().map(|c| c.peer.name.clone()).collect();
        known.extend(
            self.directory
                .read()
                .values()
                .map(|e| e.member.name.clone()),
        );
        known.sort();
        known.dedup();
        let n = known.len();
        let mut list = known
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if n > SHOWN {
            list.push_str(&format!(" and {} more", n - SHOWN));
        }
        let members = if n == 1 { "member" } else { "members" };
        if self.config.listen {
            format!(
                "offered neither by this node `{}` nor by the {n} other {members} it knows: {list}",
                self.name
            )
        } else {
            format!("offered by none of the {n} {members} known: {list}")
        }
    }

    /// "unknown function", with look-alike names from everything we know and why nothing
    /// is reachable when that is the problem.
    pub(crate) fn unknown(&self, fun: &str) -> Error {
        let conns = self.connections();
        let mut names: Vec<String> = self.registry.read().names().map(String::from).collect();
        for c in &conns {
            names.extend(c.catalog.read().names().map(String::from));
        }
        for e in self.directory.read().values() {
            if let Some(c) = &e.catalog {
                names.extend(c.functions.iter().map(|f| f.name.clone()));
            }
        }
        names.sort();
        names.dedup();
        let close = close_names(fun, names.iter().map(String::as_str));
        let detail = if conns.is_empty() {
            let errs = self.seed_errors.lock();
            let mut parts: Vec<String> = errs.values().cloned().collect();
            parts.sort();
            if parts.is_empty() {
                "no peers connected".to_string()
            } else {
                format!("no peers connected; {}", parts.join("; "))
            }
        } else {
            self.offered_by_none(&conns)
        };
        Error::UnknownFunction {
            fun: fun.into(),
            close,
            detail,
        }
    }
}

impl Shared {
    /// Runs the call on the node listening at `addr`, whatever our catalogs say (over the
    /// existing connection to it, else a new one) — or, with `relay`, has that node resolve
    /// and forward it.
    pub(crate) async fn invoke_at(
        self: &Arc<Self>,
        addr: &str,
        inv: &Invocation,
        relay: bool,
    ) -> Result<Outcome> {
        let target: Option<SocketAddr> = addr.parse().ok();
        let existing = self.connections().into_iter().find(|c| {
            target.is_some_and(|t| {
                c.peer.addr == t || (c.peer.addr.ip() == t.ip() && c.peer.listen_port == t.port())
            })
        });
        let conn = match existing {
            Some(c) => c,
            // The dial counts against the call's deadline (see `invoke`).
            None => match tokio::time::timeout(inv.timeout, self.connect_to(addr)).await {
                Ok(c) => c?,
                Err(_) => return Err(deadline_passed(inv, addr.to_string())),
            },
        };
        let route = relay.then_some(&inv.route);
        self.over(&conn, inv, inv.timeout, route).await
    }

    /// Runs the call on every qualifying provider at once; results by node name.
    pub(crate) async fn invoke_all(
        self: &Arc<Self>,
        inv: &Invocation,
    ) -> Result<Vec<(String, Result<Outcome>)>> {
        let deadline = Instant::now() + inv.timeout;
        // Every provider must be known, not just one: dial members not seen yet (and a
        // client refreshes its member list), within the call's deadline.
        let _ = tokio::time::timeout_at(deadline.into(), self.refresh(&inv.fun)).await;
        let conns = self.connections();
        let known = self.providers_of(&inv.fun, &conns);
        let q = Query {
            fun: &inv.fun,
            route: &inv.route,
            origin_host: inv.origin_host.as_deref(),
        };
        let chosen: Vec<&Known> = known
            .iter()
            .filter(|k| resolve::qualifies(&q, &k.view()))
            .collect();
        if chosen.is_empty() {
            return Err(self.no_provider(inv, &known));
        }
        let calls = chosen.iter().map(|k| async move {
            let left = || deadline.saturating_duration_since(Instant::now());
            let attempt = async {
                match self.reach(inv, k, left()).await {
                    // Every provider is wanted here, so one we cannot dial is reached
                    // through another node.
                    Err(e) if matches!(k.reach, Reach::Member(_)) && missed(&e) && !is_busy(&e) => {
                        self.unreachable.lock().insert(k.id, Instant::now());
                        self.relay(inv, k, left(), e).await
                    }
                    other => other,
                }
            };
            // Dials and handshakes count against the deadline too (see `invoke`).
            let r = match tokio::time::timeout_at(deadline.into(), attempt).await {
                Ok(r) => r,
                Err(_) => Err(deadline_passed(inv, k.name.to_string())),
            };
            (k.name.to_string(), r)
        });
        Ok(futures_util::future::join_all(calls).await)
    }
}

/// Whether a failed attempt never ran the call: the provider could not be dialed, the
/// connection ended before the call was sent, or it refused the call as busy.
fn missed(e: &Error) -> bool {
    match e {
        Error::NodeLost { reason, .. } => reason.starts_with(NOT_SENT),
        Error::Busy { .. } | Error::Io { .. } | Error::Refused { .. } | Error::Protocol { .. } => {
            true
        }
        _ => false,
    }
}

fn is_busy(e: &Error) -> bool {
    matches!(e, Error::Busy { .. })
}

/// A forwarder that could not place the call on `k` (it does not know it, or it is gone
/// there too): the call did not run.
fn relayed_miss(k: &Known<'_>, e: &Error) -> bool {
    matches!(k.reach, Reach::Relay)
        && matches!(e, Error::NoProvider { .. } | Error::UnknownFunction { .. })
}

/// The error of a call whose deadline passed before any provider answered; `node` is the
/// provider it was trying (none yet: it was still looking for one).
fn deadline_passed(inv: &Invocation, node: String) -> Error {
    Error::Timeout {
        fun: inv.fun.clone(),
        node: if node.is_empty() {
            "(none reached yet)".into()
        } else {
            node
        },
        after: inv.timeout,
    }
}
