//! A synthetic month of one team's agent, as OTLP JSON lines, with the four
//! bottlenecks of the spec's story injected and negatives that must not be
//! findings; and its truth, computed from what was injected (not by running the
//! detectors), for tests and benchmarks.
//!
//! The month: PR reviews of 14 turns (an orchestrator with three reviewer
//! sub-agents on the first turn, CLAUDE.md read every turn), changelog drafts and
//! Slack summaries; about 1,100 turns and 5.2 M tokens, with about 18 / 14 / 9 / 6 %
//! of them wasted by retry storms, re-read context, duplicated sub-agent context
//! and filler openers. `--repeat` and `--noise` scale it up for benchmarks.

mod audit;

use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Where to write the OTLP JSON lines (`.gz` compresses).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Where to write the truth (JSON): totals, waste per detector, every instance.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Months to write one after another (new ids each), for benchmarks.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Non-GenAI spans (HTTP, database, cache) per turn, as a real service emits.
    #[arg(long, default_value_t = 0)]
    pub noise: u32,
    /// The retry storms' cause is fixed on this day of the month (1-31): from
    /// its first turn on, the tool succeeds at the first call (a fix that
    /// should show as a drop on that day).
    #[arg(long)]
    pub fix_day: Option<u32>,
    /// Add the weekly audit's scenarios: a tool with a heavy latency tail, a
    /// model slow only sometimes, rate-limit bursts at a peak hour, and their
    /// negatives (their truth is in `latency` and `error_patterns`).
    #[arg(long)]
    pub audit: bool,
    /// Each month after the first has this many percent more sessions of every
    /// kind than the one before (with --repeat 2 or more: a budget alert); 0:
    /// every month alike (on pace, no alert).
    #[arg(long, default_value_t = 0.0)]
    pub growth: f64,
}

/// What was injected, and the totals the shares are of.
#[derive(Serialize, Default, Debug)]
pub struct Truth {
    pub llm_calls: u64,
    pub tool_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub spans: u64,
    pub traces: u64,
    /// detector → wasted tokens
    pub wasted: std::collections::BTreeMap<String, u64>,
    pub instances: Vec<Instance>,
    pub negatives: Vec<Negative>,
    /// tail-latency findings (spec section 5), computed from the calls written
    pub latency: Vec<audit::Latency>,
    /// error-patterns findings (spec section 6), computed from the calls written
    pub error_patterns: Vec<audit::ErrorPattern>,
    /// budget-pace's evaluation of the last month (spec section 7), when it has one
    pub budget: Option<audit::Budget>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Instance {
    pub detector: String,
    pub session: String,
    pub trace_id: Option<String>,
    /// the spans a finding must name (tool calls of a run, the re-reads, the
    /// later siblings, the reply)
    pub spans: Vec<String>,
    pub wasted_tokens: u64,
}

#[derive(Serialize, Debug, Clone)]
pub struct Negative {
    pub detector: String,
    pub what: String,
    pub spans: Vec<String>,
}

const NS: u64 = 1_000_000;
const MONTH_START_NS: u64 = 1_790_812_800_000_000_000; // 2026-10-01T00:00:00Z
const MODEL: &str = "claude-sonnet-4-20250514";
const SMALL_MODEL: &str = "claude-3-5-haiku-20241022";
const BPT: f64 = 4.0;

fn ctoks(bytes: usize) -> u64 {
    (bytes as f64 / BPT).ceil() as u64
}

/// One span being written: OTLP JSON attributes as they will be exported.
struct Span {
    trace: String,
    id: String,
    parent: Option<String>,
    name: String,
    kind: u8,
    start: u64,
    end: u64,
    error: bool,
    /// the status message of a failed span
    message: Option<String>,
    attrs: Vec<Value>,
}

fn s(k: &str, v: impl Into<String>) -> Value {
    json!({"key": k, "value": {"stringValue": v.into()}})
}
fn i(k: &str, v: u64) -> Value {
    json!({"key": k, "value": {"intValue": v.to_string()}})
}

impl Span {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "traceId": self.trace,
            "spanId": self.id,
            "name": self.name,
            "kind": self.kind,
            "startTimeUnixNano": self.start.to_string(),
            "endTimeUnixNano": self.end.to_string(),
            "attributes": self.attrs,
            "status": {"code": if self.error { 2 } else { 0 }},
        });
        if let Some(m) = &self.message {
            v["status"]["message"] = Value::String(m.clone());
        }
        if let Some(p) = &self.parent {
            v["parentSpanId"] = Value::String(p.clone());
        }
        v
    }
}

