//! A detector that loops, one that allocates without end and one that panics are
//! each stopped and named; the built-in detectors still report their findings.

mod common;
use common::*;

fn pack(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("pack.toml");
    let text = format!(
        r#"
[pack]
name = "containment"
version = "0.1.0"

[[rule]]
id = "retry-storm"
detector = "builtin:retry-storm"
severity = "high"

[[rule]]
id = "filler-preamble"
detector = "builtin:filler-preamble"
severity = "low"
{extra}
"#
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn input(dir: &std::path::Path) -> std::path::PathBuf {
    let mut f = Fixture::new("0af7651916cd43dd8448eb211c80319c");
    let a = f.agent(None, "coder", "s1");
    f.llm(
        a.as_str(),
        100,
        10,
        Some("You're absolutely right.\n\nHere is the fix."),
    );
    for _ in 0..3 {
        f.tool(&a, "run_tests", serde_json::json!({"suite": "all"}), None);
        f.llm(&a, 1000, 10, None);
    }
    let p = dir.join("spans.jsonl");
    f.write(&p);
    p
}

fn check(rule: &str, file: &str, limits: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin(file);
    let extra = format!(
        "[[rule]]\nid = \"{rule}\"\ndetector = \"{}\"\nseverity = \"medium\"\n[rule.limits]\n{limits}\n",
        wasm.display()
    );
    let p = pack(dir.path(), &extra);
    let i = input(dir.path());
    let (code, r) = scan_json(&["--pack", p.to_str().unwrap(), i.to_str().unwrap()]);
    assert_eq!(code, 0);
    let d = detector(&r, rule);
    let why = d["failure"]
        .as_str()
        .unwrap_or_else(|| panic!("{rule} was not stopped: {d}"));
    assert!(why.contains(expect), "{rule}: {why}");
    let engine: Vec<_> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["detector"] == "engine")
        .collect();
    assert_eq!(engine.len(), 1);
    assert!(
        engine[0]["title"].as_str().unwrap().contains(file),
        "names the detector: {}",
        engine[0]["title"]
    );
    // The others still report.
    assert_eq!(findings(&r, "retry-storm").len(), 1);
    assert_eq!(detector(&r, "retry-storm")["wasted_tokens"], 2020);
    assert_eq!(findings(&r, "filler-preamble").len(), 1);
}

#[test]
fn endless_loop_is_stopped_at_its_time_limit() {
    check("spin", "spin", "timeout_ms = 300", "time limit");
}

#[test]
fn memory_bomb_is_stopped_at_its_cap() {
    check("hog", "hog", "memory_mb = 32", "memory cap");
}

#[test]
fn panic_is_named_with_its_message() {
    check("panic", "panic", "", "detector bug on a batch of");
}

#[test]
fn a_panic_after_much_chatter_is_named_with_its_message() {
    // 200 KiB of stderr first: the host keeps the tail, where the panic is.
    let (r, _) = scan_with("panic", "panic", "chatter_kb = 200", "");
    let why = detector(&r, "panic")["failure"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("detector bug on a batch of"), "{why}");
    assert!(why.contains("earlier bytes not kept"), "{why}");
    assert!(
        why.len() < 20 << 10,
        "the message is bounded: {} bytes",
        why.len()
    );
    assert_eq!(detector(&r, "retry-storm")["wasted_tokens"], 2020);
}

#[test]
fn fuel_budget_stops_a_loop_deterministically() {
    check("spin", "spin", "fuel = 5000000\ntimeout_ms = 60000", "fuel");
}

/// Scan `input` with the two built-ins and one test plugin; returns the report
/// and the table. A run that never ends is a failure (a hang, not a slow run).
fn scan_with(rule: &str, file: &str, params: &str, limits: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[rule]]\nid = \"{rule}\"\ndetector = \"{}\"\n[rule.params]\n{params}\n[rule.limits]\n{limits}\n",
        plugin(file).display()
    );
    let p = pack(dir.path(), &extra);
    let i = input(dir.path());
    let run = |format: &str| {
        let mut child = std::process::Command::new(BIN)
            .args(["scan", "--format", format, "--pack"])
            .args([p.to_str().unwrap(), i.to_str().unwrap()])
            .env("TOKENHOUND_CACHE_DIR", cache_dir())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
            s
        });
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(300) {
                child.kill().unwrap();
                panic!("{file}: the scan hung");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        reader.join().unwrap()
    };
    let r = serde_json::from_str(&run("json")).unwrap();
    (r, run("table"))
}

fn builtins_intact(r: &serde_json::Value) {
    assert_eq!(findings(r, "retry-storm").len(), 1);
    assert_eq!(detector(r, "retry-storm")["wasted_tokens"], 2020);
    assert_eq!(findings(r, "filler-preamble").len(), 1);
}

#[test]
fn a_sleeping_detector_does_not_hold_the_host() {
    // Under the frozen clock a sleep is over at once: both finish, not stopped.
    for forever in ["false", "true"] {
        let (r, _) = scan_with(
            "sleeper",
            "sleeper",
            &format!("forever = {forever}"),
            "timeout_ms = 2000",
        );
        assert!(detector(&r, "sleeper")["failure"].is_null(), "{r}");
        builtins_intact(&r);
    }
}

#[test]
fn a_detector_returning_too_much_is_stopped_and_named() {
    for (mode, why) in [("flood", "max_findings"), ("wide", "max_span_refs")] {
        let (r, _) = scan_with("liar", "liar", &format!("mode = \"{mode}\""), "");
        let failure = detector(&r, "liar")["failure"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(failure.contains(why), "{mode}: {failure}");
        builtins_intact(&r);
    }
}

#[test]
fn charges_to_spans_not_in_the_input_are_not_counted() {
    let (r, _) = scan_with("liar", "liar", "mode = \"ghost\"", "");
    assert_eq!(detector(&r, "liar")["wasted_tokens"], 7);
    let counters = detector(&r, "liar")["counters"].to_string();
    assert!(
        counters.contains("charges to spans not in the input"),
        "{counters}"
    );
    builtins_intact(&r);
}

#[test]
fn charges_that_would_wrap_a_sum_are_dropped_not_wrapped() {
    let (r, _) = scan_with("liar", "liar", "mode = \"huge\"", "");
    let d = detector(&r, "liar");
    assert_eq!(d["wasted_tokens"], 0, "{d}");
    assert!(r["summary"]["share_pct_sum"].as_f64().unwrap() <= 100.0);
    builtins_intact(&r);
}

#[test]
fn control_codes_a_detector_writes_never_reach_the_terminal() {
    let (_, table) = scan_with("liar", "liar", "mode = \"escape\"", "");
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table:?}"
    );
    assert!(table.contains("\\u{1b}]0;pwned"), "shown escaped: {table}");
}

#[test]
fn merging_many_grouped_findings_is_linear_and_exact() {
    let (r, _) = scan_with("liar", "liar", "mode = \"many-groups\"", "");
    assert!(detector(&r, "liar")["failure"].is_null());
    assert_eq!(
        findings(&r, "liar").len(),
        25_000,
        "50,000 findings in 25,000 groups"
    );
    assert!(findings(&r, "liar")
        .iter()
        .all(|f| f["spans"].as_array().unwrap().len() == 1));
}
