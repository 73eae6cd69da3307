//! Exports that hold one JSON record per span (or per observation, or per
//! request): Langfuse, Arize Phoenix, Pydantic Logfire, the OpenTelemetry
//! Python console exporter and Helicone. Each format only says where a record
//! keeps its ids, times, status and attributes; the dialect reader does the rest.

use super::attrs::{AnyValue, KeyValue};
use super::dialect::{Base, Plain};
use crate::model::Kind;
use compact_str::CompactString;
use serde_json::{Map, Value};

/// Which record shape a JSON export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// Langfuse observations (UI download, public API, blob export; camel or snake case)
    Langfuse,
    /// Arize Phoenix spans
    Phoenix,
    /// Pydantic Logfire `records` rows
    Logfire,
    /// OpenTelemetry Python `span.to_json()`
    OtelConsole,
    /// Helicone requests
    Helicone,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Langfuse => "langfuse",
            Shape::Phoenix => "phoenix",
            Shape::Logfire => "logfire",
            Shape::OtelConsole => "otel-console",
            Shape::Helicone => "helicone",
        }
    }

    /// Recognise a record by its keys.
    pub fn of(v: &Value) -> Option<Shape> {
        let o = v.as_object()?;
        let has = |k: &str| o.contains_key(k);
        if (has("traceId") || has("trace_id"))
            && has("type")
            && (has("startTime") || has("start_time"))
        {
            return Some(Shape::Langfuse);
        }
        // Phoenix spans: nested `context`, or the span dataframe's flat
        // `context.trace_id` / `attributes.…` columns (as JSONL or a table).
        if has("span_kind") && (has("context") || has("context.trace_id")) {
            return Some(Shape::Phoenix);
        }
        if has("context") && (has("kind") || has("attributes")) && has("name") {
            return Some(Shape::OtelConsole);
        }
        if has("span_name") && (has("start_timestamp") || has("trace_id")) {
            return Some(Shape::Logfire);
        }
        if has("request_id")
            && (has("request_body") || has("prompt_tokens") || has("request_created_at"))
        {
            return Some(Shape::Helicone);
        }
        None
    }
}

/// One span-like record, ready for the dialect reader.
pub struct Record {
    pub base: Base,
    pub attrs: Vec<KeyValue<'static>>,
    pub resource: Vec<KeyValue<'static>>,
}

/// A JSON value as an OTLP-like attribute value.
pub fn any(v: &Value) -> AnyValue<'static> {
    match v {
        Value::Null => AnyValue::Empty,
        Value::Bool(b) => AnyValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AnyValue::Str(s.clone().into()),
        Value::Array(a) => AnyValue::Array(a.iter().map(any).collect()),
        Value::Object(m) => {
            AnyValue::KvList(m.iter().map(|(k, v)| (k.clone().into(), any(v))).collect())
        }
    }
}

/// An attribute map (or a JSON string holding one) as key/values.
pub fn attrs_of(v: Option<&Value>) -> Vec<KeyValue<'static>> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone().into(),
                value: any(v),
            })
            .collect(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ Value::Object(_)) => attrs_of(Some(&inner)),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Nanoseconds since the epoch from an RFC 3339 time, a "YYYY-MM-DD hh:mm:ss[.f]"
/// time (UTC), or a number (ns, µs, ms or s, told apart by size).
pub fn time_ns(v: Option<&Value>) -> Result<u64, String> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(0.0);
            Ok(match n.as_u64() {
                Some(u) if u > 100_000_000_000_000_000 => u,
                Some(u) if u > 100_000_000_000_000 => u * 1_000,
                Some(u) if u > 100_000_000_000 => u * 1_000_000,
                _ => (x * 1e9) as u64,
            })
        }
        Some(Value::String(s)) => parse_time(s),
        Some(other) => Err(format!("invalid time {other}")),
    }
}

fn parse_time(s: &str) -> Result<u64, String> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return time_ns(Some(&Value::from(n)));
    }
    let mut t = s.replacen(' ', "T", 1);
    let has_zone = t.ends_with('Z') || t.get(10..).is_some_and(|r| r.contains(['+', '-']));
    if !has_zone {
        t.push('Z');
    }
    let dt = time::OffsetDateTime::parse(&t, &Rfc3339)
        .map_err(|e| format!("invalid time `{s}`: {e}"))?;
    let ns = dt.unix_timestamp_nanos();
    u64::try_from(ns).map_err(|_| format!("time `{s}` is before 1970"))
}

fn str_of<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| o.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

