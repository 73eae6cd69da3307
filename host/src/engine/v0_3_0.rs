//! Bindings of `tokenhound:detector@0.3.0`, the contract the engine speaks
//! natively: its types are the engine's types (re-exported by `engine`), and
//! 0.2.0 shares them (0.3.0 only added `analyzer.save` and `restore`). Frozen
//! with the WIT it binds.

use super::State;

wasmtime::component::bindgen!({
    path: "../wit/v0.3.0",
    world: "plugin",
    with: { "tokenhound:detector/host.texts": crate::engine::TextsHandle },
    // Findings are kept in watch mode's checkpoint.
    additional_derives: [serde::Serialize, serde::Deserialize],
});

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.3.0";

impl tokenhound::detector::host::Host for State {}
impl tokenhound::detector::types::Host for State {}

super::host_texts!(tokenhound::detector::host);
