//! The built-in detectors, compiled from `plugins/` by the build script and
//! embedded, so the binary needs no other files.

macro_rules! plugin {
    ($file:literal) => {
        include_bytes!(concat!(env!("TOKENHOUND_PLUGIN_DIR"), "/", $file))
    };
}

pub const NAMES: [&str; 7] = [
    "retry-storm",
    "context-reread",
    "subagent-duplicate-context",
    "filler-preamble",
    "tail-latency",
    "error-patterns",
    "budget-pace",
];

/// The component of a built-in detector.
pub fn wasm(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "retry-storm" => plugin!("retry_storm.wasm"),
        "context-reread" => plugin!("context_reread.wasm"),
        "subagent-duplicate-context" => plugin!("subagent_duplicate_context.wasm"),
        "filler-preamble" => plugin!("filler_preamble.wasm"),
        "tail-latency" => plugin!("tail_latency.wasm"),
        "error-patterns" => plugin!("error_patterns.wasm"),
        "budget-pace" => plugin!("budget_pace.wasm"),
        _ => return None,
    })
}

/// The built-in detectors' version (they are released together).
pub const VERSION: &str = env!("TOKENHOUND_BUILTIN_VERSION");

/// Where the build put the guest components (the test plugins are there too).
pub const PLUGIN_DIR: &str = env!("TOKENHOUND_PLUGIN_DIR");
