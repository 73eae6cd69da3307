//! Scan benchmark: a month of 1.4 M spans (the story's size, with the non-GenAI
//! spans a real service emits), scanned with the default pack by the release
//! binary. Reports spans/s, MB/s, wall time and peak memory against the file size.
//!
//! `cargo bench --bench scan` (env: BENCH_REPEAT, BENCH_NOISE to change the size).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

fn main() {
    let bin = env!("CARGO_BIN_EXE_tokenhound");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let repeat: u32 = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let noise: u32 = std::env::var("BENCH_NOISE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(117);
    let file = dir.join(format!("month-r{repeat}-n{noise}.jsonl"));
    if !file.exists() {
        let t = Instant::now();
        tokenhound_testgen::run(&tokenhound_testgen::Args {
            repeat,
            noise,
            ..tokenhound_testgen::Args::month(file.clone(), 42)
        })
        .unwrap();
        eprintln!("generated in {:.1}s", t.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&file).unwrap().len();
    let cache = dir.join("cache");
    // Warm the compiled-plugin cache so the figure is the scan itself.
    let _ = Command::new(bin)
        .args(["scan", "--format", "json", "-o", "/dev/null"])
        .arg(&file)
        .env("TOKENHOUND_CACHE_DIR", &cache)
        .env("BENCH_WARM", "1")
        .output();
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(["scan", "--format", "json", "-o"])
        .arg(dir.join("report.json"))
        .arg(&file)
        .env("TOKENHOUND_CACHE_DIR", &cache)
        .spawn()
        .unwrap();
    // VmHWM only grows: the last reading before exit is the peak.
    let mut peak_kib = 0;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        peak_kib = peak_kib.max(vm_hwm_kib(child.id()).unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let secs = t.elapsed().as_secs_f64();
    assert!(status.success());
    let peak = peak_kib * 1024;
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let spans = report["totals"]["spans"].as_u64().unwrap();
    println!(
        "file: {} ({:.0} MB), {} spans",
        file.display(),
        size as f64 / 1e6,
        spans
    );
    println!(
        "scan: {secs:.2} s, {:.0} spans/s, {:.0} MB/s",
        spans as f64 / secs,
        size as f64 / 1e6 / secs
    );
    println!(
        "peak memory: {:.0} MB ({:.1}% of the file)",
        peak as f64 / 1e6,
        peak as f64 * 100.0 / size as f64
    );
    // The baseline, in the same run: DuckDB loading the file and running the
    // four queries (only where the duckdb Python package is installed).
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/duckdb_queries.py");
    match Command::new("python3").arg(script).arg(&file).output() {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let duck: f64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            println!("{line}  →  tokenhound is {:.1}× faster", duck / secs);
        }
        _ => println!("duckdb: not measured (pip install duckdb to compare)"),
    }
    for d in report["detectors"].as_array().unwrap() {
        println!(
            "  {:<28} {:>6} findings {:>6.2}%",
            d["rule"].as_str().unwrap(),
            d["findings"],
            d["share_pct"].as_f64().unwrap()
        );
    }
}

/// Peak resident memory of a running process (Linux).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
