//! `tokenhound watch` on real directories: appended lines are analysed, rotation
//! loses nothing, a kill -9 and restart gives the findings of a one-shot scan,
//! detectors are swapped between batches, broken packs and wasm leave the
//! running set in place and are reported.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn by_rule<'a>(f: &'a BTreeMap<String, Value>, rule: &str) -> Vec<&'a Value> {
    f.values().filter(|v| v["rule"] == rule).collect()
}

/// A turn with a retry storm and a filler reply.
fn turn(trace: &str) -> String {
    let mut f = Fixture::new(trace);
    let a = f.agent(None, "coder", &format!("s-{trace}"));
    f.llm(&a, 100, 10, Some("You're absolutely right.\n\nFixed."));
    for _ in 0..3 {
        f.tool(&a, "run_tests", json!({"suite": "all"}), None);
        f.llm(&a, 1000, 10, None);
    }
    f.line()
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn appended_lines_are_analysed_never_half_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    std::fs::create_dir(&spans).unwrap();
    let file = spans.join("traces.jsonl");
    let w = Watch::start(&spans, &dir.path().join("out.jsonl"), &[]);
    let line = turn("a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1");
    // Half a line first: nothing may be read of it.
    append(&file, &line[..line.len() / 2]);
    std::thread::sleep(Duration::from_millis(600));
    assert!(w.findings().is_empty());
    append(&file, &line[line.len() / 2..]);
    append(&file, "\n");
    let f = w.wait_for("a storm and a filler reply", |f| {
        by_rule(f, "retry-storm").len() == 1 && by_rule(f, "filler-preamble").len() == 1
    });
    assert_eq!(by_rule(&f, "retry-storm")[0]["wasted_tokens"], 2020);
    append(&file, &(turn("b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2") + "\n"));
    // Both of its findings: a line is written per finding, and the filler's
    // may follow the storm's (reading between them saw 3 lines once, under load).
    w.wait_for("the second turn", |f| {
        by_rule(f, "retry-storm").len() == 2 && by_rule(f, "filler-preamble").len() == 2
    });
    assert_eq!(w.raw_lines(), 4, "each finding written once");
    w.stop();
}

#[test]
fn rotation_and_compressed_copies_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    std::fs::create_dir(&spans).unwrap();
    let file = spans.join("traces.jsonl");
    append(&file, &(turn("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1") + "\n"));
    let w = Watch::start(&spans, &dir.path().join("out.jsonl"), &[]);
    w.wait_for("the first turn", |f| by_rule(f, "retry-storm").len() == 1);
    // Rotate: the file is renamed, a line is added to it late, a new file starts.
    let rotated = spans.join("traces-1.jsonl");
    std::fs::rename(&file, &rotated).unwrap();
    append(&rotated, &(turn("c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2") + "\n"));
    append(&file, &(turn("c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3") + "\n"));
    w.wait_for("three turns", |f| by_rule(f, "retry-storm").len() == 3);
    // The rotated file is compressed and the plain copy removed: nothing is new.
    let gz = spans.join("traces-1.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(&rotated).unwrap()).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(&rotated).unwrap();
    append(&file, &(turn("c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4") + "\n"));
    let f = w.wait_for("four turns", |f| by_rule(f, "retry-storm").len() == 4);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.findings(), f, "the compressed copy was not read again");
    assert_eq!(w.raw_lines(), 8, "4 storms and 4 filler replies, each once");
    w.stop();
}

/// A generated month as two halves of lines, the folder a watch follows
/// (`live` is its file), and the findings a one-shot scan gives.
struct Halves {
    spans: PathBuf,
    live: PathBuf,
    out: PathBuf,
    first: String,
    second: String,
    want: Vec<(String, Vec<String>, u64)>,
}

fn halves(dir: &Path, seed: u64) -> Halves {
    let (month, want) = month_and_want(dir, seed);
    let spans = dir.join("spans");
    std::fs::create_dir(&spans).unwrap();
    let text = std::fs::read_to_string(&month).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    Halves {
        live: spans.join("otel.jsonl"),
        spans,
        out: dir.join("findings.jsonl"),
        first: first.join("\n") + "\n",
        second: second.join("\n") + "\n",
        want,
    }
}

