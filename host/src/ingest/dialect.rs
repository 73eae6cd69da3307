//! Attribute dialects mapped onto the canonical span: OpenTelemetry GenAI (current
//! and deprecated names, MCP), OpenInference, OpenLLMetry / Traceloop, Vercel AI
//! SDK, LangSmith, Langfuse, pydantic-ai / Logfire, and a team's own mappings.
//! This is where "what is an LLM call" and "what are its tokens" is decided, so
//! the spec's counting rules live here, once, for every reader.

use super::attrs::{as_json, AnyValue, Attrs, KeyValue};
use super::mapping::Mappings;
use super::parts::Prompt;
use crate::model::{Detail, Kind, Origin, Span, Usage};
use compact_str::CompactString;
use serde_json::Value;
use std::sync::Arc;

/// What a reader knows about a span besides its attributes.
#[derive(Default, Debug)]
pub struct Base {
    /// what every span keeps
    pub plain: Plain,
    /// a kind the format states outright (Langfuse's observation type)
    pub kind: Option<Kind>,
    /// usage the format states outright (Langfuse's usageDetails), already whole
    pub usage: Option<Usage>,
    /// the call's cost in USD as the source recorded it (Langfuse's costDetails)
    pub cost: Option<f64>,
    /// the status message (OTLP `status.message`; Langfuse `statusMessage`)
    pub status_message: Option<String>,
    /// the message of the first exception event
    pub exception: Option<String>,
    pub model: Option<String>,
    pub session: Option<String>,
    /// the format's own input / output payloads (Langfuse, Helicone)
    pub input: Option<Value>,
    pub output: Option<Value>,
    /// the instrumentation scope that recorded the span (OTLP)
    pub scope: Option<Arc<str>>,
}

/// An instrumentation scope's name as a span keeps it; none when unnamed (OTLP
/// JSON and protobuf alike).
pub fn scope_name(name: &str) -> Option<Arc<str>> {
    (!name.is_empty()).then(|| Arc::from(name))
}

/// Dialect families, for `inspect`.
pub const DIALECTS: [&str; 9] = [
    "otel-genai",
    "openinference",
    "openllmetry",
    "vercel-ai",
    "langsmith",
    "langfuse",
    "logfire",
    "mcp",
    "custom",
];

const LLM_OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "generate_content",
    "completion",
    "responses",
    "call_llm",
];
const AGENT_OPERATIONS: &[&str] = &["invoke_agent", "create_agent"];

fn by_word(word: &str) -> Option<Kind> {
    let w = word.to_ascii_lowercase();
    match w.as_str() {
        "llm" | "generation" | "chat" => Some(Kind::Llm),
        "tool" => Some(Kind::Tool),
        "agent" => Some(Kind::Agent),
        "chain" | "retriever" | "embedding" | "reranker" | "guardrail" | "evaluator" | "span"
        | "event" | "workflow" | "task" | "prompt" | "parser" => Some(Kind::Other),
        _ => None,
    }
}

/// The span's kind, from the most explicit signal present.
fn kind_of(a: &Attrs, base: &Base) -> Kind {
    if let Some(k) = base.kind {
        return k;
    }
    if let Some(op) = a.str(&["gen_ai.operation.name"]) {
        if LLM_OPERATIONS.contains(&op) {
            return Kind::Llm;
        }
        if op == "execute_tool" {
            return Kind::Tool;
        }
        if AGENT_OPERATIONS.contains(&op) {
            return Kind::Agent;
        }
    }
    // LangSmith runs an agent as a chain; its coding-agent metadata contract
    // marks a turn's top run `root` and a sub-agent's `subagent`.
    if let Some("root" | "subagent") = a.str(&["langsmith.metadata.ls_agent_type"]) {
        return Kind::Agent;
    }
    for key in [
        "openinference.span.kind",
        "langfuse.observation.type",
        "traceloop.span.kind",
        "langsmith.span.kind",
    ] {
        if let Some(k) = a.str(&[key]).and_then(by_word) {
            return k;
        }
    }
    if a.get(&["llm.request.type"]).is_some() {
        return Kind::Llm;
    }
    if let Some(op) = a.str(&["ai.operationId"]) {
        if op.ends_with(".doGenerate") || op.ends_with(".doStream") {
            return Kind::Llm;
        }
        if op == "ai.toolCall" {
            return Kind::Tool;
        }
        return Kind::Other;
    }
    if let Some(m) = a.str(&["mcp.method.name"]) {
        if m == "tools/call" || m == "resources/read" {
            return Kind::Tool;
        }
    }
    // Span names follow "{operation} {target}" when the attribute is missing.
    let first = base.plain.name.split(' ').next().unwrap_or("");
    // `gen_ai.client.inference`: the GenAI conventions' name for an inference
    // span whose operation is not known.
    if LLM_OPERATIONS.contains(&first) || first == "gen_ai.client.inference" {
        return Kind::Llm;
    }
    if first == "execute_tool"
        || first == "tools/call"
        || base.plain.name.starts_with("running tool")
    {
        return Kind::Tool;
    }
    if AGENT_OPERATIONS.contains(&first) {
        return Kind::Agent;
    }
    if a.get(&["gen_ai.tool.name"]).is_some() {
        return Kind::Tool;
    }
    if a.get(&["gen_ai.agent.name", "agent_name"]).is_some() {
        return Kind::Agent;
    }
    Kind::Other
}

/// Usage in the attributes. Every convention here counts cache reads inside
/// input and reasoning inside output, so nothing is added back.
/// A call's cost in USD where the instrumentation records it:
/// - OpenInference `llm.cost.total`, else `llm.cost.prompt` + `llm.cost.completion`
///   (openinference spec/semantic_conventions.md, "llm.cost.*", USD);
/// - any-agent's `gen_ai.usage.input_cost` + `gen_ai.usage.output_cost`
///   (mozilla-ai/any-agent tracing/span_attrs.py; seen in its real traces);
/// - LiteLLM-style `gen_ai.usage.cost` (not an OpenTelemetry convention);
/// - Langfuse's OpenTelemetry attribute `langfuse.observation.cost_details`
///   (a JSON object of USD amounts, with `total` or parts).
///
/// 0 is read as not recorded: tools write 0 when they know no price.
fn cost_of(a: &Attrs) -> Option<f64> {
    let num = |names: &[&str]| a.get(names).and_then(AnyValue::as_f64);
    let pair = |x: &str, y: &str| match (num(&[x]), num(&[y])) {
        (None, None) => None,
        (p, q) => Some(p.unwrap_or(0.0) + q.unwrap_or(0.0)),
    };
    let langfuse = || {
        let v: Value = serde_json::from_str(a.str(&["langfuse.observation.cost_details"])?).ok()?;
        let d = v.as_object()?;
        d.get("total")
            .and_then(Value::as_f64)
            .or_else(|| Some(d.values().filter_map(Value::as_f64).sum()))
    };
    num(&["llm.cost.total"])
        .or_else(|| pair("llm.cost.prompt", "llm.cost.completion"))
        .or_else(|| pair("gen_ai.usage.input_cost", "gen_ai.usage.output_cost"))
        .or_else(|| num(&["gen_ai.usage.cost"]))
        .or_else(langfuse)
        .filter(|c| c.is_finite() && *c > 0.0)
}

