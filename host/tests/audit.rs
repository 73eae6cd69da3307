//! The weekly audit's habits: the costliest calls with what was in their input
//! (`top`), and the two other saved queries as built-in detectors (their exact
//! figures are in tests/fixtures/builtin, checked by `tokenhound test`).

mod common;
use common::*;
use serde_json::{json, Value};

fn top_json(args: &[&str]) -> Value {
    let mut all = vec!["top", "--format", "json"];
    all.extend_from_slice(args);
    let out = tokenhound(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn top_lists_the_costliest_calls_with_their_input_parts_and_the_findings_charging_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new("0000000000000000000000000000a0d1");
    let a = f.agent(None, "coder", "s-top");
    let system = "You review pull requests.".repeat(40);
    let cheap = f.llm_with_input(&a, 500, 0, "short", "hi");
    let big = f.llm_with_input(&a, 30_000, 0, &system, "review PR 7");
    let mid = f.llm_with_input(&a, 20_000, 0, "short", "and PR 8");
    // A retry storm: its LLM calls between the retries are charged.
    for _ in 0..3 {
        f.tool(&a, "run_tests", json!({"suite": "all"}), None);
        f.llm(&a, 1_000, 10, None);
    }
    let path = dir.path().join("spans.jsonl");
    f.write(&path);

    let r = top_json(&["-n", "3", path.to_str().unwrap()]);
    assert_eq!(r["schema"], "tokenhound.top/v1");
    let calls = r["calls"].as_array().unwrap();
    let ids: Vec<&str> = calls
        .iter()
        .map(|c| c["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[..2], [big.as_str(), mid.as_str()], "costliest first");
    assert!(!ids.contains(&cheap.as_str()));
    // gpt-4o input at $2.50 per million, output at $10.
    let cost = calls[0]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (30_000.0 * 2.5 + 10.0 * 10.0) / 1e6).abs() < 1e-9,
        "{cost}"
    );
    let parts = calls[0]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["kind"], "system", "largest first");
    assert_eq!(parts[0]["bytes"], system.len());
    assert_eq!(parts[0]["tokens"], system.len().div_ceil(4));
    assert_eq!(parts[1]["role"], "user");
    assert_eq!(parts[1]["bytes"], "review PR 7".len());
    // The third is a call inside the storm, and the storm charges it.
    let charged = calls[2]["findings"].as_array().unwrap();
    assert_eq!(charged[0]["rule"], "retry-storm", "{:#}", calls[2]);
    assert_eq!(charged[0]["tokens"], 1_010);

    let out = tokenhound(&["top", "-n", "1", path.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("The 1 costliest of 6 LLM calls"), "{text}");
    assert!(text.contains(&format!("span {big}")), "{text}");
    assert!(text.contains("system"), "{text}");
}

#[test]
fn the_weekly_audit_pack_adds_tail_latency_and_error_patterns() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/builtin");
    let (_, r) = scan_json(&[
        "--pack",
        "builtin:default",
        "--pack",
        "builtin:weekly-audit",
        fixtures.join("tail-latency.jsonl").to_str().unwrap(),
        fixtures.join("error-patterns.jsonl").to_str().unwrap(),
    ]);
    let tail = findings(&r, "tail-latency");
    let slow = tail
        .iter()
        .find(|f| f["pattern"] == "slow_search")
        .expect("the slow tool");
    assert_eq!(slow["wasted_seconds"], 1.9);
    assert_eq!(slow["wasted_tokens"], 0, "time is never tokens");
    let errors = findings(&r, "error-patterns");
    let storm = errors
        .iter()
        .find(|f| {
            f["pattern"]
                .as_str()
                .unwrap()
                .starts_with("tool fetch_api 429")
        })
        .expect("the 429 pattern");
    assert_eq!(
        storm["pattern"],
        "tool fetch_api 429: # Too Many Requests: request <uuid> retry in #s"
    );
    assert_eq!(storm["wasted_tokens"], 4920);
    let ev: std::collections::BTreeMap<String, String> = storm["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect();
    assert_eq!(ev["errors"], "6");
    assert_eq!(ev["error_rate_pct"], "50.0");
    assert_eq!(ev["sessions"], "3");
    assert_eq!(ev["peak_hour_utc"], "04:00");
    let pattern = r["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pattern"] == storm["pattern"])
        .expect("the 429 pattern in patterns[]");
    assert_eq!(
        (&pattern["sessions"], &pattern["turns"]),
        (&Value::from(3), &Value::from(ev["turns"].parse::<u64>().unwrap())),
        "an error signature's pattern counts the sessions its errors touched, not its example spans'"
    );
}

