//! Reports people act on: proof that a fix worked (`scan --split-at`, `diff`,
//! the waste dated by day) on a generated month whose retry storms are fixed
//! on day 9, and the HTML report rendered in a real browser.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A generated month (October 2026) whose retry storms end on day 9.
fn fixed_month(dir: &Path) -> PathBuf {
    let out = dir.join("month-fixed-day9.jsonl.gz");
    tokenhound_testgen::run(&tokenhound_testgen::Args {
        fix_day: Some(9),
        ..tokenhound_testgen::Args::month(out.clone(), 11)
    })
    .unwrap();
    out
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

fn row<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| {
            let n = match r["pattern"].as_str() {
                Some(p) => format!("{}: {p}", r["rule"].as_str().unwrap()),
                None => r["rule"].as_str().unwrap().to_string(),
            };
            n == name
        })
        .unwrap_or_else(|| panic!("no row {name} in {rows:#}"))
}

#[test]
fn the_daily_waste_drops_to_zero_on_the_day_the_retry_storms_were_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let month = fixed_month(dir.path());
    let (_, r) = scan_json(&[month.to_str().unwrap()]);
    let daily = r["totals"]["daily"].as_object().unwrap();
    let storm = |day: &str| daily[day]["waste"]["retry-storm"].as_u64().unwrap_or(0);
    let before: u64 = daily
        .keys()
        .filter(|d| d.as_str() < "2026-10-09")
        .map(|d| storm(d))
        .sum();
    let after: u64 = daily
        .keys()
        .filter(|d| d.as_str() >= "2026-10-09")
        .map(|d| storm(d))
        .sum();
    assert!(before > 100_000, "storms before the fix: {before}");
    assert_eq!(after, 0, "no storm from day 9 on");
    // Every wasted token is on some day.
    let dated: u64 = daily
        .values()
        .flat_map(|d| d["waste"].as_object().into_iter().flatten())
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(dated, r["summary"]["wasted_tokens"].as_u64().unwrap());
}

