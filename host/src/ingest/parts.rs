//! The parts of an LLM call's input, by size: the system instructions, each
//! message by role, each tool call and each tool result (with its tool, and
//! the file it read where the call's arguments name one). Only sizes are kept:
//! this is what `top` and the WIT's `texts.parts` show of a prompt.
//!
//! Shapes read (checked against the conventions):
//! - OpenTelemetry GenAI `gen_ai.system_instructions` and `gen_ai.input.messages`:
//!   messages `{role, parts: [{type: text | tool_call | tool_call_response, …}]}`
//!   (semantic-conventions gen-ai-input-messages.json);
//! - OpenAI chat messages (Langfuse generation input, Vercel `ai.prompt.messages`):
//!   `{role, content: text | [{type: text, text}], tool_calls: [{id, function:
//!   {name, arguments}}], tool_call_id}`;
//! - OpenInference `llm.input_messages.{i}.message.role` / `.content`.

use super::attrs::{as_json, AnyValue, Attrs};
use crate::model::{InputPart, PartKind};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Argument keys that name the file or resource a tool read.
const FILE_KEYS: [&str; 6] = ["path", "file_path", "filepath", "file", "filename", "uri"];

/// An LLM call's captured system instructions and input messages, parsed
/// once for both its input text (`dialect`) and its input parts.
pub struct Prompt {
    pub system: Option<Value>,
    pub messages: Option<Value>,
}

impl Prompt {
    pub fn of(a: &Attrs) -> Self {
        Prompt {
            system: a.get(&["gen_ai.system_instructions"]).map(as_json),
            messages: a
                .get(&["gen_ai.input.messages", "ai.prompt.messages"])
                .map(as_json),
        }
    }
}

/// The input parts of an LLM call, where its input was captured.
pub fn of(a: &Attrs, prompt: &Prompt, format_input: Option<&Value>) -> Option<Box<[InputPart]>> {
    let mut p = Parts::default();
    let mut captured = false;
    if let Some(sys) = &prompt.system {
        captured = true;
        let bytes = match sys {
            Value::Array(items) => items.iter().map(|i| text_of(i).len() as u64).sum(),
            other => text_of(other).len() as u64,
        };
        p.push(PartKind::System, "system", None, None, bytes);
    }
    if let Some(msgs) = &prompt.messages {
        captured = true;
        p.messages(msgs);
    } else if p.indexed(a) {
        captured = true;
    } else if let Some(v) = format_input {
        captured = true;
        p.messages(v);
    } else if let Some(v) = a.get(PROMPT) {
        captured = true;
        p.messages(&as_json(v));
    }
    captured.then(|| p.parts.into_boxed_slice())
}

/// A call's whole input as one attribute, where no messages attribute holds
/// it: the Vercel AI SDK's `ai.prompt`, OpenInference's `input.value` (the
/// request body), LangSmith's `gen_ai.prompt` (the run's inputs).
pub const PROMPT: &[&str] = &["ai.prompt", "input.value", "gen_ai.prompt"];

/// A chat request body as LangSmith and Langfuse record a call's inputs
/// (`{"model", "messages": [...], "system"?, "tools"?, …}`, as in the
/// langsmith-* and langfuse-* recordings): its messages, an Anthropic-style
/// `system` first. Anything else is taken as messages already.
///
/// LangChain's runs hold a batch of message lists (`{"messages": [[…]]}`),
/// each message serialised by `dumpd` (see [`langchain_message`]): flattened and
/// made plain (the langsmith-langchain recording).
pub fn request_messages(v: &Value) -> std::borrow::Cow<'_, Value> {
    use std::borrow::Cow;
    let Value::Object(m) = v else {
        return Cow::Borrowed(v);
    };
    match m.get("messages") {
        Some(Value::Array(msgs)) if !m.contains_key("role") => {
            let mut all = Vec::with_capacity(msgs.len() + 1);
            if let Some(sys) = m.get("system").filter(|s| !s.is_null()) {
                all.push(serde_json::json!({"role": "system", "content": sys}));
            }
            for msg in msgs {
                match msg {
                    Value::Array(batch) => all.extend(batch.iter().map(plain_message)),
                    one => all.push(plain_message(one)),
                }
            }
            Cow::Owned(Value::Array(all))
        }
        _ => Cow::Borrowed(v),
    }
}