fn num_of(o: &Map<String, Value>, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| match o.get(*k)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

/// An id as text: strings as they are (a `0x` prefix dropped), integers in hex
/// of the given width (the console exporter writes ids as integers).
fn id_text(raw: Option<&Value>, hex_width: usize) -> Option<String> {
    match raw? {
        Value::String(s) if !s.is_empty() => Some(s.strip_prefix("0x").unwrap_or(s).to_string()),
        Value::Number(n) => {
            let digits = n.to_string();
            let v: u128 = digits.parse().ok()?;
            Some(format!("{v:0hex_width$x}"))
        }
        _ => None,
    }
}

fn object(v: &Value) -> Result<&Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("expected a JSON object, got {}", short(v)))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(60).map_or(s.len(), |c| c.0)]
        )
    } else {
        s
    }
}

/// Convert one record of a known shape.
pub fn record(shape: Shape, v: &Value, session: Option<&str>) -> Result<Record, String> {
    match shape {
        Shape::Langfuse => langfuse(v, session),
        Shape::Phoenix => phoenix(v),
        Shape::Logfire => logfire(v),
        Shape::OtelConsole => console(v),
        Shape::Helicone => helicone(v),
    }
}

/// What Langfuse says a generation cost, in USD: `costDetails` (its `total`, else
/// the sum of its parts), else the deprecated `totalCost` / `calculatedTotalCost`
/// (Langfuse API reference, ObservationsView). Langfuse writes 0 when it knows
/// no price for the model, so 0 is read as "not recorded".
pub fn langfuse_cost(o: &Map<String, Value>) -> Option<f64> {
    let details = match o.get("costDetails").or_else(|| o.get("cost_details")) {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
        Some(v) => Some(v.clone()),
        None => None,
    };
    let from_details = details.as_ref().and_then(Value::as_object).and_then(|d| {
        d.get("total").and_then(Value::as_f64).or_else(|| {
            let parts: Vec<f64> = d.values().filter_map(Value::as_f64).collect();
            (!parts.is_empty()).then(|| parts.iter().sum())
        })
    });
    from_details
        .or_else(|| {
            ["totalCost", "calculatedTotalCost", "total_cost"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_f64))
        })
        .filter(|c| c.is_finite() && *c > 0.0)
}

/// Langfuse usage details, made whole: Langfuse's own keys report cache reads,
/// audio and reasoning apart (`input_cache_read`, `output_reasoning`, …) and are
/// added back; OpenInference-style breakdowns (`prompt_details.*`) are already
/// inside `input` / `output` and are only read for the cached count. With it,
/// whether the details held an input or output count at all.
pub fn langfuse_details_usage(d: &Map<String, Value>) -> (crate::model::Usage, bool) {
    let mut u = crate::model::Usage::default();
    let mut any = false;
    for (k, v) in d {
        let n = v
            .as_u64()
            .or_else(|| v.as_f64().map(|f| f as u64))
            .unwrap_or(0);
        let cached = k.contains("cache_read") || k.contains("cached");
        let written = k.contains("cache_creation") || k.contains("cache_write");
        if k == "input" || k.starts_with("input_") {
            u.input += n;
            any = true;
        } else if k == "output" || k.starts_with("output_") {
            u.output += n;
            any = true;
        }
        if cached {
            u.cache_read += n;
        } else if written {
            u.cache_write += n;
        }
    }
    (u, any)
}

/// A Langfuse observation's usage: its usage details, else the older API's
/// counts.
pub fn langfuse_usage(o: &Map<String, Value>) -> Option<crate::model::Usage> {
    let details = o.get("usageDetails").or_else(|| o.get("usage_details"));
    let details = match details {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
        Some(v) => Some(v.clone()),
        None => None,
    };
    let (mut u, any) = details
        .as_ref()
        .and_then(Value::as_object)
        .map(langfuse_details_usage)
        .unwrap_or_default();
    if !any {
        // Older API objects: usage {input, output} or promptTokens / completionTokens.
        let usage = o.get("usage").and_then(Value::as_object);
        let input = usage
            .and_then(|m| num_of(m, &["input", "promptTokens"]))
            .or_else(|| num_of(o, &["promptTokens"]));
        let output = usage
            .and_then(|m| num_of(m, &["output", "completionTokens"]))
            .or_else(|| num_of(o, &["completionTokens"]));
        if input.is_none() && output.is_none() {
            return None;
        }
        u.input = input.unwrap_or(0);
        u.output = output.unwrap_or(0);
    }
    (u != crate::model::Usage::default()).then_some(u)
}