/// The watch's findings, by their last version, are the scan's.
fn assert_as_scan(f: &BTreeMap<String, Value>, want: &[(String, Vec<String>, u64)], what: &str) {
    let mut got: Vec<_> = f.values().map(key).collect();
    got.sort();
    assert_eq!(got.len(), want.len(), "{what}");
    assert!(got == want, "{what}: watch differs from scan");
}

#[test]
fn kill_9_and_restart_gives_the_findings_of_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let h = halves(dir.path(), 11);
    let w = Watch::start(&h.spans, &h.out, &[]);
    append(&h.live, &h.first);
    w.wait_for("findings of the first half", |f| f.len() > 100);
    w.kill9();
    append(&h.live, &h.second);
    let w = Watch::start(&h.spans, &h.out, &[]);
    let n = h.want.len();
    let f = w.wait_for("all findings", |f| {
        f.len() >= n && f.values().filter(|v| v["rule"] == "context-reread").count() == 70
    });
    std::thread::sleep(Duration::from_millis(1500));
    let f2 = w.findings();
    w.stop();
    assert_eq!(f.len(), f2.len());
    assert_as_scan(&f2, &h.want, "after kill -9");
    no_line_twice(&h.out);
}

/// A finding written before a restart (before or after the checkpoint) is
/// not written again. Grouped findings (context-reread's grow turn by turn)
/// are left out: read again from an earlier checkpoint, one can pass through
/// a version written before on its way to its last one (which the callers
/// check against the scan).
fn no_line_twice(out: &Path) {
    let text = std::fs::read_to_string(out).unwrap();
    let mut seen = std::collections::HashSet::new();
    for l in text
        .lines()
        .filter(|l| !l.contains("\"rule\":\"context-reread\""))
    {
        assert!(seen.insert(l), "written twice: {l}");
    }
}

/// How many spans a watch said it read, from its log's last line
/// ("stopped; 5,365 spans read, …"), and the whole log.
fn spans_read(log: &Path) -> (usize, String) {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("stopped;"))
        .unwrap_or_else(|| panic!("{text}"));
    let n = line
        .split("stopped; ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap();
    (n.replace(',', "").parse().unwrap(), text)
}

/// A restart goes on from the checkpoint the last run left beside `--output`:
/// it reads only the lines that came after it (however much history the
/// folder holds) and still ends with the findings of a one-shot scan.
#[test]
fn a_restart_reads_only_what_came_after_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let h = halves(dir.path(), 13);
    let spans_in = |text: &str| text.matches("\"spanId\"").count();
    let log = |n: usize| dir.path().join(format!("watch-{n}.log"));

    append(&h.live, &h.first);
    let w = Watch::start_logged(&h.spans, &h.out, &[], Some(&log(1)));
    w.wait_for("findings of the first half", |f| f.len() > 50);
    std::thread::sleep(Duration::from_millis(1500));
    w.stop();
    assert_eq!(spans_read(&log(1)).0, spans_in(&h.first));
    assert!(dir.path().join("findings.jsonl.checkpoint").exists());

    append(&h.live, &h.second);
    let w = Watch::start_logged(&h.spans, &h.out, &[], Some(&log(2)));
    let n = h.want.len();
    w.wait_for("all findings", |f| f.len() >= n);
    std::thread::sleep(Duration::from_millis(1500));
    let f = w.findings();
    w.stop();
    let (read_then, text) = spans_read(&log(2));
    assert!(text.contains("resumed from"), "{text}");
    assert_eq!(
        read_then,
        spans_in(&h.second),
        "only the second half was read"
    );
    assert_as_scan(&f, &h.want, "after a restart from its checkpoint");
    no_line_twice(&h.out);
}