fn plain_message(m: &Value) -> Value {
    langchain_message(m).unwrap_or_else(|| m.clone())
}

/// A LangChain message as `dumpd` writes it (`{"lc": 1, "type": "constructor",
/// "id": [.., "HumanMessage"], "kwargs": {"content", "type", "tool_calls",
/// "tool_call_id"}}`) as a plain chat message: role from its type, tool calls
/// in the OpenAI shape (LangChain's carry `args`, an object).
pub fn langchain_message(m: &Value) -> Option<Value> {
    if m.get("lc").is_none() || m.get("type").and_then(Value::as_str) != Some("constructor") {
        return None;
    }
    let kw = m.get("kwargs")?;
    let class = m
        .get("id")
        .and_then(Value::as_array)
        .and_then(|id| id.last());
    let kind = kw
        .get("type")
        .and_then(Value::as_str)
        .or_else(|| class.and_then(Value::as_str));
    let role = match kind? {
        "human" | "HumanMessage" => "user",
        "ai" | "AIMessage" | "AIMessageChunk" => "assistant",
        "system" | "SystemMessage" => "system",
        "tool" | "ToolMessage" => "tool",
        other => other,
    };
    let mut out = serde_json::json!({"role": role, "content": kw.get("content").cloned().unwrap_or(Value::Null)});
    if let Some(id) = kw.get("tool_call_id") {
        out["tool_call_id"] = id.clone();
    }
    if let Some(Value::Array(calls)) = kw.get("tool_calls") {
        let calls: Vec<Value> = calls
            .iter()
            .map(|c| {
                serde_json::json!({"id": c.get("id"), "function": {"name": c.get("name"),
                    "arguments": c.get("args").map(Value::to_string)}})
            })
            .collect();
        out["tool_calls"] = Value::Array(calls);
    }
    Some(out)
}

/// A tool call's tool and the file its arguments name.
type Call = (Option<Arc<str>>, Option<Box<str>>);

#[derive(Default)]
struct Parts {
    parts: Vec<InputPart>,
    /// tool call id → (tool, file it names)
    calls: HashMap<String, Call>,
}

impl Parts {
    fn push(
        &mut self,
        kind: PartKind,
        role: &str,
        tool: Option<Arc<str>>,
        file: Option<Box<str>>,
        bytes: u64,
    ) {
        self.parts.push(InputPart {
            kind,
            role: role.into(),
            tool,
            file,
            bytes,
        });
    }

    fn messages(&mut self, v: &Value) {
        match &*request_messages(v) {
            Value::Array(msgs) => msgs.iter().for_each(|m| self.message(m)),
            Value::Object(_) => self.message(v),
            Value::String(s) => self.push(PartKind::Message, "user", None, None, s.len() as u64),
            _ => {}
        }
    }

