//! Contract versions side by side: components built against
//! `tokenhound:detector@0.1.0`, `@0.2.0` and `@0.3.0` (the built-in
//! retry-storm as it was released, committed in tests/fixtures/wit-VERSION
//! with the scripts that built them) load beside the 0.4.0 built-ins and
//! report the same findings.

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
         [[rule]]\nid = \"storm-0-3\"\ndetector = \"{}\"\n",
        fixture("0.1.0"),
        fixture("0.2.0"),
        fixture("0.3.0")
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
    assert_eq!(strip(listed), strip(now));
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
    assert_eq!(wit("storm-now").0, "tokenhound:detector@0.4.0");
}
