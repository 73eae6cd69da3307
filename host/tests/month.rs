//! The generated month: every injected bottleneck found with its exact waste,
//! shares within 0.5 percentage points of the truth, no negative reported.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashSet;

fn month() -> (tempfile::TempDir, tokenhound_testgen::Truth, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("month.jsonl.gz");
    let args = tokenhound_testgen::Args {
        noise: 2,
        ..tokenhound_testgen::Args::month(out.clone(), 7)
    };
    let truth = tokenhound_testgen::run(&args).unwrap();
    let (code, report) = scan_json(&[out.to_str().unwrap()]);
    assert_eq!(code, 0, "no --fail-on: exit 0");
    (dir, truth, report)
}

#[test]
fn month_matches_its_truth() {
    let (_dir, truth, r) = month();
    // Totals: every LLM call and token read.
    assert_eq!(r["totals"]["llm_calls"], truth.llm_calls);
    assert_eq!(r["totals"]["tool_calls"], truth.tool_calls);
    assert_eq!(r["totals"]["total_tokens"], truth.total_tokens);
    assert_eq!(r["totals"]["traces"], truth.traces);
    assert_eq!(r["input"]["problems"], 0);

    for rule in [
        "retry-storm",
        "context-reread",
        "subagent-duplicate-context",
        "filler-preamble",
    ] {
        let want = *truth.wasted.get(rule).unwrap() as f64 * 100.0 / truth.total_tokens as f64;
        let got = detector(&r, rule)["share_pct"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 0.5,
            "{rule}: share {got:.2}% vs truth {want:.2}%"
        );
        assert!(
            want > 3.0,
            "{rule}: the month injects a real share ({want:.2}%)"
        );
    }
    // The story: 18 / 14 / 9 / 6 %, about 47% in all.
    let sum = r["summary"]["share_pct_sum"].as_f64().unwrap();
    assert!((44.0..50.0).contains(&sum), "sum of shares {sum}");
}

#[test]
fn every_instance_found_and_no_negative() {
    let (_dir, truth, r) = month();
    for inst in &truth.instances {
        let fs = findings(&r, &inst.detector);
        let want: HashSet<&str> = inst.spans.iter().map(String::as_str).collect();
        let hit = fs.iter().find(|f| {
            let charged: HashSet<String> = f["waste"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c[0]["span_id"].as_str().unwrap().to_string())
                .collect();
            let named: HashSet<String> = span_ids(f).into_iter().collect();
            match inst.detector.as_str() {
                "retry-storm" => named == want.iter().map(|s| s.to_string()).collect(),
                "filler-preamble" | "context-reread" | "subagent-duplicate-context" => {
                    !want.is_empty() && want.iter().all(|s| charged.contains(*s))
                }
                _ => false,
            }
        });
        let f = hit.unwrap_or_else(|| panic!("not found: {inst:?}"));
        let got = f["wasted_tokens"].as_u64().unwrap();
        if inst.detector == "subagent-duplicate-context" {
            // Content-defined chunks may miss up to one chunk (≤256 bytes) at each edge.
            let slack = 2 * 64 * inst.spans.len() as u64;
            assert!(
                got.abs_diff(inst.wasted_tokens) <= slack,
                "{inst:?}: waste {got}"
            );
        } else {
            assert_eq!(got, inst.wasted_tokens, "{inst:?}");
        }
    }
    for neg in &truth.negatives {
        for f in findings(&r, &neg.detector) {
            let named = span_ids(f);
            for s in &neg.spans {
                assert!(
                    !named.contains(s),
                    "negative reported as {}: {neg:?}\n{f}",
                    neg.detector
                );
            }
        }
    }
    // Injected counts, one finding each.
    for rule in [
        "retry-storm",
        "subagent-duplicate-context",
        "filler-preamble",
        "context-reread",
    ] {
        let n = truth
            .instances
            .iter()
            .filter(|i| i.detector == rule)
            .count();
        assert_eq!(findings(&r, rule).len(), n, "{rule}: findings vs injected");
    }
    let cached = &detector(&r, "subagent-duplicate-context")["counters"];
    assert!(
        cached.to_string().contains("parents shared but cached\",5"),
        "{cached}"
    );
}

#[test]
fn shuffled_lines_give_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("month.jsonl");
    let args = tokenhound_testgen::Args::month(out.clone(), 5);
    tokenhound_testgen::run(&args).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // A deterministic shuffle: traces arrive in no order, split across lines.
    let mut rng = fastrand::Rng::with_seed(9);
    rng.shuffle(&mut lines);
    let shuffled = dir.path().join("shuffled.jsonl");
    std::fs::write(&shuffled, lines.join("\n") + "\n").unwrap();
    let (_, a) = scan_json(&[out.to_str().unwrap()]);
    let (_, b) = scan_json(&[shuffled.to_str().unwrap()]);
    assert_eq!(b["input"]["problems"], 0);
    assert!(
        finding_keys(&a) == finding_keys(&b),
        "shuffled export gives other findings"
    );
}

