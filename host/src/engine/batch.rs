//! A batch as it crosses into a detector: columns with an interned string table,
//! and the big texts kept host-side until a detector asks for one.

use super::{Field, SpanColumns, SpanKind, TextField};
use crate::model::{self, Kind};
use rustc_hash::FxHashMap as HashMap;
use std::hash::Hasher;

const NONE: u32 = u32::MAX;

/// The big texts of a batch, by row.
#[derive(Default)]
pub struct BatchData {
    input: Vec<Option<Box<str>>>,
    output: Vec<Option<Box<str>>>,
    args: Vec<Option<Box<str>>>,
    result: Vec<Option<Box<str>>>,
    result_size: Vec<Option<u64>>,
    resource_uri: Vec<Option<Box<str>>>,
    parts: Vec<Option<Box<[model::InputPart]>>>,
}

impl BatchData {
    pub fn text(&self, row: u32, field: TextField) -> Option<&str> {
        let col = match field {
            TextField::Input => &self.input,
            TextField::Output => &self.output,
            TextField::ToolArguments => &self.args,
            TextField::ToolResult => &self.result,
            TextField::ResourceUri => &self.resource_uri,
        };
        col.get(row as usize).and_then(|t| t.as_deref())
    }
    pub fn parts(&self, row: u32) -> Option<&[model::InputPart]> {
        self.parts.get(row as usize).and_then(|p| p.as_deref())
    }
    pub fn size(&self, row: u32, field: TextField) -> Option<u64> {
        match field {
            TextField::ToolResult => self.result_size.get(row as usize).copied().flatten(),
            f => self.text(row, f).map(|t| t.len() as u64),
        }
    }
}

/// Every column of a batch, built once; each detector gets the ones it declared.
pub struct Columns {
    /// the columns (its `strings` unused: the table is `blob` and `ends`)
    pub all: SpanColumns,
    /// the string table as 0.4.0 sends it: the strings one after another
    blob: Vec<u8>,
    /// where each string of `blob` ends
    ends: Vec<u32>,
    /// the string table as a list, for components older than 0.4.0: made on
    /// the first call that needs it
    listed: std::sync::OnceLock<Vec<String>>,
    /// (trace key, model) of each trace's first LLM call, to price findings
    /// (see `prices::TraceModels`)
    pub trace_models: Vec<(u64, std::sync::Arc<str>)>,
}

struct Interner<'a> {
    map: HashMap<&'a str, u32>,
    blob: Vec<u8>,
    ends: Vec<u32>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        let next = self.ends.len() as u32;
        let i = *self.map.entry(s).or_insert(next);
        if i == next {
            self.append(s);
        }
        i
    }

    /// A string known to be new (a span id: unique within its trace, and the
    /// assembler drops repeats), added without the lookup that found nothing
    /// for every span.
    fn unique(&mut self, s: &str) -> u32 {
        self.append(s);
        self.ends.len() as u32 - 1
    }

    fn append(&mut self, s: &str) {
        self.blob.extend_from_slice(s.as_bytes());
        self.ends.push(self.blob.len() as u32);
    }
    fn opt(&mut self, s: Option<&'a str>) -> u32 {
        s.map_or(NONE, |s| self.id(s))
    }
}

fn kind(k: Kind) -> SpanKind {
    match k {
        Kind::Llm => SpanKind::Llm,
        Kind::Tool => SpanKind::Tool,
        Kind::Agent => SpanKind::Agent,
        Kind::Other => SpanKind::Other,
    }
}

fn args_hash(args: Option<&str>) -> u64 {
    match args {
        None => 0,
        Some(a) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(a.as_bytes());
            h.finish().max(1)
        }
    }
}

