//! The generated month rewritten in each dialect the way its instrumentation
//! writes it (attribute for attribute as in the recordings of
//! tests/fixtures/real-instr: OpenInference 0.1.66's LLM, TOOL and AGENT spans,
//! traceloop-sdk 0.62.4's @tool and @agent spans, the LangSmith 0.15.1 and
//! Langfuse 5.0.4 SDKs' runs and observations, pydantic-ai 2.68's spans; the
//! Vercel AI SDK's spans as its telemetry documentation lists them, the names
//! its 6.0 release writes in the vercel-ai-openai recording) gives the same
//! findings as the OTel GenAI original: the same rules, spans and wasted
//! tokens.

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
        Value::Number(n) if n.is_f64() => json!({"doubleValue": n}),
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

/// A span rewritten by `write`, which sets its name and pushes its new
/// attributes after the session's, under `session_key`; the span as it was
/// where `write` declines it (returns false).
fn rewrite(
    s: &Value,
    session_key: Option<&str>,
    write: impl FnOnce(&BTreeMap<String, Value>, &mut Value, &mut Vec<Value>) -> bool,
) -> Value {
    let a = attrs_of(s);
    let mut out = s.clone();
    let mut attrs = Vec::new();
    if let (Some(k), Some(c)) = (session_key, text(&a, "gen_ai.conversation.id")) {
        attrs.push(kv(k, json!(c)));
    }
    if !write(&a, &mut out, &mut attrs) {
        return s.clone();
    }
    out["attributes"] = Value::Array(attrs);
    out
}

