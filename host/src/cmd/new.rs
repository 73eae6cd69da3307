//! `tokenhound new`: a ready detector project (the SDK and the WIT vendored in,
//! so it builds outside this repository), in Rust or Python, with an example
//! detector, a fixture, its expectation and a pack.

use crate::engine::WIT_VERSION;
use anyhow::Context as _;
use serde_json::json;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

const SDK_LIB: &str = include_str!("../../../plugins/sdk/src/lib.rs");
const SDK_PARAMS: &str = include_str!("../../../plugins/sdk/src/params.rs");
const SDK_CHUNK: &str = include_str!("../../../plugins/sdk/src/chunk.rs");
const SDK_DATE: &str = include_str!("../../../plugins/sdk/src/date.rs");
const SDK_STATE: &str = include_str!("../../../plugins/sdk/src/state.rs");
const WIT: &str = include_str!("../../../wit/v0.5.0/detector.wit");

const EXAMPLE: &str = r#"//! NAME: tool results so big that every later call pays for them again.
//! A starting point: change the query, keep the shape.

use tokenhound_sdk::*;

struct LargeToolResults {
    max_tokens: u64,
    bytes_per_token: f64,
}

impl Detector for LargeToolResults {
    fn metadata() -> Metadata {
        Metadata::new("NAME", env!("CARGO_PKG_VERSION"), "Tool results larger than a limit")
            .param(Param::integer("max_result_tokens", 2000, "largest acceptable tool result"))
            .param(Param::bytes_per_token())
            .needs(&[Field::Tool, Field::ToolResult])
            // Tool calls only: spans of other kinds (most spans of a service are
            // ordinary HTTP and database spans) need not be sent to it.
            .kinds(&[SpanKind::Tool])
    }

    fn new(p: &Params) -> Result<Self, String> {
        Ok(LargeToolResults { max_tokens: p.u64("max_result_tokens"), bytes_per_token: p.bytes_per_token()? })
    }

    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        let mut out = Vec::new();
        for row in (0..b.len() as u32).filter(|&r| b.is_tool(r)) {
            let Some(size) = b.text_size(row, TextField::ToolResult) else { continue };
            let tokens = content_tokens(size, self.bytes_per_token);
            if tokens <= self.max_tokens {
                continue;
            }
            let tool = b.tool_name(row).unwrap_or("tool");
            out.push(
                Finding::new(
                    format!("{tool} returned {tokens} tokens"),
                    format!("{tool} returned {tokens} tokens; everything above {} is paid again by every later call of the turn.", self.max_tokens),
                    "Return a summary or a page of the result, and let the agent ask for more.",
                )
                .session(b.session(row))
                .trace(b.trace(row))
                .span(b.span_ref(row))
                .charge(b.span_ref(row), tokens - self.max_tokens)
                .evidence("tool", tool)
                .evidence("result_tokens", tokens),
            );
        }
        out
    }

    // `watch` checkpoints every analyzer's state so a restart need not replay
    // the files. This one keeps nothing across batches: its parameters are all.
    // A detector that does keep state derives serde's `Serialize` and
    // `Deserialize` and returns `state::save(self)` / `state::restore(saved)`.
    fn save(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }
    fn restore(p: &Params, _saved: &[u8]) -> Result<Self, String> {
        Self::new(p)
    }
}

detector!(LargeToolResults);
"#;

const PY_APP: &str = include_str!("../../../examples/python-detector/app.py");

/// Write a new detector project for `name` in `dir` (which must be empty).
pub fn new(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<()> {
    check_name(name)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "{} exists and is not empty; choose another --dir",
            dir.display()
        );
    }
    let crate_name = name.replace('-', "_");
    let w = |rel: &str, text: &str| -> anyhow::Result<()> {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap())?;
        std::fs::write(&p, text).with_context(|| p.display().to_string())
    };
    // What both languages share: the WIT, the example's fixture and expectation, a pack.
    let wasm = match lang {
        Lang::Rust => format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
        Lang::Python => format!("{crate_name}.wasm"),
    };
    w("wit/v0.5.0/detector.wit", WIT)?;
    w("tests/large-result.jsonl", &example_fixture())?;
    w(
        "tests/large-result.expect.toml",
        &EXPECT
            .replace("NAME", name)
            .replace("WASM", &format!("../{wasm}")),
    )?;
    w(
        "pack.toml",
        &format!(
            r#"[pack]
name = "{name}"
version = "0.1.0"

[[rule]]
id = "{name}"
detector = "{wasm}"
severity = "medium"
[rule.params]
max_result_tokens = 2000
"#
        ),
    )?;
    match lang {
        Lang::Python => new_python(name, &wasm, &w),
        Lang::Rust => new_rust(name, &wasm, &w),
    }
}

