//! OTLP JSON: the Collector file exporter's lines (one `TracesData` each) and
//! single `TracesData` documents. Each span is parsed on its own, so one bad span
//! costs only itself.

use super::attrs::{AnyValue, KeyValue};
use super::dialect::{self, Base};
use super::mapping::Mappings;
use super::Problem;
use crate::model::{Origin, Span};
use compact_str::CompactString;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

mod fast;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TracesData<'a> {
    #[serde(borrow, default)]
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Resource<'a>>,
    #[serde(borrow, default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(PartialEq, Debug))]
struct Resource<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
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
#[cfg_attr(test, derive(PartialEq, Debug))]
struct Scope {
    #[serde(default)]
    name: String,
}

/// The same document with spans parsed in one go: the fast path, taken when
/// the whole record is good (nearly always).
#[derive(Deserialize)]
#[cfg_attr(test, derive(PartialEq, Debug))]
#[serde(rename_all = "camelCase")]
struct FastTracesData<'a> {
    #[serde(borrow, default)]
    resource_spans: Vec<FastResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(PartialEq, Debug))]
#[serde(rename_all = "camelCase")]
struct FastResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Resource<'a>>,
    #[serde(borrow, default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<FastScopeSpans<'a>>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(PartialEq, Debug))]
struct FastScopeSpans<'a> {
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(borrow, default)]
    spans: Vec<OtlpSpan<'a>>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(PartialEq, Debug))]
#[serde(rename_all = "camelCase")]
pub struct OtlpSpan<'a> {
    #[serde(borrow, default)]
    pub trace_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub span_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub parent_span_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(default, deserialize_with = "nanos")]
    pub start_time_unix_nano: u64,
    #[serde(default, deserialize_with = "nanos")]
    pub end_time_unix_nano: u64,
    #[serde(borrow, default)]
    pub attributes: Vec<KeyValue<'a>>,
    #[serde(borrow, default)]
    pub status: Status<'a>,
    #[serde(borrow, default)]
    pub events: Vec<Event<'a>>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(PartialEq, Debug))]
pub struct Status<'a> {
    #[serde(default, deserialize_with = "status_code")]
    pub code: i64,
    #[serde(borrow, default)]
    pub message: Cow<'a, str>,
}

/// A span event; only `exception` events are read (their message).
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(PartialEq, Debug))]
pub struct Event<'a> {
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub attributes: Vec<KeyValue<'a>>,
}

