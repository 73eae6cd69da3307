//! The canonical span every reader produces and every detector sees, and the
//! assembly of spans into traces, sessions and batches of whole traces.

use compact_str::CompactString;
use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::sync::Arc;

mod closed;
mod file_name;

pub use file_name::FileName;

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
    }
}

/// What a span is, after dialect normalisation.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Llm,
    Tool,
    Agent,
    #[default]
    Other,
}

/// Token usage of one LLM call. Input includes cache reads and writes; output
/// includes reasoning (the OpenTelemetry rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Usage {
    /// No tokens (`Usage::default()`, in a constant).
    pub const NONE: Usage = Usage {
        input: 0,
        output: 0,
        cache_read: 0,
        cache_write: 0,
    };
}

/// What a part of an LLM call's input is (WIT 0.2.0 `part-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartKind {
    System,
    Message,
    ToolCall,
    ToolResult,
    Other,
}

impl PartKind {
    /// The kind as a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            PartKind::System => "system",
            PartKind::Message => "message",
            PartKind::ToolCall => "tool call",
            PartKind::ToolResult => "tool result",
            PartKind::Other => "other",
        }
    }
}

/// One part of an LLM call's input, by size (no text is kept: only what makes
/// a prompt big, for the costliest-calls breakdown).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputPart {
    pub kind: PartKind,
    pub role: Arc<str>,
    pub tool: Option<Arc<str>>,
    pub file: Option<Box<str>>,
    pub bytes: u64,
}

impl InputPart {
    /// The part in a few words: `system instructions`, `message user`,
    /// `tool result read_file CLAUDE.md`.
    pub fn title(&self) -> String {
        match (self.kind, self.named()) {
            (PartKind::System, _) => "system instructions".into(),
            (kind, Some(what)) => format!("{} {what}", kind.label()),
            (kind, None) if self.role.is_empty() => kind.label().into(),
            (kind, None) => format!("{} {}", kind.label(), self.role),
        }
    }
    /// Its tool and file, as a person names the part (`read_file CLAUDE.md`);
    /// none for a part that has neither (a message, the system instructions).
    pub fn named(&self) -> Option<String> {
        let what: Vec<&str> = [self.tool.as_deref(), self.file.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        (!what.is_empty()).then(|| what.join(" "))
    }
}

/// Where a record came from, for located errors.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    pub file: FileName,
    pub line: u64,
}

/// Something odd about a span that was still analysed (a parent loop, a clock
/// error): the caller reports it as a located problem.
#[derive(Clone, Debug)]
pub struct Note {
    pub origin: Origin,
    pub what: String,
}

/// One span in canonical form (serialisable for watch mode's checkpoint).
///
/// What only a call, a tool or an agent carries is in its [`Detail`], boxed,
/// and read through the span as if it were the span's own (`span.model`, via
/// `Deref`; none reads as a detail with nothing set). Nine spans in ten of a
/// real service are ordinary HTTP and database spans that keep only their
/// ids, times and status: inline, the detail made every span some 600 bytes,
/// written by the reading thread and read and dropped by the assembling one
/// (a span 512 bytes larger made a month's scan 8% slower).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub trace_id: Arc<str>,
    /// inline up to 24 bytes (OTLP's 16 hex digits): no allocation per span
    pub span_id: CompactString,
    pub parent_id: Option<CompactString>,
    pub name: Arc<str>,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub failed: bool,
    pub origin: Origin,
    /// none for an ordinary span; made on the first write of one of its fields
    pub detail: Option<Box<Detail>>,
}

/// What a span carries beyond its ids, times and status (see [`Span`]).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    pub error_type: Option<Arc<str>>,
    /// the status message of a failed span (OTLP `status.message`)
    pub status_message: Option<Arc<str>>,
    /// the message of the span's first exception event
    pub exception_message: Option<Arc<str>>,
    /// `http.response.status_code`
    pub http_status: Option<u32>,
    /// the tool's result is marked as an error (MCP `isError`)
    pub tool_error: bool,
    pub request_model: Option<Arc<str>>,
    pub response_model: Option<Arc<str>>,
    /// the parts of an LLM call's input, by size, where the input was captured
    pub input_parts: Option<Box<[InputPart]>>,
    pub session: Option<Arc<str>>,
    pub agent_name: Option<Arc<str>>,
    pub model: Option<Arc<str>>,
    /// Usage of this call; only LLM calls carry it.
    pub usage: Usage,
    /// Usage reported on a non-LLM span (an agent's total): kept apart, never summed.
    pub aggregated_usage: Option<Usage>,
    /// The call's cost in USD as the source recorded it; else it is priced
    /// from the built-in table.
    pub recorded_cost: Option<f64>,
    pub stop_reason: Option<Arc<str>>,
    /// the instrumentation scope that recorded it (OTLP): one library never
    /// records one request twice, two may
    pub scope: Option<Arc<str>>,
    /// the provider's id of the response (`gen_ai.response.id`): two
    /// instrumentations recording one request give two spans with one id
    pub response_id: Option<Box<str>>,
    pub tool_name: Option<Arc<str>>,
    pub tool_server: Option<Arc<str>>,
    pub tool_args: Option<Box<str>>,
    pub tool_result: Option<Box<str>>,
    /// Result size in bytes where only a size was recorded.
    pub tool_result_size: Option<u64>,
    pub input_text: Option<Box<str>>,
    pub output_text: Option<Box<str>>,
    pub resource_uri: Option<Box<str>>,
}

/// The detail of a span that has none.
static NO_DETAIL: Detail = Detail {
    error_type: None,
    status_message: None,
    exception_message: None,
    http_status: None,
    tool_error: false,
    request_model: None,
    response_model: None,
    input_parts: None,
    session: None,
    agent_name: None,
    model: None,
    usage: Usage::NONE,
    aggregated_usage: None,
    recorded_cost: None,
    stop_reason: None,
    scope: None,
    response_id: None,
    tool_name: None,
    tool_server: None,
    tool_args: None,
    tool_result: None,
    tool_result_size: None,
    input_text: None,
    output_text: None,
    resource_uri: None,
};

impl std::ops::Deref for Span {
    type Target = Detail;
    fn deref(&self) -> &Detail {
        self.detail.as_deref().unwrap_or(&NO_DETAIL)
    }
}

impl std::ops::DerefMut for Span {
    /// Makes the detail if the span has none: to change a field only when
    /// there is one, use [`Span::detail_mut`].
    fn deref_mut(&mut self) -> &mut Detail {
        self.detail.get_or_insert_default()
    }
}

