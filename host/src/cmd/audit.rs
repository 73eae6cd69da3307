//! `tokenhound audit`: the Monday routine in one command. The four detectors
//! and the weekly audit's three (tail latency, error patterns, budget pace),
//! the patterns they found, the costliest calls with what was in their input,
//! and, given last week's JSON report, what is new, what grew and what is gone.

use super::{write_json, write_out, Failure};
use crate::report::diff::{self, Change, Side};
use crate::report::{clean, Report};
use crate::scan;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Copy, Clone, clap::ValueEnum, PartialEq)]
pub enum Format {
    Markdown,
    Json,
    /// one self-contained page with charts
    Html,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    exports: Vec<PathBuf>,
    /// Count from this UTC date or this far back from the newest span (default: all).
    #[arg(long)]
    since: Option<scan::Bound>,
    /// Last week's JSON audit or report: what changed since, and the previous
    /// period for the budget alert.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Packs to run (default: builtin:default then builtin:weekly-audit).
    #[arg(long = "pack", short = 'p')]
    packs: Vec<PathBuf>,
    /// How many costliest calls.
    #[arg(short = 'n', long, default_value_t = 14)]
    count: usize,
    /// Patterns listed.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[arg(long, short = 'f', value_enum, default_value = "markdown")]
    format: Format,
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

/// `tokenhound.audit/v1`: the report, the costliest calls, the changes.
#[derive(Serialize)]
struct Audit {
    schema: &'static str,
    report: Report,
    costliest: crate::costliest::Top,
    #[serde(skip_serializing_if = "Option::is_none")]
    since_last: Option<Changes>,
}

/// Patterns compared with the baseline's, by rule and pattern, as shares of
/// all tokens (`tokenhound diff` over the two reports).
#[derive(Serialize, Default)]
struct Changes {
    new: Vec<String>,
    grown: Vec<Grown>,
    gone: Vec<String>,
}

#[derive(Serialize)]
struct Grown {
    pattern: String,
    share_pct_then: f64,
    share_pct_now: f64,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let packs = if a.packs.is_empty() {
        vec![
            PathBuf::from("builtin:default"),
            PathBuf::from("builtin:weekly-audit"),
        ]
    } else {
        a.packs
    };
    let opts = scan::Options {
        inputs: a.exports,
        packs,
        progress: std::io::stderr().is_terminal(),
        costliest: a.count,
        since: a.since,
        baseline: a.baseline.clone(),
        ..scan::Options::default()
    };
    let mut outcome = scan::run(&opts)?;
    let costliest = crate::costliest::build(&mut outcome);
    let report = crate::report::build(&mut outcome);
    let since_last = match &a.baseline {
        Some(p) => Some(changes(&report, p)?),
        None => None,
    };
    let audit = Audit {
        schema: "tokenhound.audit/v1",
        report,
        costliest,
        since_last,
    };
    match a.format {
        Format::Json => write_json(a.output.as_deref(), &audit)?,
        Format::Markdown => write_out(a.output.as_deref(), &audit.to_markdown(a.top))?,
        Format::Html => write_out(a.output.as_deref(), &audit.to_html())?,
    }
    Ok(0)
}

impl Grown {
    fn text(&self) -> String {
        format!(
            "{} ({:.2}% → {:.2}% of all tokens)",
            self.pattern, self.share_pct_then, self.share_pct_now
        )
    }
}

/// What changed against the patterns of an earlier JSON report or audit.
fn changes(now: &Report, baseline: &std::path::Path) -> Result<Changes, Failure> {
    let bad = |why: String| Failure::usage(format!("--baseline {}: {why}", baseline.display()));
    let text = std::fs::read_to_string(baseline).map_err(|e| bad(e.to_string()))?;
    let then = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let then = Side::from_json(then).map_err(bad)?;
    let d = diff::compare(("last week", then), ("now", Side::of(now)));
    let mut c = Changes::default();
    for r in d.patterns {
        let share = |f: &Option<diff::Figures>| f.as_ref().map_or(0.0, |f| f.share_pct);
        match r.change {
            Change::New => c.new.push(r.name()),
            Change::Gone => c.gone.push(r.name()),
            Change::Grown => c.grown.push(Grown {
                pattern: r.name(),
                share_pct_then: share(&r.before),
                share_pct_now: share(&r.after),
            }),
            Change::Shrunk | Change::Same => {}
        }
    }
    Ok(c)
}

impl Audit {
    fn to_html(&self) -> String {
        let since_last = self.since_last.as_ref().map_or(Vec::new(), |c| {
            let grown = c.grown.iter().map(Grown::text).collect();
            vec![
                ("new patterns", c.new.clone()),
                ("grown", grown),
                ("gone", c.gone.clone()),
            ]
        });
        let extras = crate::report::html::Extras {
            title: "Weekly audit",
            costliest: Some(&self.costliest),
            since_last,
        };
        crate::report::html::page(&self.report, &extras)
    }

    fn to_markdown(&self, top: usize) -> String {
        let mut o = String::from("# Weekly audit\n\n");
        if let Some(c) = &self.since_last {
            o.push_str("## Since last week\n\n");
            let list = |o: &mut String, what: &str, items: &[String]| {
                if items.is_empty() {
                    let _ = writeln!(o, "- {what}: none");
                } else {
                    let _ = writeln!(
                        o,
                        "- {what}: {}",
                        items
                            .iter()
                            .map(|i| clean(i).into_owned())
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            };
            list(&mut o, "new patterns", &c.new);
            let grown: Vec<String> = c.grown.iter().map(Grown::text).collect();
            list(&mut o, "grown", &grown);
            list(&mut o, "gone", &c.gone);
            o.push('\n');
        }
        let report = self.report.to_markdown(top);
        o.push_str(report.trim_start_matches("# tokenhound report\n\n"));
        let _ = writeln!(
            o,
            "\n## The {} costliest calls\n\n{}",
            self.costliest.calls_len(),
            self.costliest.to_markdown()
        );
        o
    }
}
