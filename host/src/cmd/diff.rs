//! `tokenhound diff BEFORE.json AFTER.json`: proof that a fix worked (or a
//! CI gate that a change did not make a pattern grow, `--fail-on-growth`).

use super::{write_json, write_out, Failure};
use crate::report::diff::{self, Diff, Side};
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, clap::ValueEnum, PartialEq)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

#[derive(clap::Args)]
pub struct Args {
    /// The JSON report before the change (`scan --format json`, or an audit's JSON).
    before: PathBuf,
    /// The JSON report after it.
    after: PathBuf,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: Format,
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Exit 1 when a pattern's share of all tokens grew by more than PCT %
    /// (relative: 10 → 12% is +20%); a new pattern counts as grown.
    #[arg(long, value_name = "PCT")]
    fail_on_growth: Option<f64>,
    /// Changed patterns listed in the table and Markdown (JSON lists all).
    #[arg(long, default_value_t = 10)]
    top: usize,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let d = diff::compare(
        (&a.before.display().to_string(), read(&a.before)?),
        (&a.after.display().to_string(), read(&a.after)?),
    );
    show(&d, a.format, a.output.as_deref(), a.top)?;
    Ok(gate(&d, a.fail_on_growth))
}

/// A side from a JSON report file; a bad one names the file and what is wrong.
fn read(path: &Path) -> Result<Side, Failure> {
    let bad = |why: String| Failure::usage(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    Side::from_json(v).map_err(bad)
}

/// Write the diff in the format asked for.
pub fn show(d: &Diff, format: Format, out: Option<&Path>, top: usize) -> Result<(), Failure> {
    match format {
        Format::Json => write_json(out, d),
        Format::Table => write_out(out, &d.to_table(top)),
        Format::Markdown => write_out(out, &d.to_markdown(top)),
    }
}

/// 1 when a pattern grew past the limit, named on stderr; else 0.
fn gate(d: &Diff, limit: Option<f64>) -> u8 {
    let Some(limit) = limit else {
        return 0;
    };
    let grown = d.grown_over(limit);
    for r in &grown {
        let by = r
            .change_pct
            .map_or("new".to_string(), |p| format!("{p:+.0}%"));
        eprintln!(
            "tokenhound: pattern grew past {limit}%: {} ({by})",
            crate::report::clean(&r.name())
        );
    }
    u8::from(!grown.is_empty())
}
