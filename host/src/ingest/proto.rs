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
use std::borrow::Cow;
use std::sync::Arc;

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

fn value(v: &AnyValue) -> attrs::AnyValue<'_> {
    match &v.value {
        None => attrs::AnyValue::Empty,
        Some(OneValue::StringValue(s)) => attrs::AnyValue::Str(Cow::Borrowed(s)),
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
                    let v = k.value.as_ref().map(value).unwrap_or_default();
                    (Cow::Borrowed(k.key.as_str()), v)
                })
                .collect(),
        ),
        Some(OneValue::BytesValue(b)) => attrs::AnyValue::Str(const_hex::encode(b).into()),
    }
}

/// The attributes as the dialects read them, borrowing the message's texts
/// (copying each was a tenth of a protobuf scan), into `out`'s room.
fn attrs_into<'a>(kvs: &'a [KeyValue], out: &mut Vec<attrs::KeyValue<'a>>) {
    out.clear();
    out.extend(kvs.iter().map(|k| attrs::KeyValue {
        key: Cow::Borrowed(&k.key),
        value: k.value.as_ref().map(value).unwrap_or_default(),
    }));
}

/// An id as OTLP JSON writes it: lower-case hex. One of the usual length (at
/// most 24 digits) is made without an allocation; `format!` per byte was a
/// fifth of a protobuf scan.
fn hex_id(b: &[u8]) -> CompactString {
    let mut buf = [0u8; 24];
    match buf.get_mut(..b.len() * 2) {
        Some(digits) => {
            const_hex::encode_to_slice(b, digits).expect("twice the bytes' length");
            CompactString::from_utf8(digits).expect("hex digits")
        }
        None => const_hex::encode(b).into(),
    }
}

/// Texts every span of a message shares: its trace id (spans come grouped by
/// trace) and span names, one copy each, as the OTLP JSON reader's `Recent`
/// shares them. Not that one: it knows a trace by its id's text, and making
/// the text of every span's id to compare cost 3% of a protobuf scan (4 ABBA
/// pairs 1.03); this one knows it by the id's bytes, made into text once.
#[derive(Default)]
struct Shared<'a> {
    trace: Option<(&'a [u8], Arc<str>)>,
    names: rustc_hash::FxHashMap<&'a str, Arc<str>>,
}

impl<'a> Shared<'a> {
    fn trace(&mut self, id: &'a [u8]) -> Arc<str> {
        match &self.trace {
            Some((raw, t)) if *raw == id => t.clone(),
            _ => self
                .trace
                .insert((id, hex_id(id).as_str().into()))
                .1
                .clone(),
        }
    }

    fn name(&mut self, name: &'a str) -> Arc<str> {
        self.names
            .entry(name)
            .or_insert_with(|| name.into())
            .clone()
    }
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

/// Decode one message; its spans go to `out`. `times_only`: each span made
/// with its ids, times and status only (see [`dialect::times_only`]).
pub fn parse(
    msg: &[u8],
    origin: &Origin,
    maps: &Mappings,
    times_only: bool,
    parsed: &mut super::Parsed,
) {
    let (out, problems, seen) = parsed;
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
    let (mut shared, mut attributes) = (Shared::default(), Vec::new());
    for rs in &data.resource_spans {
        let mut resource = Vec::new();
        if let Some(r) = &rs.resource {
            attrs_into(&r.attributes, &mut resource);
        }
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .and_then(|sc| dialect::scope_name(&sc.name));
            for s in &ss.spans {
                let base = base(s, &scope, &mut shared);
                if times_only {
                    match dialect::times_only(base, origin) {
                        Ok(span) => out.push(Box::new(span)),
                        Err(reason) => {
                            problems.push(Problem::at(origin, format!("span skipped: {reason}")))
                        }
                    }
                    continue;
                }
                attrs_into(&s.attributes, &mut attributes);
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

/// What the message states of a span besides its attributes.
fn base<'a>(s: &'a PSpan, scope: &Option<Arc<str>>, shared: &mut Shared<'a>) -> Base {
    Base {
        scope: scope.clone(),
        plain: Plain {
            trace_id: shared.trace(&s.trace_id),
            span_id: hex_id(&s.span_id),
            parent_id: Some(hex_id(&s.parent_span_id)),
            name: shared.name(&s.name),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids of every length read as OTLP JSON writes them, inline or not.
    #[test]
    fn ids_of_any_length_are_lower_case_hex_of_every_byte() {
        for len in [0, 1, 8, 12, 13, 16, 40] {
            let id: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            let want: String = id.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex_id(&id), want, "{len} bytes");
        }
    }

    /// Spans of one trace share one copy of its id; a span of the next
    /// trace gets its own.
    #[test]
    fn consecutive_spans_of_a_trace_share_its_id() {
        let mut shared = Shared::default();
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let first = shared.trace(&a);
        assert!(Arc::ptr_eq(&first, &shared.trace(&a)));
        assert_eq!(&*shared.trace(&b), "02".repeat(16));
        assert_eq!(&*first, "01".repeat(16));
    }
}
