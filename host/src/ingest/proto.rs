//! OTLP protobuf as the Collector's file exporter writes it with `format: proto`:
//! each `TracesData` message prefixed by its length (big-endian u32). A file that
//! holds one bare message is read too. The messages are the subset of the OTLP
//! schema tokenhound reads, declared here with prost.

use super::attrs;
use super::dialect::{self, Base, Plain};
use super::mapping::Mappings;
use super::Problem;
use crate::model::Origin;
use compact_str::CompactString;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct TracesData {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<Scope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<PSpan>,
}

/// The instrumentation scope: which library recorded the spans.
#[derive(Clone, PartialEq, Message)]
pub struct Scope {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct PSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<PEvent>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Span.Event`: only exception events are read (their message).
#[derive(Clone, PartialEq, Message)]
pub struct PEvent {
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "OneValue", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<OneValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OneValue {
    #[prost(string, tag = "1")]
    StringValue(String),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    IntValue(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    ArrayValue(ArrayValue),
    #[prost(message, tag = "6")]
    KvlistValue(KeyValueList),
    #[prost(bytes = "vec", tag = "7")]
    BytesValue(Vec<u8>),
}

#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

fn value(v: &AnyValue) -> attrs::AnyValue<'static> {
    match &v.value {
        None => attrs::AnyValue::Empty,
        Some(OneValue::StringValue(s)) => attrs::AnyValue::Str(s.clone().into()),
        Some(OneValue::BoolValue(b)) => attrs::AnyValue::Bool(*b),
        Some(OneValue::IntValue(i)) => attrs::AnyValue::Int(*i),
        Some(OneValue::DoubleValue(d)) => attrs::AnyValue::Double(*d),
        Some(OneValue::ArrayValue(a)) => {
            attrs::AnyValue::Array(a.values.iter().map(value).collect())
        }
        Some(OneValue::KvlistValue(kv)) => attrs::AnyValue::KvList(
            kv.values
                .iter()
                .map(|k| {
                    (
                        k.key.clone().into(),
                        k.value.as_ref().map(value).unwrap_or_default(),
                    )
                })
                .collect(),
        ),
        Some(OneValue::BytesValue(b)) => attrs::AnyValue::Str(hex(b).into()),
    }
}

fn attrs(kvs: &[KeyValue]) -> Vec<attrs::KeyValue<'static>> {
    kvs.iter()
        .map(|k| attrs::KeyValue {
            key: k.key.clone().into(),
            value: k.value.as_ref().map(value).unwrap_or_default(),
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether `head` starts like a length-prefixed `TracesData` stream.
pub fn looks_like(head: &[u8]) -> bool {
    if head.len() < 6 {
        return false;
    }
    let n = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    // field 1 (resource_spans), wire type 2: tag byte 0x0a
    n > 0 && n < (1 << 30) && head[4] == 0x0a
}

/// Split a length-prefixed stream into messages (offsets for error locations).
pub fn frames(data: &[u8]) -> (Vec<(u64, &[u8])>, Option<String>) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 4 <= data.len() {
        let n = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        if at + 4 + n > data.len() {
            return (
                out,
                Some(format!(
                    "message at byte {at} is cut short ({n} bytes announced)"
                )),
            );
        }
        out.push((at as u64, &data[at + 4..at + 4 + n]));
        at += 4 + n;
    }
    let trailing = (at < data.len()).then(|| format!("{} stray bytes at the end", data.len() - at));
    (out, trailing)
}

/// Decode one message; its spans go to `out`.
pub fn parse(
    msg: &[u8],
    origin: &Origin,
    maps: &Mappings,
    out: &mut super::Spans,
    problems: &mut Vec<Problem>,
    seen: &mut super::Seen,
) {
    let data = match TracesData::decode(msg) {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem::at(
                origin,
                format!("not an OTLP TracesData message: {e}"),
            ));
            return;
        }
    };
    for rs in &data.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .and_then(|sc| dialect::scope_name(&sc.name));
            for s in &ss.spans {
                let base = Base {
                    scope: scope.clone(),
                    plain: Plain {
                        trace_id: hex(&s.trace_id).into(),
                        span_id: CompactString::new(hex(&s.span_id)),
                        parent_id: Some(CompactString::new(hex(&s.parent_span_id))),
                        name: s.name.as_str().into(),
                        start_ns: s.start_time_unix_nano,
                        end_ns: s.end_time_unix_nano,
                        failed: s.status.as_ref().is_some_and(|st| st.code == 2),
                    },
                    status_message: s
                        .status
                        .as_ref()
                        .map(|st| st.message.clone())
                        .filter(|m| !m.is_empty()),
                    exception: s
                        .events
                        .iter()
                        .find(|e| e.name == "exception")
                        .and_then(|e| {
                            e.attributes
                                .iter()
                                .find(|k| k.key == "exception.message")
                                .and_then(|k| k.value.as_ref().map(value))
                                .and_then(|v| v.as_str().map(String::from))
                        }),
                    ..Base::default()
                };
                let attributes = attrs(&s.attributes);
                match dialect::normalise(base, &resource, &attributes, origin, maps) {
                    Ok(span) => {
                        seen.spans(&attributes, maps);
                        out.push(Box::new(span))
                    }
                    Err(reason) => {
                        problems.push(Problem::at(origin, format!("span skipped: {reason}")))
                    }
                }
            }
        }
    }
}