/// The weekly audit's saved queries on a generated month with their scenarios
/// (a heavy tool tail, a model slow only sometimes, rate-limit bursts at 14:00
/// whose messages differ in ids only): exactly the findings and figures the
/// generator computed from what it wrote, and no negative reported.
#[test]
fn the_saved_queries_match_the_generated_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("month-audit.jsonl.gz");
    let truth = tokenhound_testgen::run(&tokenhound_testgen::Args {
        audit: true,
        ..tokenhound_testgen::Args::month(out.clone(), 13)
    })
    .unwrap();
    let packs = ["-p", "builtin:default", "-p", "builtin:weekly-audit"];
    let (_, r) = scan_json(&[&packs[..], &[out.to_str().unwrap()]].concat());
    let ev = evidence;
    let by_pattern = |rule: &str, p: &str| -> Value {
        let found = findings(&r, rule);
        let f = found.iter().find(|f| f["pattern"] == p);
        (*f.unwrap_or_else(|| panic!("{rule}: no finding {p}: {found:#?}"))).clone()
    };

    assert_eq!(findings(&r, "tail-latency").len(), truth.latency.len());
    assert!(truth.latency.len() >= 2, "a tool and a model with a tail");
    for t in &truth.latency {
        let f = by_pattern("tail-latency", &t.group);
        assert_eq!(ev(&f, "calls"), t.calls.to_string(), "{}", t.group);
        assert_eq!(ev(&f, "p50_ms"), format!("{:.1}", t.p50_ms));
        assert_eq!(ev(&f, "p95_ms"), format!("{:.1}", t.p95_ms));
        assert_eq!(ev(&f, "p99_ms"), format!("{:.1}", t.p99_ms));
        let secs = f["wasted_seconds"].as_f64().unwrap();
        assert!((secs - t.tail_seconds).abs() < 1e-6, "{}: {secs}", t.group);
        assert_eq!(f["wasted_tokens"], 0, "time, never tokens");
    }

    assert_eq!(
        findings(&r, "error-patterns").len(),
        truth.error_patterns.len()
    );
    for t in &truth.error_patterns {
        let f = by_pattern("error-patterns", &t.signature);
        assert_eq!(ev(&f, "errors"), t.errors.to_string(), "{}", t.signature);
        assert_eq!(f["wasted_tokens"], t.wasted_tokens, "{}", t.signature);
        assert_eq!(
            ev(&f, "peak_hour_utc"),
            format!("{:02}:00", t.peak_hour_utc)
        );
    }
    let rate_limited = truth
        .error_patterns
        .iter()
        .find(|t| t.signature.starts_with("tool web_search rate_limit_error"))
        .expect("the bursts are one signature");
    assert_eq!((rate_limited.errors, rate_limited.peak_hour_utc), (15, 14));

    for n in truth
        .negatives
        .iter()
        .filter(|n| n.detector == "tail-latency" || n.detector == "error-patterns")
    {
        for f in findings(&r, &n.detector) {
            let named = span_ids(f);
            assert!(
                n.spans.iter().all(|s| !named.contains(s)),
                "{}: {} reported",
                n.detector,
                n.what
            );
        }
    }
}

/// budget-pace on two generated months: alike (on pace, no alert), and the
/// second 35% busier (an alert with the figures and the crossing day the
/// generator computed from what it wrote).
#[test]
fn the_budget_alert_matches_the_generated_truth() {
    for growth in [0.0, 35.0] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("two-months.jsonl.gz");
        let truth = tokenhound_testgen::run(&tokenhound_testgen::Args {
            out: out.clone(),
            truth: None,
            seed: 17,
            repeat: 2,
            noise: 0,
            fix_day: None,
            audit: false,
            growth,
        })
        .unwrap();
        let b = truth.budget.expect("November is judged against October");
        let packs = ["-p", "builtin:default", "-p", "builtin:weekly-audit"];
        let (_, r) = scan_json(&[&packs[..], &[out.to_str().unwrap()]].concat());
        let alerts = findings(&r, "budget-pace");
        assert_eq!(!alerts.is_empty(), b.alert, "growth {growth}: {alerts:#?}");
        if growth == 0.0 {
            assert!(!b.alert, "a month like the last is on pace");
            continue;
        }
        let ev = |k: &str| evidence(alerts[0], k);
        assert_eq!(ev("previous_total"), b.previous_total.to_string());
        assert_eq!(ev("tokens_so_far"), b.tokens_so_far.to_string());
        assert_eq!(ev("projection"), format!("{:.0}", b.projection));
        assert_eq!(ev("days_elapsed"), b.days_elapsed.to_string());
        assert_eq!(Some(ev("crossed_on")), b.crossed_on);
        assert_eq!(alerts[0]["wasted_tokens"], 0, "an alert, not a waste");
    }
}
