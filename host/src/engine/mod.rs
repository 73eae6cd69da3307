//! The WebAssembly engine: one wasmtime `Engine` with an epoch ticker, each
//! plugin compiled once (and cached on disk), each analyzer in its own `Store`
//! with a memory cap, a time limit per call, optional fuel and a stack limit.
//! Detectors get no files, network, environment or real clock.

mod batch;
mod cache;
mod stderr;
mod v0_1_0;
mod v0_2_0;
mod v0_3_0;
mod v0_4_0;
mod v0_5_0;

pub use batch::{BatchData, Columns, ColumnsView, ColumnsViewV3};

use anyhow::{anyhow, Context as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceAny, ResourceTable};
use wasmtime::{Config, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

// The engine's own types are 0.3.0's; 0.5.0 (the newest), 0.4.0 and 0.2.0
// share them (each binds them `with`), 0.1.0 is adapted to them (see
// `v0_1_0`). Only the batch record differs between 0.4.0 (and 0.5.0) and the
// others (`batch`).
pub use v0_3_0::exports::tokenhound::detector::detector::Metadata;
pub use v0_3_0::tokenhound::detector::types::{
    Charge, Counter, Field, Finding, Param, ParamType, Severity, SpanColumns, SpanKind, SpanRef,
    TextField, TokenKind,
};

impl TokenKind {
    /// Output tokens are priced apart from input tokens.
    pub fn is_output(self) -> bool {
        matches!(self, TokenKind::Output)
    }
}

/// The version of the WIT package this host speaks natively (and the SDK targets).
pub const WIT_VERSION: &str = v0_5_0::PACKAGE;

/// Every version a component may export, newest first.
pub const WIT_VERSIONS: [&str; 5] = [
    v0_5_0::PACKAGE,
    v0_4_0::PACKAGE,
    v0_3_0::PACKAGE,
    v0_2_0::PACKAGE,
    v0_1_0::PACKAGE,
];

/// A component ready to instantiate, by the contract version it exports.
enum Pre {
    V1(v0_1_0::PluginPre<State>),
    V2(v0_2_0::PluginPre<State>),
    V3(v0_3_0::PluginPre<State>),
    V4(v0_4_0::PluginPre<State>),
    V5(v0_5_0::PluginPre<State>),
}

/// A running component, by the contract version it exports.
enum Instance {
    V1(v0_1_0::Plugin),
    V2(v0_2_0::Plugin),
    V3(v0_3_0::Plugin),
    V4(v0_4_0::Plugin),
    V5(v0_5_0::Plugin),
}

// `texts` for 0.2.0 to 0.5.0 (same types): the store's current batch.
fn texts_get(s: &mut State, row: u32, field: TextField) -> Option<String> {
    s.texts
        .as_ref()
        .and_then(|t| t.text(row, field))
        .map(String::from)
}

fn texts_size(s: &mut State, row: u32, field: TextField) -> Option<u64> {
    s.texts.as_ref().and_then(|t| t.size(row, field))
}

fn texts_parts(s: &mut State, row: u32) -> Vec<v0_3_0::tokenhound::detector::types::InputPart> {
    let Some(parts) = s.texts.as_ref().and_then(|t| t.parts(row)) else {
        return Vec::new();
    };
    parts.iter().map(input_part).collect()
}

fn input_part(p: &crate::model::InputPart) -> v0_3_0::tokenhound::detector::types::InputPart {
    use crate::model::PartKind as K;
    use v0_3_0::tokenhound::detector::types::PartKind;
    v0_3_0::tokenhound::detector::types::InputPart {
        kind: match p.kind {
            K::System => PartKind::System,
            K::Message => PartKind::Message,
            K::ToolCall => PartKind::ToolCall,
            K::ToolResult => PartKind::ToolResult,
            K::Other => PartKind::Other,
        },
        role: p.role.to_string(),
        tool: p.tool.as_deref().map(String::from),
        file: p.file.as_deref().map(String::from),
        bytes: p.bytes,
    }
}

/// Marker for the `texts` resource: the data lives in the store's current batch.
pub struct TextsHandle;

/// Limits for one analyzer; a rule pack may change each of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub fuel: Option<u64>,
    pub output: OutputLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(10),
            fuel: None,
            output: OutputLimits::default(),
        }
    }
}