fn langfuse(v: &Value, session: Option<&str>) -> Result<Record, String> {
    let o = object(v)?;
    let metadata = match o.get("metadata") {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
        Some(m) => m.clone(),
        None => Value::Null,
    };
    let kind = match str_of(o, &["type"]).unwrap_or("") {
        "GENERATION" => Some(Kind::Llm),
        "TOOL" => Some(Kind::Tool),
        "AGENT" => Some(Kind::Agent),
        "EMBEDDING" | "EVENT" | "RETRIEVER" | "EVALUATOR" | "GUARDRAIL" => Some(Kind::Other),
        _ => None,
    };
    let level = str_of(o, &["level"]).unwrap_or("");
    let base = Base {
        scope: None,
        plain: Plain {
            trace_id: str_of(o, &["traceId", "trace_id"]).unwrap_or("").into(),
            span_id: str_of(o, &["id"]).unwrap_or("").into(),
            parent_id: str_of(o, &["parentObservationId", "parent_observation_id"])
                .map(CompactString::from),
            name: str_of(o, &["name"]).unwrap_or("").into(),
            start_ns: time_ns(o.get("startTime").or_else(|| o.get("start_time")))?,
            end_ns: time_ns(o.get("endTime").or_else(|| o.get("end_time")))?,
            failed: level == "ERROR",
        },
        kind,
        usage: if kind == Some(Kind::Llm) {
            langfuse_usage(o)
        } else {
            None
        },
        status_message: str_of(o, &["statusMessage", "status_message"]).map(String::from),
        exception: None,
        cost: if kind == Some(Kind::Llm) {
            langfuse_cost(o)
        } else {
            None
        },
        model: str_of(o, &["model", "providedModelName", "provided_model_name"]).map(String::from),
        session: session
            .map(String::from)
            .or_else(|| str_of(o, &["sessionId", "session_id"]).map(String::from)),
        input: o.get("input").cloned().filter(|v| !v.is_null()),
        output: o.get("output").cloned().filter(|v| !v.is_null()),
    };
    Ok(Record {
        base,
        attrs: attrs_of(metadata.get("attributes")),
        resource: attrs_of(metadata.get("resourceAttributes")),
    })
}

fn phoenix(v: &Value) -> Result<Record, String> {
    let o = object(v)?;
    let nested = o.get("context").and_then(Value::as_object);
    let ctx_of = |k: &str| match nested {
        Some(c) => c.get(k),
        None => o.get(&format!("context.{k}")),
    };
    if nested.is_none() && !o.contains_key("context.trace_id") {
        return Err("missing context".into());
    }
    let status = str_of(o, &["status_code"]).unwrap_or("");
    let base = Base {
        plain: Plain {
            trace_id: id_text(ctx_of("trace_id"), 32).unwrap_or_default().into(),
            span_id: id_text(ctx_of("span_id"), 16)
                .map(CompactString::new)
                .unwrap_or_default(),
            parent_id: id_text(o.get("parent_id"), 16).map(CompactString::new),
            name: str_of(o, &["name"]).unwrap_or("").into(),
            start_ns: time_ns(o.get("start_time"))?,
            end_ns: time_ns(o.get("end_time"))?,
            failed: status.eq_ignore_ascii_case("error"),
        },
        ..Base::default()
    };
    let mut attrs = attrs_of(o.get("attributes"));
    // The dataframe flattens attributes into `attributes.KEY` columns.
    for (k, v) in o {
        if let Some(key) = k.strip_prefix("attributes.") {
            if !v.is_null() {
                attrs.push(KeyValue {
                    key: key.to_string().into(),
                    value: any(v),
                });
            }
        }
    }
    if let Some(k) = str_of(o, &["span_kind"]) {
        if !attrs.iter().any(|a| a.key == "openinference.span.kind") {
            attrs.push(KeyValue {
                key: "openinference.span.kind".into(),
                value: AnyValue::Str(k.to_string().into()),
            });
        }
    }
    Ok(Record {
        base,
        attrs,
        resource: Vec::new(),
    })
}