impl Span {
    /// The detail, if the span has one (a change that makes none).
    pub fn detail_mut(&mut self) -> Option<&mut Detail> {
        self.detail.as_deref_mut()
    }

    pub fn tool_result_bytes(&self) -> Option<u64> {
        self.tool_result
            .as_ref()
            .map(|t| t.len() as u64)
            .or(self.tool_result_size)
    }
}

/// Which big texts to keep; the rest are dropped at ingest to save memory.
#[derive(Clone, Copy, Debug)]
pub struct Keep {
    pub input_text: bool,
    pub output_text: bool,
    pub tool_args: bool,
    pub tool_result: bool,
}

impl Keep {
    pub const ALL: Keep = Keep {
        input_text: true,
        output_text: true,
        tool_args: true,
        tool_result: true,
    };

    pub fn apply(&self, s: &mut Span) {
        let Some(s) = s.detail_mut() else {
            return;
        };
        if !self.input_text {
            s.input_text = None;
        }
        if !self.output_text {
            s.output_text = None;
        }
        if !self.tool_result {
            if let Some(t) = s.tool_result.take() {
                s.tool_result_size = Some(t.len() as u64);
            }
        }
        // Arguments stay while any detector needs them or their hash (retry-storm).
        if !self.tool_args {
            s.tool_args = None;
        }
    }
}

/// One trace, its spans in arrival order.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub id: Arc<str>,
    pub spans: Vec<Box<Span>>,
    /// each span's parent's position in `spans` ([`NO_PARENT`]: none in the
    /// trace), found once when the trace is closed; empty before (see
    /// [`Trace::parents`])
    pub parents: Vec<u32>,
}

/// A span whose parent is not in its trace (or that has none).
pub const NO_PARENT: u32 = u32::MAX;

