//! Pub/sub topics, subscription patterns, and the trie that matches a published topic
//! against many patterns at once (DESIGN §9).
//!
//! A **topic** is `.`-separated, non-empty segments: `sensors.kitchen.temp`. A **pattern** may
//! also use two wildcards, each only as a whole segment and anywhere in the pattern (first,
//! middle, last, several times): `*` matches exactly one segment and `**` matches zero or
//! more, so `sensors.**` matches `sensors` itself and `**` alone matches every topic.
//! Publishing takes literal topics only.
//!
//! Both are bounded ([`MAX_LEN`] bytes, [`MAX_SEGMENTS`] segments) and may not contain
//! whitespace or control characters, so a topic is always safe to print in a log line. Bad
//! input gives a [`TopicError`] naming the offending segment; nothing here panics on input.
//!
//! # Layout
//! - [`check_topic`] / [`Topic`]: a checked topic, split once so it can be matched many times.
//! - [`Pattern`]: a checked pattern. [`Pattern::matches`] is the direct matcher, used alone
//!   for a handful of patterns and as the reference the trie is tested against.
//! - [`Trie`]: many `(pattern, key)` entries. Its matching cost depends on the topic and on
//!   how many patterns share its prefixes, not on the total number of patterns.
//! - [`TopicError`] / [`Reason`]: why a topic or pattern was refused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod trie;

pub use trie::{Patterns, Trie};

/// Longest topic or pattern accepted, in bytes.
pub const MAX_LEN: usize = 1024;

/// Most segments a topic or pattern may have.
pub const MAX_SEGMENTS: usize = 64;

/// How much of a refused input an error message repeats (in characters); enough to recognise
/// it, short enough that a 1 KiB topic doesn't flood the log.
const SHOWN_CHARS: usize = 48;

/// What was being checked when a [`TopicError`] arose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A topic to publish to (literal segments only).
    Topic,
    /// A subscription pattern (may contain `*` and `**`).
    Pattern,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::Topic => "topic",
            Subject::Pattern => "pattern",
        })
    }
}

/// Why a topic or pattern was refused. Segment numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The whole text is empty.
    Empty,
    /// Longer than [`MAX_LEN`] bytes.
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// More than [`MAX_SEGMENTS`] segments.
    TooManySegments {
        /// Number of segments in the input.
        count: usize,
    },
    /// An empty segment: `a..b`, `.a` or `a.`.
    EmptySegment {
        /// Which segment.
        index: usize,
    },
    /// A `*` or `**` segment in a topic: publishing takes literal topics only.
    WildcardInTopic {
        /// Which segment.
        index: usize,
        /// The wildcard found (`*` or `**`).
        wildcard: &'static str,
    },
    /// `*` together with other text in one segment (`b*`, `**b`, `***`).
    MixedWildcard {
        /// Which segment.
        index: usize,
        /// The segment, escaped and shortened for display.
        segment: String,
    },
    /// A whitespace or control character in a segment.
    BadChar {
        /// Which segment.
        index: usize,
        /// The segment, escaped and shortened for display.
        segment: String,
        /// The first offending character.
        ch: char,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Empty => write!(f, "it is empty"),
            Reason::TooLong { len } => {
                write!(f, "{len} bytes is over the limit of {MAX_LEN} bytes")
            }
            Reason::TooManySegments { count } => {
                write!(
                    f,
                    "{count} segments is over the limit of {MAX_SEGMENTS} segments"
                )
            }
            Reason::EmptySegment { index } => write!(f, "segment {index} is empty"),
            Reason::WildcardInTopic { wildcard, .. } => {
                write!(
                    f,
                    "`{wildcard}` is a wildcard; publish to literal topics only"
                )
            }
            Reason::MixedWildcard { index, segment } => {
                write!(f, "segment {index} `{segment}` mixes a wildcard with text")
            }
            Reason::BadChar { index, segment, ch } => {
                let what = if ch.is_control() {
                    "a control character"
                } else {
                    "whitespace"
                };
                let code = u32::from(*ch);
                write!(
                    f,
                    "segment {index} `{segment}` contains {what} (U+{code:04X})"
                )
            }
        }
    }
}

/// A refused topic or pattern: `bad pattern `a..b`: segment 2 is empty`.
///
/// The message repeats the input escaped (control characters as `\n`, `\u{7}`…) and cut to
/// a few dozen characters, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {subject} `{shown}`: {reason}")]
pub struct TopicError {
    subject: Subject,
    shown: String,
    reason: Reason,
}

