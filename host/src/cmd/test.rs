//! `tokenhound test`: detector tests in the spirit of Semgrep's rule tests. A
//! fixture (spans in any format tokenhound reads) sits next to an expectation
//! file `NAME.expect.toml` that states which findings must appear, which spans
//! must not be flagged, and known gaps that do not fail.
//!
//! ```toml
//! detector = "builtin:retry-storm"   # or a .wasm path, or: pack = "pack.toml"
//! [params]                           # the detector's parameters (optional)
//! min_calls = 3
//!
//! [[finding]]                        # must appear: names at least these spans
//! spans = ["00000000000000a1", "00000000000000a2", "00000000000000a3"]
//! wasted_tokens = 2020               # optional, exact
//!
//! [[clean]]                          # must not be named by any finding
//! spans = ["00000000000000b1"]
//!
//! [[gap]]                            # known gap: may be missing, never fails
//! spans = ["00000000000000c1"]
//! reason = "needs captured arguments"
//! ```

use crate::rules::{At, Rule, RuleSet, Severity, Source};
use crate::scan::{self, Options};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    detector: Option<String>,
    pack: Option<String>,
    /// the rule id findings are read from (default: the detector's name)
    rule: Option<String>,
    #[serde(default)]
    params: toml::Table,
    #[serde(default)]
    finding: Vec<Want>,
    #[serde(default)]
    clean: Vec<Want>,
    #[serde(default)]
    gap: Vec<Want>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct Want {
    rule: Option<String>,
    spans: Vec<String>,
    wasted_tokens: Option<u64>,
    reason: Option<String>,
}

#[derive(Serialize, Default, Debug)]
pub struct CaseResult {
    pub fixture: String,
    pub ok: bool,
    pub true_positives: usize,
    pub false_positives: Vec<String>,
    pub false_negatives: Vec<String>,
    pub clean_flagged: Vec<String>,
    pub gaps_missing: usize,
    /// why each missing gap is a known gap
    pub gap_reasons: Vec<String>,
    pub gaps_found: usize,
    pub error: Option<String>,
}

#[derive(Serialize, Default)]
pub struct Summary {
    pub cases: Vec<CaseResult>,
    pub passed: usize,
    pub failed: usize,
}

/// Every `*.expect.toml` under the paths, with its fixture.
fn cases(paths: &[PathBuf]) -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut expects = Vec::new();
    for p in paths {
        let files = crate::ingest::expand(std::slice::from_ref(p), &mut Vec::new());
        expects.extend(
            files
                .into_iter()
                .filter(|f| f.to_string_lossy().ends_with(".expect.toml")),
        );
    }
    expects.sort();
    expects
        .into_iter()
        .map(|e| {
            let name = e
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches(".expect.toml")
                .to_string();
            let dir = e.parent().unwrap_or(Path::new("."));
            let fixture = std::fs::read_dir(dir).ok().and_then(|rd| {
                let mut c: Vec<PathBuf> = rd
                    .flatten()
                    .map(|d| d.path())
                    .filter(|p| {
                        let n = p.file_name().unwrap().to_string_lossy().to_string();
                        n.starts_with(&format!("{name}.")) && !n.ends_with(".toml")
                    })
                    .collect();
                c.sort();
                c.into_iter().next()
            });
            (e, fixture)
        })
        .collect()
}

fn run_case(expect_path: &Path, fixture: Option<&Path>, cache_dir: Option<PathBuf>) -> CaseResult {
    let mut r = CaseResult {
        fixture: fixture.map_or_else(
            || expect_path.display().to_string(),
            |f| f.display().to_string(),
        ),
        ..Default::default()
    };
    match scan_case(expect_path, fixture, cache_dir) {
        Ok((exp, default_rule, report)) => compare(&mut r, &exp, default_rule, &report),
        Err(e) => r.error = Some(e),
    }
    r.ok = r.error.is_none()
        && r.false_negatives.is_empty()
        && r.false_positives.is_empty()
        && r.clean_flagged.is_empty();
    r
}

/// Read the expectation, build its rule set and scan the fixture with it.
fn scan_case(
    expect_path: &Path,
    fixture: Option<&Path>,
    cache_dir: Option<PathBuf>,
) -> Result<(Expect, Option<String>, crate::report::Report), String> {
    let Some(fixture) = fixture else {
        return Err(format!(
            "{}: no fixture next to it (NAME.jsonl, NAME.json, …)",
            expect_path.display()
        ));
    };
    let text = std::fs::read_to_string(expect_path)
        .map_err(|e| format!("{}: {e}", expect_path.display()))?;
    let exp: Expect = toml::from_str(&text).map_err(|e| {
        let line = crate::location::toml_line(&text, &e);
        format!("{}:{line}: {}", expect_path.display(), e.message())
    })?;
    let (set, default_rule) = rule_set(&exp, expect_path)?;
    let opts = Options {
        inputs: vec![fixture.to_path_buf()],
        cache_dir,
        ..Options::default()
    };
    let mut outcome = scan::run_set(&set, &opts).map_err(|e| e.to_string())?;
    let report = crate::report::build(&mut outcome);
    Ok((exp, default_rule, report))
}

