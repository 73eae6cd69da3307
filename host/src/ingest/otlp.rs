//! OTLP JSON: the Collector file exporter's lines (one `TracesData` each) and
//! single `TracesData` documents. Each span is parsed on its own, so one bad span
//! costs only itself.

use super::attrs::{AnyValue, KeyValue};
use super::dialect::{self, Base};
use super::mapping::Mappings;
use super::Problem;
use crate::model::{Origin, Span};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;

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
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(borrow, default)]
    spans: Vec<&'a RawValue>,
}

/// The instrumentation scope: which library recorded the spans.
#[derive(Deserialize)]
struct Scope {
    #[serde(default)]
    name: String,
}

/// The same document with spans parsed in one go: the fast path, taken when
/// the whole record is good (nearly always).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastTracesData {
    #[serde(default)]
    resource_spans: Vec<FastResourceSpans>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastResourceSpans {
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<FastScopeSpans>,
}

#[derive(Deserialize)]
struct FastScopeSpans {
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    spans: Vec<OtlpSpan>,
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
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Deserialize, Default)]
pub struct Status {
    #[serde(default, deserialize_with = "status_code")]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// A span event; only `exception` events are read (their message).
#[derive(Deserialize, Default)]
pub struct Event {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
}

impl OtlpSpan {
    /// The message of the span's first exception event (OTel exception events).
    pub fn exception(&self) -> Option<String> {
        let e = self.events.iter().find(|e| e.name == "exception")?;
        e.attributes
            .iter()
            .find(|k| k.key == "exception.message")
            .and_then(|k| k.value.as_str().map(String::from))
    }
}

impl<'de> Deserialize<'de> for AnyValue {
    /// A hand-written visitor: this runs for every attribute of every span, and
    /// a derived struct of options (or an untagged enum) costs several times more.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = AnyValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an OTLP AnyValue object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<AnyValue, A::Error> {
                let mut out = AnyValue::Empty;
                while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    out = match &*key {
                        "stringValue" | "bytesValue" => AnyValue::Str(m.next_value()?),
                        "intValue" => AnyValue::Int(m.next_value::<IntText>()?.0),
                        "doubleValue" => AnyValue::Double(m.next_value::<DoubleText>()?.0),
                        "boolValue" => AnyValue::Bool(m.next_value()?),
                        "arrayValue" => AnyValue::Array(m.next_value::<Values>()?.values),
                        "kvlistValue" => AnyValue::KvList(
                            m.next_value::<KvValues>()?
                                .values
                                .into_iter()
                                .map(|k| (k.key, k.value))
                                .collect(),
                        ),
                        _ => {
                            m.next_value::<de::IgnoredAny>()?;
                            continue;
                        }
                    };
                }
                Ok(out)
            }
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
        d.deserialize_map(V)
    }
}

/// serde_json's `arbitrary_precision` (on so that 128-bit numeric ids survive)
/// hands a JSON number to a `deserialize_any` visitor as a one-entry map; this
/// reads it back as the number's text. A real object is an error.
fn number_text<'de, A: de::MapAccess<'de>>(m: A) -> Result<String, A::Error> {
    serde_json::Number::deserialize(de::value::MapAccessDeserializer::new(m)).map(|n| n.to_string())
}

