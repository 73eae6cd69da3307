//! Detector parameters: declared with defaults in the metadata, checked when a
//! rule creates an analyzer, so a bad value is an error value and never a trap.

use crate::ParamType;
use serde_json::{Map, Value};

/// A declared parameter with its default.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    pub default: Value,
    pub description: String,
}

impl Param {
    fn new(name: &str, kind: ParamType, default: Value, description: &str) -> Self {
        Param {
            name: name.into(),
            kind,
            default,
            description: description.into(),
        }
    }
    pub fn integer(name: &str, default: u64, description: &str) -> Self {
        Self::new(name, ParamType::Integer, Value::from(default), description)
    }
    pub fn number(name: &str, default: f64, description: &str) -> Self {
        Self::new(name, ParamType::Number, Value::from(default), description)
    }
    pub fn boolean(name: &str, default: bool, description: &str) -> Self {
        Self::new(name, ParamType::Boolean, Value::from(default), description)
    }
    pub fn text(name: &str, default: &str, description: &str) -> Self {
        Self::new(name, ParamType::Text, Value::from(default), description)
    }
    pub fn text_list(name: &str, default: &[&str], description: &str) -> Self {
        Self::new(
            name,
            ParamType::TextList,
            Value::from(default.to_vec()),
            description,
        )
    }
    /// The two parameters of the counted window (`--since` / `--until`), in ns
    /// since the epoch: the host fills them for a detector that declares them.
    /// A detector that counts over every call it sees (percentiles, error
    /// rates) counts only the window's; spans before it are still seen.
    pub fn window() -> [Self; 2] {
        [
            Self::integer(
                "window_since_ns",
                0,
                "calls starting before this are context, not counted (set by --since)",
            ),
            Self::integer(
                "window_until_ns",
                u64::MAX,
                "calls starting at or after this are not counted (set by --until)",
            ),
        ]
    }
    /// The common `bytes_per_token` parameter of the spec's content-token estimate.
    pub fn bytes_per_token() -> Self {
        Self::number("bytes_per_token", 4.0, "UTF-8 bytes per content token")
    }
    pub(crate) fn to_wit(&self) -> crate::bindings::tokenhound::detector::types::Param {
        crate::bindings::tokenhound::detector::types::Param {
            name: self.name.clone(),
            kind: self.kind,
            default_json: self.default.to_string(),
            description: self.description.clone(),
        }
    }
    fn accepts(&self, v: &Value) -> bool {
        match self.kind {
            ParamType::Integer => v.as_u64().is_some(),
            ParamType::Number => v.is_number(),
            ParamType::Boolean => v.is_boolean(),
            ParamType::Text => v.is_string(),
            ParamType::TextList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        }
    }
}

/// The parameters of one rule, every declared one present.
#[derive(Clone, Debug, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Parse a JSON object, fill defaults, reject unknown names and wrong types.
    pub fn parse(json: &str, declared: &[Param]) -> Result<Params, String> {
        let given: Map<String, Value> = if json.trim().is_empty() {
            Map::new()
        } else {
            serde_json::from_str(json)
                .map_err(|e| format!("parameters are not a JSON object: {e}"))?
        };
        for (k, v) in &given {
            match declared.iter().find(|p| &p.name == k) {
                None => {
                    let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
                    return Err(format!(
                        "unknown parameter `{k}` (known: {})",
                        names.join(", ")
                    ));
                }
                Some(p) if !p.accepts(v) => {
                    return Err(format!("parameter `{k}` must be {:?}, got {v}", p.kind));
                }
                _ => {}
            }
        }
        let mut all = Map::new();
        for p in declared {
            all.insert(
                p.name.clone(),
                given
                    .get(&p.name)
                    .cloned()
                    .unwrap_or_else(|| p.default.clone()),
            );
        }
        Ok(Params(all))
    }
    pub fn u64(&self, name: &str) -> u64 {
        self.0.get(name).and_then(Value::as_u64).unwrap_or(0)
    }
    pub fn f64(&self, name: &str) -> f64 {
        self.0.get(name).and_then(Value::as_f64).unwrap_or(0.0)
    }
    pub fn bool(&self, name: &str) -> bool {
        self.0.get(name).and_then(Value::as_bool).unwrap_or(false)
    }
    pub fn str(&self, name: &str) -> &str {
        self.0.get(name).and_then(Value::as_str).unwrap_or("")
    }
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// The counted window, when the detector declared [`Param::window`].
    pub fn window(&self) -> Window {
        Window {
            since: self.u64("window_since_ns"),
            until: self
                .0
                .get("window_until_ns")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX),
        }
    }
    /// `bytes_per_token`, refusing values that would divide by zero.
    pub fn bytes_per_token(&self) -> Result<f64, String> {
        let b = self.f64("bytes_per_token");
        if b > 0.0 && b.is_finite() {
            Ok(b)
        } else {
            Err(format!(
                "bytes_per_token must be a positive number, got {b}"
            ))
        }
    }
}

/// The part of the input a scan counts: calls starting in `[since, until)`.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub since: u64,
    pub until: u64,
}

impl Window {
    pub fn contains(&self, start_ns: u64) -> bool {
        start_ns >= self.since && start_ns < self.until
    }
}
