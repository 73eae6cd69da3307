//! Cost grows linearly with the work, in every dimension: spans/s and peak
//! memory of `scan` (release binary, default pack) on
//!
//! - the generated month at 1×, 2× and 4× (read from stdin, as a pipe),
//! - ten times the 1× months, generated as one run of consecutive months,
//!   against the 1× from the same run (also from stdin): the same spans/s and
//!   the same peak memory, with ten times the findings,
//! - the 4× spans as one very long session (every conversation id made one),
//! - the same spans in 10,000 small files of a folder,
//! - gzip and zstd copies of the 1× month,
//! - the 1× month as OTLP protobuf and as Phoenix span JSONL (other readers),
//! - 100,000 turns of one long-lived agent as one session, against the same
//!   turns in their sessions (BENCH_LONG_TURNS to change the number).
//!
//! `cargo bench --bench linear` (env: BENCH_REPEAT, the 1× size in months, default
//! 2; BENCH_NOISE, ordinary spans per turn, default 40; BENCH_ROUNDS, scans of
//! each input, default 3). All runs in one process, the rounds interleaved, each
//! input's median time taken, so their ratios compare.

#[path = "../tests/common/phoenix.rs"]
mod phoenix;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One scan: wall seconds, peak RSS in MB, spans counted.
struct Run {
    secs: f64,
    peak_mb: f64,
    spans: u64,
    findings: u64,
}

/// Scan `input` (a path, or `-` with `stdin` fed from these files in turn).
fn scan(bin: &str, cache: &Path, input: &str, stdin: &[PathBuf]) -> Run {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(["scan", "--format", "json", input])
        .env("TOKENHOUND_CACHE_DIR", cache)
        .stdin(if stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let feeder = child.stdin.take().map(|mut w| {
        let files = stdin.to_vec();
        std::thread::spawn(move || {
            for f in files {
                let mut r = std::fs::File::open(f).unwrap();
                std::io::copy(&mut r, &mut w).unwrap();
            }
        })
    });
    let pid = child.id();
    let mut peak_kib = 0u64;
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(out), &mut s).unwrap();
        s
    });
    while child.try_wait().unwrap().is_none() {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let report: serde_json::Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    Run {
        secs: t.elapsed().as_secs_f64(),
        peak_mb: peak_kib as f64 / 1024.0,
        spans: report["totals"]["spans"].as_u64().unwrap(),
        findings: report["summary"]["findings"].as_u64().unwrap(),
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn generate(path: &Path, seed: u64, repeat: u32, noise: u32) {
    if !path.exists() {
        tokenhound_testgen::run(&tokenhound_testgen::Args {
            repeat,
            noise,
            ..tokenhound_testgen::Args::month(path.to_path_buf(), seed)
        })
        .unwrap();
    }
}

/// The same spans with every conversation id replaced by one: a single session.
fn one_session(from: &[PathBuf], to: &Path) {
    rewrite(from, to, true, 1);
}

/// Rewrite the spans of `from` into `to`: all in one session if `one`, and
/// their times squeezed `squeeze`-fold towards the first span's start (so a
/// generated run of many months fits in one, as a long-lived agent's would).
fn rewrite(from: &[PathBuf], to: &Path, one: bool, squeeze: u64) {
    if to.exists() {
        return;
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(to).unwrap());
    let lines = from
        .iter()
        .flat_map(|f| std::io::BufReader::new(std::fs::File::open(f).unwrap()).lines());
    let mut base = None;
    for line in lines {
        let line = line.unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for rs in v["resourceSpans"].as_array_mut().unwrap() {
            for ss in rs["scopeSpans"].as_array_mut().unwrap() {
                for s in ss["spans"].as_array_mut().unwrap() {
                    squeeze_times(s, &mut base, squeeze);
                    if one {
                        set_session(s, "one-long-session");
                    }
                }
            }
        }
        serde_json::to_writer(&mut w, &v).unwrap();
        w.write_all(b"\n").unwrap();
    }
}

fn set_session(s: &mut serde_json::Value, id: &str) {
    let attrs = s["attributes"].as_array_mut().unwrap();
    if !attrs.iter().any(|a| a["key"] == "gen_ai.conversation.id") {
        attrs.push(serde_json::json!({"key": "gen_ai.conversation.id", "value": {}}));
    }
    for a in attrs.iter_mut() {
        if a["key"] == "gen_ai.conversation.id" {
            a["value"] = serde_json::json!({"stringValue": id});
        }
    }
}

fn squeeze_times(s: &mut serde_json::Value, base: &mut Option<u64>, k: u64) {
    if k == 1 {
        return;
    }
    for key in ["startTimeUnixNano", "endTimeUnixNano"] {
        let t: u64 = s[key].as_str().unwrap().parse().unwrap();
        let b = *base.get_or_insert(t);
        s[key] = serde_json::json!((b + t.saturating_sub(b) / k).to_string());
    }
}

/// The spans of `from` spread over `n` files in a folder, in order: each OTLP
/// line is cut into records of a few spans (same resource and scope), so there
/// are enough records for `n` files (a line of the month holds hundreds).
fn small_files(from: &Path, dir: &Path, n: usize) {
    if dir.exists() {
        return;
    }
    std::fs::create_dir_all(dir).unwrap();
    let text = std::fs::read_to_string(from).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spans_of = |ss: &serde_json::Value| ss["spans"].as_array().map_or(0, Vec::len);
    let all: usize = lines
        .iter()
        .flat_map(|l| l["resourceSpans"].as_array().unwrap())
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .map(spans_of)
        .sum();
    // Records of a few spans: a scope holds few, so cut at a quarter of the
    // spans per file or the records would be fewer than the files.
    let per = (all / n / 4).max(1);
    let mut records = Vec::new();
    for line in &lines {
        for rs in line["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for chunk in ss["spans"].as_array().unwrap().chunks(per) {
                    let scope = serde_json::json!({ "scope": ss["scope"], "spans": chunk });
                    let res =
                        serde_json::json!({ "resource": rs["resource"], "scopeSpans": [scope] });
                    records.push(serde_json::json!({ "resourceSpans": [res] }).to_string());
                }
            }
        }
    }
    let files = n.min(records.len());
    for i in 0..files {
        let chunk = &records[i * records.len() / files..(i + 1) * records.len() / files];
        std::fs::write(
            dir.join(format!("part-{i:05}.jsonl")),
            chunk.join("\n") + "\n",
        )
        .unwrap();
    }
}

