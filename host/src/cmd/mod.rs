//! The commands, one module each, over the pipeline modules (ingest → model →
//! engine → rules → report). Each has its `Args` (parsed by clap in `main.rs`)
//! and a `run` that returns the exit code or a [`Failure`] carrying one.

pub mod audit;
pub mod check;
pub mod detectors;
pub mod diff;
pub mod inspect;
pub mod new;
pub mod scan;
pub mod test;
pub mod top;
pub mod watch;

use std::io::Write;
use std::path::Path;

/// Why a command stopped, with the exit code the README promises: 2 bad usage
/// or unreadable input, 3 an invalid rule pack, 4 a detector that fails to load.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    pub fn pack(message: impl Into<String>) -> Self {
        Failure {
            code: 3,
            message: message.into(),
        }
    }
    pub fn load(message: impl Into<String>) -> Self {
        Failure {
            code: 4,
            message: message.into(),
        }
    }
}

impl From<crate::scan::ScanError> for Failure {
    fn from(e: crate::scan::ScanError) -> Self {
        Failure {
            code: e.exit_code() as u8,
            message: e.to_string(),
        }
    }
}

/// `--since` / `--until`, for the commands that read exports.
#[derive(clap::Args)]
pub struct WindowArgs {
    /// Count from this UTC date (2026-11-01) or this far back from the newest
    /// span (7d, 24h); earlier spans are still read as context.
    #[arg(long)]
    pub since: Option<crate::scan::Bound>,
    /// Count before this UTC date, or this far back from the newest span.
    #[arg(long)]
    pub until: Option<crate::scan::Bound>,
}

/// Formats of the commands that list things (no Markdown rendering).
#[derive(Copy, Clone, clap::ValueEnum, PartialEq)]
pub enum ListFormat {
    Table,
    Json,
}

/// Text or pretty JSON, as a list command prints it.
fn listing(
    format: ListFormat,
    value: &impl serde::Serialize,
    table: impl FnOnce() -> String,
) -> String {
    match format {
        ListFormat::Json => serde_json::to_string_pretty(value).expect("serialises") + "\n",
        ListFormat::Table => table(),
    }
}

/// JSON to a file or stdout, streamed: a report of many findings is never one
/// big string.
fn write_json(path: Option<&Path>, value: &impl serde::Serialize) -> Result<(), Failure> {
    write_with(path, &mut |w| {
        serde_json::to_writer_pretty(w, value).map_err(std::io::Error::other)
    })
}

/// What `write` writes, and a newline, to a file or stdout.
fn write_with(
    path: Option<&Path>,
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let sink: Box<dyn Write> = match path {
        Some(p) => Box::new(
            std::fs::File::create(p)
                .map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    // A 1 MiB buffer: a report is written a finding (about 1.5 KB) at a
    // time, and with the default 8 KiB (behind stdout's line buffer) the
    // month's 42 MB report took 11,400 write calls; now about 80.
    let mut w = std::io::BufWriter::with_capacity(1 << 20, sink);
    let failed = |e: &dyn std::fmt::Display| Failure::usage(format!("writing the report: {e}"));
    write(&mut w).map_err(|e| failed(&e))?;
    w.write_all(b"\n")
        .and_then(|_| w.flush())
        .map_err(|e| failed(&e))
}

/// Text to a file or stdout.
fn write_out(path: Option<&Path>, text: &str) -> Result<(), Failure> {
    match path {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| Failure::usage(format!("{}: {e}", p.display())))
        }
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Failure::usage(format!("stdout: {e}"))),
    }
}
