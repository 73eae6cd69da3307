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
fn fuel_budget_stops_a_loop_deterministically() {
    check("spin", "spin", "fuel = 5000000\ntimeout_ms = 60000", "fuel");
}
