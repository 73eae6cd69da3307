//! A hand-written reader of OTLP JSON in the shape exporters write it: the
//! usual field names, strings and numbers where OTLP puts them.
//!
//! serde_json's derived readers spent about a quarter of a scan dispatching on
//! field names and visitors, span after span; this reader walks the bytes once,
//! finds string ends sixteen bytes at a time and borrows every text without
//! escapes. It hands each span on as it is read ([`each_span`]), or gives the
//! whole document ([`traces_data`]) exactly as serde would, or `None` whenever
//! anything is unusual (a null, a repeated field, an escaped field name, a
//! number in an odd form, deep nesting): the serde readers then decide, with
//! their located errors, so a bad record is reported as before. The tests check
//! it against serde on every OTLP fixture and on thousands of mangled copies.

use super::{Event, FastResourceSpans, FastScopeSpans, FastTracesData, OtlpSpan, Resource, Scope};
use super::{KeyValue, Status};
use crate::ingest::attrs::AnyValue;
use std::borrow::Cow;

/// Nesting deeper than this is left to serde (which has a limit of its own).
const MAX_DEPTH: u32 = 100;

/// The document, as serde's `FastTracesData` would read it; `None` when it is
/// anything but plain.
pub fn traces_data(text: &str) -> Option<FastTracesData<'_>> {
    let mut resource_spans = Vec::new();
    document(text, |p| {
        resource_spans = p.array(Parser::resource_spans)?;
        Some(())
    })?;
    Some(FastTracesData { resource_spans })
}

/// A `TracesData` document: its `resourceSpans` (at most once) read by
/// `resource_spans`, any other field passed over, nothing after it.
fn document<'a>(
    text: &'a str,
    mut resource_spans: impl FnMut(&mut Parser<'a>) -> Option<()>,
) -> Option<()> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let mut read = false;
    p.object(|p, key| match key {
        "resourceSpans" if !read => {
            read = true;
            resource_spans(p)
        }
        // a repeated field is serde's error
        "resourceSpans" => None,
        _ => p.skip(),
    })?;
    p.ws();
    (p.i == p.b.len()).then_some(())
}

/// What [`each_span`] hands on as it reads.
pub trait Visit<'a> {
    /// The spans that follow are this scope's (`None`: the record names none).
    fn scope(&mut self, name: Option<&str>);
    /// One span, with its resource's attributes. The span is lent: its
    /// attributes' room is used again for the next one.
    fn span(&mut self, span: &mut OtlpSpan<'a>, resource: &[KeyValue<'a>]);
}

/// The document's spans, each handed to `visit` as soon as it is read: no
/// tree of the whole record is built. Building it (a vector of spans grown
/// and moved, an attribute vector per span, all dropped again) was a tenth of
/// a reading's instructions. `None` when the record is anything but plain, or
/// names a resource after its spans or a scope after its spans (what comes
/// first would have been handed on without it): the caller then forgets
/// what it was handed and reads the record another way.
pub fn each_span<'a>(text: &'a str, visit: &mut impl Visit<'a>) -> Option<()> {
    let mut span = OtlpSpan::default();
    document(text, |p| {
        p.each(|p| p.stream_resource_spans(&mut span, visit))
    })
}

