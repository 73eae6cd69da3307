//! Rule packs (TOML): which detectors run, how, and with what limits and prices.
//! A pack is validated completely before anything runs; every error names the
//! file and the line. The same validator serves start-up and hot reload.

use crate::engine::{Limits, LoadedPlugin, ParamType};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The built-in default pack, so the binary works with no other files.
pub const DEFAULT_PACK: &str = include_str!("../../rules/default.toml");

/// Packs built into the binary, named on the command line as `builtin:NAME`.
pub const BUILTIN_PACKS: [(&str, &str); 2] = [
    ("default", DEFAULT_PACK),
    (
        "weekly-audit",
        include_str!("../../rules/weekly-audit.toml"),
    ),
];

fn builtin_pack(name: &str) -> Option<&'static str> {
    BUILTIN_PACKS
        .iter()
        .find(|(n, _)| *n == name.trim_end_matches(".toml"))
        .map(|(_, t)| *t)
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// A detector's own severity for a finding, in the pack's terms.
impl From<crate::engine::Severity> for Severity {
    fn from(s: crate::engine::Severity) -> Self {
        use crate::engine::Severity as E;
        match s {
            E::Info => Severity::Info,
            E::Low => Severity::Low,
            E::Medium => Severity::Medium,
            E::High => Severity::High,
            E::Critical => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        };
        f.write_str(s)
    }
}

/// A pack error: where, and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct PackError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    pack: Header,
    #[serde(default)]
    settings: Settings,
    #[serde(default)]
    limits: LimitsToml,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RuleToml>>,
    /// custom attribute mappings (see ingest::mapping)
    #[serde(default)]
    mapping: Vec<Spanned<crate::ingest::mapping::Mapping>>,
}

