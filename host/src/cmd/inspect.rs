//! `tokenhound inspect`: what was read, before anyone trusts a finding. Formats
//! and dialects recognised, counts and tokens, models, whether content was
//! captured (and so which detectors can run), what was skipped and why, and
//! attributes that looked like usage but were not understood.

use crate::ingest::{self, InputError, ReadStats, Reader};
use crate::model::{Assembler, Keep, Kind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Serialize, Default)]
pub struct Inspection {
    pub schema: &'static str,
    pub input: ReadStats,
    pub spans: u64,
    pub traces: u64,
    pub sessions: u64,
    pub llm_calls: u64,
    pub tool_calls: u64,
    pub agent_spans: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub total_tokens: u64,
    /// spans whose usage is an aggregate of their children (kept apart)
    pub aggregated_usage_spans: u64,
    pub aggregated_tokens: u64,
    /// model → LLM calls
    pub models: BTreeMap<String, u64>,
    /// tool name → calls
    pub tools: BTreeMap<String, u64>,
    pub content: Content,
    /// detector → whether this input has what it needs, and why not
    pub detectors: BTreeMap<String, String>,
}

#[derive(Serialize, Default)]
pub struct Content {
    pub llm_input_text: u64,
    pub llm_output_text: u64,
    pub tool_arguments: u64,
    pub tool_results: u64,
    pub tool_result_sizes_only: u64,
    pub failed_tool_calls: u64,
}

pub fn run(
    inputs: &[PathBuf],
    format: Option<ingest::InputFormat>,
    maps: ingest::mapping::Mappings,
    window: Option<crate::scan::Window>,
) -> Result<Inspection, InputError> {
    let mut reader = Reader::new(Keep::ALL);
    reader.format = format;
    reader.maps = std::sync::Arc::new(maps);
    let files = reader.expand(inputs);
    let mut out = Inspection {
        schema: "tokenhound.inspect/v1",
        ..Inspection::default()
    };
    // Streamed as a scan streams: complete traces are counted and let go, so
    // memory holds the open traces only, whatever the input's size.
    let mut asm = Assembler::new(crate::scan::Options::default().quiet_ns);
    let mut seen = rustc_hash::FxHashSet::default();
    let mut reader = reader.read_all_ahead(&files, &mut |spans| {
        for s in spans.into_iter().flatten() {
            let _ = asm.add(s);
        }
        if asm.open_spans() > crate::scan::OPEN_BUDGET {
            out.tally(asm.take_quiet(), window, &mut seen);
        }
    });
    out.tally(asm.take_all(), window, &mut seen);
    reader.stats.repeats(asm.take_repeats());
    let (notes, more) = asm.take_notes();
    for n in notes {
        reader.problem(crate::ingest::Problem::at(&n.origin, n.what));
    }
    reader.stats.problems += more;
    out.total_tokens = out.input_tokens + out.output_tokens;
    out.say_which_detectors_can_run();
    out.input = reader.stats;
    Ok(out)
}

impl Inspection {
    /// Count complete sessions: their spans inside the window; a session that
    /// arrives in parts counts once.
    fn tally(
        &mut self,
        sessions: Vec<crate::model::Session>,
        window: Option<crate::scan::Window>,
        seen: &mut rustc_hash::FxHashSet<std::sync::Arc<str>>,
    ) {
        let inside = |s: &crate::model::Span| window.is_none_or(|w| w.contains(s.start_ns));
        for session in sessions {
            let mut session_in = false;
            for t in session.traces {
                let before = self.spans;
                t.spans
                    .iter()
                    .filter(|s| inside(s))
                    .for_each(|s| self.count(s));
                let trace_in = self.spans > before;
                self.traces += u64::from(trace_in);
                session_in |= trace_in;
            }
            if session_in && seen.insert(session.id.clone()) {
                self.sessions += 1;
            }
        }
    }

    fn count(&mut self, s: &crate::model::Span) {
        self.spans += 1;
        if let Some(u) = s.aggregated_usage {
            self.aggregated_usage_spans += 1;
            self.aggregated_tokens += u.input + u.output;
        }
        let c = &mut self.content;
        match s.kind {
            Kind::Llm => {
                self.llm_calls += 1;
                self.input_tokens += s.usage.input;
                self.output_tokens += s.usage.output;
                self.cached_tokens += s.usage.cache_read;
                let model = s.model.as_deref().unwrap_or("(unknown)");
                *self.models.entry(model.to_string()).or_default() += 1;
                c.llm_input_text += u64::from(s.input_text.is_some());
                c.llm_output_text += u64::from(s.output_text.is_some());
            }
            Kind::Tool => {
                self.tool_calls += 1;
                let tool = s.tool_name.as_deref().unwrap_or("(unnamed)");
                *self.tools.entry(tool.to_string()).or_default() += 1;
                c.tool_arguments += u64::from(s.tool_args.is_some());
                c.tool_results += u64::from(s.tool_result.is_some());
                c.tool_result_sizes_only +=
                    u64::from(s.tool_result.is_none() && s.tool_result_size.is_some());
                c.failed_tool_calls += u64::from(s.failed);
            }
            Kind::Agent => self.agent_spans += 1,
            Kind::Other => {}
        }
    }