impl Columns {
    /// Turn a batch of whole traces into columns; texts move into [`BatchData`].
    /// Without `keep_other` (no rule reads ordinary spans), an ordinary span
    /// with no call or agent below it gets no row ([`Rows`]).
    pub fn build(batch: &mut model::Batch, keep_other: bool) -> (Columns, BatchData) {
        let mut base = 0;
        let rows: Vec<Rows> = (batch.traces.iter())
            .map(|(_, t)| {
                let r = Rows::of(t, base, keep_other);
                base += r.order.len() as i32;
                r
            })
            .collect();
        let n = base as usize;
        let mut c = SpanColumns {
            strings: Vec::new(),
            session: Vec::with_capacity(n),
            trace: Vec::with_capacity(n),
            span_id: Vec::with_capacity(n),
            parent: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            name: Vec::with_capacity(n),
            start_ns: Vec::with_capacity(n),
            end_ns: Vec::with_capacity(n),
            failed: Vec::with_capacity(n),
            agent_name: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            tool_name: Vec::with_capacity(n),
            tool_server: Vec::with_capacity(n),
            tool_args_hash: Vec::with_capacity(n),
            input_tokens: Vec::with_capacity(n),
            output_tokens: Vec::with_capacity(n),
            cache_read_tokens: Vec::with_capacity(n),
            cache_write_tokens: Vec::with_capacity(n),
            error_type: Vec::with_capacity(n),
            status_message: Vec::with_capacity(n),
            exception_message: Vec::with_capacity(n),
            http_status: Vec::with_capacity(n),
            tool_error: Vec::with_capacity(n),
            request_model: Vec::with_capacity(n),
            response_model: Vec::with_capacity(n),
        };
        let mut d = BatchData {
            input: Vec::with_capacity(n),
            output: Vec::with_capacity(n),
            args: Vec::with_capacity(n),
            result: Vec::with_capacity(n),
            result_size: Vec::with_capacity(n),
            resource_uri: Vec::with_capacity(n),
            parts: Vec::with_capacity(n),
        };
        let mut trace_models = Vec::new();
        let mut strs = Interner {
            map: HashMap::default(),
            blob: Vec::new(),
            ends: Vec::new(),
        };
        for ((session, trace), rows) in batch.traces.iter().zip(&rows) {
            if rows.order.is_empty() {
                continue;
            }
            let sid = strs.id(session);
            let tid = strs.id(&trace.id);
            if let Some(m) = trace
                .spans
                .iter()
                .filter(|s| s.kind == Kind::Llm)
                .min_by(|a, b| in_order(a, b))
                .and_then(|s| s.model.as_ref())
            {
                trace_models.push((crate::prices::trace_key(&trace.id), m.clone()));
            }
            for &i in &rows.order {
                let s = &trace.spans[i];
                push_span(&mut c, &mut strs, s, (sid, tid), rows.parent[i]);
            }
        }
        let Interner { map, blob, ends } = strs;
        drop(map); // it borrows the spans, whose texts move out below
        for ((_, trace), rows) in batch.traces.iter_mut().zip(&rows) {
            for &i in &rows.order {
                let s = &mut trace.spans[i];
                d.result_size.push(s.tool_result_bytes());
                // an ordinary span (kept for `span-kinds`) has no detail to
                // take from: an empty one stands in, made only for such a span
                let mut none = None;
                let s = match s.detail_mut() {
                    Some(d) => d,
                    None => none.insert(crate::model::Detail::default()),
                };
                d.input.push(s.input_text.take());
                d.output.push(s.output_text.take());
                d.args.push(s.tool_args.take());
                d.result.push(s.tool_result.take());
                d.resource_uri.push(s.resource_uri.take());
                d.parts.push(s.input_parts.take());
            }
        }
        (
            Columns {
                all: c,
                blob,
                ends,
                listed: std::sync::OnceLock::new(),
                trace_models,
            },
            d,
        )
    }

    /// The string table as a list of strings (0.3.0 and older).
    pub fn listed(&self) -> &[String] {
        self.listed.get_or_init(|| {
            let mut start = 0;
            self.ends
                .iter()
                .map(|&end| {
                    let s = &self.blob[start..end as usize];
                    start = end as usize;
                    // Whole strings were appended, so each is whole UTF-8.
                    String::from_utf8_lossy(s).into_owned()
                })
                .collect()
        })
    }

