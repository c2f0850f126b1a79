//! Why a condition was rejected, with the offending part quoted and located.

use std::fmt;

/// A condition that could not be parsed or built. Nothing was registered.
///
/// `Display` reads `bad condition "<input>": <what>`, where `<what>` quotes the offending
/// part and gives its 1-based column (in characters), e.g.
/// ``bad condition "a:b:1 & & c:d:1": unexpected `&` at column 9``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    input: String,
    column: usize,
    kind: ErrorKind,
}

impl ConditionError {
    /// The whole text that was rejected (for the builder: `source:tag:amount`).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The 1-based column, in characters, of the offending part.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What was wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad condition {:?}: {}", self.input, self.kind)?;
        match self.kind {
            ErrorKind::Empty => Ok(()),
            // Syntax errors point at a single character, so the column reads as part of
            // the sentence; part errors already quote their text, the column is a hint.
            ErrorKind::UnexpectedEnd
            | ErrorKind::Unexpected { .. }
            | ErrorKind::Unbalanced { .. }
            | ErrorKind::TooDeep { .. } => write!(f, " at column {}", self.column),
            _ => write!(f, " (column {})", self.column),
        }
    }
}

impl std::error::Error for ConditionError {}

/// Which field of a unit event an [`ErrorKind`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The `source` field.
    Source,
    /// The `tag` field.
    Tag,
    /// The `amount` field.
    Amount,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Source => "source",
            Part::Tag => "tag",
            Part::Amount => "amount",
        })
    }
}

/// What was wrong with a condition; [`ConditionError`] adds the input and the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is empty or only whitespace.
    #[error("condition is empty")]
    Empty,
    /// The input ends where a unit event or `(` is needed (after `&`, `|` or `(`).
    #[error("expected a unit event or `(` but the condition ends")]
    UnexpectedEnd,
    /// A token that cannot stand here, e.g. `&` after `&`, or two unit events in a row.
    #[error("unexpected `{found}`")]
    Unexpected {
        /// The token as written.
        found: String,
    },
    /// A `(` that is never closed or a `)` that was never opened.
    #[error("unbalanced `{paren}`")]
    Unbalanced {
        /// `(` or `)`.
        paren: char,
    },
    /// Parentheses nested deeper than the parser allows (it recurses once per level).
    #[error("`(` nested more than {max} levels deep")]
    TooDeep {
        /// The nesting limit.
        max: usize,
    },
    /// A unit event without exactly three `:`-separated fields.
    #[error("unit event `{unit}` needs source:tag:amount")]
    Arity {
        /// The unit event as written.
        unit: String,
    },
    /// A unit event with an empty field, e.g. `:update:1`.
    #[error("unit event `{unit}` has an empty {part}")]
    EmptyPart {
        /// The unit event as written.
        unit: String,
        /// The empty field.
        part: Part,
    },
    /// `*` used inside a longer source or tag (only a lone `*` is a wildcard).
    #[error("{part} `{text}` may use `*` only on its own")]
    Wildcard {
        /// The field.
        part: Part,
        /// The field as written.
        text: String,
    },
    /// A source or tag containing whitespace, a control character or one of `:&|()`.
    #[error("{part} `{text}` must not contain {ch:?}")]
    BadChar {
        /// The field.
        part: Part,
        /// The field as written.
        text: String,
        /// The first forbidden character.
        ch: char,
    },
    /// An amount that is not `N` or `P%` with ASCII digits.
    #[error("amount `{text}` is not a number")]
    NotANumber {
        /// The amount as written.
        text: String,
    },
    /// A negative amount.
    #[error("amount `{text}` must not be negative")]
    Negative {
        /// The amount as written.
        text: String,
    },
    /// A fractional amount.
    #[error("amount `{text}` is not a whole number")]
    Fractional {
        /// The amount as written.
        text: String,
    },
    /// `0` or `0%`: a unit that needs nothing would fire with no messages, forever.
    #[error("amount `{text}` must be at least 1{}", if text.ends_with('%') { "%" } else { "" })]
    Zero {
        /// The amount as written.
        text: String,
    },
    /// A percentage over 100.
    #[error("amount `{text}` is over 100%")]
    OverHundred {
        /// The amount as written.
        text: String,
    },
    /// An absolute amount over `u32::MAX`.
    #[error("amount `{text}` is too large (at most {})", u32::MAX)]
    TooLarge {
        /// The amount as written.
        text: String,
    },
}

/// An error before the input is attached: the parser and the unit checks produce these,
/// and the entry points turn them into [`ConditionError`]s.
#[derive(Debug)]
pub(super) struct Fault {
    kind: ErrorKind,
    column: usize,
}

impl Fault {
    pub(super) fn new(kind: ErrorKind, column: usize) -> Self {
        Fault { kind, column }
    }

    pub(super) fn into_error(self, input: &str) -> ConditionError {
        ConditionError {
            input: input.to_owned(),
            column: self.column,
            kind: self.kind,
        }
    }
}
