//! Bindings of `tokenhound:detector@0.4.0`, the built-ins' contract until
//! 0.5.0 added `span-kinds`. Its types are 0.3.0's (shared, so findings,
//! metadata and counters need no conversion); only the batch differs: the
//! string table crosses as one blob with end offsets ([`super::ColumnsView`]),
//! not a string per span id. Frozen with the WIT it binds.

use super::State;

wasmtime::component::bindgen!({
    path: "../wit/v0.4.0",
    world: "plugin",
    with: {
        "tokenhound:detector/types": crate::engine::v0_3_0::tokenhound::detector::types,
        "tokenhound:detector/host.texts": crate::engine::TextsHandle,
    },
});

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.4.0";

impl tokenhound::detector::host::Host for State {}
impl tokenhound::detector::batch::Host for State {}

super::host_texts!(tokenhound::detector::host);
