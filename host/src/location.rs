//! Where something is in a text, for located errors: every reader, pack and
//! mapping error names a line, counted the same way here.

/// The 1-based line of byte `offset` in `text` (an offset past the end is the
/// last line).
pub fn line_of(text: &[u8], offset: usize) -> u64 {
    1 + text[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
}

/// The line a TOML error points at, or 0 when it points nowhere.
pub fn toml_line(text: &str, e: &toml::de::Error) -> u64 {
    e.span().map_or(0, |s| line_of(text.as_bytes(), s.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one_and_an_offset_past_the_end_is_the_last() {
        assert_eq!(line_of(b"a\nb\nc", 0), 1);
        assert_eq!(line_of(b"a\nb\nc", 2), 2);
        assert_eq!(line_of(b"a\nb\nc", 99), 3);
    }
}