/// The rules a case runs: its pack, or one rule for its detector (named after
/// it unless the case names it).
fn rule_set(exp: &Expect, expect_path: &Path) -> Result<(RuleSet, Option<String>), String> {
    let dir = expect_path.parent().unwrap_or(Path::new("."));
    let d = match (&exp.pack, &exp.detector) {
        (Some(p), _) => {
            return RuleSet::from_files(&[dir.join(p)])
                .map(|s| (s, None))
                .map_err(|e| e.to_string())
        }
        (None, Some(d)) => d,
        (None, None) => {
            return Err(format!(
                "{}: say `detector = …` or `pack = …`",
                expect_path.display()
            ))
        }
    };
    let source = match d.strip_prefix("builtin:") {
        Some(n) => Source::Builtin(n.to_string()),
        None => Source::File(dir.join(d)),
    };
    let id = exp.rule.clone().unwrap_or_else(|| match &source {
        Source::Builtin(n) => n.clone(),
        Source::File(p) => p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string(),
    });
    let rule = Rule {
        id: id.clone(),
        source,
        severity: Severity::Medium,
        enabled: true,
        params: exp.params.clone(),
        limits: Default::default(),
        at: At {
            file: expect_path.display().to_string(),
            line: 1,
        },
        params_at: Default::default(),
    };
    let set = RuleSet {
        rules: vec![rule],
        packs: vec![("test".into(), "0".into())],
        ..Default::default()
    };
    Ok((set, Some(id)))
}

/// Match the report's findings against what the case expects: each expected
/// finding (then each known gap) claims the first unclaimed finding it matches;
/// what is left over is a false positive; a finding naming a clean span is
/// flagged.
fn compare(
    r: &mut CaseResult,
    exp: &Expect,
    default_rule: Option<String>,
    report: &crate::report::Report,
) {
    let rule_of = |w: &Want| {
        w.rule
            .clone()
            .or_else(|| exp.rule.clone())
            .or_else(|| default_rule.clone())
    };
    let mut used = vec![false; report.findings.len()];
    let matches = |w: &Want, f: &crate::report::FindingOut| {
        rule_of(w).is_none_or(|r| r == f.rule)
            && w.spans
                .iter()
                .all(|s| f.spans.iter().any(|x| &x.span_id == s))
            && w.wasted_tokens.is_none_or(|t| t == f.wasted_tokens)
    };
    let mut claim = |w: &Want| match report
        .findings
        .iter()
        .enumerate()
        .find(|(i, f)| !used[*i] && matches(w, f))
    {
        Some((i, _)) => {
            used[i] = true;
            true
        }
        None => false,
    };
    for w in &exp.finding {
        if claim(w) {
            r.true_positives += 1;
        } else {
            r.false_negatives
                .push(format!("{:?} (wasted {:?})", w.spans, w.wasted_tokens));
        }
    }
    for w in &exp.gap {
        if claim(w) {
            r.gaps_found += 1;
        } else {
            r.gaps_missing += 1;
            r.gap_reasons
                .push(w.reason.clone().unwrap_or_else(|| format!("{:?}", w.spans)));
        }
    }
    for (i, f) in report.findings.iter().enumerate() {
        let named: Vec<&str> = f.spans.iter().map(|s| s.span_id.as_str()).collect();
        for w in &exp.clean {
            if rule_of(w).is_none_or(|r| r == f.rule)
                && w.spans.iter().any(|s| named.contains(&s.as_str()))
            {
                r.clean_flagged
                    .push(format!("{}: {} names {:?}", f.rule, f.title, w.spans));
            }
        }
        if !used[i] {
            r.false_positives.push(format!(
                "{}: {} (spans {:?}, wasted {})",
                f.rule, f.title, named, f.wasted_tokens
            ));
        }
    }
}

pub fn run(paths: &[PathBuf], cache_dir: Option<PathBuf>) -> Summary {
    let mut s = Summary::default();
    for (e, f) in cases(paths) {
        let r = run_case(&e, f.as_deref(), cache_dir.clone());
        if r.ok {
            s.passed += 1;
        } else {
            s.failed += 1;
        }
        s.cases.push(r);
    }
    s
}

impl Summary {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        for c in &self.cases {
            o += &format!(
                "{} {}  TP {}  FP {}  FN {}  gaps {}/{}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.fixture,
                c.true_positives,
                c.false_positives.len() + c.clean_flagged.len(),
                c.false_negatives.len(),
                c.gaps_found,
                c.gaps_found + c.gaps_missing
            );
            if let Some(e) = &c.error {
                o += &format!("     error: {e}\n");
            }
            for x in &c.false_negatives {
                o += &format!("     missing: {x}\n");
            }
            for x in &c.false_positives {
                o += &format!("     unexpected: {x}\n");
            }
            for x in &c.clean_flagged {
                o += &format!("     flagged a clean span: {x}\n");
            }
            for x in &c.gap_reasons {
                o += &format!("     known gap: {x}\n");
            }
        }
        o += &format!("{} passed, {} failed\n", self.passed, self.failed);
        o
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: super::ListFormat,
}

/// `tokenhound test`: exit 1 when a case fails or there is none.
pub fn command(a: Args) -> Result<u8, super::Failure> {
    let s = run(&a.paths, crate::scan::default_cache_dir());
    super::write_out(None, &super::listing(a.format, &s, || s.to_text()))?;
    Ok(u8::from(s.failed > 0 || s.cases.is_empty()))
}