/// Last month's report stands for last month when this month's export does not
/// hold it: its JSON carries per-day totals, and `--baseline` reads them back.
#[test]
fn a_baseline_report_gives_the_budget_alert_its_previous_month() {
    let dir = tempfile::tempdir().unwrap();
    let spans = builtin_fixture_spans("budget-pace");
    // 2026-11-01T00:00:00Z: October before it, November after.
    let november = 1_793_491_200u64 * 1_000_000_000;
    let write = |name: &str, keep: &dyn Fn(u64) -> bool| {
        let part: Vec<&Value> = spans
            .iter()
            .filter(|s| keep(s["startTimeUnixNano"].as_str().unwrap().parse().unwrap()))
            .collect();
        let path = dir.path().join(name);
        let line = json!({"resourceSpans": [{"scopeSpans": [{"spans": part}]}]});
        std::fs::write(&path, format!("{line}\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let october = write("october.jsonl", &|t| t < november);
    let nov = write("november.jsonl", &|t| t >= november);
    let pack = one_rule_pack(dir.path(), "budget-pace");
    let pack = pack.to_str().unwrap();

    let (_, last) = scan_json(&["--pack", pack, &october]);
    let daily = last["totals"]["daily"].as_object().unwrap();
    assert_eq!(daily.len(), 31);
    assert_eq!(daily["2026-10-01"]["tokens"], 1000);
    let baseline = dir.path().join("october.json");
    std::fs::write(&baseline, last.to_string()).unwrap();

    let (_, alone) = scan_json(&["--pack", pack, &nov]);
    assert!(
        findings(&alone, "budget-pace").is_empty(),
        "no previous month: not judged"
    );
    let (_, r) = scan_json(&[
        "--pack",
        pack,
        &nov,
        "--baseline",
        baseline.to_str().unwrap(),
    ]);
    let alert = findings(&r, "budget-pace");
    assert_eq!(alert.len(), 1, "{r:#}");
    assert_eq!(alert[0]["alert"], true);
    assert!(alert[0]["title"]
        .as_str()
        .unwrap()
        .contains("45% over last month's 31000"));

    // Last week's report covers only part of October: it cannot stand for the
    // month (its 12 days would make November look far over pace).
    let twelve_days = 12 * 86_400 * 1_000_000_000;
    let late = write("late-october.jsonl", &|t| {
        t < november && t >= november - twelve_days
    });
    let (_, part) = scan_json(&["--pack", pack, &late]);
    let partial = dir.path().join("late-october.json");
    std::fs::write(&partial, part.to_string()).unwrap();
    let (_, r) = scan_json(&[
        "--pack",
        pack,
        &nov,
        "--baseline",
        partial.to_str().unwrap(),
    ]);
    assert!(
        findings(&r, "budget-pace").is_empty(),
        "a partial baseline is not a month"
    );
}

/// error-patterns' waste is the LLM calls after a tool error and before the
/// tool's next successful call, in the spec's words: a call starting the very
/// instant the error ends is after it, and so is a successful retry then.
#[test]
fn handling_an_error_ends_at_a_retry_that_starts_as_the_error_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new("0000000000000000000000000000e000");
    let set_end = |f: &mut Fixture, span: &str, to: &str| {
        let start = |f: &Fixture, id: &str| {
            f.spans.iter().find(|s| s["spanId"] == id).unwrap()["startTimeUnixNano"].clone()
        };
        let at = start(f, to);
        let s = f.spans.iter_mut().find(|s| s["spanId"] == span).unwrap();
        s["endTimeUnixNano"] = at;
    };
    for t in 0..5 {
        f.turn(&format!("0000000000000000000000000000e00{t}"));
        let a = f.agent(None, "coder", &format!("s-{t}"));
        let args = json!({"q": "status"});
        let fail = f.tool(&a, "fetch_api", args.clone(), None);
        let handling = f.llm(&a, 500, 10, None);
        set_end(&mut f, &fail, &handling);
        let fail_again = f.tool(&a, "fetch_api", args.clone(), None);
        let retry = f.tool(&a, "fetch_api", args, Some("ok"));
        set_end(&mut f, &fail_again, &retry);
        f.llm(&a, 1000, 10, None); // after the successful retry: not handling
    }
    let path = dir.path().join("errors.jsonl");
    f.write(&path);
    let pack = one_rule_pack(dir.path(), "error-patterns");
    let (_, r) = scan_json(&["--pack", pack.to_str().unwrap(), path.to_str().unwrap()]);
    let found = findings(&r, "error-patterns");
    assert_eq!(found.len(), 1, "{r:#}");
    assert_eq!(evidence(found[0], "errors"), "10");
    assert_eq!(
        found[0]["wasted_tokens"],
        5 * 510,
        "the 500-token calls only"
    );
}

/// October (its first LLM call on the 5th, but the input starts on the 1st)
/// and November to its 5th with `november` tokens.
fn two_months(path: &std::path::Path, november: u64) {
    let day = 86_400_000_000_000u64;
    let october_1 = 1_790_812_800u64 * 1_000_000_000;
    let mut f = Fixture::new("000000000000000000000000000b0d01");
    f.clock = october_1 + 3_600_000_000_000;
    f.agent(None, "coder", "s-1"); // the input starts on October 1st
    let turn = |f: &mut Fixture, trace: &str, at: u64, tokens: u64| {
        f.turn(trace);
        f.clock = at;
        let a = f.agent(None, "coder", trace);
        f.llm(&a, tokens, 0, None);
    };
    turn(
        &mut f,
        "000000000000000000000000000b0d02",
        october_1 + 4 * day,
        1000,
    );
    turn(
        &mut f,
        "000000000000000000000000000b0d03",
        october_1 + 31 * day,
        100,
    );
    turn(
        &mut f,
        "000000000000000000000000000b0d04",
        october_1 + 35 * day,
        november - 100,
    );
    f.write(path);
}

/// The spec's budget alert, word for word: the previous month is in the input
/// when the input starts on its first day (any span, not only LLM calls), and
/// a projection exactly 20% over last month is on the line, not over it.
#[test]
fn the_budget_alert_fires_over_the_line_and_not_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let pack = one_rule_pack(dir.path(), "budget-pace");
    let path = dir.path().join("months.jsonl");
    // 200 tokens in 5 of November's 30 days project to 1,200: 20% over 1,000.
    two_months(&path, 200);
    let (_, on_the_line) = scan_json(&["--pack", pack.to_str().unwrap(), path.to_str().unwrap()]);
    assert!(
        findings(&on_the_line, "budget-pace").is_empty(),
        "{on_the_line:#}"
    );
    two_months(&path, 201);
    let (_, over) = scan_json(&["--pack", pack.to_str().unwrap(), path.to_str().unwrap()]);
    let alert = findings(&over, "budget-pace");
    assert_eq!(alert.len(), 1, "1,206 is over 1,200: {over:#}");
    assert_eq!(evidence(alert[0], "previous_total"), "1000");
    assert_eq!(evidence(alert[0], "projection"), "1206");
    assert_eq!(evidence(alert[0], "crossed_on"), "2026-11-05");
}

/// `--since`: findings and totals count the window only, but spans before it
/// are still read as context: a re-read inside the window is found against a
/// read before it, and a retry storm before the window is not counted.
#[test]
fn a_window_counts_only_its_spans_and_keeps_earlier_ones_as_context() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000_000_000u64;
    let mut f = Fixture::new("0000000000000000000000000000c0d1");
    let read = |f: &mut Fixture, trace: &str| {
        f.turn(trace);
        f.read_turn("s-window");
    };
    read(&mut f, "0000000000000000000000000000c0d1"); // 2023-11-14: before the window
    f.turn("0000000000000000000000000000c0d2");
    let storm = f.agent(None, "coder", "s-storm");
    for _ in 0..3 {
        f.tool(&storm, "run_tests", json!({"suite": "all"}), None);
        f.llm(&storm, 1000, 10, None);
    }
    f.clock += 2 * day; // 2023-11-16: inside
    read(&mut f, "0000000000000000000000000000c0d3");
    let path = dir.path().join("spans.jsonl");
    f.write(&path);

    let (_, all) = scan_json(&[path.to_str().unwrap()]);
    assert_eq!(findings(&all, "retry-storm").len(), 1);
    let (_, r) = scan_json(&["--since", "2023-11-15", path.to_str().unwrap()]);
    assert_eq!(
        r["totals"]["llm_calls"], 2,
        "only the window's calls: {:#}",
        r["totals"]
    );
    assert_eq!(r["totals"]["total_tokens"], 2020);
    assert!(
        findings(&r, "retry-storm").is_empty(),
        "the storm is before the window"
    );
    let reread = findings(&r, "context-reread");
    assert_eq!(reread.len(), 1, "found against the read before the window");
    assert_eq!(reread[0]["wasted_tokens"], 300);
    assert!(r["window"]["since"].as_u64().is_some());
    let table = String::from_utf8(
        tokenhound(&["scan", "--since", "2023-11-15", path.to_str().unwrap()]).stdout,
    )
    .unwrap();
    assert!(
        table.contains("window: 2023-11-15 00:00 UTC to the end"),
        "{table}"
    );
}