impl OtlpSpan<'_> {
    /// The message of the span's first exception event (OTel exception events).
    pub fn exception(&self) -> Option<String> {
        let e = self.events.iter().find(|e| e.name == "exception")?;
        e.attributes
            .iter()
            .find(|k| k.key == "exception.message")
            .and_then(|k| k.value.as_str().map(String::from))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AnyValue<'a> {
    /// A hand-written visitor: this runs for every attribute of every span, and
    /// a derived struct of options (or an untagged enum) costs several times more.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<AnyValue<'a>>);
        impl<'de: 'a, 'a> de::Visitor<'de> for V<'a> {
            type Value = AnyValue<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an OTLP AnyValue object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<AnyValue<'a>, A::Error> {
                let mut out = AnyValue::Empty;
                while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    out = match &*key {
                        "stringValue" | "bytesValue" => {
                            AnyValue::Str(m.next_value::<BorrowedText>()?.0)
                        }
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
        struct Values<'a> {
            #[serde(borrow, default)]
            values: Vec<AnyValue<'a>>,
        }
        #[derive(Deserialize)]
        struct KvValues<'a> {
            #[serde(borrow, default)]
            values: Vec<KeyValue<'a>>,
        }
        /// A `Cow` that borrows: serde's own `Cow` impl always copies.
        struct BorrowedText<'a>(Cow<'a, str>);
        impl<'de: 'a, 'a> Deserialize<'de> for BorrowedText<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct T<'a>(std::marker::PhantomData<&'a str>);
                impl<'de: 'a, 'a> de::Visitor<'de> for T<'a> {
                    type Value = Cow<'a, str>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_borrowed_str<E: de::Error>(
                        self,
                        v: &'de str,
                    ) -> Result<Self::Value, E> {
                        Ok(Cow::Borrowed(v))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                        Ok(Cow::Owned(v.to_owned()))
                    }
                    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                        Ok(Cow::Owned(v))
                    }
                }
                d.deserialize_str(T(std::marker::PhantomData))
                    .map(BorrowedText)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
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
    plain: bool,
    recent: &mut Recent,
    parsed: &mut super::Parsed,
) {
    let (out, problems, seen) = parsed;
    let text = super::text_of(text, origin, problems);
    let text = &*text;
    let (spans_before, problems_before, seen_before) = (out.len(), problems.len(), seen.mark());
    let mut streamed = Streamed::new(Each::new(origin, maps, plain, seen, recent), out, problems);
    if fast::each_span(text, &mut streamed).is_some() {
        return;
    }
    // Not plain, or in an unusual order: what was handed on is forgotten and
    // the record read whole, its spans handed on the same way.
    out.truncate(spans_before);
    problems.truncate(problems_before);
    seen.reset(seen_before);
    let fast = fast::traces_data(text).or_else(|| serde_json::from_str(text).ok());
    if let Some(doc) = fast {
        let mut streamed =
            Streamed::new(Each::new(origin, maps, plain, seen, recent), out, problems);
        for rs in doc.resource_spans {
            let resource = rs.resource.unwrap_or_default().attributes;
            for ss in rs.scope_spans {
                fast::Visit::scope(&mut streamed, ss.scope.as_ref().map(|s| s.name.as_str()));
                for mut s in ss.spans {
                    fast::Visit::span(&mut streamed, &mut s, &resource);
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
    let mut each = Each::new(origin, maps, plain, seen, recent);
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
                        file: origin.file,
                        line: origin.line + lines,
                    }
                };
                match serde_json::from_str::<OtlpSpan>(raw.get()) {
                    Err(e) => problems.push(Problem::at(&here(), format!("span skipped: {e}"))),
                    Ok(mut s) => match each.span(&mut s, &scope, &resource) {
                        Ok(span) => out.push(span),
                        Err(reason) => {
                            problems.push(Problem::at(&here(), format!("span skipped: {reason}")))
                        }
                    },
                }
            }
        }
    }
}

/// Spans as the fast reader hands them on, made into the model's spans.
struct Streamed<'r> {
    each: Each<'r>,
    /// the scope of the spans being read
    scope: Option<Arc<str>>,
    out: &'r mut super::Spans,
    problems: &'r mut Vec<Problem>,
}

impl<'r> Streamed<'r> {
    fn new(each: Each<'r>, out: &'r mut super::Spans, problems: &'r mut Vec<Problem>) -> Self {
        Streamed {
            each,
            scope: None,
            out,
            problems,
        }
    }
}

impl<'a> fast::Visit<'a> for Streamed<'_> {
    fn scope(&mut self, name: Option<&str>) {
        self.scope = self.each.shared.scope(name);
    }

    fn span(&mut self, span: &mut OtlpSpan<'a>, resource: &[KeyValue<'a>]) {
        let made = self.each.span(span, &self.scope, resource);
        hand_on(made, self.each.origin, self.out, self.problems);
    }
}

/// A span made goes to `out`; one that could not be, to `problems`.
fn hand_on(
    made: Result<Box<Span>, String>,
    origin: &Origin,
    out: &mut super::Spans,
    problems: &mut Vec<Problem>,
) {
    match made {
        Ok(span) => out.push(span),
        Err(reason) => problems.push(Problem::at(origin, format!("span skipped: {reason}"))),
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

/// Texts many spans repeat, made once: the trace id (spans come mostly
/// in runs of one trace), span names (a service's handful of operations) and
/// the scope's name. Each was an allocation per span, and a free on the
/// thread that drops it. Kept across the records one thread reads in a row,
/// not for one record only: an export of one span a line repeats them line
/// after line.
#[derive(Default)]
pub struct Recent {
    trace: Option<Arc<str>>,
    names: rustc_hash::FxHashSet<Arc<str>>,
    scope: Option<Arc<str>>,
}

/// Span names kept at most: a service whose names never repeat (an id in
/// each) costs a bounded set, emptied when full.
const NAMES_KEPT: usize = 1024;

impl Recent {
    fn trace(&mut self, id: &str) -> Arc<str> {
        match &self.trace {
            Some(t) if **t == *id => t.clone(),
            _ => self.trace.insert(Arc::from(id)).clone(),
        }
    }

    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return n.clone();
        }
        if self.names.len() >= NAMES_KEPT {
            self.names.clear();
        }
        let made: Arc<str> = Arc::from(name);
        self.names.insert(made.clone());
        made
    }

    fn scope(&mut self, name: Option<&str>) -> Option<Arc<str>> {
        let name = name.filter(|n| !n.is_empty())?;
        match &self.scope {
            Some(s) if **s == *name => Some(s.clone()),
            _ => dialect::scope_name(name).inspect(|s| self.scope = Some(s.clone())),
        }
    }
}