/// A folder's history is read in rounds of about 16 MB (memory holds a round,
/// not the history): a month larger than a round, there at the start, is read
/// whole, no line cut at a round's end, and gives the scan's findings.
#[test]
fn a_history_larger_than_a_round_is_read_whole_in_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let h = halves(dir.path(), 17);
    let whole = h.first.clone() + &h.second;
    assert!(
        whole.len() > 16 << 20,
        "{} bytes: more than a round",
        whole.len()
    );
    append(&h.live, &whole);
    let log = dir.path().join("watch.log");
    let w = Watch::start_logged(&h.spans, &h.out, &[], Some(&log));
    let n = h.want.len();
    w.wait_for("all findings", |f| f.len() >= n);
    std::thread::sleep(Duration::from_millis(1500));
    let f = w.findings();
    w.stop();
    let (read, text) = spans_read(&log);
    assert_eq!(read, whole.matches("\"spanId\"").count(), "{text}");
    assert!(!text.contains("record skipped"), "no line cut: {text}");
    assert_as_scan(&f, &h.want, "a history read in rounds");
}

/// The output and the checkpoint may live in the watched folder: they are
/// never read as spans (nor reported as bad input), and a restart resumes.
#[test]
fn its_own_output_and_checkpoint_in_the_watched_folder_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    std::fs::create_dir(&spans).unwrap();
    let out = spans.join("findings.jsonl");
    let log = dir.path().join("watch.log");
    append(
        &spans.join("t.jsonl"),
        &(turn("e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1") + "\n"),
    );
    let w = Watch::start_logged(&spans, &out, &[], Some(&log));
    w.wait_for("a storm", |f| by_rule(f, "retry-storm").len() == 1);
    std::thread::sleep(Duration::from_millis(2500));
    w.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("findings.jsonl:") && !text.contains("checkpoint:"),
        "{text}"
    );
    assert!(text.contains("stopped; 8 spans read"), "{text}");
    let w = Watch::start_logged(&spans, &out, &[], Some(&log));
    std::thread::sleep(Duration::from_millis(1000));
    w.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("resumed from") && text.contains("stopped; 0 spans read"),
        "{text}"
    );
}