    /// Whether each built-in detector has what it reads in this input.
    fn say_which_detectors_can_run(&mut self) {
        let c = &self.content;
        let can = |ok: bool, why: &str| {
            if ok {
                "yes".to_string()
            } else {
                format!("no: {why}")
            }
        };
        let results = c.tool_results + c.tool_result_sizes_only;
        let verdicts = [
            ("retry-storm", can(self.tool_calls > 0, "no tool calls")),
            (
                "context-reread",
                can(
                    c.tool_arguments > 0 && results > 0,
                    "tool arguments or results not captured",
                ),
            ),
            (
                "subagent-duplicate-context",
                can(
                    c.llm_input_text > 0 && self.agent_spans > 1,
                    "needs input content and agent spans",
                ),
            ),
            (
                "filler-preamble",
                can(c.llm_output_text > 0, "output content not captured"),
            ),
        ];
        for (name, verdict) in verdicts {
            self.detectors.insert(name.into(), verdict);
        }
    }
}

use crate::report::num as n;

/// `key (count unit), …`, or `-` for none.
fn listed(m: &BTreeMap<String, u64>, unit: &str) -> String {
    if m.is_empty() {
        return "-".into();
    }
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k} ({v}{unit})")).collect();
    items.join(", ")
}

impl Inspection {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let i = &self.input;
        let _ = writeln!(o, "files        {}", i.files);
        let _ = writeln!(o, "formats      {}", listed(&i.formats, " records"));
        let _ = writeln!(o, "dialects     {}", listed(&i.dialects, " spans"));
        let _ = writeln!(
            o,
            "spans        {} in {} traces, {} sessions",
            n(self.spans),
            n(self.traces),
            n(self.sessions)
        );
        let _ = writeln!(o, "LLM calls    {}", n(self.llm_calls));
        let _ = writeln!(
            o,
            "tool calls   {} ({} failed)",
            n(self.tool_calls),
            n(self.content.failed_tool_calls)
        );
        let _ = writeln!(o, "agent spans  {}", n(self.agent_spans));
        let _ = writeln!(
            o,
            "tokens       {} = {} input (incl. {} cached) + {} output",
            n(self.total_tokens),
            n(self.input_tokens),
            n(self.cached_tokens),
            n(self.output_tokens)
        );
        let _ = writeln!(
            o,
            "aggregates   {} spans carry {} tokens of their children's usage (kept apart, not counted)",
            n(self.aggregated_usage_spans),
            n(self.aggregated_tokens)
        );
        let _ = writeln!(o, "models       {}", listed(&self.models, ""));
        let c = &self.content;
        let _ = writeln!(
            o,
            "content      LLM input {}/{}, LLM output {}/{}, tool arguments {}/{}, tool results {}/{} (+{} sizes only)",
            c.llm_input_text, self.llm_calls, c.llm_output_text, self.llm_calls, c.tool_arguments, self.tool_calls, c.tool_results, self.tool_calls, c.tool_result_sizes_only
        );
        for (d, can) in &self.detectors {
            let _ = writeln!(o, "  {d:<28} {can}");
        }
        let _ = writeln!(o, "skipped      {} problem(s)", n(i.problems));
        for p in i.first_problems.iter().take(20) {
            let _ = writeln!(o, "  {p}");
        }
        if !i.unknown_usage.is_empty() {
            let _ = writeln!(o, "not understood (looks like usage):");
            for (k, v) in &i.unknown_usage {
                let _ = writeln!(o, "  {k} ({v} spans)");
            }
        }
        o
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    exports: Vec<PathBuf>,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: super::ListFormat,
    #[arg(long, value_enum)]
    input_format: Option<ingest::InputFormat>,
    #[arg(long)]
    mapping: Vec<PathBuf>,
    #[command(flatten)]
    window: super::WindowArgs,
}

pub fn command(a: Args) -> Result<u8, super::Failure> {
    let maps = crate::scan::load_mappings(&a.mapping)?;
    let window = crate::scan::window(&crate::scan::Options {
        inputs: a.exports.clone(),
        input_format: a.input_format,
        since: a.window.since,
        until: a.window.until,
        ..Default::default()
    })?;
    let r = run(&a.exports, a.input_format, maps, window)
        .map_err(|e| super::Failure::usage(e.to_string()))?;
    super::write_out(None, &super::listing(a.format, &r, || r.to_text()))?;
    // The listing says what could not be read and why; that nothing could
    // is also the exit code's to say (2, as `scan` says it), or a script
    // reads a mistyped path as an empty export.
    if let Some(why) = crate::scan::nothing_read(&r.input) {
        return Err(super::Failure::usage(format!("nothing read: {why}")));
    }
    Ok(0)
}
