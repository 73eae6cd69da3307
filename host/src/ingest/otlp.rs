//! OTLP JSON: the Collector file exporter's lines (one `TracesData` each) and
//! single `TracesData` documents. Each span is parsed on its own, so one bad span
//! costs only itself.

use super::dialect::{self, Base};
use super::mapping::Mappings;
use super::Problem;
use crate::model::{Origin, Span};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;


#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TracesData<'a> {
    #[serde(borrow, default)]
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(borrow, default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Deserialize, Default)]
struct Resource {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct ScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtlpSpan {
    #[serde(default)]
    pub trace_id: String,
    #[serde(default)]
    pub span_id: String,
    #[serde(default)]
    pub parent_span_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "nanos")]
    pub start_time_unix_nano: u64,
    #[serde(default, deserialize_with = "nanos")]
    pub end_time_unix_nano: u64,
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    #[serde(default)]
    pub status: Status,
}

#[derive(Deserialize, Default)]
pub struct Status {
    #[serde(default, deserialize_with = "status_code")]
    pub code: i64,
}

#[derive(Deserialize, Clone, Debug)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: AnyValue,
}

/// An OTLP `AnyValue`, decoded to the plain value it carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum AnyValue {
    #[default]
    Empty,
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Array(Vec<AnyValue>),
    KvList(Vec<(String, AnyValue)>),
}

impl AnyValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            AnyValue::Int(i) if *i >= 0 => Some(*i as u64),
            AnyValue::Double(d) if *d >= 0.0 && d.fract() == 0.0 => Some(*d as u64),
            AnyValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AnyValue::Empty => Value::Null,
            AnyValue::Str(s) => Value::String(s.clone()),
            AnyValue::Int(i) => Value::from(*i),
            AnyValue::Double(d) => Value::from(*d),
            AnyValue::Bool(b) => Value::Bool(*b),
            AnyValue::Array(a) => Value::Array(a.iter().map(AnyValue::to_json).collect()),
            AnyValue::KvList(kv) => Value::Object(kv.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            string_value: Option<String>,
            #[serde(default, deserialize_with = "opt_int")]
            int_value: Option<i64>,
            double_value: Option<serde_json::Number>,
            bool_value: Option<bool>,
            array_value: Option<Values>,
            kvlist_value: Option<KvValues>,
            bytes_value: Option<String>,
        }
        #[derive(Deserialize)]
        struct Values {
            #[serde(default)]
            values: Vec<AnyValue>,
        }
        #[derive(Deserialize)]
        struct KvValues {
            #[serde(default)]
            values: Vec<KeyValue>,
        }
        let r = Raw::deserialize(d)?;
        Ok(if let Some(s) = r.string_value {
            AnyValue::Str(s)
        } else if let Some(i) = r.int_value {
            AnyValue::Int(i)
        } else if let Some(n) = r.double_value {
            AnyValue::Double(n.as_f64().unwrap_or(0.0))
        } else if let Some(b) = r.bool_value {
            AnyValue::Bool(b)
        } else if let Some(a) = r.array_value {
            AnyValue::Array(a.values)
        } else if let Some(kv) = r.kvlist_value {
            AnyValue::KvList(kv.values.into_iter().map(|k| (k.key, k.value)).collect())
        } else if let Some(b) = r.bytes_value {
            AnyValue::Str(b)
        } else {
            AnyValue::Empty
        })
    }
}

/// OTLP JSON writes 64-bit integers as strings; accept both.
fn nanos<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(0)),
        serde_json::Value::String(s) => {
            s.parse().map_err(|_| de::Error::custom(format!("invalid time `{s}`: not a whole number of nanoseconds")))
        }
        serde_json::Value::Null => Ok(0),
        other => Err(de::Error::custom(format!(
            "invalid type for a time: {other} (expected nanoseconds as a number or a string)"
        ))),
    }
}

fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        S(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::I(i)) => Ok(Some(i)),
        Some(N::S(s)) => s.parse().map(Some).map_err(|_| de::Error::custom(format!("intValue `{s}` is not an integer"))),
    }
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum C {
        I(i64),
        S(String),
    }
    Ok(match C::deserialize(d)? {
        C::I(i) => i,
        C::S(s) => match s.as_str() {
            "STATUS_CODE_ERROR" | "ERROR" | "2" => 2,
            "STATUS_CODE_OK" | "OK" | "1" => 1,
            _ => 0,
        },
    })
}

/// Parse one `TracesData` JSON text. Good spans go to `out`; each bad span or a
/// bad document becomes a problem located at `origin`.
pub fn parse_traces_data(text: &[u8], origin: &Origin, maps: &Mappings, out: &mut Vec<Span>, problems: &mut Vec<Problem>, seen: &mut super::Seen) {
    let text = match std::str::from_utf8(text) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::at(origin, format!("invalid UTF-8 at byte {} of the record", e.valid_up_to() + 1)));
            return;
        }
    };
    let doc: TracesData = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem::at(origin, format!("not an OTLP TracesData record: {e}")));
            return;
        }
    };
    for rs in doc.resource_spans {
        let resource = rs.resource.unwrap_or_default().attributes;
        for ss in rs.scope_spans {
            for raw in &ss.spans {
                // Locate the span itself, for documents that span many lines.
                let here = || {
                    let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                    let lines = text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count();
                    Origin { file: origin.file.clone(), line: origin.line + lines as u64 }
                };
                match serde_json::from_str::<OtlpSpan>(raw.get()) {
                    Err(e) => problems.push(Problem::at(&here(), format!("span skipped: {e}"))),
                    Ok(s) => match {
                        seen.spans(&s.attributes);
                        normalise(s, &resource, origin, maps)
                    } {
                        Ok(span) => out.push(span),
                        Err(reason) => problems.push(Problem::at(&here(), format!("span skipped: {reason}"))),
                    },
                }
            }
        }
    }
}

/// Whether `text` looks like OTLP JSON at all (for format detection and errors).
pub fn looks_like(text: &[u8]) -> bool {
    let head = &text[..text.len().min(4096)];
    let head = String::from_utf8_lossy(head);
    head.trim_start().starts_with('{') && (head.contains("\"resourceSpans\"") || head.contains("\"resource_spans\""))
}


fn normalise(s: OtlpSpan, resource: &[KeyValue], origin: &Origin, maps: &Mappings) -> Result<Span, String> {
    if s.trace_id.is_empty() {
        return Err("missing traceId".into());
    }
    if s.span_id.is_empty() {
        return Err("missing spanId".into());
    }
    let base = Base {
        trace_id: s.trace_id,
        span_id: s.span_id,
        parent_id: Some(s.parent_span_id),
        name: s.name,
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano,
        error: s.status.code == 2,
        ..Base::default()
    };
    dialect::normalise(base, resource, &s.attributes, origin, maps)
}
