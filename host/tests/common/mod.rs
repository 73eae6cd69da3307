//! Helpers for the end-to-end tests: run the binary, write OTLP fixtures.
#![allow(dead_code)]

pub mod phoenix;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tokenhound");

/// The guest components the build made (test plugins included).
pub fn plugin(name: &str) -> PathBuf {
    Path::new(tokenhound::builtin::PLUGIN_DIR).join(format!("{name}.wasm"))
}

/// A compiled-code cache shared by the tests, so each plugin compiles once.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

pub fn tokenhound(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TOKENHOUND_CACHE_DIR", cache_dir())
        .output()
        .expect("run tokenhound")
}

/// `scan --format json <extra> -`, its stdin written by `feed` on a thread of
/// its own (a large input would otherwise fill the pipe while the scan waits
/// for its report to be read), and the report.
pub fn scan_json_stdin(
    extra: &[&str],
    feed: impl FnOnce(&mut std::process::ChildStdin) + Send + 'static,
) -> Value {
    let mut child = Command::new(BIN)
        .args(["scan", "--format", "json"])
        .args(extra)
        .arg("-")
        .env("TOKENHOUND_CACHE_DIR", cache_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run tokenhound");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || feed(&mut stdin));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// Run `scan --format json` and parse the report; also returns the exit code.
pub fn scan_json(args: &[&str]) -> (i32, Value) {
    let mut a = vec!["scan", "--format", "json"];
    a.extend_from_slice(args);
    let out = tokenhound(&a);
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); exit {code}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

pub fn detector<'a>(report: &'a Value, rule: &str) -> &'a Value {
    report["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == rule)
        .unwrap_or_else(|| panic!("no detector {rule}"))
}

pub fn findings<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule && f["detector"] != "engine")
        .collect()
}

