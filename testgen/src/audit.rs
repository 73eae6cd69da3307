//! The weekly audit's scenarios (`--audit`) and the truth of its two saved
//! queries, computed from the calls written, by the spec's sections 5 and 6:
//! which tool and model groups have a slow tail and by how much, and which
//! error signatures recur, with the tokens spent handling them.
//!
//! The scenarios: a tool with a heavy latency tail, a model that is slow only
//! sometimes, rate-limit bursts at a peak hour that the agent retries (messages
//! differing in ids and numbers only: one signature); and the negatives: one
//! slow call in an even group of 120, a heavy tail in a group under 20 calls,
//! an error signature under 5 errors.

use super::{Gen, Negative, NS};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// One LLM or tool call as written, for the truth.
#[derive(Debug, Clone)]
pub struct Call {
    pub trace: String,
    /// the tool's name, or the model
    pub group: String,
    pub tool: bool,
    pub start: u64,
    pub end: u64,
    pub failed: bool,
    pub error_type: Option<String>,
    /// the status message as the spec normalises it (known by construction)
    pub normalised: Option<String>,
    pub tokens: u64,
}

/// A tail-latency finding the month must give (spec section 5).
#[derive(Serialize, Debug, Clone)]
pub struct Latency {
    pub group: String,
    pub calls: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub tail_seconds: f64,
}

/// An error-patterns finding the month must give (spec section 6).
#[derive(Serialize, Debug, Clone)]
pub struct ErrorPattern {
    pub signature: String,
    pub errors: u64,
    /// tokens of the LLM calls spent handling the errors
    pub wasted_tokens: u64,
    pub peak_hour_utc: u32,
}

/// budget-pace's evaluation of the month holding the newest span (spec
/// section 7, default parameters: calendar months, min_days 3, over_pct 20).
#[derive(Serialize, Debug, Clone)]
pub struct Budget {
    pub alert: bool,
    pub days_elapsed: i64,
    pub tokens_so_far: u64,
    pub projection: f64,
    pub previous_total: u64,
    /// the first day the running projection crossed, when it alerts
    pub crossed_on: Option<String>,
}

/// A rate-limit message: a request id and a wait that differ every time.
const RATE_LIMIT: &str = "Rate limit exceeded for request req_{id}; retry in {n} seconds";
const RATE_LIMIT_NORMALISED: &str = "Rate limit exceeded for request req_<hex>; retry in # seconds";

impl Gen {
    /// The audit's sessions, spread over the month from `base`.
    pub(crate) fn audit_scenarios(&mut self, base: u64) {
        let day = 86_400_000 * NS;
        for n in 0..30u64 {
            // Research sessions in the afternoon, 14:00 UTC the busiest hour.
            let start = base + n * day + 14 * 3_600_000 * NS + (n % 4) * 600_000 * NS;
            self.research(n as usize, start);
        }
    }

