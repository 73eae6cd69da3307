//! Bindings of `tokenhound:detector@0.2.0`. Its types are 0.3.0's (0.3.0 only
//! added `analyzer.save` and `restore`), so a 0.2.0 component is called as is;
//! it cannot save its state, so `watch` replays retained files on a restart.
//! Frozen with the WIT it binds.

use super::State;

wasmtime::component::bindgen!({
    path: "../wit/v0.2.0",
    world: "plugin",
    with: {
        "tokenhound:detector/types": crate::engine::v0_3_0::tokenhound::detector::types,
        "tokenhound:detector/host.texts": crate::engine::TextsHandle,
    },
});

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.2.0";

impl tokenhound::detector::host::Host for State {}

super::host_texts!(tokenhound::detector::host);
