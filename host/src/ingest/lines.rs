//! Lines of a stream, a block at a time, for the line formats (OTLP JSON
//! lines, JSONL records). Chunks are read straight into one buffer and lines
//! are split there with memchr, so each byte is copied once from the kernel
//! and never again (a line-by-line read copied every line a second time). A line longer than the record limit is read
//! past in constant memory and reported with its number; the partial last line
//! of a block is carried to the next. The buffer starts small and doubles as
//! needed (a small file costs a small buffer), and is reused, so no read zeroes
//! memory first (`read_to_end` does, for every chunk). A finished reader leaves
//! its buffer to the next one on its thread: a folder of small files would
//! otherwise zero (and fault in) a fresh buffer per file.

use std::io::Read;

/// Bytes asked of the stream at a time, at most.
pub(super) const CHUNK: usize = 1 << 20;

/// The buffer's first size, and the least room a read is given.
pub const MIN_READ: usize = 64 << 10;

pub struct LineBlocks {
    /// initialised bytes; `buf[..end]` hold the stream's
    buf: Vec<u8>,
    end: usize,
    /// complete lines in `buf`: (line number, start, end before the newline)
    lines: Vec<(u64, usize, usize)>,
    /// where the current, incomplete line starts in `buf`
    open: usize,
    /// lines ended so far (numbers start at 1)
    pub line_no: u64,
    /// bytes of an over-long line read past so far
    skipping: Option<u64>,
    /// over-long lines met since the last look: (line number, bytes)
    pub too_long: Vec<(u64, u64)>,
    /// the record limit: a line (with its newline) longer than this is skipped
    max: usize,
}

thread_local! {
    /// The buffer the last reader on this thread left (see the module doc).
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Buffers larger than this are not kept for the next reader.
const KEEP_AT_MOST: usize = 4 * CHUNK;

impl Drop for LineBlocks {
    fn drop(&mut self) {
        if self.buf.len() <= KEEP_AT_MOST {
            SPARE.set(std::mem::take(&mut self.buf));
        }
    }
}

impl LineBlocks {
    pub fn new(max: usize) -> Self {
        LineBlocks {
            buf: SPARE.take(),
            end: 0,
            lines: Vec::new(),
            open: 0,
            line_no: 0,
            skipping: None,
            too_long: Vec::new(),
            max,
        }
    }

    /// Bytes held: complete lines and the partial one.
    pub fn held(&self) -> usize {
        self.end
    }

    /// Read once and split what it completes. `Ok(false)` at the end of the
    /// stream, when a last line without a newline is ended too. On an error the
    /// lines completed before it stay (a broken stream keeps what it gave; its
    /// partial last line is not a line).
    pub fn fill(&mut self, r: &mut dyn Read) -> std::io::Result<bool> {
        if self.buf.len() - self.end < MIN_READ {
            let size = (self.buf.len() * 2).max(self.end + MIN_READ);
            self.buf.resize(size, 0);
        }
        let room = self.buf.len().min(self.end + CHUNK);
        let n = loop {
            match r.read(&mut self.buf[self.end..room]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        let from = self.end;
        self.end += n;
        self.split(from);
        if n == 0 && (self.end > self.open || self.skipping.is_some()) {
            self.end_line(self.end, 0);
            self.open = self.end;
        }
        Ok(n > 0)
    }

    /// Split the lines that bytes from `from` on complete.
    fn split(&mut self, from: usize) {
        let ends: Vec<usize> = memchr::memchr_iter(b'\n', &self.buf[from..self.end])
            .map(|i| from + i)
            .collect();
        for end in ends {
            self.end_line(end, 1);
            self.open = end + 1;
        }
        let partial = (self.end - self.open) as u64;
        if self.skipping.is_some() || partial as usize > self.max {
            // Read past it: keep the count, not the bytes.
            *self.skipping.get_or_insert(0) += partial;
            self.end = self.open;
        }
    }

    /// The line from `open` to `end` ends (`newline`: 1 if a newline follows).
    fn end_line(&mut self, end: usize, newline: u64) {
        self.line_no += 1;
        let len = (end - self.open) as u64 + newline;
        match self.skipping.take() {
            Some(skipped) => self.too_long.push((self.line_no, skipped + len)),
            None if len as usize > self.max => self.too_long.push((self.line_no, len)),
            None => self.lines.push((self.line_no, self.open, end)),
        }
    }

    /// The complete lines held, without `\r\n` or `\n`.
    pub fn block(&self) -> Vec<(u64, &[u8])> {
        self.lines
            .iter()
            .map(|&(no, s, e)| {
                let line = &self.buf[s..e];
                (no, line.strip_suffix(b"\r").unwrap_or(line))
            })
            .collect()
    }

    /// Forget the complete lines (after [`LineBlocks::block`] was used); the
    /// partial line moves to the front.
    pub fn clear_block(&mut self) {
        self.lines.clear();
        self.buf.copy_within(self.open..self.end, 0);
        self.end -= self.open;
        self.open = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbered lines, and over-long ones with their lengths.
    type Split = (Vec<(u64, String)>, Vec<(u64, u64)>);

    fn all_lines(input: &[u8], max: usize) -> Split {
        let mut lb = LineBlocks::new(max);
        let mut r = input;
        let (mut got, mut long) = (Vec::new(), Vec::new());
        loop {
            let more = lb.fill(&mut r).unwrap();
            got.extend(
                lb.block()
                    .into_iter()
                    .map(|(n, l)| (n, String::from_utf8_lossy(l).to_string())),
            );
            long.append(&mut lb.too_long);
            lb.clear_block();
            if !more {
                return (got, long);
            }
        }
    }

    #[test]
    fn lines_are_numbered_and_a_last_line_without_newline_counts() {
        let (got, long) = all_lines(b"a\r\n\nbc\nd", 100);
        let want = [(1, "a"), (2, ""), (3, "bc"), (4, "d")];
        let want: Vec<(u64, String)> = want.iter().map(|(n, s)| (*n, s.to_string())).collect();
        assert_eq!(got, want);
        assert!(long.is_empty());
    }

    #[test]
    fn an_over_long_line_is_read_past_and_named_with_its_length() {
        let long_line = "x".repeat(3 * CHUNK);
        let input = format!("ok\n{long_line}\nafter\n{long_line}");
        let (got, long) = all_lines(input.as_bytes(), 10);
        assert_eq!(got, vec![(1, "ok".into()), (3, "after".into())]);
        let n = long_line.len() as u64;
        assert_eq!(long, vec![(2, n + 1), (4, n)]);
    }
}
