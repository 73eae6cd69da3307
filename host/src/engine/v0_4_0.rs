//! Bindings of `tokenhound:detector@0.4.0`, the contract the built-in detectors
//! and `tokenhound new` speak. Its types are 0.3.0's (shared, so findings,
//! metadata and counters need no conversion); only the batch differs: the
//! string table crosses as one blob with end offsets ([`super::ColumnsView`]),
//! not a string per span id. Frozen with the WIT it binds.

use super::{State, TextsHandle};
use wasmtime::component::Resource;

wasmtime::component::bindgen!({
    path: "../wit/v0.4.0",
    world: "plugin",
    with: {
        "tokenhound:detector/types": crate::engine::v0_3_0::tokenhound::detector::types,
        "tokenhound:detector/host.texts": crate::engine::TextsHandle,
    },
});

use crate::engine::v0_3_0::tokenhound::detector::types::{InputPart, TextField};

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.4.0";

impl tokenhound::detector::host::Host for State {}
impl tokenhound::detector::batch::Host for State {}

impl tokenhound::detector::host::HostTexts for State {
    fn get(&mut self, _: Resource<TextsHandle>, row: u32, field: TextField) -> Option<String> {
        super::texts_get(self, row, field)
    }
    fn size(&mut self, _: Resource<TextsHandle>, row: u32, field: TextField) -> Option<u64> {
        super::texts_size(self, row, field)
    }
    fn parts(&mut self, _: Resource<TextsHandle>, row: u32) -> Vec<InputPart> {
        super::texts_parts(self, row)
    }
    fn drop(&mut self, r: Resource<TextsHandle>) -> wasmtime::Result<()> {
        let _ = self.table.delete(r);
        Ok(())
    }
}
