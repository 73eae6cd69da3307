//! The generated month rewritten in each dialect the way its instrumentation
//! writes it (attribute for attribute as in the recordings of
//! tests/fixtures/real-instr: OpenInference 0.1.66's LLM, TOOL and AGENT spans,
//! traceloop-sdk 0.62.4's @tool and @agent spans; the Vercel AI SDK's spans as
//! its telemetry documentation lists them) gives the same findings as the OTel
//! GenAI original: the same rules, spans and wasted tokens.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn attrs_of(s: &Value) -> BTreeMap<String, Value> {
    s["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
        .collect()
}

fn text(a: &BTreeMap<String, Value>, k: &str) -> Option<String> {
    a.get(k)?["stringValue"].as_str().map(String::from)
}

fn int(a: &BTreeMap<String, Value>, k: &str) -> Option<u64> {
    a.get(k)?["intValue"].as_str()?.parse().ok()
}

fn kv(k: &str, v: Value) -> Value {
    let value = match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Number(n) => json!({"intValue": n.to_string()}),
        other => other,
    };
    json!({"key": k, "value": value})
}

/// Python's `json.dumps` of an object: `", "` and `": "` separators.
fn py_dumps(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", json!(k), py_dumps(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(py_dumps).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// A failed call as both libraries record it: status ERROR with the message and
/// an `exception` event; no `error.type`.
fn failed(s: &mut Value, ty: &str) {
    s["status"] = json!({"code": 2, "message": format!("{ty}: tool call failed")});
    s["events"] = json!([{"name": "exception", "timeUnixNano": s["endTimeUnixNano"], "attributes": [
        kv("exception.type", json!(ty)), kv("exception.message", json!("tool call failed"))]}]);
}

/// The first text of an OTel GenAI messages attribute.
fn first_text(messages: &str) -> Option<String> {
    let v: Value = serde_json::from_str(messages).ok()?;
    v[0]["parts"]
        .as_array()?
        .iter()
        .find(|p| p["type"] == "text")
        .and_then(|p| p["content"].as_str().map(String::from))
}

/// One OTel GenAI span as OpenInference writes it.
fn openinference(s: &Value) -> Value {
    let a = attrs_of(s);
    let mut out = s.clone();
    let mut attrs: Vec<Value> = Vec::new();
    if let Some(c) = text(&a, "gen_ai.conversation.id") {
        attrs.push(kv("session.id", json!(c)));
    }
    match text(&a, "gen_ai.operation.name").as_deref() {
        Some("chat") => {
            out["name"] = json!("Messages");
            attrs.push(kv("openinference.span.kind", json!("LLM")));
            attrs.push(kv("llm.system", json!("anthropic")));
            attrs.push(kv(
                "llm.model_name",
                json!(text(&a, "gen_ai.response.model")),
            ));
            let (i, o) = (
                int(&a, "gen_ai.usage.input_tokens").unwrap(),
                int(&a, "gen_ai.usage.output_tokens").unwrap(),
            );
            attrs.push(kv("llm.token_count.prompt", json!(i)));
            attrs.push(kv("llm.token_count.completion", json!(o)));
            attrs.push(kv("llm.token_count.total", json!(i + o)));
            if let Some(c) = int(&a, "gen_ai.usage.cache_read.input_tokens") {
                attrs.push(kv("llm.token_count.prompt_details.cache_read", json!(c)));
            }
            let mut n = 0;
            if let Some(sys) = text(&a, "gen_ai.system_instructions") {
                let v: Value = serde_json::from_str(&sys).unwrap();
                attrs.push(kv("llm.input_messages.0.message.role", json!("system")));
                attrs.push(kv(
                    "llm.input_messages.0.message.content",
                    v[0]["content"].clone(),
                ));
                n = 1;
            }
            if let Some(user) = text(&a, "gen_ai.input.messages").and_then(|m| first_text(&m)) {
                attrs.push(kv(
                    &format!("llm.input_messages.{n}.message.role"),
                    json!("user"),
                ));
                attrs.push(kv(
                    &format!("llm.input_messages.{n}.message.content"),
                    json!(user),
                ));
            }
            if let Some(t) = text(&a, "gen_ai.output.messages").and_then(|m| first_text(&m)) {
                attrs.push(kv("llm.output_messages.0.message.role", json!("assistant")));
                attrs.push(kv("llm.output_messages.0.message.content", json!(t)));
            }
        }
        Some("execute_tool") => {
            let tool = text(&a, "gen_ai.tool.name").unwrap();
            out["name"] = json!(tool);
            attrs.push(kv("openinference.span.kind", json!("TOOL")));
            attrs.push(kv("tool.name", json!(tool)));
            // The schema: the same for every call, never the arguments.
            attrs.push(kv(
                "tool.parameters",
                json!(format!(r#"{{"type": "object", "title": "{tool}"}}"#)),
            ));
            let args: Value =
                serde_json::from_str(&text(&a, "gen_ai.tool.call.arguments").unwrap()).unwrap();
            attrs.push(kv("input.value", json!(py_dumps(&args))));
            attrs.push(kv("input.mime_type", json!("application/json")));
            match text(&a, "gen_ai.tool.call.result") {
                Some(r) => {
                    attrs.push(kv("output.value", json!(r)));
                    attrs.push(kv("output.mime_type", json!("text/plain")));
                }
                None => failed(&mut out, &text(&a, "error.type").unwrap()),
            }
        }
        Some("invoke_agent") => {
            out["name"] = json!(text(&a, "gen_ai.agent.name"));
            attrs.push(kv("openinference.span.kind", json!("AGENT")));
        }
        _ => return s.clone(),
    }
    out["attributes"] = Value::Array(attrs);
    out
}

/// One OTel GenAI span as traceloop-sdk 0.62.4 writes it: its LLM spans
/// already carry the gen_ai.* names; tools and agents are its decorators'.
fn openllmetry(s: &Value, agent: Option<&str>) -> Value {
    let a = attrs_of(s);
    let mut out = s.clone();
    let mut attrs: Vec<Value> = Vec::new();
    if let Some(c) = text(&a, "gen_ai.conversation.id") {
        attrs.push(kv("traceloop.association.properties.session_id", json!(c)));
    }
    if let Some(g) = agent {
        attrs.push(kv("gen_ai.agent.name", json!(g)));
    }
    match text(&a, "gen_ai.operation.name").as_deref() {
        Some("chat") => {
            out["name"] = json!("anthropic.chat");
            let keep = s["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|kv| kv["key"] != "gen_ai.conversation.id");
            attrs.extend(keep.cloned());
        }
        Some("execute_tool") => {
            let tool = text(&a, "gen_ai.tool.name").unwrap();
            out["name"] = json!(format!("{tool}.tool"));
            attrs.push(kv("traceloop.span.kind", json!("tool")));
            attrs.push(kv("traceloop.entity.name", json!(tool)));
            attrs.push(kv("gen_ai.tool.name", json!(tool)));
            let args: Value =
                serde_json::from_str(&text(&a, "gen_ai.tool.call.arguments").unwrap()).unwrap();
            attrs.push(kv(
                "traceloop.entity.input",
                json!(py_dumps(&json!({"args": [], "kwargs": args}))),
            ));
            match text(&a, "gen_ai.tool.call.result") {
                Some(r) => attrs.push(kv("traceloop.entity.output", json!(json!(r).to_string()))),
                None => failed(&mut out, &text(&a, "error.type").unwrap()),
            }
        }
        Some("invoke_agent") => {
            let name = text(&a, "gen_ai.agent.name").unwrap();
            out["name"] = json!(format!("{name}.agent"));
            attrs.push(kv("traceloop.span.kind", json!("agent")));
            attrs.push(kv("traceloop.entity.name", json!(name)));
            attrs.push(kv(
                "traceloop.entity.input",
                json!(r#"{"args": [], "kwargs": {}}"#),
            ));
        }
        _ => return s.clone(),
    }
    out["attributes"] = Value::Array(attrs);
    out
}

/// One OTel GenAI span as the Vercel AI SDK (v5) writes it with
/// `experimental_telemetry` on: an agent turn is the `ai.generateText` span of
/// a multi-step call (its functionId the agent's name), each LLM call its
/// `ai.generateText.doGenerate` step (ai.* and the gen_ai.* the SDK adds), each
/// tool an `ai.toolCall` span; the session in the telemetry metadata.
fn vercel(s: &Value) -> Value {
    let a = attrs_of(s);
    let mut out = s.clone();
    let mut attrs: Vec<Value> = Vec::new();
    if let Some(c) = text(&a, "gen_ai.conversation.id") {
        attrs.push(kv("ai.telemetry.metadata.sessionId", json!(c)));
    }
    match text(&a, "gen_ai.operation.name").as_deref() {
        Some("chat") => {
            let model = text(&a, "gen_ai.response.model").unwrap();
            let (i, o) = (
                int(&a, "gen_ai.usage.input_tokens").unwrap(),
                int(&a, "gen_ai.usage.output_tokens").unwrap(),
            );
            out["name"] = json!("ai.generateText.doGenerate");
            attrs.push(kv("operation.name", json!("ai.generateText.doGenerate")));
            attrs.push(kv("ai.operationId", json!("ai.generateText.doGenerate")));
            attrs.push(kv("ai.model.id", json!(model)));
            attrs.push(kv("ai.model.provider", json!("anthropic.messages")));
            attrs.push(kv("ai.usage.inputTokens", json!(i)));
            attrs.push(kv("ai.usage.outputTokens", json!(o)));
            if let Some(c) = int(&a, "gen_ai.usage.cache_read.input_tokens") {
                attrs.push(kv("ai.usage.cachedInputTokens", json!(c)));
            }
            if let Some(t) = text(&a, "gen_ai.output.messages").and_then(|m| first_text(&m)) {
                attrs.push(kv("ai.response.text", json!(t)));
            }
            attrs.push(kv("ai.response.finishReason", json!("stop")));
            attrs.push(kv("gen_ai.system", json!("anthropic.messages")));
            attrs.push(kv("gen_ai.request.model", json!(model)));
            attrs.push(kv("gen_ai.response.model", json!(model)));
            attrs.push(kv("gen_ai.usage.input_tokens", json!(i)));
            attrs.push(kv("gen_ai.usage.output_tokens", json!(o)));
        }
        Some("execute_tool") => {
            out["name"] = json!("ai.toolCall");
            attrs.push(kv("operation.name", json!("ai.toolCall")));
            attrs.push(kv("ai.operationId", json!("ai.toolCall")));
            attrs.push(kv("ai.toolCall.name", json!(text(&a, "gen_ai.tool.name"))));
            attrs.push(kv("ai.toolCall.id", json!(text(&a, "gen_ai.tool.call.id"))));
            attrs.push(kv(
                "ai.toolCall.args",
                json!(text(&a, "gen_ai.tool.call.arguments")),
            ));
            match text(&a, "gen_ai.tool.call.result") {
                Some(r) => attrs.push(kv("ai.toolCall.result", json!(r))),
                None => failed(&mut out, &text(&a, "error.type").unwrap()),
            }
        }
        Some("invoke_agent") => {
            out["name"] = json!("ai.generateText");
            attrs.push(kv("operation.name", json!("ai.generateText")));
            attrs.push(kv("ai.operationId", json!("ai.generateText")));
            attrs.push(kv(
                "ai.telemetry.functionId",
                json!(text(&a, "gen_ai.agent.name")),
            ));
        }
        _ => return s.clone(),
    }
    out["attributes"] = Value::Array(attrs);
    out
}

/// The generated month (with ordinary service spans), and its twin in a dialect.
fn month_and_twin(dir: &std::path::Path, dialect: &str) -> (String, String) {
    let otel = dir.join("month.jsonl");
    tokenhound_testgen::run(&tokenhound_testgen::Args {
        noise: 1,
        ..tokenhound_testgen::Args::month(otel.clone(), 21)
    })
    .unwrap();
    let text = std::fs::read_to_string(&otel).unwrap();
    // The agent of each span, as traceloop-sdk's context carries it.
    let mut agents: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
        {
            if let Some(n) = text_of_agent(s) {
                agents.insert(s["spanId"].as_str().unwrap().to_string(), n);
            }
        }
    }
    let mut out = String::new();
    for line in text.lines() {
        let mut doc: Value = serde_json::from_str(line).unwrap();
        let spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array_mut()
            .unwrap();
        for s in spans.iter_mut() {
            let parent = s["parentSpanId"]
                .as_str()
                .and_then(|p| agents.get(p))
                .cloned();
            *s = match dialect {
                "openinference" => openinference(s),
                "vercel-ai" => vercel(s),
                _ => openllmetry(s, parent.as_deref()),
            };
        }
        out += &doc.to_string();
        out.push('\n');
    }
    let twin = dir.join(format!("month.{dialect}.jsonl"));
    std::fs::write(&twin, out).unwrap();
    (otel.display().to_string(), twin.display().to_string())
}

fn text_of_agent(s: &Value) -> Option<String> {
    let a = attrs_of(s);
    (text(&a, "gen_ai.operation.name").as_deref() == Some("invoke_agent"))
        .then(|| text(&a, "gen_ai.agent.name"))
        .flatten()
}

fn same_findings(dialect: &str) {
    same_findings_of(
        dialect,
        &[
            "retry-storm",
            "context-reread",
            "subagent-duplicate-context",
            "filler-preamble",
        ],
    );
}

fn same_findings_of(dialect: &str, rules: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (otel, twin) = month_and_twin(dir.path(), dialect);
    let (_, a) = scan_json(&[&otel]);
    let (_, b) = scan_json(&[&twin]);
    let dialects = tokenhound(&["inspect", "--format", "json", &twin]);
    let seen = String::from_utf8_lossy(&dialects.stdout).to_string();
    assert!(
        seen.contains(&format!("\"{dialect}\"")),
        "{dialect} recognised: {seen}"
    );
    assert_eq!(b["input"]["problems"], 0, "{dialect}");
    for k in ["llm_calls", "tool_calls", "total_tokens", "sessions"] {
        assert_eq!(a["totals"][k], b["totals"][k], "{dialect}: {k}");
    }
    let (want, got) = (finding_keys(&a), finding_keys(&b));
    assert!(want.len() > 1000);
    for &rule in rules {
        let of = |v: &[(String, Vec<String>, u64)]| {
            v.iter()
                .filter(|f| f.0 == rule)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(!of(&want).is_empty(), "{rule} has findings");
        assert!(
            of(&want) == of(&got),
            "{dialect}: {rule}: {} findings against {}",
            of(&got).len(),
            of(&want).len()
        );
    }
}

#[test]
fn the_month_in_openinference_gives_the_same_findings() {
    same_findings("openinference");
}

#[test]
fn the_month_in_openllmetry_gives_the_same_findings() {
    same_findings("openllmetry");
}

/// The AI SDK writes no agent name a detector can group sub-agents by (its
/// functionId names the call site, not an agent): sub-agent duplication is not
/// compared; the other three are.
#[test]
fn the_month_in_the_vercel_ai_sdk_gives_the_same_findings() {
    same_findings_of(
        "vercel-ai",
        &["retry-storm", "context-reread", "filler-preamble"],
    );
}