/// The error-patterns fixture twice: as it is (2024-05-30) and two days earlier
/// under other trace, span and session ids.
fn errors_on_two_days(path: &std::path::Path) {
    let two_days = 2 * 86_400_000_000_000u64;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/builtin/error-patterns.jsonl");
    let text = std::fs::read_to_string(fixture).unwrap();
    let mut earlier: Value = serde_json::from_str(&text).unwrap();
    fn shift(v: &mut Value, by: u64) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), x.as_str()) {
                        ("startTimeUnixNano" | "endTimeUnixNano", Some(t)) => {
                            *x = (t.parse::<u64>().unwrap() - by).to_string().into()
                        }
                        ("traceId" | "spanId" | "parentSpanId", Some(id)) => {
                            *x = format!("a{}", &id[1..]).into()
                        }
                        ("stringValue", Some(s)) if s.starts_with("s-") => {
                            *x = format!("early-{s}").into()
                        }
                        _ => shift(x, by),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| shift(x, by)),
            _ => {}
        }
    }
    shift(&mut earlier, two_days);
    std::fs::write(path, format!("{text}\n{earlier}\n")).unwrap();
}

/// Aggregates count the window only: an error signature's errors, rate and
/// sessions, and a latency group's percentiles, leave out calls before
/// `--since` (the same errors two days earlier are not this window's).
#[test]
fn a_window_counts_only_its_own_errors_in_an_error_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.jsonl");
    errors_on_two_days(&path);
    let pack = ["--pack", "builtin:weekly-audit"];
    let storm = |r: &Value| {
        let f = findings(r, "error-patterns")
            .into_iter()
            .find(|f| {
                f["pattern"]
                    .as_str()
                    .unwrap()
                    .starts_with("tool fetch_api 429")
            })
            .expect("the 429 pattern")
            .clone();
        (
            evidence(&f, "errors"),
            evidence(&f, "error_rate_pct"),
            evidence(&f, "sessions"),
            f["wasted_tokens"].clone(),
        )
    };
    let (_, both) = scan_json(&[pack[0], pack[1], path.to_str().unwrap()]);
    assert_eq!(
        storm(&both),
        ("12".into(), "50.0".into(), "6".into(), json!(9840))
    );
    let (_, window) = scan_json(&[
        pack[0],
        pack[1],
        "--since",
        "2024-05-29",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        storm(&window),
        ("6".into(), "50.0".into(), "3".into(), json!(4920)),
        "the window's errors only, as in the fixture alone"
    );
}

