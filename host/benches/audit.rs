//! The Monday pack's cost: the seven detectors (default + weekly-audit) against
//! the four alone, and the seven over the last week (`--since 7d`, as `audit`
//! is run: the exports are read once first for their newest span), on the
//! same 1.4 M-span month, alternated in one run (these machines are shared:
//! only ratios measured together mean anything).
//!
//! `cargo bench --bench audit` (env: BENCH_REPEAT, BENCH_NOISE, BENCH_ROUNDS).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Wall seconds of one scan with these packs (and these other arguments).
fn scan(bin: &str, file: &Path, cache: &Path, packs: &[&str], more: &[&str]) -> f64 {
    let mut args = vec!["scan", "--format", "json", "-o", "/dev/null"];
    args.extend(more);
    for p in packs {
        args.extend(["--pack", p]);
    }
    let t = Instant::now();
    let st = Command::new(bin)
        .args(&args)
        .arg(file)
        .env("TOKENHOUND_CACHE_DIR", cache)
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_tokenhound");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (repeat, noise) = (env_or("BENCH_REPEAT", 10), env_or("BENCH_NOISE", 117));
    let file = dir.join(format!("month-r{repeat}-n{noise}.jsonl"));
    if !file.exists() {
        tokenhound_testgen::run(&tokenhound_testgen::Args {
            repeat,
            noise,
            ..tokenhound_testgen::Args::month(file.clone(), 42)
        })
        .unwrap();
    }
    let cache = dir.join("cache");
    let four = ["builtin:default"];
    let seven = ["builtin:default", "builtin:weekly-audit"];
    let week = ["--since", "7d"];
    scan(bin, &file, &cache, &seven, &[]); // warm the page cache and the plugin cache
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..env_or("BENCH_ROUNDS", 3) {
        a.push(scan(bin, &file, &cache, &four, &[]));
        b.push(scan(bin, &file, &cache, &seven, &[]));
        c.push(scan(bin, &file, &cache, &seven, &week));
    }
    let (four_s, seven_s, week_s) = (median(a.clone()), median(b.clone()), median(c.clone()));
    println!(
        "file: {} ({:.0} MB)",
        file.display(),
        std::fs::metadata(&file).unwrap().len() as f64 / 1e6
    );
    println!("four detectors:  {four_s:.2} s (runs {a:.2?})");
    println!("seven detectors: {seven_s:.2} s (runs {b:.2?})");
    println!("seven, --since 7d: {week_s:.2} s (runs {c:.2?})");
    println!(
        "the Monday pack costs {:+.1}% wall time; over the last week {:.2}× the time of the whole month",
        (seven_s / four_s - 1.0) * 100.0,
        week_s / seven_s
    );
}
