//! Tokenizer and recursive-descent parser for conditions:
//!
//! ```text
//! any  := all ("|" all)*
//! all  := atom ("&" atom)*
//! atom := UNIT | "(" any ")"
//! ```
//!
//! A UNIT token is a maximal run of characters that are neither whitespace nor `&|()`; it is
//! split on `:` afterwards, so that a malformed unit is reported whole.

use super::error::Fault;
use super::{Condition, ConditionError, ErrorKind, Unit};

/// How deep parentheses may nest. The parser recurses once per level, so this bounds its
/// stack use on hostile input (and no real condition comes close).
pub(super) const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Unit(&'a str),
    And,
    Or,
    Open,
    Close,
    End,
}

impl Token<'_> {
    /// The token as written, for error messages.
    fn text(&self) -> &str {
        match self {
            Token::Unit(text) => text,
            Token::And => "&",
            Token::Or => "|",
            Token::Open => "(",
            Token::Close => ")",
            Token::End => "",
        }
    }
}

/// A token and its 1-based column (in characters) in the input.
#[derive(Debug, Clone, Copy)]
struct Lexeme<'a> {
    token: Token<'a>,
    column: usize,
}

/// Parses a whole condition; see the module docs for the grammar.
pub(super) fn parse(input: &str) -> Result<Condition, ConditionError> {
    parse_tokens(input).map_err(|fault| fault.into_error(input))
}

fn parse_tokens(input: &str) -> Result<Condition, Fault> {
    let mut parser = Parser {
        lexemes: lex(input),
        at: 0,
        depth: 0,
    };
    if parser.peek().token == Token::End {
        return Err(Fault::new(ErrorKind::Empty, 1));
    }
    let condition = parser.any()?;
    let next = parser.peek();
    match next.token {
        Token::End => Ok(condition),
        Token::Close => Err(Fault::new(
            ErrorKind::Unbalanced { paren: ')' },
            next.column,
        )),
        _ => Err(unexpected(next)),
    }
}

/// Splits `input` into tokens; always ends with [`Token::End`].
fn lex(input: &str) -> Vec<Lexeme<'_>> {
    let mut out = Vec::new();
    // Byte offset and column where the current unit token started.
    let mut unit: Option<(usize, usize)> = None;
    let mut column = 0;
    for (at, c) in input.char_indices() {
        column += 1;
        let token = match c {
            '&' => Some(Token::And),
            '|' => Some(Token::Or),
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            c if c.is_whitespace() => None,
            _ => {
                unit.get_or_insert((at, column));
                continue;
            }
        };
        if let Some((start, unit_column)) = unit.take() {
            out.push(unit_lexeme(&input[start..at], unit_column));
        }
        if let Some(token) = token {
            out.push(Lexeme { token, column });
        }
    }
    if let Some((start, unit_column)) = unit {
        out.push(unit_lexeme(&input[start..], unit_column));
    }
    out.push(Lexeme {
        token: Token::End,
        column: column + 1,
    });
    out
}

fn unit_lexeme(text: &str, column: usize) -> Lexeme<'_> {
    Lexeme {
        token: Token::Unit(text),
        column,
    }
}

fn unexpected(lexeme: Lexeme<'_>) -> Fault {
    let found = lexeme.token.text().to_owned();
    Fault::new(ErrorKind::Unexpected { found }, lexeme.column)
}

struct Parser<'a> {
    /// Never empty: [`lex`] always ends it with `End`.
    lexemes: Vec<Lexeme<'a>>,
    /// Index of the next lexeme; never moves past the final `End`.
    at: usize,
    /// Current parenthesis nesting.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Lexeme<'a> {
        let end = Lexeme {
            token: Token::End,
            column: 1,
        };
        self.lexemes.get(self.at).copied().unwrap_or(end)
    }

    fn next(&mut self) -> Lexeme<'a> {
        let lexeme = self.peek();
        if lexeme.token != Token::End {
            self.at += 1;
        }
        lexeme
    }

    fn eat(&mut self, token: Token<'_>) -> bool {
        let found = self.peek().token == token;
        if found {
            self.at += 1;
        }
        found
    }

    /// `all ("|" all)*`
    fn any(&mut self) -> Result<Condition, Fault> {
        let mut condition = self.all()?;
        while self.eat(Token::Or) {
            condition = condition.or(self.all()?);
        }
        Ok(condition)
    }

    /// `atom ("&" atom)*`
    fn all(&mut self) -> Result<Condition, Fault> {
        let mut condition = self.atom()?;
        while self.eat(Token::And) {
            condition = condition.and(self.atom()?);
        }
        Ok(condition)
    }

    /// `UNIT | "(" any ")"`
    fn atom(&mut self) -> Result<Condition, Fault> {
        let lexeme = self.next();
        match lexeme.token {
            Token::Unit(text) => Unit::parse(text, lexeme.column).map(Condition::from),
            Token::Open => self.group(lexeme.column),
            Token::End => Err(Fault::new(ErrorKind::UnexpectedEnd, lexeme.column)),
            _ => Err(unexpected(lexeme)),
        }
    }

    /// The rest of a parenthesized group whose `(` is at `open`.
    fn group(&mut self, open: usize) -> Result<Condition, Fault> {
        if self.depth == MAX_DEPTH {
            return Err(Fault::new(ErrorKind::TooDeep { max: MAX_DEPTH }, open));
        }
        self.depth += 1;
        let condition = self.any()?;
        self.depth -= 1;
        let close = self.next();
        match close.token {
            Token::Close => Ok(condition),
            Token::End => Err(Fault::new(ErrorKind::Unbalanced { paren: '(' }, open)),
            _ => Err(unexpected(close)),
        }
    }
}