struct Gen {
    rng: fastrand::Rng,
    spans: Vec<Span>,
    truth: Truth,
    noise: u32,
    month: u32,
    /// turns from this time on have no retry storm (`--fix-day`)
    fixed_from: Option<u64>,
    /// every LLM and tool call written, for the audit's truth
    calls: Vec<audit::Call>,
    /// the next tool call's or LLM call's duration, when a scenario sets it
    tool_ms: Option<u64>,
    llm_ms: Option<u64>,
    /// the next failing tool call's error type, message and normalised message
    tool_error: Option<(String, String, String)>,
}

/// Per-turn state: trace id, session, the clock, the agent span.
struct Turn {
    trace: String,
    session: Option<String>,
    agent: String,
    now: u64,
}

const OPENERS: &[&str] = &[
    "You're absolutely right",
    "You are absolutely right",
    "Great question",
    "Good catch",
    "Certainly!",
    "Of course!",
    "Absolutely!",
    "You\u{2019}re right",
    "Thanks for asking",
    "Great catch",
];

const FILLER_TAIL: &[&str] = &[
    " about that, and I appreciate you pointing it out so clearly.",
    " and I should have looked more carefully at the surrounding code before answering.",
    " Let me take another careful look at the change with that in mind and walk through it again step by step.",
    " This is exactly the kind of detail that matters in a review like this one, so let me revisit my earlier reasoning.",
    " I misread the intent of the function the first time around, which led me to the wrong conclusion about its edge cases.",
];

const ANSWERS: &[&str] = &[
    "The change keeps the public API intact; the only behavioural difference is the retry budget in the client.",
    "Two tests cover the new branch, but the error path in `parse_header` is still untested.",
    "This migration is safe to run online: it adds a nullable column and backfills in batches.",
    "The summary of the thread: the deploy is blocked on the flaky integration test, owner is the platform team.",
    "Release notes: faster cold starts, a fix for the duplicated webhook deliveries, and the new export command.",
];

