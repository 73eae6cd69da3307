//! error-patterns: the saved query "error patterns" (spec section 6). Errors of
//! tool and LLM calls grouped by signature (kind, tool or model, error type and
//! the message with ids and numbers masked), so 429s that differ only in a
//! request id are one pattern. Its waste is the tokens of the LLM calls spent
//! handling the errors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokenhound_sdk::date::utc_text;
use tokenhound_sdk::*;

mod normalise;
use normalise::normalise;

/// What is known of one signature so far.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Pattern {
    /// the tool (and server) or model, for the error rate
    subject: String,
    tool: bool,
    errors: u64,
    sessions: BTreeSet<String>,
    turns: BTreeSet<String>,
    first_ns: u64,
    last_ns: u64,
    /// errors by UTC hour of day
    hours: [u64; 24],
    raw_message: String,
    examples: Vec<SpanRef>,
    /// LLM calls charged, by span id: each counts once per signature
    charged: HashMap<(String, String), u64>,
    charges: Vec<(SpanRef, u64)>,
    /// charges already reported: a finding carries only the new ones, the host
    /// adds them up (its group is the signature)
    reported: usize,
    /// errors at the last report, to report again only when it changed
    reported_errors: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ErrorPatterns {
    min_count: u64,
    /// errors and calls outside it are not counted (`--since` / `--until`)
    window: Window,
    patterns: BTreeMap<String, Pattern>,
    /// calls of each tool or model, for the error rate
    calls: HashMap<String, u64>,
}

/// A call is an error: status ERROR or `error.type` set (`failed`), a tool
/// result marked as an error, or an HTTP status of 400 or more.
fn is_error(b: &Batch, row: u32) -> bool {
    b.failed(row) || b.tool_error(row) || b.http_status(row).is_some_and(|s| s >= 400)
}

/// The signature: kind, subject, error type, normalised message.
fn signature(b: &Batch, row: u32, subject: &str, tool: bool) -> (String, String) {
    let kind = if tool { "tool" } else { "llm" };
    let error_type = b
        .error_type(row)
        .map(String::from)
        .or_else(|| b.http_status(row).map(|s| s.to_string()))
        .unwrap_or_else(|| "error".to_string());
    let raw = b
        .status_message(row)
        .or_else(|| b.exception_message(row))
        .unwrap_or("");
    let message = normalise(raw);
    let key = if message.is_empty() {
        format!("{kind} {subject} {error_type}")
    } else {
        format!("{kind} {subject} {error_type}: {message}")
    };
    (key, raw.to_string())
}

impl ErrorPatterns {
    fn record_error(&mut self, b: &Batch, row: u32, subject: &str, tool: bool) -> String {
        let (key, raw) = signature(b, row, subject, tool);
        let p = self.patterns.entry(key.clone()).or_default();
        if p.errors == 0 {
            p.subject = subject.to_string();
            p.tool = tool;
            p.raw_message = raw;
            p.first_ns = b.start(row);
        }
        p.errors += 1;
        p.sessions.insert(b.session(row).to_string());
        p.turns.insert(b.trace(row).to_string());
        p.first_ns = p.first_ns.min(b.start(row));
        p.last_ns = p.last_ns.max(b.start(row));
        p.hours[((b.start(row) / 3_600_000_000_000) % 24) as usize] += 1;
        if p.examples.len() < 3 {
            p.examples.push(b.span_ref(row));
        }
        if !tool {
            // An LLM error: its own recorded tokens.
            p.charge(b, row);
        }
        key
    }

    /// The LLM calls of a turn spent handling a tool error: those starting after
    /// the error ended and before the tool's next successful call starts.
    fn charge_handling(&mut self, b: &Batch, rows: &[u32], at: usize, key: &str, subject: &str) {
        let err = rows[at];
        let end = b.end(err);
        let next_ok = rows[at + 1..]
            .iter()
            .copied()
            .find(|&r| {
                // A retry starting the instant the error ends is the next call
                // (as a handling LLM call starting then is after the error).
                b.start(r) >= end
                    && !is_error(b, r)
                    && b.call_group(r)
                        .is_some_and(|(s, tool)| tool && s == subject)
            })
            .map(|r| b.start(r));
        let p = self.patterns.get_mut(key).expect("recorded");
        for &r in rows.iter().filter(|&&r| b.is_llm(r)) {
            if b.start(r) >= end && next_ok.is_none_or(|t| b.start(r) < t) {
                p.charge(b, r);
            }
        }
    }

