//! Bindings of `tokenhound:detector@0.2.0`. Its types are 0.3.0's (0.3.0 only
//! added `analyzer.save` and `restore`), so a 0.2.0 component is called as is;
//! it cannot save its state, so `watch` replays retained files on a restart.
//! Frozen with the WIT it binds.

use super::{State, TextsHandle};
use wasmtime::component::Resource;

wasmtime::component::bindgen!({
    path: "../wit/v0.2.0",
    world: "plugin",
    with: {
        "tokenhound:detector/types": crate::engine::v0_3_0::tokenhound::detector::types,
        "tokenhound:detector/host.texts": crate::engine::TextsHandle,
    },
});

use crate::engine::v0_3_0::tokenhound::detector::types::{InputPart, TextField};

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.2.0";

impl tokenhound::detector::host::Host for State {}

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