/// The Rust project: a cdylib on the vendored SDK.
fn new_rust(
    name: &str,
    wasm: &str,
    w: &dyn Fn(&str, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    w(
        "Cargo.toml",
        &format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
tokenhound-sdk = {{ path = "vendor/tokenhound-sdk" }}
# a detector's state, saved for watch's checkpoint (Detector::save / restore)
serde = {{ version = "1", features = ["derive"] }}

# compiled for speed, as the built-in detectors are: a detector runs over
# every span of every scan, and its size is paid once (the compiled code is cached)
[profile.release]
opt-level = 3
lto = true
strip = true
panic = "abort"

# A project of its own, even inside another workspace.
[workspace]
"#
        ),
    )?;
    w(
        "vendor/tokenhound-sdk/Cargo.toml",
        r#"[package]
name = "tokenhound-sdk"
version = "0.1.0"
edition = "2021"
description = "Write tokenhound detectors as short queries over span batches (vendored by `tokenhound new`)"

[dependencies]
wit-bindgen = { version = "0.46", default-features = false, features = ["macros", "realloc", "std"] }
serde_json = "1"
serde = { version = "1", features = ["derive"] }
postcard = { version = "1", default-features = false, features = ["alloc"] }
"#,
    )?;
    w("vendor/tokenhound-sdk/src/lib.rs", SDK_LIB)?;
    w("vendor/tokenhound-sdk/src/params.rs", SDK_PARAMS)?;
    w("vendor/tokenhound-sdk/src/chunk.rs", SDK_CHUNK)?;
    w("vendor/tokenhound-sdk/src/date.rs", SDK_DATE)?;
    w("vendor/tokenhound-sdk/src/state.rs", SDK_STATE)?;
    // The SDK reads the WIT from ../../wit/v0.5.0 (written above), relative to its own folder.
    w("src/lib.rs", &EXAMPLE.replace("NAME", name))?;
    w(
        "README.md",
        &format!(
            r#"# {name}

A tokenhound detector, as a WebAssembly component.

```sh
rustup target add wasm32-wasip2                 # once
cargo build --release --target wasm32-wasip2    # → {wasm}
tokenhound test tests                           # the fixtures state what it must find
tokenhound scan EXPORTS --pack pack.toml        # run it (add the default pack to keep the built-ins)
```

- `src/lib.rs`: the detector. `metadata()` names it and its parameters; `observe()`
  gets batches of whole traces (sessions in order) and returns findings.
- `tests/*.jsonl` + `*.expect.toml`: fixtures and the findings they must give.
- `vendor/tokenhound-sdk` and `wit/v0.5.0/detector.wit`: the SDK and the contract
  ({WIT_VERSION}), vendored so the project builds anywhere.
"#
        ),
    )?;
    w(".gitignore", "target/\n")?;
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || !name.chars().all(ok) {
        anyhow::bail!(
            "a detector name is lowercase letters, digits and dashes, like `context-bloat`"
        );
    }
    Ok(())
}

/// The example's fixture: one tool result over the limit (10,000 bytes: 500
/// tokens over 2,000), one under.
fn example_fixture() -> String {
    let span = |id: u64, parent: Option<u64>, name: &str, result: Option<usize>| {
        let mut attrs = vec![
            json!({"key": "gen_ai.operation.name", "value": {"stringValue": if parent.is_none() { "invoke_agent" } else { "execute_tool" }}}),
        ];
        if let Some(n) = result {
            attrs.push(json!({"key": "gen_ai.tool.name", "value": {"stringValue": "search"}}));
            attrs.push(
                json!({"key": "gen_ai.tool.call.result", "value": {"stringValue": "x".repeat(n)}}),
            );
        }
        let mut s = json!({"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": format!("{id:016x}"), "name": name,
            "startTimeUnixNano": (1_700_000_000_000_000_000u64 + id * 1_000_000).to_string(),
            "endTimeUnixNano": (1_700_000_000_000_000_000u64 + id * 1_000_000 + 500_000).to_string(),
            "attributes": attrs});
        if let Some(p) = parent {
            s["parentSpanId"] = json!(format!("{p:016x}"));
        }
        s
    };
    let spans = vec![
        span(1, None, "invoke_agent researcher", None),
        span(2, Some(1), "execute_tool search", Some(10_000)), // 2,500 tokens: 500 over
        span(3, Some(1), "execute_tool search", Some(4_000)),  // 1,000 tokens: fine
    ];
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string() + "\n"
}

const EXPECT: &str = r#"# The fixture next to this file, and what NAME must find in it.
detector = "WASM"

[params]
max_result_tokens = 2000

[[finding]]
spans = ["0000000000000002"]
wasted_tokens = 500

[[clean]]
spans = ["0000000000000003"]
"#;

fn new_python(
    name: &str,
    wasm: &str,
    w: &dyn Fn(&str, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let app = PY_APP
        .replace("large-tool-results-py", name)
        .replace("large_tool_results_py.wasm", wasm);
    w("app.py", &app)?;
    w(
        "README.md",
        &format!(
            r#"# {name}

A tokenhound detector in Python, built into a WebAssembly component with
componentize-py against the WIT in `wit/v0.5.0/` ({WIT_VERSION}).

```sh
pip install componentize-py==0.25.1                                   # once
componentize-py -d wit/v0.5.0 -w plugin componentize app -o {wasm}          # build
tokenhound test tests                                                 # the fixtures state what it must find
tokenhound scan EXPORTS --pack pack.toml                              # run it
```

`app.py` implements the WIT's `detector` interface: `Detector.describe()` names the
detector and its parameters, `Detector.create(params)` checks them (raise
`Err("…")` for a bad value), `Detector.span_kinds()` says which kinds of span it
reads (spans of the others need not be sent), and `Analyzer.observe(batch, texts)` gets batches of
whole traces as columns and returns findings; `Analyzer.save()` and
`Detector.restore(params, state)` let `watch` restart from a checkpoint (return
`None` from `save` to have it replay the files instead). The component is about 18 MB (it
carries the interpreter); tokenhound compiles it once and caches the result.
"#
        ),
    )?;
    w(".gitignore", "*.wasm\n")?;
    Ok(())
}

#[derive(clap::Args)]
pub struct Args {
    name: String,
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to create it (default: ./NAME).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

pub fn command(a: Args) -> Result<u8, super::Failure> {
    let dir = a.dir.unwrap_or_else(|| std::path::PathBuf::from(&a.name));
    new(&a.name, a.lang, &dir).map_err(|e| super::Failure::usage(format!("{e:#}")))?;
    println!(
        "created {} ({:?}); see {}/README.md",
        dir.display(),
        a.lang,
        dir.display()
    );
    Ok(0)
}
