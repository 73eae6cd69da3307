//! Bindings of `tokenhound:detector@0.2.0`, the contract the engine speaks
//! natively: its types are the engine's types (re-exported by `engine`), so a
//! 0.2.0 component is called as is. Frozen with the WIT it binds.

use super::{State, TextsHandle};
use wasmtime::component::Resource;

wasmtime::component::bindgen!({
    path: "../wit/v0.2.0",
    world: "plugin",
    with: { "tokenhound:detector/host.texts": crate::engine::TextsHandle },
});

use self::tokenhound::detector::types::{InputPart, PartKind, TextField};

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.2.0";

impl tokenhound::detector::host::Host for State {}
impl tokenhound::detector::types::Host for State {}

impl tokenhound::detector::host::HostTexts for State {
    fn get(&mut self, _: Resource<TextsHandle>, row: u32, field: TextField) -> Option<String> {
        self.texts
            .as_ref()
            .and_then(|t| t.text(row, field))
            .map(String::from)
    }
    fn size(&mut self, _: Resource<TextsHandle>, row: u32, field: TextField) -> Option<u64> {
        self.texts.as_ref().and_then(|t| t.size(row, field))
    }
    fn parts(&mut self, _: Resource<TextsHandle>, row: u32) -> Vec<InputPart> {
        let Some(parts) = self.texts.as_ref().and_then(|t| t.parts(row)) else {
            return Vec::new();
        };
        parts.iter().map(input_part).collect()
    }
    fn drop(&mut self, r: Resource<TextsHandle>) -> wasmtime::Result<()> {
        // The host may have removed it already, after the call it was made for.
        let _ = self.table.delete(r);
        Ok(())
    }
}

fn input_part(p: &crate::model::InputPart) -> InputPart {
    use crate::model::PartKind as K;
    InputPart {
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
