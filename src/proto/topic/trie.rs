//! The subscription trie: one node per pattern prefix, with literal, `*` and `**` children.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU32;
use std::ops::ControlFlow::{self, Break, Continue};

use super::{check, Pattern, Segment, Subject, MAX_SEGMENTS};

/// Index of a node in the trie's arena. The root is index 0 and never anyone's child, so child
/// links can be non-zero, which keeps `Option<NodeId>` at 4 bytes.
type NodeId = NonZeroU32;

/// Index of the root node.
const ROOT: usize = 0;

/// A node keeps its literal children in a list up to this many, then in a hash map. A short
/// scan over a cache line or two of integers beats hashing, and most nodes below the first
/// levels have only a child or two.
const FEW_CHILDREN: usize = 16;

/// The `**` memo (see [`Memo`]) is a list searched in order up to this many entries, then a
/// hash map, so even adversarial pattern sets stay linear in the states visited.
const SMALL_MEMO: usize = 32;

fn index(id: NodeId) -> usize {
    // u32 -> usize is lossless on every target this crate builds for (32 and 64 bit).
    id.get() as usize
}

/// A literal segment, interned (see [`Symbols`]).
type Sym = u32;

/// Stands for a topic segment that no pattern uses literally: no literal edge matches it.
const NO_SYM: Sym = Sym::MAX;

/// The literal segments in use, interned as small integers. A match looks each topic segment
/// up here once; below that, nodes compare integers and hold no strings, which keeps them
/// small and the walk cache-friendly.
#[derive(Debug, Clone, Default)]
struct Symbols {
    ids: HashMap<Box<str>, Sym>,
    /// Each symbol's text and the number of edges using it. A slot whose count fell to 0 is
    /// listed in `free` for reuse.
    slots: Vec<(Box<str>, usize)>,
    free: Vec<Sym>,
}

impl Symbols {
    fn get(&self, text: &str) -> Option<Sym> {
        self.ids.get(text).copied()
    }

    fn text(&self, sym: Sym) -> &str {
        self.slots.get(sym as usize).map_or("", |slot| &slot.0)
    }

    /// The symbol for `text`, counting one more edge that uses it.
    fn acquire(&mut self, text: &str) -> Sym {
        if let Some(&sym) = self.ids.get(text) {
            if let Some(slot) = self.slots.get_mut(sym as usize) {
                slot.1 += 1;
            }
            return sym;
        }
        let sym = match self.free.pop() {
            Some(sym) => sym,
            None => {
                // As for node ids: memory runs out long before 2^32 distinct segments.
                let sym = Sym::try_from(self.slots.len())
                    .ok()
                    .filter(|&sym| sym != NO_SYM)
                    .expect("topic trie: more than 2^32 distinct segments");
                self.slots.push(Default::default());
                sym
            }
        };
        if let Some(slot) = self.slots.get_mut(sym as usize) {
            *slot = (text.into(), 1);
        }
        self.ids.insert(text.into(), sym);
        sym
    }

    /// Counts one edge fewer using `sym`; forgets the symbol when none is left.
    fn release(&mut self, sym: Sym) {
        let Some(slot) = self.slots.get_mut(sym as usize) else {
            return;
        };
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            let text = std::mem::take(&mut slot.0);
            self.ids.remove(&text);
            self.free.push(sym);
        }
    }
}

/// Hashes a symbol for the child maps: the SplitMix64 finalizer, a cheap bijection whose low
/// bits (the bucket) depend on every bit of the id.
///
/// SipHash would cost as much as the rest of a lookup, and its key is not needed here: the
/// ids are handed out densely by [`Symbols`], so to pile `m` children of one node into one
/// bucket, an adversary would have to create on the order of `m²` distinct segments first.
/// The text-keyed map in [`Symbols`], which does see untrusted strings, keeps SipHash.
#[derive(Default)]
struct SymHasher(u64);

impl Hasher for SymHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used (a `Sym` key); this keeps any other input well defined.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

type SymMap = HashMap<Sym, NodeId, BuildHasherDefault<SymHasher>>;

/// Literal children of a node, by symbol.
#[derive(Debug, Clone)]
enum Children {
    Few(Vec<(Sym, NodeId)>),
    Many(Box<SymMap>),
}

