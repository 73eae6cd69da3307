//! The guest SDK: write a tokenhound detector as a short query over span batches.
//!
//! The WIT bindings are generated here once, so a detector crate only implements
//! [`Detector`] and calls [`detector!`]. The helpers cover what every detector
//! needs: turns and sessions in order, the nearest agent of a span, runs of
//! consecutive calls, the content-token estimate and content-defined chunks.
//!
//! ```ignore
//! use tokenhound_sdk::*;
//!
//! #[derive(Default)]
//! struct SlowTools;
//!
//! impl Detector for SlowTools {
//!     fn metadata() -> Metadata {
//!         Metadata::new("slow-tools", "0.1.0", "tool calls slower than a limit")
//!             .param(Param::integer("max_ms", 30_000, "slowest acceptable call"))
//!     }
//!     fn new(params: &Params) -> Result<Self, String> { Ok(SlowTools) }
//!     fn observe(&mut self, batch: &Batch) -> Vec<Finding> { Vec::new() }
//! }
//! detector!(SlowTools);
//! ```

pub mod chunk;
pub mod date;
mod params;
pub mod state;

pub use params::{Param, Params, Window};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.5.0",
        world: "plugin",
        // Span references and the like can be part of a saved state.
        additional_derives: [serde::Serialize, serde::Deserialize],
        pub_export_macro: true,
        export_macro_name: "export_plugin",
        default_bindings_module: "tokenhound_sdk::bindings",
    });
}

pub use bindings::exports::tokenhound::detector::detector::Metadata as WitMetadata;
pub use bindings::tokenhound::detector::batch::SpanColumns;
pub use bindings::tokenhound::detector::host::Texts;
pub use bindings::tokenhound::detector::types::{
    Charge, Field, Finding as WitFinding, InputPart, ParamType, PartKind, Severity, SpanKind,
    SpanRef, TextField, TokenKind,
};

/// LLM calls, tool calls and agents, for [`Metadata::kinds`]: what the
/// built-in detectors read.
pub const CALLS_AND_AGENTS: &[SpanKind] = &[SpanKind::Llm, SpanKind::Tool, SpanKind::Agent];

/// `u32::MAX` marks a missing string in a string column.
pub const NONE: u32 = u32::MAX;

/// What a detector is: name, version, description, parameters and the fields it reads.
pub struct Metadata {
    pub name: String,
    pub version: String,
    pub description: String,
    pub params: Vec<Param>,
    pub needs: Vec<Field>,
    /// the kinds of span it reads ([`Metadata::kinds`]); every kind unless it says
    pub kinds: Vec<SpanKind>,
}

impl Metadata {
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Metadata {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            params: Vec::new(),
            needs: Vec::new(),
            kinds: vec![SpanKind::Llm, SpanKind::Tool, SpanKind::Agent, SpanKind::Other],
        }
    }
    pub fn param(mut self, p: Param) -> Self {
        self.params.push(p);
        self
    }
    /// Declares the counted window's two parameters ([`Param::window`]).
    pub fn counted_window(mut self) -> Self {
        self.params.extend(Param::window());
        self
    }
    pub fn needs(mut self, fields: &[Field]) -> Self {
        self.needs.extend_from_slice(fields);
        self
    }
    /// The kinds of span the detector reads, instead of every kind. Without
    /// `SpanKind::Other`, ordinary service spans (HTTP, database: most spans
    /// of a real service) may be left out of its batches, except those with a
    /// span of these kinds below them: every row's parent is still its own.
    pub fn kinds(mut self, kinds: &[SpanKind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }
}

/// A finding under construction; see [`Finding::new`].
#[derive(Clone, Debug)]
pub struct Finding(pub WitFinding);