impl TopicError {
    fn new(subject: Subject, input: &str, reason: Reason) -> Self {
        TopicError {
            subject,
            shown: shown(input),
            reason,
        }
    }

    /// Whether a topic or a pattern was refused.
    pub fn subject(&self) -> Subject {
        self.subject
    }

    /// What was wrong with it.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }
}

/// `text` made safe to print: control characters and non-space whitespace escaped, and cut
/// after [`SHOWN_CHARS`] characters.
fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks that `topic` is a valid topic to publish to: non-empty segments, no wildcards, no
/// whitespace or control characters, within [`MAX_LEN`] and [`MAX_SEGMENTS`].
pub fn check_topic(topic: &str) -> Result<(), TopicError> {
    Topic::parse(topic).map(|_| ())
}

/// Checks the whole of `text` as a topic or a pattern, calling `each(index, segment)` for
/// every segment (from 0) once the length limits are known to hold.
fn check<'a>(
    text: &'a str,
    subject: Subject,
    mut each: impl FnMut(usize, &'a str),
) -> Result<(), TopicError> {
    let fail = |reason| Err(TopicError::new(subject, text, reason));
    if text.is_empty() {
        return fail(Reason::Empty);
    }
    if text.len() > MAX_LEN {
        return fail(Reason::TooLong { len: text.len() });
    }
    // Counted before splitting so an over-long input is refused without further work.
    let count = text.bytes().filter(|&b| b == b'.').count() + 1;
    if count > MAX_SEGMENTS {
        return fail(Reason::TooManySegments { count });
    }
    for (i, segment) in text.split('.').enumerate() {
        if let Err(reason) = check_segment(segment, i + 1, subject) {
            return fail(reason);
        }
        each(i, segment);
    }
    Ok(())
}

/// Checks one segment; `index` counts from 1 and is only used in the error.
fn check_segment(segment: &str, index: usize, subject: Subject) -> Result<(), Reason> {
    // Fast path: printable ASCII without `*`, the overwhelming majority of segments.
    if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_graphic() && b != b'*') {
        return Ok(());
    }
    if segment.is_empty() {
        return Err(Reason::EmptySegment { index });
    }
    let wildcard = match segment {
        "*" => Some("*"),
        "**" => Some("**"),
        _ => None,
    };
    if let Some(wildcard) = wildcard {
        return match subject {
            Subject::Pattern => Ok(()),
            Subject::Topic => Err(Reason::WildcardInTopic { index, wildcard }),
        };
    }
    let bad = |c: &char| c.is_whitespace() || c.is_control();
    if let Some(ch) = segment.chars().find(bad) {
        let segment = shown(segment);
        return Err(Reason::BadChar { index, segment, ch });
    }
    if segment.contains('*') {
        let segment = shown(segment);
        return Err(Reason::MixedWildcard { index, segment });
    }
    Ok(())
}

/// A checked topic, split into segments once so it can be matched against many patterns
/// without splitting again. Borrowed from the text; it allocates nothing.
#[derive(Clone, Copy)]
pub struct Topic<'a> {
    text: &'a str,
    /// Byte offset where each segment ends; segment `i` starts after `ends[i - 1]`'s dot.
    /// `u16` suffices because a topic is at most [`MAX_LEN`] bytes.
    ends: [u16; MAX_SEGMENTS],
    count: usize,
}

impl<'a> Topic<'a> {
    /// Checks `text` as a topic (see [`check_topic`]) and splits it.
    pub fn parse(text: &'a str) -> Result<Self, TopicError> {
        let mut ends = [0u16; MAX_SEGMENTS];
        let mut count = 0;
        let mut end = 0usize;
        check(text, Subject::Topic, |i, segment| {
            end += segment.len() + usize::from(i > 0);
            // `check` has already bounded the length and the segment count.
            if let (Some(slot), Ok(e)) = (ends.get_mut(i), u16::try_from(end)) {
                *slot = e;
            }
            count = i + 1;
        })?;
        Ok(Topic { text, ends, count })
    }

    /// The topic as published.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Number of segments (at least 1).
    pub fn segment_count(&self) -> usize {
        self.count
    }

