//! Rule packs are validated before anything runs; each error names the file and
//! line, and the exit codes tell CI what went wrong.

mod common;
use common::*;
use serde_json::json;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn storm(dir: &std::path::Path) -> String {
    let mut f = Fixture::new("66666666666666666666666666666666");
    let a = f.agent(None, "coder", "s1");
    for _ in 0..3 {
        f.tool(&a, "run_tests", json!({"suite": "all"}), None);
        f.llm(&a, 1000, 10, None);
    }
    let p = dir.join("spans.jsonl");
    f.write(&p);
    p.display().to_string()
}

const HEAD: &str = "[pack]\nname = \"t\"\nversion = \"1.0.0\"\n";

fn fails(text: &str, code: i32, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let pack = write(dir.path(), "pack.toml", text);
    let input = storm(dir.path());
    let out = tokenhound(&["scan", "--pack", &pack, &input]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in: {err}");
    }
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn unknown_key_names_file_and_line() {
    fails(&format!("{HEAD}\n[[rule]]\nid = \"r\"\ndetector = \"builtin:retry-storm\"\nseverty = \"high\"\n"), 3, &["pack.toml:8", "unknown field `severty`"]);
}

#[test]
fn wrong_type_names_file_and_line() {
    fails(
        &format!(
            "{HEAD}\n[[rule]]\nid = \"r\"\ndetector = \"builtin:retry-storm\"\nenabled = \"yes\"\n"
        ),
        3,
        &["pack.toml:8", "invalid type"],
    );
}

#[test]
fn unknown_detector_lists_the_builtins() {
    fails(
        &format!("{HEAD}\n[[rule]]\nid = \"r\"\ndetector = \"builtin:retry-strom\"\n"),
        3,
        &[
            "pack.toml:7",
            "unknown built-in detector `retry-strom`",
            "retry-storm",
        ],
    );
}

#[test]
fn unknown_parameter_lists_the_known_ones() {
    fails(
        &format!("{HEAD}\n[[rule]]\nid = \"r\"\ndetector = \"builtin:retry-storm\"\n[rule.params]\nmin_call = 3\n"),
        3,
        &["pack.toml:8", "no parameter `min_call`", "min_calls"],
    );
}

#[test]
fn parameter_of_the_wrong_type() {
    fails(
        &format!("{HEAD}\n[[rule]]\nid = \"r\"\ndetector = \"builtin:retry-storm\"\n[rule.params]\nmin_calls = \"three\"\n"),
        3,
        &["pack.toml:8", "`min_calls` must be a whole number"],
    );
}

#[test]
fn detector_rejects_a_bad_value() {
    fails(
        &format!("{HEAD}\n[[rule]]\nid = \"r\"\ndetector = \"builtin:retry-storm\"\n[rule.params]\nmin_calls = 1\n"),
        3,
        &["pack.toml:5", "min_calls must be at least 2"],
    );
}

#[test]
fn version_requirement_is_checked() {
    fails(
        "[pack]\nname = \"t\"\nversion = \"1.0.0\"\nrequires = \">=9.0\"\n",
        3,
        &["pack.toml:4", "needs tokenhound >=9.0"],
    );
}

#[test]
fn a_file_that_is_not_a_component_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "broken.wasm", "not wasm");
    let pack = write(
        dir.path(),
        "pack.toml",
        &format!("{HEAD}\n[[rule]]\nid = \"mine\"\ndetector = \"broken.wasm\"\n"),
    );
    let input = storm(dir.path());
    let out = tokenhound(&["scan", "--pack", &pack, &input]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.wasm") && err.contains("rule `mine`"),
        "{err}"
    );
}

#[test]
fn later_pack_overrides_by_id_and_fail_on_gates() {
    let dir = tempfile::tempdir().unwrap();
    let input = storm(dir.path());
    // Default: the storm is a high finding.
    let (code, r) = scan_json(&["--fail-on", "high", &input]);
    assert_eq!(code, 1);
    assert_eq!(findings(&r, "retry-storm")[0]["severity"], "high");
    // A later pack lowers its severity and raises min_calls: no finding, exit 0.
    let over = write(dir.path(), "over.toml", &format!("{HEAD}\n[[rule]]\nid = \"retry-storm\"\nseverity = \"low\"\n[rule.params]\nmin_calls = 4\n"));
    let default = format!("{}/../rules/default.toml", env!("CARGO_MANIFEST_DIR"));
    let (code, r) = scan_json(&[
        "--fail-on",
        "low",
        "--pack",
        &default,
        "--pack",
        &over,
        &input,
    ]);
    assert_eq!(code, 0);
    assert_eq!(findings(&r, "retry-storm").len(), 0);
    // Disabled rules do not run.
    let off = write(
        dir.path(),
        "off.toml",
        &format!("{HEAD}\n[[rule]]\nid = \"retry-storm\"\nenabled = false\n"),
    );
    let (_, r) = scan_json(&["--pack", &default, "--pack", &off, &input]);
    assert!(r["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["rule"] != "retry-storm"));
}

#[test]
fn shipped_packs_are_valid() {
    for p in ["default.toml", "weekly-audit.toml"] {
        let path = format!("{}/../rules/{p}", env!("CARGO_MANIFEST_DIR"));
        let default = format!("{}/../rules/default.toml", env!("CARGO_MANIFEST_DIR"));
        let out = tokenhound(&["check", &default, &path]);
        assert!(
            out.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