impl Finding {
    pub fn new(
        title: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding(WitFinding {
            title: title.into(),
            message: message.into(),
            severity: None,
            session: None,
            trace_id: None,
            spans: Vec::new(),
            waste: Vec::new(),
            waste_kind: TokenKind::Input,
            evidence: Vec::new(),
            fix: fix.into(),
            group: None,
            pattern: None,
            waste_seconds: 0.0,
            alert: false,
        })
    }
    pub fn session(mut self, s: &str) -> Self {
        self.0.session = Some(s.into());
        self
    }
    pub fn trace(mut self, t: &str) -> Self {
        self.0.trace_id = Some(t.into());
        self
    }
    pub fn span(mut self, s: SpanRef) -> Self {
        self.0.spans.push(s);
        self
    }
    pub fn spans(mut self, s: impl IntoIterator<Item = SpanRef>) -> Self {
        self.0.spans.extend(s);
        self
    }
    /// Count `tokens` of waste against span `s`.
    pub fn charge(mut self, s: SpanRef, tokens: u64) -> Self {
        self.0.waste.push(Charge { span: s, tokens });
        self
    }
    pub fn output_tokens(mut self) -> Self {
        self.0.waste_kind = TokenKind::Output;
        self
    }
    pub fn evidence(mut self, key: &str, value: impl ToString) -> Self {
        self.0.evidence.push((key.into(), value.to_string()));
        self
    }
    /// Findings with the same group are merged by the host (waste added, spans
    /// joined, latest text kept): report early, add to it later.
    pub fn group(mut self, g: impl Into<String>) -> Self {
        self.0.group = Some(g.into());
        self
    }
    /// What this finding's instances have in common (the tool, the file, the
    /// opener): reports group findings by rule and pattern.
    pub fn pattern(mut self, p: impl Into<String>) -> Self {
        self.0.pattern = Some(p.into());
        self
    }
    /// Time lost (tail latency), in seconds; never added to token waste.
    pub fn waste_seconds(mut self, s: f64) -> Self {
        self.0.waste_seconds = s;
        self
    }
    /// An alert (budget pace): a state to act on, with no waste.
    pub fn alert(mut self) -> Self {
        self.0.alert = true;
        self
    }
    pub fn severity(mut self, s: Severity) -> Self {
        self.0.severity = Some(s);
        self
    }
    pub fn wasted_tokens(&self) -> u64 {
        self.0.waste.iter().map(|c| c.tokens).sum()
    }
}

/// A detector: created once per rule, fed batches of whole traces in session order.
pub trait Detector: Sized + 'static {
    fn metadata() -> Metadata;
    /// `params` holds every declared parameter, defaults filled in.
    fn new(params: &Params) -> Result<Self, String>;
    fn observe(&mut self, batch: &Batch) -> Vec<Finding>;
    /// Called once after the last batch: report what was held back.
    fn finish(&mut self) -> Vec<Finding> {
        Vec::new()
    }
    /// Named counts for the report (e.g. "parents not checked").
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Everything built from the batches so far, for `watch`'s checkpoint
    /// ([`state::save`] does it for a detector that derives `Serialize`).
    /// `None` (the default): a restart replays the retained files instead.
    fn save(&self) -> Option<Vec<u8>> {
        None
    }
    /// The detector as it was when [`Detector::save`] returned `state`, with
    /// the same parameters ([`state::restore`] for one that derives
    /// `Deserialize`).
    fn restore(params: &Params, state: &[u8]) -> Result<Self, String> {
        let _ = (params, state);
        Err("this detector does not restore a saved state".into())
    }
}

/// `ceil(bytes / bytes_per_token)`: the spec's content-token estimate.
pub fn content_tokens(bytes: u64, bytes_per_token: f64) -> u64 {
    if bytes == 0 {
        return 0;
    }
    (bytes as f64 / bytes_per_token).ceil() as u64
}

/// A batch of whole traces, with the lookups detectors share.
pub struct Batch<'a> {
    pub cols: &'a SpanColumns,
    texts: &'a Texts,
    agent: Vec<u32>,
    /// the string table's blob, checked as UTF-8 once
    strings: &'a str,
}

/// One turn: the rows of one trace, in the spec's order (start, end, span id).
pub struct Turn {
    pub trace: u32,
    pub session: u32,
    pub rows: Vec<u32>,
}