fn usage_of(a: &Attrs) -> Option<Usage> {
    let input = a.u64(&[
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "ai.usage.inputTokens",
        "ai.usage.promptTokens",
        "llm.usage.prompt_tokens",
    ]);
    let output = a.u64(&[
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "ai.usage.outputTokens",
        "ai.usage.completionTokens",
        "llm.usage.completion_tokens",
    ]);
    let cache_read = a.u64(&[
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "ai.usage.cachedInputTokens",
        "gen_ai.usage.input_token_details.cache_read",
    ]);
    // OTel GenAI renamed cache_creation to cache_write (2026; the Anthropic
    // SDK's own spans write the new name): both are read.
    let cache_write = a.u64(&[
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "gen_ai.usage.input_token_details.cache_creation",
    ]);
    if input.is_none() && output.is_none() {
        return None; // no usage: the details are not looked up
    }
    // LangSmith's details, read once, only for what the attributes lack.
    let details = if cache_read.is_none() || cache_write.is_none() {
        token_details(a)
    } else {
        None
    };
    let (detail_read, detail_write) = details.unwrap_or_default();
    usage_from(
        input,
        output,
        cache_read.or(detail_read),
        cache_write.or(detail_write),
    )
}

/// Usage from counts a source recorded: none without input and output counts,
/// a missing count 0.
fn usage_from(
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
) -> Option<Usage> {
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cache_read: cache_read.unwrap_or(0),
        cache_write: cache_write.unwrap_or(0),
    })
}

/// pydantic-ai writes an agent run's total as `gen_ai.aggregated_usage.*`
/// (its `invoke_agent` span; recorded from pydantic-ai 2.68): the usage of
/// the calls under it again, kept apart and never added.
fn aggregated_of(a: &Attrs) -> Option<Usage> {
    let n = |k: &str| a.u64(&[k]);
    usage_from(
        n("gen_ai.aggregated_usage.input_tokens"),
        n("gen_ai.aggregated_usage.output_tokens"),
        n("gen_ai.aggregated_usage.cache_read.input_tokens"),
        n("gen_ai.aggregated_usage.cache_write.input_tokens"),
    )
}

/// Cache reads and writes from LangSmith's token details: its OTel exporter
/// writes `gen_ai.usage.input_token_details` as `str()` of a Python dict
/// (`{'cache_read': 1024, 'cache_creation': 600}`: LangChain's
/// `InputTokenDetails`); `langsmith.metadata.usage_metadata` holds the same as
/// JSON when the SDK wrappers record it.
fn token_details(a: &Attrs) -> Option<(Option<u64>, Option<u64>)> {
    let from_json = |d: &Value| {
        let n = |k: &str| d.get(k).and_then(Value::as_u64);
        Some((n("cache_read"), n("cache_creation")))
    };
    if let Some(s) = a.str(&["gen_ai.usage.input_token_details"]) {
        if let Some(d) = python_literal_json(s) {
            return from_json(&d);
        }
    }
    let meta: Value = serde_json::from_str(a.str(&["langsmith.metadata.usage_metadata"])?).ok()?;
    from_json(meta.get("input_token_details")?)
}

/// A Python literal of a dict of numbers (`str()` of a dict) as JSON: quotes,
/// `None`, `True` and `False` rewritten. Keys and values holding quotes are not
/// expected (token-detail names and counts); such a text gives `None`.
fn python_literal_json(s: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str(s) {
        return Some(v);
    }
    if s.contains('"') {
        return None;
    }
    let json = s
        .replace('\'', "\"")
        .replace("None", "null")
        .replace("True", "true")
        .replace("False", "false");
    serde_json::from_str(&json).ok()
}

/// The modalities of OTel GenAI's per-modality token counts.
const MODALITIES: &[&str] = &["text.", "image.", "audio.", "video.", "document."];

/// Keys that look like token usage: the ones understood above, and a check for
/// the others, so `inspect` can show what was not understood.
pub fn understood_usage_key(k: &str) -> bool {
    const KNOWN: &[&str] = &[
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.input_token_details.cache_read",
        "gen_ai.usage.input_token_details.cache_creation",
        // LangSmith: dicts of details inside input / output (read above)
        "gen_ai.usage.input_token_details",
        "gen_ai.usage.output_token_details",
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.total",
        "llm.token_count.prompt_details.cache_read",
        "llm.token_count.prompt_details.cache_write",
        "ai.usage.inputTokens",
        "ai.usage.promptTokens",
        "ai.usage.outputTokens",
        "ai.usage.completionTokens",
        "ai.usage.cachedInputTokens",
        "ai.usage.totalTokens",
        "llm.usage.prompt_tokens",
        "llm.usage.completion_tokens",
        "llm.usage.total_tokens",
        "gen_ai.usage.total_tokens",
    ];
    KNOWN.contains(&k)
        // breakdowns already inside input / output (pydantic-ai, OpenInference)
        || k.starts_with("gen_ai.usage.details.")
        // pydantic-ai: an agent run's total (read apart) and cache figures
        // that are parts of input
        || k.starts_with("gen_ai.aggregated_usage.")
        // Vercel AI SDK 6: breakdowns of inputTokens / outputTokens
        || k.starts_with("ai.usage.inputTokenDetails.")
        || k.starts_with("ai.usage.outputTokenDetails.")
        || k.starts_with("pydantic_ai.cache.")
        // OTel GenAI modality breakdowns (gen_ai.usage.text.input_tokens,
        // .image.cache_read.input_tokens, …): parts of input / output
        || MODALITIES
            .iter()
            .any(|m| k.strip_prefix("gen_ai.usage.").is_some_and(|r| r.starts_with(m)))
        || k.starts_with("llm.token_count.prompt_details.")
        || k.starts_with("llm.token_count.completion_details.")
        || k.ends_with("_cost")
        || k.ends_with(".cost")
        || k.contains("details.audio")
        || k.contains("details.reasoning")
        || k.contains("reasoning_tokens")
        || k.contains("reasoningTokens")
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    // Asked of every attribute name of every span: a window is compared only
    // where its first byte already matches.
    hay.as_bytes()
        .windows(n.len())
        .any(|w| w[0].eq_ignore_ascii_case(&n[0]) && w.eq_ignore_ascii_case(n))
}

/// Whether `b` holds a `k`, `K` or `g`, eight bytes at a time.
fn has_k_or_g(b: &[u8]) -> bool {
    use super::words::equal;
    let hit = |w: u64| equal(w, b'k') | equal(w, b'K') | equal(w, b'g') != 0;
    let mut words = b.chunks_exact(8);
    if words.any(|w| hit(u64::from_le_bytes(w.try_into().expect("eight bytes")))) {
        return true;
    }
    // the last bytes, padded with zeros (which match none of the three),
    // gathered byte by byte: a copy of a few bytes was a call to memcpy
    let last = (words.remainder().iter().rev()).fold(0u64, |w, &c| w << 8 | u64::from(c));
    hit(last)
}