impl Default for Children {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl Children {
    fn get(&self, sym: Sym) -> Option<NodeId> {
        match self {
            Children::Few(list) => list.iter().find(|(s, _)| *s == sym).map(|c| c.1),
            Children::Many(map) => map.get(&sym).copied(),
        }
    }

    /// Adds a child for `sym`, which must not have one yet.
    fn insert(&mut self, sym: Sym, id: NodeId) {
        match self {
            Children::Few(list) if list.len() < FEW_CHILDREN => list.push((sym, id)),
            Children::Few(list) => {
                let mut map: SymMap = list.drain(..).collect();
                map.insert(sym, id);
                *self = Children::Many(Box::new(map));
            }
            Children::Many(map) => {
                map.insert(sym, id);
            }
        }
    }

    fn remove(&mut self, sym: Sym) {
        match self {
            Children::Few(list) => list.retain(|(s, _)| *s != sym),
            Children::Many(map) => {
                map.remove(&sym);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Children::Few(list) => list.is_empty(),
            Children::Many(map) => map.is_empty(),
        }
    }

    fn for_each(&self, mut f: impl FnMut(Sym, NodeId)) {
        match self {
            Children::Few(list) => list.iter().for_each(|&(s, id)| f(s, id)),
            Children::Many(map) => map.iter().for_each(|(&s, &id)| f(s, id)),
        }
    }
}

/// An edge out of a node: a pattern segment with its literal text interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Literal(Sym),
    One,
    Many,
}

/// One pattern prefix. `entries` are the keys whose pattern ends exactly here, each with the
/// number of times it was inserted.
#[derive(Debug, Clone)]
struct Node<K> {
    literal: Children,
    one: Option<NodeId>,
    many: Option<NodeId>,
    entries: Vec<(K, usize)>,
}

impl<K> Default for Node<K> {
    fn default() -> Self {
        Node {
            literal: Children::default(),
            one: None,
            many: None,
            entries: Vec::new(),
        }
    }
}

impl<K> Node<K> {
    fn child(&self, edge: Edge) -> Option<NodeId> {
        match edge {
            Edge::Literal(sym) => self.literal.get(sym),
            Edge::One => self.one,
            Edge::Many => self.many,
        }
    }

    /// No entries and no children: the node can be pruned.
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.literal.is_empty()
            && self.one.is_none()
            && self.many.is_none()
    }
}

/// Subscriptions by pattern: a set of `(pattern, key)` entries that, given a published topic,
/// reports the key of every entry whose pattern matches.
///
/// `K` is whatever identifies a subscriber: a subscription id for local delivery, a node id
/// for routing ("does that node want this message?").
///
/// Entries are counted: inserting the same `(pattern, key)` twice stores it with a count of
/// 2, a match reports it twice, and one [`Trie::remove`] leaves one copy. A function
/// subscribed twice is best given two distinct keys; the count makes a repeated subscription
/// under the same key behave the same way, and lets a routing table insert one copy per
/// remote subscription without losing track when one of them goes away. The keys of one
/// pattern are kept in a list: inserting or removing costs a scan of that pattern's keys,
/// which suits the usual few subscribers per pattern.
///
/// Matching walks the segment trie: at each node it follows the literal child for the topic's
/// next segment, the `*` child, and the `**` child, which may take zero or more segments.
/// Every entry is reported once per stored copy, even when its pattern can match in several
/// ways (`a.**.**` against `a.b.c`). Work is bounded by (nodes reached) × (segments + 1)
/// however many `**` a pattern has. A match splits the topic once, on the stack, and looks
/// each segment up once; it allocates only when a pattern has a `**` below another `**`.
#[derive(Debug, Clone)]
pub struct Trie<K> {
    /// Node arena; index 0 is the root. Freed nodes are reset and listed in `free`.
    nodes: Vec<Node<K>>,
    free: Vec<NodeId>,
    symbols: Symbols,
    /// Entries stored, counting copies.
    len: usize,
}

impl<K> Default for Trie<K> {
    fn default() -> Self {
        Trie::new()
    }
}