pub fn span_ids(f: &Value) -> Vec<String> {
    f["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["span_id"].as_str().unwrap().to_string())
        .collect()
}

/// A builder for OTLP JSON spans in the GenAI conventions.
pub struct Fixture {
    pub spans: Vec<Value>,
    pub trace: String,
    pub clock: u64,
    next: u64,
}

impl Fixture {
    pub fn new(trace: &str) -> Self {
        Fixture {
            spans: Vec::new(),
            trace: trace.into(),
            clock: 1_700_000_000_000_000_000,
            next: 1,
        }
    }

    /// Start a new trace (turn) in the same fixture.
    pub fn turn(&mut self, trace: &str) {
        self.trace = trace.into();
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("{:016x}", self.next)
    }

    pub fn span(
        &mut self,
        parent: Option<&str>,
        name: &str,
        attrs: Vec<(&str, Value)>,
        error: bool,
    ) -> String {
        let id = self.id();
        let start = self.clock;
        self.clock += 1_000_000;
        let attributes: Vec<Value> = attrs
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => json!({"stringValue": s}),
                    Value::Number(n) => json!({"intValue": n.to_string()}),
                    Value::Bool(b) => json!({"boolValue": b}),
                    other => json!({"stringValue": other.to_string()}),
                };
                json!({"key": k, "value": value})
            })
            .collect();
        let mut s = json!({
            "traceId": self.trace, "spanId": id, "name": name,
            "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 500_000).to_string(),
            "attributes": attributes, "status": {"code": if error { 2 } else { 0 }},
        });
        if let Some(p) = parent {
            s["parentSpanId"] = json!(p);
        }
        self.spans.push(s);
        id
    }

    pub fn agent(&mut self, parent: Option<&str>, name: &str, session: &str) -> String {
        self.span(
            parent,
            &format!("invoke_agent {name}"),
            vec![
                ("gen_ai.operation.name", json!("invoke_agent")),
                ("gen_ai.agent.name", json!(name)),
                ("gen_ai.conversation.id", json!(session)),
            ],
            false,
        )
    }

    pub fn llm(
        &mut self,
        parent: &str,
        input: u64,
        output: u64,
        output_text: Option<&str>,
    ) -> String {
        let mut a = vec![
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.request.model", json!("gpt-4o")),
            ("gen_ai.usage.input_tokens", json!(input)),
            ("gen_ai.usage.output_tokens", json!(output)),
        ];
        if let Some(t) = output_text {
            a.push((
                "gen_ai.output.messages",
                json!(
                    json!([{"role": "assistant", "parts": [{"type": "text", "content": t}]}])
                        .to_string()
                ),
            ));
        }
        self.span(Some(parent), "chat gpt-4o", a, false)
    }

    pub fn llm_with_input(
        &mut self,
        parent: &str,
        input: u64,
        cached: u64,
        system: &str,
        user: &str,
    ) -> String {
        let a = vec![
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.request.model", json!("gpt-4o")),
            ("gen_ai.usage.input_tokens", json!(input)),
            ("gen_ai.usage.output_tokens", json!(10)),
            ("gen_ai.usage.cache_read.input_tokens", json!(cached)),
            (
                "gen_ai.system_instructions",
                json!(json!([{"type": "text", "content": system}]).to_string()),
            ),
            (
                "gen_ai.input.messages",
                json!(
                    json!([{"role": "user", "parts": [{"type": "text", "content": user}]}])
                        .to_string()
                ),
            ),
        ];
        self.span(Some(parent), "chat gpt-4o", a, false)
    }

    pub fn tool(&mut self, parent: &str, name: &str, args: Value, result: Option<&str>) -> String {
        let mut a = vec![
            ("gen_ai.operation.name", json!("execute_tool")),
            ("gen_ai.tool.name", json!(name)),
            ("gen_ai.tool.call.arguments", json!(args.to_string())),
        ];
        match result {
            Some(r) => a.push(("gen_ai.tool.call.result", json!(r))),
            None => a.push(("error.type", json!("timeout"))),
        }
        self.span(
            Some(parent),
            &format!("execute_tool {name}"),
            a,
            result.is_none(),
        )
    }

    /// A turn of `session` that reads CLAUDE.md (1,200 bytes) between two LLM
    /// calls: a second one in the session is a re-read.
    pub fn read_turn(&mut self, session: &str) {
        let a = self.agent(None, "coder", session);
        self.llm(&a, 1000, 10, None);
        self.tool(
            &a,
            "read_file",
            json!({"path": "CLAUDE.md"}),
            Some(&"rules\n".repeat(200)),
        );
        self.llm(&a, 1000, 10, None);
    }

    /// One OTLP JSON line holding all spans.
    pub fn line(&self) -> String {
        json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": self.spans}]}]}).to_string()
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.line() + "\n").unwrap();
    }
}

