//! The built-in detectors against the spec's edge cases, one small fixture each:
//! what is a finding, what is not, and the exact waste.

mod common;
use common::*;
use serde_json::{json, Value};

fn scan(f: &Fixture) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("spans.jsonl");
    f.write(&p);
    scan_json(&[p.to_str().unwrap()]).1
}

const T1: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[test]
fn retry_storm_runs() {
    let mut f = Fixture::new(T1);
    let a = f.agent(None, "coder", "s1");
    f.llm(&a, 500, 5, None); // before the run: not waste
    let r1 = f.tool(&a, "run_tests", json!({"n": 1}), None);
    f.llm(&a, 1000, 10, None);
    let r2 = f.tool(&a, "run_tests", json!({"n": 2}), None);
    f.llm(&a, 2000, 20, None);
    let r3 = f.tool(&a, "run_tests", json!({"n": 3}), Some("ok"));
    f.llm(&a, 4000, 40, None); // after the last call: not waste
    let r = scan(&f);
    let fs = findings(&r, "retry-storm");
    assert_eq!(fs.len(), 1);
    assert_eq!(span_ids(fs[0]), vec![r1, r2, r3]);
    assert_eq!(fs[0]["wasted_tokens"], 1010 + 2020);
}

#[test]
fn retry_storm_negatives() {
    let mut f = Fixture::new(T1);
    let a = f.agent(None, "coder", "s1");
    // One retry.
    f.tool(&a, "fetch", json!({"u": 1}), None);
    f.llm(&a, 1000, 10, None);
    f.tool(&a, "fetch", json!({"u": 1}), Some("ok"));
    // Four different files, all read fine.
    for p in ["a", "b", "c", "d"] {
        f.tool(&a, "read_file", json!({"path": p}), Some("x"));
        f.llm(&a, 1000, 10, None);
    }
    let r = scan(&f);
    assert_eq!(findings(&r, "retry-storm").len(), 0);
}

#[test]
fn retry_storm_identical_arguments_and_split_after_success() {
    let mut f = Fixture::new(T1);
    let a = f.agent(None, "coder", "s1");
    // Polling with identical arguments, all succeeding: one run of 3.
    for _ in 0..3 {
        f.tool(&a, "ci_status", json!({"pr": 7}), Some("pending"));
        f.llm(&a, 100, 1, None);
    }
    // success, fail, fail, success: split after the first success, then a run of 3.
    f.tool(&a, "deploy", json!({"try": 0}), Some("ok"));
    let d1 = f.tool(&a, "deploy", json!({"try": 1}), None);
    let d2 = f.tool(&a, "deploy", json!({"try": 2}), None);
    let d3 = f.tool(&a, "deploy", json!({"try": 3}), Some("ok"));
    let r = scan(&f);
    let fs = findings(&r, "retry-storm");
    assert_eq!(fs.len(), 2, "{:#}", r["findings"]);
    let deploy = fs
        .iter()
        .find(|x| x["title"].as_str().unwrap().starts_with("deploy"))
        .unwrap();
    assert_eq!(span_ids(deploy), vec![d1, d2, d3]);
    assert_eq!(
        deploy["wasted_tokens"], 0,
        "retries inside a client: still a finding, no waste"
    );
    let poll = fs
        .iter()
        .find(|x| x["title"].as_str().unwrap().starts_with("ci_status"))
        .unwrap();
    assert_eq!(poll["wasted_tokens"], 202);
}

#[test]
fn retry_storm_is_per_agent() {
    let mut f = Fixture::new(T1);
    let root = f.agent(None, "lead", "s1");
    let a = f.agent(Some(&root), "a", "s1");
    let b = f.agent(Some(&root), "b", "s1");
    f.tool(&a, "search", json!({"q": 1}), None);
    f.tool(&b, "search", json!({"q": 1}), None); // another agent's call does not break a's run
    f.tool(&a, "search", json!({"q": 1}), None);
    f.tool(&b, "lint", json!({}), Some("ok"));
    f.tool(&a, "search", json!({"q": 1}), Some("ok"));
    let r = scan(&f);
    assert_eq!(findings(&r, "retry-storm").len(), 1);
}

#[test]
fn context_reread_same_size_counts_changed_size_does_not() {
    let mut f = Fixture::new(T1);
    let a = f.agent(None, "coder", "s1");
    let body = "x".repeat(1001); // 251 tokens
    f.tool(&a, "read_file", json!({"path": "CLAUDE.md"}), Some(&body));
    f.turn("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    let a2 = f.agent(None, "coder", "s1");
    let same_size = "y".repeat(1001); // a byte differs, same size: still a re-read
    let re = f.tool(
        &a2,
        "Read",
        json!({"file_path": "CLAUDE.md"}),
        Some(&same_size),
    );
    f.tool(
        &a2,
        "read_file",
        json!({"path": "src/edit.rs"}),
        Some("fn a() {}"),
    );
    f.tool(
        &a2,
        "read_file",
        json!({"path": "src/edit.rs"}),
        Some("fn a() { b() }"),
    );
    // Another session reading the same path: not a re-read.
    f.turn("cccccccccccccccccccccccccccccccc");
    let a3 = f.agent(None, "coder", "s2");
    f.tool(&a3, "read_file", json!({"path": "CLAUDE.md"}), Some(&body));
    let r = scan(&f);
    let fs = findings(&r, "context-reread");
    assert_eq!(fs.len(), 1, "{:#}", r["findings"]);
    assert_eq!(fs[0]["session"], "s1");
    assert_eq!(fs[0]["wasted_tokens"], 251);
    assert_eq!(fs[0]["waste"][0][0]["span_id"], re.as_str());
}

#[test]
fn context_reread_by_mcp_resource_uri() {
    let mut f = Fixture::new(T1);
    let a = f.agent(None, "coder", "s1");
    for _ in 0..3 {
        f.span(
            Some(&a),
            "resources/read",
            vec![
                ("mcp.method.name", json!("resources/read")),
                ("mcp.resource.uri", json!("file:///repo/README.md")),
                ("gen_ai.tool.call.result", json!("z".repeat(400))),
            ],
            false,
        );
    }
    let r = scan(&f);
    let fs = findings(&r, "context-reread");
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["wasted_tokens"], 200);
}