impl Trace {
    /// Each span's parent's position ([`NO_PARENT`]: none in the trace): as
    /// found when the trace was closed, else found now. Closing a trace, its
    /// session and its detector rows each looked up every span's parent by id
    /// in a table of their own (four tables of every span's id).
    pub fn parents(&self) -> std::borrow::Cow<'_, [u32]> {
        if self.parents.len() == self.spans.len() {
            std::borrow::Cow::Borrowed(&self.parents)
        } else {
            std::borrow::Cow::Owned(self.find_parents())
        }
    }

    fn find_parents(&self) -> Vec<u32> {
        let index: HashMap<&str, u32> = (self.spans.iter().enumerate())
            .map(|(i, s)| (&*s.span_id, i as u32))
            .collect();
        (self.spans.iter())
            .map(|s| {
                let parent = s.parent_id.as_deref();
                parent
                    .and_then(|p| index.get(p).copied())
                    .unwrap_or(NO_PARENT)
            })
            .collect()
    }

    /// The next span up from the span at `i`, by `parents`.
    fn up(parents: &[u32], i: usize) -> Option<usize> {
        let p = parents[i];
        (p != NO_PARENT).then_some(p as usize)
    }

    /// Parent links that loop (a span its own ancestor, through any number of
    /// spans) leave a trace without a root, and a walk up from one of its spans
    /// never ends. No link of a loop can be trusted to say what wraps what, so
    /// every span of the loop loses its parent and is analysed as a root; each
    /// loop is returned as a note.
    pub fn break_cycles(&mut self) -> Vec<Note> {
        let mut parents = self.find_parents();
        let notes = self.break_cycles_in(&mut parents);
        // what was kept of the links must not name a link just cut
        self.parents = parents;
        notes
    }

    /// [`Trace::break_cycles`] by `parents` (the links cut are cut there too).
    fn break_cycles_in(&mut self, parents: &mut [u32]) -> Vec<Note> {
        // 0: not seen, 1: on the path being walked, 2: known to reach a root or loop
        let mut state = vec![0u8; self.spans.len()];
        let mut rings: Vec<Vec<usize>> = Vec::new();
        let mut path = Vec::new();
        for start in 0..self.spans.len() {
            let mut next = Some(start);
            while let Some(i) = next.filter(|&i| state[i] == 0) {
                state[i] = 1;
                path.push(i);
                next = Trace::up(parents, i);
            }
            // The walk stopped at a span on its own path: a loop.
            if let Some(i) = next.filter(|&i| state[i] == 1) {
                if let Some(at) = path.iter().position(|&j| j == i) {
                    rings.push(path[at..].to_vec());
                }
            }
            for j in path.drain(..) {
                state[j] = 2;
            }
        }
        (rings.into_iter())
            .map(|ring| self.cut(ring, parents))
            .collect()
    }

    fn cut(&mut self, mut ring: Vec<usize>, parents: &mut [u32]) -> Note {
        ring.sort_by_key(|&j| (self.spans[j].start_ns, j));
        for &j in &ring {
            self.spans[j].parent_id = None;
            parents[j] = NO_PARENT;
        }
        let first = &self.spans[ring[0]];
        let what = if ring.len() == 1 {
            format!(
                "span {} is its own parent; analysed as a root",
                first.span_id
            )
        } else {
            let names: Vec<&str> = ring.iter().map(|&j| &*self.spans[j].span_id).collect();
            format!(
                "spans {} of trace {} are each other's ancestors (a parent loop); each is analysed as a root",
                names.join(", "),
                self.id
            )
        };
        Note {
            origin: first.origin,
            what,
        }
    }

    /// Two instrumentations on at once (an instrumentation and the SDK's own
    /// spans) record one request twice, with one `gen_ai.response.id` (or
    /// none: see [`Trace::same_requests`]), as siblings or nested. One copy
    /// stays the call, taking the texts the other captured (the copy with
    /// content is kept); the others become plain spans whose usage is kept
    /// apart, never counted again. Returns how many.
    pub fn merge_duplicate_calls(&mut self) -> usize {
        let mut by_id: HashMap<&str, Vec<usize>> = HashMap::default();
        for (i, s) in self.spans.iter().enumerate() {
            if let (Kind::Llm, Some(id)) = (s.kind, s.response_id.as_deref()) {
                by_id.entry(id).or_default().push(i);
            }
        }
        let mut groups: Vec<Vec<usize>> = by_id.into_values().filter(|v| v.len() > 1).collect();
        groups.extend(self.same_requests());
        for group in &groups {
            let content = |i: &usize| {
                let s = &self.spans[*i];
                (
                    s.output_text.is_some(),
                    s.input_text.is_some(),
                    s.usage.input + s.usage.output,
                )
            };
            let keep = *group
                .iter()
                .max_by_key(|i| content(i))
                .expect("two or more");
            for &i in group.iter().filter(|&&i| i != keep) {
                self.absorb(keep, i, true);
            }
        }
        groups.iter().map(|g| g.len() - 1).sum()
    }

    /// Copies of one request where no response id was recorded: sibling LLM
    /// calls (one parent) recorded by two libraries (instrumentation scopes)
    /// that started and ended within [`SAME_REQUEST_NS`] of each other with the
    /// same token counts, and the same model and input text where both recorded
    /// them. Two requests an agent really sent at once come from one library
    /// and differ in at least one of these (the answer's length, if nothing else).
    fn same_requests(&self) -> Vec<Vec<usize>> {
        type Key<'a> = (Option<&'a str>, u64, u64);
        let mut by_shape: HashMap<Key, Vec<usize>> = HashMap::default();
        for (i, s) in self.spans.iter().enumerate() {
            let counted = s.usage.input + s.usage.output > 0;
            if s.kind == Kind::Llm && s.response_id.is_none() && counted {
                let key = (s.parent_id.as_deref(), s.usage.input, s.usage.output);
                by_shape.entry(key).or_default().push(i);
            }
        }
        let mut groups = Vec::new();
        for mut rows in by_shape.into_values().filter(|v| v.len() > 1) {
            rows.sort_by_key(|&i| (self.spans[i].start_ns, i));
            let mut group = vec![rows[0]];
            for &i in &rows[1..] {
                if self.same_request(group[0], i) {
                    group.push(i);
                } else {
                    groups.extend((group.len() > 1).then_some(group));
                    group = vec![i];
                }
            }
            groups.extend((group.len() > 1).then_some(group));
        }
        groups
    }

    fn same_request(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.spans[a], &self.spans[b]);
        let near = |x: u64, y: u64| x.abs_diff(y) <= SAME_REQUEST_NS;
        let agree = |x: Option<&str>, y: Option<&str>| x.zip(y).is_none_or(|(x, y)| x == y);
        // Two libraries recorded them: two scopes, else (formats without
        // scopes) two span names.
        let two_sources = match (&a.scope, &b.scope) {
            (Some(x), Some(y)) => x != y,
            _ => a.name != b.name,
        };
        two_sources
            && near(a.start_ns, b.start_ns)
            && near(a.end_ns, b.end_ns)
            && agree(a.model.as_deref(), b.model.as_deref())
            && agree(a.input_text.as_deref(), b.input_text.as_deref())
    }

    /// The LLM span `copy` records the same request as `keep` (another
    /// instrumentation of it): `keep` takes what only the copy has (texts,
    /// input parts, the model and, with `usage`, the recorded cost and a usage
    /// field it did not record) and the copy becomes a plain span whose usage
    /// is kept apart, never counted.
    fn absorb(&mut self, keep: usize, copy: usize, usage: bool) {
        let c = &mut self.spans[copy];
        c.kind = Kind::Other;
        let theirs = std::mem::take(&mut c.usage);
        if theirs != Usage::default() {
            c.aggregated_usage = Some(theirs);
        }
        let input = c.input_text.take();
        let output = c.output_text.take();
        let parts = c.input_parts.take();
        let (cost, model) = (c.recorded_cost, c.model.clone());
        let k = &mut self.spans[keep];
        k.input_text = k.input_text.take().or(input);
        k.output_text = k.output_text.take().or(output);
        k.input_parts = k.input_parts.take().or(parts);
        k.model = k.model.take().or(model);
        if usage {
            k.recorded_cost = k.recorded_cost.or(cost);
            // One request's counts agree where both copies recorded them; a
            // field one did not record (0) is taken from the other.
            let u = &mut k.usage;
            u.input = u.input.max(theirs.input);
            u.output = u.output.max(theirs.output);
            u.cache_read = u.cache_read.max(theirs.cache_read);
            u.cache_write = u.cache_write.max(theirs.cache_write);
        }
    }

    /// An LLM span with an LLM span below it is a wrapper around the real call
    /// (OpenInference and Langfuse emit these): its usage is an aggregate, kept
    /// apart and never counted again. Only leaf LLM calls carry usage.
    pub fn demote_wrappers(&mut self) {
        let parents = self.find_parents();
        self.demote_wrappers_in(&parents);
    }

    /// [`Trace::demote_wrappers`] by `parents`.
    fn demote_wrappers_in(&mut self, parents: &[u32]) {
        let mut wrapper = vec![false; self.spans.len()];
        for (at, _) in (self.spans.iter().enumerate()).filter(|(_, s)| s.kind == Kind::Llm) {
            // Parent loops were broken (`break_cycles`), so every walk ends.
            let mut p = Trace::up(parents, at);
            while let Some(i) = p {
                if self.spans[i].kind == Kind::Llm {
                    wrapper[i] = true;
                }
                p = Trace::up(parents, i);
            }
        }
        let single = self.single_wrappers(parents, &wrapper);
        for (w, leaf) in single {
            // A wrapper's usage may sum more than this call (Agno's nest
            // agent-level aggregates): only its texts are taken.
            self.absorb(leaf, w, false);
        }
        for (s, w) in self.spans.iter_mut().zip(wrapper) {
            if w && s.kind == Kind::Llm {
                s.kind = Kind::Other;
                if s.usage != Usage::default() {
                    s.aggregated_usage = Some(std::mem::take(&mut s.usage));
                }
            }
        }
    }

    /// Wrappers with exactly one LLM call below them, with that call: the call
    /// recorded by a second instrumentation (OpenInference's span around the
    /// Anthropic SDK's own), whose texts the call takes when the inner copy
    /// records metadata only.
    fn single_wrappers(&self, parents: &[u32], wrapper: &[bool]) -> Vec<(usize, usize)> {
        let mut leaves: HashMap<usize, Vec<usize>> = HashMap::default();
        for (i, s) in self.spans.iter().enumerate() {
            if s.kind != Kind::Llm || wrapper[i] {
                continue;
            }
            let mut p = Trace::up(parents, i);
            while let Some(w) = p {
                if wrapper[w] {
                    leaves.entry(w).or_default().push(i);
                }
                p = Trace::up(parents, w);
            }
        }
        leaves
            .into_iter()
            .filter(|(_, l)| l.len() == 1)
            .map(|(w, l)| (w, l[0]))
            .collect()
    }

    /// Event-style instrumentations (BeeAI's) emit one span per event of a call:
    /// `….start-16`, `….success-16`, `….finish-16`. They are one call: the start
    /// span stays the call, taking the others' output; the others become plain spans.
    pub fn collapse_event_spans(&mut self) {
        fn key(name: &str) -> Option<(&str, &str, &str)> {
            let (stem, tail) = name.rsplit_once('.')?;
            let (event, n) = tail.rsplit_once('-')?;
            let known = matches!(event, "start" | "success" | "finish" | "error");
            (known && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then_some((stem, event, n))
        }
        let mut groups: HashMap<(String, String), Vec<usize>> = HashMap::default();
        for (i, s) in self.spans.iter().enumerate() {
            if matches!(s.kind, Kind::Llm | Kind::Tool) {
                if let Some((stem, _, n)) = key(&s.name) {
                    groups
                        .entry((stem.to_string(), n.to_string()))
                        .or_default()
                        .push(i);
                }
            }
        }
        for (_, idx) in groups.into_iter().filter(|(_, v)| v.len() > 1) {
            let main = idx
                .iter()
                .copied()
                .find(|&i| key(&self.spans[i].name).is_some_and(|k| k.1 == "start"))
                .unwrap_or(idx[0]);
            for &i in idx.iter().filter(|&&i| i != main) {
                let other = std::mem::take(&mut self.spans[i].output_text);
                let result = self.spans[i].tool_result.take();
                let failed = self.spans[i].failed;
                let usage = std::mem::take(&mut self.spans[i].usage);
                self.spans[i].kind = Kind::Other;
                let m = &mut self.spans[main];
                m.output_text = m.output_text.take().or(other);
                m.tool_result = m.tool_result.take().or(result);
                m.failed |= failed;
                if m.usage == Usage::default() {
                    m.usage = usage;
                } else {
                    m.usage.output = m.usage.output.max(usage.output);
                }
            }
        }
    }

    pub fn start(&self) -> u64 {
        self.spans.iter().map(|s| s.start_ns).min().unwrap_or(0)
    }
    /// The session named by the root span, else by any span (spec: turn/session).
    pub fn session(&self) -> Option<Arc<str>> {
        let parents = self.parents();
        (self.spans.iter().zip(parents.iter()))
            .filter(|(_, &p)| p == NO_PARENT)
            .find_map(|(s, _)| s.session.clone())
            .or_else(|| self.spans.iter().find_map(|s| s.session.clone()))
    }
}

