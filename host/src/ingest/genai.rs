//! The OpenTelemetry GenAI conventions (current and deprecated names, MCP) mapped
//! onto the canonical span. This is where "what is an LLM call" and "what are its
//! tokens" is decided, so the spec's counting rules live here.

use super::otlp::{AnyValue, KeyValue, OtlpSpan};
use crate::model::{Kind, Origin, Span, Usage};
use serde_json::Value;
use std::sync::Arc;

/// Look an attribute up by the first of several names.
struct Attrs<'a>(&'a [KeyValue], &'a [KeyValue]);

impl<'a> Attrs<'a> {
    fn get(&self, names: &[&str]) -> Option<&'a AnyValue> {
        names.iter().find_map(|n| {
            self.0.iter().find(|kv| kv.key == *n).map(|kv| &kv.value).filter(|v| **v != AnyValue::Empty)
        })
    }
    fn resource(&self, names: &[&str]) -> Option<&'a AnyValue> {
        names.iter().find_map(|n| self.1.iter().find(|kv| kv.key == *n).map(|kv| &kv.value))
    }
    fn str(&self, names: &[&str]) -> Option<&'a str> {
        self.get(names).and_then(AnyValue::as_str).filter(|s| !s.is_empty())
    }
    fn arc(&self, names: &[&str]) -> Option<Arc<str>> {
        self.str(names).map(Arc::from)
    }
    fn u64(&self, names: &[&str]) -> Option<u64> {
        self.get(names).and_then(AnyValue::as_u64)
    }
}

const LLM_OPERATIONS: &[&str] = &["chat", "text_completion", "generate_content", "completion", "responses"];
const AGENT_OPERATIONS: &[&str] = &["invoke_agent", "create_agent"];

pub fn kind_of(operation: Option<&str>, mcp_method: Option<&str>, name: &str) -> Kind {
    match operation {
        Some(op) if LLM_OPERATIONS.contains(&op) => return Kind::Llm,
        Some("execute_tool") => return Kind::Tool,
        Some(op) if AGENT_OPERATIONS.contains(&op) => return Kind::Agent,
        _ => {}
    }
    if let Some(m) = mcp_method {
        if m == "tools/call" || m == "resources/read" {
            return Kind::Tool;
        }
    }
    // Span names follow "{operation} {target}" when the attribute is missing.
    let first = name.split(' ').next().unwrap_or("");
    match first {
        f if LLM_OPERATIONS.contains(&f) => Kind::Llm,
        "execute_tool" | "tools/call" => Kind::Tool,
        f if AGENT_OPERATIONS.contains(&f) => Kind::Agent,
        _ => Kind::Other,
    }
}

