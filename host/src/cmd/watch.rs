//! `tokenhound watch`: follow span directories live (the pipeline is
//! `crate::watch`); this module turns the command line into its options.

use super::Failure;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
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
    /// Receive OTLP/HTTP (POST /v1/traces, protobuf or JSON, gzip) on this port
    /// or address (a port alone binds 127.0.0.1); spans are spooled to
    /// DIR/tokenhound-received.jsonl before the reply.
    #[arg(long, value_name = "ADDR", value_parser = crate::receive::address)]
    listen: Option<std::net::SocketAddr>,
    /// Receive OTLP/gRPC on this port or address (a port alone binds 127.0.0.1).
    #[arg(long, value_name = "ADDR", value_parser = crate::receive::address)]
    grpc: Option<std::net::SocketAddr>,
    /// Refuse requests (HTTP 429, gRPC RESOURCE_EXHAUSTED; exporters retry)
    /// while more than this many MB of received spans are not yet read.
    #[arg(long, default_value_t = 64.0)]
    max_pending_mb: f64,
    /// Keep the restart checkpoint here (default: beside --output, as
    /// OUTPUT.checkpoint): a restart reads only what came after it.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Keep no checkpoint: a restart reads every file from the start.
    #[arg(long, conflicts_with = "checkpoint")]
    no_checkpoint: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    // On a terminal the live view replaces raw JSON; JSON lines go to --output,
    // or to stdout when it is a pipe or a file.
    let live =
        std::io::stderr().is_terminal() && (a.output.is_some() || std::io::stdout().is_terminal());
    let checkpoint = match (a.no_checkpoint, a.checkpoint, &a.output) {
        (true, _, _) => None,
        (false, Some(c), _) => Some(c),
        (false, None, Some(out)) => Some(crate::watch::checkpoint_beside(out)),
        (false, None, None) => None,
    };
    let opts = crate::watch::Options {
        dirs: a.dirs,
        packs: a.packs,
        plugins: a.plugins,
        output: a.output,
        quiet: Duration::from_secs_f64(a.quiet_secs.max(0.0)),
        grace: Duration::from_secs_f64(a.grace_secs.max(0.0)),
        cache_dir: crate::scan::default_cache_dir(),
        run_for: a.run_for_secs.map(|s| Duration::from_secs_f64(s.max(0.0))),
        live_view: live,
        listen: a.listen,
        grpc: a.grpc,
        max_pending: (a.max_pending_mb.max(0.0) * 1_048_576.0) as u64,
        checkpoint,
    };
    crate::watch::run(&opts)
        .map(|_| 0)
        .map_err(|e| Failure::usage(format!("{e:#}")))
}