/// Groups spans into traces as they stream in, and hands out traces once they
/// are complete: their root has arrived and the stream's clock (the latest span
/// end seen) has moved `quiet_ns` past their last span. Exporters write spans as
/// they end, so memory is bounded by the traces still open, not by the export.
pub struct Assembler {
    open: HashMap<Arc<str>, Open>,
    /// spans held in open traces
    open_spans: usize,
    /// traces already handed out (by trace id hash), to name spans that
    /// arrive too late, each with the sorted keys of the spans it had. With the
    /// open traces' keys these are every (trace id, span id) taken so far: a
    /// span is counted once, however many files or lines repeat it (rotated
    /// copies, downloads of one trace). Kept by trace rather than in one set
    /// of all spans: inserting 1.4 M keys into one table missed the cache on
    /// nearly every span (5% of a scan); a trace's keys are touched together.
    /// Old traces' keys wait on disk ([`closed::ClosedKeys`]).
    closed: closed::ClosedKeys,
    /// spans dropped as repeats, by the file that repeated them
    repeats: HashMap<FileName, u64>,
    /// the stream's clock and what was odd about its spans
    clock: Clock,
    quiet_ns: u64,
    /// [`Assembler::take_quiet`] calls so far (see there)
    round: u64,
}

/// The stream's clock (the latest span end seen), and what was odd about
/// spans taken (clock errors, parent loops) until taken: apart from the open
/// traces, so a span is checked while its trace is held.
struct Clock {
    notes: Vec<Note>,
    /// notes beyond [`KEEP_NOTES`], only counted
    more_notes: u64,
    /// a start later than this (a year after the run began), and a year after
    /// the stream's clock, is a clock error
    future_ns: u64,
    watermark: u64,
}

/// Notes kept between two [`Assembler::take_notes`]; a flood is counted.
const KEEP_NOTES: usize = 1000;

struct Open {
    trace: Trace,
    has_root: bool,
    last_end: u64,
    /// when its last span arrived (watch mode's clock)
    last_seen: std::time::Instant,
    /// the keys ([`span_key`]) of its spans
    keys: FxHashSet<u64>,
    /// the [`Assembler::take_quiet`] round its last span arrived in
    round: u64,
}

/// What became of a span handed to [`Assembler::add`].
pub enum Added {
    /// joined its trace
    New,
    /// its trace was already analysed: it starts a new, partial trace (so no span
    /// is lost), and the caller names it
    Late {
        origin: Origin,
        trace_id: Arc<str>,
        span_id: CompactString,
    },
    /// the same (trace id, span id) was taken before: dropped and counted
    /// (see [`Assembler::take_repeats`])
    Repeat,
}

/// Two instrumentations of one request open and close their spans around the
/// same call: within this of each other (their own overhead, well under the
/// round trip of any model call).
const SAME_REQUEST_NS: u64 = 50_000_000;

/// Nanoseconds in a day.
pub const DAY_NS: u64 = 86_400_000_000_000;

/// How far ahead a span may start before it is taken for a clock error.
const YEAR_NS: u64 = 366 * DAY_NS;

/// `2026-11-03`: the UTC day of a time.
pub fn utc_day(ns: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)) {
        Ok(t) => format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => "-".into(),
    }
}

/// `2026-11-03 14:22 UTC`.
pub fn utc_minute(ns: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)) {
        Ok(t) => format!("{} {:02}:{:02} UTC", utc_day(ns), t.hour(), t.minute()),
        Err(_) => "-".into(),
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The UTC day number a counted call (an LLM or tool call) starts; `None`
/// for any other span.
pub fn call_day(s: &Span) -> Option<u64> {
    matches!(s.kind, Kind::Llm | Kind::Tool).then_some(s.start_ns / DAY_NS)
}

fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(id)
}

/// A span's identity. 64 bits keep the set small; two different spans of one
/// export collide with a chance of about n²/2⁶⁵ (1e-7 for 1.4 M spans).
/// FxHash (rustc-hash 2 hashes strings with a wyhash-style mixer) rather than
/// SipHash: ids come from the exporter, not from an attacker who could aim
/// collisions, and SipHash was 2% of a scan. Watch checkpoints hold these
/// keys, so changing the hash changes the checkpoint's layout version.
pub fn span_key(trace_id: &str, span_id: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one((trace_id, span_id))
}