impl Gen {
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.rng.u32(0..16), 16).unwrap())
            .collect()
    }

    fn push(&mut self, mut sp: Span) -> String {
        sp.end = sp.end.max(sp.start);
        let id = sp.id.clone();
        self.spans.push(sp);
        id
    }

    fn span(
        &mut self,
        t: &Turn,
        parent: Option<&str>,
        name: &str,
        kind: u8,
        start: u64,
        dur_ms: u64,
    ) -> Span {
        Span {
            trace: t.trace.clone(),
            id: self.hex(16),
            parent: parent.map(String::from),
            name: name.into(),
            kind,
            start,
            end: start + dur_ms * NS,
            error: false,
            message: None,
            attrs: Vec::new(),
        }
    }

    fn session_attr(t: &Turn, attrs: &mut Vec<Value>) {
        if let Some(s) = &t.session {
            attrs.push(s_("gen_ai.conversation.id", s));
        }
    }

    /// An LLM call under `parent`; returns its span id.
    #[allow(clippy::too_many_arguments)]
    fn llm(
        &mut self,
        t: &mut Turn,
        parent: &str,
        model: &str,
        input: u64,
        cache_read: u64,
        output_text: &str,
        extra_output: u64,
        input_parts: Option<(&str, &str)>,
    ) -> (String, u64) {
        let output = ctoks(output_text.len()) + extra_output;
        let dur = self.llm_ms.take().unwrap_or(400 + output * 12);
        let mut sp = self.span(t, Some(parent), &format!("chat {model}"), 3, t.now, dur);
        sp.attrs.push(s("gen_ai.operation.name", "chat"));
        sp.attrs.push(s("gen_ai.provider.name", "anthropic"));
        sp.attrs.push(s("gen_ai.request.model", model));
        sp.attrs.push(s("gen_ai.response.model", model));
        sp.attrs.push(i("gen_ai.usage.input_tokens", input));
        sp.attrs.push(i("gen_ai.usage.output_tokens", output));
        if cache_read > 0 {
            sp.attrs
                .push(i("gen_ai.usage.cache_read.input_tokens", cache_read));
        }
        sp.attrs.push(json!({"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}));
        if let Some((system, user)) = input_parts {
            sp.attrs.push(s(
                "gen_ai.system_instructions",
                json!([{"type": "text", "content": system}]).to_string(),
            ));
            sp.attrs.push(s(
                "gen_ai.input.messages",
                json!([{"role": "user", "parts": [{"type": "text", "content": user}]}]).to_string(),
            ));
        }
        sp.attrs.push(s(
            "gen_ai.output.messages",
            json!([{"role": "assistant", "parts": [{"type": "text", "content": output_text}], "finish_reason": "stop"}])
                .to_string(),
        ));
        Self::session_attr(t, &mut sp.attrs);
        t.now = sp.end + 5 * NS;
        self.record(&sp, model, input + output, None);
        self.truth.llm_calls += 1;
        self.truth.input_tokens += input;
        self.truth.output_tokens += output;
        (self.push(sp), input + output)
    }

    /// A tool call; `result` None means the call failed.
    fn tool(
        &mut self,
        t: &mut Turn,
        parent: &str,
        tool: &str,
        args: &Value,
        result: Option<&str>,
    ) -> String {
        let dur = match self.tool_ms.take() {
            Some(ms) => ms,
            None => 30 + self.rng.u64(0..200),
        };
        let mut sp = self.span(
            t,
            Some(parent),
            &format!("execute_tool {tool}"),
            1,
            t.now,
            dur,
        );
        sp.attrs.push(s("gen_ai.operation.name", "execute_tool"));
        sp.attrs.push(s("gen_ai.tool.name", tool));
        sp.attrs
            .push(s("gen_ai.tool.call.id", format!("call_{}", self.hex(12))));
        sp.attrs
            .push(s("gen_ai.tool.call.arguments", args.to_string()));
        let mut normalised = None;
        match result {
            Some(r) => sp.attrs.push(s("gen_ai.tool.call.result", r)),
            None => {
                let (ty, message, norm) = match self.tool_error.take() {
                    Some((ty, m, n)) => (ty, Some(m), Some(n)),
                    None => ("TimeoutError".to_string(), None, None),
                };
                sp.error = true;
                sp.attrs.push(s("error.type", ty.as_str()));
                sp.message = message;
                normalised = norm;
            }
        }
        Self::session_attr(t, &mut sp.attrs);
        t.now = sp.end + 3 * NS;
        self.record(&sp, tool, 0, normalised);
        self.truth.tool_calls += 1;
        self.push(sp)
    }

    /// A normal LLM call: small, sometimes opening with filler (the injected
    /// waste), sometimes with a filler phrase later in the text (a negative).
    fn chat(&mut self, t: &mut Turn, parent: &str, session: &str) {
        let input = self.rng.u64(265..580);
        let answer = ANSWERS[self.rng.usize(0..ANSWERS.len())];
        let roll = self.rng.f64();
        if roll < 0.41 {
            let opener = OPENERS[self.rng.usize(0..OPENERS.len())];
            // A first paragraph of 250 to 600 characters: all of it is the preamble.
            let target = 250 + self.rng.usize(0..300);
            let mut pre = opener.to_string();
            while pre.len() < target {
                let tail = FILLER_TAIL[self.rng.usize(0..FILLER_TAIL.len())];
                if pre.len() + tail.len() > 600 {
                    break;
                }
                pre.push_str(tail);
            }
            let text = format!("{pre}\n\n{answer}");
            let waste = ctoks(pre.len());
            let (id, _) = self.llm(t, parent, MODEL, input, 0, &text, 0, None);
            self.instance(
                "filler-preamble",
                session,
                Some(t.trace.clone()),
                vec![id],
                waste,
            );
        } else if roll < 0.43 {
            let text =
                format!("{answer} Great question about the cache, by the way: it is per tenant.");
            let (id, _) = self.llm(t, parent, MODEL, input, 0, &text, 0, None);
            self.negative(
                "filler-preamble",
                "filler phrase in the middle of the answer",
                vec![id],
            );
        } else if roll < 0.44 {
            let text = format!("Certainly, here is the short version. {answer}");
            let (id, _) = self.llm(t, parent, MODEL, input, 0, &text, 0, None);
            self.negative(
                "filler-preamble",
                "\"Certainly,\" is not the opener \"certainly!\"",
                vec![id],
            );
        } else {
            let extra = self.rng.u64(0..40);
            self.llm(t, parent, MODEL, input, 0, answer, extra, None);
        }
    }

    /// Note a call for the audit's truth.
    fn record(&mut self, sp: &Span, group: &str, tokens: u64, normalised: Option<String>) {
        let error_type = sp.attrs.iter().find(|a| a["key"] == "error.type");
        self.calls.push(audit::Call {
            trace: sp.trace.clone(),
            group: group.to_string(),
            tool: sp.name.starts_with("execute_tool"),
            start: sp.start,
            end: sp.end,
            failed: sp.error,
            error_type: error_type
                .and_then(|a| a["value"]["stringValue"].as_str().map(String::from)),
            normalised,
            tokens,
        });
    }

    fn instance(
        &mut self,
        detector: &str,
        session: &str,
        trace: Option<String>,
        spans: Vec<String>,
        waste: u64,
    ) {
        *self.truth.wasted.entry(detector.into()).or_default() += waste;
        self.truth.instances.push(Instance {
            detector: detector.into(),
            session: session.into(),
            trace_id: trace,
            spans,
            wasted_tokens: waste,
        });
    }

    fn negative(&mut self, detector: &str, what: &str, spans: Vec<String>) {
        self.truth.negatives.push(Negative {
            detector: detector.into(),
            what: what.into(),
            spans,
        });
    }

    /// Start a turn: an HTTP root, the agent span under it, and noise spans.
    fn begin(&mut self, session: Option<&str>, agent: &str, start: u64) -> Turn {
        let mut t = Turn {
            trace: self.hex(32),
            session: session.map(String::from),
            agent: String::new(),
            now: start,
        };
        let mut root = self.span(&t, None, "POST /agent/run", 2, start, 0);
        root.attrs.push(s("http.request.method", "POST"));
        root.attrs.push(s("url.path", "/agent/run"));
        let root_id = root.id.clone();
        self.spans.push(root);
        let mut a = self.span(
            &t,
            Some(&root_id),
            &format!("invoke_agent {agent}"),
            1,
            start + NS,
            0,
        );
        a.attrs.push(s("gen_ai.operation.name", "invoke_agent"));
        a.attrs.push(s("gen_ai.agent.name", agent));
        Self::session_attr(&t, &mut a.attrs);
        t.agent = a.id.clone();
        self.spans.push(a);
        t.now = start + 2 * NS;
        self.truth.traces += 1;
        for n in 0..self.noise {
            let mut sp = self.span(
                &t,
                Some(&root_id),
                "SELECT app.reviews",
                3,
                start + (n as u64 + 1) * 200_000,
                2,
            );
            if n % 3 == 0 {
                sp.name = "GET /repos/{owner}/{repo}/pulls".into();
                sp.attrs.push(s("http.request.method", "GET"));
                sp.attrs.push(s(
                    "url.full",
                    format!("https://api.github.example/repos/acme/app/pulls/{}", n),
                ));
                sp.attrs.push(i("http.response.status_code", 200));
            } else {
                sp.attrs.push(s("db.system.name", "postgresql"));
                sp.attrs.push(s(
                    "db.query.text",
                    "SELECT id, state, updated_at FROM reviews WHERE pr_id = $1",
                ));
                sp.attrs.push(s("db.namespace", "app"));
            }
            self.spans.push(sp);
        }
        t
    }

    /// Close the turn: the root and agent spans end after their children.
    fn end(&mut self, t: &Turn, from: usize) {
        let end = t.now + 10 * NS;
        for sp in &mut self.spans[from..] {
            if sp.trace == t.trace && (sp.parent.is_none() || sp.id == t.agent) {
                sp.end = end;
            }
        }
    }

    fn pr_review(&mut self, n: usize, start: u64) -> u64 {
        let session = format!("pr-review-{}-{n:03}", self.month);
        let claude_md = claude_md(2400 + self.rng.usize(0..1600));
        let mut now = start;
        let mut rereads = Vec::new();
        let diff = diff_text(n, 15_000 + self.rng.usize(0..1_500));
        let variant = n % 12; // 0..9 uncached duplicates, 10 cached, 11 unrelated
        let storm_turns: Vec<usize> = if n.is_multiple_of(5) {
            vec![3]
        } else if n % 5 == 2 {
            vec![9]
        } else {
            vec![]
        };
        for turn_no in 0..14 {
            let from = self.spans.len();
            let mut t = self.begin(Some(&session), "pr-reviewer", now);
            let agent = t.agent.clone();
            // CLAUDE.md every turn: the first read is work, the rest are re-reads.
            let id = self.tool(
                &mut t,
                &agent,
                "read_file",
                &json!({"path": "CLAUDE.md"}),
                Some(&claude_md),
            );
            if turn_no > 0 {
                rereads.push(id);
            }
            if turn_no == 0 {
                self.subagents(&mut t, &session, &diff, variant);
            }
            if turn_no == 2 {
                // Negative: four different files read in a row.
                let mut ids = Vec::new();
                for f in ["src/lib.rs", "src/main.rs", "src/config.rs", "tests/api.rs"] {
                    let body = format!("// {f}\n{}", "fn placeholder() {}\n".repeat(20));
                    ids.push(self.tool(
                        &mut t,
                        &agent,
                        "read_file",
                        &json!({"path": f}),
                        Some(&body),
                    ));
                }
                self.negative(
                    "retry-storm",
                    "four different files read in a row",
                    ids.clone(),
                );
                self.negative("context-reread", "four different files read once each", ids);
            }
            if turn_no == 4 || turn_no == 5 {
                // Negative: an edited file read twice (its size changed in between).
                let body = "pub fn handler() {}\n".repeat(if turn_no == 4 { 30 } else { 34 });
                let id = self.tool(
                    &mut t,
                    &agent,
                    "Read",
                    &json!({"file_path": "src/handler.rs"}),
                    Some(&body),
                );
                self.negative("context-reread", "an edited file read again", vec![id]);
            }
            if turn_no == 7 {
                // Negative: a single retry.
                let a = json!({"pr": n, "check": "ci"});
                let x = self.tool(&mut t, &agent, "fetch_ci_status", &a, None);
                self.chat(&mut t, &agent, &session);
                let y = self.tool(
                    &mut t,
                    &agent,
                    "fetch_ci_status",
                    &a,
                    Some("{\"state\":\"green\"}"),
                );
                self.negative("retry-storm", "a single retry", vec![x, y]);
            }
            if storm_turns.contains(&turn_no) {
                if self.fixed_from.is_some_and(|f| t.now >= f) {
                    self.fixed_call(&mut t, n + turn_no);
                } else {
                    self.storm(&mut t, &session, n + turn_no);
                }
            }
            let calls = 4 + self.rng.usize(0..5);
            for _ in 0..calls {
                self.chat(&mut t, &agent, &session);
            }
            self.end(&t, from);
            now = t.now + (20 + self.rng.u64(0..600)) * 1000 * NS;
        }
        let waste: u64 = ctoks(claude_md.len()) * rereads.len() as u64;
        self.instance("context-reread", &session, None, rereads, waste);
        now
    }

    /// The tool of storm `k` and how many calls its storm makes.
    fn storm_tool(k: usize) -> (&'static str, usize) {
        [
            ("run_tests", 4),
            ("gh_api", 5),
            ("fetch_ci_status", 7),
            ("deploy_preview", 3),
            ("lint", 6),
        ][k % 5]
    }

    /// After the fix: the storm's tool succeeds at the first call.
    fn fixed_call(&mut self, t: &mut Turn, k: usize) {
        let agent = t.agent.clone();
        let (tool, _) = Self::storm_tool(k);
        let args = json!({"attempt": 0, "suite": tool});
        self.tool(t, &agent, tool, &args, Some("{\"ok\":true}"));
    }

    /// A retry storm: a failing tool retried, the whole context re-sent each time.
    fn storm(&mut self, t: &mut Turn, session: &str, k: usize) {
        let agent = t.agent.clone();
        let (tool, n) = Self::storm_tool(k);
        let mut ids = Vec::new();
        let mut waste = 0;
        let client_side = k.is_multiple_of(13);
        let polling = k % 4 == 1;
        for c in 0..n {
            let last = c == n - 1;
            let args = if polling {
                json!({"job": "build", "pr": k})
            } else {
                json!({"attempt": c, "suite": tool})
            };
            let result = if last || polling {
                Some("{\"ok\":true}")
            } else {
                None
            };
            ids.push(self.tool(t, &agent, tool, &args, result));
            if !last && !client_side {
                let input = 11_600 + self.rng.u64(0..800);
                let (_, tokens) = self.llm(
                    t,
                    &agent,
                    MODEL,
                    input,
                    0,
                    "The tool failed; trying again.",
                    20,
                    None,
                );
                waste += tokens;
            }
        }
        self.instance("retry-storm", session, Some(t.trace.clone()), ids, waste);
    }

    /// The first turn of a review: three reviewer sub-agents, each sent the diff.
    fn subagents(&mut self, t: &mut Turn, session: &str, diff: &str, variant: usize) {
        let orchestrator = t.agent.clone();
        let mut later = Vec::new();
        let mut waste = 0;
        for (k, role) in ["security-reviewer", "style-reviewer", "test-reviewer"]
            .iter()
            .enumerate()
        {
            let mut a = self.span(
                t,
                Some(&orchestrator),
                &format!("invoke_agent {role}"),
                1,
                t.now,
                0,
            );
            a.attrs.push(s("gen_ai.operation.name", "invoke_agent"));
            a.attrs.push(s("gen_ai.agent.name", *role));
            Self::session_attr(t, &mut a.attrs);
            let aid = self.push(a);
            let from = self.spans.len() - 1;
            let system = format!("You are the {role}. Review only what your role covers and answer in bullet points. ");
            let body = if variant == 11 {
                diff_text(1000 + k * 7 + t.now as usize % 97, 16_000)
            } else {
                diff.to_string()
            };
            let user = format!("Review this pull request.\n{body}");
            let shared = ctoks(body.len());
            let input = ctoks(system.len() + user.len() + 1) + 40;
            let cached = if variant == 10 && k > 0 {
                shared + 10
            } else {
                0
            };
            let (id, _) = self.llm(
                t,
                &aid,
                MODEL,
                input,
                cached,
                "- No blocking issues in my area.",
                30,
                Some((&system, &user)),
            );
            // A second call of the same sub-agent is not compared.
            self.llm(t, &aid, SMALL_MODEL, 300, 0, "Done.", 5, None);
            if k > 0 {
                later.push(id);
                waste += shared.saturating_sub(cached);
            }
            let end = t.now;
            self.spans[from].end = end;
        }
        match variant {
            10 => self.negative(
                "subagent-duplicate-context",
                "shared context served from cache",
                later,
            ),
            11 => self.negative("subagent-duplicate-context", "unrelated sub-agents", later),
            _ => self.instance(
                "subagent-duplicate-context",
                session,
                Some(t.trace.clone()),
                later,
                waste,
            ),
        }
    }

    fn changelog(&mut self, n: usize, start: u64) -> u64 {
        let session = format!("changelog-{}-{n:02}", self.month);
        let mut now = start;
        for turn_no in 0..3 {
            let from = self.spans.len();
            let mut t = self.begin(Some(&session), "changelog-writer", now);
            let agent = t.agent.clone();
            if turn_no == 0 {
                let body = "## Unreleased\n- fix: webhook retries\n".repeat(40);
                let id = self.tool(
                    &mut t,
                    &agent,
                    "read_file",
                    &json!({"path": "CHANGELOG.md"}),
                    Some(&body),
                );
                self.negative(
                    "context-reread",
                    "a file read once in its session",
                    vec![id],
                );
            }
            for _ in 0..(4 + self.rng.usize(0..5)) {
                self.chat(&mut t, &agent, &session);
            }
            self.end(&t, from);
            now = t.now + 300_000 * NS;
        }
        now
    }

    fn slack(&mut self, n: usize, start: u64) -> u64 {
        // Half of them carry no conversation id: each trace is its own session.
        let session = n
            .is_multiple_of(2)
            .then(|| format!("slack-{}-{n:02}", self.month));
        let from = self.spans.len();
        let mut t = self.begin(session.as_deref(), "slack-summarizer", start);
        let sid = session.clone().unwrap_or_else(|| t.trace.clone());
        let agent = t.agent.clone();
        // The same CLAUDE.md as the reviews, but in another session: not a re-read.
        let id = self.tool(
            &mut t,
            &agent,
            "read_file",
            &json!({"path": "CLAUDE.md"}),
            Some(&claude_md(3000)),
        );
        self.negative("context-reread", "same path in another session", vec![id]);
        for _ in 0..(5 + self.rng.usize(0..5)) {
            self.chat(&mut t, &agent, &sid);
        }
        self.end(&t, from);
        t.now
    }
}

fn s_(k: &str, v: &str) -> Value {
    s(k, v)
}

fn claude_md(bytes: usize) -> String {
    let mut out = String::from("# CLAUDE.md\n\nProject conventions for the review agent.\n");
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "- Rule {i}: prefer small, reviewed changes; run `cargo test` before proposing.\n"
        ));
        i += 1;
    }
    out.truncate(bytes);
    out
}

