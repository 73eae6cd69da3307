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
    let fail = |mut r: CaseResult, e: String| {
        r.error = Some(e);
        r
    };
    let Some(fixture) = fixture else {
        return fail(
            r,
            format!(
                "{}: no fixture next to it (NAME.jsonl, NAME.json, …)",
                expect_path.display()
            ),
        );
    };
    let text = match std::fs::read_to_string(expect_path) {
        Ok(t) => t,
        Err(e) => return fail(r, format!("{}: {e}", expect_path.display())),
    };
    let exp: Expect = match toml::from_str(&text) {
        Ok(x) => x,
        Err(e) => {
            let line = crate::location::toml_line(&text, &e);
            return fail(
                r,
                format!("{}:{line}: {}", expect_path.display(), e.message()),
            );
        }
    };
    let dir = expect_path.parent().unwrap_or(Path::new("."));
    let (set, default_rule) = match (&exp.pack, &exp.detector) {
        (Some(p), _) => match RuleSet::from_files(&[dir.join(p)]) {
            Ok(s) => (s, None),
            Err(e) => return fail(r, e.to_string()),
        },
        (None, Some(d)) => {
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
            (
                RuleSet {
                    rules: vec![rule],
                    packs: vec![("test".into(), "0".into())],
                    ..Default::default()
                },
                Some(id),
            )
        }
        (None, None) => {
            return fail(
                r,
                format!(
                    "{}: say `detector = …` or `pack = …`",
                    expect_path.display()
                ),
            )
        }
    };
    let opts = Options {
        inputs: vec![fixture.to_path_buf()],
        cache_dir,
        ..Options::default()
    };
    let mut outcome = match scan::run_set(&set, &opts) {
        Ok(o) => o,
        Err(e) => return fail(r, e.to_string()),
    };
    let report = crate::report::build(&mut outcome);
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
    // Each expected finding (then each known gap) claims the first unclaimed finding it matches.
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
    r.ok = r.error.is_none()
        && r.false_negatives.is_empty()
        && r.false_positives.is_empty()
        && r.clean_flagged.is_empty();
    r
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
