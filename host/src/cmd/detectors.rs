//! `tokenhound detectors`: what a set of packs (and a plugins folder) loads:
//! each rule's detector with its version, contract version, source, hash,
//! severity, parameters (the value a pack sets beside the default) and the
//! fields it reads.

use crate::engine::{Engine, ParamType};
use crate::rules::Source;
use anyhow::Context as _;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
pub struct DetectorInfo {
    pub rule: String,
    pub name: String,
    pub version: String,
    pub wit: &'static str,
    pub source: String,
    pub sha256: String,
    pub description: String,
    /// the rule's severity in the packs
    pub severity: crate::rules::Severity,
    pub enabled: bool,
    pub params: Vec<ParamInfo>,
    pub needs: Vec<String>,
    /// the kinds of span it reads (`span-kinds`): llm, tool, agent, other
    pub spans: Vec<String>,
}

#[derive(Serialize)]
pub struct ParamInfo {
    pub name: String,
    pub kind: String,
    pub default: serde_json::Value,
    /// the value the packs set, where they set one (else the default applies)
    pub value: Option<serde_json::Value>,
    pub description: String,
}

/// The detectors of the packs (the built-in pack when none) and the plugins folder.
pub fn list(
    packs: &[std::path::PathBuf],
    plugins: Option<&Path>,
) -> anyhow::Result<Vec<DetectorInfo>> {
    let set =
        crate::rules::RuleSet::with_plugins_dir(packs, plugins).map_err(|e| anyhow::anyhow!(e))?;
    let engine = Engine::new(crate::scan::default_cache_dir(), false, None)?;
    let mut out = Vec::new();
    for rule in &set.rules {
        let bytes: Vec<u8> = match &rule.source {
            Source::Builtin(n) => crate::builtin::wasm(n)
                .context("unknown built-in")?
                .to_vec(),
            Source::File(p) => crate::engine::read_component(p).map_err(|e| anyhow::anyhow!(e))?,
        };
        let p = engine.load(&bytes, &rule.source.to_string())?;
        out.push(DetectorInfo {
            rule: rule.id.clone(),
            name: p.meta.name.clone(),
            version: p.meta.version.clone(),
            wit: p.wit,
            source: p.source.clone(),
            sha256: p.hash.clone(),
            description: p.meta.description.clone(),
            severity: rule.severity,
            enabled: rule.enabled,
            params: p
                .meta
                .params
                .iter()
                .map(|x| ParamInfo {
                    name: x.name.clone(),
                    kind: match x.kind {
                        ParamType::Integer => "integer",
                        ParamType::Number => "number",
                        ParamType::Boolean => "boolean",
                        ParamType::Text => "text",
                        ParamType::TextList => "text list",
                    }
                    .into(),
                    default: serde_json::from_str(&x.default_json)
                        .unwrap_or(serde_json::Value::Null),
                    value: rule
                        .params
                        .get(&x.name)
                        .and_then(|v| serde_json::to_value(v).ok()),
                    description: x.description.clone(),
                })
                .collect(),
            needs: p
                .meta
                .needs
                .iter()
                .map(|f| {
                    format!("{f:?}")
                        .to_lowercase()
                        .trim_start_matches("field::")
                        .to_string()
                })
                .collect(),
            spans: p.kinds.iter().map(|k| kind_name(*k).to_string()).collect(),
        });
    }
    Ok(out)
}

fn kind_name(k: crate::engine::SpanKind) -> &'static str {
    use crate::engine::SpanKind as K;
    match k {
        K::Llm => "llm",
        K::Tool => "tool",
        K::Agent => "agent",
        K::Other => "other",
    }
}

pub fn list_text(list: &[DetectorInfo]) -> String {
    let mut o = String::new();
    for d in list {
        o += &format!(
            "{} ({} {}, {}, {})\n",
            d.rule, d.name, d.version, d.wit, d.source
        );
        o += &format!(
            "  severity {}{}\n  {}\n  sha256 {}\n",
            d.severity,
            if d.enabled { "" } else { ", disabled" },
            d.description,
            d.sha256
        );
        for p in &d.params {
            let value = match &p.value {
                Some(v) if *v != p.default => {
                    format!("{v} (set by the pack; default {})", p.default)
                }
                Some(v) => format!("{v} (set by the pack)"),
                None => format!("{} (default)", p.default),
            };
            o += &format!("  {} ({}) = {value}: {}\n", p.name, p.kind, p.description);
        }
        o += &format!("  reads: {}\n", d.needs.join(", "));
        let ordinary = if d.spans.iter().any(|k| k == "other") {
            ""
        } else {
            ", and the spans above them"
        };
        o += &format!("  spans: {}{ordinary}\n", d.spans.join(", "));
    }
    o
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long = "pack", short = 'p')]
    packs: Vec<PathBuf>,
    #[arg(long)]
    plugins: Option<PathBuf>,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: super::ListFormat,
}

pub fn command(a: Args) -> Result<u8, super::Failure> {
    let list =
        list(&a.packs, a.plugins.as_deref()).map_err(|e| super::Failure::load(format!("{e:#}")))?;
    super::write_out(None, &super::listing(a.format, &list, || list_text(&list)))?;
    Ok(0)
}