/// A detector built for WIT 0.2.0 cannot save its state: watch says so, keeps
/// no checkpoint, and a restart replays the files (nothing lost or repeated).
#[test]
fn a_0_2_0_detector_turns_checkpoints_off_and_a_restart_replays() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&spans).unwrap();
    std::fs::create_dir(&plugins).unwrap();
    let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/wit-0.2.0/retry-storm-0.2.0.wasm");
    std::fs::copy(old, plugins.join("storm-0-2.wasm")).unwrap();
    let out = dir.path().join("out.jsonl");
    let log = dir.path().join("watch.log");
    let extra = ["--plugins", plugins.to_str().unwrap()];
    let file = spans.join("t.jsonl");
    append(&file, &(turn("d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1") + "\n"));
    let w = Watch::start_logged(&spans, &out, &extra, Some(&log));
    w.wait_for("the old detector's storm", |f| {
        by_rule(f, "storm-0-2").len() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    w.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let said =
        "no checkpoint: retry-storm 0.2.1 (tokenhound:detector@0.2.0) does not save its state";
    assert!(text.contains(said), "{text}");
    assert!(!dir.path().join("out.jsonl.checkpoint").exists());
    append(&file, &(turn("d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2") + "\n"));
    let w = Watch::start_logged(&spans, &out, &extra, Some(&log));
    w.wait_for("both storms", |f| by_rule(f, "storm-0-2").len() == 2);
    std::thread::sleep(Duration::from_millis(500));
    w.stop();
    let text = std::fs::read_to_string(&out).unwrap();
    let written = text
        .lines()
        .filter(|l| l.contains("\"rule\":\"storm-0-2\""))
        .count();
    assert_eq!(written, 2, "each storm written once");
}

#[test]
fn detector_swapped_between_batches_and_broken_updates_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&spans).unwrap();
    std::fs::create_dir(&plugins).unwrap();
    let custom = plugins.join("custom.wasm");
    std::fs::copy(plugin("retry_storm"), &custom).unwrap();
    let pack = dir.path().join("pack.toml");
    std::fs::write(&pack, tokenhound::rules::DEFAULT_PACK).unwrap();
    let file = spans.join("t.jsonl");
    let w = Watch::start(
        &spans,
        &dir.path().join("out.jsonl"),
        &[
            "--plugins",
            plugins.to_str().unwrap(),
            "--pack",
            pack.to_str().unwrap(),
        ],
    );
    append(&file, &(turn("d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1") + "\n"));
    w.wait_for("custom = retry-storm on turn 1", |f| {
        by_rule(f, "custom").len() == 1
    });

    // Swap the detector: the new one is brought up to date with what was read
    // (turn 1 too, as a scan would), then serves the next batch.
    std::fs::copy(plugin("filler_preamble"), plugins.join("custom.tmp")).unwrap();
    std::fs::rename(plugins.join("custom.tmp"), &custom).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    append(&file, &(turn("d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2") + "\n"));
    let filler_of = |f: &BTreeMap<String, Value>| -> Vec<String> {
        let mut t: Vec<String> = by_rule(f, "custom")
            .iter()
            .filter(|v| v["detector"] == "filler-preamble")
            .map(|v| v["trace_id"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    let f = w.wait_for("custom = filler on turns 1 and 2", |f| {
        filler_of(f).len() == 2
    });
    let storm = by_rule(&f, "custom")
        .into_iter()
        .find(|v| v["detector"] == "retry-storm")
        .unwrap();
    assert_eq!(storm["trace_id"], "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1");
    assert_eq!(
        filler_of(&f),
        [
            "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1",
            "d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2"
        ],
        "the new detector saw turn 1 (replayed) and turn 2"
    );

    // A broken wasm: reported, the running set stays.
    std::fs::write(plugins.join("broken.wasm"), b"\0asm but not really").unwrap();
    let f = w.wait_for("a reload failure naming broken.wasm", |f| {
        f.values().any(|v| {
            v["rule"] == "engine" && v["message"].as_str().unwrap().contains("broken.wasm")
        })
    });
    assert_eq!(by_rule(&f, "custom").len(), 3);
    std::fs::remove_file(plugins.join("broken.wasm")).unwrap();
    // A broken pack: reported, the running set stays.
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(
        &pack,
        "[pack]\nname = \"x\"\nversion = \"1\"\n[[rule]]\nid = 3\n",
    )
    .unwrap();
    w.wait_for("a reload failure naming the pack", |f| {
        f.values()
            .any(|v| v["rule"] == "engine" && v["message"].as_str().unwrap().contains("pack.toml"))
    });
    append(&file, &(turn("d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3") + "\n"));
    let f = w.wait_for("turn 3 by the running set", |f| {
        by_rule(f, "custom").len() == 4 && by_rule(f, "retry-storm").len() == 3
    });
    assert!(by_rule(&f, "custom")
        .iter()
        .any(|v| v["trace_id"] == "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"
            && v["detector"] == "filler-preamble"));
    w.stop();
}

/// CPU seconds a process has used (Linux /proc): user + system ticks.
#[cfg(target_os = "linux")]
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// An idle watch sleeps: it used to poll in a loop that its own reads kept
/// waking (97% of a core on an empty folder). Touching a plugin without
/// changing it does not reload either.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_watch_sleeps_and_a_touch_does_not_reload() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&spans).unwrap();
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(plugin("retry_storm"), plugins.join("custom.wasm")).unwrap();
    let w = Watch::start(
        &spans,
        &dir.path().join("out.jsonl"),
        &["--plugins", plugins.to_str().unwrap()],
    );
    std::thread::sleep(Duration::from_secs(2)); // loaded
    let before = cpu_secs(w.child.id());
    let t0 = std::time::Instant::now();
    for _ in 0..3 {
        let f = std::fs::File::options()
            .append(true)
            .open(plugins.join("custom.wasm"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_secs(w.child.id()) - before;
    let share = used / t0.elapsed().as_secs_f64();
    // A busy loop shows ~1.0; a reload storm ~1.2. Sleeping shows ~0.
    assert!(
        share < 0.25,
        "an idle watch used {used:.2} CPU s ({share:.2} of a core)"
    );
    w.stop();
}

/// A reload brings the new rule set up to date: a file read in turn 1 (before
/// the reload) and again in turn 2 (after it) is one re-read, as a scan says.
#[test]
fn a_reload_loses_no_detector_state() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    std::fs::create_dir_all(&spans).unwrap();
    let pack = dir.path().join("pack.toml");
    let pack_text = "[pack]\nname = \"r\"\nversion = \"1\"\n[[rule]]\nid = \"context-reread\"\ndetector = \"builtin:context-reread\"\n";
    std::fs::write(&pack, pack_text).unwrap();
    let read_turn = |trace: &str| {
        let mut f = Fixture::new(trace);
        f.clock += u64::from_str_radix(&trace[..4], 16).unwrap() * 1_000_000_000;
        f.read_turn("s-reload");
        f.line() + "\n"
    };
    let file = spans.join("t.jsonl");
    let w = Watch::start(
        &spans,
        &dir.path().join("out.jsonl"),
        &["--pack", pack.to_str().unwrap()],
    );
    append(&file, &read_turn("a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"));
    std::thread::sleep(Duration::from_secs(2)); // turn 1 analysed
    std::fs::write(&pack, format!("{pack_text}severity = \"high\"\n")).unwrap();
    std::thread::sleep(Duration::from_secs(2)); // reloaded
    append(&file, &read_turn("a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"));
    let f = w.wait_for("the re-read across the reload", |f| {
        by_rule(f, "context-reread").len() == 1
    });
    w.stop();
    let (_, r) = scan_json(&["--pack", pack.to_str().unwrap(), file.to_str().unwrap()]);
    let scanned = findings(&r, "context-reread");
    assert_eq!(scanned.len(), 1);
    let watched = by_rule(&f, "context-reread")[0];
    assert_eq!(watched["wasted_tokens"], scanned[0]["wasted_tokens"]);
    assert_eq!(watched["severity"], "high", "served by the reloaded set");
}

/// Chaos: a month streams into a span folder in 20 chunks; at each chunk the
/// watcher is killed with SIGKILL at a random moment (sometimes mid-write of its
/// output), files are rotated (and some rotated files compressed, as logrotate
/// does), and the pack is edited so a reload happens. After each restart no
/// finding may appear that a scan of the whole month does not have; at the
/// end the findings equal that scan's exactly.
#[test]
fn twenty_kills_with_rotations_and_reloads_end_equal_to_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let month = generated_month(dir.path(), 23);
    let pack = dir.path().join("pack.toml");
    let pack_text = |n: usize| {
        format!("# edit {n}\n[pack]\nname = \"chaos\"\nversion = \"1\"\n[[rule]]\nid = \"retry-storm\"\ndetector = \"builtin:retry-storm\"\n[[rule]]\nid = \"context-reread\"\ndetector = \"builtin:context-reread\"\n[[rule]]\nid = \"subagent-duplicate-context\"\ndetector = \"builtin:subagent-duplicate-context\"\n[[rule]]\nid = \"filler-preamble\"\ndetector = \"builtin:filler-preamble\"\n")
    };
    std::fs::write(&pack, pack_text(0)).unwrap();
    let (_, report) = scan_json(&["--pack", pack.to_str().unwrap(), month.to_str().unwrap()]);
    let want = finding_keys(&report);

    let spans = dir.path().join("spans");
    std::fs::create_dir(&spans).unwrap();
    let live = spans.join("otel.jsonl");
    let out = dir.path().join("findings.jsonl");
    let text = std::fs::read_to_string(&month).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut rng = fastrand::Rng::with_seed(20261127);
    let points = 20;
    let per = lines.len().div_ceil(points);
    let start = || Watch::start(&spans, &out, &["--pack", pack.to_str().unwrap()]);
    let mut w = start();
    for (i, chunk) in lines.chunks(per).enumerate() {
        if rng.u8(..).is_multiple_of(3) && live.exists() {
            let rotated = spans.join(format!("otel-{i}.jsonl"));
            std::fs::rename(&live, &rotated).unwrap();
            if rng.bool() {
                let mut gz = flate2::write::GzEncoder::new(
                    std::fs::File::create(spans.join(format!("otel-{i}.jsonl.gz"))).unwrap(),
                    flate2::Compression::fast(),
                );
                gz.write_all(&std::fs::read(&rotated).unwrap()).unwrap();
                gz.finish().unwrap();
                std::fs::remove_file(&rotated).unwrap();
            }
        }
        if rng.u8(..).is_multiple_of(4) {
            std::fs::write(&pack, pack_text(i + 1)).unwrap();
        }
        append(&live, &(chunk.join("\n") + "\n"));
        std::thread::sleep(Duration::from_millis(rng.u64(0..400)));
        w.kill9();
        w = start();
        std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
        // A finding of a session still streaming in may be an early version
        // of one in the scan (a re-read group that grows): it must be covered
        // by a scan finding of the same rule, never something else.
        let phantom: Vec<_> = w
            .findings()
            .values()
            .map(key)
            .filter(|(rule, spans, tokens)| {
                !want.iter().any(|(r, s, t)| {
                    r == rule && t >= tokens && spans.iter().all(|x| s.contains(x))
                })
            })
            .collect();
        assert!(
            phantom.is_empty(),
            "after kill {i}: findings a scan does not have: {phantom:?}"
        );
    }
    let n = want.len();
    let f = w.wait_for("all findings", |f| f.len() >= n);
    std::thread::sleep(Duration::from_millis(1500));
    let f2 = w.findings();
    w.stop();
    assert_eq!(f.len(), f2.len(), "settled");
    let mut got: Vec<_> = f2.values().map(key).collect();
    got.sort();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "watch after 20 kills differs from scan");
    no_line_twice(&out);
    // Every line of the output is whole JSON: no torn line survived a kill.
    for (i, l) in std::fs::read_to_string(&out).unwrap().lines().enumerate() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1));
    }
}