    /// Segment `i` (from 0), if there is one.
    pub fn segment(&self, i: usize) -> Option<&'a str> {
        if i >= self.count {
            return None;
        }
        let end = usize::from(*self.ends.get(i)?);
        let start = match i {
            0 => 0,
            _ => usize::from(*self.ends.get(i - 1)?) + 1,
        };
        self.text.get(start..end)
    }

    /// The segments in order.
    pub fn segments(&self) -> impl Iterator<Item = &'a str> {
        self.text.split('.')
    }

    /// Segment `i` for the matchers, which only ask for `i < count`; an out-of-range `i`
    /// reads as an empty segment, which no literal or wildcard node matches.
    fn seg(&self, i: usize) -> &'a str {
        self.segment(i).unwrap_or("")
    }
}

impl fmt::Debug for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Topic").field(&self.text).finish()
    }
}

/// One segment of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment<'a> {
    /// Matches exactly this text.
    Literal(&'a str),
    /// `*`: matches exactly one segment.
    One,
    /// `**`: matches zero or more segments.
    Many,
}

impl<'a> Segment<'a> {
    /// Classifies an already checked segment.
    fn of(segment: &'a str) -> Self {
        match segment {
            "*" => Segment::One,
            "**" => Segment::Many,
            text => Segment::Literal(text),
        }
    }

    /// The segment as written in the pattern.
    pub fn as_str(&self) -> &'a str {
        match self {
            Segment::Literal(text) => text,
            Segment::One => "*",
            Segment::Many => "**",
        }
    }
}

/// A checked subscription pattern such as `sensors.*.temp` or `logs.**`.
///
/// Compares, hashes and orders by its text. Serialized as that text; deserializing checks it,
/// so a pattern from the wire is as valid as one from [`Pattern::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    text: Box<str>,
}

impl Pattern {
    /// Checks `text` as a pattern: non-empty segments, `*` and `**` only as whole segments, no
    /// whitespace or control characters, within [`MAX_LEN`] and [`MAX_SEGMENTS`].
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        check(text, Subject::Pattern, |_, _| {})?;
        Ok(Pattern::from_checked(text.into()))
    }

    /// Wraps text known to be a valid pattern (built from checked segments).
    fn from_checked(text: String) -> Self {
        Pattern { text: text.into() }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> + '_ {
        self.text.split('.').map(Segment::of)
    }

    /// Whether `topic` matches. An invalid topic matches nothing.
    ///
    /// This checks and splits `topic` on every call; to test one topic against many patterns,
    /// parse it once with [`Topic::parse`] and use [`Pattern::matches_topic`], or use a
    /// [`Trie`].
    pub fn matches(&self, topic: &str) -> bool {
        Topic::parse(topic).is_ok_and(|topic| self.matches_topic(&topic))
    }

    /// Whether the checked `topic` matches.
    ///
    /// Glob matching over segments (`**` is the glob star, `*` the single-item wildcard) by
    /// the classic two-cursor scan: on a mismatch only the most recent `**` needs to take one
    /// more segment, so the cost is at most segments(pattern) × segments(topic) steps and
    /// nothing is allocated.
    pub fn matches_topic(&self, topic: &Topic<'_>) -> bool {
        let n = topic.segment_count();
        // Bytes rather than `str::split`: on segments this short a byte-slice split (a plain
        // loop) measured about twice as fast as the `char` searcher.
        let mut pattern = self.text.as_bytes().split(|&b| b == b'.');
        let mut t = 0;
        // After the last `**` seen: the rest of the pattern, and the topic position the `**`
        // would resume from if it took one more segment.
        let mut star = None;
        loop {
            match pattern.next() {
                Some(b"**") => {
                    star = Some((pattern.clone(), t));
                    continue;
                }
                Some(b"*") if t < n => {
                    t += 1;
                    continue;
                }
                Some(text) if t < n && text == topic.seg(t).as_bytes() => {
                    t += 1;
                    continue;
                }
                None if t == n => return true,
                _ => {}
            }
            match &mut star {
                Some((rest, resume)) if *resume < n => {
                    *resume += 1;
                    t = *resume;
                    pattern = rest.clone();
                }
                _ => return false,
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Pattern {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

impl TryFrom<String> for Pattern {
    type Error = TopicError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        check(&text, Subject::Pattern, |_, _| {})?;
        Ok(Pattern::from_checked(text))
    }
}

impl From<Pattern> for String {
    fn from(pattern: Pattern) -> Self {
        pattern.text.into()
    }
}

impl AsRef<str> for Pattern {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
#[path = "topic/tests.rs"]
mod tests;
