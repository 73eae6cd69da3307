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
//!
//! Where a block ends depends on the lines only, never on how many bytes a
//! read returned: a block is its lines up to the first that brings their
//! length to the block size. A pipe hands out bytes in whatever pieces its
//! writer wrote, and blocks that followed the reads made the same input give
//! different blocks from run to run (and assembly closes quiet traces at
//! block ends).

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
    /// the length of the complete lines held, newlines counted (see [`LineBlocks::ready`])
    length: usize,
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
            length: 0,
            open: 0,
            line_no: 0,
            skipping: None,
            too_long: Vec::new(),
            max,
        }
    }

    /// Read once and split what it completes. `Ok(false)` at the end of the
    /// stream, when a last line without a newline is ended too. On an error the
    /// lines completed before it stay (a broken stream keeps what it gave; its
    /// partial last line is not a line).
    ///
    /// `block` is the block size the lines are taken in (see
    /// [`LineBlocks::ready`]): a read asks for no more than the block still
    /// needs (and a little over, for its last line), so that the bytes left
    /// after a block, which [`LineBlocks::clear_block`] moves to the front,
    /// are a line or two rather than up to a whole chunk.
    pub fn fill(&mut self, r: &mut dyn Read, block: usize) -> std::io::Result<bool> {
        if self.buf.len() - self.end < MIN_READ {
            let size = (self.buf.len() * 2).max(self.end + MIN_READ);
            self.buf.resize(size, 0);
        }
        let room = self.buf.len().min(self.end + self.read_size(block));
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

    /// How much to ask of the stream toward a block of `block` bytes: what it
    /// still lacks and [`MIN_READ`] over, at most [`CHUNK`]; once the bytes
    /// held make the block, [`MIN_READ`] at a time until its last line ends.
    fn read_size(&self, block: usize) -> usize {
        let held = self.length + (self.end - self.open);
        match block.checked_sub(held) {
            Some(lacks) if lacks > 0 => lacks.saturating_add(MIN_READ).min(CHUNK),
            _ => MIN_READ,
        }
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
            None => {
                self.lines.push((self.line_no, self.open, end));
                self.length += end - self.open + 1;
            }
        }
    }

    /// How many of the complete lines held make a block of `size`: the lines
    /// up to the first that brings their length (newlines counted, lines read
    /// past not) to `size`, or, at the end of the stream, all of them. None
    /// while the lines held are shorter.
    pub fn ready(&self, size: usize, at_end: bool) -> Option<usize> {
        // Asked after every read (a pipe's are often 64 KiB): the lines are
        // walked only once they make a block, not at each read.
        if self.length < size {
            return (at_end && !self.lines.is_empty()).then_some(self.lines.len());
        }
        let mut length = 0;
        let last = self.lines.iter().position(|&(_, s, e)| {
            length += e - s + 1;
            length >= size
        });
        last.map(|i| i + 1)
    }

    /// The first `n` complete lines held, without `\r\n` or `\n`.
    pub fn block(&self, n: usize) -> Vec<(u64, &[u8])> {
        self.lines[..n]
            .iter()
            .map(|&(no, s, e)| {
                let line = &self.buf[s..e];
                (no, line.strip_suffix(b"\r").unwrap_or(line))
            })
            .collect()
    }

    /// Forget the first `n` complete lines (after [`LineBlocks::block`] was
    /// used); the lines after them and the partial line move to the front.
    pub fn clear_block(&mut self, n: usize) {
        let from = self.lines.get(n).map_or(self.open, |&(_, s, _)| s);
        self.length -= self
            .lines
            .drain(..n)
            .map(|(_, s, e)| e - s + 1)
            .sum::<usize>();
        for (_, s, e) in &mut self.lines {
            *s -= from;
            *e -= from;
        }
        self.buf.copy_within(from..self.end, 0);
        self.end -= from;
        self.open -= from;
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
            let more = lb.fill(&mut r, usize::MAX).unwrap();
            let n = lb.ready(usize::MAX, true).unwrap_or(0);
            got.extend(
                lb.block(n)
                    .into_iter()
                    .map(|(n, l)| (n, String::from_utf8_lossy(l).to_string())),
            );
            long.append(&mut lb.too_long);
            lb.clear_block(n);
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

    /// A reader handing out its bytes in the pieces given, as a pipe does.
    struct Pieces<'a>(&'a [u8], std::vec::IntoIter<usize>);

    impl Read for Pieces<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.next().unwrap_or(usize::MAX);
            let n = n.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// The blocks of `size` of `input` read in `pieces`: each block's line numbers.
    fn blocks(input: &[u8], pieces: Vec<usize>, size: usize) -> Vec<Vec<u64>> {
        let mut lb = LineBlocks::new(100);
        let mut r = Pieces(input, pieces.into_iter());
        let mut out = Vec::new();
        loop {
            let more = lb.fill(&mut r, size).unwrap();
            while let Some(n) = lb.ready(size, !more) {
                out.push(lb.block(n).iter().map(|l| l.0).collect());
                lb.clear_block(n);
            }
            if !more {
                return out;
            }
        }
    }

    #[test]
    fn reads_stop_near_a_blocks_end_so_little_is_moved_after_it() {
        // 6 MiB of 1000-byte lines read from a file-like reader in blocks of 2 MiB
        let line = [b"x".repeat(999), b"\n".to_vec()].concat();
        let input = line.repeat(6 << 10);
        let (mut lb, mut r) = (LineBlocks::new(1 << 20), &input[..]);
        let mut blocks = 0;
        loop {
            let more = lb.fill(&mut r, 2 << 20).unwrap();
            while let Some(n) = lb.ready(2 << 20, !more) {
                lb.clear_block(n);
                blocks += 1;
                // what stays for the next block: a read's slack and a line
                assert!(lb.end <= MIN_READ + line.len(), "{} bytes moved", lb.end);
            }
            if !more {
                break;
            }
        }
        assert_eq!(blocks, 3);
    }

    #[test]
    fn blocks_end_where_the_lines_say_however_the_bytes_arrive() {
        // lines of 1 to 30 bytes, one of them too long and read past
        let mut input = Vec::new();
        for i in 0..400u32 {
            let len = if i == 77 { 150 } else { (i * 7 % 30) as usize };
            input.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
            input.push(b'\n');
        }
        input.extend_from_slice(b"last, without a newline");
        let whole = blocks(&input, vec![], 500);
        assert!(whole.len() > 10, "{} blocks", whole.len());
        // every block but the last is at least 500 bytes, and one line less is not
        let length = |b: &Vec<u64>| -> Vec<usize> {
            let lines: Vec<&[u8]> = input.split(|&c| c == b'\n').collect();
            b.iter()
                .map(|&no| lines[no as usize - 1].len() + 1)
                .collect()
        };
        for b in &whole[..whole.len() - 1] {
            let lens = length(b);
            let sum: usize = lens.iter().sum();
            assert!(sum >= 500 && sum - lens.last().unwrap() < 500, "{lens:?}");
        }
        for pieces in [
            vec![1; input.len()],
            vec![7, 300, 2, 1000, 13],
            vec![499, 1, 64],
        ] {
            let mut cycle = pieces.iter().copied().cycle();
            let pieces: Vec<usize> = (0..input.len()).map(|_| cycle.next().unwrap()).collect();
            assert_eq!(blocks(&input, pieces, 500), whole);
        }
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