pub fn looks_like_usage(k: &str) -> bool {
    // Asked of every attribute name of every span: one pass finds whether
    // either word is there at all (`str::contains` cost 2% of a scan).
    let b = k.as_bytes();
    // Neither word fits in a name without a `k` or `K` (token) or a `g`
    // (.usage.): most names (HTTP, database) have none, and a word-at-a-time
    // look turns them away (the byte loop below was 4% of a scan).
    if !has_k_or_g(b) {
        return false;
    }
    let (mut token, mut usage) = (false, false);
    for (i, &c) in b.iter().enumerate() {
        match c {
            b't' | b'T' => token |= b[i..].len() >= 5 && b[i..i + 5].eq_ignore_ascii_case(b"token"),
            b'.' => usage |= b[i..].starts_with(b".usage."),
            _ => {}
        }
    }
    (token
        && !contains_ci(k, "tokenizer")
        && !contains_ci(k, "max_tokens")
        && !contains_ci(k, "maxtokens"))
        || usage
}

/// Prefixes of every attribute any dialect reads. A span with none of them
/// (HTTP, database, cache spans: most of a real service's) skips the lookups.
const RELEVANT: &[&str] = &[
    "gen_ai.",
    "llm.",
    "openinference.",
    "ai.",
    "mcp.",
    "traceloop.",
    "langsmith.",
    "langfuse.",
    "tool",
    "input.",
    "output.",
    "session.id",
    "agent",
    "logfire.",
    "pydantic_ai",
    "tokenhound.",
    "error.type",
    "exception.type",
    "gcp.vertex.agent",
];

fn relevant(attrs: &[KeyValue], base: &Base) -> bool {
    base.kind.is_some() || base.usage.is_some() || !ordinary(attrs, &base.plain.name)
}

/// Whether a span with these attributes (as read, no mapping applied) and
/// this name is an ordinary one, to no dialect a call, a tool or an agent:
/// it keeps only what [`Plain`] holds.
pub fn ordinary(attrs: &[KeyValue], name: &str) -> bool {
    !attrs.iter().any(|kv| relevant_key(&kv.key)) && !operation_name(name)
}

/// What every span keeps, and all an ordinary one keeps: its place in its
/// trace, its times and whether it failed.
#[derive(Default, Debug)]
pub struct Plain {
    pub trace_id: Arc<str>,
    pub span_id: CompactString,
    /// empty or none: a root
    pub parent_id: Option<CompactString>,
    /// shared with the span made from it (one copy of the text, not two)
    pub name: Arc<str>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub failed: bool,
}

impl Plain {
    /// [`Plain::span`], in a box.
    pub fn boxed(self, origin: &Origin) -> Box<Span> {
        Box::new(self.span(origin))
    }

    /// The span that keeps only this: an ordinary span, or one with
    /// relevant names that turned out to be no call, tool or agent.
    ///
    /// Every field is written here, none taken from `Span::default()`: a
    /// default span's texts are `Arc<str>`s that all share one static count,
    /// and making and dropping them for each span cost a locked increment and
    /// decrement each, which wait for every store before them.
    pub fn span(self, origin: &Origin) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id.filter(|p| !p.is_empty()),
            name: self.name,
            kind: Kind::default(),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            failed: self.failed,
            origin: *origin,
            detail: None,
        }
    }
}

/// Whether a span's name says it is a call or an agent. Asked of every
/// ordinary span, so its first byte is looked at first: an HTTP or database
/// span's name (`GET /…`, `SELECT …`) starts with none of the words', and
/// splitting off the first word was 2.6% of reading such a span.
fn operation_name(name: &str) -> bool {
    const NAMED: &[&str] = &["execute_tool", "tools/call", "running tool"];
    const FIRST: [u16; 256] = first_bytes(&[LLM_OPERATIONS, AGENT_OPERATIONS, NAMED]);
    match name.as_bytes().first() {
        Some(&b) if FIRST[b as usize] != 0 => {}
        _ => return false,
    }
    let first = name.split(' ').next().unwrap_or("");
    LLM_OPERATIONS.contains(&first)
        || AGENT_OPERATIONS.contains(&first)
        || first == "execute_tool"
        || first == "tools/call"
        || name.starts_with("running tool")
}

/// Whether a name starts with one of [`RELEVANT`]. The first byte is
/// compared before the rest: asked of every attribute of every span, the
/// prefix comparisons alone were 4% of a reading's instructions, and an HTTP
/// or database span's names (`http.…`, `url.…`, `db.…`) share no first byte
/// with any prefix.
fn relevant_key(key: &str) -> bool {
    /// the first bytes of [`RELEVANT`]'s prefixes
    const FIRST: [u16; 256] = first_bytes(&[RELEVANT]);
    match key.as_bytes().first() {
        Some(&b) if FIRST[b as usize] != 0 => RELEVANT.iter().any(|p| key.starts_with(p)),
        _ => false,
    }
}

/// First byte → the lists (bit i ↔ `lists[i]`) holding a prefix that starts
/// with it: what lets a name be turned away by its first byte.
const fn first_bytes(lists: &[&[&str]]) -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < lists.len() {
        let mut j = 0;
        while j < lists[i].len() {
            t[lists[i][j].as_bytes()[0] as usize] |= 1 << i;
            j += 1;
        }
        i += 1;
    }
    t
}

/// Prefixes of the attributes of the first eight of [`DIALECTS`], in order.
const DIALECT_PREFIXES: [&[&str]; 8] = [
    &["gen_ai."],
    &[
        "openinference.",
        "llm.token_count",
        "llm.input_messages",
        "input.value",
    ],
    &["traceloop.", "llm.request.type"],
    &["ai.operationId", "ai.usage."],
    &["langsmith."],
    &["langfuse."],
    &["logfire.", "pydantic_ai."],
    &["mcp."],
];

/// The dialect bit of one attribute name; 0 for most (an HTTP or database
/// span's), told by the first byte before any prefix is compared: this runs
/// for every attribute of every span.
pub fn dialect_of_key(key: &str) -> u16 {
    /// first byte → the dialects with a prefix starting with it
    const CANDIDATES: [u16; 256] = first_bytes(&DIALECT_PREFIXES);
    let Some(&first) = key.as_bytes().first() else {
        return 0;
    };
    // Only the dialects that could match are compared (a `gen_ai.` name
    // was compared with all eight lists).
    let mut candidates = CANDIDATES[first as usize];
    let mut bits = 0;
    while candidates != 0 {
        let i = candidates.trailing_zeros() as usize;
        candidates &= candidates - 1;
        if DIALECT_PREFIXES[i].iter().any(|p| key.starts_with(p)) {
            bits |= 1 << i;
        }
    }
    bits
}

/// Split MCP tool names as agents report them: `mcp__server__tool`.
fn mcp_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("mcp__")?;
    let (server, tool) = rest.split_once("__")?;
    Some((server, tool))
}

/// The ids every span needs, or why it is skipped.
fn check_ids(plain: &Plain) -> Result<(), String> {
    if plain.trace_id.is_empty() {
        return Err("missing trace id".into());
    }
    if plain.span_id.is_empty() {
        return Err("missing span id".into());
    }
    Ok(())
}

/// A span for a reading of times only (a relative window's first pass, which
/// wants the newest span's end): its ids, times and status, skipped where
/// [`normalise`] would skip it for its ids, its attributes not read.
pub fn times_only(base: Base, origin: &Origin) -> Result<Span, String> {
    check_ids(&base.plain)?;
    Ok(base.plain.span(origin))
}

