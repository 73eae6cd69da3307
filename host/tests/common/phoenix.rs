//! The generated month's spans as Arize Phoenix span JSONL, for the tests'
//! Phoenix twin (tests/formats.rs) and the linear bench, which includes this
//! file by path (a bench cannot use the tests' `common` module).

use serde_json::{json, Value};

fn attr_value(v: &Value) -> Value {
    let v = &v["value"];
    if let Some(s) = v.get("stringValue") {
        s.clone()
    } else if let Some(i) = v.get("intValue") {
        json!(i
            .as_str()
            .map_or_else(|| i.as_i64().unwrap(), |s| s.parse::<i64>().unwrap()))
    } else if let Some(a) = v.get("arrayValue") {
        Value::Array(
            a["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["stringValue"].clone())
                .collect(),
        )
    } else {
        Value::Null
    }
}

/// One OTLP JSON span (as `tokenhound-testgen` writes it) as a row of
/// Phoenix's span export: attributes as a flat object, times as numbers.
pub fn span(s: &Value) -> Value {
    let attrs: serde_json::Map<String, Value> = s["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_string(), attr_value(kv)))
        .collect();
    let ns = |k: &str| s[k].as_str().unwrap().parse::<u64>().unwrap();
    json!({"name": s["name"], "context": {"trace_id": s["traceId"], "span_id": s["spanId"]}, "parent_id": s.get("parentSpanId"),
           "span_kind": "UNKNOWN", "start_time": ns("startTimeUnixNano"), "end_time": ns("endTimeUnixNano"),
           "status_code": if s["status"]["code"] == 2 { "ERROR" } else { "OK" }, "attributes": attrs})
}
