//! The last lines a service printed: a bounded ring, numbered so that `mpreg logs -f` can
//! ask for what came after the last line it saw.

use std::collections::VecDeque;

use super::status::LogLine;

/// Lines kept per service; older ones are dropped (and counted).
pub const LOG_LINES: usize = 1000;

/// Longest line kept, in bytes; the rest is cut and marked.
pub const LINE_BYTES: usize = 4096;

/// A service's recent output, both streams interleaved in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    lines: VecDeque<LogLine>,
    /// Number of the next line (one more than the newest line's `seq`).
    next: u64,
}

impl Ring {
    /// Appends one line of `stream` (`stdout` or `stderr`), dropping the oldest when full.
    pub fn push(&mut self, stream: &'static str, mut text: String) {
        if text.len() > LINE_BYTES {
            let mut cut = LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" [line cut]");
        }
        if self.lines.len() == LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(LogLine {
            seq: self.next,
            stream: stream.to_string(),
            text,
        });
        self.next += 1;
    }

    /// At most the last `n` lines numbered `after` or later.
    pub fn tail(&self, n: usize, after: u64) -> Vec<LogLine> {
        let newer: Vec<&LogLine> = self.lines.iter().filter(|l| l.seq >= after).collect();
        newer[newer.len().saturating_sub(n)..]
            .iter()
            .map(|l| (*l).clone())
            .collect()
    }

    /// The number the next line will get.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The last `n` lines as text, for error messages.
    pub fn last_text(&self, n: usize) -> String {
        self.tail(n, 0)
            .into_iter()
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