/// The 1× month in two other formats, the same spans: OTLP protobuf as the
/// Collector's file exporter writes it (length-prefixed `TracesData`, decoded
/// from the JSON lines by opentelemetry-proto's own serde support), and
/// Phoenix's span JSONL (one span a line, written as `tests/formats.rs` writes
/// its twin), which the record readers take.
fn other_formats(from: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    use opentelemetry_proto::tonic::trace::v1::TracesData;
    let proto = dir.join("month.pb");
    let phoenix = dir.join("month.phoenix.jsonl");
    if proto.exists() && phoenix.exists() {
        return (proto, phoenix);
    }
    let mut pb = std::io::BufWriter::new(std::fs::File::create(&proto).unwrap());
    let mut ph = std::io::BufWriter::new(std::fs::File::create(&phoenix).unwrap());
    for line in std::io::BufReader::new(std::fs::File::open(from).unwrap()).lines() {
        let line = line.unwrap();
        let msg: TracesData = serde_json::from_str(&line).expect("OTLP JSON line");
        let bytes = prost::Message::encode_to_vec(&msg);
        pb.write_all(&(bytes.len() as u32).to_be_bytes()).unwrap();
        pb.write_all(&bytes).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        for rs in doc["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    serde_json::to_writer(&mut ph, &phoenix::span(s)).unwrap();
                    ph.write_all(b"\n").unwrap();
                }
            }
        }
    }
    pb.flush().unwrap();
    ph.flush().unwrap();
    (proto, phoenix)
}