/// What one call of a detector may return; a pack can raise each (`[limits]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputLimits {
    pub findings: usize,
    pub spans: usize,
    pub text_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            findings: 100_000,
            spans: 100_000,
            text_bytes: 64 << 10,
        }
    }
}

impl OutputLimits {
    /// Why a call's findings break these limits, if they do.
    pub fn check(&self, fs: &[Finding]) -> Result<(), String> {
        if fs.len() > self.findings {
            return Err(format!(
                "returned {} findings from one call, over the limit of {} ([limits] max_findings)",
                fs.len(),
                self.findings
            ));
        }
        for f in fs {
            let refs = f.spans.len() + f.waste.len();
            if refs > self.spans {
                return Err(format!(
                    "a finding names {refs} spans and charges, over the limit of {} ([limits] max_span_refs)",
                    self.spans
                ));
            }
            if !(f.waste_seconds.is_finite() && f.waste_seconds >= 0.0) {
                return Err(format!(
                    "a finding wastes {} seconds (must be a finite number of 0 or more)",
                    f.waste_seconds
                ));
            }
            let texts = [&f.title, &f.message, &f.fix]
                .into_iter()
                .chain(f.evidence.iter().flat_map(|(k, v)| [k, v]))
                .chain(f.group.iter())
                .chain(f.pattern.iter());
            let big = texts.map(String::len).max().unwrap_or(0);
            if big > self.text_bytes {
                return Err(format!(
                    "a finding holds a text of {big} bytes, over the limit of {} ([limits] max_text_kb)",
                    self.text_bytes
                ));
            }
        }
        Ok(())
    }
}

const TICK: Duration = Duration::from_millis(10);

/// The one engine of a run.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<State>,
    cache_dir: Option<PathBuf>,
    fuel: bool,
    stop: Arc<AtomicBool>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Per-store state: an empty WASI context and the batch being analysed.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limiter,
    texts: Option<Arc<BatchData>>,
    stderr: stderr::Tail,
    memory_cap: usize,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The store's limits, remembering when a memory or table growth was refused:
/// that is how a failure is known to be the memory cap (not by its message).
struct Limiter {
    inner: StoreLimits,
    hit_cap: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.inner.memory_growing(current, desired, maximum);
        self.hit_cap |= !matches!(r, Ok(true));
        r
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Why an analyzer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `create` refused the rule's parameters: a pack error.
    #[error("bad parameters: {0}")]
    BadParams(String),
    /// It could not be instantiated or trapped while starting.
    #[error("{0}")]
    Failed(String),
}

/// Why a detector was stopped in a call, in plain words.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("stopped at its time limit (endless loop or too slow)")]
    TimeLimit,
    #[error("stopped: ran out of fuel")]
    Fuel,
    #[error("stopped at its memory cap of {mib} MiB (allocated without end)")]
    MemoryCap { mib: usize },
    #[error("trapped: out of bounds memory access (in Rust and C guests this is also how a stack overflow shows){printed}")]
    OutOfBounds { printed: String },
    #[error("trapped: {trap}{printed}")]
    Trap { trap: String, printed: String },
    #[error("failed: {why}{printed}")]
    Failed { why: String, printed: String },
}

/// A fixed clock: detectors must not be able to differ between runs.
struct FrozenClock;
impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}
impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A wait that is over as soon as it starts.
struct Ready;