fn console(v: &Value) -> Result<Record, String> {
    let o = object(v)?;
    let ctx = o
        .get("context")
        .and_then(Value::as_object)
        .ok_or("missing context")?;
    let parent = o
        .get("parent")
        .and_then(Value::as_object)
        .and_then(|p| id_text(p.get("span_id"), 16))
        .or_else(|| id_text(o.get("parent_id"), 16));
    let status = o
        .get("status")
        .and_then(|s| s.get("status_code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let base = Base {
        plain: Plain {
            trace_id: id_text(ctx.get("trace_id"), 32).unwrap_or_default().into(),
            span_id: id_text(ctx.get("span_id"), 16)
                .map(CompactString::new)
                .unwrap_or_default(),
            parent_id: parent.map(CompactString::new),
            name: str_of(o, &["name"]).unwrap_or("").into(),
            start_ns: time_ns(o.get("start_time"))?,
            end_ns: time_ns(o.get("end_time"))?,
            failed: status.eq_ignore_ascii_case("error")
                || status.eq_ignore_ascii_case("StatusCode.ERROR"),
        },
        ..Base::default()
    };
    let resource = attrs_of(o.get("resource").and_then(|r| r.get("attributes")));
    Ok(Record {
        base,
        attrs: attrs_of(o.get("attributes")),
        resource,
    })
}

fn logfire(v: &Value) -> Result<Record, String> {
    let o = object(v)?;
    let status = str_of(o, &["otel_status_code"]).unwrap_or("");
    let level = num_of(o, &["level"]).unwrap_or(0);
    let base = Base {
        plain: Plain {
            trace_id: str_of(o, &["trace_id"]).unwrap_or("").into(),
            span_id: str_of(o, &["span_id"]).unwrap_or("").into(),
            parent_id: str_of(o, &["parent_span_id"]).map(CompactString::from),
            name: str_of(o, &["span_name", "message"]).unwrap_or("").into(),
            start_ns: time_ns(o.get("start_timestamp"))?,
            end_ns: time_ns(o.get("end_timestamp"))?,
            // Logfire levels: 17 = error and above.
            failed: status.eq_ignore_ascii_case("error") || level >= 17,
        },
        ..Base::default()
    };
    let resource = attrs_of(o.get("otel_resource_attributes"));
    Ok(Record {
        base,
        attrs: attrs_of(o.get("attributes")),
        resource,
    })
}

fn helicone(v: &Value) -> Result<Record, String> {
    let o = object(v)?;
    let props = o
        .get("properties")
        .or_else(|| o.get("request_properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let request_id = str_of(o, &["request_id"]).unwrap_or("").to_string();
    let session = str_of(&props, &["Helicone-Session-Id", "helicone-session-id"]).map(String::from);
    let model = str_of(
        o,
        &["response_model", "model", "request_model", "model_override"],
    )
    .map(String::from);
    let provider = str_of(o, &["provider"]).unwrap_or("").to_ascii_lowercase();
    let anthropic =
        provider.contains("anthropic") || model.as_deref().is_some_and(|m| m.contains("claude"));
    let cache_read =
        num_of(o, &["prompt_cache_read_tokens", "cache_read_input_tokens"]).unwrap_or(0);
    let cache_write = num_of(
        o,
        &["prompt_cache_write_tokens", "cache_creation_input_tokens"],
    )
    .unwrap_or(0);
    let prompt = num_of(o, &["prompt_tokens"]).unwrap_or(0);
    // Anthropic reports input without the cache; OpenAI's prompt tokens include it.
    let input = if anthropic {
        prompt + cache_read + cache_write
    } else {
        prompt
    };
    let start = time_ns(o.get("request_created_at"))?;
    let end = match o.get("response_created_at") {
        Some(v) if !v.is_null() => time_ns(Some(v))?,
        _ => start + num_of(o, &["delay_ms", "latency"]).unwrap_or(0) * 1_000_000,
    };
    let status = num_of(o, &["response_status", "status"]).unwrap_or(200);
    let base = Base {
        scope: None,
        // A Helicone session is a conversation: its requests form one trace per request.
        plain: Plain {
            trace_id: request_id.as_str().into(),
            span_id: CompactString::new(request_id),
            parent_id: None,
            name: format!("chat {}", model.as_deref().unwrap_or("")).into(),
            start_ns: start,
            end_ns: end,
            failed: !(200..300).contains(&status),
        },
        kind: Some(Kind::Llm),
        usage: Some(crate::model::Usage {
            input,
            output: num_of(o, &["completion_tokens"]).unwrap_or(0),
            cache_read,
            cache_write,
        }),
        cost: None,
        status_message: None,
        exception: None,
        model,
        session,
        input: o.get("request_body").map(request_messages),
        output: o.get("response_body").cloned(),
    };
    Ok(Record {
        base,
        attrs: Vec::new(),
        resource: Vec::new(),
    })
}

/// A provider request body as one message list (system prompt first).
fn request_messages(body: &Value) -> Value {
    let mut msgs = Vec::new();
    if let Some(s) = body.get("system") {
        msgs.push(serde_json::json!({"role": "system", "content": s}));
    }
    if let Some(Value::Array(m)) = body.get("messages") {
        msgs.extend(m.iter().cloned());
    } else if let Some(p) = body.get("prompt") {
        msgs.push(serde_json::json!({"role": "user", "content": p}));
    }
    Value::Array(msgs)
}

/// Rows of a column-oriented table ({"columns": [{"name", "values"}]}) or a
/// row-oriented one ({"rows": […]}), as records (Logfire's query API).
pub fn table_rows(doc: &Value) -> Option<Vec<Value>> {
    if let Some(Value::Array(rows)) = doc.get("rows") {
        return Some(rows.clone());
    }
    let cols = doc.get("columns")?.as_array()?;
    let names: Vec<&str> = cols
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let values: Vec<&Vec<Value>> = cols
        .iter()
        .filter_map(|c| c.get("values").and_then(Value::as_array))
        .collect();
    if names.len() != values.len() || names.is_empty() {
        return None;
    }
    let n = values[0].len();
    Some(
        (0..n)
            .map(|i| {
                Value::Object(
                    names
                        .iter()
                        .zip(&values)
                        .map(|(k, col)| (k.to_string(), col.get(i).cloned().unwrap_or(Value::Null)))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// A CSV cell as JSON: objects and arrays stay structured, numbers become numbers.
pub fn csv_cell(s: &str) -> Value {
    let t = s.trim();
    if t.is_empty() {
        return Value::Null;
    }
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v) = serde_json::from_str(t) {
            return v;
        }
    }
    Value::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage(details: Value) -> Option<crate::model::Usage> {
        let o = json!({ "usageDetails": details });
        langfuse_usage(o.as_object().unwrap())
    }

    /// The spec's counting rule: input includes cache reads and writes, output
    /// includes reasoning, where Langfuse reports them apart.
    #[test]
    fn langfuse_cache_and_reasoning_are_added_back() {
        let u = usage(json!({
            "input": 90, "input_cache_read": 10, "input_cache_creation": 5,
            "output": 12, "output_reasoning": 8, "total": 125
        }))
        .unwrap();
        assert_eq!((u.input, u.output), (105, 20));
        assert_eq!((u.cache_read, u.cache_write), (10, 5));
    }

    #[test]
    fn langfuse_usage_as_a_json_string_and_the_old_api_shape_are_read() {
        let o = json!({ "usageDetails": "{\"input\": 3, \"output\": 4}" });
        let u = langfuse_usage(o.as_object().unwrap()).unwrap();
        assert_eq!((u.input, u.output), (3, 4));
        let o = json!({ "usage": { "input": 7, "output": 2 } });
        let u = langfuse_usage(o.as_object().unwrap()).unwrap();
        assert_eq!((u.input, u.output), (7, 2));
        assert!(langfuse_usage(json!({}).as_object().unwrap()).is_none());
    }

    #[test]
    fn langfuse_recorded_cost_prefers_details_and_reads_zero_as_unknown() {
        let cost = |v: Value| langfuse_cost(v.as_object().unwrap());
        assert_eq!(
            cost(json!({"costDetails": {"total": 0.5}, "totalCost": 9.0})),
            Some(0.5)
        );
        assert_eq!(
            cost(json!({"costDetails": {"input": 0.25, "output": 0.5}})),
            Some(0.75)
        );
        assert_eq!(cost(json!({"totalCost": 0.0})), None);
        assert_eq!(cost(json!({"calculatedTotalCost": 1.5})), Some(1.5));
    }

    #[test]
    fn times_are_read_in_every_unit_exports_use() {
        let ns = 1_717_000_000_000_000_000u64;
        for v in [
            json!(ns),
            json!(ns / 1_000),
            json!(ns / 1_000_000),
            json!(1_717_000_000.0),
        ] {
            assert_eq!(time_ns(Some(&v)).unwrap(), ns, "{v}");
        }
        assert_eq!(time_ns(Some(&json!("2024-05-29T16:26:40Z"))).unwrap(), ns);
        assert_eq!(
            time_ns(Some(&json!("2024-05-29 16:26:40.000"))).unwrap(),
            ns
        );
        assert!(time_ns(Some(&json!("not a time"))).is_err());
    }
}