    fn research(&mut self, n: usize, start: u64) {
        let session = format!("research-{}-{n:02}", self.month);
        let from = self.spans.len();
        let mut t = self.begin(Some(&session), "researcher", start);
        let agent = t.agent.clone();
        // search_docs: 240 ms mostly, every tenth session 9 s: a heavy tail.
        for k in 0..2 {
            self.tool_ms = Some(if n % 10 == 3 && k == 0 {
                9_000
            } else {
                240 + (k as u64) * 10
            });
            self.tool(
                &mut t,
                &agent,
                "search_docs",
                &json!({"q": format!("topic {n}")}),
                Some("3 hits"),
            );
        }
        // lint_file: 4 even calls a session (120 in all) and one slow call.
        for k in 0..4 {
            self.tool_ms = Some(if n == 17 && k == 2 { 4_000 } else { 100 });
            let id = self.tool(
                &mut t,
                &agent,
                "lint_file",
                &json!({"file": format!("src/m{k}.rs")}),
                Some("ok"),
            );
            if n == 17 && k == 2 {
                self.audit_negative("tail-latency", "one slow call in an even group of 120", id);
            }
        }
        // translate: a heavy tail, but 12 calls in all.
        if n < 12 {
            self.tool_ms = Some(if n == 5 { 20_000 } else { 150 });
            let id = self.tool(
                &mut t,
                &agent,
                "translate",
                &json!({"text": "hola"}),
                Some("hello"),
            );
            if n == 5 {
                self.audit_negative("tail-latency", "a heavy tail in a group of 12 calls", id);
            }
        }
        // The small model: 700 ms, three calls of 30 s over the month.
        self.llm_ms = Some(if n % 10 == 7 { 30_000 } else { 700 });
        let (_, _) = self.llm(
            &mut t,
            &agent,
            super::SMALL_MODEL,
            900,
            0,
            "Summary: three findings.",
            0,
            None,
        );
        // Rate-limit bursts on every other session: web_search fails, the agent
        // spends an LLM call on it, and the retry succeeds.
        if n.is_multiple_of(2) {
            let id = self.hex(12);
            let wait = 5 + n % 20;
            self.tool_error = Some((
                "rate_limit_error".into(),
                RATE_LIMIT
                    .replace("{id}", &id)
                    .replace("{n}", &wait.to_string()),
                RATE_LIMIT_NORMALISED.into(),
            ));
            self.tool(
                &mut t,
                &agent,
                "web_search",
                &json!({"q": format!("pricing {n}")}),
                None,
            );
            self.chat(&mut t, &agent, &session);
        }
        self.tool(
            &mut t,
            &agent,
            "web_search",
            &json!({"q": format!("pricing {n}")}),
            Some("10 results"),
        );
        // fetch_weather fails three times over the month: under min_count.
        if n % 10 == 1 {
            self.tool_error = Some((
                "HTTPError".into(),
                "upstream returned 502".into(),
                "upstream returned #".into(),
            ));
            let id = self.tool(
                &mut t,
                &agent,
                "fetch_weather",
                &json!({"city": "Oslo"}),
                None,
            );
            self.audit_negative("error-patterns", "a signature with 3 errors", id);
        }
        self.chat(&mut t, &agent, &session);
        self.end(&t, from);
    }

    fn audit_negative(&mut self, detector: &str, what: &str, span: String) {
        self.truth.negatives.push(Negative {
            detector: detector.into(),
            what: what.into(),
            spans: vec![span],
        });
    }
}