pub fn normalise(
    base: Base,
    resource: &[KeyValue],
    span_attrs: &[KeyValue],
    origin: &Origin,
    maps: &Mappings,
) -> Result<Span, String> {
    check_ids(&base.plain)?;
    let mapped;
    let attrs_list = match maps.apply(&base.plain.name, span_attrs) {
        Some(m) => {
            mapped = m;
            &mapped.attrs[..]
        }
        None => span_attrs,
    };
    if !relevant(attrs_list, &base) {
        return Ok(base.plain.span(origin));
    }
    let a = Attrs {
        span: attrs_list,
        resource,
    };
    let base = langfuse_otel(base, &a);
    let kind = kind_of(&a, &base);
    let usage = base.usage.or_else(|| usage_of(&a));
    let mut span = Span {
        parent_id: base.plain.parent_id.filter(|p| !p.is_empty()),
        name: base.plain.name.clone(),
        kind,
        start_ns: base.plain.start_ns,
        end_ns: base.plain.end_ns,
        failed: base.plain.failed,
        origin: *origin,
        trace_id: base.plain.trace_id,
        span_id: base.plain.span_id,
        detail: Some(Box::new(Detail {
            scope: base.scope.clone(),
            error_type: a.arc(&["error.type", "exception.type"]),
            session: session_of(&a, base.session.as_deref()),
            agent_name: a.arc(&["gen_ai.agent.name", "agent_name", "agent.name"]),
            model: model_of(&a, base.model.as_deref()),
            stop_reason: a
                .get(&["gen_ai.response.finish_reasons", "ai.response.finishReason"])
                .and_then(first_str)
                .map(Arc::from),
            ..Detail::default()
        })),
    };
    span.failed |= span.error_type.is_some();
    if kind == Kind::Llm {
        span.recorded_cost = base.cost.or_else(|| cost_of(&a));
    }
    match (kind, usage) {
        (Kind::Llm, Some(u)) => span.usage = u,
        (_, Some(u)) if u != Usage::default() => span.aggregated_usage = Some(u),
        (Kind::Llm, None) => {}
        (_, _) => span.aggregated_usage = aggregated_of(&a),
    }
    if kind == Kind::Tool {
        fill_tool(
            &mut span,
            &a,
            &base.plain.name,
            base.input.as_ref(),
            base.output.as_ref(),
        );
    }
    fill_errors_and_models(&mut span, &a, base.status_message, base.exception);
    if kind == Kind::Llm {
        // OTel GenAI `gen_ai.response.id`; OpenLLMetry writes the same name.
        span.response_id = a.str(&["gen_ai.response.id"]).map(Box::from);
        let prompt = Prompt::of(&a);
        span.input_parts = super::parts::of(&a, &prompt, base.input.as_ref());
        span.input_text = input_text(&a, &prompt)
            .or_else(|| base.input.as_ref().map(|v| messages_text(v).into()));
        span.output_text =
            output_text(&a).or_else(|| base.output.as_ref().and_then(first_output_of_json));
    }
    Ok(span)
}

/// The Langfuse SDK (OpenTelemetry-based from v3) writes an observation's
/// payloads and figures as `langfuse.observation.*` attributes (langfuse
/// `_client/attributes.py`; recorded from langfuse 5.0.4): the fields its API
/// export holds, read the same way. Its `@observe` wraps a function's
/// arguments as `{"args": [...], "kwargs": {...}}`, like traceloop-sdk.
fn langfuse_otel(mut base: Base, a: &Attrs) -> Base {
    if !a.has_prefix("langfuse.observation.") {
        return base;
    }
    let json = |k: &str| a.get(&[k]).map(as_json);
    base.input = base.input.or_else(|| json("langfuse.observation.input"));
    base.output = base.output.or_else(|| json("langfuse.observation.output"));
    base.model = base.model.or_else(|| {
        a.str(&["langfuse.observation.model.name"])
            .map(String::from)
    });
    if base.usage.is_none() {
        if let Some(Value::Object(d)) = json("langfuse.observation.usage_details") {
            base.usage = langfuse_usage_details(&d);
        }
    }
    base
}

/// `langfuse.observation.usage_details` holds what the SDK was given:
/// Langfuse's own keys (`input`, `output`, `input_cache_read`, … as its API
/// export holds them) or a provider's usage object as it came (the OpenAI
/// drop-in passes OpenAI's: `prompt_tokens`, cache reads inside, counted in
/// `prompt_tokens_details.cached_tokens`; Anthropic's `input_tokens` leaves
/// its `cache_read_input_tokens` and `cache_creation_input_tokens` out, while
/// OpenAI's Responses `input_tokens` holds `input_tokens_details.cached_tokens`).
fn langfuse_usage_details(d: &serde_json::Map<String, Value>) -> Option<Usage> {
    let n = |k: &str| d.get(k).and_then(Value::as_u64);
    let inner = |k: &str, sub: &str| d.get(k).and_then(|x| x.get(sub)).and_then(Value::as_u64);
    if let Some(prompt) = n("prompt_tokens") {
        return Some(Usage {
            input: prompt,
            output: n("completion_tokens").unwrap_or(0),
            cache_read: inner("prompt_tokens_details", "cached_tokens").unwrap_or(0),
            cache_write: 0,
        });
    }
    if let Some(input) = n("input_tokens") {
        let (read, write) = match inner("input_tokens_details", "cached_tokens") {
            Some(cached) => (cached, 0),
            None => (
                n("cache_read_input_tokens").unwrap_or(0),
                n("cache_creation_input_tokens").unwrap_or(0),
            ),
        };
        let apart = d.contains_key("cache_read_input_tokens")
            || d.contains_key("cache_creation_input_tokens");
        return Some(Usage {
            input: if apart { input + read + write } else { input },
            output: n("output_tokens").unwrap_or(0),
            cache_read: read,
            cache_write: write,
        });
    }
    let (u, any) = super::records::langfuse_details_usage(d);
    (any && u != Usage::default()).then_some(u)
}

/// The session a span names: the format's own, else the conventions' ids
/// (OTel GenAI `gen_ai.conversation.id`, `session.id`, Langfuse, Vercel, OpenLLMetry,
/// LangSmith, Google ADK), on the span or its resource.
fn session_of(a: &Attrs, stated: Option<&str>) -> Option<Arc<str>> {
    stated.map(Arc::from).or_else(|| {
        a.arc(&[
            "gen_ai.conversation.id",
            "session.id",
            "langfuse.session.id",
            "ai.telemetry.metadata.sessionId",
            "traceloop.association.properties.session_id",
            // LangSmith threads: any of three metadata keys (LangSmith "Configure
            // threads"); `langsmith.trace.session_id` is the *project*, not read
            "langsmith.metadata.session_id",
            "langsmith.metadata.thread_id",
            "langsmith.metadata.conversation_id",
            "gcp.vertex.agent.session_id",
        ])
        .or_else(|| {
            a.resource(&["gen_ai.conversation.id", "session.id"])
                .map(Arc::from)
        })
    })
}

