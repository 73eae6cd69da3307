//! Compiled code on disk, keyed by the component's hash and the engine's
//! compatibility hash: a second run loads a plugin in milliseconds.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::component::Component;

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn compile(
    engine: &wasmtime::Engine,
    wasm: &[u8],
    hash: &str,
    dir: Option<&Path>,
) -> anyhow::Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, wasm).map_err(|e| anyhow::anyhow!("{e:#}"));
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let path = dir.join(format!("{}-{:016x}.cwasm", &hash[..32], h.finish()));
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with
        // the same compatibility hash; wasmtime checks that header again.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(c);
        }
    }
    let bytes = engine
        .precompile_component(wasm)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // A cache that cannot be written is only slower, never wrong.
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        match std::fs::write(&tmp, &bytes) {
            Ok(()) => {
                let _ = std::fs::rename(&tmp, &path);
            }
            // A full disk or a file-size limit: leave no partial file behind.
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    // SAFETY: the bytes were just produced by this engine.
    unsafe { Component::deserialize(engine, &bytes) }.map_err(|e| anyhow::anyhow!("{e:#}"))
}
