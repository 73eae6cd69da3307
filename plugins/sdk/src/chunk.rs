//! Content-defined chunks: cut points depend on the bytes around them, not on
//! offsets, so a block shared by two prompts yields the same chunks in both even
//! when it sits at different positions.

/// Average chunk size is about 64 bytes (a cut when the low 6 bits are zero).
const MASK: u64 = (1 << 6) - 1;
const MIN: usize = 16;
const MAX: usize = 256;

/// A gear table from a fixed seed (splitmix64), so chunks are stable everywhere.
const GEAR: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut i = 0;
    while i < 256 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
};

/// One chunk: where it lies and a 64-bit hash of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub len: usize,
    pub hash: u64,
}

/// Cut `data` into content-defined chunks of about 64 bytes (16 to 256).
pub fn chunks(data: &[u8]) -> Vec<Chunk> {
    let mut out = Vec::with_capacity(data.len() / 64 + 1);
    each_chunk(data, |c| out.push(c));
    out
}

/// The bytes before a cut that decide it: a cut tests the low six bits of the
/// gear hash, and byte `k` places back reaches them shifted by `k`, so only
/// the last six bytes count.
const DECIDING: usize = 6;

/// [`chunks`], handed on one by one. The same cuts as rolling the hash over
/// every byte and testing from the sixteenth on: only the low bits are tested
/// and only the last [`DECIDING`] bytes reach them (MIN is at least that), so
/// the hash starts that many bytes before the first place a cut may fall, and
/// the loop tests nothing else. Rolling and testing every byte was most of a
/// sub-agent check.
pub fn each_chunk(data: &[u8], mut take: impl FnMut(Chunk)) {
    const { assert!(MIN >= DECIDING) };
    let mut start = 0;
    while data.len() - start > MIN {
        let window = &data[start..data.len().min(start + MAX)];
        let mut h: u64 = 0;
        for &b in &window[MIN - DECIDING..MIN - 1] {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
        }
        let mut len = window.len();
        for (i, &b) in window.iter().enumerate().skip(MIN - 1) {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
            if h & MASK == 0 {
                len = i + 1;
                break;
            }
        }
        // A full window with no cut is cut at MAX; one cut short by the end
        // of the data is the last chunk (a cut at its last byte is that chunk).
        if len == window.len() && window.len() < MAX {
            break;
        }
        take(Chunk {
            start,
            len,
            hash: words_hash(&window[..len]),
        });
        start += len;
    }
    if start < data.len() {
        take(Chunk {
            start,
            len: data.len() - start,
            hash: words_hash(&data[start..]),
        });
    }
}

