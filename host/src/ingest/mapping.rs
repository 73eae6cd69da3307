//! Custom mappings: how a team's own instrumentation names things, in TOML, so
//! its spans become canonical without code. A mapping matches spans by name and
//! renames their attributes to the OpenTelemetry GenAI names the dialect reader
//! already understands.
//!
//! ```toml
//! [[mapping]]
//! span_name = "anthropic.messages.create"   # exact, or a prefix ending in `*`
//! kind = "llm"                              # llm | tool | agent | other
//! input_excludes_cache = true               # Anthropic style: add cache back
//! [mapping.attributes]                      # canonical name = your name
//! "gen_ai.request.model" = "model"
//! "gen_ai.usage.input_tokens" = "input_tokens"
//! ```

use super::attrs::{AnyValue, KeyValue};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Canonical names a mapping may target besides the GenAI ones.
pub const RESULT_SIZE: &str = "tokenhound.tool.result_size_bytes";
pub const ARGS_SIZE: &str = "tokenhound.tool.arguments_size_bytes";
pub const DURATION_MS: &str = "tokenhound.duration_ms";
pub const ERROR: &str = "tokenhound.error";

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// a label for messages
    pub name: Option<String>,
    /// the span name to match: exact, or a prefix with a trailing `*`
    pub span_name: String,
    pub kind: Option<String>,
    /// the source's input tokens leave out cache reads and writes (Anthropic's API)
    #[serde(default)]
    pub input_excludes_cache: bool,
    /// canonical attribute name → the source's attribute name
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Mapping {
    fn matches(&self, name: &str) -> bool {
        match self.span_name.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.span_name,
        }
    }

    /// Check the mapping itself: a kind we know, targets we read.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(k) = &self.kind {
            if !["llm", "tool", "agent", "other"].contains(&k.as_str()) {
                return Err(format!(
                    "mapping kind must be llm, tool, agent or other, got `{k}`"
                ));
            }
        }
        for target in self.attributes.keys() {
            let ok = target.starts_with("gen_ai.")
                || target.starts_with("mcp.")
                || target.starts_with("tokenhound.")
                || target == "error.type"
                || target == "session.id"
                || target == "server.address";
            if !ok {
                return Err(format!(
                    "mapping target `{target}` is not a name tokenhound reads (use gen_ai.*, mcp.*, error.type, session.id, server.address or tokenhound.*)"
                ));
            }
        }
        Ok(())
    }
}

/// The mappings in force, from packs and mapping files.
#[derive(Default, Clone, Debug)]
pub struct Mappings(pub Vec<Mapping>);

/// The attributes after a mapping: the originals plus the canonical names.
pub struct Mapped<'a> {
    pub attrs: Vec<KeyValue<'a>>,
}

fn kv<'a>(key: &str, value: AnyValue<'a>) -> KeyValue<'a> {
    KeyValue {
        key: key.to_string().into(),
        value,
    }
}

impl Mappings {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a mapping reads this attribute (so it is understood, not unknown).
    pub fn reads(&self, key: &str) -> bool {
        self.0
            .iter()
            .any(|m| m.attributes.iter().any(|(_, source)| source == key))
    }

    pub fn apply<'a>(&self, name: &str, attrs: &[KeyValue<'a>]) -> Option<Mapped<'a>> {
        let m = self.0.iter().find(|m| m.matches(name))?;
        let get = |k: &str| attrs.iter().find(|a| a.key == k).map(|a| a.value.clone());
        let mut out: Vec<KeyValue> = Vec::with_capacity(attrs.len() + m.attributes.len() + 2);
        for (target, source) in &m.attributes {
            if let Some(v) = get(source) {
                out.push(kv(target, v));
            }
        }
        if let Some(k) = &m.kind {
            let op = match k.as_str() {
                "llm" => "chat",
                "tool" => "execute_tool",
                "agent" => "invoke_agent",
                _ => "other",
            };
            out.push(kv("gen_ai.operation.name", AnyValue::Str(op.into())));
        }
        if m.input_excludes_cache {
            let n = |k: &str| {
                out.iter()
                    .find(|a| a.key == k)
                    .and_then(|a| a.value.as_u64())
                    .unwrap_or(0)
            };
            let whole = n("gen_ai.usage.input_tokens")
                + n("gen_ai.usage.cache_read.input_tokens")
                + n("gen_ai.usage.cache_creation.input_tokens");
            out.retain(|a| a.key != "gen_ai.usage.input_tokens");
            out.push(kv("gen_ai.usage.input_tokens", AnyValue::Int(whole as i64)));
        }
        // An `error` flag or message becomes error.type.
        if let Some(pos) = out.iter().position(|a| a.key == ERROR) {
            let v = out.remove(pos).value;
            let failed = match &v {
                AnyValue::Bool(b) => *b,
                AnyValue::Str(s) => !s.is_empty() && s != "false" && s != "0",
                AnyValue::Int(i) => *i != 0,
                _ => false,
            };
            if failed {
                let t = v
                    .as_str()
                    .filter(|s| *s != "true")
                    .unwrap_or("error")
                    .to_string();
                out.push(kv("error.type", AnyValue::Str(t.into())));
            }
        }
        out.extend(attrs.iter().cloned());
        Some(Mapped { attrs: out })
    }
}

/// The mapping for the instrumentation of the spec's story, shipped as an example.
pub const STORY: &str = include_str!("../../../rules/mappings/story.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    mapping: Vec<Mapping>,
}

/// Parse a mapping file (`[[mapping]]` tables); errors name the line.
pub fn parse(file: &str, text: &str) -> Result<Vec<Mapping>, String> {
    let f: MappingFile = toml::from_str(text).map_err(|e| {
        let line = crate::location::toml_line(text, &e);
        format!("{file}:{line}: {}", e.message())
    })?;
    for m in &f.mapping {
        m.validate()
            .map_err(|e| format!("{file}: mapping for `{}`: {e}", m.span_name))?;
    }
    Ok(f.mapping)
}