/// An LLM span's response model, input and output tokens.
fn model_and_usage(a: &BTreeMap<String, Value>) -> (String, u64, u64) {
    (
        text(a, "gen_ai.response.model").unwrap(),
        int(a, "gen_ai.usage.input_tokens").unwrap(),
        int(a, "gen_ai.usage.output_tokens").unwrap(),
    )
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
    rewrite(s, Some("session.id"), |a, out, attrs| {
        match text(a, "gen_ai.operation.name").as_deref() {
            Some("chat") => {
                out["name"] = json!("Messages");
                attrs.push(kv("openinference.span.kind", json!("LLM")));
                attrs.push(kv("llm.system", json!("anthropic")));
                attrs.push(kv(
                    "llm.model_name",
                    json!(text(a, "gen_ai.response.model")),
                ));
                let (_, i, o) = model_and_usage(a);
                attrs.push(kv("llm.token_count.prompt", json!(i)));
                attrs.push(kv("llm.token_count.completion", json!(o)));
                attrs.push(kv("llm.token_count.total", json!(i + o)));
                if let Some(c) = int(a, "gen_ai.usage.cache_read.input_tokens") {
                    attrs.push(kv("llm.token_count.prompt_details.cache_read", json!(c)));
                }
                let mut n = 0;
                if let Some(sys) = text(a, "gen_ai.system_instructions") {
                    let v: Value = serde_json::from_str(&sys).unwrap();
                    attrs.push(kv("llm.input_messages.0.message.role", json!("system")));
                    attrs.push(kv(
                        "llm.input_messages.0.message.content",
                        v[0]["content"].clone(),
                    ));
                    n = 1;
                }
                if let Some(user) = text(a, "gen_ai.input.messages").and_then(|m| first_text(&m)) {
                    attrs.push(kv(
                        &format!("llm.input_messages.{n}.message.role"),
                        json!("user"),
                    ));
                    attrs.push(kv(
                        &format!("llm.input_messages.{n}.message.content"),
                        json!(user),
                    ));
                }
                if let Some(t) = text(a, "gen_ai.output.messages").and_then(|m| first_text(&m)) {
                    attrs.push(kv("llm.output_messages.0.message.role", json!("assistant")));
                    attrs.push(kv("llm.output_messages.0.message.content", json!(t)));
                }
            }
            Some("execute_tool") => {
                let tool = text(a, "gen_ai.tool.name").unwrap();
                out["name"] = json!(tool);
                attrs.push(kv("openinference.span.kind", json!("TOOL")));
                attrs.push(kv("tool.name", json!(tool)));
                // The schema: the same for every call, never the arguments.
                attrs.push(kv(
                    "tool.parameters",
                    json!(format!(r#"{{"type": "object", "title": "{tool}"}}"#)),
                ));
                let args: Value =
                    serde_json::from_str(&text(a, "gen_ai.tool.call.arguments").unwrap()).unwrap();
                attrs.push(kv("input.value", json!(py_dumps(&args))));
                attrs.push(kv("input.mime_type", json!("application/json")));
                match text(a, "gen_ai.tool.call.result") {
                    Some(r) => {
                        attrs.push(kv("output.value", json!(r)));
                        attrs.push(kv("output.mime_type", json!("text/plain")));
                    }
                    None => failed(out, &text(a, "error.type").unwrap()),
                }
            }
            Some("invoke_agent") => {
                out["name"] = json!(text(a, "gen_ai.agent.name"));
                attrs.push(kv("openinference.span.kind", json!("AGENT")));
            }
            _ => return false,
        }
        true
    })
}

/// One OTel GenAI span as traceloop-sdk 0.62.4 writes it: its LLM spans
/// already carry the gen_ai.* names; tools and agents are its decorators'.
fn openllmetry(s: &Value, agent: Option<&str>) -> Value {
    rewrite(
        s,
        Some("traceloop.association.properties.session_id"),
        |a, out, attrs| {
            if let Some(g) = agent {
                attrs.push(kv("gen_ai.agent.name", json!(g)));
            }
            match text(a, "gen_ai.operation.name").as_deref() {
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
                    let tool = text(a, "gen_ai.tool.name").unwrap();
                    out["name"] = json!(format!("{tool}.tool"));
                    attrs.push(kv("traceloop.span.kind", json!("tool")));
                    attrs.push(kv("traceloop.entity.name", json!(tool)));
                    attrs.push(kv("gen_ai.tool.name", json!(tool)));
                    let args: Value =
                        serde_json::from_str(&text(a, "gen_ai.tool.call.arguments").unwrap())
                            .unwrap();
                    attrs.push(kv(
                        "traceloop.entity.input",
                        json!(py_dumps(&json!({"args": [], "kwargs": args}))),
                    ));
                    match text(a, "gen_ai.tool.call.result") {
                        Some(r) => {
                            attrs.push(kv("traceloop.entity.output", json!(json!(r).to_string())))
                        }
                        None => failed(out, &text(a, "error.type").unwrap()),
                    }
                }
                Some("invoke_agent") => {
                    let name = text(a, "gen_ai.agent.name").unwrap();
                    out["name"] = json!(format!("{name}.agent"));
                    attrs.push(kv("traceloop.span.kind", json!("agent")));
                    attrs.push(kv("traceloop.entity.name", json!(name)));
                    attrs.push(kv(
                        "traceloop.entity.input",
                        json!(r#"{"args": [], "kwargs": {}}"#),
                    ));
                }
                _ => return false,
            }
            true
        },
    )
}

/// One OTel GenAI span as the Vercel AI SDK (v5) writes it with
/// `experimental_telemetry` on: an agent turn is the `ai.generateText` span of
/// a multi-step call (its functionId the agent's name), each LLM call its
/// `ai.generateText.doGenerate` step (ai.* and the gen_ai.* the SDK adds), each
/// tool an `ai.toolCall` span; the session in the telemetry metadata.
fn vercel(s: &Value) -> Value {
    rewrite(
        s,
        Some("ai.telemetry.metadata.sessionId"),
        |a, out, attrs| {
            match text(a, "gen_ai.operation.name").as_deref() {
                Some("chat") => {
                    let (model, i, o) = model_and_usage(a);
                    out["name"] = json!("ai.generateText.doGenerate");
                    attrs.push(kv("operation.name", json!("ai.generateText.doGenerate")));
                    attrs.push(kv("ai.operationId", json!("ai.generateText.doGenerate")));
                    attrs.push(kv("ai.model.id", json!(model)));
                    attrs.push(kv("ai.model.provider", json!("anthropic.messages")));
                    attrs.push(kv("ai.usage.inputTokens", json!(i)));
                    attrs.push(kv("ai.usage.outputTokens", json!(o)));
                    if let Some(c) = int(a, "gen_ai.usage.cache_read.input_tokens") {
                        attrs.push(kv("ai.usage.cachedInputTokens", json!(c)));
                    }
                    if let Some(t) = text(a, "gen_ai.output.messages").and_then(|m| first_text(&m))
                    {
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
                    attrs.push(kv("ai.toolCall.name", json!(text(a, "gen_ai.tool.name"))));
                    attrs.push(kv("ai.toolCall.id", json!(text(a, "gen_ai.tool.call.id"))));
                    attrs.push(kv(
                        "ai.toolCall.args",
                        json!(text(a, "gen_ai.tool.call.arguments")),
                    ));
                    match text(a, "gen_ai.tool.call.result") {
                        Some(r) => attrs.push(kv("ai.toolCall.result", json!(r))),
                        None => failed(out, &text(a, "error.type").unwrap()),
                    }
                }
                Some("invoke_agent") => {
                    out["name"] = json!("ai.generateText");
                    attrs.push(kv("operation.name", json!("ai.generateText")));
                    attrs.push(kv("ai.operationId", json!("ai.generateText")));
                    attrs.push(kv(
                        "ai.telemetry.functionId",
                        json!(text(a, "gen_ai.agent.name")),
                    ));
                }
                _ => return false,
            }
            true
        },
    )
}

/// The system and user texts of an OTel GenAI LLM span, as chat messages.
fn chat_messages(a: &BTreeMap<String, Value>) -> Vec<Value> {
    let mut messages = Vec::new();
    if let Some(sys) = text(a, "gen_ai.system_instructions") {
        let v: Value = serde_json::from_str(&sys).unwrap();
        messages.push(json!({"role": "system", "content": v[0]["content"]}));
    }
    if let Some(user) = text(a, "gen_ai.input.messages").and_then(|m| first_text(&m)) {
        messages.push(json!({"role": "user", "content": user}));
    }
    messages
}

/// One OTel GenAI span as the LangSmith SDK (0.15.1) writes it in OpenTelemetry
/// mode, as in tests/fixtures/real-instr/langsmith-anthropic.jsonl: runs from
/// `wrap_anthropic` and `@traceable`, the thread id in every run's metadata,
/// the cache details as `str()` of a Python dict, a tool's inputs and its output
/// wrapped as `{"output": …}`; an agent is a chain run marked as LangSmith's
/// coding-agent metadata marks it (`ls_agent_type` root or subagent).
fn langsmith(s: &Value, parent_agent: Option<&str>) -> Value {
    rewrite(s, Some("langsmith.metadata.session_id"), |a, out, attrs| {
        let run = |attrs: &mut Vec<Value>, kind: &str, name: &str| {
            attrs.push(kv("langsmith.span.kind", json!(kind)));
            attrs.push(kv("langsmith.trace.name", json!(name)));
            attrs.push(kv("langsmith.trace.session_name", json!("default")));
            attrs.push(kv("langsmith.metadata.ls_method", json!("traceable")));
        };
        match text(a, "gen_ai.operation.name").as_deref() {
            Some("chat") => {
                let (model, i, o) = model_and_usage(a);
                out["name"] = json!("ChatAnthropic");
                run(attrs, "llm", "ChatAnthropic");
                attrs.push(kv("gen_ai.operation.name", json!("chat")));
                attrs.push(kv("gen_ai.system", json!("anthropic")));
                attrs.push(kv("langsmith.metadata.ls_provider", json!("anthropic")));
                attrs.push(kv("langsmith.metadata.ls_model_name", json!(model)));
                attrs.push(kv("gen_ai.request.model", json!(model)));
                let prompt =
                    json!({"max_tokens": 1024, "messages": chat_messages(a), "model": model});
                attrs.push(kv("gen_ai.prompt", json!(prompt.to_string())));
                attrs.push(kv("gen_ai.usage.input_tokens", json!(i)));
                attrs.push(kv("gen_ai.usage.output_tokens", json!(o)));
                attrs.push(kv("gen_ai.usage.total_tokens", json!(i + o)));
                attrs.push(kv("gen_ai.response.model", json!(model)));
                let details = match int(a, "gen_ai.usage.cache_read.input_tokens") {
                    Some(c) => format!("{{'cache_read': {c}}}"),
                    None => "{}".to_string(),
                };
                attrs.push(kv("gen_ai.usage.input_token_details", json!(details)));
                let answer = text(a, "gen_ai.output.messages").and_then(|m| first_text(&m));
                let completion = json!({"content": [{"citations": null, "text": answer, "type": "text"}],
                    "model": model, "role": "assistant", "stop_reason": "end_turn"});
                attrs.push(kv("gen_ai.completion", json!(completion.to_string())));
            }
            Some("execute_tool") => {
                let tool = text(a, "gen_ai.tool.name").unwrap();
                out["name"] = json!(tool);
                run(attrs, "tool", &tool);
                attrs.push(kv("gen_ai.operation.name", json!("execute_tool")));
                attrs.push(kv("gen_ai.system", json!("langchain")));
                attrs.push(kv("gen_ai.tool.name", json!(tool)));
                let args: Value =
                    serde_json::from_str(&text(a, "gen_ai.tool.call.arguments").unwrap()).unwrap();
                attrs.push(kv("gen_ai.prompt", json!(args.to_string())));
                let result = text(a, "gen_ai.tool.call.result");
                attrs.push(kv(
                    "gen_ai.completion",
                    json!(json!({"output": result}).to_string()),
                ));
                if result.is_none() {
                    failed(out, &text(a, "error.type").unwrap());
                }
            }
            Some("invoke_agent") => {
                let name = text(a, "gen_ai.agent.name").unwrap();
                out["name"] = json!(name);
                run(attrs, "chain", &name);
                attrs.push(kv("gen_ai.operation.name", json!("chain")));
                attrs.push(kv("gen_ai.system", json!("langchain")));
                let role = if parent_agent.is_some() {
                    "subagent"
                } else {
                    "root"
                };
                attrs.push(kv("langsmith.metadata.ls_agent_type", json!(role)));
            }
            _ => return false,
        }
        true
    })
}

/// One OTel GenAI span as the Langfuse SDK (5.0.4) writes it, as in
/// tests/fixtures/real-instr/langfuse-openai.jsonl: generations from its
/// OpenAI drop-in (the provider's usage object as given), `@observe` tools
/// and agents (arguments wrapped as `{"args", "kwargs"}`), `session.id` on
/// every observation; a failed observation has level ERROR and a status message.
fn langfuse(s: &Value) -> Value {
    rewrite(s, Some("session.id"), |a, out, attrs| {
        let observation = |attrs: &mut Vec<Value>, ty: &str| {
            attrs.push(kv("langfuse.observation.type", json!(ty)));
        };
        match text(a, "gen_ai.operation.name").as_deref() {
            Some("chat") => {
                let (model, i, o) = model_and_usage(a);
                out["name"] = json!("OpenAI-generation");
                observation(attrs, "generation");
                attrs.push(kv("langfuse.observation.model.name", json!(model)));
                let input = json!({"messages": chat_messages(a), "model": model});
                attrs.push(kv("langfuse.observation.input", json!(py_dumps(&input))));
                let answer = text(a, "gen_ai.output.messages").and_then(|m| first_text(&m));
                let output = json!({"role": "assistant", "content": answer});
                attrs.push(kv("langfuse.observation.output", json!(py_dumps(&output))));
                let cached = int(a, "gen_ai.usage.cache_read.input_tokens").unwrap_or(0);
                let usage = json!({"completion_tokens": o, "prompt_tokens": i, "total_tokens": i + o,
                    "completion_tokens_details": null, "prompt_tokens_details": {"cached_tokens": cached}});
                attrs.push(kv(
                    "langfuse.observation.usage_details",
                    json!(py_dumps(&usage)),
                ));
            }
            Some("execute_tool") => {
                let tool = text(a, "gen_ai.tool.name").unwrap();
                out["name"] = json!(tool);
                observation(attrs, "tool");
                let args: Value =
                    serde_json::from_str(&text(a, "gen_ai.tool.call.arguments").unwrap()).unwrap();
                attrs.push(kv(
                    "langfuse.observation.input",
                    json!(py_dumps(&json!({"args": [], "kwargs": args}))),
                ));
                match text(a, "gen_ai.tool.call.result") {
                    Some(r) => attrs.push(kv("langfuse.observation.output", json!(r))),
                    None => {
                        let message = "tool call failed";
                        out["status"] = json!({"code": 2, "message": message});
                        attrs.push(kv("langfuse.observation.level", json!("ERROR")));
                        attrs.push(kv("langfuse.observation.status_message", json!(message)));
                    }
                }
            }
            Some("invoke_agent") => {
                out["name"] = json!(text(a, "gen_ai.agent.name"));
                observation(attrs, "agent");
                attrs.push(kv(
                    "langfuse.observation.input",
                    json!(r#"{"args": [], "kwargs": {}}"#),
                ));
            }
            _ => return false,
        }
        true
    })
}

/// One OTel GenAI span as pydantic-ai (2.68, instrumentation format 5) writes
/// it, as in tests/fixtures/real-instr/pydantic-ai-openai.jsonl: the GenAI
/// names plus its own (`logfire.msg`, `logfire.json_schema`, `operation.cost`),
/// a failed tool handed back with ModelRetry (status ERROR, an exception event,
/// the retry message as the result), and the agent run's total of the calls
/// under it as `gen_ai.aggregated_usage.*`.
fn pydantic_ai(s: &Value, aggregate: Option<&(u64, u64, u64)>) -> Value {
    rewrite(s, None, |a, out, attrs| {
        attrs.extend(s["attributes"].as_array().unwrap().iter().cloned());
        let schema = |props: &[&str]| {
            let p: serde_json::Map<String, Value> = props
                .iter()
                .map(|k| (k.to_string(), json!({"type": "object"})))
                .collect();
            json!({"type": "object", "properties": p}).to_string()
        };
        match text(a, "gen_ai.operation.name").as_deref() {
            Some("chat") => {
                attrs.push(kv("gen_ai.system", json!("anthropic")));
                attrs.push(kv("operation.cost", json!(0.0032)));
                attrs.push(kv(
                    "logfire.json_schema",
                    json!(schema(&["gen_ai.input.messages", "gen_ai.output.messages"])),
                ));
                if let Some(c) = int(a, "gen_ai.usage.cache_read.input_tokens") {
                    attrs.push(kv("gen_ai.usage.details.cache_read_tokens", json!(c)));
                    attrs.push(kv("pydantic_ai.cache.established_tokens", json!(c)));
                }
            }
            Some("execute_tool") => {
                let tool = text(a, "gen_ai.tool.name").unwrap();
                attrs.push(kv("logfire.msg", json!(format!("running tool: {tool}"))));
                attrs.push(kv(
                    "logfire.json_schema",
                    json!(schema(&[
                        "gen_ai.tool.call.arguments",
                        "gen_ai.tool.call.result"
                    ])),
                ));
                if text(a, "gen_ai.tool.call.result").is_none() {
                    let ty = text(a, "error.type").unwrap();
                    attrs.retain(|kv| kv["key"] != "error.type");
                    attrs.push(kv("gen_ai.tool.call.result", json!("tool call failed")));
                    attrs.push(kv("pydantic_ai.tool.retry.cause", json!("model_retry")));
                    failed(out, &ty);
                }
            }
            Some("invoke_agent") => {
                let name = text(a, "gen_ai.agent.name").unwrap();
                attrs.push(kv("agent_name", json!(name)));
                attrs.push(kv("logfire.msg", json!(format!("{name} run"))));
                if let Some((i, o, c)) = aggregate {
                    attrs.push(kv("gen_ai.aggregated_usage.input_tokens", json!(i)));
                    attrs.push(kv("gen_ai.aggregated_usage.output_tokens", json!(o)));
                    attrs.push(kv(
                        "gen_ai.aggregated_usage.cache_read.input_tokens",
                        json!(c),
                    ));
                }
            }
            _ => return false,
        }
        true
    })
}

/// For each agent span, the usage (input, output, cache reads) of the LLM
/// calls under it, however deep: what pydantic-ai's agent run reports again.
fn agent_totals(text: &str) -> BTreeMap<String, (u64, u64, u64)> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut calls: Vec<(String, (u64, u64, u64))> = Vec::new();
    let mut agents: std::collections::BTreeSet<String> = Default::default();
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
        {
            let id = s["spanId"].as_str().unwrap().to_string();
            if let Some(p) = s["parentSpanId"].as_str().filter(|p| !p.is_empty()) {
                parent.insert(id.clone(), p.to_string());
            }
            let a = attrs_of(s);
            match text_of_op(&a).as_deref() {
                Some("invoke_agent") => {
                    agents.insert(id);
                }
                Some("chat") => calls.push((
                    id,
                    (
                        int(&a, "gen_ai.usage.input_tokens").unwrap(),
                        int(&a, "gen_ai.usage.output_tokens").unwrap(),
                        int(&a, "gen_ai.usage.cache_read.input_tokens").unwrap_or(0),
                    ),
                )),
                _ => {}
            }
        }
    }
    let mut totals: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for (id, (i, o, c)) in calls {
        let mut at = parent.get(&id);
        while let Some(p) = at {
            if agents.contains(p) {
                let t = totals.entry(p.clone()).or_default();
                *t = (t.0 + i, t.1 + o, t.2 + c);
            }
            at = parent.get(p);
        }
    }
    totals
}

fn text_of_op(a: &BTreeMap<String, Value>) -> Option<String> {
    text(a, "gen_ai.operation.name")
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
    let totals = agent_totals(&text);
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
            let id = s["spanId"].as_str().unwrap().to_string();
            *s = match dialect {
                "openinference" => openinference(s),
                "vercel-ai" => vercel(s),
                "langsmith" => langsmith(s, parent.as_deref()),
                "langfuse" => langfuse(s),
                "logfire" => pydantic_ai(s, totals.get(&id)),
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

#[test]
fn the_month_in_langsmith_gives_the_same_findings() {
    same_findings("langsmith");
}

#[test]
fn the_month_in_langfuse_gives_the_same_findings() {
    same_findings("langfuse");
}

/// pydantic-ai's spans are OTel GenAI's with its own additions (inspect names
/// them `logfire`): the agent run's aggregate must not be counted again.
#[test]
fn the_month_in_pydantic_ai_gives_the_same_findings() {
    same_findings("logfire");
}