    /// The signatures at or over `min_count` that changed since they were last
    /// reported (all of them at the end, when `every`), each with only its new
    /// charges: in `watch` a pattern appears as soon as it has `min_count`
    /// errors and grows after.
    fn report(&mut self, every: bool) -> Vec<Finding> {
        let min = self.min_count;
        let due: Vec<String> = self
            .patterns
            .iter()
            .filter(|(_, p)| p.errors >= min && (every || p.errors != p.reported_errors))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in due {
            out.push(self.finding(&key, &self.patterns[&key]));
            let p = self.patterns.get_mut(&key).expect("due");
            p.reported = p.charges.len();
            p.reported_errors = p.errors;
        }
        out
    }

    fn finding(&self, key: &str, p: &Pattern) -> Finding {
        let calls = self
            .calls
            .get(&p.subject)
            .copied()
            .unwrap_or(p.errors)
            .max(1);
        let rate = p.errors as f64 * 100.0 / calls as f64;
        let (hour, at_hour) =
            p.hours.iter().enumerate().fold(
                (0, 0),
                |best, (h, &n)| if n > best.1 { (h, n) } else { best },
            );
        let fix = if key.contains(" 429") || key.to_lowercase().contains("rate_limit") {
            "Back off with jitter in the tool's client and cap retries per turn in the agent."
        } else if p.tool {
            "Fix the tool's failure or have it return a clear, final error the agent does not retry."
        } else {
            "Handle the provider's error in the client (retry with backoff, or a fallback model)."
        };
        let mut f = Finding::new(
            format!("{}: {} errors", key, p.errors),
            format!(
                "{} failed {} times with the same error ({rate:.1}% of its calls) in {} session{}; the LLM calls spent handling it are counted as waste.",
                p.subject,
                p.errors,
                p.sessions.len(),
                if p.sessions.len() == 1 { "" } else { "s" }
            ),
            fix,
        )
        .pattern(key)
        .spans(p.examples.iter().cloned())
        .evidence("errors", p.errors)
        .evidence("error_rate_pct", format!("{rate:.1}"))
        .evidence("sessions", p.sessions.len())
        .evidence("turns", p.turns.len())
        .evidence("first_seen", utc_text(p.first_ns))
        .evidence("last_seen", utc_text(p.last_ns))
        .evidence("peak_hour_utc", format!("{hour:02}:00"))
        .evidence("errors_at_peak_hour", at_hour)
        .evidence("message", &p.raw_message)
        .group(key);
        for (span, tokens) in &p.charges[p.reported..] {
            f = f.charge(span.clone(), *tokens);
        }
        f
    }
}

impl Pattern {
    fn charge(&mut self, b: &Batch, row: u32) {
        let id = (b.trace(row).to_string(), b.span_id(row).to_string());
        let tokens = b.total_tokens(row);
        if self.charged.insert(id, tokens).is_none() && tokens > 0 {
            self.charges.push((b.span_ref(row), tokens));
        }
    }
}

impl Detector for ErrorPatterns {
    fn save(&self) -> Option<Vec<u8>> {
        state::save(self)
    }
    fn restore(_: &Params, saved: &[u8]) -> Result<Self, String> {
        state::restore(saved)
    }
    fn metadata() -> Metadata {
        Metadata::new(
            "error-patterns",
            env!("CARGO_PKG_VERSION"),
            "Errors of tool and LLM calls grouped by signature (ids and numbers masked), with the tokens spent handling them",
        )
        .param(Param::integer("min_count", 5, "errors of one signature that make a finding"))
        .counted_window()
        .needs(&[Field::Failed, Field::Tool, Field::Model, Field::Models, Field::Errors, Field::Tokens])
        .kinds(CALLS_AND_AGENTS)
    }

    fn new(p: &Params) -> Result<Self, String> {
        Ok(ErrorPatterns {
            min_count: p.u64("min_count").max(1),
            window: p.window(),
            patterns: BTreeMap::new(),
            calls: HashMap::new(),
        })
    }

    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        for turn in b.turns() {
            for (at, &row) in turn.rows.iter().enumerate() {
                let Some((subject, tool)) = b.call_group(row) else {
                    continue;
                };
                if !self.window.contains(b.start(row)) {
                    continue;
                }
                // Looked up before inserting: a call of a known tool or model
                // (nearly every call) allocates nothing.
                match self.calls.get_mut(subject.as_ref()) {
                    Some(n) => *n += 1,
                    None => {
                        self.calls.insert(subject.to_string(), 1);
                    }
                }
                if !is_error(b, row) {
                    continue;
                }
                let key = self.record_error(b, row, &subject, tool);
                if tool {
                    self.charge_handling(b, &turn.rows, at, &key, &subject);
                }
            }
        }
        self.report(false)
    }

    fn finish(&mut self) -> Vec<Finding> {
        // The error rates move with every call: the last word at the end.
        self.report(true)
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let errors: u64 = self.patterns.values().map(|p| p.errors).sum();
        vec![
            ("errors".into(), errors),
            ("signatures".into(), self.patterns.len() as u64),
        ]
    }
}

detector!(ErrorPatterns);
