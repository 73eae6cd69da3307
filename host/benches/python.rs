//! The same detector in Rust (the `tokenhound new` example) and in Python
//! (examples/python-detector): per-span cost in a scan, and the Python
//! component's load time with a cold and a warm compiled-code cache.
//! `cargo bench --bench python` (needs componentize-py for the Python half).

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_tokenhound");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(path: &Path, traces: usize) -> usize {
    let mut out = String::new();
    let mut n = 0;
    for t in 0..traces {
        let trace = format!("{t:032x}");
        let mut spans = vec![
            json!({"traceId": trace, "spanId": format!("{:016x}", 1), "name": "invoke_agent a", "startTimeUnixNano": "1", "endTimeUnixNano": "100",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]}),
        ];
        for i in 0..20u64 {
            let size = if (t as u64 + i).is_multiple_of(7) {
                9000
            } else {
                600
            };
            spans.push(json!({"traceId": trace, "spanId": format!("{:016x}", i + 2), "parentSpanId": format!("{:016x}", 1), "name": "execute_tool search",
                "startTimeUnixNano": (2 + i).to_string(), "endTimeUnixNano": (3 + i).to_string(),
                "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                               {"key": "gen_ai.tool.name", "value": {"stringValue": "search"}},
                               {"key": "gen_ai.tool.call.result", "value": {"stringValue": "x".repeat(size)}}]}));
        }
        n += spans.len();
        out += &json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string();
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
    n
}

fn pack(dir: &Path, name: &str, wasm: Option<&Path>) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let mut text = format!("[pack]\nname = \"{name}\"\nversion = \"0.1.0\"\n");
    if let Some(w) = wasm {
        text += &format!(
            "\n[[rule]]\nid = \"{name}\"\ndetector = \"{}\"\n",
            w.display()
        );
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn time_scan(pack: &Path, input: &Path, cache: &Path) -> f64 {
    let t = Instant::now();
    let st = Command::new(BIN)
        .args(["scan", "--format", "json", "-o", "/dev/null", "--pack"])
        .arg(pack)
        .arg(input)
        .env("TOKENHOUND_CACHE_DIR", cache)
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed().as_secs_f64()
}

fn main() {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-python");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");

    // Rust: the scaffold's example.
    let proj = work.join("large-tool-results");
    assert!(Command::new(BIN)
        .args(["new", "large-tool-results", "--dir"])
        .arg(&proj)
        .status()
        .unwrap()
        .success());
    assert!(Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&proj)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap()
        .success());
    let rust = target.join("wasm32-wasip2/release/large_tool_results.wasm");

    // Python: the example, if componentize-py is there.
    let py = work.join("large_tool_results_py.wasm");
    let built = Command::new("componentize-py")
        .args([
            "-d",
            root().join("wit/v0.5.0").to_str().unwrap(),
            "-w",
            "plugin",
            "componentize",
            "app",
            "-o",
        ])
        .arg(&py)
        .current_dir(root().join("examples/python-detector"))
        .status()
        .is_ok_and(|s| s.success());

    let input = work.join("tools.jsonl");
    let spans = corpus(&input, 5000);
    let cache = work.join("cache");
    let empty = pack(&work, "empty", None);
    let rust_pack = pack(&work, "rust", Some(&rust));
    let py_pack = pack(&work, "python", Some(&py));
    // Warm everything once, then measure in one run.
    time_scan(&rust_pack, &input, &cache);
    if built {
        time_scan(&py_pack, &input, &cache);
    }
    let base = time_scan(&empty, &input, &cache);
    let r = time_scan(&rust_pack, &input, &cache);
    println!("{spans} spans; scan with no rule {base:.2} s");
    println!(
        "rust:   {r:.2} s, detector ≈ {:.2} µs/span",
        (r - base).max(0.0) * 1e6 / spans as f64
    );
    if built {
        let p = time_scan(&py_pack, &input, &cache);
        println!(
            "python: {p:.2} s, detector ≈ {:.2} µs/span ({:.1}× the Rust cost)",
            (p - base).max(0.0) * 1e6 / spans as f64,
            (p - base).max(1e-9) / (r - base).max(1e-9)
        );
        let cold = work.join("cold-cache");
        for (label, dir) in [("cold", &cold), ("warm", &cold)] {
            let t = Instant::now();
            assert!(Command::new(BIN)
                .args(["detectors", "--format", "json", "--pack"])
                .arg(&py_pack)
                .env("TOKENHOUND_CACHE_DIR", dir)
                .output()
                .unwrap()
                .status
                .success());
            println!(
                "python component load, {label} cache: {:.0} ms",
                t.elapsed().as_secs_f64() * 1000.0
            );
        }
    } else {
        println!("python: not measured (pip install componentize-py==0.25.1)");
    }
}