    /// The columns a detector declared; the others are sent empty. Borrowed:
    /// every detector is handed the same columns, and a copy per detector
    /// (a string per span id) cost more than the call.
    pub fn view(&self, needs: &[Field]) -> ColumnsView<'_> {
        let a = &self.all;
        let has = |f: Field| needs.contains(&f);
        fn pick<T>(yes: bool, v: &[T]) -> &[T] {
            if yes {
                v
            } else {
                &[]
            }
        }
        let tool = has(Field::Tool);
        let tokens = has(Field::Tokens);
        let errors = has(Field::Errors);
        let models = has(Field::Models);
        ColumnsView {
            strings: &self.blob,
            string_ends: &self.ends,
            session: &a.session,
            trace: &a.trace,
            span_id: &a.span_id,
            parent: &a.parent,
            kind: &a.kind,
            name: &a.name,
            start_ns: &a.start_ns,
            end_ns: &a.end_ns,
            failed: pick(has(Field::Failed), &a.failed),
            agent_name: pick(has(Field::AgentName), &a.agent_name),
            model: pick(has(Field::Model), &a.model),
            tool_name: pick(tool, &a.tool_name),
            tool_server: pick(tool, &a.tool_server),
            tool_args_hash: pick(tool, &a.tool_args_hash),
            input_tokens: pick(tokens, &a.input_tokens),
            output_tokens: pick(tokens, &a.output_tokens),
            cache_read_tokens: pick(tokens, &a.cache_read_tokens),
            cache_write_tokens: pick(tokens, &a.cache_write_tokens),
            error_type: pick(errors, &a.error_type),
            status_message: pick(errors, &a.status_message),
            exception_message: pick(errors, &a.exception_message),
            http_status: pick(errors, &a.http_status),
            tool_error: pick(errors, &a.tool_error),
            request_model: pick(models, &a.request_model),
            response_model: pick(models, &a.response_model),
        }
    }
}

/// `span-columns` of WIT 0.4.0, borrowed: lowered into a detector straight
/// from the batch's columns. Field for field the record of the WIT (wasmtime
/// checks it against the component's type before the first call).
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lower)]
#[component(record)]
pub struct ColumnsView<'a> {
    pub strings: &'a [u8],
    #[component(name = "string-ends")]
    pub string_ends: &'a [u32],
    pub session: &'a [u32],
    pub trace: &'a [u32],
    #[component(name = "span-id")]
    pub span_id: &'a [u32],
    pub parent: &'a [i32],
    pub kind: &'a [SpanKind],
    pub name: &'a [u32],
    #[component(name = "start-ns")]
    pub start_ns: &'a [u64],
    #[component(name = "end-ns")]
    pub end_ns: &'a [u64],
    pub failed: &'a [bool],
    #[component(name = "agent-name")]
    pub agent_name: &'a [u32],
    pub model: &'a [u32],
    #[component(name = "tool-name")]
    pub tool_name: &'a [u32],
    #[component(name = "tool-server")]
    pub tool_server: &'a [u32],
    #[component(name = "tool-args-hash")]
    pub tool_args_hash: &'a [u64],
    #[component(name = "input-tokens")]
    pub input_tokens: &'a [u64],
    #[component(name = "output-tokens")]
    pub output_tokens: &'a [u64],
    #[component(name = "cache-read-tokens")]
    pub cache_read_tokens: &'a [u64],
    #[component(name = "cache-write-tokens")]
    pub cache_write_tokens: &'a [u64],
    #[component(name = "error-type")]
    pub error_type: &'a [u32],
    #[component(name = "status-message")]
    pub status_message: &'a [u32],
    #[component(name = "exception-message")]
    pub exception_message: &'a [u32],
    #[component(name = "http-status")]
    pub http_status: &'a [u32],
    #[component(name = "tool-error")]
    pub tool_error: &'a [bool],
    #[component(name = "request-model")]
    pub request_model: &'a [u32],
    #[component(name = "response-model")]
    pub response_model: &'a [u32],
}

