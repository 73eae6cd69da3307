//! Bad input costs only itself: each bad record is a located problem, counted,
//! and every good span is still analysed.

mod common;
use common::*;
use serde_json::json;
use std::io::Write;

#[test]
fn bad_records_are_located_and_good_ones_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    // Line 1: a good trace with a retry storm, split over two lines (1 and 6).
    let mut f = Fixture::new("11111111111111111111111111111111");
    let a = f.agent(None, "coder", "s1");
    for _ in 0..3 {
        f.tool(&a, "run_tests", json!({"suite": "all"}), None);
        f.llm(&a, 1000, 10, None);
    }
    let mut later = Fixture::new("11111111111111111111111111111111");
    later.spans = f.spans.split_off(4);
    let mut bad = Fixture::new("22222222222222222222222222222222");
    let b = bad.agent(None, "x", "s2");
    bad.spans[0]["startTimeUnixNano"] = json!(true); // wrong type
    let _ = b;
    let mut noid = Fixture::new("33333333333333333333333333333333");
    noid.agent(None, "y", "s3");
    noid.spans[0].as_object_mut().unwrap().remove("spanId"); // missing id
    let mut selfp = Fixture::new("44444444444444444444444444444444");
    let s = selfp.agent(None, "z", "s4");
    selfp.spans[0]["parentSpanId"] = json!(s); // its own parent

    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "{}", f.line()).unwrap(); // 1
    let good = f.line();
    writeln!(file, "{}", &good[..good.len() / 2]).unwrap(); // 2: truncated
    writeln!(file, "{}", bad.line()).unwrap(); // 3: wrong type in a span
    writeln!(file, "{}", noid.line()).unwrap(); // 4: missing spanId
    file.write_all(b"{\"resourceSpans\": [\xff\xfe]}\n")
        .unwrap(); // 5: invalid UTF-8
    writeln!(file, "{}", later.line()).unwrap(); // 6
    writeln!(file, "{}", selfp.line()).unwrap(); // 7: a span that is its own parent
    drop(file);

    let (code, r) = scan_json(&[path.to_str().unwrap()]);
    assert_eq!(code, 0);
    let problems = r["input"]["first_problems"].as_array().unwrap();
    let at = |line: u64| -> String {
        problems
            .iter()
            .filter(|p| p["line"] == line)
            .map(|p| p["reason"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let file_name = path.display().to_string();
    assert!(problems.iter().all(|p| p["file"] == file_name.as_str()));
    assert!(at(2).contains("EOF"), "truncated: {}", at(2));
    assert!(
        at(3).contains("span skipped") && at(3).contains("invalid type for a time: true"),
        "wrong type: {}",
        at(3)
    );
    assert!(at(4).contains("missing spanId"), "missing id: {}", at(4));
    assert!(
        at(5).to_lowercase().contains("utf-8"),
        "invalid UTF-8: {}",
        at(5)
    );
    assert!(at(7).contains("its own parent"), "self parent: {}", at(7));
    // Line 5 is two problems: its bytes (replaced, so the rest could be read)
    // and then what is left, which is not JSON.
    assert!(
        at(5).contains("not JSON") || at(5).contains("expected value"),
        "{}",
        at(5)
    );
    assert_eq!(r["input"]["problems"], 6);

    // Every good span: 7 of the storm trace + the self-parent one.
    assert_eq!(r["totals"]["spans"], 8);
    assert_eq!(findings(&r, "retry-storm").len(), 1);
    assert_eq!(detector(&r, "retry-storm")["wasted_tokens"], 2020);
}

#[test]
fn unknown_format_and_missing_file_exit_2_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.csv");
    std::fs::write(&p, "a,b,c\n1,2,3\n").unwrap();
    let out = tokenhound(&["scan", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.csv") && err.contains("Expected one of: OTLP JSON"),
        "{err}"
    );

    let out = tokenhound(&["scan", "/no/such/export.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/export.jsonl"));
}

#[test]
fn stdin_gzip_folders_and_single_documents_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new("55555555555555555555555555555555");
    let a = f.agent(None, "coder", "s1");
    for _ in 0..3 {
        f.tool(&a, "run_tests", json!({"suite": "all"}), None);
        f.llm(&a, 1000, 10, None);
    }
    // A pretty-printed single document in a folder, and a gzip copy elsewhere.
    let sub = dir.path().join("exports");
    std::fs::create_dir(&sub).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&f.line()).unwrap();
    std::fs::write(
        sub.join("doc.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    let gz = dir.path().join("copy.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    writeln!(enc, "{}", f.line()).unwrap();
    enc.finish().unwrap();

    let (_, r) = scan_json(&[sub.to_str().unwrap()]);
    assert_eq!(r["totals"]["spans"], 7);
    assert_eq!(findings(&r, "retry-storm").len(), 1);
    let (_, r) = scan_json(&[gz.to_str().unwrap()]);
    assert_eq!(findings(&r, "retry-storm").len(), 1);

    let line = f.line();
    let r = scan_json_stdin(&[], move |w| w.write_all(line.as_bytes()).unwrap());
    assert_eq!(findings(&r, "retry-storm").len(), 1);
}