/// A chunk's 64-bit hash: eight bytes per multiply, then the splitmix64
/// finaliser. FNV-1a took a multiply per byte, the larger part of cutting a
/// prompt into chunks; chunk hashes only tell the chunks of one comparison
/// apart and are never kept, so the choice of hash changes no finding.
pub fn words_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let step = |h: u64, w: [u8; 8]| (h.rotate_left(26) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    let mut words = data.chunks_exact(8);
    let mut h = (&mut words).fold(data.len() as u64, |h, w| {
        step(h, w.try_into().expect("eight bytes"))
    });
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = step(h, last);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// FNV-1a, 64-bit: small, fast and good enough to tell chunks apart.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Bytes of `later` that also occur, chunk for chunk, in `first`.
pub fn shared_bytes(first: &[u8], later: &[u8]) -> u64 {
    Chunked::new(first).shared_bytes(later)
}

/// A text's chunk hashes, cut once and compared with any number of others
/// (a parent's first sub-agent against each of its siblings).
pub struct Chunked(std::collections::HashSet<u64, std::hash::BuildHasherDefault<AsIs>>);

impl Chunked {
    pub fn new(text: &[u8]) -> Self {
        let mut seen = std::collections::HashSet::default();
        each_chunk(text, |c| {
            seen.insert(c.hash);
        });
        Chunked(seen)
    }

    /// Bytes of `later` that also occur, chunk for chunk, in this text.
    pub fn shared_bytes(&self, later: &[u8]) -> u64 {
        let mut shared = 0;
        each_chunk(later, |c| {
            if self.0.contains(&c.hash) {
                shared += c.len as u64;
            }
        });
        shared
    }
}

/// Chunk hashes are mixed already: the set uses them as they are instead of
/// hashing them again (SipHash was a tenth of a sub-agent check).
#[derive(Default)]
pub struct AsIs(u64);

impl std::hash::Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_block_is_found_at_any_offset() {
        let block: String = (0..400)
            .map(|i| format!("line {i} of the diff\n"))
            .collect();
        let a = format!("You are reviewer A.\n{block}");
        let b = format!("Completely different and longer preface for reviewer B.\n{block}tail");
        let shared = shared_bytes(a.as_bytes(), b.as_bytes());
        let n = block.len() as u64;
        assert!(
            shared <= n + MAX as u64 && shared + 2 * MAX as u64 >= n,
            "{shared} vs {n}"
        );
    }

    /// Equal bytes hash equal; the chunks of a long text, and texts that
    /// differ only by trailing zero bytes or one byte anywhere, do not.
    #[test]
    fn chunk_hashes_tell_chunks_apart() {
        let text: String = (0..3000).map(|i| format!("word{i} ")).collect();
        let cs = chunks(text.as_bytes());
        let distinct: std::collections::HashSet<&[u8]> = cs
            .iter()
            .map(|c| &text.as_bytes()[c.start..c.start + c.len])
            .collect();
        let hashes: std::collections::HashSet<u64> = cs.iter().map(|c| c.hash).collect();
        assert_eq!(hashes.len(), distinct.len());
        assert_eq!(words_hash(b"same bytes"), words_hash(b"same bytes"));
        assert_ne!(words_hash(b"abc"), words_hash(b"abc\0"));
        assert_ne!(words_hash(b""), words_hash(b"\0"));
        let base = vec![b'x'; 40];
        for i in 0..40 {
            let mut other = base.clone();
            other[i] = b'y';
            assert_ne!(words_hash(&base), words_hash(&other), "byte {i}");
        }
    }

    /// The definition, byte by byte: roll the gear hash over every byte and
    /// cut where its low bits are zero (from MIN bytes on) or at MAX.
    fn chunks_by_definition(data: &[u8]) -> Vec<Chunk> {
        let (mut out, mut start, mut h) = (Vec::new(), 0, 0u64);
        for (i, &b) in data.iter().enumerate() {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
            let len = i + 1 - start;
            if (len >= MIN && h & MASK == 0) || len >= MAX {
                out.push(Chunk {
                    start,
                    len,
                    hash: words_hash(&data[start..=i]),
                });
                start = i + 1;
                h = 0;
            }
        }
        if start < data.len() {
            let len = data.len() - start;
            out.push(Chunk {
                start,
                len,
                hash: words_hash(&data[start..]),
            });
        }
        out
    }

    #[test]
    fn chunks_cut_where_the_byte_by_byte_definition_cuts() {
        // Pseudo-random bytes, runs of one byte (no cut before MAX) and
        // lengths around MIN and MAX at the end.
        let mut x: u64 = 7;
        let mut noise = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        let random: Vec<u8> = (0..20_000).map(|_| noise()).collect();
        let text: Vec<u8> = (0..3000)
            .flat_map(|i| format!("word{i} ").into_bytes())
            .collect();
        for data in [&random[..], &text[..], &[b'a'; 1000][..]] {
            for end in (0..600).chain([MIN - 1, MIN, MIN + 1, MAX - 1, MAX, MAX + 1, data.len()]) {
                let d = &data[..end.min(data.len())];
                assert_eq!(chunks(d), chunks_by_definition(d), "{} bytes", d.len());
            }
        }
    }

    #[test]
    fn a_text_chunked_once_shares_what_the_definition_shares() {
        let a: String = (0..300)
            .map(|i| format!("line {i} of the diff\n"))
            .collect();
        let b = format!("Reviewer B.\n{a}");
        let c = format!("{}tail", &a[2000..]);
        let first = Chunked::new(a.as_bytes());
        let seen: std::collections::HashSet<u64> = chunks_by_definition(a.as_bytes())
            .iter()
            .map(|c| c.hash)
            .collect();
        for later in [&b, &c, &a] {
            let want: u64 = chunks_by_definition(later.as_bytes())
                .iter()
                .filter(|c| seen.contains(&c.hash))
                .map(|c| c.len as u64)
                .sum();
            assert_eq!(first.shared_bytes(later.as_bytes()), want);
            assert_eq!(shared_bytes(a.as_bytes(), later.as_bytes()), want);
        }
        assert!(first.shared_bytes(c.as_bytes()) > 0);
    }

    #[test]
    fn unrelated_texts_share_nothing() {
        let a: String = (0..200).map(|i| format!("alpha {i};")).collect();
        let b: String = (0..200).map(|i| format!("omega {};", i * 7)).collect();
        assert!(shared_bytes(a.as_bytes(), b.as_bytes()) < 64);
    }
}