fn diff_text(seed: usize, bytes: usize) -> String {
    let mut out = format!("diff --git a/src/pr_{seed}.rs b/src/pr_{seed}.rs\n");
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "+    let value_{seed}_{i} = compute({i}, {});\n",
            (seed * 31 + i * 17) % 1009
        ));
        i += 1;
    }
    out.truncate(bytes);
    out
}

/// Write the month(s) and return the truth.
pub fn generate(args: &Args, out: &mut dyn Write) -> anyhow::Result<Truth> {
    let mut truth = Truth::default();
    let mut calls = Vec::new();
    let (mut first_start, mut last_end) = (u64::MAX, 0);
    for month in 0..args.repeat {
        let mut g = Gen {
            rng: fastrand::Rng::with_seed(args.seed.wrapping_add(month as u64 * 7919)),
            spans: Vec::new(),
            truth: Truth::default(),
            noise: args.noise,
            month,
            fixed_from: None,
            calls: Vec::new(),
            tool_ms: None,
            llm_ms: None,
            tool_error: None,
        };
        let base = MONTH_START_NS + month as u64 * 31 * 86_400 * 1_000 * NS;
        let day = 86_400_000 * NS;
        g.fixed_from = args
            .fix_day
            .map(|d| base + u64::from(d.clamp(1, 31) - 1) * day);
        // Sessions spread over the same days whatever their number (--growth).
        let scale = (1.0 + args.growth / 100.0).powi(month as i32);
        let count = |base_count: u64| ((base_count as f64 * scale).round() as u64).max(1);
        let (prs, logs, slacks) = (count(70), count(20), count(60));
        for n in 0..prs {
            g.pr_review(n as usize, base + (n * 10 * day * 70 / prs) / 24);
        }
        for n in 0..logs {
            g.changelog(n as usize, base + n * day * 20 / logs + day / 3);
        }
        for n in 0..slacks {
            g.slack(n as usize, base + (n * day * 60 / slacks) / 2 + day / 5);
        }
        if args.audit {
            g.audit_scenarios(base);
        }
        g.truth.spans = g.spans.len() as u64;
        first_start = first_start.min(g.spans.iter().map(|s| s.start).min().unwrap_or(u64::MAX));
        last_end = last_end.max(g.spans.iter().map(|s| s.end).max().unwrap_or(0));
        write_lines(&mut g.spans, &mut g.rng, out)?;
        calls.append(&mut g.calls);
        merge(&mut truth, g.truth);
    }
    truth.total_tokens = truth.input_tokens + truth.output_tokens;
    // The saved queries group across the whole input, months included.
    truth.latency = audit::latency_truth(&calls);
    truth.error_patterns = audit::error_truth(&calls);
    truth.budget = audit::budget_truth(&calls, first_start, last_end);
    Ok(truth)
}