impl wasmtime_wasi::p2::Pollable for Ready {
    fn ready<'a, 'b>(&'a mut self) -> wasmtime_wasi::p2::DynFuture<'b>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

/// Under a frozen clock, a detector's sleep (`subscribe-duration`,
/// `subscribe-instant`) would otherwise wait in the host, outside the epoch
/// deadline: a `sleep(30 s)` took 30 s and `sleep(MAX)` never returned. Here
/// every wait is over at once, so a detector that sleeps in a loop spins and
/// meets its time limit like any other endless loop.
fn frozen_waits(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    fn ready(
        table: &mut ResourceTable,
    ) -> wasmtime::Result<Resource<wasmtime_wasi::p2::DynPollable>> {
        let r = table.push(Ready)?;
        wasmtime_wasi::p2::subscribe(table, r)
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    for name in ["subscribe-duration", "subscribe-instant"] {
        clock.func_wrap(
            name,
            |mut store: wasmtime::StoreContextMut<'_, State>, (_,): (u64,)| {
                Ok((ready(&mut store.data_mut().table)?,))
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

impl Engine {
    /// `fuel`: whether any rule asks for a fuel budget (it costs speed for all).
    pub fn new(
        cache_dir: Option<PathBuf>,
        fuel: bool,
        max_stack: Option<usize>,
    ) -> anyhow::Result<Self> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(fuel);
        if let Some(s) = max_stack {
            cfg.max_wasm_stack(s);
        }
        if std::env::var_os("TOKENHOUND_PERFMAP").is_some() {
            // For detector authors: `perf` names the detectors' functions
            // (from /tmp/perf-<pid>.map) instead of showing bare addresses.
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&cfg).map_err(|e| anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        frozen_waits(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        v0_5_0::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:#}"))?;
        v0_4_0::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:#}"))?;
        v0_3_0::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:#}"))?;
        v0_2_0::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:#}"))?;
        v0_1_0::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:#}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e2, s2) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    e2.increment_epoch();
                }
            })
            .context("starting the epoch ticker")?;
        Ok(Engine {
            engine,
            linker,
            cache_dir,
            fuel,
            stop,
        })
    }

    /// Compile (or load from the cache) a component and read its metadata.
    pub fn load(&self, wasm: &[u8], source: &str) -> anyhow::Result<LoadedPlugin> {
        check_header(wasm).map_err(|why| anyhow!("{source}: {why}"))?;
        let hash = cache::sha256_hex(wasm);
        let component = cache::compile(&self.engine, wasm, &hash, self.cache_dir.as_deref())
            // wasmtime's parse errors can quote the file's bytes: one short line only.
            .map_err(|e| {
                anyhow!(
                    "{source}: not a WebAssembly component tokenhound can compile: {}",
                    first_line(&format!("{e}"), 200)
                )
            })?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            anyhow!(
                "{source}: does not match {}: {e:#}",
                WIT_VERSIONS.join(" or ")
            )
        })?;
        let pre = match v0_5_0::PluginPre::new(pre.clone()) {
            Ok(p) => Pre::V5(p),
            Err(newest) => match older(pre) {
                Some(p) => p,
                None => {
                    return Err(anyhow!(
                        "{source}: exports none of {}: {newest:#}",
                        WIT_VERSIONS.join(", ")
                    ))
                }
            },
        };
        let (mut store, instance) = self
            .instantiate(&pre, &Limits::default())
            .with_context(|| format!("{source}: could not start"))?;
        let meta = match &instance {
            Instance::V5(i) => i.tokenhound_detector_detector().call_describe(&mut store),
            Instance::V4(i) => i.tokenhound_detector_detector().call_describe(&mut store),
            Instance::V3(i) => i.tokenhound_detector_detector().call_describe(&mut store),
            Instance::V2(i) => i.tokenhound_detector_detector().call_describe(&mut store),
            Instance::V1(i) => i
                .tokenhound_detector_detector()
                .call_describe(&mut store)
                .map(v0_1_0::metadata),
        }
        .map_err(|e| anyhow!("{source}: describe() failed: {}", explain(&e, &store)))?;
        check_metadata(&meta).map_err(|why| anyhow!("{source}: describe() returned {why}"))?;
        check_not_posing(&meta, &hash, source)?;
        let kinds = match &instance {
            Instance::V5(i) => i
                .tokenhound_detector_detector()
                .call_span_kinds(&mut store)
                .map_err(|e| anyhow!("{source}: span-kinds() failed: {}", explain(&e, &store)))?,
            // Before 0.5.0 a detector could not say: it gets every span.
            _ => ALL_KINDS.to_vec(),
        };
        Ok(LoadedPlugin {
            kinds,
            wit: match pre {
                Pre::V5(_) => v0_5_0::PACKAGE,
                Pre::V1(_) => v0_1_0::PACKAGE,
                Pre::V2(_) => v0_2_0::PACKAGE,
                Pre::V3(_) => v0_3_0::PACKAGE,
                Pre::V4(_) => v0_4_0::PACKAGE,
            },
            pre,
            meta,
            hash,
            source: source.to_string(),
            component,
        })
    }

    fn instantiate(&self, pre: &Pre, limits: &Limits) -> anyhow::Result<(Store<State>, Instance)> {
        let stderr = stderr::Tail::new(16 << 10);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(wasmtime_wasi::Deterministic::new(vec![7, 31, 127, 3]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![11, 13, 17, 19]))
            .insecure_random_seed(0x746f6b656e686f756e64)
            .build();
        let limits_ = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            // Components made by componentize-py hold dozens of core instances.
            .instances(1_000)
            .tables(1_000)
            .memories(100)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            State {
                wasi,
                table: ResourceTable::new(),
                limits: Limiter {
                    inner: limits_,
                    hit_cap: false,
                },
                texts: None,
                stderr,
                memory_cap: limits.memory_bytes,
            },
        );
        store.limiter(|s| &mut s.limits);
        let ticks = (limits.timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        if self.fuel {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .map_err(|e| anyhow!("{e:#}"))?;
        }
        let plugin = match pre {
            Pre::V1(p) => p.instantiate(&mut store).map(Instance::V1),
            Pre::V2(p) => p.instantiate(&mut store).map(Instance::V2),
            Pre::V3(p) => p.instantiate(&mut store).map(Instance::V3),
            Pre::V4(p) => p.instantiate(&mut store).map(Instance::V4),
            Pre::V5(p) => p.instantiate(&mut store).map(Instance::V5),
        }
        .map_err(|e| anyhow!("{}", explain(&e, &store)))?;
        Ok((store, plugin))
    }

    /// Start an analyzer of `plugin` with the rule's parameters (JSON object text).
    pub fn analyzer(
        &self,
        plugin: &LoadedPlugin,
        params: &str,
        limits: &Limits,
    ) -> Result<Analyzer, StartError> {
        self.start(plugin, params, None, limits)
    }

    /// An analyzer as it was when [`Analyzer::save`] returned `state` (same
    /// component, same parameters). Components older than 0.3.0 cannot.
    pub fn restore(
        &self,
        plugin: &LoadedPlugin,
        params: &str,
        state: &[u8],
        limits: &Limits,
    ) -> Result<Analyzer, StartError> {
        self.start(plugin, params, Some(state), limits)
    }

    fn start(
        &self,
        plugin: &LoadedPlugin,
        params: &str,
        state: Option<&[u8]>,
        limits: &Limits,
    ) -> Result<Analyzer, StartError> {
        let (mut store, instance) = self
            .instantiate(&plugin.pre, limits)
            .map_err(|e| StartError::Failed(format!("{e:#}")))?;
        let created = match (&instance, state) {
            (Instance::V5(i), Some(state)) => i
                .tokenhound_detector_detector()
                .call_restore(&mut store, params, state),
            (Instance::V5(i), None) => i
                .tokenhound_detector_detector()
                .call_create(&mut store, params),
            (Instance::V4(i), Some(state)) => i
                .tokenhound_detector_detector()
                .call_restore(&mut store, params, state),
            (Instance::V4(i), None) => i
                .tokenhound_detector_detector()
                .call_create(&mut store, params),
            (Instance::V3(i), Some(state)) => i
                .tokenhound_detector_detector()
                .call_restore(&mut store, params, state),
            (Instance::V3(i), None) => i
                .tokenhound_detector_detector()
                .call_create(&mut store, params),
            (_, Some(_)) => {
                return Err(StartError::Failed(format!(
                    "{} cannot restore a saved state (it exports {}; saving came in {})",
                    plugin.meta.name,
                    plugin.wit,
                    v0_3_0::PACKAGE
                )))
            }
            (Instance::V2(i), None) => i
                .tokenhound_detector_detector()
                .call_create(&mut store, params),
            (Instance::V1(i), None) => i
                .tokenhound_detector_detector()
                .call_create(&mut store, params),
        };
        match created {
            Ok(Ok(res)) => Ok(Analyzer {
                store,
                instance,
                res,
                limits: limits.clone(),
                fuel: self.fuel,
                last_texts: 0,
            }),
            Ok(Err(msg)) => Err(StartError::BadParams(msg)),
            Err(e) => Err(StartError::Failed(explain(&e, &store).to_string())),
        }
    }
}

/// The largest component file read (a Python component is about 18 MB).
pub const MAX_COMPONENT: u64 = 256 << 20;

/// Read a component file, refusing what is not a file or is too large to be one,
/// before reading it whole.
pub fn read_component(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if m.len() > MAX_COMPONENT {
        return Err(format!(
            "{}: {} MiB, larger than any detector component tokenhound loads ({} MiB)",
            path.display(),
            m.len() >> 20,
            MAX_COMPONENT >> 20
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A component starts with `\0asm` and the component-model layer; say what it
/// is otherwise, without quoting any of its bytes.
fn check_header(wasm: &[u8]) -> Result<(), String> {
    if !wasm.starts_with(b"\0asm") {
        return Err("not a WebAssembly file (it does not start with the `\\0asm` header)".into());
    }
    match wasm.get(4..8) {
        Some([_, _, 1, 0]) => Ok(()),
        Some([1, 0, 0, 0]) => Err("a core WebAssembly module, not a component: build for wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`".into()),
        _ => Err("a WebAssembly file of an unknown layer or version".into()),
    }
}

fn first_line(s: &str, max: usize) -> String {
    let l = s.lines().next().unwrap_or("");
    match l.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &l[..i]),
        None => l.to_string(),
    }
}

/// Metadata a person reads and a pack refers to: bounded, printable, unique.
/// A plugin may not pass for a built-in: one that gives a built-in's name and
/// current version must be that built-in (a copy of its component, to pin it),
/// else reports would show another detector's findings under a name and
/// version users trust. An earlier release of a built-in (another version)
/// loads, and reports show its version and file.
fn check_not_posing(m: &Metadata, hash: &str, source: &str) -> anyhow::Result<()> {
    if source.starts_with("builtin:") || m.version != crate::builtin::VERSION {
        return Ok(());
    }
    match crate::builtin::wasm(&m.name) {
        Some(w) if cache::sha256_hex(w) != hash => Err(anyhow!(
            "{source}: calls itself `{} {}`, a built-in detector, but is not that built-in; give it a name of its own (built-in names: {})",
            m.name,
            m.version,
            crate::builtin::NAMES.join(", ")
        )),
        _ => Ok(()),
    }
}

fn check_metadata(m: &Metadata) -> Result<(), String> {
    let word = |what: &str, s: &str, max: usize| -> Result<(), String> {
        if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
            return Err(format!(
                "an invalid {what} (1 to {max} bytes of printable text, got {} bytes)",
                s.len()
            ));
        }
        Ok(())
    };
    word("name", &m.name, 64)?;
    word("version", &m.version, 64)?;
    if m.description.len() > 4096 {
        return Err("a description over 4 KiB".into());
    }
    if m.params.len() > 256 {
        return Err(format!("{} parameters (at most 256)", m.params.len()));
    }
    let mut names = std::collections::HashSet::new();
    for p in &m.params {
        word("parameter name", &p.name, 64)?;
        if !names.insert(&p.name) {
            return Err(format!("parameter `{}` twice", p.name));
        }
        if p.description.len() > 4096 {
            return Err(format!(
                "parameter `{}` with a description over 4 KiB",
                p.name
            ));
        }
        let v: serde_json::Value = serde_json::from_str(&p.default_json)
            .map_err(|_| format!("parameter `{}` whose default is not JSON", p.name))?;
        let fits = match p.kind {
            ParamType::Integer => v.as_u64().is_some(),
            ParamType::Number => v.is_number(),
            ParamType::Boolean => v.is_boolean(),
            ParamType::Text => v.is_string(),
            ParamType::TextList => v
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.is_string())),
        };
        if !fits {
            return Err(format!(
                "parameter `{}` whose default {} is not of its type",
                p.name,
                first_line(&p.default_json, 40)
            ));
        }
    }
    Ok(())
}

/// A compiled plugin with its metadata.
pub struct LoadedPlugin {
    pre: Pre,
    /// the contract version the component exports
    pub wit: &'static str,
    pub meta: Metadata,
    /// the kinds of span it reads (every kind before 0.5.0)
    pub kinds: Vec<SpanKind>,
    /// sha-256 of the component's bytes
    pub hash: String,
    /// `builtin:NAME` or the file's path
    pub source: String,
    #[allow(dead_code)]
    component: Component,
}

impl LoadedPlugin {
    pub fn needs(&self, f: Field) -> bool {
        self.meta.needs.contains(&f)
    }
    /// Whether the detector reads spans of kind `k` (`span-kinds`, 0.5.0).
    pub fn reads(&self, k: SpanKind) -> bool {
        self.kinds.contains(&k)
    }
}

/// Every kind of span, as `span-kinds` lists them.
pub const ALL_KINDS: [SpanKind; 4] = [
    SpanKind::Llm,
    SpanKind::Tool,
    SpanKind::Agent,
    SpanKind::Other,
];

/// A component of a contract older than the newest, newest first.
fn older(pre: wasmtime::component::InstancePre<State>) -> Option<Pre> {
    if let Ok(p) = v0_4_0::PluginPre::new(pre.clone()) {
        return Some(Pre::V4(p));
    }
    if let Ok(p) = v0_3_0::PluginPre::new(pre.clone()) {
        return Some(Pre::V3(p));
    }
    if let Ok(p) = v0_2_0::PluginPre::new(pre.clone()) {
        return Some(Pre::V2(p));
    }
    v0_1_0::PluginPre::new(pre).ok().map(Pre::V1)
}

/// One running analyzer: its own store, so its failure is its own.
pub struct Analyzer {
    store: Store<State>,
    instance: Instance,
    res: ResourceAny,
    limits: Limits,
    fuel: bool,
    /// the table slot of the last call's `texts` handle (a test checks it is
    /// reused, so the table does not grow call after call)
    last_texts: u32,
}

/// The `analyzer.observe` function of an instance of any version from 0.2.0
/// on (each version's bindings are types of their own).
macro_rules! observe_func {
    ($instance:expr) => {
        *$instance
            .tokenhound_detector_detector()
            .analyzer()
            .func_observe()
            .func()
    };
}

/// The host's `texts` resource in one version's bindings (0.2.0 to 0.5.0:
/// the same functions over the same types, but a trait per version).
macro_rules! host_texts {
    ($($host:ident)::+) => {
        impl $($host)::+::HostTexts for crate::engine::State {
            fn get(
                &mut self,
                _: wasmtime::component::Resource<crate::engine::TextsHandle>,
                row: u32,
                field: crate::engine::TextField,
            ) -> Option<String> {
                crate::engine::texts_get(self, row, field)
            }
            fn size(
                &mut self,
                _: wasmtime::component::Resource<crate::engine::TextsHandle>,
                row: u32,
                field: crate::engine::TextField,
            ) -> Option<u64> {
                crate::engine::texts_size(self, row, field)
            }
            fn parts(
                &mut self,
                _: wasmtime::component::Resource<crate::engine::TextsHandle>,
                row: u32,
            ) -> Vec<crate::engine::v0_3_0::tokenhound::detector::types::InputPart> {
                crate::engine::texts_parts(self, row)
            }
            fn drop(
                &mut self,
                r: wasmtime::component::Resource<crate::engine::TextsHandle>,
            ) -> wasmtime::Result<()> {
                // The host may have removed it already, after the call it was made for.
                let _ = self.table.delete(r);
                Ok(())
            }
        }
    };
}
pub(crate) use host_texts;

/// `analyzer.observe` called with borrowed columns (the bindings' own call
/// takes an owned record, which would mean a copy per detector). `V` is the
/// batch record of the component's version.
fn observe_borrowed<V>(
    func: &wasmtime::component::Func,
    store: &mut Store<State>,
    analyzer: ResourceAny,
    cols: &V,
    texts: Resource<TextsHandle>,
) -> wasmtime::Result<Vec<Finding>>
where
    V: wasmtime::component::ComponentType + wasmtime::component::Lower,
{
    let typed = func.typed::<(ResourceAny, &V, Resource<TextsHandle>), (Vec<Finding>,)>(&*store)?;
    let (found,) = typed.call(store, (analyzer, cols, texts))?;
    Ok(found)
}

impl Analyzer {
    fn arm(&mut self) -> wasmtime::Result<()> {
        let ticks = (self.limits.timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        self.store.set_epoch_deadline(ticks);
        if self.fuel {
            self.store.set_fuel(self.limits.fuel.unwrap_or(u64::MAX))?;
        }
        Ok(())
    }

    /// Feed one batch: the columns `needs` names (the others empty). An `Err`
    /// is the reason the detector was stopped.
    pub fn observe(
        &mut self,
        cols: &Columns,
        needs: &[Field],
        data: Arc<BatchData>,
    ) -> Result<Vec<Finding>, Stop> {
        self.arm().map_err(|e| explain(&e, &self.store))?;
        self.store.data_mut().texts = Some(data);
        let view = cols.view(needs);
        let (r, rep) = match &self.instance {
            Instance::V2(_) | Instance::V3(_) | Instance::V4(_) | Instance::V5(_) => {
                let handle = self.store.data_mut().table.push(TextsHandle);
                let handle = handle.map_err(|e| Stop::Failed {
                    why: e.to_string(),
                    printed: String::new(),
                })?;
                let rep = handle.rep();
                let (store, res) = (&mut self.store, self.res);
                let r = match &self.instance {
                    Instance::V5(i) => {
                        observe_borrowed(&observe_func!(i), store, res, &view, handle)
                    }
                    Instance::V4(i) => {
                        observe_borrowed(&observe_func!(i), store, res, &view, handle)
                    }
                    Instance::V3(i) => observe_borrowed(
                        &observe_func!(i),
                        store,
                        res,
                        &view.listed(cols.listed()),
                        handle,
                    ),
                    Instance::V2(i) => observe_borrowed(
                        &observe_func!(i),
                        store,
                        res,
                        &view.listed(cols.listed()),
                        handle,
                    ),
                    Instance::V1(_) => unreachable!("matched above"),
                };
                (r, rep)
            }
            Instance::V1(i) => {
                let handle = self.store.data_mut().table.push(v0_1_0::TextsV1);
                let handle = handle.map_err(|e| Stop::Failed {
                    why: e.to_string(),
                    printed: String::new(),
                })?;
                let rep = handle.rep();
                let old = v0_1_0::columns(&view.listed(cols.listed()));
                let analyzer = i.tokenhound_detector_detector().analyzer();
                let r = analyzer
                    .call_observe(&mut self.store, self.res, &old, handle)
                    .map(v0_1_0::findings);
                (r, rep)
            }
        };
        self.store.data_mut().texts = None;
        self.last_texts = rep;
        // A guest that keeps its handle must not grow the store's table batch
        // after batch (wasmtime caps it): the texts are gone after the call anyway.
        let table = &mut self.store.data_mut().table;
        let _ = match self.instance {
            Instance::V2(_) | Instance::V3(_) | Instance::V4(_) | Instance::V5(_) => table
                .delete(Resource::<TextsHandle>::new_own(rep))
                .map(|_| ()),
            Instance::V1(_) => table
                .delete(Resource::<v0_1_0::TextsV1>::new_own(rep))
                .map(|_| ()),
        };
        r.map_err(|e| explain(&e, &self.store))
    }

    pub fn finish(&mut self) -> Result<Vec<Finding>, Stop> {
        self.arm().map_err(|e| explain(&e, &self.store))?;
        let r = match &self.instance {
            Instance::V5(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_finish(&mut self.store, self.res),
            Instance::V4(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_finish(&mut self.store, self.res),
            Instance::V3(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_finish(&mut self.store, self.res),
            Instance::V2(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_finish(&mut self.store, self.res),
            Instance::V1(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_finish(&mut self.store, self.res)
                .map(v0_1_0::findings),
        };
        r.map_err(|e| explain(&e, &self.store))
    }

    pub fn counters(&mut self) -> Result<Vec<Counter>, Stop> {
        self.arm().map_err(|e| explain(&e, &self.store))?;
        let r = match &self.instance {
            Instance::V5(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_counters(&mut self.store, self.res),
            Instance::V4(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_counters(&mut self.store, self.res),
            Instance::V3(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_counters(&mut self.store, self.res),
            Instance::V2(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_counters(&mut self.store, self.res),
            Instance::V1(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_counters(&mut self.store, self.res)
                .map(v0_1_0::counters),
        };
        r.map_err(|e| explain(&e, &self.store))
    }

    /// The analyzer's state for a checkpoint (see [`Engine::restore`]); `None`
    /// when the detector cannot save it (it says so, or it is older than 0.3.0).
    pub fn save(&mut self) -> Result<Option<Vec<u8>>, Stop> {
        if !matches!(
            self.instance,
            Instance::V3(_) | Instance::V4(_) | Instance::V5(_)
        ) {
            return Ok(None);
        }
        self.arm().map_err(|e| explain(&e, &self.store))?;
        let r = match &self.instance {
            Instance::V5(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_save(&mut self.store, self.res),
            Instance::V4(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_save(&mut self.store, self.res),
            Instance::V3(i) => i
                .tokenhound_detector_detector()
                .analyzer()
                .call_save(&mut self.store, self.res),
            Instance::V2(_) | Instance::V1(_) => unreachable!("checked above"),
        };
        r.map_err(|e| explain(&e, &self.store))
    }
}

/// Say in plain words why a call failed: time limit, memory cap, fuel, or a trap
/// (with the tail of what the detector printed, e.g. its panic message).
fn explain(e: &wasmtime::Error, store: &Store<State>) -> Stop {
    let printed = store.data().stderr.text();
    let printed = if printed.is_empty() {
        String::new()
    } else {
        format!("; it printed: {printed}")
    };
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Stop::TimeLimit,
        Some(wasmtime::Trap::OutOfFuel) => Stop::Fuel,
        _ if store.data().limits.hit_cap => Stop::MemoryCap {
            mib: store.data().memory_cap >> 20,
        },
        Some(wasmtime::Trap::MemoryOutOfBounds) => Stop::OutOfBounds { printed },
        Some(t) => Stop::Trap {
            trap: t.to_string(),
            printed,
        },
        None => Stop::Failed {
            why: e.root_cause().to_string(),
            printed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wasmtime caps a store's resource table: a `texts` handle left behind per
    /// call would stop a long `watch` after about a million batches. Each call's
    /// handle is removed, so the next call gets the same slot.
    #[test]
    fn a_texts_handle_does_not_outlive_its_call() {
        let engine = Engine::new(None, false, None).unwrap();
        let wasm = crate::builtin::wasm("retry-storm").unwrap();
        let plugin = engine.load(wasm, "builtin:retry-storm").unwrap();
        let params: serde_json::Map<String, serde_json::Value> = plugin
            .meta
            .params
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    serde_json::from_str(&p.default_json).unwrap(),
                )
            })
            .collect();
        let params = serde_json::Value::Object(params).to_string();
        let mut a = engine
            .analyzer(&plugin, &params, &Limits::default())
            .unwrap();
        let (cols, _) = Columns::build(&mut crate::model::Batch { traces: Vec::new() }, true);
        let mut slots = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            a.observe(&cols, &[], Arc::new(BatchData::default()))
                .unwrap();
            slots.insert(a.last_texts);
        }
        assert_eq!(slots.len(), 1, "handles reused one slot: {slots:?}");
    }
}
