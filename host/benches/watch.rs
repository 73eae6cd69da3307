//! Watch benchmark: the time from a span line being written to its finding in
//! `--output`, from a detector file changing to the new version loaded, and
//! from a restart to the first new finding with 3 and 30 retained files (a
//! generated month of 11,000 spans each), from the checkpoint and
//! (`--no-checkpoint`) by replaying them.
//! `cargo bench --bench watch`. Figures depend on `--grace-secs` (how long a
//! trace waits after its root span): both the default and a short one are run.

use serde_json::json;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn turn(trace: &str) -> String {
    let span =
        |id: u32, parent: Option<u32>, name: &str, attrs: serde_json::Value, err: bool, t: u64| {
            let mut s = json!({"traceId": trace, "spanId": format!("{id:016x}"), "name": name,
            "startTimeUnixNano": t.to_string(), "endTimeUnixNano": (t + 1000).to_string(),
            "attributes": attrs, "status": {"code": if err { 2 } else { 0 }}});
            if let Some(p) = parent {
                s["parentSpanId"] = json!(format!("{p:016x}"));
            }
            s
        };
    let kv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let mut spans = vec![span(
        1,
        None,
        "invoke_agent a",
        json!([kv("gen_ai.operation.name", "invoke_agent")]),
        false,
        1,
    )];
    for i in 0..3u32 {
        spans.push(span(
            10 + i,
            Some(1),
            "execute_tool t",
            json!([
                kv("gen_ai.operation.name", "execute_tool"),
                kv("gen_ai.tool.name", "t"),
                kv("error.type", "x")
            ]),
            true,
            10 + i as u64 * 10,
        ));
        spans.push(span(20 + i, Some(1), "chat m", json!([kv("gen_ai.operation.name", "chat"), kv("gen_ai.output.messages", "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Sure! ok\"}]}]")]), false, 15 + i as u64 * 10));
    }
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string() + "\n"
}

fn count(out: &Path, rule: &str) -> usize {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("\"rule\":\"{rule}\"")))
        .count()
}

fn run(grace: &str) {
    let bin = env!("CARGO_BIN_EXE_tokenhound");
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&spans).unwrap();
    std::fs::create_dir(&plugins).unwrap();
    let pdir = Path::new(tokenhound::builtin::PLUGIN_DIR);
    std::fs::copy(pdir.join("retry_storm.wasm"), plugins.join("custom.wasm")).unwrap();
    let out = dir.path().join("out.jsonl");
    let mut child = Command::new(bin)
        .args([
            "watch",
            spans.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--grace-secs",
            grace,
            "--plugins",
            plugins.to_str().unwrap(),
        ])
        .env("TOKENHOUND_CACHE_DIR", dir.path().join("cache"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send((Instant::now(), line));
        }
    });
    let file = spans.join("live.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .unwrap();
    let mut lat = Vec::new();
    for i in 0..11 {
        let before = count(&out, "custom");
        let t = Instant::now();
        f.write_all(turn(&format!("{i:032x}")).as_bytes()).unwrap();
        f.flush().unwrap();
        while count(&out, "custom") == before {
            std::thread::sleep(Duration::from_millis(1));
        }
        if i > 0 {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "grace {grace} s: line → finding: median {:.0} ms, max {:.0} ms (10 turns)",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );

    // Swap the detector file; time until the watcher says it reloaded.
    while rx.try_recv().is_ok() {}
    let mut reloads = Vec::new();
    for (k, name) in [
        "filler_preamble.wasm",
        "retry_storm.wasm",
        "filler_preamble.wasm",
    ]
    .iter()
    .enumerate()
    {
        let tmp = plugins.join(format!("next{k}.tmp"));
        std::fs::copy(pdir.join(name), &tmp).unwrap();
        let t = Instant::now();
        std::fs::rename(&tmp, plugins.join("custom.wasm")).unwrap();
        loop {
            let (at, line) = rx.recv_timeout(Duration::from_secs(60)).expect("no reload");
            if line.contains("reloaded") {
                reloads.push(at.duration_since(t).as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    println!(
        "grace {grace} s: detector file changed → new set serving: {:?} ms",
        reloads.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Start a watch of `spans` writing to `out`; stderr is kept in `log`.
fn start(
    spans: &Path,
    out: &Path,
    cache: &Path,
    log: &Path,
    extra: &[&str],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tokenhound"))
        .arg("watch")
        .arg(spans)
        .arg("--output")
        .arg(out)
        .args(["--quiet-secs", "0.3", "--grace-secs", "0.1"])
        .args(extra)
        .env("TOKENHOUND_CACHE_DIR", cache)
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The text of `path` after its first `from` bytes (all of it if it shrank).
fn appended_since(path: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    let from = if f.metadata().unwrap().len() < from {
        0
    } else {
        from
    };
    f.seek(SeekFrom::Start(from)).unwrap();
    let mut text = Vec::new();
    f.read_to_end(&mut text).unwrap();
    String::from_utf8_lossy(&text).into_owned()
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// A restart with `days` retained files (a generated month of 11,000 spans
/// each, new ids in each): seconds from the start to the finding of a turn written while it
/// was down, from the checkpoint and by replaying.
fn restart(days: u64, work: &Path) -> (f64, f64, u64) {
    let spans = work.join(format!("spans-{days}"));
    std::fs::create_dir_all(&spans).unwrap();
    for d in 0..days {
        let f = spans.join(format!("day-{d:03}.jsonl"));
        let args = tokenhound_testgen::Args::month(f, 1000 + d);
        tokenhound_testgen::run(&args).unwrap();
    }
    let bytes: u64 = std::fs::read_dir(&spans)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let (out, cache) = (work.join(format!("out-{days}.jsonl")), work.join("cache"));
    let log = work.join("watch.log");
    // The first run reads the history, then stops cleanly (its checkpoint).
    let child = start(&spans, &out, &cache, &log, &[]);
    let mut last = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let n = std::fs::metadata(&out).map_or(0, |m| m.len());
        if n != last.0 {
            last = (n, Instant::now());
        } else if n > 0 && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    stop(child);
    let timed = |k: u64, extra: &[&str]| {
        let trace = format!("{:032x}", 0xfeed_0000 + days * 10 + k);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spans.join("live.jsonl"))
            .unwrap();
        f.write_all(turn(&trace).as_bytes()).unwrap();
        let before = std::fs::metadata(&out).unwrap().len();
        let t = Instant::now();
        let child = start(&spans, &out, &cache, &log, extra);
        // Only what is appended is read: reading the whole output (170 MB
        // with 30 files) every few milliseconds was most of what this measured.
        while !appended_since(&out, before).contains(&trace) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let secs = t.elapsed().as_secs_f64();
        stop(child);
        secs
    };
    let resumed = timed(1, &[]);
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("resumed from"));
    // Replaying leaves the checkpoint as it was; the next timed run resumes.
    let replayed = timed(2, &["--no-checkpoint"]);
    let resumed_again = timed(3, &[]);
    (resumed.min(resumed_again), replayed, bytes)
}

fn main() {
    run("0.5");
    run("0.05");
    let work = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for days in [3, 30] {
        let (resumed, replayed, bytes) = restart(days, work.path());
        println!(
            "restart with {days} retained files ({} MB): first new finding after {resumed:.2} s from the checkpoint, {replayed:.2} s replaying",
            bytes >> 20
        );
        rows.push((resumed, replayed));
    }
    println!(
        "restart, 30 files against 3: {:.2}x the time from the checkpoint, {:.2}x replaying",
        rows[1].0 / rows[0].0,
        rows[1].1 / rows[0].1
    );
}