#[test]
fn split_at_the_fix_shows_the_retry_storms_gone_and_the_other_detectors_still_there() {
    let dir = tempfile::tempdir().unwrap();
    let month = fixed_month(dir.path());
    let out = tokenhound_ok(&[
        "scan",
        "--format",
        "json",
        "--split-at",
        "2026-10-09",
        month.to_str().unwrap(),
    ]);
    let d = json_of(&out);
    assert_eq!(d["schema"], "tokenhound.diff/v1");
    let storm = row(&d["detectors"], "retry-storm");
    assert!(storm["before"]["share_pct"].as_f64().unwrap() > 5.0);
    assert_eq!(storm["after"]["wasted_tokens"], 0);
    assert_eq!(storm["change_pct"].as_f64().unwrap().round(), -100.0);
    for rule in [
        "context-reread",
        "subagent-duplicate-context",
        "filler-preamble",
    ] {
        assert!(
            row(&d["detectors"], rule)["after"]["share_pct"]
                .as_f64()
                .unwrap()
                > 3.0,
            "{rule} is not what was fixed"
        );
    }
    let gone: Vec<&Value> = d["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["change"] == "gone")
        .collect();
    assert!(!gone.is_empty() && gone.iter().all(|p| p["rule"] == "retry-storm"));
}

#[test]
fn diff_of_two_reports_gates_ci_on_a_pattern_that_grew() {
    let dir = tempfile::tempdir().unwrap();
    let month = fixed_month(dir.path());
    let m = month.to_str().unwrap();
    let (before, after) = (
        dir.path().join("before.json"),
        dir.path().join("after.json"),
    );
    let (b, a) = (before.to_str().unwrap(), after.to_str().unwrap());
    tokenhound_ok(&["scan", "-f", "json", "-o", b, "--until", "2026-10-09", m]);
    tokenhound_ok(&["scan", "-f", "json", "-o", a, "--since", "2026-10-09", m]);

    let fixed = tokenhound(&["diff", "--fail-on-growth", "100", b, a]);
    assert_eq!(
        fixed.status.code(),
        Some(0),
        "the fix made nothing grow 100%"
    );
    let table = String::from_utf8_lossy(&fixed.stdout);
    assert!(table.contains("gone   retry-storm: gh_api"), "{table}");

    // Read backwards, the storms are a new pattern: CI fails and says which.
    let regressed = tokenhound(&["diff", "--fail-on-growth", "100", a, b]);
    assert_eq!(regressed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&regressed.stderr);
    assert!(err.contains("retry-storm: gh_api (new)"), "{err}");
}

#[test]
fn diff_of_a_file_that_is_not_a_report_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("spans.json");
    std::fs::write(&bad, r#"{"resourceSpans": []}"#).unwrap();
    let out = tokenhound(&["diff", bad.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spans.json") && err.contains("not a tokenhound JSON report"),
        "{err}"
    );
}

/// `scan --format html` of the fixed month with the weekly audit's detectors.
fn html_report(dir: &Path) -> (PathBuf, Value) {
    let month = fixed_month(dir);
    let m = month.to_str().unwrap();
    let html = dir.join("report.html");
    let packs = ["-p", "builtin:default", "-p", "builtin:weekly-audit"];
    let mut args = vec!["scan", "-f", "html", "-o", html.to_str().unwrap()];
    args.extend(packs);
    args.push(m);
    tokenhound_ok(&args);
    let mut json = vec!["scan", "-f", "json"];
    json.extend(packs);
    json.push(m);
    (html, json_of(&tokenhound_ok(&json)))
}

#[test]
fn the_html_report_is_one_offline_file_with_every_finding_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let (html, r) = html_report(dir.path());
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    // Nothing to fetch: no script, no link, no source, the policy forbids the rest.
    for banned in ["<script", "<link", " src=", "href=", "https://"] {
        assert!(!page.contains(banned), "the page has {banned}");
    }
    assert!(page.contains("default-src 'none'"));
    // The headline, the charts with axis titles and a legend entry per detector.
    assert!(page.contains("/ month</b>"), "the reclaimable figure");
    assert!(page.contains("wasted tokens per UTC day") && page.contains("UTC day"));
    assert!(page.contains(">Oct 1<"), "dates on the axis");
    assert!(page.contains("tokens since the 1st (cumulative)"));
    // The drop on day 9: the chart's retry-storm bars are all before it.
    let storm_days: Vec<&str> = page
        .split("<title>")
        .skip(1)
        .filter(|t| t[11..].starts_with("retry-storm:"))
        .map(|t| &t[..10])
        .collect();
    assert!(!storm_days.is_empty(), "retry-storm bars in the chart");
    assert!(
        storm_days.iter().all(|d| *d < "2026-10-09"),
        "{storm_days:?}"
    );
    for d in r["detectors"].as_array().unwrap() {
        if d["wasted_tokens"].as_u64().unwrap() > 0 {
            let rule = d["rule"].as_str().unwrap();
            assert!(
                page.contains(&format!("></i>{rule}</span>")),
                "{rule} in the legend"
            );
        }
    }
    // Every finding is reachable: its spans are listed under its pattern.
    for f in r["findings"].as_array().unwrap() {
        for s in f["spans"].as_array().unwrap() {
            let id = s["span_id"].as_str().unwrap();
            assert!(
                page.contains(id),
                "span {id} of {} is in the page",
                f["title"]
            );
        }
    }
    assert!(page.contains("The 14 costliest calls"));
}

/// Which browser is installed, if any.
fn browser() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Rendered by headless Chromium without a console message (a blocked fetch
/// or a script error would log one), and a screenshot kept for a person to
/// look at: target/tmp/screenshots/report.png. `.ci/run` installs chromium;
/// elsewhere, without it, this test is reported as ignored (host/build.rs).
#[test]
#[cfg_attr(
    missing_chromium,
    ignore = "chromium is not installed (apt-get install chromium)"
)]
fn the_html_report_renders_in_headless_chromium_without_console_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (html, _) = html_report(dir.path());
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("report.png");
    let _ = std::fs::remove_file(&png);
    let bin = browser().expect("a chromium binary on PATH");
    let out = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2600",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let log = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "a screenshot of a rendered page ({size} bytes)\n{log}"
    );
    eprintln!("screenshot: {}", png.display());
}

/// The example month in a terminal: one screen, led by its four offenders with
/// their share of sessions and $ / month; the filler openers folded into one line.
#[test]
fn the_example_month_fits_one_screen_led_by_its_patterns() {
    let month = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/month.jsonl.gz");
    let out = tokenhound_ok(&["scan", month.to_str().unwrap()]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.lines().count() <= 40,
        "{} lines:\n{table}",
        table.lines().count()
    );
    for p in [
        "context-reread: CLAUDE.md —",
        "retry-storm: gh_api —",
        "subagent-duplicate-context: pr-reviewer —",
        "retry-storm: deploy_preview —",
    ] {
        let at = table.find(p).unwrap_or_else(|| panic!("{p} in {table}"));
        let two = table[at..].lines().take(2).collect::<String>();
        assert!(
            two.contains("% of sessions)") && two.contains("/ month"),
            "{two}"
        );
    }
    assert!(
        table.contains("+ filler-preamble: 10 more patterns"),
        "{table}"
    );
}