/// `span-columns` of WIT 0.2.0 and 0.3.0: the same columns with the string
/// table as a list of strings.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lower)]
#[component(record)]
pub struct ColumnsViewV3<'a> {
    pub strings: &'a [String],
    pub session: &'a [u32],
    pub trace: &'a [u32],
    #[component(name = "span-id")]
    pub span_id: &'a [u32],
    pub parent: &'a [i32],
    pub kind: &'a [SpanKind],
    pub name: &'a [u32],
    #[component(name = "start-ns")]
    pub start_ns: &'a [u64],
    #[component(name = "end-ns")]
    pub end_ns: &'a [u64],
    pub failed: &'a [bool],
    #[component(name = "agent-name")]
    pub agent_name: &'a [u32],
    pub model: &'a [u32],
    #[component(name = "tool-name")]
    pub tool_name: &'a [u32],
    #[component(name = "tool-server")]
    pub tool_server: &'a [u32],
    #[component(name = "tool-args-hash")]
    pub tool_args_hash: &'a [u64],
    #[component(name = "input-tokens")]
    pub input_tokens: &'a [u64],
    #[component(name = "output-tokens")]
    pub output_tokens: &'a [u64],
    #[component(name = "cache-read-tokens")]
    pub cache_read_tokens: &'a [u64],
    #[component(name = "cache-write-tokens")]
    pub cache_write_tokens: &'a [u64],
    #[component(name = "error-type")]
    pub error_type: &'a [u32],
    #[component(name = "status-message")]
    pub status_message: &'a [u32],
    #[component(name = "exception-message")]
    pub exception_message: &'a [u32],
    #[component(name = "http-status")]
    pub http_status: &'a [u32],
    #[component(name = "tool-error")]
    pub tool_error: &'a [bool],
    #[component(name = "request-model")]
    pub request_model: &'a [u32],
    #[component(name = "response-model")]
    pub response_model: &'a [u32],
}