/// Fill a field once: a repeated field is serde's error, so not ours to read.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A JSON string: where its text starts and ends, and whether it holds
    /// escapes. Asked for every name and text of a record (a million times
    /// in 60 MB), so the usual case, a quote right here and the closing
    /// quote before any backslash, is read inline: as a call, saving and
    /// restoring registers and skipping whitespace that is not there cost
    /// more than finding the end.
    #[inline(always)]
    fn raw_string(&mut self) -> Option<(usize, usize, bool)> {
        if self.b.get(self.i) != Some(&b'"') {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
        }
        let start = self.i + 1;
        let at = start + stop(&self.b[start..])?;
        if self.b[at] == b'"' {
            self.i = at + 1;
            return Some((start, at, false));
        }
        self.rest_of_string(start, at)
    }

    /// The rest of a string from its first `\` or control character at `at`.
    #[inline(never)]
    fn rest_of_string(&mut self, start: usize, mut at: usize) -> Option<(usize, usize, bool)> {
        loop {
            match self.b[at] {
                b'"' => {
                    self.i = at + 1;
                    return Some((start, at, true));
                }
                b'\\' => {
                    at += 2;
                    if at > self.b.len() {
                        return None;
                    }
                }
                _ => return None, // a raw control character
            }
            at += stop(&self.b[at..])?;
        }
    }

    /// A text, borrowed unless it holds escapes (decoded by serde_json, which
    /// also judges a bad escape). Inline, like [`Parser::raw_string`]: a call
    /// per text cost more than borrowing it.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let (start, end, escaped) = self.raw_string()?;
        if !escaped {
            return Some(Cow::Borrowed(self.between_quotes(start, end)));
        }
        self.decoded(start, end)
    }

    /// The text from just after one quote to just before another. Checking
    /// that both ends are character boundaries (as `&s[start..end]` does)
    /// was 3% of reading an ordinary span, and a quote is one byte.
    #[inline(always)]
    fn between_quotes(&self, start: usize, end: usize) -> &'a str {
        debug_assert!(self.b[start - 1] == b'"' && self.b[end] == b'"');
        // SAFETY: `start - 1` and `end` hold `"` (an ASCII byte, so neither
        // inside a character), `start <= end < len`: both are boundaries.
        unsafe { self.s.get_unchecked(start..end) }
    }

    /// The text between `start` and `end`, which holds escapes, decoded.
    #[inline(never)]
    fn decoded(&self, start: usize, end: usize) -> Option<Cow<'a, str>> {
        unescape(&self.s[start..end])
            .or_else(|| serde_json::from_str(&self.s[start - 1..=end]).ok())
            .map(Cow::Owned)
    }

    /// A field name; one with escapes is left to serde.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a str> {
        let (start, end, escaped) = self.raw_string()?;
        (!escaped).then(|| self.between_quotes(start, end))
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// `{"name": value, …}`; `field` reads each value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.enter()?;
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                let key = self.key()?;
                self.eat(b':')?;
                field(self, key)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// `[item, …]`.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut out = Vec::new();
        self.each(|p| {
            out.push(item(p)?);
            Some(())
        })?;
        Some(out)
    }

    /// `[item, …]`, each item read by `item` and kept where it wants.
    fn each(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.enter()?;
        if self.peek()? == b']' {
            self.i += 1;
        } else {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// A JSON number's text, checked against JSON's grammar.
    fn number(&mut self) -> Option<&'a str> {
        self.ws();
        let (b, start) = (self.b, self.i);
        // The usual number, one digit (a span's kind, a status code), ended:
        // through the grammar below it cost a hundred instructions a span.
        if let (Some(b'0'..=b'9'), Some(b',' | b'}' | b']')) = (b.get(start), b.get(start + 1)) {
            self.i = start + 1;
            return Some(&self.s[start..start + 1]);
        }
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.i = i;
        Some(&self.s[start..i])
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.ws();
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|_| true),
            _ => self.literal(b"false").map(|_| false),
        }
    }

    /// Any value, read for nothing (an unknown field).
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let (start, end, escaped) = self.raw_string()?;
                if escaped {
                    // serde checks the escapes of a text it ignores, too
                    serde_json::from_str::<serde::de::IgnoredAny>(&self.s[start - 1..=end]).ok()?;
                }
                Some(())
            }
            b'{' => self.object(|p, _| p.skip()),
            b'[' => self.array(Parser::skip).map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// Nanoseconds: digits, as a number or a string (OTLP's 64-bit rule).
    fn nanos(&mut self) -> Option<u64> {
        if self.peek()? != b'"' {
            return self.number()?.parse().ok();
        }
        // The usual form, up to 19 digits and the closing quote, in one pass.
        if let Some((n, len)) = quoted_digits(&self.b[self.i + 1..]) {
            self.i += len + 2;
            return Some(n);
        }
        let (start, end, escaped) = self.raw_string()?;
        if escaped {
            return None;
        }
        digits_u64(&self.b[start..end]).or_else(|| self.s[start..end].parse().ok())
    }

    fn resource_spans(&mut self) -> Option<FastResourceSpans<'a>> {
        let (mut resource, mut scope_spans) = (None, None);
        self.object(|p, key| match key {
            "resource" => set(&mut resource, p.resource()?),
            "scopeSpans" | "instrumentationLibrarySpans" => {
                set(&mut scope_spans, p.array(Parser::scope_spans)?)
            }
            _ => p.skip(),
        })?;
        Some(FastResourceSpans {
            resource,
            scope_spans: scope_spans.unwrap_or_default(),
        })
    }

    fn resource(&mut self) -> Option<Resource<'a>> {
        let mut attributes = None;
        self.object(|p, key| match key {
            "attributes" => set(&mut attributes, p.attributes()?),
            _ => p.skip(),
        })?;
        Some(Resource {
            attributes: attributes.unwrap_or_default(),
        })
    }

    fn scope_spans(&mut self) -> Option<FastScopeSpans<'a>> {
        let (mut scope, mut spans) = (None, None);
        self.object(|p, key| match key {
            "scope" => set(&mut scope, p.scope()?),
            "spans" => set(&mut spans, p.array(Parser::span)?),
            _ => p.skip(),
        })?;
        Some(FastScopeSpans {
            scope,
            spans: spans.unwrap_or_default(),
        })
    }

    /// A `ResourceSpans`, its spans handed to `visit` (see [`each_span`]).
    fn stream_resource_spans(
        &mut self,
        span: &mut OtlpSpan<'a>,
        visit: &mut impl Visit<'a>,
    ) -> Option<()> {
        let mut resource: Option<Resource<'a>> = None;
        let mut spans_read = false;
        self.object(|p, key| match key {
            "resource" if resource.is_none() && !spans_read => {
                resource = Some(p.resource()?);
                Some(())
            }
            "scopeSpans" | "instrumentationLibrarySpans" if !spans_read => {
                spans_read = true;
                let attributes = resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
                p.each(|p| p.stream_scope_spans(attributes, span, visit))
            }
            "resource" | "scopeSpans" | "instrumentationLibrarySpans" => None,
            _ => p.skip(),
        })
    }

    /// A `ScopeSpans`, its spans handed to `visit` (see [`each_span`]).
    fn stream_scope_spans(
        &mut self,
        resource: &[KeyValue<'a>],
        span: &mut OtlpSpan<'a>,
        visit: &mut impl Visit<'a>,
    ) -> Option<()> {
        let (mut scope_read, mut spans_read) = (false, false);
        self.object(|p, key| match key {
            "scope" if !scope_read && !spans_read => {
                scope_read = true;
                visit.scope(Some(&p.scope_name()?));
                Some(())
            }
            "spans" if !spans_read => {
                spans_read = true;
                if !scope_read {
                    visit.scope(None);
                }
                p.each(|p| {
                    p.span_into(span)?;
                    visit.span(span, resource);
                    Some(())
                })
            }
            "scope" | "spans" => None,
            _ => p.skip(),
        })
    }

    /// A scope's name, as the streaming reader hands it on (borrowed).
    fn scope_name(&mut self) -> Option<Cow<'a, str>> {
        let mut name = None;
        self.object(|p, key| match key {
            "name" => set(&mut name, p.string()?),
            _ => p.skip(),
        })?;
        Some(name.unwrap_or_default())
    }

    fn scope(&mut self) -> Option<Scope> {
        let name = self.scope_name()?.into_owned();
        Some(Scope { name })
    }

    fn span(&mut self) -> Option<OtlpSpan<'a>> {
        let mut s = OtlpSpan::default();
        self.span_into(&mut s)?;
        Some(s)
    }

    /// A span read into `s`, whose attribute vector is emptied and reused.
    fn span_into(&mut self, s: &mut OtlpSpan<'a>) -> Option<()> {
        let mut attributes = std::mem::take(&mut s.attributes);
        attributes.clear();
        *s = OtlpSpan::default();
        let mut seen = 0u16;
        self.object(|p, key| {
            let field = match key {
                "traceId" => 0,
                "spanId" => 1,
                "parentSpanId" => 2,
                "name" => 3,
                "startTimeUnixNano" => 4,
                "endTimeUnixNano" => 5,
                "attributes" => 6,
                "status" => 7,
                "events" => 8,
                _ => return p.skip(),
            };
            if seen & (1 << field) != 0 {
                return None;
            }
            seen |= 1 << field;
            match field {
                0 => s.trace_id = p.string()?,
                1 => s.span_id = p.string()?,
                2 => s.parent_span_id = p.string()?,
                3 => s.name = p.string()?,
                4 => s.start_time_unix_nano = p.nanos()?,
                5 => s.end_time_unix_nano = p.nanos()?,
                6 => p.each(|p| p.key_value_into(&mut attributes))?,
                7 => s.status = p.status()?,
                _ => s.events = p.array(Parser::event)?,
            }
            Some(())
        })?;
        s.attributes = attributes;
        Some(())
    }

    fn status(&mut self) -> Option<Status<'a>> {
        let (mut code, mut message) = (None, None);
        self.object(|p, key| match key {
            "code" => set(&mut code, p.status_code()?),
            "message" => set(&mut message, p.string()?),
            _ => p.skip(),
        })?;
        Some(Status {
            code: code.unwrap_or(0),
            message: message.unwrap_or_default(),
        })
    }

    /// A status code as a number or as its name (`super::status_code`).
    fn status_code(&mut self) -> Option<i64> {
        if self.peek()? != b'"' {
            return self.number()?.parse().ok();
        }
        Some(match &*self.string()? {
            "STATUS_CODE_ERROR" | "ERROR" | "2" => 2,
            "STATUS_CODE_OK" | "OK" | "1" => 1,
            _ => 0,
        })
    }

    fn event(&mut self) -> Option<Event<'a>> {
        let (mut name, mut attributes) = (None, None);
        self.object(|p, key| match key {
            "name" => set(&mut name, p.string()?),
            "attributes" => set(&mut attributes, p.attributes()?),
            _ => p.skip(),
        })?;
        Some(Event {
            name: name.unwrap_or_default(),
            attributes: attributes.unwrap_or_default(),
        })
    }

    /// `[attribute, …]`, read with [`Parser::key_value_into`].
    fn attributes(&mut self) -> Option<Vec<KeyValue<'a>>> {
        let mut out = Vec::new();
        self.each(|p| p.key_value_into(&mut out))?;
        Some(out)
    }

    /// An attribute, pushed onto `out`. Most are written in one compact form,
    /// read here by comparing its fixed bytes; any other form (spacing, field
    /// order, other value types, a failure) is read again from its start by
    /// the general object reader, which decides. A third of a scan's parsing
    /// went to reading these field by field. Pushed, not returned: an
    /// attribute returned (56 bytes) was written to the stack in words and
    /// read back in wider loads twice on its way into the vector (stalls that
    /// were a fifth of the span parser's samples); pushed, it is read back
    /// once, in `Vec::push`. Writing it into the vector's spare room field by
    /// field did not remove that one: the compiler still built it on the stack.
    #[inline(always)]
    fn key_value_into(&mut self, out: &mut Vec<KeyValue<'a>>) -> Option<()> {
        let start = self.i;
        if self.compact_key_value_into(out).is_some() {
            return Some(());
        }
        self.i = start;
        out.push(self.any_key_value()?);
        Some(())
    }

    /// `{"key":"…","value":{"stringValue":"…"}}`, or with `intValue`, pushed
    /// onto `out`; nothing is pushed if it is not in this form.
    #[inline(always)]
    fn compact_key_value_into(&mut self, out: &mut Vec<KeyValue<'a>>) -> Option<()> {
        // the general reader would enter two objects
        if self.depth + 2 > MAX_DEPTH {
            return None;
        }
        self.ws();
        self.bytes(b"{\"key\":")?;
        let key = self.string()?;
        self.bytes(b",\"value\":{\"")?;
        let value = if self.bytes(b"stringValue\":").is_some() {
            AnyValue::Str(self.string()?)
        } else if self.bytes(b"intValue\":").is_some() {
            AnyValue::Int(self.int_text()?)
        } else {
            return None;
        };
        self.bytes(b"}}")?;
        out.push(KeyValue { key, value });
        Some(())
    }

    /// These bytes next (no whitespace before them), passed over.
    fn bytes(&mut self, want: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(want)
            .then(|| self.i += want.len())
    }

    #[inline(never)]
    fn any_key_value(&mut self) -> Option<KeyValue<'a>> {
        let (mut key, mut value) = (None, None);
        self.object(|p, k| match k {
            "key" => set(&mut key, p.string()?),
            "value" => set(&mut value, p.any_value()?),
            _ => p.skip(),
        })?;
        Some(KeyValue {
            key: key?,
            value: value.unwrap_or_default(),
        })
    }

    /// An `AnyValue` object; as in serde's reader, the last value field wins.
    fn any_value(&mut self) -> Option<AnyValue<'a>> {
        let mut out = AnyValue::Empty;
        self.object(|p, key| {
            out = match key {
                "stringValue" | "bytesValue" => AnyValue::Str(p.string()?),
                "intValue" => AnyValue::Int(p.int_text()?),
                "doubleValue" => AnyValue::Double(p.double_text()?),
                "boolValue" => AnyValue::Bool(p.boolean()?),
                "arrayValue" => AnyValue::Array(p.values(|p| p.array(Parser::any_value))?),
                "kvlistValue" => AnyValue::KvList(
                    p.values(Parser::attributes)?
                        .into_iter()
                        .map(|kv| (kv.key, kv.value))
                        .collect(),
                ),
                _ => return p.skip(),
            };
            Some(())
        })?;
        Some(out)
    }

    /// `{"values": [item, …]}` of an array or key-value list; `list` reads the array.
    fn values<T>(&mut self, mut list: impl FnMut(&mut Self) -> Option<Vec<T>>) -> Option<Vec<T>> {
        let mut values = None;
        self.object(|p, key| match key {
            "values" => set(&mut values, list(p)?),
            _ => p.skip(),
        })?;
        Some(values.unwrap_or_default())
    }

    /// An integer as a number or a string holding one (OTLP's 64-bit rule).
    fn int_text(&mut self) -> Option<i64> {
        if self.peek()? != b'"' {
            return self.number()?.parse().ok();
        }
        self.string()?.trim().parse().ok()
    }

    /// A double as a number or a string (`"NaN"`, `"Infinity"`).
    fn double_text(&mut self) -> Option<f64> {
        if self.peek()? != b'"' {
            return self.number()?.parse().ok();
        }
        self.string()?.parse().ok()
    }
}