    fn message(&mut self, m: &Value) {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        if let Some(Value::Array(parts)) = m.get("parts") {
            parts.iter().for_each(|part| self.otel_part(role, part));
            return;
        }
        // OpenAI chat shape.
        for call in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let f = call.get("function").unwrap_or(call);
            self.call(role, call.get("id"), f.get("name"), f.get("arguments"));
        }
        let bytes = match m.get("content") {
            Some(Value::Array(items)) => items.iter().map(|i| text_of(i).len() as u64).sum(),
            Some(c) if !c.is_null() => text_of(c).len() as u64,
            _ => return,
        };
        if role == "tool" {
            let id = m.get("tool_call_id").and_then(Value::as_str);
            let name = m.get("name").and_then(Value::as_str);
            self.result(role, id, name, bytes);
        } else {
            let kind = if role == "system" {
                PartKind::System
            } else {
                PartKind::Message
            };
            self.push(kind, role, None, None, bytes);
        }
    }

    /// One part of an OTel GenAI message. The part types are those of the
    /// conventions' message models (semantic-conventions-genai
    /// docs/gen-ai/non-normative/models.py, as opentelemetry-util-genai 1.3
    /// writes them): text, reasoning, compaction, tool_call,
    /// tool_call_response, server_tool_call(_response), blob, file, uri.
    fn otel_part(&mut self, role: &str, part: &Value) {
        match part.get("type").and_then(Value::as_str) {
            // Earlier reasoning and a compaction summary are re-sent text.
            Some("reasoning") | Some("compaction") => {
                let bytes = part.get("content").map_or(0, |c| text_of(c).len() as u64);
                self.push(PartKind::Message, role, None, None, bytes);
            }
            // Run by the provider: `name` and the call's own payload.
            Some("server_tool_call") => self.call(
                role,
                part.get("id"),
                part.get("name"),
                part.get("server_tool_call"),
            ),
            Some("server_tool_call_response") => {
                let id = part.get("id").and_then(Value::as_str);
                let body = part.get("server_tool_call_response");
                let bytes = body.map_or(0, |r| text_of(r).len() as u64);
                self.result(role, id, None, bytes);
            }
            // Inline data (base64 in JSON), or a reference to a file or URI:
            // the reference is named, its size is not known here.
            Some("blob") | Some("file") | Some("uri") => {
                let name = ["uri", "file_id"]
                    .iter()
                    .find_map(|k| part.get(*k).and_then(Value::as_str))
                    .map(Box::from);
                let bytes = part.get("content").map_or(0, |c| text_of(c).len() as u64);
                self.push(PartKind::Other, role, None, name, bytes);
            }
            Some("text") => {
                let kind = if role == "system" {
                    PartKind::System
                } else {
                    PartKind::Message
                };
                let bytes = part.get("content").map_or(0, |c| text_of(c).len() as u64);
                self.push(kind, role, None, None, bytes);
            }
            Some("tool_call") => self.call(
                role,
                part.get("id"),
                part.get("name"),
                part.get("arguments"),
            ),
            Some("tool_call_response") => {
                // `response` in the conventions; pydantic-ai writes `result`.
                let id = part.get("id").and_then(Value::as_str);
                let body = part.get("response").or_else(|| part.get("result"));
                let bytes = body.map_or(0, |r| text_of(r).len() as u64);
                let name = part.get("name").and_then(Value::as_str);
                self.result(role, id, name, bytes);
            }
            _ => {
                let bytes = part.to_string().len() as u64;
                self.push(PartKind::Other, role, None, None, bytes);
            }
        }
    }

    fn call(&mut self, role: &str, id: Option<&Value>, name: Option<&Value>, args: Option<&Value>) {
        let tool: Option<Arc<str>> = name.and_then(Value::as_str).map(Arc::from);
        let args = args.map(|a| match a {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| a.clone()),
            other => other.clone(),
        });
        let file = args.as_ref().and_then(file_of);
        let bytes = args.as_ref().map_or(0, |a| a.to_string().len() as u64);
        if let Some(id) = id.and_then(Value::as_str) {
            self.calls
                .insert(id.to_string(), (tool.clone(), file.clone()));
        }
        self.push(PartKind::ToolCall, role, tool, file, bytes);
    }

    /// A tool result, matched to its call by id (else named by the message).
    fn result(&mut self, role: &str, id: Option<&str>, name: Option<&str>, bytes: u64) {
        let (tool, file) = id
            .and_then(|id| self.calls.get(id).cloned())
            .unwrap_or_else(|| (name.map(Arc::from), None));
        self.push(PartKind::ToolResult, role, tool, file, bytes);
    }

    /// OpenInference `llm.input_messages.{i}.message.{role,content}`.
    fn indexed(&mut self, a: &Attrs) -> bool {
        let mut rows: Vec<(u32, Option<&str>, u64)> = Vec::new();
        for kv in a.span {
            let Some(rest) = kv.key.strip_prefix("llm.input_messages.") else {
                continue;
            };
            let Some((i, tail)) = rest.split_once('.') else {
                continue;
            };
            let Ok(i) = i.parse::<u32>() else { continue };
            let at = match rows.iter().position(|r| r.0 == i) {
                Some(at) => at,
                None => {
                    rows.push((i, None, 0));
                    rows.len() - 1
                }
            };
            match (tail, &kv.value) {
                ("message.role", AnyValue::Str(r)) => rows[at].1 = Some(r),
                ("message.content", v) => rows[at].2 += text_len(v),
                (t, v) if t.starts_with("message.contents.") && t.ends_with(".text") => {
                    rows[at].2 += text_len(v)
                }
                _ => {}
            }
        }
        rows.sort_by_key(|r| r.0);
        for (_, role, bytes) in &rows {
            let role = role.unwrap_or("user");
            let kind = match role {
                "system" => PartKind::System,
                "tool" => PartKind::ToolResult,
                _ => PartKind::Message,
            };
            self.push(kind, role, None, None, *bytes);
        }
        !rows.is_empty()
    }
}