/// The model of a call: the format's own, else the response model, else the
/// request model.
fn model_of(a: &Attrs, stated: Option<&str>) -> Option<Arc<str>> {
    stated.filter(|m| !m.is_empty()).map(Arc::from).or_else(|| {
        a.arc(&[
            "gen_ai.response.model",
            "gen_ai.request.model",
            "llm.model_name",
            "ai.response.model",
            "ai.model.id",
            "langsmith.metadata.ls_model_name",
        ])
    })
}

/// A tool call's name, server, arguments and result, from the conventions'
/// attributes or the format's own input and output.
fn fill_tool(
    span: &mut Span,
    a: &Attrs,
    name: &str,
    input: Option<&Value>,
    output: Option<&Value>,
) {
    let mcp = mcp_name(name);
    span.tool_name = a
        .arc(&[
            "gen_ai.tool.name",
            "tool.name",
            "ai.toolCall.name",
            "mcp.tool.name",
        ])
        .or_else(|| mcp.map(|m| Arc::from(m.1)))
        .or_else(|| {
            a.str(&["mcp.method.name"])
                .filter(|m| *m == "resources/read")
                .map(Arc::from)
        })
        .or_else(|| a.arc(&["traceloop.entity.name"]))
        .or_else(|| tool_from_name(name).map(Arc::from))
        // a Langfuse `tool` observation is named after its tool (`@observe`)
        .or_else(|| {
            a.str(&["langfuse.observation.type"])
                .filter(|t| *t == "tool")
                .map(|_| Arc::from(name))
        });
    span.tool_server = a
        .arc(&["mcp.server.name", "gen_ai.tool.server", "server.address"])
        .or_else(|| mcp.map(|m| Arc::from(m.0)));
    // OpenInference `tool.parameters` is the tool's parameter *schema* (the same
    // for every call), never the call's arguments: those are `input.value`
    // (openinference spec/semantic_conventions.md).
    span.tool_args = a
        .get(&[
            "gen_ai.tool.call.arguments",
            "mcp.tool.arguments",
            "ai.toolCall.args",
            "ai.toolCall.input",
            "tool_arguments",
            "gen_ai.tool.args",
            "traceloop.entity.input",
            "input.value",
            // LangSmith's OTel exporter: a run's inputs (a tool's bound arguments)
            "gen_ai.prompt",
        ])
        .map(|v| compact_json(&unwrap_kwargs(as_json(v))))
        .or_else(|| input.map(|v| compact_json(&unwrap_tool_input(v))));
    span.tool_result = a
        .get(&[
            "gen_ai.tool.call.result",
            "mcp.tool.result",
            "ai.toolCall.result",
            "ai.toolCall.output",
            "tool_response",
            "gen_ai.output",
            "traceloop.entity.output",
            "output.value",
            "gen_ai.completion",
        ])
        .and_then(wrapped_output)
        .or_else(|| output.map(|v| json_content_text(v).into()));
    span.tool_result_size = a.u64(&[super::mapping::RESULT_SIZE]);
    span.resource_uri = a.str(&["mcp.resource.uri"]).map(Box::from);
}

/// The columns error-patterns and tail-latency read (WIT 0.2.0 `errors` and
/// `models`), each from its convention:
/// - `http.response.status_code` (OTel HTTP semantic conventions);
/// - the status message (OTLP `Status.message`, Langfuse `statusMessage`) and
///   the first `exception` event's `exception.message` (OTel exceptions);
/// - MCP's `isError: true` in a tool result (MCP `CallToolResult`);
/// - `gen_ai.request.model` / `gen_ai.response.model` (OTel GenAI), Vercel AI
///   SDK `ai.model.id` / `ai.response.model`, OpenInference `llm.model_name`
///   (the model the provider reports: a response model).
fn fill_errors_and_models(
    span: &mut Span,
    a: &Attrs,
    status_message: Option<String>,
    exception: Option<String>,
) {
    span.http_status = a
        .u64(&["http.response.status_code", "http.status_code"])
        .and_then(|c| u32::try_from(c).ok());
    span.status_message = status_message.as_deref().map(Arc::from);
    span.exception_message = exception
        .as_deref()
        .map(Arc::from)
        .or_else(|| a.arc(&["exception.message"]));
    span.tool_error = span
        .tool_result
        .as_deref()
        .is_some_and(|r| r.contains("\"isError\"") && mcp_is_error(r));
    span.request_model = a.arc(&["gen_ai.request.model", "ai.model.id"]);
    span.response_model = a.arc(&[
        "gen_ai.response.model",
        "ai.response.model",
        "llm.model_name",
    ]);
}

/// `{"isError": true, …}`: an MCP tool result that reports a failure.
fn mcp_is_error(result: &str) -> bool {
    serde_json::from_str::<Value>(result)
        .ok()
        .and_then(|v| v.get("isError").and_then(Value::as_bool))
        .unwrap_or(false)
}

fn tool_from_name(name: &str) -> Option<&str> {
    for p in ["execute_tool ", "running tool: ", "tools/call "] {
        if let Some(t) = name.strip_prefix(p) {
            return Some(t.trim());
        }
    }
    None
}

/// The first of a list of strings: an OTLP array, or (Microsoft Agent
/// Framework 1.23 writes `gen_ai.response.finish_reasons` so) a JSON array in
/// a string.
fn first_str(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::Str(s) if s.starts_with('[') => serde_json::from_str::<Vec<String>>(s)
            .ok()
            .and_then(|l| l.into_iter().next()),
        AnyValue::Str(s) => Some(s.to_string()),
        AnyValue::Array(a) => a.first().and_then(AnyValue::as_str).map(String::from),
        _ => None,
    }
}

