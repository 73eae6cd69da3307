//! The `tokenhound` command line.

use clap::{Parser, Subcommand, ValueEnum};

// Parsing exports allocates many small strings; mimalloc is much faster at that.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tokenhound::rules::{RuleSet, Severity};
use tokenhound::scan::{self, ScanError};

#[derive(Parser)]
#[command(
    name = "tokenhound",
    version,
    about = "Find where an LLM agent's tokens go"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, ValueEnum, PartialEq)]
enum Format {
    Table,
    Json,
    Markdown,
}

/// Formats of the commands that list things (no Markdown rendering).
#[derive(Copy, Clone, ValueEnum, PartialEq)]
enum ListFormat {
    Table,
    Json,
}

#[derive(Copy, Clone, ValueEnum)]
enum FailOn {
    Info,
    Low,
    Medium,
    High,
    Critical,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Run rule packs over span exports (files, folders, `-` for stdin).
    ///
    /// Exit codes: 0 no finding at or above --fail-on, 1 such findings,
    /// 2 bad usage or unreadable input, 3 invalid rule pack, 4 a detector failed to load.
    Scan {
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
        /// Findings shown in the table and Markdown (JSON lists all).
        #[arg(long, default_value_t = 10)]
        top: usize,
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
        input_format: Option<tokenhound::ingest::InputFormat>,
        /// A TOML mapping for custom instrumentation (repeatable).
        #[arg(long)]
        mapping: Vec<PathBuf>,
        /// Spans held in open traces before quiet traces are analysed early; below
        /// it, an export in any order is read exactly.
        #[arg(long, default_value_t = scan::OPEN_BUDGET)]
        open_spans: usize,
    },
    /// Show what was read: formats, dialects, counts, tokens, models, captured
    /// content, skipped records, and usage-like attributes not understood.
    Inspect {
        #[arg(required = true)]
        exports: Vec<PathBuf>,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: ListFormat,
        #[arg(long, value_enum)]
        input_format: Option<tokenhound::ingest::InputFormat>,
        #[arg(long)]
        mapping: Vec<PathBuf>,
    },
    /// Follow span directories live; hot-reload packs and plugins when they change.
    Watch {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long = "pack", short = 'p')]
        packs: Vec<PathBuf>,
        /// A folder of detector .wasm files; each runs as a rule named after its file.
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// Append findings here, one JSON object per line (a restart does not repeat them).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// A trace is complete after this many seconds without a new span…
        #[arg(long, default_value_t = 30.0)]
        quiet_secs: f64,
        /// …or this many seconds after its root span arrived.
        #[arg(long, default_value_t = 0.5)]
        grace_secs: f64,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        run_for_secs: Option<f64>,
    },
    /// Run detector tests: fixtures next to NAME.expect.toml files.
    Test {
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// List the detectors: built in, from packs, from a plugins folder.
    Detectors {
        #[arg(long = "pack", short = 'p')]
        packs: Vec<PathBuf>,
        #[arg(long)]
        plugins: Option<PathBuf>,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Start a new detector project.
    New {
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: tokenhound::scaffold::Lang,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check rule packs without running them.
    Check {
        #[arg(required = true)]
        packs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err((code, msg)) => {
            eprintln!("tokenhound: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, (u8, String)> {
    match cli.command {
        Command::Scan {
            exports,
            packs,
            format,
            output,
            fail_on,
            top,
            no_cache,
            batch_spans,
            quiet_secs,
            input_format,
            mapping,
            open_spans,
        } => {
            let opts = scan::Options {
                inputs: exports,
                packs,
                cache_dir: if no_cache {
                    None
                } else {
                    scan::default_cache_dir()
                },
                batch_spans: batch_spans.max(1),
                quiet_ns: quiet_secs.saturating_mul(1_000_000_000),
                input_format,
                mapping_files: mapping,
                open_spans,
                progress: std::io::stderr().is_terminal(),
            };
            let mut outcome =
                scan::run(&opts).map_err(|e: ScanError| (e.exit_code() as u8, e.to_string()))?;
            let report = tokenhound::report::build(&mut outcome);
            drop(outcome);
            match format {
                // Streamed: a report of many findings is never one big string.
                Format::Json => write_json(output.as_deref(), &report).map_err(|e| (2, e))?,
                Format::Table => {
                    write_out(output.as_deref(), &report.to_table(top)).map_err(|e| (2, e))?
                }
                Format::Markdown => {
                    write_out(output.as_deref(), &report.to_markdown(top)).map_err(|e| (2, e))?
                }
            }
            let threshold = match fail_on {
                FailOn::Info => Some(Severity::Info),
                FailOn::Low => Some(Severity::Low),
                FailOn::Medium => Some(Severity::Medium),
                FailOn::High => Some(Severity::High),
                FailOn::Critical => Some(Severity::Critical),
                FailOn::Never => None,
            };
            let fail = matches!((threshold, report.worst()), (Some(t), Some(w)) if w >= t);
            Ok(u8::from(fail))
        }
        Command::Watch {
            dirs,
            packs,
            plugins,
            output,
            quiet_secs,
            grace_secs,
            run_for_secs,
        } => {
            // On a terminal the live view replaces raw JSON; JSON lines go to
            // --output, or to stdout when it is a pipe or a file.
            let live = std::io::stderr().is_terminal()
                && (output.is_some() || std::io::stdout().is_terminal());
            let opts = tokenhound::watch::Options {
                dirs,
                packs,
                plugins,
                output,
                quiet: std::time::Duration::from_secs_f64(quiet_secs.max(0.0)),
                grace: std::time::Duration::from_secs_f64(grace_secs.max(0.0)),
                cache_dir: scan::default_cache_dir(),
                run_for: run_for_secs.map(|s| std::time::Duration::from_secs_f64(s.max(0.0))),
                live_view: live,
            };
            tokenhound::watch::run(&opts)
                .map(|_| 0)
                .map_err(|e| (2, format!("{e:#}")))
        }
        Command::Test { paths, format } => {
            let s = tokenhound::harness::run(&paths, scan::default_cache_dir());
            let text = match format {
                ListFormat::Json => serde_json::to_string_pretty(&s).expect("serialises") + "\n",
                ListFormat::Table => s.to_text(),
            };
            write_out(None, &text).map_err(|e| (2, e))?;
            Ok(u8::from(s.failed > 0 || s.cases.is_empty()))
        }
        Command::Detectors {
            packs,
            plugins,
            format,
        } => {
            let list = tokenhound::scaffold::list(&packs, plugins.as_deref())
                .map_err(|e| (4, format!("{e:#}")))?;
            let text = match format {
                ListFormat::Json => serde_json::to_string_pretty(&list).expect("serialises") + "\n",
                ListFormat::Table => tokenhound::scaffold::list_text(&list),
            };
            write_out(None, &text).map_err(|e| (2, e))?;
            Ok(0)
        }
        Command::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            tokenhound::scaffold::new(&name, lang, &dir).map_err(|e| (2, format!("{e:#}")))?;
            println!(
                "created {} ({lang:?}); see {}/README.md",
                dir.display(),
                dir.display()
            );
            Ok(0)
        }
        Command::Check { packs } => {
            let set =
                RuleSet::from_files(&packs).map_err(|e| (3, format!("invalid rule pack: {e}")))?;
            let engine = tokenhound::engine::Engine::new(
                scan::default_cache_dir(),
                set.wants_fuel(),
                set.max_stack,
            )
            .map_err(|e| (4, format!("{e:#}")))?;
            let runs =
                scan::prepare(&set, &engine).map_err(|e| (e.exit_code() as u8, e.to_string()))?;
            for r in runs {
                println!(
                    "ok  {:<30} {} {} ({})",
                    r.rule.id, r.plugin.meta.name, r.plugin.meta.version, r.plugin.source
                );
            }
            Ok(0)
        }
        Command::Inspect {
            exports,
            format,
            input_format,
            mapping,
        } => {
            let maps =
                scan::load_mappings(&mapping).map_err(|e| (e.exit_code() as u8, e.to_string()))?;
            let r = tokenhound::inspect::run(&exports, input_format, maps)
                .map_err(|e| (2, e.to_string()))?;
            let text = match format {
                ListFormat::Json => serde_json::to_string_pretty(&r).expect("serialises") + "\n",
                ListFormat::Table => r.to_text(),
            };
            write_out(None, &text).map_err(|e| (2, e))?;
            Ok(0)
        }
    }
}

fn write_json(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> Result<(), String> {
    let sink: Box<dyn Write> = match path {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = std::io::BufWriter::new(sink);
    serde_json::to_writer_pretty(&mut w, value).map_err(|e| format!("writing the report: {e}"))?;
    w.write_all(b"\n")
        .and_then(|_| w.flush())
        .map_err(|e| format!("writing the report: {e}"))
}

fn write_out(path: Option<&std::path::Path>, text: &str) -> Result<(), String> {
    match path {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())
                .map_err(|e| format!("stdout: {e}"))
        }
    }
}
