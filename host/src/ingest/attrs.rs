//! The attribute values every reader produces (OTLP's `KeyValue` / `AnyValue`,
//! the shape all formats are normalised to) and the lookup the dialects use.
//! Their own module so readers, dialects and mappings share them without
//! importing each other. How OTLP JSON encodes them is read in `otlp`.

use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;

/// One attribute. Its texts borrow from the record they were parsed from where
/// they can (OTLP JSON without escapes): most attributes of a real service's
/// spans are read once, for nothing, and copying each one cost a tenth of a scan.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct KeyValue<'a> {
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    #[serde(default, borrow)]
    pub value: AnyValue<'a>,
}

/// An OTLP `AnyValue`, decoded to the plain value it carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum AnyValue<'a> {
    #[default]
    Empty,
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Array(Vec<AnyValue<'a>>),
    KvList(Vec<(Cow<'a, str>, AnyValue<'a>)>),
}

impl AnyValue<'_> {
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
    /// A finite, non-negative number (a cost), from a number or numeric text.
    pub fn as_f64(&self) -> Option<f64> {
        let x = match self {
            AnyValue::Int(i) => *i as f64,
            AnyValue::Double(d) => *d,
            AnyValue::Str(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        (x.is_finite() && x >= 0.0).then_some(x)
    }
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AnyValue::Empty => Value::Null,
            AnyValue::Str(s) => Value::String(s.to_string()),
            AnyValue::Int(i) => Value::from(*i),
            AnyValue::Double(d) => Value::from(*d),
            AnyValue::Bool(b) => Value::Bool(*b),
            AnyValue::Array(a) => Value::Array(a.iter().map(AnyValue::to_json).collect()),
            AnyValue::KvList(kv) => Value::Object(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Look attributes up by the first of several names.
pub struct Attrs<'a> {
    pub span: &'a [KeyValue<'a>],
    pub resource: &'a [KeyValue<'a>],
}

impl<'a> Attrs<'a> {
    pub fn get(&self, names: &[&str]) -> Option<&'a AnyValue<'a>> {
        names.iter().find_map(|n| {
            self.span
                .iter()
                .find(|kv| kv.key == *n)
                .map(|kv| &kv.value)
                .filter(|v| **v != AnyValue::Empty)
        })
    }
    pub fn resource(&self, names: &[&str]) -> Option<&'a str> {
        names.iter().find_map(|n| {
            self.resource
                .iter()
                .find(|kv| kv.key == *n)
                .and_then(|kv| kv.value.as_str())
        })
    }
    pub fn str(&self, names: &[&str]) -> Option<&'a str> {
        self.get(names)
            .and_then(AnyValue::as_str)
            .filter(|s| !s.is_empty())
    }
    pub fn arc(&self, names: &[&str]) -> Option<Arc<str>> {
        self.str(names).map(Arc::from)
    }
    pub fn u64(&self, names: &[&str]) -> Option<u64> {
        self.get(names).and_then(AnyValue::as_u64)
    }
    pub fn has_prefix(&self, p: &str) -> bool {
        self.span.iter().any(|kv| kv.key.starts_with(p))
    }
}

/// A value as JSON: a string that holds JSON (how most instrumentations
/// write structured attributes) is parsed, anything else converted.
pub fn as_json(v: &AnyValue) -> serde_json::Value {
    match v {
        AnyValue::Str(s) => {
            serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))
        }
        other => other.to_json(),
    }
}
