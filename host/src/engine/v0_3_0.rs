//! Bindings of `tokenhound:detector@0.3.0`, the contract the engine speaks
//! natively: its types are the engine's types (re-exported by `engine`), and
//! 0.2.0 shares them (0.3.0 only added `analyzer.save` and `restore`). Frozen
//! with the WIT it binds.

use super::{State, TextsHandle};
use wasmtime::component::Resource;

wasmtime::component::bindgen!({
    path: "../wit/v0.3.0",
    world: "plugin",
    with: { "tokenhound:detector/host.texts": crate::engine::TextsHandle },
    // Findings are kept in watch mode's checkpoint.
    additional_derives: [serde::Serialize, serde::Deserialize],
});

use self::tokenhound::detector::types::{InputPart, TextField};

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.3.0";

impl tokenhound::detector::host::Host for State {}
impl tokenhound::detector::types::Host for State {}

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
        // The host may have removed it already, after the call it was made for.
        let _ = self.table.delete(r);
        Ok(())
    }
}
