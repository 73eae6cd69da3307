//! `tokenhound-testgen -o FILE [--truth FILE] [--seed N] [--repeat N] [--noise N]`:
//! writes a generated month (and its truth) for tests and benchmarks.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "tokenhound-testgen",
    about = "Write a generated month of agent spans and its truth"
)]
struct Cli {
    #[command(flatten)]
    args: tokenhound_testgen::Args,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = tokenhound_testgen::run(&cli.args) {
        eprintln!("tokenhound-testgen: {e:#}");
        std::process::exit(2);
    }
}
