//! The WebAssembly engine: one wasmtime `Engine` with an epoch ticker, each
//! plugin compiled once (and cached on disk), each analyzer in its own `Store`
//! with a memory cap, a time limit per call, optional fuel and a stack limit.
//! Detectors get no files, network, environment or real clock.

mod batch;
mod cache;

pub use batch::{BatchData, Columns};

use anyhow::{anyhow, Context as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceAny, ResourceTable};
use wasmtime::{Config, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    with: { "tokenhound:detector/host.texts": TextsHandle },
});

pub use self::tokenhound::detector::types::{
    Counter, Field, Finding, ParamType, Severity, SpanColumns, SpanKind, TextField, TokenKind,
};
pub use exports::tokenhound::detector::detector::Metadata;

/// The version of the WIT package this host speaks.
pub const WIT_VERSION: &str = "tokenhound:detector@0.1.0";

/// Marker for the `texts` resource: the data lives in the store's current batch.
pub struct TextsHandle;

/// Limits for one analyzer; a rule pack may change each of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(10),
            fuel: None,
        }
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
    limits: StoreLimits,
    texts: Option<Arc<BatchData>>,
    stderr: MemoryOutputPipe,
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

impl self::tokenhound::detector::host::Host for State {}

impl self::tokenhound::detector::host::HostTexts for State {
    fn get(&mut self, _: Resource<TextsHandle>, row: u32, field: TextField) -> Option<String> {
        self.texts
            .as_ref()
            .and_then(|t| t.text(row, field))
            .map(String::from)
    }
    fn size(&mut self, _: Resource<TextsHandle>, row: u32, field: TextField) -> Option<u64> {
        self.texts.as_ref().and_then(|t| t.size(row, field))
    }
    fn drop(&mut self, r: Resource<TextsHandle>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl self::tokenhound::detector::types::Host for State {}

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
        let engine = wasmtime::Engine::new(&cfg).map_err(|e| anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(|e| anyhow!("{e:#}"))?;
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
        let hash = cache::sha256_hex(wasm);
        let component = cache::compile(&self.engine, wasm, &hash, self.cache_dir.as_deref())
            .with_context(|| {
                format!("{source}: not a WebAssembly component tokenhound can compile")
            })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{source}: does not match {WIT_VERSION}: {e:#}"))?;
        let pre = PluginPre::new(pre)
            .map_err(|e| anyhow!("{source}: does not export {WIT_VERSION}: {e:#}"))?;
        let mut probe = self
            .instantiate(&pre, &Limits::default())
            .with_context(|| format!("{source}: could not start"))?;
        let meta = probe
            .1
            .tokenhound_detector_detector()
            .call_describe(&mut probe.0)
            .map_err(|e| anyhow!("{source}: describe() failed: {}", explain(&e, &probe.0)))?;
        Ok(LoadedPlugin {
            pre,
            meta,
            hash,
            source: source.to_string(),
            component,
        })
    }

    fn instantiate(
        &self,
        pre: &PluginPre<State>,
        limits: &Limits,
    ) -> anyhow::Result<(Store<State>, Plugin)> {
        let stderr = MemoryOutputPipe::new(16 << 10);
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
                limits: limits_,
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
        let plugin = pre
            .instantiate(&mut store)
            .map_err(|e| anyhow!("{}", explain(&e, &store)))?;
        Ok((store, plugin))
    }

    /// Start an analyzer of `plugin` with the rule's parameters (JSON object text).
    pub fn analyzer(
        &self,
        plugin: &LoadedPlugin,
        params: &str,
        limits: &Limits,
    ) -> Result<Analyzer, String> {
        let (mut store, instance) = self
            .instantiate(&plugin.pre, limits)
            .map_err(|e| format!("{e:#}"))?;
        let created = instance
            .tokenhound_detector_detector()
            .call_create(&mut store, params);
        match created {
            Ok(Ok(res)) => Ok(Analyzer {
                store,
                instance,
                res,
                limits: limits.clone(),
                fuel: self.fuel,
            }),
            Ok(Err(msg)) => Err(format!("bad parameters: {msg}")),
            Err(e) => Err(explain(&e, &store)),
        }
    }
}

/// A compiled plugin with its metadata.
pub struct LoadedPlugin {
    pre: PluginPre<State>,
    pub meta: Metadata,
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
}

/// One running analyzer: its own store, so its failure is its own.
pub struct Analyzer {
    store: Store<State>,
    instance: Plugin,
    res: ResourceAny,
    limits: Limits,
    fuel: bool,
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

    /// Feed one batch. An `Err` is the reason the detector was stopped.
    pub fn observe(
        &mut self,
        cols: &SpanColumns,
        data: Arc<BatchData>,
    ) -> Result<Vec<Finding>, String> {
        self.arm().map_err(|e| format!("{e:#}"))?;
        self.store.data_mut().texts = Some(data);
        let handle = self
            .store
            .data_mut()
            .table
            .push(TextsHandle)
            .map_err(|e| format!("{e:#}"))?;
        let r = self
            .instance
            .tokenhound_detector_detector()
            .analyzer()
            .call_observe(&mut self.store, self.res, cols, handle);
        self.store.data_mut().texts = None;
        r.map_err(|e| explain(&e, &self.store))
    }

    pub fn finish(&mut self) -> Result<Vec<Finding>, String> {
        self.arm().map_err(|e| format!("{e:#}"))?;
        let r = self
            .instance
            .tokenhound_detector_detector()
            .analyzer()
            .call_finish(&mut self.store, self.res);
        r.map_err(|e| explain(&e, &self.store))
    }

    pub fn counters(&mut self) -> Result<Vec<Counter>, String> {
        self.arm().map_err(|e| format!("{e:#}"))?;
        let r = self
            .instance
            .tokenhound_detector_detector()
            .analyzer()
            .call_counters(&mut self.store, self.res);
        r.map_err(|e| explain(&e, &self.store))
    }
}

/// Say in plain words why a call failed: time limit, memory cap, fuel, or a trap
/// (with what the detector printed, e.g. its panic message).
fn explain(e: &wasmtime::Error, store: &Store<State>) -> String {
    let printed = String::from_utf8_lossy(&store.data().stderr.contents())
        .trim()
        .to_string();
    let printed = if printed.is_empty() {
        String::new()
    } else {
        format!("; it printed: {printed}")
    };
    let text = format!("{e:?}");
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            "stopped at its time limit (endless loop or too slow)".to_string()
        }
        Some(wasmtime::Trap::OutOfFuel) => "stopped: ran out of fuel".to_string(),
        _ if text.contains("growing memory") || text.contains("memory growth failure") => {
            format!(
                "stopped at its memory cap of {} MiB (allocated without end)",
                store.data().memory_cap >> 20
            )
        }
        Some(t) => format!("trapped: {t}{printed}"),
        None => format!("failed: {}{printed}", e.root_cause()),
    }
}