impl Clock {
    fn note(&mut self, origin: &Origin, what: String) {
        if self.notes.len() < KEEP_NOTES {
            self.notes.push(Note {
                origin: *origin,
                what,
            });
        } else {
            self.more_notes += 1;
        }
    }

    /// Clock errors are reported and made harmless: a span ending before it
    /// starts lasts 0, and a start in the far future keeps its time for the
    /// report but does not move the stream's clock (it would close every open
    /// trace at once).
    fn check(&mut self, span: &mut Span) -> u64 {
        if span.end_ns < span.start_ns {
            let what = format!(
                "span {} ends {} before it starts; its duration is taken as 0",
                span.span_id,
                format_args!("{:.3} s", (span.start_ns - span.end_ns) as f64 / 1e9)
            );
            self.note(&span.origin, what);
            span.end_ns = span.start_ns;
        }
        // A year past the run's start and past the stream's own clock too: an
        // export that runs on into the future (generated months, a replay, a
        // clock set back) moves the clock as it goes, or no trace of it would
        // ever be quiet and the whole stream would be held in memory.
        let far = self.future_ns.max(self.watermark.saturating_add(YEAR_NS));
        if span.start_ns > far {
            let what = format!(
                "span {} starts more than a year from now ({}) and from the spans before it: a clock or unit error? Analysed as given",
                span.span_id,
                utc_day(span.start_ns)
            );
            self.note(&span.origin, what);
            return self.watermark;
        }
        span.end_ns
    }
}

impl Assembler {
    pub fn new(quiet_ns: u64) -> Self {
        Assembler {
            open: HashMap::default(),
            open_spans: 0,
            closed: Default::default(),
            repeats: Default::default(),
            clock: Clock {
                notes: Vec::new(),
                more_notes: 0,
                future_ns: now_ns().saturating_add(YEAR_NS),
                watermark: 0,
            },
            quiet_ns,
            round: 0,
        }
    }

    fn note(&mut self, origin: &Origin, what: String) {
        self.clock.note(origin, what);
    }

    /// What was odd about the spans taken so far, and how many more notes were
    /// only counted (and forget them).
    pub fn take_notes(&mut self) -> (Vec<Note>, u64) {
        (
            std::mem::take(&mut self.clock.notes),
            std::mem::take(&mut self.clock.more_notes),
        )
    }

    /// Add a span that arrived just now; see [`Added`] for what can become of it.
    pub fn add(&mut self, span: impl Into<Box<Span>>) -> Added {
        self.add_at(span.into(), std::time::Instant::now())
    }

    /// Add a span that arrived at `now` (one reading of the clock serves a
    /// whole block of spans; only live input's idleness depends on it).
    pub fn add_at(&mut self, mut span: Box<Span>, now: std::time::Instant) -> Added {
        let key = span_key(&span.trace_id, &span.span_id);
        let closed = self.closed.lookup(id_hash(&span.trace_id), key);
        // One look into the open traces for a span of one (most spans).
        let open = self.open.get_mut(&span.trace_id);
        let taken = closed == Some(true) || open.as_ref().is_some_and(|o| o.keys.contains(&key));
        if taken {
            *self.repeats.entry(span.origin.file).or_default() += 1;
            return Added::Repeat;
        }
        let late = if closed.is_some() {
            Added::Late {
                origin: span.origin,
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
            }
        } else {
            Added::New
        };
        let clock = self.clock.check(&mut span);
        self.clock.watermark = self.clock.watermark.max(clock);
        let o = match open {
            Some(o) => o,
            // Only a trace's first span copies its id as the key.
            None => self.open.entry(span.trace_id.clone()).or_insert(Open {
                trace: Trace {
                    id: span.trace_id.clone(),
                    spans: Vec::new(),
                    parents: Vec::new(),
                },
                has_root: false,
                last_end: 0,
                last_seen: now,
                keys: FxHashSet::default(),
                round: 0,
            }),
        };
        o.keys.insert(key);
        o.round = self.round;
        o.last_seen = now;
        o.has_root |= span.parent_id.is_none();
        o.last_end = o.last_end.max(span.end_ns);
        o.trace.spans.push(span);
        self.open_spans += 1;
        late
    }

    /// The spans dropped as repeats so far, by file (and forget them).
    pub fn take_repeats(&mut self) -> std::collections::BTreeMap<Arc<str>, u64> {
        let by_file = std::mem::take(&mut self.repeats).into_iter();
        by_file.map(|(file, n)| (file.name(), n)).collect()
    }

    /// Whether a span with these ids was taken (to check what detectors name).
    pub fn knows(&self, trace_id: &str, span_id: &str) -> bool {
        self.taken(trace_id, span_id).is_some()
    }

    /// [`Assembler::knows`], with what dates a charge: `None` if the span was
    /// not taken, else the UTC day it starts if it is a counted LLM or tool
    /// call (a finding's waste is dated by the calls it charges).
    pub fn taken(&self, trace_id: &str, span_id: &str) -> Option<Option<u64>> {
        let key = span_key(trace_id, span_id);
        if let Some(o) = self.open.get(trace_id).filter(|o| o.keys.contains(&key)) {
            let span = o.trace.spans.iter().find(|s| &*s.span_id == span_id);
            return Some(span.and_then(|s| call_day(s)));
        }
        match self.closed.find(id_hash(trace_id), key) {
            closed::Known::Span { call_day } => Some(call_day),
            closed::Known::NoSpan | closed::Known::NoTrace => None,
        }
    }

    pub fn open_traces(&self) -> usize {
        self.open.len()
    }

    pub fn open_spans(&self) -> usize {
        self.open_spans
    }

