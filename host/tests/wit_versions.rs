//! Contract versions side by side: components built against
//! `tokenhound:detector@0.1.0` to `@0.4.0` (the built-in retry-storm as it
//! was released, committed in tests/fixtures/wit-VERSION with the scripts
//! that built them) load beside the 0.5.0 built-ins and report the same
//! findings.

mod common;
use common::*;
use std::path::Path;

fn fixture(version: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!(
            "../tests/fixtures/wit-{version}/retry-storm-{version}.wasm"
        ))
        .display()
        .to_string()
}

fn pack(dir: &Path) -> String {
    let p = dir.join("pack.toml");
    let text = format!(
        "[pack]\nname = \"versions\"\nversion = \"1\"\n\
         [[rule]]\nid = \"storm-now\"\ndetector = \"builtin:retry-storm\"\n\
         [[rule]]\nid = \"storm-0-1\"\ndetector = \"{}\"\n\
         [[rule]]\nid = \"storm-0-2\"\ndetector = \"{}\"\n\
         [[rule]]\nid = \"storm-0-3\"\ndetector = \"{}\"\n\
         [[rule]]\nid = \"storm-0-4\"\ndetector = \"{}\"\n",
        fixture("0.1.0"),
        fixture("0.2.0"),
        fixture("0.3.0"),
        fixture("0.4.0")
    );
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn components_of_every_contract_version_run_side_by_side_with_equal_findings() {
    let dir = tempfile::tempdir().unwrap();
    let pack = pack(dir.path());
    let month = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/month.jsonl.gz");
    let (code, r) = scan_json(&["--pack", &pack, month.to_str().unwrap()]);
    assert_eq!(code, 0);
    let now = findings(&r, "storm-now");
    let old = findings(&r, "storm-0-1");
    let before = findings(&r, "storm-0-2");
    let listed = findings(&r, "storm-0-3");
    let blob = findings(&r, "storm-0-4");
    assert!(now.len() > 10, "{}", now.len());
    let strip = |fs: Vec<&serde_json::Value>| {
        let mut v: Vec<_> = fs
            .into_iter()
            .map(|f| (f["title"].clone(), span_ids(f), f["wasted_tokens"].clone()))
            .collect();
        v.sort_by_key(|x| format!("{x:?}"));
        v
    };
    assert_eq!(strip(old), strip(now.clone()));
    assert_eq!(strip(before), strip(now.clone()));
    assert_eq!(strip(listed), strip(now.clone()));
    assert_eq!(strip(blob), strip(now));
    assert_eq!(
        detector(&r, "storm-0-1")["wasted_tokens"],
        detector(&r, "storm-now")["wasted_tokens"]
    );

    let out = tokenhound(&["detectors", "--pack", &pack, "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let wit = |rule: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["rule"] == rule)
            .map(|d| (d["wit"].clone(), d["version"].clone()))
            .unwrap()
    };
    assert_eq!(wit("storm-0-1").0, "tokenhound:detector@0.1.0");
    assert_eq!(wit("storm-0-1").1, "0.1.0");
    assert_eq!(wit("storm-0-2").0, "tokenhound:detector@0.2.0");
    assert_eq!(wit("storm-0-2").1, "0.2.1");
    assert_eq!(wit("storm-0-3").0, "tokenhound:detector@0.3.0");
    assert_eq!(wit("storm-0-3").1, "0.3.0");
    assert_eq!(wit("storm-0-4").0, "tokenhound:detector@0.4.0");
    assert_eq!(wit("storm-0-4").1, "0.4.0");
    assert_eq!(wit("storm-now").0, "tokenhound:detector@0.5.0");
}

/// A 0.5.0 built-in says it reads calls and agents (`span-kinds`), so when
/// no rule reads ordinary spans they stay out of the batches; a 0.4.0
/// component cannot say, so beside it every span goes to every rule. Either
/// way the built-ins find the same, on a month whose turns hold ordinary
/// HTTP and database spans.
#[test]
fn the_builtins_find_the_same_whether_ordinary_spans_reach_them_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let month = dir.path().join("month.jsonl.gz");
    tokenhound_testgen::run(&tokenhound_testgen::Args {
        noise: 3,
        ..tokenhound_testgen::Args::month(month.clone(), 11)
    })
    .unwrap();
    let every_span = dir.path().join("every-span.toml");
    std::fs::write(
        &every_span,
        format!(
            "[pack]\nname = \"every-span\"\nversion = \"1\"\n\
             [[rule]]\nid = \"storm-0-4\"\ndetector = \"{}\"\n",
            fixture("0.4.0")
        ),
    )
    .unwrap();
    let month = month.to_str().unwrap();
    let (_, alone) = scan_json(&[month]);
    let (_, beside) = scan_json(&[
        "-p",
        "builtin:default",
        "-p",
        every_span.to_str().unwrap(),
        month,
    ]);
    for rule in [
        "retry-storm",
        "context-reread",
        "subagent-duplicate-context",
        "filler-preamble",
    ] {
        let keys = |r: &serde_json::Value| {
            // Whole findings: spans, waste, evidence and text.
            let mut v: Vec<_> = findings(r, rule).iter().map(|f| f.to_string()).collect();
            v.sort();
            v
        };
        assert!(!keys(&alone).is_empty(), "{rule} finds something");
        assert_eq!(keys(&alone), keys(&beside), "{rule}");
        assert_eq!(
            detector(&alone, rule)["wasted_tokens"],
            detector(&beside, rule)["wasted_tokens"]
        );
    }
}