#[test]
fn filler_openers_and_preambles() {
    let mut f = Fixture::new(T1);
    let a = f.agent(None, "coder", "s1");
    let yes = [
        (
            "  You\u{2019}re absolutely right, I missed that.\n\nThe fix is below.",
            11,
        ), // 41 bytes: ’ is 3
        ("Sure! Here you go.", 2), // no blank line: the first sentence, "Sure!"
        ("GREAT QUESTION.\n\nAnswer.", 4),
        // not ASCII in its first 64 bytes: "Great question — here it is." is 30 bytes
        ("Great question \u{2014} here it is. Done.", 8),
    ];
    let no = [
        "Surely this is fine.",
        "Great questions deserve short answers.",
        "The answer is 4. You're absolutely right to ask.",
        "Certainly, the value is 4.",
        "Sure!Here it is.",
        "\u{2014} Sure! An opener after a dash is no opener.",
    ];
    let mut want = Vec::new();
    for (t, w) in yes {
        want.push((f.llm(&a, 10, 10, Some(t)), w));
    }
    for t in no {
        f.llm(&a, 10, 10, Some(t));
    }
    // A first paragraph over 600 characters: the preamble is the first sentence.
    let long = format!("Good catch. {}\n\nok", "word ".repeat(150));
    want.push((f.llm(&a, 10, 10, Some(&long)), 3));
    let r = scan(&f);
    let fs = findings(&r, "filler-preamble");
    assert_eq!(fs.len(), want.len(), "{:#}", r["findings"]);
    for (id, w) in want {
        let x = fs.iter().find(|x| span_ids(x) == vec![id.clone()]).unwrap();
        assert_eq!(x["wasted_tokens"], w, "{x}");
        assert_eq!(x["waste_kind"], "output");
    }
}

#[test]
fn subagent_duplicates_cached_and_unchecked() {
    let diff: String = (0..300)
        .map(|i| format!("+ line {i} of the shared diff\n"))
        .collect(); // ~8 KB
    let mut f = Fixture::new(T1);
    let root = f.agent(None, "lead", "s1");
    let mut later = Vec::new();
    for (k, role) in ["security", "style", "tests"].iter().enumerate() {
        let a = f.agent(Some(&root), role, "s1");
        let id = f.llm_with_input(
            &a,
            3000,
            if k == 2 { 500 } else { 0 },
            &format!("You review {role}."),
            &diff,
        );
        f.llm(&a, 10, 1, None); // a second call is not compared
        if k > 0 {
            later.push(id);
        }
    }
    // A parent whose sub-agents share the diff but read it from cache.
    f.turn("dddddddddddddddddddddddddddddddd");
    let root2 = f.agent(None, "lead", "s1");
    for (k, role) in ["a", "b"].iter().enumerate() {
        let a = f.agent(Some(&root2), role, "s1");
        f.llm_with_input(&a, 3000, if k == 1 { 3000 } else { 0 }, role, &diff);
    }
    // A parent whose sub-agents' input was not captured.
    f.turn("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    let root3 = f.agent(None, "lead", "s1");
    for role in ["a", "b"] {
        let a = f.agent(Some(&root3), role, "s1");
        f.llm(&a, 3000, 10, None);
    }
    let r = scan(&f);
    let fs = findings(&r, "subagent-duplicate-context");
    assert_eq!(fs.len(), 1, "{:#}", r["findings"]);
    let shared = (diff.len() as u64).div_ceil(4);
    let got = fs[0]["wasted_tokens"].as_u64().unwrap();
    let want = shared + (shared - 500);
    assert!(got.abs_diff(want) <= 2 * 2 * 64, "{got} vs {want}");
    let counters = detector(&r, "subagent-duplicate-context")["counters"].to_string();
    assert!(
        counters.contains("\"parents shared but cached\",1"),
        "{counters}"
    );
    assert!(
        counters.contains("\"parents not checked (no input content)\",1"),
        "{counters}"
    );
}

#[test]
fn aggregated_usage_on_agent_spans_is_not_counted() {
    let mut f = Fixture::new(T1);
    let a = f.span(
        None,
        "invoke_agent coder",
        vec![
            ("gen_ai.operation.name", json!("invoke_agent")),
            ("gen_ai.usage.input_tokens", json!(1100)),
            ("gen_ai.usage.output_tokens", json!(11)),
        ],
        false,
    );
    f.llm(&a, 1000, 10, None);
    f.llm(&a, 100, 1, None);
    let r = scan(&f);
    assert_eq!(r["totals"]["total_tokens"], 1111);
    assert_eq!(r["totals"]["llm_calls"], 2);
}

// The SDK's chunking, with its own tests (run here, in the host's CI). It
// keeps FNV-1a public for detectors that hash with it; nothing here does.
#[path = "../../plugins/sdk/src/chunk.rs"]
#[allow(dead_code)]
mod chunk;