/// What every span of one record is made with.
struct Each<'r> {
    origin: &'r Origin,
    maps: &'r Mappings,
    /// every span made as an ordinary one: ids, times and status only
    plain: bool,
    seen: &'r mut super::Seen,
    shared: &'r mut Recent,
}

impl<'r> Each<'r> {
    fn new(
        origin: &'r Origin,
        maps: &'r Mappings,
        plain: bool,
        seen: &'r mut super::Seen,
        shared: &'r mut Recent,
    ) -> Self {
        Each {
            origin,
            maps,
            plain,
            seen,
            shared,
        }
    }

    fn span(
        &mut self,
        s: &mut OtlpSpan,
        scope: &Option<Arc<str>>,
        resource: &[KeyValue],
    ) -> Result<Box<Span>, String> {
        // Nine spans in ten of a service are ordinary (HTTP, database): they
        // keep ids, times and status only, so nothing else of them is made.
        let made =
            if self.plain || self.maps.is_empty() && dialect::ordinary(&s.attributes, &s.name) {
                plain(s, self.origin, self.shared)
            } else {
                // The scope is cloned only here: for an ordinary span its clone and
                // drop were two locked operations, each waiting for every store before it.
                let scope = scope.clone();
                normalise(s, scope, resource, self.origin, self.maps, self.shared).map(Box::new)
            };
        // a skipped span is a problem, not a span of its dialect; a reading
        // of times only counts none (as every reader's, see `Reader::times_only`)
        if made.is_ok() && !self.plain {
            self.seen.spans(&s.attributes, self.maps);
        }
        made
    }
}

/// The ids every span needs, or why it is skipped.
fn check_ids(s: &OtlpSpan) -> Result<(), String> {
    if s.trace_id.is_empty() {
        return Err("missing traceId".into());
    }
    if s.span_id.is_empty() {
        return Err("missing spanId".into());
    }
    Ok(())
}

/// What every span keeps (its ids, name, times and status), or why it is
/// skipped.
fn placed(s: &mut OtlpSpan, shared: &mut Recent) -> Result<dialect::Plain, String> {
    check_ids(s)?;
    Ok(dialect::Plain {
        trace_id: shared.trace(&s.trace_id),
        span_id: CompactString::new(&s.span_id),
        parent_id: Some(CompactString::new(&s.parent_span_id)),
        name: shared.name(&s.name),
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano,
        failed: s.status.code == 2,
    })
}

/// An ordinary span ([`dialect::ordinary`]): what [`normalise`] would make
/// of it, without its status message, exception or scope, which it drops.
fn plain(s: &mut OtlpSpan, origin: &Origin, shared: &mut Recent) -> Result<Box<Span>, String> {
    Ok(placed(s, shared)?.boxed(origin))
}