/// Arguments as compact JSON text, so equal arguments compare equal.
fn compact_json(v: &Value) -> Box<str> {
    match v {
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

/// Langfuse wraps tool input as {"input": …} in some SDKs.
fn unwrap_tool_input(v: &Value) -> Value {
    let v = match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        _ => v.clone(),
    };
    match &v {
        Value::Object(m) if m.len() == 1 && m.contains_key("input") => m["input"].clone(),
        _ => unwrap_kwargs(v),
    }
}

/// traceloop-sdk's `traceloop.entity.input` wraps a call's arguments as
/// `{"args": [...], "kwargs": {...}}`: the keyword arguments, else the one
/// positional argument, are the call's arguments. OpenLLMetry's LangChain
/// instrumentation writes the tool callback's payload, `{"input_str", "inputs",
/// "tags", "metadata", "kwargs"}`, as `gen_ai.tool.call.arguments`: `inputs`
/// are the arguments (openllmetry-langchain recording).
fn unwrap_kwargs(v: Value) -> Value {
    if let Value::Object(m) = &v {
        if m.contains_key("input_str") {
            if let Some(inputs) = m.get("inputs").filter(|i| !i.is_null()) {
                return inputs.clone();
            }
        }
    }
    match &v {
        Value::Object(m)
            if m.contains_key("kwargs") && m.keys().all(|k| k == "args" || k == "kwargs") =>
        {
            let kwargs = m["kwargs"].as_object().filter(|k| !k.is_empty());
            match (kwargs, m.get("args").and_then(Value::as_array)) {
                (Some(k), _) => Value::Object(k.clone()),
                (None, Some(args)) if args.len() == 1 => unwrap_tool_input(&args[0]),
                (None, Some(args)) => Value::Array(args.clone()),
                (None, None) => v,
            }
        }
        _ => v,
    }
}

/// A tool's result as the libraries wrap it: LangSmith's OTel exporter writes
/// a run's outputs as `gen_ai.completion`, a value that is not a dict wrapped as
/// `{"output": value}` (langsmith `run_helpers`; a failed run's is
/// `{"output": null}`: no result); OpenLLMetry's LangChain instrumentation
/// writes the callback's `{"output": value, "kwargs": {…}}` as
/// `gen_ai.tool.call.result` (openllmetry-langchain recording). The value
/// itself is the result.
fn wrapped_output(v: &AnyValue) -> Option<Box<str>> {
    // Only an object naming `output` can be a wrapper: other results (most,
    // and the large ones) are not parsed.
    let may_wrap = match v {
        AnyValue::Str(s) => s.trim_start().starts_with('{') && s.contains("\"output\""),
        AnyValue::KvList(_) => true,
        _ => false,
    };
    let wrapped = |m: &serde_json::Map<String, Value>| {
        m.contains_key("output") && m.keys().all(|k| k == "output" || k == "kwargs")
    };
    match may_wrap.then(|| as_json(v)) {
        Some(Value::Object(mut m)) if wrapped(&m) => match m.remove("output") {
            Some(Value::String(s)) => Some(s.into()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string().into()),
        },
        _ => Some(content_text(v)),
    }
}

/// The content text of a captured value: a string as it is, a structure as compact JSON.
fn content_text(v: &AnyValue) -> Box<str> {
    match v {
        AnyValue::Str(s) => unquote(s).map_or_else(|| (**s).into(), Box::from),
        other => other.to_json().to_string().into(),
    }
}

/// A result that is one JSON-encoded string (traceloop-sdk's @tool writes
/// `traceloop.entity.output` as `json.dumps(result)`): the string it encodes,
/// so its size and text are the tool's, not the encoding's.
fn unquote(s: &str) -> Option<String> {
    if s.len() < 2 || !s.starts_with('"') || !s.ends_with('"') {
        return None;
    }
    serde_json::from_str::<String>(s).ok()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Text of a JSON payload: plain text, or the text parts of message content.
fn json_content_text(v: &Value) -> String {
    match v {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => json_content_text(&inner),
            _ => s.clone(),
        },
        Value::Object(m) => match m.get("content") {
            Some(c) => json_content_text(c),
            None => v.to_string(),
        },
        Value::Array(items)
            if items
                .iter()
                .all(|p| part_text(p).is_some() || p.get("content").is_some()) =>
        {
            items
                .iter()
                .filter_map(|p| part_text(p).or_else(|| p.get("content").map(json_content_text)))
                .collect::<Vec<_>>()
                .join("\n")
        }
        other => other.to_string(),
    }
}

/// System instructions and every text and tool-result part of the input
/// messages, joined with "\n" (spec: subagent-duplicate-context).
fn input_text(a: &Attrs, prompt: &Prompt) -> Option<Box<str>> {
    let mut parts: Vec<String> = Vec::new();
    let mut captured = false;
    if let Some(sys) = &prompt.system {
        captured = true;
        match sys {
            Value::Array(items) => parts.extend(items.iter().filter_map(part_text)),
            Value::String(s) => parts.push(s.clone()),
            other => parts.push(other.to_string()),
        }
    }
    if let Some(msgs) = &prompt.messages {
        captured = true;
        parts.push(messages_text(msgs));
    } else if let Some(t) = indexed_messages(a, "llm.input_messages.", ".message.content") {
        captured = true;
        parts.push(t);
    } else if let Some(t) = indexed_messages(a, "gen_ai.prompt.", ".content") {
        captured = true;
        parts.push(t);
    } else if let Some(v) = a.get(super::parts::PROMPT) {
        captured = true;
        parts.push(messages_text(&as_json(v)));
    }
    captured.then(|| {
        parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
            .into()
    })
}

/// `prefix{i}suffix` attributes in index order (OpenInference, OpenLLMetry).
fn indexed_messages(a: &Attrs, prefix: &str, suffix: &str) -> Option<String> {
    let mut found: Vec<(u32, String)> = a
        .span
        .iter()
        .filter_map(|kv| {
            let rest = kv.key.strip_prefix(prefix)?;
            let (i, tail) = rest.split_once('.')?;
            let i: u32 = i.parse().ok()?;
            let wanted = format!(".{tail}") == suffix
                || (tail.starts_with("message.contents.")
                    && tail.ends_with(".message_content.text"));
            wanted
                .then(|| kv.value.as_str().map(|t| (i, t.to_string())))
                .flatten()
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|x| x.0);
    Some(
        found
            .into_iter()
            .map(|x| x.1)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The text of a message list, in any of the shapes exporters use: the OTel parts
/// format, `{role, content}` with string or part-list content, or a bare string.
fn messages_text(v: &Value) -> String {
    match &*super::parts::request_messages(v) {
        Value::Array(msgs) => msgs
            .iter()
            .map(message_text)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(_) => message_text(v),
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn message_text(m: &Value) -> String {
    if let Some(Value::Array(ps)) = m.get("parts") {
        return ps
            .iter()
            .filter_map(part_text)
            .collect::<Vec<_>>()
            .join("\n");
    }
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(ps)) => ps
            .iter()
            .filter_map(part_text)
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) if !other.is_null() => other.to_string(),
        _ => match m {
            Value::String(s) => s.clone(),
            _ => String::new(),
        },
    }
}

/// The text of one message part that counts as input content.
fn part_text(p: &Value) -> Option<String> {
    match p.get("type").and_then(Value::as_str) {
        // Earlier reasoning and compaction summaries are re-sent as text too.
        Some("text") | Some("input_text") | Some("output_text") | Some("reasoning")
        | Some("compaction") => p.get("content").or_else(|| p.get("text")).map(value_text),
        Some("server_tool_call_response") => {
            p.get("server_tool_call_response").map(json_content_text)
        }
        Some("tool_call_response") | Some("tool_result") | Some("tool-result") => p
            .get("response")
            .or_else(|| p.get("result"))
            .or_else(|| p.get("content"))
            .or_else(|| p.get("output"))
            .map(json_content_text),
        None => p.as_str().map(String::from),
        _ => None,
    }
}

/// The first text part of the first output message.
fn output_text(a: &Attrs) -> Option<Box<str>> {
    if let Some(v) = a.get(&["gen_ai.output.messages"]) {
        return first_output_of_json(&as_json(v));
    }
    if let Some(t) = a.str(&[
        "llm.output_messages.0.message.content",
        "gen_ai.completion.0.content",
        "ai.response.text",
    ]) {
        return Some(t.into());
    }
    if let Some(t) = a.str(&["llm.output_messages.0.message.contents.0.message_content.text"]) {
        return Some(t.into());
    }
    a.get(&["output.value", "gen_ai.completion", "gen_ai.output"])
        .and_then(|v| first_output_of_json(&as_json(v)))
}

fn first_output_of_json(v: &Value) -> Option<Box<str>> {
    let first_text = |m: &Value| -> Option<String> {
        if let Some(Value::Array(ps)) = m.get("parts") {
            return ps
                .iter()
                .find(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .and_then(part_text);
        }
        match m.get("content") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(ps)) => ps.iter().find_map(part_text),
            _ => m.get("text").and_then(Value::as_str).map(String::from),
        }
    };
    match v {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => first_output_of_json(&inner),
            _ => Some(s.as_str().into()),
        },
        Value::Array(msgs) => msgs.first().and_then(first_text).map(Into::into),
        Value::Object(m) => {
            // LangChain's {generations: [[{text, message}]]} (LangSmith records
            // a chat model run's outputs so)
            if let Some(g) = m.get("generations").and_then(|g| g.get(0)?.get(0)) {
                let message = g.get("message").and_then(super::parts::langchain_message);
                return message
                    .as_ref()
                    .and_then(first_text)
                    .filter(|t| !t.is_empty())
                    .or_else(|| g.get("text").and_then(Value::as_str).map(String::from))
                    .filter(|t| !t.is_empty())
                    .map(Into::into);
            }
            // OpenAI's {choices: [{message}]}
            if let Some(Value::Array(ch)) = m.get("choices") {
                return ch
                    .first()
                    .and_then(|c| c.get("message"))
                    .and_then(first_text)
                    .map(Into::into);
            }
            first_text(v).map(Into::into)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first-byte gate turns away no name the words would accept: each
    /// operation, alone or with a model after it, is a call's name, and names
    /// that only share a first byte or a word elsewhere are not.
    #[test]
    fn span_names_are_told_by_their_operation_word_as_before_the_gate() {
        let words =
            (LLM_OPERATIONS.iter().chain(AGENT_OPERATIONS)).chain(&["execute_tool", "tools/call"]);
        for w in words {
            assert!(operation_name(w), "{w}");
            assert!(operation_name(&format!("{w} gpt-4o")), "{w} gpt-4o");
            assert!(!operation_name(&format!("{w}s")), "{w}s");
            assert!(!operation_name(&format!(" {w}")), " {w}");
        }
        assert!(operation_name("running tool: search"));
        for name in [
            "",
            "GET /repos",
            "SELECT app.reviews",
            "c",
            "chat_history load",
            "x chat",
        ] {
            assert!(!operation_name(name), "{name}");
        }
    }

    /// The quick look finds a `k`, `K` or `g` at every place of names of
    /// every length, and nothing in names without one.
    #[test]
    fn the_quick_look_for_k_and_g_misses_none() {
        for len in 0..40 {
            for at in 0..len {
                for c in [b'k', b'K', b'g'] {
                    let mut name = vec![b'a'; len];
                    name[at] = c;
                    assert!(has_k_or_g(&name), "{c} at {at} of {len}");
                }
            }
            let other: Vec<u8> = (0..len)
                .map(|i| b"abcdefhijlmnopqrstuvwxyz._"[i % 26])
                .collect();
            assert!(!has_k_or_g(&other), "{len}");
        }
    }

    #[test]
    fn usage_like_names_are_told_from_settings_and_tokenizers_in_any_case() {
        for k in [
            "myapp.Tokens_used",
            "TOKEN",
            "x.usage.y",
            "gen_ai.usage.input_tokens",
            "app.max_tokens.usage.total",
            "a.usage.",
            "total_tokeN",
        ] {
            assert!(looks_like_usage(k), "{k}");
        }
        for k in [
            "tokenizer.name",
            "llm.max_tokens",
            "ai.settings.maxTokens",
            "tok",
            "toke",
            "",
            "http.url",
            "x.usage",
            "usage.x",
        ] {
            assert!(!looks_like_usage(k), "{k}");
        }
    }

    #[test]
    fn dialects_are_named_by_their_attribute_prefixes() {
        let a = kv(&[
            ("http.method", AnyValue::Str("GET".into())),
            ("llm.token_count.prompt", AnyValue::Int(3)),
            ("mcp.method.name", AnyValue::Str("tools/call".into())),
        ]);
        let bits = a.iter().fold(0, |bits, kv| bits | dialect_of_key(&kv.key));
        let named: Vec<&str> = (0..DIALECTS.len())
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| DIALECTS[i])
            .collect();
        assert_eq!(named, ["openinference", "mcp"]);
    }

    fn kv(pairs: &[(&str, AnyValue<'static>)]) -> Vec<KeyValue<'static>> {
        pairs
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string().into(),
                value: v.clone(),
            })
            .collect()
    }

    fn span_of(attrs: &[(&str, AnyValue<'static>)]) -> Span {
        let base = Base {
            plain: Plain {
                trace_id: "t".into(),
                span_id: "s".into(),
                name: "chat".into(),
                ..Plain::default()
            },
            ..Base::default()
        };
        normalise(
            base,
            &[],
            &kv(attrs),
            &Origin::default(),
            &Mappings::default(),
        )
        .unwrap()
    }

    #[test]
    fn otel_genai_usage_keeps_cache_inside_input() {
        let s = span_of(&[
            ("gen_ai.operation.name", AnyValue::Str("chat".into())),
            ("gen_ai.usage.input_tokens", AnyValue::Int(1000)),
            ("gen_ai.usage.output_tokens", AnyValue::Int(50)),
            ("gen_ai.usage.cache_read.input_tokens", AnyValue::Int(800)),
        ]);
        assert_eq!(s.kind, Kind::Llm);
        assert_eq!(
            (s.usage.input, s.usage.output, s.usage.cache_read),
            (1000, 50, 800)
        );
    }

    #[test]
    fn the_2026_genai_usage_names_are_read_and_breakdowns_never_added() {
        let attrs = [
            ("gen_ai.operation.name", AnyValue::Str("chat".into())),
            ("gen_ai.usage.input_tokens", AnyValue::Int(1200)),
            ("gen_ai.usage.output_tokens", AnyValue::Int(50)),
            ("gen_ai.usage.cache_write.input_tokens", AnyValue::Int(600)),
            ("gen_ai.usage.reasoning.output_tokens", AnyValue::Int(30)),
            ("gen_ai.usage.text.input_tokens", AnyValue::Int(1000)),
            ("gen_ai.usage.image.input_tokens", AnyValue::Int(200)),
            (
                "gen_ai.usage.text.cache_read.input_tokens",
                AnyValue::Int(0),
            ),
        ];
        let s = span_of(&attrs);
        assert_eq!(
            (s.usage.input, s.usage.output, s.usage.cache_write),
            (1200, 50, 600)
        );
        for (k, _) in &attrs[1..] {
            assert!(understood_usage_key(k), "{k} is understood");
        }
    }

    #[test]
    fn finish_reasons_as_a_json_array_in_a_string_give_the_first() {
        let s = span_of(&[
            ("gen_ai.operation.name", AnyValue::Str("chat".into())),
            (
                "gen_ai.response.finish_reasons",
                AnyValue::Str(r#"["tool_calls"]"#.into()),
            ),
        ]);
        assert_eq!(s.stop_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn langsmith_cache_details_written_as_a_python_dict_are_read() {
        let s = span_of(&[
            ("langsmith.span.kind", AnyValue::Str("llm".into())),
            ("gen_ai.operation.name", AnyValue::Str("chat".into())),
            ("gen_ai.usage.input_tokens", AnyValue::Int(1900)),
            ("gen_ai.usage.output_tokens", AnyValue::Int(20)),
            (
                "gen_ai.usage.input_token_details",
                AnyValue::Str("{'cache_read': 1024, 'cache_creation': 600}".into()),
            ),
        ]);
        let u = s.usage;
        assert_eq!((u.input, u.cache_read, u.cache_write), (1900, 1024, 600));
        assert!(
            python_literal_json("{'a': \"b\"}").is_none(),
            "quotes inside"
        );
    }

    #[test]
    fn a_langsmith_tool_run_gives_its_inputs_and_unwrapped_output() {
        let s = span_of(&[
            ("langsmith.span.kind", AnyValue::Str("tool".into())),
            (
                "gen_ai.operation.name",
                AnyValue::Str("execute_tool".into()),
            ),
            ("gen_ai.tool.name", AnyValue::Str("read_file".into())),
            (
                "gen_ai.prompt",
                AnyValue::Str(r#"{"path":"CLAUDE.md"}"#.into()),
            ),
            (
                "gen_ai.completion",
                AnyValue::Str(r##"{"output":"# rules"}"##.into()),
            ),
        ]);
        assert_eq!(s.tool_args.as_deref(), Some(r#"{"path":"CLAUDE.md"}"#));
        assert_eq!(s.tool_result.as_deref(), Some("# rules"));
    }

    #[test]
    fn a_langchain_run_traced_by_langsmith_gives_its_messages_and_answer() {
        let msg = |class: &str, ty: &str, content: &str| {
            serde_json::json!({"lc": 1, "type": "constructor",
                "id": ["langchain", "schema", "messages", class],
                "kwargs": {"content": content, "type": ty}})
        };
        let prompt = serde_json::json!({"messages": [[
            msg("SystemMessage", "system", "Be brief."),
            msg("HumanMessage", "human", "Fix the test."),
        ]]});
        let answer = msg("AIMessage", "ai", "Done: the fixture was flaky.");
        let completion = serde_json::json!({"generations": [[{"text": "", "message": answer}]]});
        let s = span_of(&[
            ("langsmith.span.kind", AnyValue::Str("llm".into())),
            ("gen_ai.prompt", AnyValue::Str(prompt.to_string().into())),
            (
                "gen_ai.completion",
                AnyValue::Str(completion.to_string().into()),
            ),
            ("gen_ai.usage.input_tokens", AnyValue::Int(10)),
        ]);
        assert_eq!(s.input_text.as_deref(), Some("Be brief.\nFix the test."));
        assert_eq!(
            s.output_text.as_deref(),
            Some("Done: the fixture was flaky.")
        );
        let parts = s.input_parts.as_ref().expect("parts");
        let roles: Vec<&str> = parts.iter().map(|p| &*p.role).collect();
        assert_eq!(roles, ["system", "user"]);
    }

    #[test]
    fn langfuse_usage_details_are_read_in_each_shape_the_sdk_passes_on() {
        let usage = |details: &str| {
            let s = span_of(&[
                (
                    "langfuse.observation.type",
                    AnyValue::Str("generation".into()),
                ),
                (
                    "langfuse.observation.usage_details",
                    AnyValue::Str(details.to_string().into()),
                ),
            ]);
            assert_eq!(s.kind, Kind::Llm);
            let u = s.usage;
            (u.input, u.output, u.cache_read, u.cache_write)
        };
        // OpenAI chat, as the Langfuse OpenAI drop-in records it
        let openai = r#"{"prompt_tokens": 1900, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 1024}}"#;
        assert_eq!(usage(openai), (1900, 20, 1024, 0));
        // Anthropic: cache apart from input_tokens
        let anthropic = r#"{"input_tokens": 276, "output_tokens": 20, "cache_read_input_tokens": 1024, "cache_creation_input_tokens": 600}"#;
        assert_eq!(usage(anthropic), (1900, 20, 1024, 600));
        // OpenAI Responses: cache inside input_tokens
        let responses = r#"{"input_tokens": 1900, "output_tokens": 20, "input_tokens_details": {"cached_tokens": 1024}}"#;
        assert_eq!(usage(responses), (1900, 20, 1024, 0));
        // Langfuse's own keys: cache reads apart, added back
        assert_eq!(
            usage(r#"{"input": 876, "input_cache_read": 1024, "output": 20}"#),
            (1900, 20, 1024, 0)
        );
    }

    #[test]
    fn openinference_token_counts_and_kind_are_read() {
        let s = span_of(&[
            ("openinference.span.kind", AnyValue::Str("LLM".into())),
            ("llm.token_count.prompt", AnyValue::Int(120)),
            ("llm.token_count.completion", AnyValue::Int(30)),
            ("llm.model_name", AnyValue::Str("gpt-4o-mini".into())),
        ]);
        assert_eq!(s.kind, Kind::Llm);
        assert_eq!((s.usage.input, s.usage.output), (120, 30));
        assert_eq!(s.response_model.as_deref(), Some("gpt-4o-mini"));
    }

    #[test]
    fn usage_on_an_agent_span_is_an_aggregate_never_counted() {
        let s = span_of(&[
            (
                "gen_ai.operation.name",
                AnyValue::Str("invoke_agent".into()),
            ),
            ("gen_ai.usage.input_tokens", AnyValue::Int(5000)),
        ]);
        assert_eq!(s.kind, Kind::Agent);
        assert_eq!(s.usage, Usage::default());
        assert_eq!(s.aggregated_usage.map(|u| u.input), Some(5000));
    }

    #[test]
    fn openinference_tool_arguments_are_input_value_not_the_parameter_schema() {
        let s = span_of(&[
            ("openinference.span.kind", AnyValue::Str("TOOL".into())),
            ("tool.name", AnyValue::Str("read_file".into())),
            (
                "tool.parameters",
                AnyValue::Str(
                    r#"{"type":"object","properties":{"path":{"type":"string"}}}"#.into(),
                ),
            ),
            (
                "input.value",
                AnyValue::Str(r#"{"path": "CLAUDE.md"}"#.into()),
            ),
        ]);
        assert_eq!(s.tool_args.as_deref(), Some(r#"{"path":"CLAUDE.md"}"#));
    }

    #[test]
    fn traceloop_wrapped_arguments_are_unwrapped() {
        let s = span_of(&[
            ("traceloop.span.kind", AnyValue::Str("tool".into())),
            ("traceloop.entity.name", AnyValue::Str("read_file".into())),
            (
                "traceloop.entity.input",
                AnyValue::Str(r#"{"args": [], "kwargs": {"path": "a.md"}}"#.into()),
            ),
        ]);
        assert_eq!(s.kind, Kind::Tool);
        assert_eq!(s.tool_args.as_deref(), Some(r#"{"path":"a.md"}"#));
    }

    #[test]
    fn an_mcp_result_marked_as_error_and_the_http_status_are_read() {
        let s = span_of(&[
            (
                "gen_ai.operation.name",
                AnyValue::Str("execute_tool".into()),
            ),
            ("gen_ai.tool.name", AnyValue::Str("fetch".into())),
            (
                "gen_ai.tool.call.result",
                AnyValue::Str(r#"{"isError": true, "content": []}"#.into()),
            ),
            ("http.response.status_code", AnyValue::Int(429)),
        ]);
        assert_eq!(s.kind, Kind::Tool);
        assert!(s.tool_error);
        assert_eq!(s.http_status, Some(429));
    }
}