impl<'a> Batch<'a> {
    pub fn new(cols: &'a SpanColumns, texts: &'a Texts) -> Self {
        let agent = nearest_agents(cols);
        // The host sends whole strings; a table that is not UTF-8 reads as empty.
        let strings = std::str::from_utf8(&cols.strings).unwrap_or("");
        Batch {
            cols,
            texts,
            agent,
            strings,
        }
    }
    pub fn len(&self) -> usize {
        self.cols.kind.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The string at index `i` of the string table, `None` for [`NONE`].
    pub fn str(&self, i: u32) -> Option<&str> {
        if i == NONE {
            return None;
        }
        let ends = &self.cols.string_ends;
        let end = *ends.get(i as usize)? as usize;
        let start = match i {
            0 => 0,
            _ => ends[i as usize - 1] as usize,
        };
        self.strings.get(start..end)
    }
    fn col_str(&self, col: &[u32], row: u32) -> Option<&str> {
        col.get(row as usize).and_then(|&i| self.str(i))
    }
    pub fn kind(&self, row: u32) -> SpanKind {
        self.cols.kind[row as usize]
    }
    pub fn is_llm(&self, row: u32) -> bool {
        self.kind(row) == SpanKind::Llm
    }
    pub fn is_tool(&self, row: u32) -> bool {
        self.kind(row) == SpanKind::Tool
    }
    pub fn trace(&self, row: u32) -> &str {
        self.col_str(&self.cols.trace, row).unwrap_or("")
    }
    pub fn span_id(&self, row: u32) -> &str {
        self.col_str(&self.cols.span_id, row).unwrap_or("")
    }
    /// The session of the row's trace (the trace id when it names none).
    pub fn session(&self, row: u32) -> &str {
        self.col_str(&self.cols.session, row)
            .unwrap_or_else(|| self.trace(row))
    }
    pub fn name(&self, row: u32) -> &str {
        self.col_str(&self.cols.name, row).unwrap_or("")
    }
    pub fn parent(&self, row: u32) -> Option<u32> {
        let p = self.cols.parent[row as usize];
        (p >= 0).then_some(p as u32)
    }
    pub fn start(&self, row: u32) -> u64 {
        self.cols.start_ns[row as usize]
    }
    pub fn end(&self, row: u32) -> u64 {
        self.cols.end_ns[row as usize]
    }
    pub fn failed(&self, row: u32) -> bool {
        self.cols.failed.get(row as usize).copied().unwrap_or(false)
    }
    pub fn model(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.model, row)
    }
    pub fn agent_name(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.agent_name, row)
    }
    pub fn tool_name(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.tool_name, row)
    }
    pub fn tool_server(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.tool_server, row)
    }
    /// Hash of the compact arguments text; `None` when arguments were not captured.
    pub fn tool_args_hash(&self, row: u32) -> Option<u64> {
        match self.cols.tool_args_hash.get(row as usize) {
            Some(0) | None => None,
            Some(&h) => Some(h),
        }
    }
    pub fn input_tokens(&self, row: u32) -> u64 {
        self.cols
            .input_tokens
            .get(row as usize)
            .copied()
            .unwrap_or(0)
    }
    pub fn output_tokens(&self, row: u32) -> u64 {
        self.cols
            .output_tokens
            .get(row as usize)
            .copied()
            .unwrap_or(0)
    }
    pub fn cache_read_tokens(&self, row: u32) -> u64 {
        self.cols
            .cache_read_tokens
            .get(row as usize)
            .copied()
            .unwrap_or(0)
    }
    /// `error.type` (or `exception.type`); field `errors`.
    pub fn error_type(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.error_type, row)
    }
    /// The status message of a failed span; field `errors`.
    pub fn status_message(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.status_message, row)
    }
    /// The first exception event's message; field `errors`.
    pub fn exception_message(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.exception_message, row)
    }
    /// `http.response.status_code`; field `errors`.
    pub fn http_status(&self, row: u32) -> Option<u32> {
        match self.cols.http_status.get(row as usize) {
            Some(0) | None => None,
            Some(&s) => Some(s),
        }
    }
    /// The tool's result was marked as an error (MCP `isError`); field `errors`.
    pub fn tool_error(&self, row: u32) -> bool {
        self.cols
            .tool_error
            .get(row as usize)
            .copied()
            .unwrap_or(false)
    }
    /// `gen_ai.request.model`; field `models`.
    pub fn request_model(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.request_model, row)
    }
    /// `gen_ai.response.model`; field `models`.
    pub fn response_model(&self, row: u32) -> Option<&str> {
        self.col_str(&self.cols.response_model, row)
    }
    /// The parts of an LLM call's input (field `input-parts`), fetched now.
    pub fn input_parts(&self, row: u32) -> Vec<InputPart> {
        self.texts.parts(row)
    }
    /// What a call is grouped by in per-tool and per-model queries: `tool @
    /// server` (or the tool) for a tool call, the model (request, else
    /// response) for an LLM call; and whether it is a tool. `None` for other
    /// spans. Reads fields `tool`, `model`, `models`.
    pub fn call_group(&self, row: u32) -> Option<(std::borrow::Cow<'_, str>, bool)> {
        if self.is_tool(row) {
            let tool = self.tool_name(row).unwrap_or("(unnamed tool)");
            return Some(match self.tool_server(row) {
                Some(s) => (format!("{tool} @ {s}").into(), true),
                None => (tool.into(), true),
            });
        }
        if self.is_llm(row) {
            let model = self
                .request_model(row)
                .or_else(|| self.response_model(row))
                .or_else(|| self.model(row))
                .unwrap_or("(unknown model)");
            return Some((model.into(), false));
        }
        None
    }
    /// input + output: the spec's total tokens of a call.
    pub fn total_tokens(&self, row: u32) -> u64 {
        self.input_tokens(row) + self.output_tokens(row)
    }
    /// The nearest agent span above `row` (not `row` itself).
    pub fn agent_of(&self, row: u32) -> Option<u32> {
        let a = self.agent[row as usize];
        (a != NONE).then_some(a)
    }
    pub fn span_ref(&self, row: u32) -> SpanRef {
        SpanRef {
            trace_id: self.trace(row).to_string(),
            span_id: self.span_id(row).to_string(),
        }
    }
    /// A big text, fetched from the host only now.
    pub fn text(&self, row: u32, field: TextField) -> Option<String> {
        self.texts.get(row, field)
    }
    /// The size in bytes of a big text, where the text or its size is known.
    pub fn text_size(&self, row: u32, field: TextField) -> Option<u64> {
        self.texts.size(row, field)
    }
    /// The turns (traces) of the batch, in batch order, rows in the spec's order.
    pub fn turns(&self) -> Vec<Turn> {
        let mut turns: Vec<Turn> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for row in 0..self.len() as u32 {
            let t = self.cols.trace[row as usize];
            // A trace's rows usually come together: only a new trace is looked up.
            if let Some(turn) = turns.last_mut().filter(|turn| turn.trace == t) {
                turn.rows.push(row);
                continue;
            }
            let i = *index.entry(t).or_insert_with(|| {
                turns.push(Turn {
                    trace: t,
                    session: self.cols.session[row as usize],
                    rows: Vec::new(),
                });
                turns.len() - 1
            });
            turns[i].rows.push(row);
        }
        for turn in &mut turns {
            self.sort_rows(&mut turn.rows);
        }
        turns
    }
    /// Sort rows by start time, then end time, then span id. A trace's rows
    /// arrive in this order, so sorting a turn's rows is one pass over them.
    pub fn sort_rows(&self, rows: &mut [u32]) {
        rows.sort_by(|&a, &b| {
            (self.start(a), self.end(a), self.span_id(a)).cmp(&(
                self.start(b),
                self.end(b),
                self.span_id(b),
            ))
        });
    }
}