fn file_of(args: &Value) -> Option<Box<str>> {
    let o = args.as_object()?;
    FILE_KEYS
        .iter()
        .find_map(|k| o.get(*k).and_then(Value::as_str))
        .map(Box::from)
}

fn text_len(v: &AnyValue) -> u64 {
    match v {
        AnyValue::Str(s) => s.len() as u64,
        other => other.to_json().to_string().len() as u64,
    }
}

/// The text of a content value: a string as is, a text part's text, else the
/// value's compact JSON (the spec's "content text").
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("content").or_else(|| o.get("text")) {
            Some(Value::String(s)) => s.clone(),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::attrs::KeyValue;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<KeyValue<'static>> {
        pairs
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string().into(),
                value: AnyValue::Str(v.to_string().into()),
            })
            .collect()
    }

    #[test]
    fn otel_messages_become_parts_with_the_file_a_tool_read() {
        let kv = attrs(&[
            (
                "gen_ai.system_instructions",
                r#"[{"type":"text","content":"be brief"}]"#,
            ),
            (
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"text","content":"fix it"}]},
                    {"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"read_file","arguments":{"path":"src/lib.rs"}}]},
                    {"role":"tool","parts":[{"type":"tool_call_response","id":"c1","response":"fn main() {}"}]}]"#,
            ),
        ]);
        let a = Attrs {
            span: &kv,
            resource: &[],
        };
        let parts = of(&a, &Prompt::of(&a), None).unwrap();
        let kinds: Vec<_> = parts.iter().map(|p| (p.kind, p.bytes)).collect();
        assert_eq!(
            kinds,
            vec![
                (PartKind::System, 8),
                (PartKind::Message, 6),
                (PartKind::ToolCall, 21),
                (PartKind::ToolResult, 12)
            ]
        );
        assert_eq!(parts[3].tool.as_deref(), Some("read_file"));
        assert_eq!(parts[3].file.as_deref(), Some("src/lib.rs"));
    }

    #[test]
    fn openai_chat_messages_name_tool_results_by_call_id() {
        let input: Value = serde_json::from_str(
            r#"[{"role":"system","content":"rules"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function","function":{"name":"cat","arguments":"{\"file_path\":\"a.md\"}"}}]},
                {"role":"tool","tool_call_id":"x","content":"hello"}]"#,
        )
        .unwrap();
        let a = Attrs {
            span: &[],
            resource: &[],
        };
        let parts = of(&a, &Prompt::of(&a), Some(&input)).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].kind, PartKind::System);
        assert_eq!((parts[2].kind, parts[2].bytes), (PartKind::ToolResult, 5));
        assert_eq!(parts[2].file.as_deref(), Some("a.md"));
    }

    #[test]
    fn no_captured_input_is_no_parts_not_an_empty_list() {
        let a = Attrs {
            span: &[],
            resource: &[],
        };
        assert!(of(&a, &Prompt::of(&a), None).is_none());
    }
}