/// "$X / month reclaimable": every detector's waste over the days the input
/// covers, scaled to 30 days, with a token two rules charge counted once.
#[test]
fn the_monthly_reclaimable_figure_counts_overlapping_tokens_once() {
    let month = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/month.jsonl.gz");
    let (_, r) = scan_json(&[
        "--pack",
        "builtin:default",
        "--pack",
        "builtin:weekly-audit",
        month.to_str().unwrap(),
    ]);
    let s = &r["summary"];
    let overlap = s["overlap_tokens"].as_u64().unwrap();
    assert!(
        overlap > 0,
        "error-patterns and retry-storm charge some calls alike"
    );
    let days = s["covered_days"].as_f64().unwrap();
    assert!(days > 29.0 && days < 31.0, "{days}");
    let distinct = s["wasted_tokens"].as_u64().unwrap() - overlap;
    let want = (distinct as f64 * 30.0 / days).round() as u64;
    assert_eq!(s["per_month"]["wasted_tokens"], want);
    let per_month_cost = s["per_month"]["cost_usd"].as_f64().unwrap();
    let cost = s["cost_usd"].as_f64().unwrap() * 30.0 / days;
    assert!(per_month_cost < cost, "the overlap's cost is taken out");
    let table = String::from_utf8(tokenhound(&["scan", month.to_str().unwrap()]).stdout).unwrap();
    assert!(table.contains("/ month reclaimable"), "{table}");
}