fn nearest_agents(cols: &SpanColumns) -> Vec<u32> {
    let n = cols.kind.len();
    let mut out = vec![NONE; n];
    for (row, slot) in out.iter_mut().enumerate() {
        // Walk up; bounded by n so a malformed parent cycle cannot hang us.
        let mut p = cols.parent[row];
        let mut steps = 0;
        while p >= 0 && steps < n {
            if cols.kind[p as usize] == SpanKind::Agent {
                *slot = p as u32;
                break;
            }
            p = cols.parent[p as usize];
            steps += 1;
        }
    }
    out
}

/// Split `items` into maximal runs: `joins(prev, next)` says whether `next`
/// continues the run that ends with `prev`.
pub fn runs<T: Copy>(items: &[T], mut joins: impl FnMut(T, T) -> bool) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    for &item in items {
        match out.last_mut() {
            Some(run) if joins(*run.last().unwrap(), item) => run.push(item),
            _ => out.push(vec![item]),
        }
    }
    out
}

#[doc(hidden)]
pub struct Analyzer<D: Detector>(std::cell::RefCell<D>);

impl<D: Detector> bindings::exports::tokenhound::detector::detector::GuestAnalyzer for Analyzer<D> {
    fn observe(&self, batch: SpanColumns, texts: &Texts) -> Vec<WitFinding> {
        let b = Batch::new(&batch, texts);
        self.0
            .borrow_mut()
            .observe(&b)
            .into_iter()
            .map(|f| f.0)
            .collect()
    }
    fn finish(&self) -> Vec<WitFinding> {
        self.0
            .borrow_mut()
            .finish()
            .into_iter()
            .map(|f| f.0)
            .collect()
    }
    fn counters(&self) -> Vec<bindings::tokenhound::detector::types::Counter> {
        self.0
            .borrow()
            .counters()
            .into_iter()
            .map(|(name, value)| bindings::tokenhound::detector::types::Counter { name, value })
            .collect()
    }
    fn save(&self) -> Option<Vec<u8>> {
        self.0.borrow().save()
    }
}

