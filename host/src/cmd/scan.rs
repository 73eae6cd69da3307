//! `tokenhound scan`: run rule packs over span exports and report; the exit
//! code gates CI (`--fail-on`).

use super::{write_out, write_with, Failure};
use crate::rules::Severity;
use crate::scan;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Copy, Clone, clap::ValueEnum, PartialEq)]
pub enum Format {
    Table,
    Json,
    Markdown,
    /// one self-contained page with charts (opens from disk, no network)
    Html,
}

#[derive(Copy, Clone, clap::ValueEnum)]
pub enum FailOn {
    Info,
    Low,
    Medium,
    High,
    Critical,
    Never,
}

impl FailOn {
    fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Info => Some(Severity::Info),
            FailOn::Low => Some(Severity::Low),
            FailOn::Medium => Some(Severity::Medium),
            FailOn::High => Some(Severity::High),
            FailOn::Critical => Some(Severity::Critical),
            FailOn::Never => None,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    exports: Vec<PathBuf>,
    /// Rule pack (TOML); repeat to layer packs. Default: the built-in pack.
    #[arg(long = "pack", short = 'p')]
    packs: Vec<PathBuf>,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Exit 1 when a finding has this severity or higher.
    #[arg(long, value_enum, default_value = "never")]
    fail_on: FailOn,
    /// Patterns shown in the table and Markdown, and findings in Markdown
    /// (JSON and HTML list all).
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Findings listed one by one in the table, largest first.
    #[arg(long, default_value_t = 0)]
    findings: usize,
    /// Do not read or write the compiled-plugin cache.
    #[arg(long)]
    no_cache: bool,
    /// Spans per detector batch.
    #[arg(long, default_value_t = 8192)]
    batch_spans: usize,
    /// A trace is complete when the export's clock is this many seconds past its
    /// last span (and its root has arrived); then detectors see it.
    #[arg(long, default_value_t = 300)]
    quiet_secs: u64,
    /// Read the exports as this format instead of recognising it.
    #[arg(long, value_enum)]
    input_format: Option<crate::ingest::InputFormat>,
    /// A TOML mapping for custom instrumentation (repeatable).
    #[arg(long)]
    mapping: Vec<PathBuf>,
    /// Spans held in open traces before quiet traces are analysed early; below
    /// it, an export in any order is read exactly.
    #[arg(long, default_value_t = scan::OPEN_BUDGET)]
    open_spans: usize,
    /// An earlier JSON report: its daily totals stand for the previous period
    /// when the exports do not hold it (budget-pace).
    #[arg(long)]
    baseline: Option<PathBuf>,
    #[command(flatten)]
    window: super::WindowArgs,
    /// Compare before and after this UTC date (or this far back from the
    /// newest span) inside the exports: the diff of the two halves, each
    /// scanned as a window (the other half read as context).
    #[arg(long, value_name = "DATE")]
    split_at: Option<scan::Bound>,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let opts = scan::Options {
        inputs: a.exports,
        packs: a.packs,
        cache_dir: if a.no_cache {
            None
        } else {
            scan::default_cache_dir()
        },
        batch_spans: a.batch_spans.max(1),
        quiet_ns: a.quiet_secs.saturating_mul(1_000_000_000),
        input_format: a.input_format,
        mapping_files: a.mapping,
        open_spans: a.open_spans,
        progress: std::io::stderr().is_terminal(),
        // The HTML report shows the costliest calls with their input.
        costliest: if a.format == Format::Html { 14 } else { 0 },
        baseline: a.baseline,
        since: a.window.since,
        until: a.window.until,
        findings_in_memory: scan::FINDINGS_IN_MEMORY,
    };
    if let Some(at) = a.split_at {
        return split(&opts, at, &a.format, a.output.as_deref(), a.top);
    }
    let mut outcome = scan::run(&opts)?;
    // Only the HTML report shows the costliest calls (the others kept none).
    let top = (a.format == Format::Html).then(|| crate::costliest::build(&mut outcome));
    let mut report = crate::report::build(&mut outcome);
    drop(outcome);
    let out = a.output.as_deref();
    match a.format {
        Format::Json => write_with(out, &mut |w| report.write_json(w))?,
        Format::Table => write_out(out, &report.to_table(a.top, a.findings))?,
        Format::Markdown => write_out(out, &report.to_markdown(a.top))?,
        Format::Html => {
            let extras = crate::report::html::Extras {
                title: "tokenhound report",
                costliest: top.as_ref(),
                ..Default::default()
            };
            write_out(out, &crate::report::html::page(&report, &extras))?
        }
    }
    let fail = matches!((a.fail_on.threshold(), report.worst()), (Some(t), Some(w)) if w >= t);
    Ok(u8::from(fail))
}

/// `--split-at`: the exports scanned twice, before and after the date, and
/// the two reports compared as `tokenhound diff` compares files.
fn split(
    opts: &scan::Options,
    at: scan::Bound,
    format: &Format,
    out: Option<&std::path::Path>,
    top: usize,
) -> Result<u8, Failure> {
    let half = |since, until, label: String| -> Result<_, Failure> {
        let o = scan::Options {
            since,
            until,
            ..opts.clone()
        };
        let report = crate::report::build(&mut scan::run(&o)?);
        Ok((label, crate::report::diff::Side::of(&report)))
    };
    let before = half(
        opts.since.clone(),
        Some(at.clone()),
        "before the split".into(),
    )?;
    let after = half(Some(at), opts.until.clone(), "from the split on".into())?;
    let d = crate::report::diff::compare((&before.0, before.1), (&after.0, after.1));
    let format = match format {
        Format::Json => super::diff::Format::Json,
        Format::Table => super::diff::Format::Table,
        Format::Markdown => super::diff::Format::Markdown,
        Format::Html => {
            return Err(Failure::usage(
                "--split-at writes a table, Markdown or JSON (a diff has no HTML form yet)",
            ))
        }
    };
    super::diff::show(&d, format, out, top)?;
    Ok(0)
}