pub fn normalise(s: OtlpSpan, resource: &[KeyValue], origin: &Origin) -> Result<Span, String> {
    if s.trace_id.is_empty() {
        return Err("missing traceId".into());
    }
    if s.span_id.is_empty() {
        return Err("missing spanId".into());
    }
    let a = Attrs(&s.attributes, resource);
    let operation = a.str(&["gen_ai.operation.name"]);
    let mcp_method = a.str(&["mcp.method.name"]);
    let kind = kind_of(operation, mcp_method, &s.name);

    let usage = Usage {
        input: a.u64(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"]).unwrap_or(0),
        output: a.u64(&["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"]).unwrap_or(0),
        cache_read: a
            .u64(&["gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"])
            .unwrap_or(0),
        cache_write: a
            .u64(&["gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"])
            .unwrap_or(0),
    };
    let has_usage = usage != Usage::default();

    let mut span = Span {
        trace_id: s.trace_id.into(),
        span_id: s.span_id.into(),
        parent_id: (!s.parent_span_id.is_empty()).then(|| s.parent_span_id.into()),
        name: Arc::from(s.name.as_str()),
        kind,
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano.max(s.start_time_unix_nano),
        failed: s.status.code == 2,
        error_type: a.arc(&["error.type"]),
        session: a.arc(&["gen_ai.conversation.id", "session.id", "langfuse.session.id"]).or_else(|| {
            a.resource(&["gen_ai.conversation.id", "session.id"]).and_then(|v| v.as_str()).map(Arc::from)
        }),
        agent_name: a.arc(&["gen_ai.agent.name"]),
        model: a.arc(&["gen_ai.response.model", "gen_ai.request.model"]),
        stop_reason: a.get(&["gen_ai.response.finish_reasons"]).and_then(first_str).map(Arc::from),
        origin: origin.clone(),
        ..Span::default()
    };
    span.failed |= span.error_type.is_some();
    if kind == Kind::Llm {
        span.usage = usage;
    } else if has_usage {
        span.aggregated_usage = Some(usage);
    }

    if kind == Kind::Tool {
        span.tool_name = a
            .arc(&["gen_ai.tool.name", "mcp.tool.name"])
            .or_else(|| mcp_method.filter(|m| *m == "resources/read").map(Arc::from));
        span.tool_server = a.arc(&["mcp.server.name", "server.address"]);
        span.tool_args = a.get(&["gen_ai.tool.call.arguments", "mcp.tool.arguments"]).map(compact_json);
        span.tool_result = a.get(&["gen_ai.tool.call.result", "mcp.tool.result"]).map(content_text);
        span.resource_uri = a.str(&["mcp.resource.uri"]).map(Box::from);
    }
    if kind == Kind::Llm {
        span.input_text = input_text(&a);
        span.output_text = a.get(&["gen_ai.output.messages"]).and_then(first_output_text);
    }
    Ok(span)
}

fn first_str(v: &AnyValue) -> Option<&str> {
    match v {
        AnyValue::Str(s) => Some(s),
        AnyValue::Array(a) => a.first().and_then(AnyValue::as_str),
        _ => None,
    }
}

/// A structured value or a JSON string, as a JSON value.
fn as_json(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        other => other.to_json(),
    }
}

/// Arguments as compact JSON text, so equal arguments compare equal.
fn compact_json(v: &AnyValue) -> Box<str> {
    match as_json(v) {
        Value::String(s) => s.into(),
        other => other.to_string().into(),
    }
}

/// The content text of a captured value: a string as it is, a structure as compact JSON.
fn content_text(v: &AnyValue) -> Box<str> {
    match v {
        AnyValue::Str(s) => s.as_str().into(),
        other => other.to_json().to_string().into(),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// System instructions and every text and tool-result part of the input
/// messages, joined with "\n" (spec: subagent-duplicate-context).
fn input_text(a: &Attrs) -> Option<Box<str>> {
    let mut parts: Vec<String> = Vec::new();
    let mut captured = false;
    if let Some(sys) = a.get(&["gen_ai.system_instructions"]) {
        captured = true;
        match as_json(sys) {
            Value::Array(items) => parts.extend(items.iter().filter_map(part_text)),
            Value::String(s) => parts.push(s),
            other => parts.push(other.to_string()),
        }
    }
    if let Some(msgs) = a.get(&["gen_ai.input.messages"]) {
        captured = true;
        if let Value::Array(msgs) = as_json(msgs) {
            for m in &msgs {
                match m.get("parts") {
                    Some(Value::Array(ps)) => parts.extend(ps.iter().filter_map(part_text)),
                    // Older shapes: {"role": …, "content": "…"}
                    _ => {
                        if let Some(c) = m.get("content") {
                            parts.push(value_text(c));
                        }
                    }
                }
            }
        }
    }
    captured.then(|| parts.join("\n").into())
}

/// The text of one message part that counts as input content.
fn part_text(p: &Value) -> Option<String> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => p.get("content").map(value_text),
        Some("tool_call_response") => p.get("response").or_else(|| p.get("result")).map(value_text),
        None => p.as_str().map(String::from),
        _ => None,
    }
}

/// The first text part of the first output message.
fn first_output_text(v: &AnyValue) -> Option<Box<str>> {
    let Value::Array(msgs) = as_json(v) else { return None };
    let first = msgs.first()?;
    if let Some(Value::Array(ps)) = first.get("parts") {
        return ps
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .and_then(|p| p.get("content"))
            .map(|c| value_text(c).into());
    }
    first.get("content").map(|c| value_text(c).into())
}
