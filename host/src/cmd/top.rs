//! `tokenhound top`: the costliest LLM calls ("what was in the input on the 14
//! most expensive calls last week"), each with its input broken into parts
//! (system instructions, messages by role, tool calls and results with the file
//! they read), largest first, and the findings that charge tokens to it.

use super::{listing, write_out, Failure, ListFormat};
use crate::costliest::{Top, TopCall};
use crate::report::{clean, num};
use crate::scan;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    exports: Vec<PathBuf>,
    /// How many calls.
    #[arg(short = 'n', long, default_value_t = 14)]
    count: usize,
    /// Rule packs whose findings are shown against the calls (default: the built-in pack).
    #[arg(long = "pack", short = 'p')]
    packs: Vec<PathBuf>,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: ListFormat,
    #[arg(long, value_enum)]
    input_format: Option<crate::ingest::InputFormat>,
    #[arg(long)]
    mapping: Vec<PathBuf>,
    #[command(flatten)]
    window: super::WindowArgs,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let opts = scan::Options {
        inputs: a.exports,
        packs: a.packs,
        input_format: a.input_format,
        mapping_files: a.mapping,
        progress: std::io::stderr().is_terminal(),
        costliest: a.count,
        since: a.window.since,
        until: a.window.until,
        ..scan::Options::default()
    };
    let mut outcome = scan::run(&opts)?;
    let top = crate::costliest::build(&mut outcome);
    write_out(None, &listing(a.format, &top, || top.to_text()))?;
    Ok(0)
}

impl Top {
    pub fn calls_len(&self) -> usize {
        self.calls.len()
    }

    /// The calls as a Markdown table: cost, model, tokens, the largest part
    /// of the input, what charges them.
    pub fn to_markdown(&self) -> String {
        let mut o = String::from(
            "| # | cost | model | tokens | largest input part | charged by |\n|---:|---:|---|---:|---|---|\n",
        );
        for (i, c) in self.calls.iter().enumerate() {
            let k = &c.call;
            let part = c.parts.first().map_or("input not captured".into(), |p| {
                format!("{} ({} tokens)", clean(&p.part.title()), num(p.tokens))
            });
            let by: Vec<String> = c
                .findings
                .iter()
                .map(|f| format!("{} ({})", f.rule, num(f.tokens)))
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                i + 1,
                k.cost_usd.map_or("-".into(), crate::report::usd),
                clean(k.model.as_deref().unwrap_or("-")),
                num(k.total_tokens),
                part.replace('|', "\\|"),
                if by.is_empty() {
                    "-".into()
                } else {
                    by.join(", ")
                }
            );
        }
        o
    }

    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "The {} costliest of {} LLM calls, at list prices (prices of {}):",
            self.calls.len(),
            num(self.llm_calls),
            crate::prices::AS_OF
        );
        for (i, c) in self.calls.iter().enumerate() {
            call_text(&mut o, i + 1, c);
        }
        o
    }
}

fn call_text(o: &mut String, rank: usize, c: &TopCall) {
    let k = &c.call;
    let cost = k.cost_usd.map_or("-".into(), crate::report::usd);
    let model = clean(k.model.as_deref().unwrap_or("(unknown model)"));
    let _ = writeln!(
        o,
        "\n{rank:>3}. {cost}  {model}  {} tokens ({} in, {} cached, {} out)  {}",
        num(k.total_tokens),
        num(k.usage.input),
        num(k.usage.cache_read),
        num(k.usage.output),
        crate::model::utc_minute(k.start_ns)
    );
    let _ = writeln!(
        o,
        "     session {}, trace {}, span {}",
        clean(&k.session),
        clean(&k.trace_id),
        clean(&k.span_id)
    );
    if c.parts.is_empty() {
        let _ = writeln!(o, "     input: not captured");
    } else {
        let bytes: u64 = c.parts.iter().map(|p| p.part.bytes).sum();
        let _ = writeln!(
            o,
            "     input: {} bytes ≈ {} content tokens, {} part{}",
            num(bytes),
            num(c.input_content_tokens),
            c.parts.len(),
            if c.parts.len() == 1 { "" } else { "s" }
        );
    }
    for p in c.parts.iter().take(8) {
        let what = p.part.named().unwrap_or_else(|| p.part.role.to_string());
        let what = clean(&what);
        let _ = writeln!(
            o,
            "       {:<12} {:<36} {:>10} B {:>8} tok",
            p.part.kind.label(),
            what,
            num(p.part.bytes),
            num(p.tokens)
        );
    }
    if c.parts.len() > 8 {
        let _ = writeln!(
            o,
            "       … {} more parts (all in --format json)",
            c.parts.len() - 8
        );
    }
    for f in &c.findings {
        let _ = writeln!(
            o,
            "     charged by {}: {} ({} tokens)",
            f.rule,
            clean(&f.title),
            num(f.tokens)
        );
    }
}
