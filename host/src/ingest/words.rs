//! Bytes compared eight at a time in a `u64`: the readers look for a few byte
//! values in every string and attribute name of every span, and on texts this
//! short a word at a time beats a byte at a time and a vector search's set-up.
//!
//! A flag can be false only above a true one in its word (a borrow runs
//! upwards), so the lowest flagged byte, and whether any byte is flagged, hold.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` below `n` (at most 0x80).
pub fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
}

/// The high bit of each byte of `w` equal to `c`.
pub fn equal(w: u64, c: u8) -> u64 {
    below(w ^ (ONES * u64::from(c)), 1)
}