/// OTLP JSON writes 64-bit integers as strings; accept both.
struct IntText(i64);
impl<'de> Deserialize<'de> for IntText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = IntText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a string holding one")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntText, E> {
                Ok(IntText(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntText, E> {
                Ok(IntText(v as i64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntText, E> {
                v.trim()
                    .parse()
                    .map(IntText)
                    .map_err(|_| E::custom(format!("intValue `{v}` is not an integer")))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<IntText, A::Error> {
                self.visit_str(&number_text(m)?)
            }
        }
        d.deserialize_any(V)
    }
}

struct DoubleText(f64);
impl<'de> Deserialize<'de> for DoubleText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = DoubleText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DoubleText, E> {
                Ok(DoubleText(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DoubleText, E> {
                Ok(DoubleText(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DoubleText, E> {
                Ok(DoubleText(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DoubleText, E> {
                // "NaN", "Infinity" are how OTLP JSON writes those.
                v.parse()
                    .map(DoubleText)
                    .map_err(|_| E::custom(format!("doubleValue `{v}` is not a number")))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<DoubleText, A::Error> {
                self.visit_str(&number_text(m)?)
            }
        }
        d.deserialize_any(V)
    }
}

/// Nanosecond times: a number, or a string of digits (OTLP JSON's 64-bit rule).
fn nanos<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("nanoseconds as a number or a string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("invalid time {v}: negative")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            Ok(v.max(0.0) as u64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.parse().map_err(|_| {
                E::custom(format!(
                    "invalid time `{v}`: not a whole number of nanoseconds"
                ))
            })
        }
        fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<u64, E> {
            Err(E::custom(format!(
                "invalid type for a time: {v} (expected nanoseconds as a number or a string)"
            )))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<u64, A::Error> {
            match number_text(m) {
                Ok(n) => self.visit_str(&n),
                Err(_) => Err(de::Error::custom(
                    "invalid type for a time: an object (expected nanoseconds as a number or a string)",
                )),
            }
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
            Err(de::Error::custom(
                "invalid type for a time: a list (expected nanoseconds as a number or a string)",
            ))
        }
    }
    d.deserialize_any(V)
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
pub fn parse_traces_data(
    text: &[u8],
    origin: &Origin,
    maps: &Mappings,
    out: &mut Vec<Span>,
    problems: &mut Vec<Problem>,
    seen: &mut super::Seen,
) {
    let text = super::text_of(text, origin, problems);
    let text = &*text;
    if let Ok(doc) = serde_json::from_str::<FastTracesData>(text) {
        for rs in doc.resource_spans {
            let resource = rs.resource.unwrap_or_default().attributes;
            for ss in rs.scope_spans {
                let scope = ss.scope.as_ref().and_then(|s| dialect::scope_name(&s.name));
                for s in ss.spans {
                    match normalise_seen(s, scope.clone(), &resource, origin, maps, seen) {
                        Ok(span) => out.push(span),
                        Err(reason) => {
                            problems.push(Problem::at(origin, format!("span skipped: {reason}")))
                        }
                    }
                }
            }
        }
        return;
    }
    let doc: TracesData = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem::at(
                origin,
                format!("not an OTLP TracesData record: {e}"),
            ));
            return;
        }
    };
    for rs in doc.resource_spans {
        let resource = rs.resource.unwrap_or_default().attributes;
        for ss in rs.scope_spans {
            let scope = ss.scope.as_ref().and_then(|s| dialect::scope_name(&s.name));
            for raw in &ss.spans {
                // Locate the span itself, for documents that span many lines.
                let here = || {
                    let offset =
                        (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                    let lines = crate::location::line_of(text.as_bytes(), offset) - 1;
                    Origin {
                        file: origin.file.clone(),
                        line: origin.line + lines,
                    }
                };
                match serde_json::from_str::<OtlpSpan>(raw.get()) {
                    Err(e) => problems.push(Problem::at(&here(), format!("span skipped: {e}"))),
                    Ok(s) => {
                        match normalise_seen(s, scope.clone(), &resource, origin, maps, seen) {
                            Ok(span) => out.push(span),
                            Err(reason) => problems
                                .push(Problem::at(&here(), format!("span skipped: {reason}"))),
                        }
                    }
                }
            }
        }
    }
}

/// Whether `text` looks like OTLP JSON at all (for format detection and errors).
pub fn looks_like(text: &[u8]) -> bool {
    // Bytes, not text: a lossy UTF-8 copy of the head cost more per small
    // file than the rest of detecting it.
    let head = &text[..text.len().min(4096)];
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    head.trim_ascii_start().starts_with(b"{")
        && (memchr::memmem::find(head, b"\"resourceSpans\"").is_some()
            || memchr::memmem::find(head, b"\"resource_spans\"").is_some())
}

fn normalise_seen(
    s: OtlpSpan,
    scope: Option<Arc<str>>,
    resource: &[KeyValue],
    origin: &Origin,
    maps: &Mappings,
    seen: &mut super::Seen,
) -> Result<Span, String> {
    seen.spans(&s.attributes, maps);
    normalise(s, scope, resource, origin, maps)
}

fn normalise(
    mut s: OtlpSpan,
    scope: Option<Arc<str>>,
    resource: &[KeyValue],
    origin: &Origin,
    maps: &Mappings,
) -> Result<Span, String> {
    if s.trace_id.is_empty() {
        return Err("missing traceId".into());
    }
    if s.span_id.is_empty() {
        return Err("missing spanId".into());
    }
    let exception = s.exception();
    let base = Base {
        scope,
        trace_id: s.trace_id,
        span_id: s.span_id,
        parent_id: Some(s.parent_span_id),
        name: s.name,
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano,
        error: s.status.code == 2,
        exception,
        status_message: Some(std::mem::take(&mut s.status.message)).filter(|m| !m.is_empty()),
        ..Base::default()
    };
    dialect::normalise(base, resource, &s.attributes, origin, maps)
}