/// Reports lead with patterns: one offender with its instances, not ten copies
/// of "gh_api called 5 times in a row".
#[test]
fn reports_group_findings_by_rule_and_pattern() {
    let month = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/month.jsonl.gz");
    let (_, r) = scan_json(&[month.to_str().unwrap()]);
    let patterns = r["patterns"].as_array().unwrap();
    let total: u64 = patterns
        .iter()
        .map(|p| p["wasted_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(total, r["summary"]["wasted_tokens"].as_u64().unwrap());
    let instances: u64 = patterns
        .iter()
        .map(|p| p["instances"].as_u64().unwrap())
        .sum();
    assert_eq!(instances as usize, r["findings"].as_array().unwrap().len());
    let gh = patterns
        .iter()
        .find(|p| p["rule"] == "retry-storm" && p["pattern"] == "gh_api")
        .expect("the gh_api storms are one pattern");
    let members: Vec<&Value> = gh["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &r["findings"][i.as_u64().unwrap() as usize])
        .collect();
    assert_eq!(members.len() as u64, gh["instances"].as_u64().unwrap());
    assert!(members
        .iter()
        .all(|f| f["title"].as_str().unwrap().starts_with("gh_api called")));
    let sum: u64 = members
        .iter()
        .map(|f| f["wasted_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(gh["wasted_tokens"], sum);
    // Largest first.
    let sizes: Vec<u64> = patterns
        .iter()
        .map(|p| p["wasted_tokens"].as_u64().unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
    let table = String::from_utf8(tokenhound(&["scan", month.to_str().unwrap()]).stdout).unwrap();
    assert!(table.contains("Top patterns (of"), "{table}");
    assert!(table.contains("retry-storm: gh_api —"), "{table}");
}

/// `tokenhound audit`: the Monday routine in one command, and what changed
/// since last week's audit.
#[test]
fn the_monday_audit_lists_patterns_costliest_calls_and_changes_since_last_week() {
    let dir = tempfile::tempdir().unwrap();
    let month = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/month.jsonl.gz");
    let last = dir.path().join("last.json");
    tokenhound_ok(&[
        "audit",
        "--format",
        "json",
        "--output",
        last.to_str().unwrap(),
        month.to_str().unwrap(),
    ]);
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&last).unwrap()).unwrap();
    assert_eq!(j["schema"], "tokenhound.audit/v1");
    assert_eq!(j["costliest"]["calls"].as_array().unwrap().len(), 14);
    let rules: Vec<&str> = j["report"]["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap())
        .collect();
    for r in tokenhound::builtin::NAMES {
        assert!(rules.contains(&r), "{r} runs in the audit: {rules:?}");
    }
    // Last week had no gh_api storms and a pattern that is gone now.
    let patterns = j["report"]["patterns"].as_array_mut().unwrap();
    patterns.retain(|p| p["pattern"] != "gh_api");
    patterns.push(json!({"rule": "retry-storm", "pattern": "old_tool", "wasted_tokens": 5}));
    std::fs::write(&last, j.to_string()).unwrap();
    let out = tokenhound_ok(&[
        "audit",
        "--baseline",
        last.to_str().unwrap(),
        month.to_str().unwrap(),
    ]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# Weekly audit"), "{md}");
    let changes = md
        .split("## Since last week")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap();
    assert!(
        changes.contains("new patterns: retry-storm: gh_api"),
        "{changes}"
    );
    assert!(changes.contains("gone: retry-storm: old_tool"), "{changes}");
    assert!(md.contains("## Top patterns"), "{md}");
    assert!(md.contains("## The 14 costliest calls"), "{md}");
}