fn normalise<'a>(
    s: &mut OtlpSpan<'a>,
    scope: Option<Arc<str>>,
    resource: &[KeyValue],
    origin: &Origin,
    maps: &Mappings,
    shared: &mut Recent,
) -> Result<Span, String> {
    let base = Base {
        plain: placed(s, shared)?,
        scope,
        exception: s.exception(),
        status_message: (!s.status.message.is_empty())
            .then(|| std::mem::take(&mut s.status.message).into_owned()),
        ..Base::default()
    };
    dialect::normalise(base, resource, &s.attributes, origin, maps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    /// Texts borrow from the record where they can; an escaped one is decoded.
    #[test]
    fn attribute_texts_with_and_without_escapes_read_as_written() {
        let line = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"t1","spanId":"s\u0031","name":"chat \"x\"","attributes":[{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"gen_ai.prompt","value":{"stringValue":"line\none \u00e9"}},{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a\tb"}]}}}]}]}]}]}"#;
        let doc: FastTracesData = serde_json::from_slice(line).unwrap();
        let span = &doc.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.span_id, "s1");
        assert_eq!(span.name, "chat \"x\"");
        let a = &span.attributes;
        assert!(matches!(
            &a[0].value,
            AnyValue::Str(Cow::Borrowed("gpt-4o"))
        ));
        assert_eq!(a[1].value.as_str(), Some("line\none é"));
        assert_eq!(
            a[2].value,
            AnyValue::Array(vec![AnyValue::Str("a\tb".into())])
        );
    }

    /// An ordinary span (no dialect attribute, no operation name) is made
    /// on its short path exactly as the dialect reader makes it: its status
    /// message, exception and scope dropped, an empty parent a root. A span
    /// of a dialect does not take the short path.
    #[test]
    fn an_ordinary_span_is_made_as_the_dialect_reader_makes_it() {
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"scope":{"name":"lib"},"spans":[
            {"traceId":"t","spanId":"a","parentSpanId":"","name":"GET /x","startTimeUnixNano":"1","endTimeUnixNano":"2",
             "status":{"code":2,"message":"boom"},
             "events":[{"name":"exception","attributes":[{"key":"exception.message","value":{"stringValue":"late"}}]}],
             "attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}}]},
            {"traceId":"t","spanId":"b","parentSpanId":"a","name":"SELECT x","status":{"code":1},
             "attributes":[{"key":"db.system.name","value":{"stringValue":"pg"}}]},
            {"traceId":"t","spanId":"c","parentSpanId":"a","name":"chat gpt-4o"},
            {"traceId":"t","spanId":"d","parentSpanId":"a","name":"GET /y",
             "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}}]}]}]}]}"#;
        let mut doc: FastTracesData = serde_json::from_str(line).unwrap();
        let origin = Origin {
            file: "x.jsonl".into(),
            line: 1,
        };
        let maps = Mappings::default();
        let scope = Some(Arc::<str>::from("lib"));
        let spans = &mut doc.resource_spans[0].scope_spans[0].spans;
        let mut short = Vec::new();
        for s in spans.iter_mut() {
            let is_ordinary = dialect::ordinary(&s.attributes, &s.name);
            let by_dialect = normalise(
                s,
                scope.clone(),
                &[],
                &origin,
                &maps,
                &mut Recent::default(),
            );
            if is_ordinary {
                let s2 = &mut OtlpSpan {
                    name: Cow::Owned(by_dialect.as_ref().unwrap().name.to_string()),
                    ..std::mem::take(s)
                };
                let by_plain = plain(s2, &origin, &mut Recent::default());
                assert_eq!(format!("{by_plain:?}"), format!("{by_dialect:?}"));
                short.push(by_plain.unwrap().span_id.to_string());
            }
        }
        assert_eq!(short, ["a", "b"], "only the HTTP and database spans");
    }

    /// A reading for times only (a relative window's first pass) makes the
    /// same spans with the same times as a whole reading, and skips the same.
    #[test]
    fn a_times_only_reading_gives_every_span_its_times() {
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"t","spanId":"a","name":"invoke_agent x","startTimeUnixNano":"1","endTimeUnixNano":"9",
             "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"invoke_agent"}}]},
            {"traceId":"t","spanId":"b","parentSpanId":"a","name":"chat m","startTimeUnixNano":"2","endTimeUnixNano":"7",
             "attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"5"}}]},
            {"traceId":"t","spanId":"c","parentSpanId":"a","name":"GET /y","startTimeUnixNano":"3","endTimeUnixNano":"4"},
            {"spanId":"d","name":"no trace","startTimeUnixNano":"5","endTimeUnixNano":"99"}]}]}]}"#;
        let origin = Origin {
            file: "x.jsonl".into(),
            line: 1,
        };
        let read = |plain: bool| {
            let mut parsed = Default::default();
            let maps = Mappings::default();
            let recent = &mut Recent::default();
            parse_traces_data(line.as_bytes(), &origin, &maps, plain, recent, &mut parsed);
            let (out, problems, _) = parsed;
            let times: Vec<_> = out
                .iter()
                .map(|s| (s.span_id.to_string(), s.start_ns, s.end_ns, s.kind))
                .collect();
            (times, problems.len())
        };
        let ((whole, skipped), (times, skipped_too)) = (read(false), read(true));
        assert_eq!(skipped, 1, "the span without a trace id");
        assert_eq!(skipped_too, skipped);
        let ids_and_times = |v: &[(String, u64, u64, Kind)]| {
            v.iter()
                .map(|t| (t.0.clone(), t.1, t.2))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids_and_times(&times), ids_and_times(&whole));
        assert_eq!(whole[1].3, Kind::Llm, "the whole reading reads the call");
        assert!(
            times.iter().all(|t| t.3 == Kind::Other),
            "times only: {times:?}"
        );
    }

    /// Records read in a row on one thread share their trace id, span names
    /// and scope name (one span a line repeats them), and read as they would
    /// alone; a service whose names never repeat keeps a bounded set.
    #[test]
    fn records_read_in_a_row_share_their_texts_and_read_as_alone() {
        let line = |trace: &str, span: &str, name: &str| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"scope":{{"name":"lib"}},"spans":[{{"traceId":"{trace}","spanId":"{span}","name":"{name}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#
            )
        };
        let lines = [
            line("t1", "a", "GET /x"),
            line("t1", "b", "GET /x"),
            line("t2", "c", "SELECT"),
        ];
        let origin = Origin {
            file: "x.jsonl".into(),
            line: 1,
        };
        let maps = Mappings::default();
        let (recent, mut parsed) = (&mut Recent::default(), Default::default());
        for l in &lines {
            parse_traces_data(l.as_bytes(), &origin, &maps, false, recent, &mut parsed);
        }
        let (spans, problems, _) = parsed;
        assert!(problems.is_empty(), "{problems:?}");
        assert!(Arc::ptr_eq(&spans[0].trace_id, &spans[1].trace_id));
        assert!(Arc::ptr_eq(&spans[0].name, &spans[1].name));
        assert_eq!((&*spans[2].trace_id, &*spans[2].name), ("t2", "SELECT"));
        for (l, together) in lines.iter().zip(&spans) {
            let mut alone = Default::default();
            parse_traces_data(
                l.as_bytes(),
                &origin,
                &maps,
                false,
                &mut Recent::default(),
                &mut alone,
            );
            assert_eq!(format!("{:?}", alone.0[0]), format!("{together:?}"));
        }
        for i in 0..3 * NAMES_KEPT {
            recent.name(&format!("GET /items/{i}"));
        }
        assert!(recent.names.len() <= NAMES_KEPT);
    }

    /// A record the fast reader gives up on after handing spans on is read
    /// again whole: each span and each problem comes out once, and a span
    /// skipped (no trace id) is no span of its dialect.
    #[test]
    fn a_record_declined_after_spans_were_handed_on_counts_each_span_once() {
        let spans = r#"{"traceId":"t","spanId":"a","name":"chat","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"my.token_total","value":{"intValue":"3"}}]},{"spanId":"b","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}}]}"#;
        // an escaped field name after the spans: the fast reader declines it
        let line = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}],"sch\u0065maUrl":""}}]}}"#
        );
        let origin = Origin {
            file: "x.jsonl".into(),
            line: 1,
        };
        let mut parsed = Default::default();
        let maps = Mappings::default();
        let recent = &mut Recent::default();
        parse_traces_data(line.as_bytes(), &origin, &maps, false, recent, &mut parsed);
        let (out, problems, seen) = parsed;
        let ids: Vec<_> = out.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (dialects, unknown) = seen.mark();
        assert_eq!(
            dialects[0], 1,
            "one span of the first dialect: {dialects:?}"
        );
        assert_eq!(dialects[1..].iter().sum::<u64>(), 0, "{dialects:?}");
        assert_eq!(unknown, 1, "one unknown usage name");
    }
}