impl PackFile {
    /// Prices are finite and not negative: a NaN would print as "$NaN".
    fn prices_valid(&self) -> Result<(), String> {
        for (m, p) in &self.prices {
            let all = [Some(p.input), Some(p.output), p.cache_read, p.cache_write];
            if let Some(bad) = all
                .into_iter()
                .flatten()
                .find(|v| !(v.is_finite() && *v >= 0.0))
            {
                return Err(format!(
                    "prices.\"{m}\": a price must be a number ≥ 0 (USD per million tokens), got {bad}"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    version: String,
    requires: Option<Spanned<String>>,
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Settings {
    bytes_per_token: Option<f64>,
    max_record_mb: Option<u64>,
    max_document_mb: Option<u64>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct LimitsToml {
    memory_mb: Option<u64>,
    timeout_ms: Option<u64>,
    fuel: Option<u64>,
    stack_kb: Option<u64>,
    max_findings: Option<u64>,
    max_span_refs: Option<u64>,
    max_text_kb: Option<u64>,
}

impl LimitsToml {
    /// Each limit within a range that means something: 0 MiB of memory or a
    /// timeout of centuries would switch a limit off or stop every detector.
    fn validate(&self) -> Result<(), String> {
        let checks = [
            ("memory_mb", self.memory_mb, 1, 65_536),
            ("timeout_ms", self.timeout_ms, 1, 3_600_000),
            ("fuel", self.fuel, 1, u64::MAX),
            ("stack_kb", self.stack_kb, 64, 65_536),
            ("max_findings", self.max_findings, 1, 100_000_000),
            ("max_span_refs", self.max_span_refs, 1, 100_000_000),
            ("max_text_kb", self.max_text_kb, 1, 1 << 20),
        ];
        for (name, v, lo, hi) in checks {
            if let Some(v) = v {
                if v < lo || v > hi {
                    return Err(format!(
                        "limits.{name} must be between {lo} and {hi}, got {v}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// USD per million tokens.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    id: String,
    detector: Option<Spanned<String>>,
    severity: Option<Severity>,
    enabled: Option<bool>,
    params: Option<Spanned<toml::Table>>,
    limits: Option<LimitsToml>,
}

/// Where a rule's detector comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Builtin(String),
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Source::Builtin(n) => write!(f, "builtin:{n}"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A location in a pack, for errors found after parsing.
#[derive(Clone, Debug)]
pub struct At {
    pub file: String,
    pub line: usize,
}

impl At {
    pub fn error(&self, message: impl Into<String>) -> PackError {
        PackError {
            file: self.file.clone(),
            line: self.line,
            message: message.into(),
        }
    }
}

/// One rule after all packs are merged.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub source: Source,
    pub severity: Severity,
    pub enabled: bool,
    pub params: toml::Table,
    pub limits: Limits,
    pub at: At,
    /// where each parameter was set, for errors about it
    pub params_at: BTreeMap<String, At>,
}

/// The merged packs.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub packs: Vec<(String, String)>,
    pub rules: Vec<Rule>,
    pub prices: BTreeMap<String, Price>,
    pub bytes_per_token: Option<f64>,
    pub max_stack: Option<usize>,
    pub mappings: Vec<crate::ingest::mapping::Mapping>,
    /// `[settings] max_record_mb` / `max_document_mb`, in bytes
    pub max_record: Option<usize>,
    pub max_document: Option<usize>,
    /// daily token totals of an earlier report (`scan --baseline`), as
    /// `YYYY-MM-DD=tokens`: given to detectors that declare `baseline_days`
    pub baseline_days: Vec<String>,
    /// the counted window (`--since` / `--until`) as `[since, until)` in ns:
    /// given to detectors that declare `window_since_ns` / `window_until_ns`
    pub window_ns: Option<(u64, u64)>,
}

/// Locations in one pack's text.
struct Here<'a> {
    file: &'a str,
    text: &'a str,
}

impl Here<'_> {
    fn at(&self, offset: usize) -> At {
        At {
            file: self.file.to_string(),
            line: crate::location::line_of(self.text.as_bytes(), offset) as usize,
        }
    }
    /// Where `needle` first appears (line 1 if it does not).
    fn at_text(&self, needle: &str) -> At {
        self.at(self.text.find(needle).unwrap_or(0))
    }
}

/// A pack's `requires`: the tokenhound versions it works with.
fn check_requires(pack: &PackFile, here: &Here) -> Result<(), PackError> {
    let Some(req) = &pack.pack.requires else {
        return Ok(());
    };
    let at = here.at(req.span().start);
    let want = semver::VersionReq::parse(req.get_ref())
        .map_err(|e| at.error(format!("`requires` is not a version requirement: {e}")))?;
    let have = semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("crate version is semver");
    if !want.matches(&have) {
        return Err(at.error(format!(
            "pack `{}` needs tokenhound {want}, this is {have}",
            pack.pack.name
        )));
    }
    Ok(())
}

/// Where a rule's `detector` comes from: a built-in by name, or a file beside
/// the pack.
fn source_of(d: &Spanned<String>, here: &Here, dir: &Path) -> Result<Source, PackError> {
    let at = here.at(d.span().start);
    let d = d.get_ref();
    match d.strip_prefix("builtin:") {
        Some(name) if crate::builtin::wasm(name).is_some() => Ok(Source::Builtin(name.to_string())),
        Some(name) => Err(at.error(format!(
            "unknown built-in detector `{name}` (built in: {})",
            crate::builtin::NAMES.join(", ")
        ))),
        None => {
            let p = dir.join(d);
            if !p.is_file() {
                return Err(at.error(format!("detector file {} does not exist", p.display())));
            }
            Ok(Source::File(p))
        }
    }
}

fn limits_from(base: &Limits, t: &LimitsToml) -> Limits {
    Limits {
        memory_bytes: t
            .memory_mb
            .map_or(base.memory_bytes, |m| (m as usize) << 20),
        timeout: t.timeout_ms.map_or(base.timeout, Duration::from_millis),
        fuel: t.fuel.or(base.fuel),
        output: crate::engine::OutputLimits {
            findings: t.max_findings.map_or(base.output.findings, |n| n as usize),
            spans: t.max_span_refs.map_or(base.output.spans, |n| n as usize),
            text_bytes: t
                .max_text_kb
                .map_or(base.output.text_bytes, |k| (k as usize) << 10),
        },
    }
}

impl RuleSet {
    /// The rule set from the packs plus every `.wasm` in a plugins folder, each
    /// a rule named after its file (`watch --plugins`, `detectors --plugins`).
    pub fn with_plugins_dir(packs: &[PathBuf], plugins: Option<&Path>) -> Result<RuleSet, String> {
        let mut set = RuleSet::from_files(packs).map_err(|e| e.to_string())?;
        if let Some(dir) = plugins {
            let mut wasm: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
                .collect();
            wasm.sort();
            for p in wasm {
                let id = p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                set.rules.retain(|r| r.id != id);
                set.rules.push(Rule {
                    id,
                    source: Source::File(p.clone()),
                    severity: Severity::Medium,
                    enabled: true,
                    params: toml::Table::new(),
                    limits: Limits::default(),
                    at: At {
                        file: p.display().to_string(),
                        line: 0,
                    },
                    params_at: Default::default(),
                });
            }
        }
        Ok(set)
    }

    /// Load packs in order; a later pack overrides earlier rules by id.
    pub fn load(packs: &[(String, String)]) -> Result<RuleSet, PackError> {
        let mut set = RuleSet::default();
        for (file, text) in packs {
            set.add(file, text)?;
        }
        Ok(set)
    }

    /// Load pack files from disk; none given means the built-in default pack.
    /// `builtin:NAME` names a pack built into the binary.
    pub fn from_files(paths: &[PathBuf]) -> Result<RuleSet, PackError> {
        if paths.is_empty() {
            return Self::load(&[("builtin:default".into(), DEFAULT_PACK.into())]);
        }
        let mut texts = Vec::new();
        for p in paths {
            if let Some(name) = p.to_str().and_then(|s| s.strip_prefix("builtin:")) {
                let Some(text) = builtin_pack(name) else {
                    return Err(PackError {
                        file: p.display().to_string(),
                        line: 0,
                        message: format!(
                            "no built-in pack `{name}` (built in: {})",
                            BUILTIN_PACKS
                                .map(|(n, _)| format!("builtin:{n}"))
                                .join(", ")
                        ),
                    });
                };
                texts.push((p.display().to_string(), text.to_string()));
                continue;
            }
            let text = std::fs::read_to_string(p).map_err(|e| PackError {
                file: p.display().to_string(),
                line: 0,
                message: format!("cannot read the pack: {e}"),
            })?;
            texts.push((p.display().to_string(), text));
        }
        Self::load(&texts)
    }

    fn add(&mut self, file: &str, text: &str) -> Result<(), PackError> {
        let here = Here { file, text };
        let pack: PackFile = toml::from_str(text).map_err(|e| PackError {
            file: file.to_string(),
            line: crate::location::toml_line(text, &e) as usize,
            message: e.message().to_string(),
        })?;
        check_requires(&pack, &here)?;
        self.apply_settings(&pack, &here)?;
        let dir = Path::new(file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let pack_limits = limits_from(&Limits::default(), &pack.limits);
        self.prices.extend(pack.prices);
        for m in pack.mapping {
            let at = here.at(m.span().start);
            let m = m.into_inner();
            m.validate()
                .map_err(|e| at.error(format!("mapping for `{}`: {e}", m.span_name)))?;
            self.mappings.push(m);
        }
        for r in pack.rules {
            self.add_rule(r, &here, &dir, &pack_limits)?;
        }
        self.packs.push((pack.pack.name, pack.pack.version));
        Ok(())
    }

    /// The pack's `[limits]` checks and `[settings]`, which apply to the run.
    fn apply_settings(&mut self, pack: &PackFile, here: &Here) -> Result<(), PackError> {
        pack.limits
            .validate()
            .map_err(|e| here.at_text("[limits]").error(e))?;
        pack.prices_valid()
            .map_err(|e| here.at_text("[prices").error(e))?;
        if let Some(kb) = pack.limits.stack_kb {
            self.max_stack = Some((kb as usize) << 10);
        }
        if let Some(b) = pack.settings.bytes_per_token {
            if !(b > 0.0 && b.is_finite()) {
                return Err(here.at(0).error(format!(
                    "settings.bytes_per_token must be a positive number, got {b}"
                )));
            }
            self.bytes_per_token = Some(b);
        }
        for (key, v, slot) in [
            (
                "max_record_mb",
                pack.settings.max_record_mb,
                &mut self.max_record,
            ),
            (
                "max_document_mb",
                pack.settings.max_document_mb,
                &mut self.max_document,
            ),
        ] {
            if let Some(mb) = v {
                if !(1..=1 << 20).contains(&mb) {
                    return Err(here.at(0).error(format!(
                        "settings.{key} must be between 1 and 1048576 (MiB), got {mb}"
                    )));
                }
                *slot = Some((mb as usize) << 20);
            }
        }
        Ok(())
    }

    /// A `[[rule]]`: a new rule, or changes to an earlier pack's rule of that id.
    fn add_rule(
        &mut self,
        r: Spanned<RuleToml>,
        here: &Here,
        dir: &Path,
        pack_limits: &Limits,
    ) -> Result<(), PackError> {
        let at = here.at(r.span().start);
        let r = r.into_inner();
        if r.id.trim().is_empty() {
            return Err(at.error("a rule needs a non-empty `id`"));
        }
        if let Some(l) = &r.limits {
            l.validate()
                .map_err(|e| at.error(format!("rule `{}`: {e}", r.id)))?;
        }
        let source = match &r.detector {
            Some(d) => Some(source_of(d, here, dir)?),
            None => None,
        };
        let mut params_at = BTreeMap::new();
        let params = r.params.map(|p| {
            let pat = here.at(p.span().start);
            let t = p.into_inner();
            for k in t.keys() {
                params_at.insert(k.clone(), pat.clone());
            }
            t
        });
        if let Some(old) = self.rules.iter_mut().find(|x| x.id == r.id) {
            if let Some(s) = source {
                old.source = s;
            }
            old.severity = r.severity.unwrap_or(old.severity);
            old.enabled = r.enabled.unwrap_or(old.enabled);
            old.params.extend(params.unwrap_or_default());
            old.params_at.extend(params_at);
            if let Some(l) = &r.limits {
                old.limits = limits_from(&old.limits, l);
            }
            old.at = at;
            return Ok(());
        }
        let Some(source) = source else {
            return Err(self.missing_detector(&r.id, at));
        };
        self.rules.push(Rule {
            source,
            severity: r.severity.unwrap_or(Severity::Medium),
            enabled: r.enabled.unwrap_or(true),
            params: params.unwrap_or_default(),
            limits: r
                .limits
                .as_ref()
                .map_or(pack_limits.clone(), |l| limits_from(pack_limits, l)),
            id: r.id,
            at,
            params_at,
        });
        Ok(())
    }

    /// A new rule without a detector: most often a mistyped id of a rule that
    /// exists, so say which.
    fn missing_detector(&self, id: &str, at: At) -> PackError {
        let known: Vec<&str> = self
            .rules
            .iter()
            .map(|x| x.id.as_str())
            .chain(crate::builtin::NAMES)
            .collect();
        let hint = known
            .iter()
            .filter(|k| strsim::levenshtein(k, id) <= 3)
            .min_by_key(|k| strsim::levenshtein(k, id))
            .map_or(String::new(), |k| {
                if *k == id {
                    format!(" (to change the built-in rule `{k}`, name `--pack builtin:default` before this pack)")
                } else {
                    format!(" (did you mean `{k}`, to change an earlier pack's rule?)")
                }
            });
        at.error(format!(
            "rule `{id}` needs a `detector` (builtin:NAME or a path to a .wasm){hint}"
        ))
    }

    /// The pack's input limits, on a reader.
    pub fn apply_input_limits(&self, r: &mut crate::ingest::Reader) {
        if let Some(m) = self.max_record {
            r.max_record = m;
        }
        if let Some(m) = self.max_document {
            r.max_document = m;
        }
    }

    /// Whether any rule asks for a fuel budget.
    pub fn wants_fuel(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.enabled && r.limits.fuel.is_some())
    }
}

impl Rule {
    /// Check the rule's parameters against what the detector declares, and turn
    /// them into the JSON object the detector is created with.
    pub fn params_json(&self, plugin: &LoadedPlugin, set: &RuleSet) -> Result<String, PackError> {
        let mut out = serde_json::Map::new();
        let declared = &plugin.meta.params;
        for (k, v) in &self.params {
            let at = self.params_at.get(k).unwrap_or(&self.at);
            let Some(p) = declared.iter().find(|p| &p.name == k) else {
                let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
                return Err(at.error(format!(
                    "rule `{}`: {} has no parameter `{k}` (it has: {})",
                    self.id,
                    plugin.meta.name,
                    names.join(", ")
                )));
            };
            let ok = match p.kind {
                ParamType::Integer => v.as_integer().is_some_and(|i| i >= 0),
                ParamType::Number => v.as_float().is_some() || v.as_integer().is_some(),
                ParamType::Boolean => v.as_bool().is_some(),
                ParamType::Text => v.as_str().is_some(),
                ParamType::TextList => v
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| x.as_str().is_some())),
            };
            if !ok {
                return Err(at.error(format!(
                    "rule `{}`: parameter `{k}` must be {}, got {v}",
                    self.id,
                    type_name(p.kind)
                )));
            }
            let json = serde_json::to_value(v).map_err(|e| at.error(e.to_string()))?;
            out.insert(k.clone(), json);
        }
        let declares = |name: &str| declared.iter().any(|p| p.name == name);
        if let Some(b) = set.bytes_per_token {
            if declares("bytes_per_token") && !out.contains_key("bytes_per_token") {
                out.insert("bytes_per_token".into(), serde_json::Value::from(b));
            }
        }
        if !set.baseline_days.is_empty() && declares("baseline_days") {
            out.insert("baseline_days".into(), serde_json::json!(set.baseline_days));
        }
        if let Some((since, until)) = set.window_ns {
            if declares("window_since_ns") && declares("window_until_ns") {
                out.insert("window_since_ns".into(), since.into());
                out.insert("window_until_ns".into(), until.into());
            }
        }
        Ok(serde_json::Value::Object(out).to_string())
    }
}

fn type_name(t: ParamType) -> &'static str {
    match t {
        ParamType::Integer => "a whole number ≥ 0",
        ParamType::Number => "a number",
        ParamType::Boolean => "true or false",
        ParamType::Text => "a string",
        ParamType::TextList => "a list of strings",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[pack]
name = "base"
version = "1"

[[rule]]
id = "retry-storm"
detector = "builtin:retry-storm"
severity = "high"
[rule.params]
min_calls = 3

[[rule]]
id = "filler-preamble"
detector = "builtin:filler-preamble"
"#;

    fn load(packs: &[(&str, &str)]) -> Result<RuleSet, PackError> {
        let packs: Vec<(String, String)> = packs
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        RuleSet::load(&packs)
    }

    /// A later pack changes an earlier rule by id: what it sets wins, the rest stays.
    #[test]
    fn a_later_pack_overrides_only_what_it_sets() {
        let over = "[pack]\nname = \"team\"\nversion = \"2\"\n[[rule]]\nid = \"retry-storm\"\n[rule.params]\nmin_calls = 2\n[[rule]]\nid = \"filler-preamble\"\nenabled = false\n";
        let set = load(&[("base.toml", BASE), ("team.toml", over)]).unwrap();
        let storm = set.rules.iter().find(|r| r.id == "retry-storm").unwrap();
        assert_eq!(storm.severity, Severity::High, "kept from the base");
        assert_eq!(storm.params["min_calls"].as_integer(), Some(2));
        assert_eq!(storm.at.file, "team.toml", "errors point at the last pack");
        let filler = set
            .rules
            .iter()
            .find(|r| r.id == "filler-preamble")
            .unwrap();
        assert!(!filler.enabled);
        assert_eq!(set.packs.len(), 2);
    }

    #[test]
    fn a_new_rule_without_a_detector_is_located_and_a_near_id_suggested() {
        let typo = "[pack]\nname = \"t\"\nversion = \"1\"\n\n[[rule]]\nid = \"retry-strom\"\n";
        let e = load(&[("base.toml", BASE), ("typo.toml", typo)]).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("typo.toml", 5));
        assert!(
            e.message.contains("did you mean `retry-storm`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_unknown_built_in_lists_the_built_ins() {
        let bad = "[pack]\nname = \"t\"\nversion = \"1\"\n[[rule]]\nid = \"x\"\ndetector = \"builtin:nope\"\n";
        let e = load(&[("bad.toml", bad)]).unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.message.contains("built in: retry-storm"), "{}", e.message);
    }
}
