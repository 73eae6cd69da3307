//! Watch mode's checkpoint: what a restart needs to go on where the last run
//! stopped without reading the retained files again. It holds how far each
//! file was read, the spans of traces still open, the span ids already taken,
//! and each rule's analyzer state (WIT 0.3.0 `analyzer.save`) with the grouped
//! findings it may still add to, and which findings `--output` held then (so
//! the restart reads only the lines written after it).
//!
//! It is written whole to a temporary file and renamed over the last one, so
//! a kill at any moment leaves either the old checkpoint or the new one. What
//! was read after it is read again at the restart, and what that reading
//! finds again is not written twice (the output is deduplicated by id), so
//! the findings still equal a one-shot scan's.

use crate::model::SavedAssembler;
use crate::scan::SavedRule;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first bytes of a checkpoint file, with the layout's version (5: a
/// span's call, tool and agent fields moved into its `Detail`).
const MAGIC: &[u8] = b"tokenhound watch checkpoint 5\n";

/// Everything a restart resumes from (see the module doc).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// the tokenhound that wrote it: another version replays instead
    pub version: String,
    /// digest of the packs and plugins: another rule set replays instead
    pub config: u64,
    pub dirs: Vec<PathBuf>,
    /// (first line's fingerprint, bytes read, lines read) of each file
    pub files: Vec<(u64, u64, u64)>,
    /// compressed files read, by path and size
    pub compressed: Vec<(PathBuf, u64)>,
    pub assembler: SavedAssembler,
    /// (trace key, model): see `prices::TraceModels`
    pub trace_models: Vec<(u64, String)>,
    pub rules: Vec<SavedRule>,
    /// what `--output` held then, so a restart reads only the lines after it
    pub output: Option<SavedOutput>,
}

/// The findings written to `--output` when the checkpoint was taken.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedOutput {
    /// the file (absolute): another `--output` reads its own lines
    pub path: PathBuf,
    /// the file's length then (whole lines)
    pub len: u64,
    /// (id, hash of its last line, its waste) of every finding written
    pub written: Vec<(String, u64, u64)>,
}

impl Checkpoint {
    /// Why this checkpoint cannot be resumed from by this run, if it cannot.
    pub fn mismatch(&self, config: u64, dirs: &[PathBuf]) -> Option<String> {
        if self.version != env!("CARGO_PKG_VERSION") {
            return Some(format!("written by tokenhound {}", self.version));
        }
        if self.config != config {
            return Some("the packs or plugins changed since".into());
        }
        if self.dirs != dirs {
            return Some("it is of other directories".into());
        }
        None
    }
}

/// Write `cp` to `path`, atomically (temporary file, sync, rename); returns
/// its size in bytes.
pub fn write(path: &Path, cp: &Checkpoint) -> std::io::Result<u64> {
    let mut bytes = MAGIC.to_vec();
    let body = postcard::to_stdvec(cp).map_err(std::io::Error::other)?;
    bytes.extend_from_slice(&body);
    let tmp = temporary(path);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(bytes.len() as u64)
}

/// Where a checkpoint is written before it is renamed to `path`.
pub fn temporary(path: &Path) -> PathBuf {
    suffixed(path, ".tmp")
}

/// `path` with `suffix` added to its file name (`out.jsonl` → `out.jsonl.tmp`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The checkpoint at `path`: `Ok(None)` when there is none yet, `Err` with
/// what is wrong with it when it cannot be read.
pub fn read(path: &Path) -> Result<Option<Checkpoint>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let Some(body) = bytes.strip_prefix(MAGIC) else {
        return Err("not a tokenhound watch checkpoint of this layout".into());
    };
    postcard::from_bytes(body)
        .map(Some)
        .map_err(|e| format!("unreadable ({e})"))
}

/// The default place of the checkpoint: beside `--output`.
pub fn beside(output: &Path) -> PathBuf {
    suffixed(output, ".checkpoint")
}
