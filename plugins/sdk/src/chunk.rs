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
    let mut start = 0;
    let mut h: u64 = 0;
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
        out.push(Chunk {
            start,
            len: data.len() - start,
            hash: words_hash(&data[start..]),
        });
    }
    out
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
    let seen: std::collections::HashSet<u64> = chunks(first).iter().map(|c| c.hash).collect();
    chunks(later)
        .iter()
        .filter(|c| seen.contains(&c.hash))
        .map(|c| c.len as u64)
        .sum()
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

    #[test]
    fn unrelated_texts_share_nothing() {
        let a: String = (0..200).map(|i| format!("alpha {i};")).collect();
        let b: String = (0..200).map(|i| format!("omega {};", i * 7)).collect();
        assert!(shared_bytes(a.as_bytes(), b.as_bytes()) < 64);
    }
}