/// `--output` on a full disk (a file-size limit, as `ulimit -f` sets): a clear
/// error, never a torn line, and once writing works again (the limit raised on
/// the running process) every finding is written, each once. A torn line left
/// by a kill is removed at the next start.
#[test]
fn a_full_disk_costs_no_finding_and_leaves_no_torn_line() {
    // prlimit is util-linux's, an essential package on Debian.
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans");
    std::fs::create_dir(&spans).unwrap();
    let out = dir.path().join("out.jsonl");
    let err = dir.path().join("err.txt");
    let child = Command::new("prlimit")
        .arg("--fsize=2500:unlimited")
        .arg(BIN)
        .args([
            "watch",
            spans.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args(["--quiet-secs", "60", "--grace-secs", "0.3"])
        .env("TOKENHOUND_CACHE_DIR", cache_dir())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let file = spans.join("t.jsonl");
    for i in 0..5 {
        append(&file, &(turn(&format!("{i:032x}")) + "\n"));
    }
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&err)
        .unwrap()
        .contains("cannot write findings")
    {
        assert!(
            start.elapsed() < PATIENCE,
            "no disk-full error reported; stderr: {}; output: {:?}",
            std::fs::read_to_string(&err).unwrap(),
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let whole = |text: &str| {
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    };
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.len() <= 2500 && text.ends_with('\n') && whole(&text),
        "{text}"
    );
    let written_before = text.lines().count();
    assert!(written_before < 10, "the limit held some back");

    let raised = Command::new("prlimit")
        .args([
            "--pid",
            &child.id().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .status()
        .unwrap();
    assert!(raised.success());
    append(&file, &(turn(&format!("{:032x}", 5)) + "\n"));
    let w = Watch {
        child,
        out: out.clone(),
    };
    let f = w.wait_for("all twelve findings", |f| f.len() == 12);
    assert_eq!(w.raw_lines(), 12, "each finding written once");
    assert!(whole(&std::fs::read_to_string(&out).unwrap()));
    assert!(std::fs::read_to_string(&err)
        .unwrap()
        .contains("writing findings again"));
    w.kill9();

    // A torn last line (a kill between a short write and its repair) is
    // dropped at the next start and its finding written again.
    let text = std::fs::read_to_string(&out).unwrap();
    let cut = text.len() - text.lines().last().unwrap().len() / 2 - 1;
    std::fs::write(&out, &text[..cut]).unwrap();
    let w = Watch::start(&spans, &out, &[]);
    let again = w.wait_for("the torn finding written again", |g| g.len() == 12);
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        f.keys().collect::<Vec<_>>()
    );
    assert!(whole(&std::fs::read_to_string(&out).unwrap()));
    w.stop();
}

/// The budget alert fires in `watch` from the day the running projection
/// crosses, not at the end of a scan: October at 1,000 tokens a day, then
/// November at 1,500; nothing through November 2nd (under `min_days`), the
/// alert once the 3rd arrives.
#[test]
fn the_budget_alert_appears_when_the_pace_crosses() {
    let dir = tempfile::tempdir().unwrap();
    let spans_dir = dir.path().join("spans");
    std::fs::create_dir(&spans_dir).unwrap();
    let pack = one_rule_pack(dir.path(), "budget-pace");
    let days: Vec<String> = builtin_fixture_spans("budget-pace")
        .iter()
        .map(|s| json!({"resourceSpans": [{"scopeSpans": [{"spans": [s]}]}]}).to_string() + "\n")
        .collect();
    assert_eq!(days.len(), 41, "October and ten days of November");
    let file = spans_dir.join("t.jsonl");
    let w = Watch::start(
        &spans_dir,
        &dir.path().join("out.jsonl"),
        &["--pack", pack.to_str().unwrap()],
    );
    append(&file, &days[..33].concat()); // to November 2nd
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        by_rule(&w.findings(), "budget-pace").is_empty(),
        "no alert before min_days"
    );
    append(&file, &days[33]); // November 3rd
    let f = w.wait_for("the budget alert", |f| {
        !by_rule(f, "budget-pace").is_empty()
    });
    let alert = by_rule(&f, "budget-pace")[0];
    assert!(
        alert["title"]
            .as_str()
            .unwrap()
            .contains("45% over last month's 31000"),
        "{alert}"
    );
    w.stop();
}

/// error-patterns in `watch`: a signature is written once it has `min_count`
/// errors and updated as it grows, its waste equal to a scan's at the end.
#[test]
fn an_error_pattern_appears_live_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    let spans_dir = dir.path().join("spans");
    std::fs::create_dir(&spans_dir).unwrap();
    let pack = one_rule_pack(dir.path(), "error-patterns");
    // One line per turn of the 429 storm, in order.
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for s in &builtin_fixture_spans("error-patterns") {
        let t = s["traceId"].as_str().unwrap().to_string();
        match turns.iter_mut().find(|(id, _)| *id == t) {
            Some((_, v)) => v.push(s.clone()),
            None => turns.push((t, vec![s.clone()])),
        }
    }
    let lines: Vec<String> = turns
        .iter()
        .filter(|(t, _)| t.contains("e22e"))
        .map(|(_, v)| json!({"resourceSpans": [{"scopeSpans": [{"spans": v}]}]}).to_string() + "\n")
        .collect();
    assert_eq!(lines.len(), 6);
    let file = spans_dir.join("t.jsonl");
    let w = Watch::start(
        &spans_dir,
        &dir.path().join("out.jsonl"),
        &["--pack", pack.to_str().unwrap()],
    );
    append(&file, &lines[..4].concat());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        by_rule(&w.findings(), "error-patterns").is_empty(),
        "under min_count"
    );
    append(&file, &lines[4]);
    let f = w.wait_for("the pattern at five errors", |f| {
        !by_rule(f, "error-patterns").is_empty()
    });
    assert_eq!(by_rule(&f, "error-patterns")[0]["wasted_tokens"], 4100);
    append(&file, &lines[5]);
    let f = w.wait_for("the pattern grown", |f| {
        by_rule(f, "error-patterns")
            .first()
            .is_some_and(|p| p["wasted_tokens"] == 4920)
    });
    assert_eq!(
        by_rule(&f, "error-patterns").len(),
        1,
        "one pattern, updated"
    );
    w.stop();
}