/// A JSON string's content with its escapes decoded: runs between
/// backslashes copied whole into a string its final size. serde_json's
/// decoding grew its buffer step by step for each long text (an LLM call's
/// messages: 6% of a reading's instructions). Anything it would not accept
/// (a bad escape, a lone surrogate) is `None`, left to serde to decide.
fn unescape(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', &b[i..]) {
        // a backslash is ASCII: `i + k` is a character boundary
        out.push_str(&raw[i..i + k]);
        i += k + 2;
        let c = match *b.get(i - 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let (c, len) = escaped_char(&b[i..])?;
                i += len;
                c
            }
            _ => return None,
        };
        out.push(c);
    }
    out.push_str(&raw[i..]);
    Some(out)
}

/// The character of a `\u` escape whose four hex digits start `b` (with the
/// low half's `\uXXXX` after a high surrogate), and the bytes it took.
fn escaped_char(b: &[u8]) -> Option<(char, usize)> {
    let hex4 = |b: Option<&[u8]>| {
        b?.iter()
            .try_fold(0u32, |n, &c| Some(n << 4 | char::from(c).to_digit(16)?))
    };
    let high = hex4(b.get(..4))?;
    if !(0xD800..0xDC00).contains(&high) {
        return char::from_u32(high).map(|c| (c, 4));
    }
    if b.get(4..6)? != b"\\u" {
        return None;
    }
    let low = hex4(b.get(6..10))?;
    if !(0xDC00..0xE000).contains(&low) {
        return None;
    }
    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)).map(|c| (c, 10))
}