impl<'a> ColumnsView<'a> {
    /// The same columns for a 0.3.0 or 0.2.0 component, with the table listed.
    pub fn listed(&self, strings: &'a [String]) -> ColumnsViewV3<'a> {
        ColumnsViewV3 {
            strings,
            session: self.session,
            trace: self.trace,
            span_id: self.span_id,
            parent: self.parent,
            kind: self.kind,
            name: self.name,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            failed: self.failed,
            agent_name: self.agent_name,
            model: self.model,
            tool_name: self.tool_name,
            tool_server: self.tool_server,
            tool_args_hash: self.tool_args_hash,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens,
            error_type: self.error_type,
            status_message: self.status_message,
            exception_message: self.exception_message,
            http_status: self.http_status,
            tool_error: self.tool_error,
            request_model: self.request_model,
            response_model: self.response_model,
        }
    }
}

/// Where each span of a trace goes in the columns: its row, and its parent's.
struct Rows {
    /// the row of each span's parent, -1 for none (or a parent left out)
    parent: Vec<i32>,
    /// the spans that have a row, in row order
    order: Vec<usize>,
}

/// The spec's order of a trace's spans (start, end, span id): each detector
/// that walks a turn sorts its rows so, and rows already in order cost it one
/// pass instead of a sort.
fn in_order(a: &model::Span, b: &model::Span) -> std::cmp::Ordering {
    (a.start_ns, a.end_ns, &*a.span_id).cmp(&(b.start_ns, b.end_ns, &*b.span_id))
}

impl Rows {
    /// The rows of `trace`'s spans from row `base` on. Unless `keep_other`,
    /// an ordinary span (kind other) gets a row only when a call or agent is
    /// below it: the HTTP and database leaves of a service go, the spans
    /// that hold calls stay, so every row's parent is its own parent.
    fn of(trace: &model::Trace, base: i32, keep_other: bool) -> Rows {
        let spans = &trace.spans;
        let up: Vec<Option<usize>> = (trace.parents().iter().enumerate())
            .map(|(i, &p)| (p != model::NO_PARENT && p as usize != i).then_some(p as usize))
            .collect();
        // A span is marked only by a walk that goes on to the root (or to a
        // span already marked, whose ancestors are), so a marked span's
        // ancestors are all marked; a loop of parents ends the walk too.
        let mut keep = vec![false; spans.len()];
        for (i, s) in spans.iter().enumerate() {
            if keep_other || s.kind != Kind::Other {
                let mut at = Some(i);
                while let Some(j) = at.filter(|&j| !keep[j]) {
                    keep[j] = true;
                    at = up[j];
                }
            }
        }
        // Only the spans that get a row are put in order: sorting every span
        // of a trace, the ordinary leaves too, was 2% of a scan.
        let mut order: Vec<usize> = (0..spans.len()).filter(|&i| keep[i]).collect();
        order.sort_unstable_by(|&a, &b| in_order(&spans[a], &spans[b]));
        let mut row = vec![-1; spans.len()];
        for (k, &i) in order.iter().enumerate() {
            row[i] = base + k as i32;
        }
        let parent = up.iter().map(|p| p.map_or(-1, |p| row[p])).collect();
        Rows { parent, order }
    }
}

/// One span's row in every column; `ids` are its (session, trace) strings and
/// `parent` its parent's row (-1 for none).
fn push_span<'a>(
    c: &mut SpanColumns,
    strs: &mut Interner<'a>,
    s: &'a model::Span,
    ids: (u32, u32),
    parent: i32,
) {
    c.session.push(ids.0);
    c.trace.push(ids.1);
    c.span_id.push(strs.unique(&s.span_id));
    c.parent.push(parent);
    c.kind.push(kind(s.kind));
    c.name.push(strs.id(&s.name));
    c.start_ns.push(s.start_ns);
    c.end_ns.push(s.end_ns);
    c.failed.push(s.failed);
    c.agent_name.push(strs.opt(s.agent_name.as_deref()));
    c.model.push(strs.opt(s.model.as_deref()));
    c.tool_name.push(strs.opt(s.tool_name.as_deref()));
    c.tool_server.push(strs.opt(s.tool_server.as_deref()));
    c.tool_args_hash.push(args_hash(s.tool_args.as_deref()));
    c.input_tokens.push(s.usage.input);
    c.output_tokens.push(s.usage.output);
    c.cache_read_tokens.push(s.usage.cache_read);
    c.cache_write_tokens.push(s.usage.cache_write);
    c.error_type.push(strs.opt(s.error_type.as_deref()));
    c.status_message.push(strs.opt(s.status_message.as_deref()));
    c.exception_message
        .push(strs.opt(s.exception_message.as_deref()));
    c.http_status.push(s.http_status.unwrap_or(0));
    c.tool_error.push(s.tool_error);
    c.request_model.push(strs.opt(s.request_model.as_deref()));
    c.response_model.push(strs.opt(s.response_model.as_deref()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, Detail, Span, Trace, Usage};

    /// A detector pays only for what it reads: the columns it did not declare
    /// reach it empty, the ones it did hold a row per span.
    #[test]
    fn a_view_holds_the_declared_columns_and_leaves_the_others_empty() {
        let llm = Span {
            trace_id: "t".into(),
            span_id: "a".into(),
            kind: Kind::Llm,
            detail: Some(Box::new(Detail {
                model: Some("m".into()),
                usage: Usage {
                    input: 7,
                    ..Usage::default()
                },
                http_status: Some(500),
                ..Detail::default()
            })),
            ..Span::default()
        };
        let tool = Span {
            span_id: "b".into(),
            parent_id: Some("a".into()),
            kind: Kind::Tool,
            ..llm.clone()
        };
        let trace = Trace {
            id: "t".into(),
            spans: vec![Box::new(llm), Box::new(tool)],
            ..Default::default()
        };
        let (cols, _) = Columns::build(
            &mut Batch {
                traces: vec![("s".into(), trace)],
            },
            true,
        );
        let v = cols.view(&[Field::Tokens, Field::Model]);
        assert_eq!(v.input_tokens, [7, 7]);
        assert_eq!(v.model.len(), 2);
        assert_eq!(v.parent, [-1, 0]);
        assert_eq!(
            v.span_id
                .iter()
                .map(|&i| cols.listed()[i as usize].as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(v.http_status.is_empty() && v.error_type.is_empty() && v.tool_name.is_empty());
        assert!(v.failed.is_empty() && v.request_model.is_empty() && v.agent_name.is_empty());
        let errors = cols.view(&[Field::Errors]);
        assert_eq!(errors.http_status, [500, 500]);
        assert!(errors.input_tokens.is_empty());
    }

    /// Detectors walk a turn in the spec's order; the rows arrive in it,
    /// whatever order the spans were read in, with parents and texts
    /// following their spans.
    #[test]
    fn a_traces_rows_come_in_order_of_start_then_end_then_span_id() {
        let span = |id: &str, parent: Option<&str>, start: u64, end: u64| Span {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            start_ns: start,
            end_ns: end,
            detail: Some(Box::new(Detail {
                input_text: Some(format!("text of {id}").into()),
                ..Detail::default()
            })),
            ..Span::default()
        };
        let trace = Trace {
            id: "t".into(),
            spans: [
                span("d", Some("a"), 5, 9),
                span("c", Some("a"), 5, 7),
                span("a", None, 1, 20),
                span("b", Some("d"), 5, 7),
            ]
            .map(Box::new)
            .into(),
            ..Default::default()
        };
        let (cols, data) = Columns::build(
            &mut Batch {
                traces: vec![("s".into(), trace)],
            },
            true,
        );
        let ids: Vec<&str> = (cols.all.span_id.iter())
            .map(|&i| cols.listed()[i as usize].as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(cols.all.parent, [-1, 3, 0, 0]);
        assert_eq!(data.text(1, TextField::Input), Some("text of b"));
    }

    /// Without a rule that reads them, ordinary spans with no call below
    /// them (a service's HTTP and database leaves) are left out, and those
    /// that hold calls stay, so each row's parent is still its own; texts
    /// follow their rows.
    #[test]
    fn ordinary_leaves_are_left_out_and_the_spans_holding_calls_stay() {
        let span = |id: &str, parent: Option<&str>, kind: Kind, start: u64| Span {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            kind,
            start_ns: start,
            end_ns: 100 - start,
            detail: Some(Box::new(Detail {
                output_text: Some(format!("text of {id}").into()),
                ..Detail::default()
            })),
            ..Span::default()
        };
        let spans = || {
            [
                span("root", None, Kind::Other, 0),
                span("db", Some("root"), Kind::Other, 1),
                span("agent", Some("root"), Kind::Agent, 2),
                span("route", Some("agent"), Kind::Other, 3),
                span("llm", Some("route"), Kind::Llm, 4),
                span("http", Some("llm"), Kind::Other, 5),
            ]
            .map(Box::new)
            .into()
        };
        let build = |keep_other| {
            Columns::build(
                &mut Batch {
                    traces: vec![(
                        "s".into(),
                        Trace {
                            id: "t".into(),
                            spans: spans(),
                            ..Default::default()
                        },
                    )],
                },
                keep_other,
            )
        };
        let ids = |cols: &Columns| -> Vec<String> {
            (cols.all.span_id.iter())
                .map(|&i| cols.listed()[i as usize].clone())
                .collect()
        };
        let (cols, data) = build(false);
        assert_eq!(ids(&cols), ["root", "agent", "route", "llm"]);
        assert_eq!(cols.all.parent, [-1, 0, 1, 2]);
        assert_eq!(data.text(3, TextField::Output), Some("text of llm"));
        let (cols, data) = build(true);
        assert_eq!(ids(&cols), ["root", "db", "agent", "route", "llm", "http"]);
        assert_eq!(cols.all.parent, [-1, 0, 0, 2, 3, 4]);
        assert_eq!(data.text(4, TextField::Output), Some("text of llm"));
    }

    /// An ordinary span kept for `span-kinds` gives the text columns nothing
    /// and stays without a detail: taking its texts makes none.
    #[test]
    fn an_ordinary_span_in_the_columns_stays_without_a_detail() {
        let db = Span {
            trace_id: "t".into(),
            span_id: "db".into(),
            ..Span::default()
        };
        let mut batch = Batch {
            traces: vec![(
                "s".into(),
                Trace {
                    id: "t".into(),
                    spans: vec![Box::new(db)],
                    ..Default::default()
                },
            )],
        };
        let (cols, data) = Columns::build(&mut batch, true);
        assert_eq!(cols.all.span_id.len(), 1);
        assert_eq!(data.text(0, TextField::Output), None);
        assert!(batch.traces[0].1.spans[0].detail.is_none());
    }
}
