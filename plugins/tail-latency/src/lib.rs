//! tail-latency: the saved query "tail latency" (spec section 5). Tool calls are
//! grouped by tool (and server), LLM calls by model; a group with enough calls
//! whose p99 is far above its p50, or whose p95 is over a limit, is a finding.
//! Its waste is time (the tail's seconds past the median), never tokens.

use tokenhound_sdk::*;

/// One call of a group in 8 bytes: its duration in nanoseconds, with the top
/// bit set when it failed. Every call of the input is kept until the end (the
/// percentiles are exact), so this is what the detector's memory grows by:
/// as a float and a flag it was 16 bytes, and 18 MB at 900,000 calls.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Call(u64);

const FAILED: u64 = 1 << 63;

impl Call {
    fn new(ns: u64, failed: bool) -> Self {
        Call(ns.min(FAILED - 1) | if failed { FAILED } else { 0 })
    }
    fn ms(self) -> f64 {
        (self.0 & !FAILED) as f64 / 1e6
    }
    fn failed(self) -> bool {
        self.0 & FAILED != 0
    }
}

/// How many slowest spans a finding names.
const SLOWEST: usize = 5;

#[derive(serde::Serialize, serde::Deserialize)]
struct Group {
    tool: bool,
    calls: Vec<Call>,
    /// the slowest calls' spans, slowest first (only these keep their ids: a
    /// span reference per call cost two strings per call)
    slowest: Vec<(f64, SpanRef)>,
}

impl Group {
    fn add(&mut self, b: &Batch, row: u32, call: Call) {
        self.calls.push(call);
        let ms = call.ms();
        if self.slowest.len() == SLOWEST && self.slowest[SLOWEST - 1].0 >= ms {
            return;
        }
        // Ties keep the earlier call first, as a stable sort of all would.
        let at = self.slowest.partition_point(|(m, _)| *m >= ms);
        self.slowest.insert(at, (ms, b.span_ref(row)));
        self.slowest.truncate(SLOWEST);
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TailLatency {
    min_calls: usize,
    tail_ratio: f64,
    max_p95_tools: f64,
    max_p95_llm: f64,
    /// calls outside it are not counted (`--since` / `--until`)
    window: Window,
    /// groups by key, in the order first seen
    groups: Vec<(String, Group)>,
    index: std::collections::HashMap<String, usize>,
}

/// Nearest rank: `sorted[ceil(pct / 100 × n) − 1]`.
fn percentile(sorted: &[f64], pct: f64) -> f64 {
    let n = sorted.len();
    let rank = ((pct / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

impl TailLatency {
    fn finding(&self, key: &str, g: &Group) -> Option<Finding> {
        let n = g.calls.len();
        if n < self.min_calls {
            return None;
        }
        let mut sorted: Vec<f64> = g.calls.iter().map(|c| c.ms()).collect();
        sorted.sort_by(f64::total_cmp);
        let (p50, p95, p99) = (
            percentile(&sorted, 50.0),
            percentile(&sorted, 95.0),
            percentile(&sorted, 99.0),
        );
        let max = sorted[n - 1];
        let limit = if g.tool {
            self.max_p95_tools
        } else {
            self.max_p95_llm
        };
        if !(p99 >= self.tail_ratio * p50 || p95 >= limit) {
            return None;
        }
        let tail: Vec<Call> = g.calls.iter().copied().filter(|c| c.ms() > p95).collect();
        // A fold from 0: an empty f64 sum is -0.0.
        let tail_secs = tail.iter().fold(0.0, |s, c| s + (c.ms() - p50) / 1000.0);
        let failed = tail.iter().filter(|c| c.failed()).count();
        let what = if g.tool { "tool" } else { "model" };
        let fix = if g.tool {
            "Give the tool a timeout and a cached or degraded answer, so the slow tail does not hold the agent."
        } else {
            "Use a smaller model or streaming for the calls in the tail, and a timeout with a fallback."
        };
        let mut f = Finding::new(
            format!("{key}: p99 {:.0} ms against p50 {:.0} ms", p99, p50),
            format!(
                "The {what} {key} has a slow tail: {n} calls, p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms; the calls past p95 waited {tail_secs:.1} s more than the median."
            ),
            fix,
        )
        .pattern(key)
        .waste_seconds(tail_secs)
        .evidence("calls", n)
        .evidence("p50_ms", format!("{p50:.1}"))
        .evidence("p95_ms", format!("{p95:.1}"))
        .evidence("p99_ms", format!("{p99:.1}"))
        .evidence("max_ms", format!("{max:.1}"))
        .evidence("tail_seconds", format!("{tail_secs:.3}"))
        .evidence("tail_failed", failed);
        for (_, span) in &g.slowest {
            f = f.span(span.clone());
        }
        Some(f)
    }
}

impl Detector for TailLatency {
    fn save(&self) -> Option<Vec<u8>> {
        state::save(self)
    }
    fn restore(_: &Params, saved: &[u8]) -> Result<Self, String> {
        state::restore(saved)
    }
    fn metadata() -> Metadata {
        Metadata::new(
            "tail-latency",
            env!("CARGO_PKG_VERSION"),
            "Tools and models whose slowest calls are far slower than their median: the time the tail costs",
        )
        .param(Param::integer("min_calls", 20, "calls a group needs to be judged"))
        .param(Param::number("tail_ratio", 5.0, "p99 at least this many times p50 is a finding"))
        .param(Param::number("max_p95_ms_tools", 5000.0, "a tool's p95 at or over this is a finding"))
        .param(Param::number("max_p95_ms_llm", 60000.0, "a model's p95 at or over this is a finding"))
        .counted_window()
        .needs(&[Field::Failed, Field::Tool, Field::Model, Field::Models])
        .kinds(CALLS_AND_AGENTS)
    }

    fn new(p: &Params) -> Result<Self, String> {
        let min_calls = p.u64("min_calls").max(1) as usize;
        let tail_ratio = p.f64("tail_ratio");
        if tail_ratio.is_nan() || tail_ratio <= 0.0 {
            return Err(format!("tail_ratio must be positive, got {tail_ratio}"));
        }
        Ok(TailLatency {
            min_calls,
            tail_ratio,
            max_p95_tools: p.f64("max_p95_ms_tools"),
            max_p95_llm: p.f64("max_p95_ms_llm"),
            window: p.window(),
            groups: Vec::new(),
            index: Default::default(),
        })
    }

    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        for row in 0..b.len() as u32 {
            let Some((key, tool)) = b.call_group(row) else {
                continue;
            };
            if !self.window.contains(b.start(row)) {
                continue;
            }
            let call = Call::new(b.end(row).saturating_sub(b.start(row)), b.failed(row));
            let i = match self.index.get(key.as_ref()) {
                Some(&i) => i,
                None => {
                    self.index.insert(key.to_string(), self.groups.len());
                    let group = Group {
                        tool,
                        calls: Vec::new(),
                        slowest: Vec::new(),
                    };
                    self.groups.push((key.into_owned(), group));
                    self.groups.len() - 1
                }
            };
            self.groups[i].1.add(b, row, call);
        }
        Vec::new()
    }

    fn finish(&mut self) -> Vec<Finding> {
        self.groups
            .iter()
            .filter_map(|(k, g)| self.finding(k, g))
            .collect()
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let judged = self
            .groups
            .iter()
            .filter(|(_, g)| g.calls.len() >= self.min_calls)
            .count();
        vec![
            ("groups".into(), self.groups.len() as u64),
            ("groups with enough calls".into(), judged as u64),
        ]
    }
}

detector!(TailLatency);