fn compressed(from: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let gz = dir.join("month.jsonl.gz");
    let zst = dir.join("month.jsonl.zst");
    if !gz.exists() {
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        std::io::copy(&mut std::fs::File::open(from).unwrap(), &mut e).unwrap();
        e.finish().unwrap();
    }
    if !zst.exists() {
        let data = std::fs::read(from).unwrap();
        let c = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        std::fs::write(&zst, c).unwrap();
    }
    (gz, zst)
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_tokenhound");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-linear");
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("cache");
    let (repeat, noise) = (env_or("BENCH_REPEAT", 2), env_or("BENCH_NOISE", 40));
    // Four distinct months (other seeds, other ids), to make 1×, 2× and 4×.
    let months: Vec<PathBuf> = (0..4)
        .map(|k| {
            let p = dir.join(format!("month-{k}-r{repeat}-n{noise}.jsonl"));
            generate(&p, 100 + k as u64, repeat, noise);
            p
        })
        .collect();
    let base = &months[0];
    // Consecutive months (not copies of one period): 1× and 10× of one run.
    let consecutive = |k: u32| {
        let p = dir.join(format!("consecutive-r{}-n{noise}.jsonl", repeat * k));
        generate(&p, 300, repeat * k, noise);
        p
    };
    let (c1, c10) = (consecutive(1), consecutive(10));
    let long = dir.join(format!("one-session-r{repeat}-n{noise}.jsonl"));
    one_session(&months, &long);
    let files = dir.join(format!("files-10k-r{repeat}-n{noise}"));
    small_files(base, &files, 10_000);
    let (gz, zst) = compressed(base, &dir);
    let (proto, phoenix) = other_formats(base, &dir);
    // A long-lived agent: BENCH_LONG_TURNS (100,000) turns in one
    // conversation, against the same turns in the generator's sessions.
    let turns = env_or("BENCH_LONG_TURNS", 100_000);
    let span = turns.div_ceil(TURNS_PER_MONTH);
    let generated = dir.join(format!("turns-{turns}-generated.jsonl"));
    generate(&generated, 7, span, 0);
    // The generator writes one month after another; squeezed into one month
    // (times beyond a year from now would read as clock errors).
    let many = dir.join(format!("turns-{turns}.jsonl"));
    rewrite(std::slice::from_ref(&generated), &many, false, span.into());
    let one = dir.join(format!("turns-{turns}-one-session.jsonl"));
    rewrite(std::slice::from_ref(&generated), &one, true, span.into());

    let path = |p: &Path| p.to_str().unwrap().to_string();
    let inputs: Vec<Input> = vec![
        Input::piped("1× (stdin)", &months[..1]),
        Input::piped("2× (stdin)", &months[..2]),
        Input::piped("4× (stdin)", &months[..4]),
        Input::piped("1× consecutive (stdin)", std::slice::from_ref(&c1)),
        Input::piped("10× consecutive (stdin)", std::slice::from_ref(&c10)),
        Input::named("4× as one long session", path(&long)),
        Input::named(
            &format!("1× in {} files", std::fs::read_dir(&files).unwrap().count()),
            path(&files),
        ),
        Input::named("1× gzip", path(&gz)),
        Input::named("1× zstd", path(&zst)),
        Input::named("1× OTLP protobuf", path(&proto)),
        Input::named("1× Phoenix JSONL", path(&phoenix)),
        Input::named(&format!("{turns} turns, sessions"), path(&many)),
        Input::named(&format!("{turns} turns, one session"), path(&one)),
    ];
    let _ = scan(bin, &cache, base.to_str().unwrap(), &[]); // warm caches
    let runs = in_rounds(bin, &cache, &inputs, env_or("BENCH_ROUNDS", 3).max(1));
    // The 1× month in every form (files, compressed, other formats) is read
    // as the same spans with the same findings.
    for (name, r) in runs
        .iter()
        .filter(|(n, _)| n.starts_with("1× ") && !n.contains("consecutive"))
    {
        let first = &runs[0].1;
        assert_eq!(
            (r.spans, r.findings),
            (first.spans, first.findings),
            "{name} against 1×"
        );
    }
    let rate = |r: &Run| r.spans as f64 / r.secs;
    let first = rate(&runs[0].1);
    println!(
        "{:<26} {:>10} {:>9} {:>8} {:>12} {:>9} {:>9}",
        "input", "spans", "findings", "median s", "spans/s", "vs 1×", "peak MB"
    );
    for (name, r) in &runs {
        println!(
            "{name:<26} {:>10} {:>9} {:>8.2} {:>12.0} {:>8.2}× {:>9.0}",
            r.spans,
            r.findings,
            r.secs,
            rate(r),
            rate(r) / first,
            r.peak_mb
        );
    }
    let (c1, c10) = (&runs[3].1, &runs[4].1);
    println!(
        "10× consecutive months: {:.2}× the spans/s and {:.2}× the peak memory of their 1×",
        rate(c10) / rate(c1),
        c10.peak_mb / c1.peak_mb
    );
    let (sessions, long) = (&runs[runs.len() - 2].1, &runs[runs.len() - 1].1);
    println!(
        "{turns} turns in one session: {:.2}× the spans/s of the same turns in their sessions",
        rate(long) / rate(sessions)
    );
}

/// What one line of the table scans: a path, or files fed to stdin (`-`).
struct Input {
    name: String,
    input: String,
    stdin: Vec<PathBuf>,
}

impl Input {
    fn piped(name: &str, files: &[PathBuf]) -> Self {
        Input {
            name: name.into(),
            input: "-".into(),
            stdin: files.to_vec(),
        }
    }

    fn named(name: &str, path: String) -> Self {
        Input {
            name: name.into(),
            input: path,
            stdin: Vec::new(),
        }
    }
}

/// Every input scanned `rounds` times, the rounds interleaved (forwards, then
/// backwards, so a drift of the machine touches every input alike): its median
/// time and its highest peak. One scan of a third of a second moved by half
/// from run to run on a shared machine, so one run's ratios told more about
/// the machine than about the scan. Each round must find the same.
fn in_rounds(bin: &str, cache: &Path, inputs: &[Input], rounds: u32) -> Vec<(String, Run)> {
    let mut all: Vec<Vec<Run>> = inputs.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            all[i].push(scan(bin, cache, &inputs[i].input, &inputs[i].stdin));
        }
    }
    inputs
        .iter()
        .zip(all)
        .map(|(i, runs)| (i.name.clone(), median(&i.name, runs)))
        .collect()
}

/// The median time of runs that must agree on what they found, with the
/// highest peak memory of any.
fn median(name: &str, mut runs: Vec<Run>) -> Run {
    let (spans, findings) = (runs[0].spans, runs[0].findings);
    assert!(
        runs.iter().all(|r| (r.spans, r.findings) == (spans, findings)),
        "{name}: the rounds found different numbers of spans or findings; a scan must find the same every time"
    );
    let peak_mb = runs.iter().map(|r| r.peak_mb).fold(0.0, f64::max);
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    Run {
        secs: runs[runs.len() / 2].secs,
        peak_mb,
        spans,
        findings,
    }
}

/// Turns (traces) in one generated month.
const TURNS_PER_MONTH: u32 = 1_100;
