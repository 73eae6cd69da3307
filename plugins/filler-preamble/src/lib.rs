//! filler-preamble: replies that open with agreement or praise ("You're absolutely
//! right…") before the answer; every such preamble is paid at the output price.

use std::collections::BTreeMap;
use tokenhound_sdk::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct FillerPreamble {
    openers: Vec<String>,
    max_preamble_chars: usize,
    bytes_per_token: f64,
    /// model → (responses, with filler)
    per_model: BTreeMap<String, (u64, u64)>,
}

/// Characters of a reply's opening compared with the openers.
const HEAD_CHARS: usize = 64;

/// The opener the text starts with, if any (case-insensitive, ’ read as ').
fn opener<'o>(text: &str, openers: &'o [String]) -> Option<&'o str> {
    let head = &text.as_bytes()[..text.len().min(HEAD_CHARS)];
    if head.is_ascii() {
        return ascii_opener(head, openers);
    }
    let head: String = text
        .chars()
        .take(HEAD_CHARS)
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect::<String>()
        .to_lowercase();
    openers.iter().map(String::as_str).find(|o| {
        head.starts_with(o)
            && !head[o.len()..]
                .chars()
                .next()
                .is_some_and(char::is_alphabetic)
    })
}

/// [`opener`] for an opening of ASCII only (most replies), without building
/// its lowercase copy: lowercasing ASCII is ASCII's own, byte for byte, and
/// no ’ can be there. Copying and lowercasing every reply's opening was most
/// of this detector's time.
fn ascii_opener<'o>(head: &[u8], openers: &'o [String]) -> Option<&'o str> {
    openers.iter().map(String::as_str).find(|o| {
        let o = o.as_bytes();
        head.len() >= o.len()
            // (openers are lowercased when the detector is made)
            && head[..o.len()].eq_ignore_ascii_case(o)
            && !head.get(o.len()).is_some_and(u8::is_ascii_alphabetic)
    })
}

/// The preamble: up to the first blank line when that is short enough, else the
/// first sentence (to the first . ! ? followed by white space or the end).
fn preamble(text: &str, max_chars: usize) -> &str {
    if let Some(i) = blank_line(text) {
        if text[..i].chars().count() <= max_chars {
            return &text[..i];
        }
    }
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') {
            let next = text[i + 1..].chars().next();
            if next.is_none_or(char::is_whitespace) {
                return &text[..=i];
            }
        }
    }
    &text[..bytes.len()]
}

/// Where the first "\n\n" starts (a byte search: the general substring
/// search cost more than the rest of a reply's check).
fn blank_line(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut at = 0;
    while let Some(i) = b[at..].iter().position(|&c| c == b'\n') {
        let i = at + i;
        match b.get(i + 1) {
            Some(b'\n') => return Some(i),
            Some(_) => at = i + 1,
            None => return None,
        }
    }
    None
}

impl Detector for FillerPreamble {
    fn save(&self) -> Option<Vec<u8>> {
        state::save(self)
    }
    fn restore(_: &Params, saved: &[u8]) -> Result<Self, String> {
        state::restore(saved)
    }
    fn metadata() -> Metadata {
        Metadata::new(
            "filler-preamble",
            env!("CARGO_PKG_VERSION"),
            "Replies that open with agreement or praise before the answer",
        )
        .param(Param::text_list(
            "openers",
            &[
                "you're absolutely right",
                "you are absolutely right",
                "great question",
                "good question",
                "excellent question",
                "what a great",
                "certainly!",
                "of course!",
                "absolutely!",
                "sure!",
                "good catch",
                "great catch",
                "thanks for asking",
                "i understand you",
                "you're right",
                "you are right",
            ],
            "openers that count as filler (case-insensitive)",
        ))
        .param(Param::integer(
            "max_preamble_chars",
            600,
            "longest first paragraph taken as the preamble",
        ))
        .param(Param::bytes_per_token())
        .needs(&[Field::Model, Field::OutputText])
        .kinds(CALLS_AND_AGENTS)
    }

    fn new(p: &Params) -> Result<Self, String> {
        let openers = p
            .strings("openers")
            .iter()
            .map(|o| o.replace('\u{2019}', "'").to_lowercase())
            .collect();
        Ok(FillerPreamble {
            openers,
            max_preamble_chars: p.u64("max_preamble_chars") as usize,
            bytes_per_token: p.bytes_per_token()?,
            per_model: BTreeMap::new(),
        })
    }

    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        let mut out = Vec::new();
        for row in (0..b.len() as u32).filter(|&r| b.is_llm(r)) {
            let Some(text) = b.text(row, TextField::Output) else {
                continue;
            };
            let model = b.model(row).unwrap_or("(unknown model)");
            // Counted without a copy of the model's name once it is known.
            let counts = match self.per_model.get_mut(model) {
                Some(c) => c,
                None => self.per_model.entry(model.to_string()).or_default(),
            };
            counts.0 += 1;
            let text = text.trim_start();
            let Some(op) = opener(text, &self.openers) else {
                continue;
            };
            counts.1 += 1;
            let model = model.to_string();
            let pre = preamble(text, self.max_preamble_chars);
            let tokens = content_tokens(pre.len() as u64, self.bytes_per_token);
            let shown: String = pre.chars().take(120).collect();
            out.push(
                Finding::new(
                    format!("reply opens with \"{op}\""),
                    format!("The reply spends {tokens} output tokens on a preamble before the answer: \"{shown}\""),
                    "Add a system instruction: \"Do not restate the request or open with agreement. Begin with the answer.\"",
                )
                .session(b.session(row))
                .trace(b.trace(row))
                .span(b.span_ref(row))
                .charge(b.span_ref(row), tokens)
                .output_tokens()
                // The pattern (spec "Patterns"): the model and the opener.
                .pattern(format!("{model}: {op}"))
                .evidence("model", &model)
                .evidence("opener", op)
                .evidence("preamble_bytes", pre.len()),
            );
        }
        out
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let mut c = Vec::new();
        for (m, (n, f)) in &self.per_model {
            c.push((format!("responses of {m}"), *n));
            c.push((format!("filler openers of {m}"), *f));
        }
        c
    }
}

detector!(FillerPreamble);
