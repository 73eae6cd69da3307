//! The spec's message normalisation, in its order: UUIDs → `<uuid>`, runs of
//! 8 or more hex digits → `<hex>`, other runs of digits → `#`, quoted strings →
//! `"…"`, white space collapsed and trimmed, then the first 120 characters.

fn is_hex(c: char) -> bool {
    c.is_ascii_hexdigit()
}

/// Whether `s` starts with a UUID (8-4-4-4-12 hex digits).
fn uuid_at(s: &[char]) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (g, &len) in GROUPS.iter().enumerate() {
        if s.len() < i + len || !s[i..i + len].iter().all(|&c| is_hex(c)) {
            return false;
        }
        i += len;
        if g < 4 {
            if s.get(i) != Some(&'-') {
                return false;
            }
            i += 1;
        }
    }
    !s.get(i).is_some_and(|&c| is_hex(c))
}

fn uuids(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        let starts = i == 0 || !is_hex(c[i - 1]);
        if starts && uuid_at(&c[i..]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Replace maximal runs of chars matching `in_run` by `with` when `long_enough`.
fn runs(
    s: &str,
    in_run: fn(char) -> bool,
    long_enough: impl Fn(&str) -> bool,
    with: &str,
) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if !run.is_empty() {
            if long_enough(run) {
                out.push_str(with);
            } else {
                out.push_str(run);
            }
            run.clear();
        }
    };
    for c in s.chars() {
        if in_run(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn quoted(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '"' || c[i] == '\'' {
            if let Some(end) = c[i + 1..].iter().position(|&x| x == c[i]) {
                out.push_str("\"…\"");
                i += end + 2;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

pub fn normalise(message: &str) -> String {
    let s = uuids(message);
    let s = runs(&s, is_hex, |r| r.chars().count() >= 8, "<hex>");
    let s = runs(&s, |c| c.is_ascii_digit(), |_| true, "#");
    let s = quoted(&s);
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn ids_and_numbers_are_masked_so_retries_share_a_signature() {
        assert_eq!(
            normalise(
                "429 Too Many Requests: request 3f2a9c1e-1b2c-4d5e-8f90-a1b2c3d4e5f6 retry in 12s"
            ),
            "# Too Many Requests: request <uuid> retry in #s"
        );
        assert_eq!(
            normalise("trace deadbeefcafe0123 failed"),
            "trace <hex> failed"
        );
        assert_eq!(normalise("file 'a.rs'  not\tfound"), "file \"…\" not found");
        assert_eq!(
            normalise("code 7 of \"x\" at 0x1f"),
            "code # of \"…\" at #x#f"
        );
        assert_eq!(normalise(&"x".repeat(200)).chars().count(), 120);
    }
}