/// Up to 19 decimal digits (never more than `u64::MAX`), as `str::parse`
/// reads them, without its check for overflow at every digit; anything else
/// is left to `parse`. They are read eight at a time: a span's two times,
/// digit by digit, were 7% of a reading's instructions.
fn digits_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let (head, words) = b.split_at(b.len() % 8);
    let mut n = 0u64;
    for &d in head {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    for w in words.chunks_exact(8) {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        n = n * 100_000_000 + eight_digits(w)?;
    }
    Some(n)
}

/// Eight ASCII digits (the first in the lowest byte) as their number; none if
/// any byte is not a digit. The multiply-and-shift is fast_float's
/// `parse_eight_digits_unrolled` (Lemire): pairs, then fours, then all eight.
fn eight_digits(w: u64) -> Option<u64> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // every byte 0x30..=0x3F, and still below 0x40 with 6 added: '0'..='9'
    let digits = w & HIGH == ZEROS && w.wrapping_add(0x0606_0606_0606_0606) & HIGH == ZEROS;
    if !digits {
        return None;
    }
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 0x000F_4240_0000_0064; // 100 + (1_000_000 << 32)
    const MUL2: u64 = 0x0000_2710_0000_0001; // 1 + (10_000 << 32)
    let v = w - ZEROS;
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let v = (v & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2))
        >> 32;
    Some(v)
}