impl<K> Trie<K> {
    /// An empty trie.
    pub fn new() -> Self {
        Trie {
            nodes: vec![Node::default()],
            free: Vec::new(),
            symbols: Symbols::default(),
            len: 0,
        }
    }

    /// Number of entries stored, counting each copy of a repeated `(pattern, key)`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` with the key of every entry whose pattern matches `topic`, once per stored
    /// copy, in no particular order.
    ///
    /// `topic` should have passed [`check_topic`](super::check_topic); an invalid topic
    /// matches nothing.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K)) {
        let _ = self.walk(topic, |entries| {
            for (key, count) in entries {
                (0..*count).for_each(|_| f(key));
            }
            Continue(())
        });
    }

    /// Whether any entry matches `topic`; stops at the first one found.
    pub fn has_match(&self, topic: &str) -> bool {
        self.walk(topic, |_| Break(())).is_break()
    }

    /// Every entry as `(pattern, key)`, once per stored copy, in no particular order.
    /// Inserting them all into a new trie rebuilds this one.
    pub fn patterns(&self) -> Patterns<'_, K> {
        Patterns {
            nodes: &self.nodes,
            symbols: &self.symbols,
            stack: vec![(ROOT, 0, "")],
            path: Vec::new(),
            pattern: None,
            entries: [].iter(),
            copies: None,
        }
    }

    /// Calls `visit` with the non-empty entry list of every node whose pattern matches.
    fn walk<'t>(
        &'t self,
        topic: &str,
        visit: impl FnMut(&'t [(K, usize)]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.is_empty() {
            return Continue(());
        }
        // Checked, split and looked up in one pass.
        let mut syms = [NO_SYM; MAX_SEGMENTS];
        let mut count = 0;
        let checked = check(topic, Subject::Topic, |i, segment| {
            if let Some(sym) = syms.get_mut(i) {
                *sym = self.symbols.get(segment).unwrap_or(NO_SYM);
            }
            count = i + 1;
        });
        if checked.is_err() {
            return Continue(());
        }
        let mut walk = Walk {
            nodes: &self.nodes,
            topic: syms.get(..count).unwrap_or(&[]),
            memo: Memo::default(),
            visit,
        };
        walk.at(ROOT, 0, false)
    }

    /// The edge `segment` would take, if its text is in use at all.
    fn edge(&self, segment: Segment<'_>) -> Option<Edge> {
        match segment {
            Segment::Literal(text) => self.symbols.get(text).map(Edge::Literal),
            Segment::One => Some(Edge::One),
            Segment::Many => Some(Edge::Many),
        }
    }

    /// Index of the node `pattern` ends at, and the (parent, edge) pairs leading there.
    fn find(&self, pattern: &Pattern) -> Option<(usize, Vec<(usize, Edge)>)> {
        let mut path = Vec::new();
        let mut at = ROOT;
        for segment in pattern.segments() {
            let edge = self.edge(segment)?;
            let child = self.nodes[at].child(edge)?;
            path.push((at, edge));
            at = index(child);
        }
        Some((at, path))
    }

    /// Number of live nodes, the root included (for tests of pruning).
    #[cfg(test)]
    pub(super) fn live_nodes(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Number of distinct literal segments in use (for tests of pruning).
    #[cfg(test)]
    pub(super) fn live_symbols(&self) -> usize {
        self.symbols.ids.len()
    }
}

