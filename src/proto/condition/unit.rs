//! Unit events (`source:tag:amount`) and the checks shared by the parser and the builder, so
//! both reject exactly the same things with exactly the same messages.

use std::fmt;

use super::error::Fault;
use super::{ErrorKind, Part, Peer};

/// How many messages a unit event needs before it is satisfied.
///
/// The variants are plain numbers so that `Amount::Count(3)` reads naturally; the invalid
/// ones (`Count(0)`, `Percent(0)`, `Percent(101..)`) are rejected by [`Unit::new`] and
/// [`Condition::unit`](super::Condition::unit), so no [`Unit`] ever holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Amount {
    /// `N`: at least N messages (N ≥ 1), from any matching senders, not capped by the
    /// number of peers.
    Count(u32),
    /// `P%` (1 ≤ P ≤ 100): messages from at least max(1, ceil(P·n/100)) distinct senders,
    /// where n is the number of live peers matching the source.
    Percent(u8),
}

/// One `source:tag:amount` event; built only through [`Unit::new`] or the parser, so its
/// parts are always valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unit {
    source: String,
    tag: String,
    amount: Amount,
}

impl Unit {
    /// Checks and builds a unit event. The error is the one `source:tag:amount` would give
    /// to [`Condition::parse`](super::Condition::parse).
    pub fn new(
        source: impl Into<String>,
        tag: impl Into<String>,
        amount: Amount,
    ) -> Result<Self, super::ConditionError> {
        let (source, tag) = (source.into(), tag.into());
        let text = format!("{source}:{tag}:{amount}");
        let tag_column = 1 + source.chars().count() + 1;
        let amount_column = tag_column + tag.chars().count() + 1;
        check_name(Part::Source, &source, &text, 1)
            .and_then(|()| check_name(Part::Tag, &tag, &text, tag_column))
            .and_then(|()| amount.check(&amount.to_string(), amount_column))
            .map_err(|fault| fault.into_error(&text))?;
        Ok(Unit {
            source,
            tag,
            amount,
        })
    }

    /// Parses one `source:tag:amount` token that starts at `column` of the whole input.
    pub(super) fn parse(text: &str, column: usize) -> Result<Self, Fault> {
        let mut parts = text.split(':');
        let (Some(source), Some(tag), Some(amount), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            let unit = text.to_owned();
            return Err(Fault::new(ErrorKind::Arity { unit }, column));
        };
        let tag_column = column + source.chars().count() + 1;
        let amount_column = tag_column + tag.chars().count() + 1;
        check_name(Part::Source, source, text, column)?;
        check_name(Part::Tag, tag, text, tag_column)?;
        let amount = Amount::parse(amount, text, amount_column)?;
        Ok(Unit {
            source: source.to_owned(),
            tag: tag.to_owned(),
            amount,
        })
    }

    /// The source pattern: `*`, a role, or a name prefix.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The tag, or `*` for any tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// How many messages the unit needs.
    pub fn amount(&self) -> Amount {
        self.amount
    }

    /// Whether `peer` matches the source: `*`, an equal role, or a name starting with it.
    pub fn matches_peer(&self, peer: &Peer<'_>) -> bool {
        self.source == "*" || peer.role == self.source || peer.name.starts_with(&self.source)
    }

    /// Whether a message with `tag` matches the tag: `*` or equal.
    pub fn matches_tag(&self, tag: &str) -> bool {
        self.tag == "*" || self.tag == tag
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.source, self.tag, self.amount)
    }
}

impl Amount {
    /// Rejects the values no unit may hold; `text` is the amount as written and `column`
    /// locates it in the input.
    fn check(self, text: &str, column: usize) -> Result<(), Fault> {
        let text = text.to_owned();
        let kind = match self {
            Amount::Count(0) | Amount::Percent(0) => ErrorKind::Zero { text },
            Amount::Percent(101..) => ErrorKind::OverHundred { text },
            _ => return Ok(()),
        };
        Err(Fault::new(kind, column))
    }

    /// Parses `N` or `P%` (ASCII digits only) and checks it.
    fn parse(text: &str, unit: &str, column: usize) -> Result<Self, Fault> {
        if text.is_empty() {
            return Err(empty_part(Part::Amount, unit, column));
        }
        let (digits, percent) = match text.strip_suffix('%') {
            Some(digits) => (digits, true),
            None => (text, false),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Fault::new(not_a_number(text, digits), column));
        }
        let amount = Self::from_digits(digits, percent)
            .ok_or_else(|| Fault::new(out_of_range(text, percent), column))?;
        amount.check(text, column).map(|()| amount)
    }

    /// The amount for ASCII `digits`, or `None` if it does not fit the variant's type.
    fn from_digits(digits: &str, percent: bool) -> Option<Self> {
        let value = digits.bytes().try_fold(0u64, |acc, b| {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        })?;
        if percent {
            u8::try_from(value).ok().map(Amount::Percent)
        } else {
            u32::try_from(value).ok().map(Amount::Count)
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

fn out_of_range(text: &str, percent: bool) -> ErrorKind {
    let text = text.to_owned();
    if percent {
        ErrorKind::OverHundred { text }
    } else {
        ErrorKind::TooLarge { text }
    }
}

/// Says *why* an amount is not a plain number, because "`-3` is not a number" would be
/// confusing.
fn not_a_number(text: &str, digits: &str) -> ErrorKind {
    let text = text.to_owned();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match digits.strip_prefix('-') {
        Some(rest) if numeric(rest) => ErrorKind::Negative { text },
        _ if digits.contains('.') && numeric(digits) => ErrorKind::Fractional { text },
        _ => ErrorKind::NotANumber { text },
    }
}

/// Checks a source or tag. The forbidden characters are the grammar's own (so `Display`
/// always round-trips) plus control characters, which have no business in a name.
fn check_name(part: Part, text: &str, unit: &str, column: usize) -> Result<(), Fault> {
    if text.is_empty() {
        return Err(empty_part(part, unit, column));
    }
    if text == "*" {
        return Ok(());
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || ":&|()*".contains(c);
    let Some((offset, ch)) = text.chars().enumerate().find(|&(_, c)| bad(c)) else {
        return Ok(());
    };
    let text = text.to_owned();
    let kind = if ch == '*' {
        ErrorKind::Wildcard { part, text }
    } else {
        ErrorKind::BadChar { part, text, ch }
    };
    Err(Fault::new(kind, column + offset))
}

fn empty_part(part: Part, unit: &str, column: usize) -> Fault {
    let unit = unit.to_owned();
    Fault::new(ErrorKind::EmptyPart { unit, part }, column)
}