/// A report's findings as (rule, span ids sorted, wasted tokens), sorted: for
/// comparing two runs that must agree.
pub fn finding_keys(r: &Value) -> Vec<(String, Vec<String>, u64)> {
    let mut v: Vec<(String, Vec<String>, u64)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let mut spans = span_ids(f);
            spans.sort();
            (
                f["rule"].as_str().unwrap().to_string(),
                spans,
                f["wasted_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A pack in `dir` with one rule running a built-in detector.
pub fn one_rule_pack(dir: &Path, rule: &str) -> std::path::PathBuf {
    let p = dir.join("pack.toml");
    let text = format!(
        "[pack]\nname = \"one\"\nversion = \"1\"\n[[rule]]\nid = \"{rule}\"\ndetector = \"builtin:{rule}\"\n"
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// The spans of a built-in detector's fixture (`tests/fixtures/builtin/NAME.jsonl`,
/// one OTLP line).
pub fn builtin_fixture_spans(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../tests/fixtures/builtin/{name}.jsonl"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .clone()
}

/// Run tokenhound and require success, showing its stderr otherwise.
pub fn tokenhound_ok(args: &[&str]) -> Output {
    let out = tokenhound(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Upper bound for waiting on the watcher; a safety net so a broken watcher
/// fails the test instead of hanging it, not a speed requirement.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A `tokenhound watch` run by a test, writing findings to `out`.
pub struct Watch {
    pub child: std::process::Child,
    pub out: PathBuf,
}

impl Watch {
    pub fn start(dir: &Path, out: &Path, extra: &[&str]) -> Watch {
        Self::start_logged(dir, out, extra, None)
    }

    /// As [`Watch::start`], with what it prints to stderr kept in `log`.
    pub fn start_logged(dir: &Path, out: &Path, extra: &[&str], log: Option<&Path>) -> Watch {
        let mut args: Vec<String> = vec![
            "watch".into(),
            dir.display().to_string(),
            "--output".into(),
            out.display().to_string(),
            "--quiet-secs".into(),
            "60".into(),
            "--grace-secs".into(),
            "0.3".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(BIN)
            .args(&args)
            .env("TOKENHOUND_CACHE_DIR", cache_dir())
            .stderr(match log {
                Some(l) => std::fs::File::create(l).unwrap().into(),
                None => std::process::Stdio::null(),
            })
            .spawn()
            .unwrap();
        Watch {
            child,
            out: out.to_path_buf(),
        }
    }

    /// The findings written so far, the latest version of each id.
    pub fn findings(&self) -> BTreeMap<String, Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut m = BTreeMap::new();
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                m.insert(v["id"].as_str().unwrap().to_string(), v);
            }
        }
        m
    }

    pub fn raw_lines(&self) -> usize {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .count()
    }

    pub fn wait_for(
        &self,
        what: &str,
        ok: impl Fn(&BTreeMap<String, Value>) -> bool,
    ) -> BTreeMap<String, Value> {
        let start = std::time::Instant::now();
        loop {
            let f = self.findings();
            if ok(&f) {
                return f;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "watch never got to: {what}; findings: {f:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stop(mut self) {
        // SIGTERM: a clean stop.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A failing test must not leave its watcher running.
impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A watch finding as (rule, span ids sorted, wasted tokens), as `finding_keys`.
pub fn key(v: &Value) -> (String, Vec<String>, u64) {
    let mut spans: Vec<String> = v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["span_id"].as_str().unwrap().to_string())
        .collect();
    spans.sort();
    (
        v["rule"].as_str().unwrap().to_string(),
        spans,
        v["wasted_tokens"].as_u64().unwrap(),
    )
}

/// A generated month (one turn per few lines, as an exporter writes) in `dir`.
pub fn generated_month(dir: &Path, seed: u64) -> PathBuf {
    let month = dir.join("month.jsonl");
    tokenhound_testgen::run(&tokenhound_testgen::Args::month(month.clone(), seed)).unwrap();
    month
}

/// A generated month and the findings a scan of it gives: what a watch of the
/// same spans must end with.
pub fn month_and_want(dir: &Path, seed: u64) -> (PathBuf, Vec<(String, Vec<String>, u64)>) {
    let month = generated_month(dir, seed);
    let (_, report) = scan_json(&[month.to_str().unwrap()]);
    (month, finding_keys(&report))
}

/// A finding's evidence value for `key`.
pub fn evidence(f: &Value, key: &str) -> String {
    let e = f["evidence"].as_array().expect("evidence");
    let pair = e.iter().find(|p| p[0] == key);
    let pair = pair.unwrap_or_else(|| panic!("no evidence {key} in {f:#}"));
    pair[1].as_str().unwrap().to_string()
}

/// Wait until a watch has written the generated month's findings (`want`, from
/// a scan; 70 re-reads in a generated month), stop it, and require them equal.
pub fn assert_watch_gives(w: Watch, want: &[(String, Vec<String>, u64)], what: &str) {
    let n = want.len();
    let f = w.wait_for("all findings", |f| {
        f.len() >= n && f.values().filter(|v| v["rule"] == "context-reread").count() == 70
    });
    w.stop();
    let mut got: Vec<_> = f.values().map(key).collect();
    got.sort();
    assert!(got == want, "{what} give other findings than a scan");
}
