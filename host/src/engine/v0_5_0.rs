//! Bindings of `tokenhound:detector@0.5.0`, the contract the built-in detectors
//! and `tokenhound new` speak. It is 0.4.0 plus `span-kinds`: every type is
//! shared (0.3.0's types, 0.4.0's batch, lowered from [`super::ColumnsView`]),
//! so only the detector interface is bound anew. Frozen with the WIT it binds.

use super::State;

wasmtime::component::bindgen!({
    path: "../wit/v0.5.0",
    world: "plugin",
    with: {
        "tokenhound:detector/types": crate::engine::v0_3_0::tokenhound::detector::types,
        "tokenhound:detector/batch": crate::engine::v0_4_0::tokenhound::detector::batch,
        "tokenhound:detector/host.texts": crate::engine::TextsHandle,
    },
});

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.5.0";

impl tokenhound::detector::host::Host for State {}

super::host_texts!(tokenhound::detector::host);