/// A quoted number's digits and the closing quote at the start of `b`: the
/// number and how many digits; none for anything else (escapes, signs, more
/// than 19 digits), which the general reader then decides.
fn quoted_digits(b: &[u8]) -> Option<(u64, usize)> {
    if let Some(n) = nineteen_digits(b) {
        return Some((n, 19));
    }
    // the string scan, sixteen bytes at a time (a byte-by-byte search for
    // the quote cost three times the digits' reading)
    let len = stop(b)?;
    if b[len] != b'"' {
        return None;
    }
    digits_u64(&b[..len]).map(|n| (n, len))
}

/// The usual timestamp, nineteen digits and the closing quote (nanoseconds
/// since 1970 have had nineteen digits since 2001), read without looking for
/// the quote first: two times per span, the general path was a twentieth of a
/// reading's instructions. `None` for anything else.
fn nineteen_digits(b: &[u8]) -> Option<u64> {
    let b: &[u8; 20] = b.get(..20)?.try_into().ok()?;
    if b[19] != b'"' {
        return None;
    }
    let digit = |c: u8| Some(u64::from(c.wrapping_sub(b'0'))).filter(|&d| d < 10);
    let head = digit(b[0])? * 100 + digit(b[1])? * 10 + digit(b[2])?;
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    let high = head * 100_000_000 + eight_digits(word(3))?;
    Some(high * 100_000_000 + eight_digits(word(11))?)
}

/// Where the first `"`, `\` or control character of `b` is: sixteen bytes
/// at a time with SSE2 (part of every x86-64), the rest eight at a time.
/// Most texts of a span are shorter than sixteen bytes (keys, ids, names), so
/// one comparison usually finds the end: the eight-byte scan alone was 8% of
/// a scan.
#[inline(always)]
fn stop(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = b.get(i..i + 16) {
        if let Some(at) = stop16(chunk.try_into().expect("sixteen bytes")) {
            return Some(i + at);
        }
        i += 16;
    }
    stop8(&b[i..]).map(|at| i + at)
}

