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
                hash: fnv1a(&data[start..=i]),
            });
            start = i + 1;
            h = 0;
        }
    }
    if start < data.len() {
        out.push(Chunk {
            start,
            len: data.len() - start,
            hash: fnv1a(&data[start..]),
        });
    }
    out
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

    #[test]
    fn unrelated_texts_share_nothing() {
        let a: String = (0..200).map(|i| format!("alpha {i};")).collect();
        let b: String = (0..200).map(|i| format!("omega {};", i * 7)).collect();
        assert!(shared_bytes(a.as_bytes(), b.as_bytes()) < 64);
    }
}
