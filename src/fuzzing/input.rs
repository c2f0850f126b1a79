//! Splitting the fuzzer's bytes into the few parameters a target needs.

/// Reads parameters off the front of the input; what is left is the main payload.
pub(super) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// One byte (0 once the input is used up).
    pub(super) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A big-endian u64 of up to 8 bytes.
    pub(super) fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | u64::from(self.byte()))
    }

    /// A part of at most `max` bytes, its length given by the next byte (two bytes, big
    /// endian, when `max` is over 255).
    pub(super) fn part(&mut self, max: usize) -> &'a [u8] {
        let mut len = usize::from(self.byte());
        if max > 255 {
            len = len << 8 | usize::from(self.byte());
        }
        let len = (len % (max + 1)).min(self.data.len());
        let (part, rest) = self.data.split_at(len);
        self.data = rest;
        part
    }

    /// Everything not read yet.
    pub(super) fn rest(self) -> &'a [u8] {
        self.data
    }
}