/// [`stop`] within sixteen bytes.
#[cfg(target_arch = "x86_64")]
fn stop16(chunk: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is in the x86-64 baseline, and the load reads the sixteen
    // bytes of `chunk` (unaligned loads are allowed).
    let mask = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // below 0x20 exactly where min(byte, 0x1f) is the byte
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// [`stop`] eight bytes at a time, as serde_json does.
fn stop8(b: &[u8]) -> Option<usize> {
    use crate::ingest::words::{below, equal};
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let hits = equal(w, b'"') | equal(w, b'\\') | below(w, 0x20);
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde's fast path reads from the same text.
    fn serde(text: &str) -> Option<FastTracesData<'_>> {
        serde_json::from_str(text).ok()
    }

    /// Each span as [`each_span`] hands it on, printed with its scope and
    /// resource (printed: NaN is not equal to itself).
    fn streamed(text: &str) -> Option<Vec<String>> {
        struct Collect(Option<String>, Vec<String>);
        impl<'a> Visit<'a> for Collect {
            fn scope(&mut self, name: Option<&str>) {
                self.0 = name.map(String::from);
            }
            fn span(&mut self, span: &mut OtlpSpan<'a>, resource: &[KeyValue<'a>]) {
                self.1.push(format!("{:?} {resource:?} {span:?}", self.0));
            }
        }
        let mut c = Collect(None, Vec::new());
        each_span(text, &mut c).map(|_| c.1)
    }

    /// The same, from the whole document.
    fn flattened(doc: &FastTracesData) -> Vec<String> {
        let mut out = Vec::new();
        for rs in &doc.resource_spans {
            let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().map(|s| s.name.clone());
                for span in &ss.spans {
                    out.push(format!("{scope:?} {resource:?} {span:?}"));
                }
            }
        }
        out
    }

    /// Where this reader gives a document, it is serde's; where it hands on
    /// spans one by one, they are the document's.
    fn agrees(text: &str) -> bool {
        let streamed = streamed(text);
        match traces_data(text) {
            None => {
                assert!(streamed.is_none(), "spans handed on from {text}");
                false
            }
            Some(ours) => {
                if let Some(spans) = streamed {
                    assert_eq!(spans, flattened(&ours), "spans handed on differ on {text}");
                }
                // Compared as printed: NaN is not equal to itself.
                let (ours, theirs) = (format!("{:?}", Some(ours)), format!("{:?}", serde(text)));
                assert_eq!(ours, theirs, "the readers differ on {text}");
                true
            }
        }
    }

    fn fixture_lines() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut lines = Vec::new();
        for dir in ["real-instr", "builtin"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                lines.extend(
                    text.lines()
                        .filter(|l| l.contains("\"resourceSpans\""))
                        .map(String::from),
                );
            }
        }
        assert!(lines.len() > 50, "the OTLP fixtures are missing");
        lines
    }

    /// Every record the real instrumentations wrote (and the built-in
    /// detectors' fixtures) is read by this reader, exactly as serde reads it.
    #[test]
    fn every_otlp_fixture_reads_as_serde_reads_it() {
        for line in fixture_lines() {
            assert!(agrees(&line), "the fast reader gave up on {line}");
            assert!(streamed(&line).is_some(), "spans not handed on from {line}");
        }
    }

    /// A resource or scope written after its spans cannot go with spans
    /// already handed on: such a record is declined (and read whole).
    #[test]
    fn a_resource_or_scope_after_its_spans_is_declined_and_read_whole() {
        let span = r#"{"traceId":"t","spanId":"s","name":"n"}"#;
        let resource =
            r#""resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]}"#;
        let usual = format!(
            r#"{{"resourceSpans":[{{{resource},"scopeSpans":[{{"scope":{{"name":"x"}},"spans":[{span}]}}]}}]}}"#
        );
        let resource_last = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"scope":{{"name":"x"}},"spans":[{span}]}}],{resource}}}]}}"#
        );
        let scope_last = format!(
            r#"{{"resourceSpans":[{{{resource},"scopeSpans":[{{"spans":[{span}],"scope":{{"name":"x"}}}}]}}]}}"#
        );
        assert_eq!(streamed(&usual).map(|s| s.len()), Some(1));
        for text in [resource_last, scope_last] {
            assert_eq!(streamed(&text), None, "{text}");
            let whole = traces_data(&text).expect("read whole");
            assert_eq!(Some(flattened(&whole)), streamed(&usual), "{text}");
        }
    }

    /// Mangled records (bytes replaced, dropped, doubled, JSON's punctuation
    /// and escapes put in) are either left to serde or read as serde reads them.
    #[test]
    fn mangled_records_are_left_to_serde_or_read_as_serde_reads_them() {
        let lines = fixture_lines();
        let mut rng = fastrand::Rng::with_seed(7);
        const BITS: &[&str] = &[
            "\"",
            "\\",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "0",
            "-",
            "1e5",
            ".5",
            "null",
            "true",
            "\\n",
            "\\u00e9",
            "\\ud800",
            "\u{e9}",
            "\t",
            "\u{1}",
            "\"key\"",
            "\"intValue\":",
            "\"code\":",
            "\"spanId\":\"x\",",
        ];
        let (mut read, mut left) = (0, 0);
        for _ in 0..4000 {
            let mut text = lines[rng.usize(..lines.len())].clone();
            for _ in 0..rng.usize(1..4) {
                let mut at = rng.usize(..=text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + rng.usize(0..4)).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let bit = if rng.bool() {
                    BITS[rng.usize(..BITS.len())]
                } else {
                    ""
                };
                text.replace_range(at..end, bit);
            }
            if agrees(&text) {
                read += 1;
            } else {
                left += 1;
            }
        }
        // Both kinds happen, so both branches were checked.
        assert!(read > 200 && left > 200, "read {read}, left {left}");
    }

    /// The value forms OTLP JSON allows (and a few it does not): read as
    /// serde reads them, and the usual ones read here, not left to serde.
    #[test]
    fn each_value_form_reads_as_serde_reads_it() {
        let span = |attr: &str, extra: &str| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"t","spanId":"a","startTimeUnixNano":"1","attributes":[{{"key":"k","value":{attr}}}]{extra}}}]}}]}}]}}"#
            )
        };
        let usual = [
            r#"{"stringValue":"plain"}"#,
            r#"{"stringValue":"esc \"q\" \n \u00e9 \ud83d\ude00 \/"}"#,
            r#"{"intValue":"200"}"#,
            r#"{"intValue":200}"#,
            r#"{"intValue":-5}"#,
            r#"{"intValue":" 7 "}"#,
            r#"{"doubleValue":0.1}"#,
            r#"{"doubleValue":-2.5e-3}"#,
            r#"{"doubleValue":"NaN"}"#,
            r#"{"doubleValue":"Infinity"}"#,
            r#"{"doubleValue":3}"#,
            r#"{"boolValue":true}"#,
            r#"{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}"#,
            r#"{"kvlistValue":{"values":[{"key":"x","value":{"boolValue":false}}]}}"#,
            r#"{}"#,
            r#"{"stringValue":"a","intValue":"3"}"#,
            r#"{"unknown":[1,{"a":null}],"stringValue":"b"}"#,
        ];
        for attr in usual {
            assert!(agrees(&span(attr, "")), "{attr} was left to serde");
        }
        let odd = [
            r#"{"intValue":2.5}"#,
            r#"{"intValue":9223372036854775808}"#,
            r#"{"intValue":"x"}"#,
            r#"{"intValue":null}"#,
            r#"{"doubleValue":1e400}"#,
            r#"{"doubleValue":01}"#,
            r#"{"stringValue":"\ud800"}"#,
            r#"{"stringValue":"\x"}"#,
            r#"{"stringValue":5}"#,
            r#"{"boolValue":"true"}"#,
            r#"{"arrayValue":{"values":null}}"#,
            r#"{"arrayValue":{"values":[],"values":[{"boolValue":true}]}}"#,
            r#"null"#,
        ];
        for attr in odd {
            agrees(&span(attr, ""));
        }
        let fields = [
            r#","status":{"code":2,"message":"boom"}"#,
            r#","status":{"code":"STATUS_CODE_ERROR"}"#,
            r#","status":{"code":"whatever"}"#,
            r#","endTimeUnixNano":5"#,
            r#","parentSpanId":"","kind":3,"flags":256,"links":[]"#,
            r#","events":[{"name":"exception","timeUnixNano":"9","attributes":[{"key":"exception.message","value":{"stringValue":"m"}}]}]"#,
        ];
        for extra in fields {
            assert!(agrees(&span(r#"{}"#, extra)), "{extra} was left to serde");
        }
        let odd_fields = [
            r#","status":{"code":2.0}"#,
            r#","status":{"code":-1}"#,
            r#","status":null"#,
            r#","endTimeUnixNano":-1"#,
            r#","endTimeUnixNano":1.5"#,
            r#","endTimeUnixNano":"+5""#,
            r#","endTimeUnixNano":"1e3""#,
            r#","endTimeUnixNano":18446744073709551616"#,
            r#","spanId":"again""#,
            r#","status":{"code":2,"code":1}"#,
            r#","events":[{"name":"a","name":"b"}]"#,
            r#","sp\u0061nId":"b""#,
        ];
        for extra in odd_fields {
            agrees(&span(r#"{}"#, extra));
        }
        for text in [
            "  \n{\"resourceSpans\" : [ ] }\r\n",
            "{\"resourceSpans\":[]} x",
            "{\"resourceSpans\":[],}",
            "{\"instrumentationLibrarySpans\":[]}",
            "{\"resourceSpans\":[{\"instrumentationLibrarySpans\":[{\"spans\":[{\"traceId\":\"t\",\"spanId\":\"s\"}]}]}]}",
        ] {
            agrees(text);
        }
    }

    /// Random doubles, printed the ways JSON writers print them, parse to the
    /// same bits.
    #[test]
    fn doubles_read_to_the_same_bits_as_serde() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..3000 {
            let x = f64::from_bits(rng.u64(..));
            if !x.is_finite() {
                continue;
            }
            for text in [
                format!("{x}"),
                format!("{x:e}"),
                format!("{:.17}", x / 1e300),
            ] {
                let line = format!(
                    r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"t","spanId":"a","attributes":[{{"key":"k","value":{{"doubleValue":{text}}}}}]}}]}}]}}]}}"#
                );
                agrees(&line);
            }
        }
    }

    /// Attributes in the compact form and in every near miss of it read as
    /// serde reads them (the near misses through the general reader).
    #[test]
    fn attributes_in_and_near_the_compact_form_read_as_serde_reads_them() {
        let attrs = [
            r#"{"key":"a","value":{"stringValue":"b"}}"#,
            r#"{"key":"a\u0041","value":{"stringValue":"line\nnext \"q\""}}"#,
            r#"{"key":"n","value":{"intValue":"200"}}"#,
            r#"{"key":"n","value":{"intValue":200}}"#,
            r#"{"key":"n","value":{"intValue":" 7 "}}"#,
            r#"{"key":"n","value":{"intValue":"x"}}"#,
            r#"{"key":"n","value":{"intValue":"99999999999999999999"}}"#,
            r#"{"key":"a","value":{"stringValue":"b","intValue":"1"}}"#,
            r#"{"key":"a","value":{"stringValue":"b"},"key":"c"}"#,
            r#"{"key":"a","value":{"stringValue":"b"}, "x":1}"#,
            r#"{"key":"a","value":{"stringValue":"b"} }"#,
            r#"{ "key":"a","value":{"stringValue":"b"}}"#,
            r#"{"value":{"stringValue":"b"},"key":"a"}"#,
            r#"{"key":"a","value":{"boolValue":true}}"#,
            r#"{"key":"a","value":{"stringValue":"b"#,
            r#"{"key":"a","value":{"stringValue":"raw	tab"}}"#,
            r#"{"key":1,"value":{"stringValue":"b"}}"#,
        ];
        let mut read = 0;
        for a in attrs {
            let line = format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"t","spanId":"s","attributes":[{a},{a}]}}]}}]}}]}}"#
            );
            read += usize::from(agrees(&line));
        }
        assert!(read >= 10, "most forms are read without serde ({read})");
    }

    /// Times read by the digit loop are what `parse` makes of them; the
    /// rest (signs, 20 digits, overflow) go to `parse`.
    #[test]
    fn times_read_as_parse_reads_them() {
        for t in [
            "0",
            "7",
            "1790812800002200000",
            "9999999999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "+5",
            "-5",
            "",
            " 5",
            "5 ",
            "00000000000000000001",
            "1e9",
        ] {
            let ours = digits_u64(t.as_bytes()).or_else(|| t.parse().ok());
            assert_eq!(ours, t.parse::<u64>().ok(), "{t:?}");
        }
    }

    /// Escapes decode as serde decodes them; what serde would turn away is
    /// left to it.
    #[test]
    fn escapes_decode_as_serde_decodes_them() {
        let texts = [
            r#"plain"#,
            r#"a\"b\\c\/d\be\ff\ng\rh\ti"#,
            r#"\u00e9\u4e2d\u0000\u001f"#,
            r#"\ud83d\ude00 grin"#,
            r#"\uD83D\uDE00"#,
            r#"lone \ud83d here"#,
            r#"lone \ude00 low"#,
            r#"high then \ud83d\u0041"#,
            r#"bad \x escape"#,
            r#"short \u12"#,
            r#"not hex \u12g4"#,
            r#"ends with \"#,
            r#"é multi-byte \n after"#,
            r#"\\"#,
        ];
        for t in texts {
            let serde: Option<String> = serde_json::from_str(&format!("\"{t}\"")).ok();
            // where ours gives up, serde decides
            if let Some(ours) = unescape(t) {
                assert_eq!(Some(ours), serde, "{t:?}");
            }
            let quoted = format!("\"{t}\"");
            let mut p = Parser {
                s: &quoted,
                b: quoted.as_bytes(),
                i: 0,
                depth: 0,
            };
            assert_eq!(p.string().map(Cow::into_owned), serde, "{t:?}");
        }
    }

    /// Digits read eight at a time give `parse`'s number at every length, and
    /// any byte that is not a digit, wherever it is, is turned away.
    #[test]
    fn digits_of_every_length_read_as_parse_reads_them() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let text = x.to_string();
            for len in 1..=text.len().min(19) {
                let t = &text[..len];
                assert_eq!(digits_u64(t.as_bytes()), t.parse().ok(), "{t:?}");
                let quoted = format!("{t}\"");
                assert_eq!(
                    quoted_digits(quoted.as_bytes()),
                    Some((t.parse().unwrap(), len))
                );
                let at = (x as usize) % len;
                for bad in [b'/', b':', b' ', b'a', 0x80, b'0' + 0x40] {
                    let mut b = t.as_bytes().to_vec();
                    b[at] = bad;
                    assert_eq!(digits_u64(&b), None, "{:?}", String::from_utf8_lossy(&b));
                    b.push(b'"');
                    assert_eq!(quoted_digits(&b), None, "{:?}", String::from_utf8_lossy(&b));
                }
            }
        }
        assert_eq!(
            digits_u64(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(digits_u64(b"00000000"), Some(0));
        assert_eq!(quoted_digits(b"12x\""), None);
        assert_eq!(quoted_digits(b"123"), None);
    }

    /// The string scan finds the first quote, backslash or control character
    /// wherever it falls in a word.
    #[test]
    fn the_string_scan_stops_at_the_first_special_byte() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x1f, 0] {
                for at in 0..len {
                    let mut b = vec![b'a'; len];
                    b[at] = special;
                    if at + 1 < len {
                        b[at + 1] = b'"';
                    }
                    assert_eq!(stop(&b), Some(at), "{len} {special} {at}");
                }
                assert_eq!(stop(&vec![0xc3; len]), None);
                assert_eq!(stop(&vec![0x20; len]), None);
                assert_eq!(stop(&vec![0x7f; len]), None);
            }
        }
    }

    /// Both scans agree with a byte-by-byte search on every byte value at
    /// every place (the sixteen-byte scan compares bytes as unsigned).
    #[test]
    fn every_byte_value_is_judged_as_a_byte_by_byte_search_judges_it() {
        let special = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        for c in 0..=255u8 {
            for at in [0, 7, 8, 15, 16, 17, 31, 33] {
                let mut b = vec![b'x'; 40];
                b[at] = c;
                let want = special(c).then_some(at);
                assert_eq!(stop(&b), want, "byte {c:#x} at {at}");
                assert_eq!(stop8(&b), want, "byte {c:#x} at {at} (eight at a time)");
            }
        }
    }
}