#[doc(hidden)]
pub fn describe<D: Detector>() -> WitMetadata {
    let m = D::metadata();
    WitMetadata {
        name: m.name,
        version: m.version,
        description: m.description,
        params: m.params.iter().map(Param::to_wit).collect(),
        needs: m.needs,
    }
}

#[doc(hidden)]
pub fn create<D: Detector>(params: String) -> Result<Analyzer<D>, String> {
    let p = Params::parse(&params, &D::metadata().params)?;
    D::new(&p).map(|d| Analyzer(std::cell::RefCell::new(d)))
}

#[doc(hidden)]
pub fn restore<D: Detector>(params: String, state: Vec<u8>) -> Result<Analyzer<D>, String> {
    let p = Params::parse(&params, &D::metadata().params)?;
    D::restore(&p, &state).map(|d| Analyzer(std::cell::RefCell::new(d)))
}

/// Export a [`Detector`] as the plugin's detector.
#[macro_export]
macro_rules! detector {
    ($ty:ty) => {
        struct __TokenhoundPlugin;
        impl $crate::bindings::exports::tokenhound::detector::detector::Guest for __TokenhoundPlugin {
            type Analyzer = $crate::Analyzer<$ty>;
            fn describe() -> $crate::WitMetadata {
                $crate::describe::<$ty>()
            }
            fn span_kinds() -> Vec<$crate::SpanKind> {
                <$ty as $crate::Detector>::metadata().kinds
            }
            fn create(
                params: String,
            ) -> Result<$crate::bindings::exports::tokenhound::detector::detector::Analyzer, String> {
                $crate::create::<$ty>(params)
                    .map($crate::bindings::exports::tokenhound::detector::detector::Analyzer::new)
            }
            fn restore(
                params: String,
                state: Vec<u8>,
            ) -> Result<$crate::bindings::exports::tokenhound::detector::detector::Analyzer, String> {
                $crate::restore::<$ty>(params, state)
                    .map($crate::bindings::exports::tokenhound::detector::detector::Analyzer::new)
            }
        }
        $crate::bindings::export_plugin!(__TokenhoundPlugin with_types_in $crate::bindings);
    };
}
