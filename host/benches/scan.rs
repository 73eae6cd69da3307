//! Scan benchmark: a month of 1.4 M spans (the story's size, with the non-GenAI
//! spans a real service emits), scanned with the default pack by the release
//! binary, alternated with DuckDB loading the same file and running the four
//! queries. Reports the median wall time, spans/s, MB/s, peak memory and the
//! ratio to DuckDB; every timed run's findings must equal a reference run's.
//!
//! `cargo bench --bench scan` (env: BENCH_REPEAT, BENCH_NOISE to change the
//! size, BENCH_ROUNDS for the number of alternations, 3). With
//! `BENCH_SHAPE=span-a-line` the same month is written one span a line (each
//! with its resource and scope, as an exporter that writes every span on its
//! own does): a line then holds one span, not a batch of some fifty.

use std::path::{Path, PathBuf};
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
    let file = match std::env::var("BENCH_SHAPE").as_deref() {
        Err(_) | Ok("batched") => file,
        Ok("span-a-line") => span_a_line(&file),
        Ok(other) => panic!("BENCH_SHAPE={other}: use batched (the default) or span-a-line"),
    };
    let size = std::fs::metadata(&file).unwrap().len();
    let cache = dir.join("cache");
    // The reference (which also warms the compiled-plugin cache, so the timed
    // figures are the scan itself): the same scan holding every span open, so
    // no trace is analysed early. The timed runs must find exactly what it finds.
    let reference = dir.join("reference.json");
    let ok = Command::new(bin)
        .args([
            "scan",
            "--format",
            "json",
            "--open-spans",
            "100000000",
            "-o",
        ])
        .arg(&reference)
        .arg(&file)
        .env("TOKENHOUND_CACHE_DIR", &cache)
        .status()
        .unwrap();
    assert!(ok.success());
    let want = findings_of(&reference);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // tokenhound and DuckDB alternated, so a busy moment of a shared machine
    // falls on both.
    let (mut ours, mut theirs, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    let report = dir.join("report.json");
    for _ in 0..rounds {
        let (secs, peak) = timed_scan(bin, &file, &cache, &report);
        assert!(
            findings_of(&report) == want,
            "the timed scan's findings differ from the reference run's ({})",
            reference.display()
        );
        ours.push(secs);
        peaks.push(peak);
        theirs.extend(duckdb(&file));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let spans = report["totals"]["spans"].as_u64().unwrap();
    let secs = median(&mut ours);
    let peak = peaks.iter().copied().fold(0.0, f64::max);
    println!(
        "file: {} ({:.0} MB), {} spans",
        file.display(),
        size as f64 / 1e6,
        spans
    );
    println!(
        "scan: median {secs:.2} s of {ours:.2?}, {:.0} spans/s, {:.0} MB/s; findings equal the reference run's",
        spans as f64 / secs,
        size as f64 / 1e6 / secs
    );
    println!(
        "peak memory: {:.0} MB at most ({:.1}% of the file)",
        peak / 1e6,
        peak * 100.0 / size as f64
    );
    if theirs.is_empty() {
        println!("duckdb: not measured (pip install duckdb to compare)");
    } else {
        let duck = median(&mut theirs);
        println!(
            "duckdb: median {duck:.2} s of {theirs:.2?}  →  tokenhound is {:.1}× faster",
            duck / secs
        );
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

/// The month at `file` written again one span a line, beside it (once).
fn span_a_line(file: &Path) -> PathBuf {
    use serde_json::{json, Value};
    use std::io::{BufRead, BufWriter, Write};
    let out = file.with_extension("span-a-line.jsonl");
    if out.exists() {
        return out;
    }
    let t = Instant::now();
    let input = std::io::BufReader::new(std::fs::File::open(file).unwrap());
    let partial = out.with_extension("partial");
    let mut w = BufWriter::new(std::fs::File::create(&partial).unwrap());
    for line in input.lines() {
        let doc: Value = serde_json::from_str(&line.unwrap()).unwrap();
        for rs in doc["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for span in ss["spans"].as_array().unwrap() {
                    let one = json!({"resourceSpans": [{
                        "resource": rs["resource"],
                        "scopeSpans": [{"scope": ss["scope"], "spans": [span]}],
                    }]});
                    serde_json::to_writer(&mut w, &one).unwrap();
                    w.write_all(b"\n").unwrap();
                }
            }
        }
    }
    w.flush().unwrap();
    std::fs::rename(&partial, &out).unwrap();
    eprintln!(
        "written one span a line in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    out
}

/// One timed scan: wall seconds and peak resident bytes.
fn timed_scan(bin: &str, file: &Path, cache: &Path, report: &Path) -> (f64, f64) {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(["scan", "--format", "json", "-o"])
        .arg(report)
        .arg(file)
        .env("TOKENHOUND_CACHE_DIR", cache)
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
    (secs, (peak_kib * 1024) as f64)
}

/// DuckDB loading the file and running the four queries (only where the
/// duckdb Python package is installed): its wall seconds.
fn duckdb(file: &Path) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/duckdb_queries.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    println!("  {line}");
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A report's findings, as written.
fn findings_of(report: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    v["findings"].clone()
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Peak resident memory of a running process (Linux).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