/// Nearest rank: `sorted[ceil(pct / 100 × n) − 1]`.
fn percentile(sorted: &[f64], pct: f64) -> f64 {
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The tail-latency findings of these calls, with the default parameters.
pub fn latency_truth(calls: &[Call]) -> Vec<Latency> {
    let mut groups: BTreeMap<(&str, bool), Vec<f64>> = BTreeMap::new();
    for c in calls {
        let ms = (c.end - c.start) as f64 / 1e6;
        groups.entry((&c.group, c.tool)).or_default().push(ms);
    }
    let mut out = Vec::new();
    for ((group, tool), mut ms) in groups {
        if ms.len() < 20 {
            continue;
        }
        let all = ms.clone();
        ms.sort_by(f64::total_cmp);
        let (p50, p95, p99) = (
            percentile(&ms, 50.0),
            percentile(&ms, 95.0),
            percentile(&ms, 99.0),
        );
        let limit = if tool { 5_000.0 } else { 60_000.0 };
        if p99 >= 5.0 * p50 || p95 >= limit {
            let tail = all
                .iter()
                .filter(|&&m| m > p95)
                .map(|m| (m - p50) / 1000.0)
                .sum();
            out.push(Latency {
                group: group.to_string(),
                calls: ms.len(),
                p50_ms: p50,
                p95_ms: p95,
                p99_ms: p99,
                tail_seconds: tail,
            });
        }
    }
    out
}

fn signature(c: &Call) -> String {
    let kind = if c.tool { "tool" } else { "llm" };
    let ty = c.error_type.as_deref().unwrap_or("error");
    match &c.normalised {
        Some(m) => format!("{kind} {} {ty}: {m}", c.group),
        None => format!("{kind} {} {ty}", c.group),
    }
}

/// The error-patterns findings of these calls, with the default min_count 5.
pub fn error_truth(calls: &[Call]) -> Vec<ErrorPattern> {
    let mut by_trace: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in calls {
        by_trace.entry(&c.trace).or_default().push(c);
    }
    let mut errors: BTreeMap<String, (u64, u64, [u64; 24])> = BTreeMap::new();
    for turn in by_trace.values_mut() {
        turn.sort_by_key(|c| c.start);
        // Signatures with an error not yet followed by a success of its tool:
        // (signature, tool, when the first such error ended).
        let mut open: Vec<(String, String, u64)> = Vec::new();
        for c in turn.iter() {
            if !c.tool {
                for (sig, _, ended) in &open {
                    if c.start >= *ended {
                        errors.entry(sig.clone()).or_default().1 += c.tokens;
                    }
                }
            }
            if c.failed {
                let sig = signature(c);
                let e = errors.entry(sig.clone()).or_default();
                e.0 += 1;
                e.2[((c.start / 3_600_000_000_000) % 24) as usize] += 1;
                if !c.tool {
                    e.1 += c.tokens;
                } else if !open.iter().any(|(s, _, _)| *s == sig) {
                    open.push((sig, c.group.clone(), c.end));
                }
            } else if c.tool {
                open.retain(|(_, tool, _)| *tool != c.group);
            }
        }
    }
    errors
        .into_iter()
        .filter(|(_, (n, _, _))| *n >= 5)
        .map(|(signature, (errors, wasted_tokens, hours))| {
            let peak = (0..24)
                .max_by_key(|&h| (hours[h], std::cmp::Reverse(h)))
                .unwrap_or(0);
            ErrorPattern {
                signature,
                errors,
                wasted_tokens,
                peak_hour_utc: peak as u32,
            }
        })
        .collect()
}

const DAY_NS: u64 = 86_400_000_000_000;

/// The calendar date of a UTC day number.
fn date(day: i64) -> time::Date {
    time::Date::from_julian_day(2_440_588 + day as i32).expect("a day of this era")
}

/// budget-pace's truth: daily LLM tokens (input + output, on the day a call
/// starts), the current month's projection against the previous month's total.
pub fn budget_truth(calls: &[Call], first_start: u64, newest_end: u64) -> Option<Budget> {
    let day = |ns: u64| (ns / DAY_NS) as i64;
    let mut daily: BTreeMap<i64, u64> = BTreeMap::new();
    for c in calls.iter().filter(|c| !c.tool) {
        *daily.entry(day(c.start)).or_default() += c.tokens;
    }
    let newest = day(newest_end);
    let nd = date(newest);
    let start = newest - i64::from(nd.day()) + 1;
    let len = i64::from(nd.month().length(nd.year()));
    let elapsed = newest - start + 1;
    let prev_start = (start - 1) - i64::from(date(start - 1).day()) + 1;
    if elapsed < 3 || day(first_start) > prev_start {
        return None;
    }
    let sum = |a: i64, b: i64| daily.range(a..=b).map(|(_, t)| *t).sum::<u64>();
    let previous = sum(prev_start, start - 1);
    if previous == 0 {
        return None;
    }
    let limit = previous as f64 * 1.2;
    let project = |to: i64| sum(start, to) as f64 * len as f64 / (to - start + 1) as f64;
    let alert = project(newest) > limit;
    let crossed = (start + 2..=newest).find(|&d| project(d) > limit);
    Some(Budget {
        alert,
        days_elapsed: elapsed,
        tokens_so_far: sum(start, newest),
        projection: project(newest),
        previous_total: previous,
        crossed_on: crossed.filter(|_| alert).map(|d| date(d).to_string()),
    })
}