impl<K: Eq> Trie<K> {
    /// Adds one copy of the entry `(pattern, key)`.
    pub fn insert(&mut self, pattern: &Pattern, key: K) {
        let mut at = ROOT;
        for segment in pattern.segments() {
            at = self.child_or_insert(at, segment);
        }
        let entries = &mut self.nodes[at].entries;
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, count)) => *count += 1,
            None => {
                // Most patterns have a single subscriber: don't let `push` reserve four.
                entries.reserve_exact(1);
                entries.push((key, 1));
            }
        }
        self.len += 1;
    }

    /// Removes one copy of the entry `(pattern, key)`; returns whether there was one. Nodes
    /// left with no entries and no children are freed.
    pub fn remove(&mut self, pattern: &Pattern, key: &K) -> bool {
        let Some((at, path)) = self.find(pattern) else {
            return false;
        };
        let entries = &mut self.nodes[at].entries;
        let Some(i) = entries.iter().position(|(k, _)| k == key) else {
            return false;
        };
        entries[i].1 -= 1;
        if entries[i].1 == 0 {
            entries.swap_remove(i);
        }
        self.len -= 1;
        self.prune(at, &path);
        true
    }

    /// How many copies of `(pattern, key)` are stored.
    pub fn count(&self, pattern: &Pattern, key: &K) -> usize {
        let Some((at, _)) = self.find(pattern) else {
            return 0;
        };
        let entries = &self.nodes[at].entries;
        entries.iter().find(|(k, _)| k == key).map_or(0, |e| e.1)
    }

    fn child_or_insert(&mut self, at: usize, segment: Segment<'_>) -> usize {
        let existing = self.edge(segment).and_then(|e| self.nodes[at].child(e));
        if let Some(child) = existing {
            return index(child);
        }
        let id = self.alloc();
        match segment {
            Segment::Literal(text) => {
                let sym = self.symbols.acquire(text);
                self.nodes[at].literal.insert(sym, id);
            }
            Segment::One => self.nodes[at].one = Some(id),
            Segment::Many => self.nodes[at].many = Some(id),
        }
        index(id)
    }

    fn alloc(&mut self) -> NodeId {
        if let Some(id) = self.free.pop() {
            return id;
        }
        // 2^32 nodes would take hundreds of GiB; memory runs out long before the ids do.
        let id = u32::try_from(self.nodes.len())
            .ok()
            .and_then(NonZeroU32::new)
            .expect("topic trie: more than 2^32 nodes");
        self.nodes.push(Node::default());
        id
    }

    /// Frees `at` and its ancestors along `path` while they are empty.
    fn prune(&mut self, mut at: usize, path: &[(usize, Edge)]) {
        for &(parent, edge) in path.iter().rev() {
            if !self.nodes[at].is_empty() {
                return;
            }
            let Some(id) = self.nodes[parent].child(edge) else {
                return;
            };
            let parent_node = &mut self.nodes[parent];
            match edge {
                Edge::Literal(sym) => {
                    parent_node.literal.remove(sym);
                    self.symbols.release(sym);
                }
                Edge::One => parent_node.one = None,
                Edge::Many => parent_node.many = None,
            }
            // Reset rather than keep: drops the node's child and entry list allocations.
            self.nodes[at] = Node::default();
            self.free.push(id);
            at = parent;
        }
    }
}

impl<K: Clone> Trie<K> {
    /// The keys of every entry whose pattern matches `topic`, once per stored copy, in no
    /// particular order. See [`Trie::for_each_match`].
    pub fn matches(&self, topic: &str) -> Vec<K> {
        let mut keys = Vec::new();
        self.for_each_match(topic, |key| keys.push(key.clone()));
        keys
    }
}

/// Which positions of a `**` node's self-loop have been expanded during one match.
///
/// A `**` node can be entered at several topic positions when another `**` lies above it
/// (`**.**.x`). Once entered at `p` it takes every position `p..=n` (it consumes segments one
/// by one), so all that needs remembering is the lowest entry position; entering again at or
/// above it finds nothing new, entering below it expands only the gap. Only nodes below an
/// earlier `**` are recorded, so matching without repeated `**` allocates nothing.
#[derive(Default)]
struct Memo {
    small: Vec<(NodeId, usize)>,
    large: Option<HashMap<NodeId, usize>>,
}

impl Memo {
    /// Records that `node` is entered at `pos`, and returns the end of the range `pos..end` of
    /// positions not expanded before (`fresh` if the node was never entered).
    fn claim(&mut self, node: NodeId, pos: usize, fresh: usize) -> usize {
        let low = self.slot(node, fresh);
        let end = *low;
        *low = end.min(pos);
        end.max(pos)
    }

    fn slot(&mut self, node: NodeId, fresh: usize) -> &mut usize {
        let Memo { small, large } = self;
        if large.is_some() || small.len() >= SMALL_MEMO {
            let map = large.get_or_insert_with(|| small.drain(..).collect());
            return map.entry(node).or_insert(fresh);
        }
        let i = match small.iter().position(|(n, _)| *n == node) {
            Some(i) => i,
            None => {
                small.push((node, fresh));
                small.len() - 1
            }
        };
        &mut small[i].1
    }
}