    /// Complete traces, grouped into sessions in start order: those quiet by
    /// the stream's clock that took no span since the call before.
    ///
    /// The second condition is for input that goes back in time, as two
    /// exports of one period read one after the other do: each trace of the
    /// second is quiet by the clock from its first span on, and was closed at
    /// the end of whatever block held that span, its other spans then split
    /// off as partial traces. Where a block ends depends on how a pipe hands
    /// out its bytes, so the same input gave other findings from run to run
    /// (four months through `cat`: 476 to 478 sub-agent findings, where the
    /// months read alone find 480 in all). A trace is now let go only after a
    /// whole call's worth of input brought it nothing.
    pub fn take_quiet(&mut self) -> Vec<Session> {
        let (w, q, round) = (self.clock.watermark, self.quiet_ns, self.round);
        self.round += 1;
        // Traces without a root wait ten times longer: their root may be lost.
        let done: Vec<Arc<str>> = self
            .open
            .iter()
            .filter(|(_, o)| {
                let wait = if o.has_root { q } else { q.saturating_mul(10) };
                o.round < round && o.last_end.saturating_add(wait) <= w
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.take(done)
    }

    /// Live input: a trace is complete when no span of it arrived for `quiet`,
    /// or for `grace` once its root has arrived.
    pub fn take_idle(
        &mut self,
        quiet: std::time::Duration,
        grace: std::time::Duration,
    ) -> Vec<Session> {
        let now = std::time::Instant::now();
        let done: Vec<Arc<str>> = self
            .open
            .iter()
            .filter(|(_, o)| {
                let idle = now.duration_since(o.last_seen);
                idle >= quiet || (o.has_root && idle >= grace)
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.take(done)
    }

    /// When the next open trace becomes idle under [`Assembler::take_idle`]'s rule.
    pub fn next_idle(
        &self,
        quiet: std::time::Duration,
        grace: std::time::Duration,
    ) -> Option<std::time::Instant> {
        self.open
            .values()
            .map(|o| o.last_seen + if o.has_root { grace.min(quiet) } else { quiet })
            .min()
    }

    /// What the assembler holds, for watch mode's checkpoint: the spans of
    /// open traces and the ids already taken (repeats and late spans are
    /// still recognised after a restart).
    pub fn save(&self) -> SavedAssembler {
        SavedAssembler {
            open: self
                .open
                .values()
                .map(|o| o.trace.spans.iter().map(|s| (**s).clone()).collect())
                .collect(),
            closed: self.closed.all(),
            watermark: self.clock.watermark,
        }
    }

    /// The assembler [`Assembler::save`] described; its open traces are as
    /// if their spans had just arrived.
    pub fn restore(saved: SavedAssembler, quiet_ns: u64) -> Self {
        let mut a = Assembler::new(quiet_ns);
        for (trace, keys) in saved.closed {
            a.closed.add(trace, keys);
        }
        let now = std::time::Instant::now();
        for spans in saved.open {
            for s in spans {
                a.add_at(Box::new(s), now);
            }
        }
        a.clock.watermark = a.clock.watermark.max(saved.watermark);
        a
    }

    /// Everything still open (end of input).
    pub fn take_all(&mut self) -> Vec<Session> {
        let all: Vec<Arc<str>> = self.open.keys().cloned().collect();
        self.take(all)
    }

    /// Remember a closed trace's span keys (beside those of an earlier part
    /// of it, when late spans made a second one), each tagged with the day
    /// its call starts where it is a counted call.
    fn close_keys(&mut self, trace: &Trace, keys: FxHashSet<u64>) {
        let days: HashMap<u64, u64> = (trace.spans.iter())
            .filter_map(|s| {
                let day = call_day(s)?;
                Some((span_key(&s.trace_id, &s.span_id), day))
            })
            .collect();
        let tagged = keys
            .into_iter()
            .map(|k| closed::tagged(k, closed::tag(days.get(&k).copied())));
        self.closed.add(id_hash(&trace.id), tagged);
    }

    fn take(&mut self, ids: Vec<Arc<str>>) -> Vec<Session> {
        let mut traces = Vec::with_capacity(ids.len());
        for id in &ids {
            let Some(o) = self.open.remove(id) else {
                continue;
            };
            self.open_spans -= o.trace.spans.len();
            let mut t = o.trace;
            let mut parents = t.find_parents();
            for n in t.break_cycles_in(&mut parents) {
                self.note(&n.origin, n.what);
            }
            t.collapse_event_spans();
            // Before wrappers: a nested copy must not make its twin a wrapper.
            t.merge_duplicate_calls();
            t.demote_wrappers_in(&parents);
            // None of these moves a span or a link (but the loops cut).
            t.parents = parents;
            // Closed as the detectors and the totals will see it (which spans
            // are calls), with the keys of every span it took.
            self.close_keys(&t, o.keys);
            traces.push(t);
        }
        into_sessions(traces)
    }
}

/// An [`Assembler`]'s state (see [`Assembler::save`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedAssembler {
    /// the spans of each open trace, in arrival order
    open: Vec<Vec<Span>>,
    /// closed traces (by [`id_hash`]) with the sorted keys of their spans
    closed: Vec<(u64, Vec<u64>)>,
    watermark: u64,
}

/// A session's traces in start order.
#[derive(Clone)]
pub struct Session {
    pub id: Arc<str>,
    pub traces: Vec<Trace>,
}

/// Group traces into sessions, sessions ordered by their first start.
pub fn into_sessions(traces: Vec<Trace>) -> Vec<Session> {
    // Each trace's start is found once (a walk over its spans), not at every
    // comparison of the sorts.
    let mut by_session: HashMap<Arc<str>, Vec<(u64, Trace)>> = HashMap::default();
    for t in traces {
        let sid = t.session().unwrap_or_else(|| Arc::from(&*t.id));
        by_session.entry(sid).or_default().push((t.start(), t));
    }
    let mut sessions: Vec<(u64, Session)> = by_session
        .into_iter()
        .map(|(id, mut traces)| {
            traces.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
            let first = traces[0].0;
            let traces = traces.into_iter().map(|(_, t)| t).collect();
            (first, Session { id, traces })
        })
        .collect();
    sessions.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    sessions.into_iter().map(|(_, s)| s).collect()
}

/// Spans of whole traces, ready to become one detector batch.
pub struct Batch {
    /// (session id, trace) in order
    pub traces: Vec<(Arc<str>, Trace)>,
}

impl Batch {
    pub fn span_count(&self) -> usize {
        self.traces.iter().map(|(_, t)| t.spans.len()).sum()
    }
}

/// Cut sessions into batches of about `target` spans; never splits a trace, and a
/// session's traces stay in order across batches.
pub fn batches(sessions: Vec<Session>, target: usize) -> impl Iterator<Item = Batch> {
    let mut it = sessions.into_iter().flat_map(|s| {
        let id = s.id;
        s.traces.into_iter().map(move |t| (id.clone(), t))
    });
    std::iter::from_fn(move || {
        let mut b = Batch { traces: Vec::new() };
        let mut n = 0;
        for (sid, t) in it.by_ref() {
            n += t.spans.len();
            b.traces.push((sid, t));
            if n >= target {
                break;
            }
        }
        (!b.traces.is_empty()).then_some(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, id: &str, parent: Option<&str>, kind: Kind, input: u64) -> Span {
        Span {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            kind,
            start_ns: 1_000,
            end_ns: 2_000,
            detail: Some(Box::new(Detail {
                usage: Usage {
                    input,
                    ..Usage::default()
                },
                ..Detail::default()
            })),
            ..Span::default()
        }
    }

    /// Sibling copies of one request without a response id are one call;
    /// requests sent at once that differ in time, counts or input are not.
    #[test]
    fn identical_sibling_requests_are_one_call_and_different_ones_stay_apart() {
        let calls = |spans: Vec<Span>| {
            let mut a = Assembler::new(u64::MAX);
            a.add(span("t", "root", None, Kind::Agent, 0));
            spans.into_iter().for_each(|s| {
                a.add(s);
            });
            let s = a.take_all();
            let spans = &s[0].traces[0].spans;
            spans.iter().filter(|s| s.kind == Kind::Llm).count()
        };
        let copy = |id: &str| {
            let mut s = span("t", id, Some("root"), Kind::Llm, 500);
            s.scope = Some(Arc::from(id));
            s
        };
        assert_eq!(calls(vec![copy("a"), copy("b")]), 1, "one request twice");
        let mut one_library = copy("b");
        one_library.scope = Some(Arc::from("a"));
        assert_eq!(calls(vec![copy("a"), one_library]), 2, "one library");
        let mut later = copy("b");
        later.start_ns += 2 * SAME_REQUEST_NS;
        later.end_ns += 2 * SAME_REQUEST_NS;
        assert_eq!(calls(vec![copy("a"), later]), 2, "one after the other");
        let mut longer = copy("b");
        longer.usage.output = 7;
        assert_eq!(calls(vec![copy("a"), longer]), 2, "another answer");
        let (mut x, mut y) = (copy("a"), copy("b"));
        x.input_text = Some("review diff 1".into());
        y.input_text = Some("review diff 2".into());
        assert_eq!(calls(vec![x, y]), 2, "another input");
    }

    /// Only leaf LLM calls carry usage: a wrapper's is kept apart.
    #[test]
    fn an_llm_span_above_another_is_a_wrapper_and_counts_nothing() {
        let mut a = Assembler::new(u64::MAX);
        a.add(span("t", "root", None, Kind::Agent, 0));
        a.add(span("t", "outer", Some("root"), Kind::Llm, 500));
        a.add(span("t", "inner", Some("outer"), Kind::Llm, 500));
        let s = a.take_all();
        let spans = &s[0].traces[0].spans;
        let outer = spans.iter().find(|s| &*s.span_id == "outer").unwrap();
        assert_eq!(outer.kind, Kind::Other);
        assert_eq!(outer.usage, Usage::default());
        assert_eq!(outer.aggregated_usage.map(|u| u.input), Some(500));
        let leaf = spans.iter().find(|s| &*s.span_id == "inner").unwrap();
        assert_eq!((leaf.kind, leaf.usage.input), (Kind::Llm, 500));
    }

    #[test]
    fn a_span_read_twice_is_taken_once_and_counted_as_a_repeat() {
        let mut a = Assembler::new(u64::MAX);
        assert!(matches!(
            a.add(span("t", "s", None, Kind::Llm, 1)),
            Added::New
        ));
        let mut again = span("t", "s", None, Kind::Llm, 1);
        again.origin.file = FileName::of("copy.jsonl");
        assert!(matches!(a.add(again), Added::Repeat));
        assert_eq!(a.take_all()[0].traces[0].spans.len(), 1);
        assert_eq!(a.take_repeats().get("copy.jsonl"), Some(&1));
    }

    /// A closed trace keeps each span's parent's place, found once: with a
    /// parent loop cut, it still agrees with the spans' own links, and the
    /// root it shows names the session.
    #[test]
    fn a_closed_trace_keeps_its_parent_links_with_loops_cut() {
        let mut a = Assembler::new(u64::MAX);
        let mut root = span("t", "root", None, Kind::Agent, 0);
        root.session = Some("s1".into());
        let mut inner = span("t", "call", Some("root"), Kind::Llm, 5);
        inner.session = Some("not the root's".into());
        for s in [
            inner,
            root,
            span("t", "x", Some("y"), Kind::Other, 0),
            span("t", "y", Some("x"), Kind::Other, 0),
            span("t", "lost", Some("elsewhere"), Kind::Tool, 0),
        ] {
            a.add(s);
        }
        let sessions = a.take_all();
        assert_eq!(&*sessions[0].id, "s1");
        let t = &sessions[0].traces[0];
        assert_eq!(t.parents, t.find_parents(), "links as the spans hold them");
        let at = |id: &str| t.spans.iter().position(|s| &*s.span_id == id).unwrap();
        assert_eq!(t.parents[at("call")], at("root") as u32);
        for free in ["root", "x", "y", "lost"] {
            assert_eq!(t.parents[at(free)], NO_PARENT, "{free}");
        }
        assert_eq!(a.take_notes().0.len(), 1, "the loop is named");
    }

    /// Repeats are known by trace: after the trace was analysed, and after a
    /// watch checkpoint was restored, a copy of one of its spans is still a
    /// repeat, and a new span of it is still late.
    #[test]
    fn a_span_repeated_after_its_trace_was_analysed_is_still_a_repeat() {
        let mut a = Assembler::new(u64::MAX);
        a.add(span("t", "s", None, Kind::Llm, 1));
        a.add(span("t", "c", Some("s"), Kind::Llm, 1));
        assert_eq!(a.take_all().len(), 1);
        assert!(a.knows("t", "c") && !a.knows("t", "x") && !a.knows("u", "c"));
        let mut a = Assembler::restore(a.save(), u64::MAX);
        assert!(matches!(
            a.add(span("t", "c", Some("s"), Kind::Llm, 1)),
            Added::Repeat
        ));
        assert!(matches!(
            a.add(span("t", "x", Some("s"), Kind::Llm, 1)),
            Added::Late { .. }
        ));
        assert!(matches!(
            a.add(span("t", "x", Some("s"), Kind::Llm, 1)),
            Added::Repeat
        ));
        assert_eq!(
            a.take_all()[0].traces[0].spans.len(),
            1,
            "the late span, once"
        );
        assert!(a.knows("t", "x") && a.knows("t", "s"));
    }

    /// A charge is dated by the call it names: each call by its own start
    /// (a trace across midnight has calls on two days), in an open trace, in
    /// a closed one and in one whose ids went to disk; a span that is not a
    /// call has no day.
    #[test]
    fn a_taken_call_is_dated_by_its_own_start() {
        let mut a = Assembler::new(u64::MAX);
        a.closed = closed::ClosedKeys::with_budget(4);
        let at = |mut s: Span, day: u64| {
            s.start_ns = day * DAY_NS + 5;
            s.end_ns = s.start_ns + 1;
            s
        };
        a.add(at(span("t", "root", None, Kind::Agent, 0), 20_000));
        a.add(at(span("t", "late", Some("root"), Kind::Llm, 1), 20_001));
        a.add(at(span("t", "tool", Some("root"), Kind::Tool, 0), 20_000));
        assert_eq!(a.taken("t", "late"), Some(Some(20_001)), "open trace");
        a.take_all();
        for t in 0..10 {
            a.add(span(&format!("u{t}"), "s", None, Kind::Other, 0));
            a.take_all();
        }
        assert_eq!(a.taken("t", "late"), Some(Some(20_001)));
        assert_eq!(a.taken("t", "tool"), Some(Some(20_000)));
        assert_eq!(a.taken("t", "root"), Some(None), "an agent span");
        assert_eq!(a.taken("u3", "s"), Some(None), "a service span");
        assert_eq!(a.taken("t", "nope"), None);
    }

    /// An old trace whose span ids went to disk still knows them: a copy of
    /// one of its spans is a repeat, a new span of it is late, a charge to it
    /// names a span of the input, and a checkpoint keeps them.
    #[test]
    fn spans_of_traces_whose_ids_went_to_disk_are_still_known() {
        let mut a = Assembler::new(u64::MAX);
        a.closed = closed::ClosedKeys::with_budget(16);
        for t in 0..100 {
            a.add(span(&format!("t{t}"), "s", None, Kind::Llm, 1));
            a.add(span(&format!("t{t}"), "c", Some("s"), Kind::Llm, 1));
            a.take_all();
        }
        assert!(a.knows("t0", "c") && !a.knows("t0", "x"));
        let mut a = Assembler::restore(a.save(), u64::MAX);
        assert!(a.knows("t1", "s") && a.knows("t99", "c"));
        assert!(matches!(
            a.add(span("t0", "c", Some("s"), Kind::Llm, 1)),
            Added::Repeat
        ));
        assert!(matches!(
            a.add(span("t0", "x", Some("s"), Kind::Llm, 1)),
            Added::Late { .. }
        ));
    }

    /// Months read one after another that run past a year from now still
    /// move the stream's clock, so their traces become quiet and are let go;
    /// one span years ahead of the stream is still a clock error.
    #[test]
    fn a_stream_running_into_the_future_keeps_its_clock() {
        let mut a = Assembler::new(DAY_NS);
        let start = now_ns() + 300 * DAY_NS;
        for day in 0..200u64 {
            let mut s = span(&format!("t{day}"), "root", None, Kind::Llm, 1);
            (s.start_ns, s.end_ns) = (start + day * DAY_NS, start + day * DAY_NS + 1);
            a.add(s);
        }
        assert!(
            a.take_quiet().is_empty(),
            "a trace that just took a span waits a round"
        );
        let closed: usize = a.take_quiet().iter().map(|s| s.traces.len()).sum();
        assert_eq!(closed, 199, "all but the last day's trace");
        assert!(a.take_notes().0.is_empty(), "no clock error");
        let mut stray = span("stray", "root", None, Kind::Llm, 1);
        stray.start_ns = start + 5000 * DAY_NS;
        stray.end_ns = stray.start_ns + 1;
        a.add(stray);
        assert_eq!(a.take_notes().0.len(), 1, "a start years ahead is named");
        assert_eq!(a.take_quiet().len(), 0, "and does not move the clock");
    }

    #[test]
    fn a_span_of_a_trace_already_analysed_is_late_and_kept() {
        let mut a = Assembler::new(10);
        a.add(span("t1", "a", None, Kind::Llm, 1));
        let mut later = span("t2", "b", None, Kind::Llm, 1);
        (later.start_ns, later.end_ns) = (1_000_000, 1_000_001);
        a.add(later);
        assert!(
            a.take_quiet().is_empty(),
            "a trace that just took a span waits a round"
        );
        assert_eq!(
            a.take_quiet().len(),
            1,
            "t1 is quiet once the clock moved on"
        );
        assert!(matches!(
            a.add(span("t1", "c", Some("a"), Kind::Llm, 1)),
            Added::Late { .. }
        ));
        let rest: usize = a.take_all().iter().map(|s| s.traces.len()).sum();
        assert_eq!(rest, 2, "t2 and the partial t1");
    }

    /// An instrumentation and the SDK's own spans on at once: one request, two
    /// spans with one response id. Counted once, and the copy with the reply
    /// text is the call (so a filler opener is still found).
    #[test]
    fn one_request_recorded_twice_is_one_call_with_the_content_of_either() {
        for nested in [false, true] {
            let mut a = Assembler::new(u64::MAX);
            a.add(span("t", "root", None, Kind::Agent, 0));
            let mut sdk = span("t", "sdk", Some("root"), Kind::Llm, 800);
            sdk.response_id = Some("resp_1".into());
            let parent = if nested { "sdk" } else { "root" };
            let mut inst = span("t", "inst", Some(parent), Kind::Llm, 800);
            inst.response_id = Some("resp_1".into());
            inst.output_text = Some("You're absolutely right.".into());
            a.add(sdk);
            a.add(inst);
            let s = a.take_all();
            let calls: Vec<&Box<Span>> = s[0].traces[0]
                .spans
                .iter()
                .filter(|s| s.kind == Kind::Llm)
                .collect();
            assert_eq!(calls.len(), 1, "nested: {nested}");
            assert_eq!(calls[0].usage.input, 800);
            assert_eq!(
                calls[0].output_text.as_deref(),
                Some("You're absolutely right.")
            );
        }
    }

    #[test]
    fn sessions_group_traces_in_start_order() {
        let mut t1 = span("t1", "a", None, Kind::Agent, 0);
        t1.session = Some("s".into());
        t1.start_ns = 50;
        let mut t2 = span("t2", "b", None, Kind::Agent, 0);
        t2.session = Some("s".into());
        t2.start_ns = 10;
        let mut a = Assembler::new(u64::MAX);
        a.add(t1);
        a.add(t2);
        let s = a.take_all();
        assert_eq!(s.len(), 1);
        let ids: Vec<&str> = s[0].traces.iter().map(|t| &*t.id).collect();
        assert_eq!(ids, ["t2", "t1"]);
    }
}