/// Spans are exported as they end, in batches of mixed traces, like a batch
/// span processor: children before parents, a trace split across lines.
fn write_lines(
    spans: &mut [Span],
    rng: &mut fastrand::Rng,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    spans.sort_by_key(|s| s.end);
    let mut i = 0;
    while i < spans.len() {
        let n = 20 + rng.usize(0..60);
        let chunk: Vec<Value> = spans[i..(i + n).min(spans.len())]
            .iter()
            .map(Span::to_json)
            .collect();
        let line = json!({"resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "review-agent"}},
                {"key": "telemetry.sdk.language", "value": {"stringValue": "python"}}
            ]},
            "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.genai"}, "spans": chunk}]
        }]});
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        i += n;
    }
    Ok(())
}

fn merge(into: &mut Truth, t: Truth) {
    into.llm_calls += t.llm_calls;
    into.tool_calls += t.tool_calls;
    into.input_tokens += t.input_tokens;
    into.output_tokens += t.output_tokens;
    into.spans += t.spans;
    into.traces += t.traces;
    for (k, v) in t.wasted {
        *into.wasted.entry(k).or_default() += v;
    }
    into.instances.extend(t.instances);
    into.negatives.extend(t.negatives);
}

pub fn run(args: &Args) -> anyhow::Result<Truth> {
    let file = std::fs::File::create(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let gz = args.out.extension().is_some_and(|e| e == "gz");
    let truth = if gz {
        let mut w = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        );
        let t = generate(args, &mut w)?;
        w.finish()?.flush()?;
        t
    } else {
        let mut w = std::io::BufWriter::new(file);
        let t = generate(args, &mut w)?;
        w.flush()?;
        t
    };
    if let Some(p) = &args.truth {
        std::fs::write(p, serde_json::to_string_pretty(&truth)?)?;
    }
    let pct = |d: &str| {
        truth.wasted.get(d).copied().unwrap_or(0) as f64 * 100.0 / truth.total_tokens.max(1) as f64
    };
    eprintln!(
        "wrote {}: {} spans, {} traces, {} LLM calls, {} tokens; injected retry-storm {:.1}%, context-reread {:.1}%, subagent-duplicate-context {:.1}%, filler-preamble {:.1}%",
        args.out.display(),
        truth.spans,
        truth.traces,
        truth.llm_calls,
        truth.total_tokens,
        pct("retry-storm"),
        pct("context-reread"),
        pct("subagent-duplicate-context"),
        pct("filler-preamble"),
    );
    Ok(truth)
}