/// One match of a topic against the trie: a depth-first walk over (node, position) states.
struct Walk<'t, 'w, K, F> {
    nodes: &'t [Node<K>],
    /// The topic's segments as symbols ([`NO_SYM`] for a segment no pattern uses).
    topic: &'w [Sym],
    memo: Memo,
    visit: F,
}

impl<'t, K, F> Walk<'t, '_, K, F>
where
    F: FnMut(&'t [(K, usize)]) -> ControlFlow<()>,
{
    /// Visits `node` having consumed `pos` segments. `below_many`: a `**` lies on the path,
    /// so this node may be reached again at another position.
    fn at(&mut self, node: usize, pos: usize, below_many: bool) -> ControlFlow<()> {
        let nodes = self.nodes;
        let n = &nodes[node];
        match self.topic.get(pos) {
            None => {
                if !n.entries.is_empty() {
                    (self.visit)(&n.entries)?;
                }
            }
            Some(&sym) => {
                if let Some(child) = n.literal.get(sym) {
                    self.at(index(child), pos + 1, below_many)?;
                }
                if let Some(child) = n.one {
                    self.at(index(child), pos + 1, below_many)?;
                }
            }
        }
        match n.many {
            Some(child) => self.many(child, pos, below_many),
            None => Continue(()),
        }
    }

    /// Enters the `**` node `node` at `pos`: it stands at `pos` (zero segments taken) and at
    /// every later position, each visited once per match.
    fn many(&mut self, node: NodeId, pos: usize, below_many: bool) -> ControlFlow<()> {
        let past_end = self.topic.len() + 1;
        // Without a `**` above, the path to this node is fixed and it is entered only once.
        let end = match below_many {
            true => self.memo.claim(node, pos, past_end),
            false => past_end,
        };
        for p in pos..end {
            self.at(index(node), p, true)?;
        }
        Continue(())
    }
}

/// Iterator over a trie's entries, from [`Trie::patterns`].
pub struct Patterns<'a, K> {
    nodes: &'a [Node<K>],
    symbols: &'a Symbols,
    /// Nodes still to visit: index, depth, and the segment leading into it.
    stack: Vec<(usize, usize, &'a str)>,
    /// Segments from the root to the node being reported.
    path: Vec<&'a str>,
    /// Pattern of the node being reported, its remaining entries, and the copies left of the
    /// current entry.
    pattern: Option<Pattern>,
    entries: std::slice::Iter<'a, (K, usize)>,
    copies: Option<(&'a K, usize)>,
}

impl<'a, K> Iterator for Patterns<'a, K> {
    type Item = (Pattern, &'a K);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, left)) = &mut self.copies {
                if *left > 0 {
                    *left -= 1;
                    return Some((self.pattern.clone()?, *key));
                }
            }
            if let Some((key, count)) = self.entries.next() {
                self.copies = Some((key, *count));
                continue;
            }
            let (node, depth, segment) = self.stack.pop()?;
            self.enter(node, depth, segment);
        }
    }
}

impl<'a, K> Patterns<'a, K> {
    /// Makes `node` the one being reported and queues its children.
    fn enter(&mut self, node: usize, depth: usize, segment: &'a str) {
        self.path.truncate(depth.saturating_sub(1));
        if depth > 0 {
            self.path.push(segment);
        }
        let (nodes, symbols) = (self.nodes, self.symbols);
        let n = &nodes[node];
        if !n.entries.is_empty() {
            self.pattern = Some(Pattern::from_checked(self.path.join(".")));
            self.entries = n.entries.iter();
        }
        let stack = &mut self.stack;
        n.literal
            .for_each(|sym, id| stack.push((index(id), depth + 1, symbols.text(sym))));
        if let Some(id) = n.one {
            stack.push((index(id), depth + 1, "*"));
        }
        if let Some(id) = n.many {
            stack.push((index(id), depth + 1, "**"));
        }
    }
}
