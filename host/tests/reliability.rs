//! Trust under real use (issue "Trustworthy under real use"): no span counted
//! twice, no scan that understood nothing looking clean, one bad file costing
//! only itself, costs that say what they lack, packs shown as they apply, and
//! untrusted plugin output kept within bounds.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/month.jsonl.gz")
}

fn totals(r: &Value) -> (u64, u64, u64) {
    (
        r["totals"]["spans"].as_u64().unwrap(),
        r["totals"]["total_tokens"].as_u64().unwrap(),
        r["findings"].as_array().unwrap().len() as u64,
    )
}

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let out = tokenhound(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_same_spans_in_two_files_are_counted_once_and_the_repeats_named() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.jsonl.gz");
    std::fs::copy(example(), &copy).unwrap();
    let (_, once) = scan_json(&[example().to_str().unwrap()]);
    let (_, twice) = scan_json(&[example().to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(totals(&twice), totals(&once));
    assert_eq!(finding_keys(&twice), finding_keys(&once));
    assert_eq!(twice["input"]["repeated_spans"], once["totals"]["spans"]);
    let from = twice["input"]["repeated_in"].as_object().unwrap();
    assert_eq!(from.len(), 1);
    assert!(from.keys().next().unwrap().ends_with("copy.jsonl.gz"));
}

#[test]
fn inspect_of_paths_with_nothing_readable_lists_why_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("spnas.jsonl");
    let out = tokenhound(&["inspect", "--format", "json", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["input"]["skipped_files"], 1, "{r:#}");
    let why = r["input"]["first_problems"][0]["reason"].as_str().unwrap();
    assert!(why.contains("No such file"), "{why}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("nothing read: no file could be read"),
        "{said}"
    );

    let out = tokenhound(&["inspect", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("no file found in the paths given"), "{said}");

    // one readable file among them is an inspection like any other
    let ok = tokenhound(&[
        "inspect",
        typo.to_str().unwrap(),
        example().to_str().unwrap(),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn a_rotated_collector_folder_with_a_compressed_copy_counts_each_span_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = {
        let mut s = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(example()).unwrap()),
            &mut s,
        )
        .unwrap();
        s
    };
    let lines: Vec<&str> = text.lines().collect();
    let (old, new) = lines.split_at(100);
    std::fs::write(dir.path().join("a-1.jsonl"), old.join("\n") + "\n").unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.path().join("a-1.jsonl.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all((old.join("\n") + "\n").as_bytes()).unwrap();
    gz.finish().unwrap();
    std::fs::write(dir.path().join("a.jsonl"), new.join("\n") + "\n").unwrap();
    let (_, whole) = scan_json(&[example().to_str().unwrap()]);
    let (_, folder) = scan_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(totals(&folder), totals(&whole));
    assert_eq!(finding_keys(&folder), finding_keys(&whole));
    assert!(folder["input"]["repeated_spans"].as_u64().unwrap() > 0);
}

#[test]
fn two_downloads_of_one_langfuse_trace_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/real/langfuse/pydantic-ai-tools-2025-12-04.trace.json");
    std::fs::copy(&real, dir.path().join("download (1).json")).unwrap();
    let (_, once) = scan_json(&[real.to_str().unwrap()]);
    let (_, both) = scan_json(&[real.to_str().unwrap(), dir.path().to_str().unwrap()]);
    assert_eq!(totals(&both), totals(&once));
    assert_eq!(both["input"]["repeated_spans"], once["totals"]["spans"]);
}

#[test]
fn a_scan_that_understood_nothing_exits_2_and_points_at_inspect_and_mapping() {
    let dir = tempfile::tempdir().unwrap();
    // Custom attribute names: nothing a dialect knows.
    let custom = dir.path().join("custom.jsonl");
    let line = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "aa".repeat(16), "spanId": "bb".repeat(8), "name": "model-call",
        "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [{"key": "acme.llm.prompt_tokens", "value": {"intValue": "500"}}]}]}]}]});
    std::fs::write(&custom, format!("{line}\n")).unwrap();
    let (code, err) = stderr_of(&["scan", "--fail-on", "info", custom.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tokenhound inspect") && err.contains("--mapping"),
        "{err}"
    );

    // A forced format that reads nothing.
    let (code, err) = stderr_of(&[
        "scan",
        "--input-format",
        "langfuse",
        example().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("record skipped"), "{err}");

    // An empty folder.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, err) = stderr_of(&["scan", empty.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no file found"), "{err}");
}

#[test]
fn a_detector_that_could_not_look_says_not_checked_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-output.jsonl");
    let mut f = Fixture::new("cccccccccccccccccccccccccccccccc");
    let a = f.agent(None, "coder", "s1");
    f.llm(&a, 1000, 10, None); // no output text captured
    f.write(&path);
    let (_, r) = scan_json(&[path.to_str().unwrap()]);
    assert_eq!(
        detector(&r, "filler-preamble")["not_checked"],
        "not checked: no output content captured"
    );
    // retry-storm reads no content: it looked.
    assert!(detector(&r, "retry-storm")["not_checked"].is_null());
    for format in ["table", "markdown"] {
        let out = tokenhound(&["scan", "--format", format, path.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("not checked: no output content"),
            "{format}: {text}"
        );
    }
}

#[test]
fn a_bad_file_in_a_folder_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(example(), d.join("month.jsonl.gz")).unwrap();
    std::fs::write(d.join("SOURCES.md"), "# where these come from\n").unwrap();
    // A gzip stream cut off in the middle.
    let mut lines = Vec::new();
    let mut f = Fixture::new("dddddddddddddddddddddddddddddddd");
    let a = f.agent(None, "x", "s-trunc");
    f.llm(&a, 10, 1, None);
    for _ in 0..200 {
        lines.push(f.line());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(lines.join("\n").as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(d.join("cut.jsonl.gz"), &bytes[..bytes.len() / 2]).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.jsonl")).unwrap();
        std::os::unix::fs::symlink(d, d.join("loop")).unwrap();
        let fifo = std::ffi::CString::new(d.join("pipe").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    }
    let (code, r) = scan_json(&[d.to_str().unwrap()]);
    assert_eq!(code, 0);
    let (_, whole) = scan_json(&[example().to_str().unwrap()]);
    assert_eq!(
        finding_keys(&r),
        finding_keys(&whole),
        "the good file is analysed whole"
    );
    let problems: Vec<String> = r["input"]["first_problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p["file"], p["reason"]))
        .collect();
    let named = |name: &str| problems.iter().any(|p| p.contains(name));
    assert!(named("SOURCES.md") && named("cut.jsonl.gz"), "{problems:?}");
    #[cfg(unix)]
    assert!(
        named("dangling.jsonl") && named("pipe") && named("loop"),
        "{problems:?}"
    );
    assert!(r["input"]["skipped_files"].as_u64().unwrap() >= 2);
    // The readable part of the cut stream is read.
    assert!(r["totals"]["spans"].as_u64().unwrap() > whole["totals"]["spans"].as_u64().unwrap());
}

#[test]
fn a_line_longer_than_the_limit_is_a_located_problem_read_past() {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("pack.toml");
    std::fs::write(
        &pack,
        "[pack]\nname = \"small\"\nversion = \"1\"\n[settings]\nmax_record_mb = 1\n",
    )
    .unwrap();
    let path = dir.path().join("long.jsonl");
    let mut f = Fixture::new("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    let a = f.agent(None, "x", "s1");
    f.llm(&a, 100, 10, None);
    let mut g = Fixture::new("abababababababababababababababab");
    let b = g.agent(None, "y", "s2");
    g.llm(&b, 100, 10, None);
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "{}", f.line()).unwrap();
    writeln!(
        file,
        "{{\"resourceSpans\": [], \"pad\": \"{}\"}}",
        "x".repeat(3 << 20)
    )
    .unwrap();
    writeln!(file, "{}", g.line()).unwrap();
    drop(file);
    let (code, r) = scan_json(&[
        "--pack",
        "builtin:default",
        "--pack",
        pack.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        r["totals"]["llm_calls"], 2,
        "the lines before and after are read"
    );
    let p = &r["input"]["first_problems"][0];
    assert_eq!(p["line"], 2);
    assert!(
        p["reason"].as_str().unwrap().contains("max_record_mb"),
        "{p}"
    );
}

#[test]
fn models_without_a_price_are_named_and_gemini_is_priced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.jsonl");
    let mut f = Fixture::new("ffffffffffffffffffffffffffffffff");
    let a = f.agent(None, "x", "s1");
    let id = f.llm(&a, 1000, 10, None);
    let mut g = f.spans.last().unwrap().clone();
    g["spanId"] = json!("00000000000000ff");
    g["attributes"][1]["value"]["stringValue"] = json!("acme-internal-7b");
    f.spans.push(g);
    f.spans
        .iter_mut()
        .filter(|s| s["spanId"] == json!(id))
        .for_each(|s| {
            s["attributes"][1]["value"]["stringValue"] = json!("gemini-2.5-flash");
        });
    f.write(&path);
    let (_, r) = scan_json(&[path.to_str().unwrap()]);
    assert_eq!(r["totals"]["unpriced"], json!(["acme-internal-7b"]));
    assert!(r["totals"]["cost_usd"].as_f64().unwrap() > 0.0);
    let out = tokenhound(&["scan", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no price known for acme-internal-7b"),
        "{text}"
    );
}

#[test]
fn detectors_shows_the_values_and_severity_the_packs_set() {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("strict.toml");
    std::fs::write(
        &pack,
        "[pack]\nname = \"strict\"\nversion = \"1\"\n[[rule]]\nid = \"retry-storm\"\nseverity = \"critical\"\n[rule.params]\nmin_calls = 2\n",
    )
    .unwrap();
    let out = tokenhound(&[
        "detectors",
        "--pack",
        "builtin:default",
        "--pack",
        pack.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let storm = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "retry-storm")
        .unwrap();
    assert_eq!(storm["severity"], "critical");
    let min = storm["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "min_calls")
        .unwrap();
    assert_eq!(min["value"], 2);
    assert_eq!(min["default"], 3);
    let text = tokenhound(&[
        "detectors",
        "--pack",
        "builtin:default",
        "--pack",
        pack.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("min_calls (integer) = 2 (set by the pack; default 3)"),
        "{text}"
    );
    assert!(text.contains("severity critical"), "{text}");
}

#[test]
fn pack_limits_and_prices_out_of_range_are_located_pack_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (body, want) in [
        ("[limits]\nmemory_mb = 0\n", "limits.memory_mb"),
        ("[limits]\nmemory_mb = 17592186044416\n", "limits.memory_mb"),
        ("[limits]\ntimeout_ms = 99999999999\n", "limits.timeout_ms"),
        ("[limits]\nfuel = 0\n", "limits.fuel"),
        ("[limits]\nstack_kb = 0\n", "limits.stack_kb"),
        (
            "[prices.\"m\"]\ninput = -2.0\noutput = 1.0\n",
            "prices.\"m\"",
        ),
        (
            "[prices.\"m\"]\ninput = nan\noutput = 1.0\n",
            "prices.\"m\"",
        ),
    ] {
        let pack = dir.path().join("p.toml");
        std::fs::write(
            &pack,
            format!("[pack]\nname = \"p\"\nversion = \"1\"\n\n{body}"),
        )
        .unwrap();
        let (code, err) = stderr_of(&["check", pack.to_str().unwrap()]);
        assert_eq!(code, Some(3), "{body}: {err}");
        assert!(
            err.contains("p.toml:5:") && err.contains(want),
            "{body}: {err}"
        );
    }
}

#[test]
fn a_mistyped_rule_id_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("p.toml");
    std::fs::write(
        &pack,
        "[pack]\nname = \"p\"\nversion = \"1\"\n[[rule]]\nid = \"retry-strom\"\nseverity = \"low\"\n",
    )
    .unwrap();
    let (code, err) = stderr_of(&["check", "builtin:default", pack.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    assert!(err.contains("did you mean `retry-storm`"), "{err}");
}

#[test]
fn a_component_file_that_is_not_wasm_is_refused_without_echoing_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "root:SECRET-HASH:19000:0:99999:7:::\n").unwrap();
    let pack = dir.path().join("p.toml");
    std::fs::write(
        &pack,
        "[pack]\nname = \"p\"\nversion = \"1\"\n[[rule]]\nid = \"x\"\ndetector = \"secret.txt\"\n",
    )
    .unwrap();
    let (code, err) = stderr_of(&["check", pack.to_str().unwrap()]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("not a WebAssembly file"), "{err}");
    assert!(!err.contains("SECRET") && !err.contains("root"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

fn problem_texts(r: &Value) -> Vec<String> {
    r["input"]["first_problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_parent_loop_of_three_spans_keeps_their_tokens_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new("00000000000000000000000000000c1c");
    let root = f.agent(None, "coder", "s-loop");
    let a = f.llm(&root, 100, 10, None);
    let b = f.llm(&a, 100, 10, None);
    let c = f.llm(&b, 100, 10, None);
    // a's parent becomes c: a → c → b → a, a loop with no way up to the root.
    // Before, each call wrapped the others, so all three were demoted and their
    // 330 tokens vanished without a word.
    f.spans[1]["parentSpanId"] = json!(c);
    f.write(&dir.path().join("loop.jsonl"));
    let (_, r) = scan_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(r["totals"]["llm_calls"], 3, "{r:#}");
    assert_eq!(r["totals"]["total_tokens"], 330);
    let problems = problem_texts(&r);
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("spans {a}, {b}, {c} of trace"))
                && p.contains("parent loop")),
        "{problems:?}"
    );
}

#[test]
fn clock_errors_are_named_and_made_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new("00000000000000000000000000000c10");
    let root = f.agent(None, "coder", "s-clock");
    let back = f.llm(&root, 100, 10, None);
    let future = f.llm(&root, 100, 10, None);
    // The first call ends 2 s before it starts; the second starts in 2500.
    let start: u64 = f.spans[1]["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    f.spans[1]["endTimeUnixNano"] = json!((start - 2_000_000_000).to_string());
    let y2500: u64 = 16_725_225_600 * 1_000_000_000;
    f.spans[2]["startTimeUnixNano"] = json!(y2500.to_string());
    f.spans[2]["endTimeUnixNano"] = json!((y2500 + 1).to_string());
    f.write(&dir.path().join("clock.jsonl"));
    let (_, r) = scan_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(r["totals"]["total_tokens"], 220, "{r:#}");
    let problems = problem_texts(&r);
    let has = |s: &str| problems.iter().any(|p| p.contains(s));
    assert!(
        has(&format!("span {back} ends 2.000 s before it starts")),
        "{problems:?}"
    );
    assert!(
        has(&format!(
            "span {future} starts more than a year from now (2500-01-01)"
        )),
        "{problems:?}"
    );
}

#[test]
fn one_invalid_utf8_byte_costs_no_span_of_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new("00000000000000000000000000000b7e");
    let root = f.agent(None, "coder", "s-bytes");
    for _ in 0..5 {
        f.llm(&root, 100, 10, Some("caf\u{e9} ready"));
    }
    // Latin-1 é (0xE9) where UTF-8 has two bytes: one invalid byte per output.
    let line = f.line().replace('\u{e9}', "\u{1}");
    let bytes: Vec<u8> = line
        .into_bytes()
        .into_iter()
        .map(|b| if b == 1 { 0xE9 } else { b })
        .collect();
    std::fs::write(
        dir.path().join("latin1.jsonl"),
        [&bytes[..], b"\n"].concat(),
    )
    .unwrap();
    let (_, r) = scan_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(r["totals"]["spans"], 6, "{r:#}");
    assert_eq!(r["totals"]["total_tokens"], 550);
    let problems = problem_texts(&r);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("invalid UTF-8") && p.contains("5 bad sequences")),
        "{problems:?}"
    );
}

#[test]
fn a_plugin_posing_as_a_built_in_is_refused_and_a_copy_of_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("retry-storm-pinned.wasm");
    std::fs::copy(plugin("retry_storm"), &copy).unwrap();
    let pack = |detector: &Path| {
        let p = dir.path().join("p.toml");
        std::fs::write(
            &p,
            format!(
                "[pack]\nname = \"p\"\nversion = \"1\"\n[[rule]]\nid = \"x\"\ndetector = \"{}\"\n",
                detector.display()
            ),
        )
        .unwrap();
        p
    };
    let (code, err) = stderr_of(&["check", pack(&plugin("impostor")).to_str().unwrap()]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("calls itself `retry-storm 0.5.0`, a built-in detector"),
        "{err}"
    );
    let (code, err) = stderr_of(&["check", pack(&copy).to_str().unwrap()]);
    assert_eq!(code, Some(0), "a pinned copy of the built-in loads: {err}");
}

#[test]
fn csv_problems_name_the_line_the_row_starts_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from(
        "id,trace_id,type,name,start_time,end_time,parent_observation_id,usage_details,input\n",
    );
    csv += "root,t1,AGENT,root,2025-06-01 10:00:00.000,2025-06-01 10:00:02.000,,{},\n";
    // A cell over three lines: the next row starts on line 6, not 4.
    csv += "g1,t1,GENERATION,g1,2025-06-01 10:00:00.100,2025-06-01 10:00:01.000,root,\"{\"\"input\"\": 90, \"\"output\"\": 12}\",\"line one\nline two\nline three\"\n";
    csv += "x,t1,GENERATION,x,not a time,,root,{},\n";
    let path = dir.path().join("obs.csv");
    let mut bytes = csv.into_bytes();
    // Line 7: a row with a byte that is not UTF-8.
    bytes.extend_from_slice(
        b"y,t1,GENERATION,y,2025-06-01 10:00:01.100,2025-06-01 10:00:01.900,root,{},caf\xe9\n",
    );
    std::fs::write(&path, bytes).unwrap();
    let out = tokenhound(&["inspect", "--format", "json", path.to_str().unwrap()]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<u64> = r["input"]["first_problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![6, 7], "{}", r["input"]["first_problems"]);
    // The row with the bad byte is still read; only the broken time costs its row.
    assert_eq!(r["llm_calls"], 2, "{r:#}");
}

#[test]
fn costs_the_source_recorded_are_used_and_said() {
    // Real any-agent spans carry gen_ai.usage.input_cost / output_cost.
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/real/any-agent/OPENAI_trace.json");
    let (_, r) = scan_json(&[real.to_str().unwrap()]);
    let t = &r["totals"];
    assert_eq!(t["cost_recorded_calls"], t["llm_calls"], "{t:#}");
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!((cost - t["cost_recorded_usd"].as_f64().unwrap()).abs() < 1e-12);
    assert!(cost > 0.0 && cost < 0.01, "{cost}");

    // One call with an OpenInference cost, one without: the second is priced.
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new("00000000000000000000000000000c05");
    let root = f.agent(None, "coder", "s-cost");
    f.llm(&root, 1_000_000, 0, None);
    f.llm(&root, 1_000_000, 0, None);
    f.spans[1]["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "llm.cost.total", "value": {"doubleValue": 1.25}}));
    f.write(&dir.path().join("mixed.jsonl"));
    let path = dir.path().join("mixed.jsonl");
    let (_, r) = scan_json(&[path.to_str().unwrap()]);
    let t = &r["totals"];
    assert_eq!(t["cost_recorded_calls"], 1);
    assert_eq!(t["cost_recorded_usd"], 1.25);
    // gpt-4o input at $2.50 per million for the call without a recorded cost.
    assert!(
        (t["cost_usd"].as_f64().unwrap() - 3.75).abs() < 1e-9,
        "{t:#}"
    );
    let table = String::from_utf8(tokenhound(&["scan", path.to_str().unwrap()]).stdout).unwrap();
    assert!(
        table.contains("cost: $3.75: $1.25 as the source recorded it (1 of 2 calls), the rest at list prices of"),
        "{table}"
    );
}

#[test]
fn otlp_json_numbers_are_read_where_text_is_canonical_too() {
    // The protobuf JSON mapping writes 64-bit integers as strings but readers
    // must take numbers as well; doubles are plain numbers.
    let dir = tempfile::tempdir().unwrap();
    let span = json!({
        "traceId": "00000000000000000000000000000a0b", "spanId": "0000000000000002",
        "name": "chat gpt-4o",
        "startTimeUnixNano": 1_700_000_000_000_000_000u64,
        "endTimeUnixNano": 1_700_000_000_500_000_000u64,
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 1000}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "20"}},
            {"key": "llm.cost.total", "value": {"doubleValue": 0.5}}
        ]
    });
    let line = json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]});
    let path = dir.path().join("numbers.jsonl");
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let (code, r) = scan_json(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["input"]["problems"], 0, "{:#}", r["input"]);
    assert_eq!(r["totals"]["total_tokens"], 1020);
    assert_eq!(r["totals"]["cost_usd"], 0.5);
}

/// Where findings cannot go to disk (no writable temporary folder), the scan
/// says so and keeps them in memory: the same report, nothing lost.
#[test]
fn findings_stay_in_memory_when_no_temporary_file_can_be_made() {
    let month = example();
    let args = ["scan", "--format", "json", month.to_str().unwrap()];
    let usual = tokenhound(&args);
    let stuck = Command::new(BIN)
        .args(args)
        .env("TOKENHOUND_CACHE_DIR", cache_dir())
        .env("TMPDIR", "/nonexistent/tokenhound-no-tmp")
        .output()
        .expect("run tokenhound");
    assert!(usual.status.success() && stuck.status.success());
    let report: Value = serde_json::from_slice(&usual.stdout).unwrap();
    assert!(
        report["findings"].as_array().unwrap().len() > 2048,
        "enough findings to go to disk"
    );
    assert!(usual.stdout == stuck.stdout, "the same report");
    let said = String::from_utf8_lossy(&stuck.stderr);
    assert!(said.contains("kept in memory"), "{said}");
    assert!(said.contains("/nonexistent/tokenhound-no-tmp"), "{said}");
}

/// Problems naming a span that came after its trace was analysed.
fn split_traces(r: &Value) -> usize {
    problem_texts(r)
        .iter()
        .filter(|p| p.contains("arrived after that trace was analysed"))
        .count()
}

/// `scan --format json -` with `files` fed to stdin in writes of uneven
/// sizes, as a pipe from another program hands them over.
fn scan_piped(files: &[&Path], extra: &[&str]) -> Value {
    let bytes: Vec<u8> = files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    scan_json_stdin(extra, move |stdin| {
        let (mut at, mut size) = (0, 1usize);
        while at < bytes.len() {
            size = (size * 7919 + 4093) % 300_000 + 1;
            let end = (at + size).min(bytes.len());
            stdin.write_all(&bytes[at..end]).unwrap();
            at = end;
        }
    })
}

/// Two exports of one period read one after the other (`cat a b | scan -`):
/// the second goes back in time, so each of its traces is quiet by the
/// stream's clock from its first span on. Such a trace used to be analysed
/// at the end of the block holding that span, its other spans split off as
/// partial traces; and where blocks end depends on how a pipe hands out
/// bytes, so the findings changed from run to run. Now every trace stays
/// whole: no span is late, the rules that look within a trace find what
/// they find in each export alone, and a pipe gives what the files give.
#[test]
fn two_exports_of_one_period_read_one_after_the_other_keep_their_traces_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let (a, b) = (generated_month(&a_dir, 11), generated_month(&b_dir, 12));
    // Closing starts early, as past the budget on a large input.
    let budget = ["--open-spans", "2000"];
    let alone = |m: &Path| scan_json(&[&budget[..], &[m.to_str().unwrap()]].concat()).1;
    let (only_a, only_b) = (alone(&a), alone(&b));
    let (_, both) = scan_json(&[&budget[..], &[a.to_str().unwrap(), b.to_str().unwrap()]].concat());
    assert_eq!(split_traces(&both), 0, "{:?}", problem_texts(&both).first());
    for rule in [
        "retry-storm",
        "subagent-duplicate-context",
        "filler-preamble",
    ] {
        let count = |r: &Value| findings(r, rule).len();
        assert!(count(&only_b) > 0, "{rule}: the month has some");
        assert_eq!(count(&both), count(&only_a) + count(&only_b), "{rule}");
    }
    for _ in 0..2 {
        let piped = scan_piped(&[&a, &b], &budget);
        assert_eq!(split_traces(&piped), 0);
        assert_eq!(finding_keys(&piped), finding_keys(&both));
    }
}
