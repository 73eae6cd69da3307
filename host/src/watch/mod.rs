//! `tokenhound watch`: follow span directories live and hot-reload detectors.
//!
//! Files are followed by content, not by name: a file is known by a fingerprint
//! of its first line, so a rename (rotation) or a compressed copy of a file
//! already read is recognised and only its new lines are read. Only complete
//! lines are read. A trace goes to the detectors once it has been quiet.
//!
//! Restart: a checkpoint (`checkpoint.rs`, beside `--output`) holds how far
//! each file was read, the open traces and every analyzer's saved state, so a
//! restart reads only what came after it, however much history the folder
//! holds. Without one (the first start, a changed rule set, a detector that
//! cannot save its state), the files are replayed from the start. Either way
//! every finding already written to `--output` (same id, same content) is
//! suppressed, so the findings after a restart are those a one-shot `scan` of
//! the same files gives.
//!
//! Hot reload: a change to a pack or a `.wasm` in `--plugins` builds a whole new
//! rule set off to the side with the same validation as at start-up; only a set
//! that loads whole replaces the running one, between batches.

mod checkpoint;

use crate::engine::{self, Engine};
use crate::ingest::{self, Reader};
use crate::model::Assembler;
use crate::report::FindingCore;
use crate::rules::RuleSet;
use crate::scan::{self, RuleRun, ScanError};
use anyhow::Context as _;
use notify::Watcher as _;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub struct Options {
    pub dirs: Vec<PathBuf>,
    pub packs: Vec<PathBuf>,
    pub plugins: Option<PathBuf>,
    pub output: Option<PathBuf>,
    /// a trace is complete after this long without a new span…
    pub quiet: Duration,
    /// …or this long after its root span arrived
    pub grace: Duration,
    pub cache_dir: Option<PathBuf>,
    /// stop after this long (tests, benchmarks); None: until Ctrl-C / SIGTERM
    pub run_for: Option<Duration>,
    pub live_view: bool,
    /// receive OTLP/HTTP and OTLP/gRPC here (spooled in the first directory)
    pub listen: Option<std::net::SocketAddr>,
    pub grpc: Option<std::net::SocketAddr>,
    /// spool bytes not yet read above which requests are refused (retry later)
    pub max_pending: u64,
    /// where the restart checkpoint is kept; None: no checkpoint
    pub checkpoint: Option<PathBuf>,
}

pub use checkpoint::beside as checkpoint_beside;

/// One line of `--output`: a finding as it is now, in the report's shape, with
/// an id. A later line with the same `id` replaces an earlier one (a grouped
/// finding that grew).
#[derive(Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Emitted {
    pub id: String,
    #[serde(flatten)]
    pub finding: FindingCore,
}

impl std::ops::Deref for Emitted {
    type Target = FindingCore;
    fn deref(&self) -> &FindingCore {
        &self.finding
    }
}

fn finding_id(rule: &str, f: &engine::Finding) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rule.hash(&mut h);
    match &f.group {
        Some(g) => g.hash(&mut h),
        None => {
            f.title.hash(&mut h);
            for s in &f.spans {
                (&s.trace_id, &s.span_id).hash(&mut h);
            }
        }
    }
    format!("{:016x}", h.finish())
}

fn emitted(run: &RuleRun, f: &engine::Finding) -> Emitted {
    Emitted {
        id: finding_id(&run.rule.id, f),
        finding: FindingCore::of(run, f.clone()),
    }
}

/// An engine finding (a reload that failed, a detector that stopped).
fn engine_finding(title: String, message: String) -> Emitted {
    let id = format!("engine-{:x}", {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&title, &message).hash(&mut h);
        h.finish()
    });
    let fix = "Fix the file named above; the previous detector set keeps running.";
    Emitted {
        id,
        finding: FindingCore::engine("engine", title, message, fix),
    }
}

/// What was read of one file, known by its first line.
#[derive(Default, Clone, Copy)]
struct Progress {
    /// bytes of (decompressed) content consumed: always at a line end
    offset: u64,
    /// lines consumed
    lines: u64,
}

/// A stable hash of some bytes: a file's first line (to know the file), an
/// output line (to know a finding was written).
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// `p` made absolute (as given when it cannot be): paths compared with the
/// events' and the folders' must be absolute.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn is_compressed(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("gz") | Some("zst")
    )
}

/// New lines of a file: the file, the first one's number, their bytes, and
/// whether the file has more.
type Chunk = (PathBuf, u64, Vec<u8>, bool);

/// About the most bytes read in one round (a line is never cut).
const MAX_CHUNK: u64 = 16 << 20;

/// Follows the files of some directories.
struct Follower {
    dirs: Vec<PathBuf>,
    /// watch's own files (output, checkpoint), if kept in a watched folder:
    /// never read as spans
    own: Vec<PathBuf>,
    known: HashMap<u64, Progress>,
    /// compressed files already handled, by path and size
    done_compressed: HashSet<(PathBuf, u64)>,
    /// the receiver's spool and where its reading is reported (backpressure)
    spool: Option<(PathBuf, Arc<std::sync::atomic::AtomicU64>)>,
}

impl Follower {
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in &self.dirs {
            out.extend(ingest::expand(std::slice::from_ref(d), &mut Vec::new()));
        }
        out.retain(|p| !self.is_own(p));
        // Compressed (rotated) files first: they hold the older lines.
        out.sort_by_key(|p| (!is_compressed(p), p.clone()));
        out
    }

    fn is_own(&self, p: &Path) -> bool {
        self.own.iter().any(|o| {
            o.file_name() == p.file_name() && std::path::absolute(p).is_ok_and(|a| &a == o)
        })
    }

    /// New complete lines of the files, about [`MAX_CHUNK`] bytes a round,
    /// handed to `each` (file, first line number, bytes) one file at a time;
    /// whether there is more to read. A folder with a month of history is so
    /// read in rounds: memory holds a round's chunk, not the history.
    fn poll(&mut self, each: &mut dyn FnMut(PathBuf, u64, Vec<u8>)) -> bool {
        let mut read = 0;
        for path in self.files() {
            if read >= MAX_CHUNK {
                return true; // the other files next round
            }
            let r = if is_compressed(&path) {
                self.poll_compressed(&path)
            } else {
                self.poll_plain(&path, MAX_CHUNK - read)
            };
            if let Ok(Some((path, first_line, chunk, left))) = r {
                read += chunk.len() as u64;
                each(path, first_line, chunk);
                if left {
                    return true;
                }
            }
        }
        false
    }

    fn poll_plain(&mut self, path: &Path, most: u64) -> std::io::Result<Option<Chunk>> {
        let mut f = std::fs::File::open(path)?;
        let mut first = Vec::new();
        std::io::BufReader::new(&mut f)
            .take(1 << 24)
            .read_until(b'\n', &mut first)?;
        if !first.ends_with(b"\n") {
            return Ok(None); // not even one complete line yet
        }
        let key = fingerprint(&first);
        let p = self.known.get(&key).copied().unwrap_or_default();
        let len = f.metadata()?.len();
        self.report_read(path, p.offset);
        if len <= p.offset {
            return Ok(None);
        }
        f.seek(SeekFrom::Start(p.offset))?;
        let want = (len - p.offset).min(most);
        let mut buf = Vec::with_capacity(want as usize);
        (&mut f).take(want).read_to_end(&mut buf)?;
        // Never half a line: stop at the last newline (a line longer than a
        // chunk is read on to its end).
        let end = loop {
            if let Some(end) = memchr::memrchr(b'\n', &buf) {
                break end;
            }
            let before = buf.len();
            (&mut f).take(MAX_CHUNK).read_to_end(&mut buf)?;
            if buf.len() == before {
                return Ok(None);
            }
        };
        buf.truncate(end + 1);
        let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        self.known.insert(
            key,
            Progress {
                offset: p.offset + buf.len() as u64,
                lines: p.lines + lines,
            },
        );
        let offset = p.offset + buf.len() as u64;
        self.report_read(path, offset);
        Ok(Some((path.to_path_buf(), p.lines + 1, buf, offset < len)))
    }

    /// How far the receiver's spool has been read, for its backpressure.
    fn report_read(&self, path: &Path, offset: u64) {
        if let Some((spool, read)) = &self.spool {
            if spool == path {
                read.store(offset, Ordering::Release);
            }
        }
    }

    fn poll_compressed(&mut self, path: &Path) -> std::io::Result<Option<Chunk>> {
        let size = std::fs::metadata(path)?.len();
        if self.done_compressed.contains(&(path.to_path_buf(), size)) {
            return Ok(None);
        }
        // A compressed file is read once it stops growing.
        std::thread::sleep(Duration::from_millis(20));
        if std::fs::metadata(path)?.len() != size {
            return Ok(None);
        }
        let mut data = Vec::new();
        let file = std::fs::File::open(path)?;
        let mut head = [0u8; 4];
        (&file).read_exact(&mut head).ok();
        let file = std::fs::File::open(path)?;
        if head.starts_with(&[0x1f, 0x8b]) {
            flate2::read::MultiGzDecoder::new(file).read_to_end(&mut data)?;
        } else {
            ruzstd::decoding::StreamingDecoder::new(file)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
                .read_to_end(&mut data)?;
        }
        self.done_compressed.insert((path.to_path_buf(), size));
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let key = fingerprint(&data[..=nl]);
        let p = self.known.get(&key).copied().unwrap_or_default();
        let end = data.iter().rposition(|&b| b == b'\n').map_or(0, |e| e + 1) as u64;
        if end <= p.offset {
            return Ok(None);
        }
        let chunk = data[p.offset as usize..end as usize].to_vec();
        let lines = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        self.known.insert(
            key,
            Progress {
                offset: end,
                lines: p.lines + lines,
            },
        );
        Ok(Some((path.to_path_buf(), p.lines + 1, chunk, false)))
    }
}

fn load(
    engine: &Engine,
    packs: &[PathBuf],
    plugins: Option<&Path>,
) -> Result<Vec<RuleRun>, String> {
    let set = RuleSet::with_plugins_dir(packs, plugins)?;
    scan::prepare(&set, engine).map_err(|e: ScanError| e.to_string())
}

fn describe(runs: &[RuleRun]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "{} = {} {} ({}, sha256 {})",
                r.rule.id,
                r.plugin.meta.name,
                r.plugin.meta.version,
                r.plugin.source,
                &r.plugin.hash[..12]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Running totals for the live view.
#[derive(Default)]
struct Totals {
    spans: u64,
    per_rule: HashMap<String, (u64, u64)>,
    recent: Vec<String>,
    /// something to show since the last view
    changed: bool,
}

/// The files whose change reloads the detectors, and a digest of their content:
/// a reload happens only when the content changed (reading a file, or touching
/// it, raises events too).
struct Config {
    packs: Vec<PathBuf>,
    plugins: Option<PathBuf>,
    digest: u64,
}

impl Config {
    fn new(packs: &[PathBuf], plugins: Option<&Path>) -> Self {
        let mut c = Config {
            packs: packs.iter().map(|p| absolute(p)).collect(),
            plugins: plugins.map(absolute),
            digest: 0,
        };
        c.digest = c.content_digest();
        c
    }

    /// Folders to watch: a pack's folder (editors replace files by renaming) and
    /// the plugins folder.
    fn folders(&self) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = self
            .packs
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .chain(self.plugins.clone())
            .collect();
        d.sort();
        d.dedup();
        d
    }

    fn concerns(&self, p: &Path) -> bool {
        let p = absolute(p);
        self.packs.contains(&p)
            || self.plugins.as_deref().is_some_and(|d| {
                p.parent() == Some(d) && p.extension().is_some_and(|e| e == "wasm")
            })
    }

    fn content_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut files = self.packs.clone();
        if let Some(d) = &self.plugins {
            let mut w: Vec<PathBuf> = std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
                .collect();
            w.sort();
            files.extend(w);
        }
        for f in files {
            f.hash(&mut h);
            match std::fs::metadata(&f) {
                Ok(m) if m.len() <= engine::MAX_COMPONENT => std::fs::read(&f).ok().hash(&mut h),
                Ok(m) => m.len().hash(&mut h),
                Err(_) => 0u8.hash(&mut h),
            }
        }
        h.finish()
    }
}

/// A line cut short (a full disk, then a kill before it was taken back) is
/// removed, so the next line does not glue onto it; its finding was not
/// counted as written and is written again.
fn drop_torn_tail(f: &std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut r = f;
    let mut at = len;
    let mut buf = vec![0u8; 64 << 10];
    while at > 0 {
        let n = (at as usize).min(buf.len());
        at -= n as u64;
        r.seek(SeekFrom::Start(at))?;
        r.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = at + i as u64 + 1;
            if keep < len {
                f.set_len(keep)?;
            }
            return Ok(());
        }
    }
    f.set_len(0)
}

/// Where findings go: appended whole lines, never a torn one.
struct Sink {
    out: Box<dyn Write>,
    file: Option<std::fs::File>,
    /// the output file's absolute path
    path: Option<PathBuf>,
    /// lines appended by this run
    appended: u64,
    /// what was written (this run or an earlier one), by id
    written: rustc_hash::FxHashMap<String, Written>,
    /// findings that could not be written yet (disk full): tried again
    pending: Vec<Emitted>,
    failing: bool,
}

/// A finding line already written, as much as is needed to know whether a
/// finding is new: a hash of the line and its waste (for the live view). A
/// restart reads only this of each line, and a long watch keeps only this.
#[derive(Clone, Copy)]
struct Written {
    hash: u64,
    wasted_tokens: u64,
}

/// The fields of an output line a restart reads (serde skips the others).
#[derive(serde::Deserialize)]
struct Head {
    id: String,
    #[serde(default)]
    wasted_tokens: u64,
}

/// What `output` holds already (a restart), not to be written again: from
/// the checkpoint's record up to the length it had then, and the lines after
/// it. A line that is not a whole finding (torn) is not counted as written.
fn already_written(
    output: &Path,
    saved: Option<&checkpoint::SavedOutput>,
) -> rustc_hash::FxHashMap<String, Written> {
    let mut written = rustc_hash::FxHashMap::default();
    let Ok(mut file) = std::fs::File::open(output) else {
        return written;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut from = 0;
    let path = absolute(output);
    let fits = |s: &&checkpoint::SavedOutput| s.path == path && s.len <= len;
    if let Some(s) = saved.filter(fits).filter(|s| ends_line(&mut file, s.len)) {
        for (id, hash, wasted_tokens) in &s.written {
            written.insert(
                id.clone(),
                Written {
                    hash: *hash,
                    wasted_tokens: *wasted_tokens,
                },
            );
        }
        from = s.len;
    }
    let mut text = String::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_string(&mut text).is_err() {
        return written;
    }
    for line in text.lines() {
        if let Ok(h) = serde_json::from_str::<Head>(line) {
            let w = Written {
                hash: fingerprint(line.as_bytes()),
                wasted_tokens: h.wasted_tokens,
            };
            written.insert(h.id, w);
        }
    }
    written
}

/// Whether the byte before `at` ends a line (the file was not cut or
/// replaced since `at` was recorded as a line end).
fn ends_line(file: &mut std::fs::File, at: u64) -> bool {
    if at == 0 {
        return true;
    }
    let mut b = [0u8];
    file.seek(SeekFrom::Start(at - 1)).is_ok() && file.read_exact(&mut b).is_ok() && b[0] == b'\n'
}

impl Sink {
    fn open(
        output: Option<&Path>,
        to_stdout: bool,
        saved: Option<&checkpoint::SavedOutput>,
    ) -> anyhow::Result<Self> {
        let written = output.map_or_else(Default::default, |p| already_written(p, saved));
        let (out, file): (Box<dyn Write>, _) = match output {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(p)
                    .with_context(|| p.display().to_string())?;
                drop_torn_tail(&f).with_context(|| p.display().to_string())?;
                (Box::new(f.try_clone()?), Some(f))
            }
            None if to_stdout => (Box::new(std::io::stdout()), None),
            None => (Box::new(std::io::sink()), None),
        };
        Ok(Sink {
            out,
            file,
            path: output.map(absolute),
            appended: 0,
            written,
            pending: Vec::new(),
            failing: false,
        })
    }

    /// Write a finding unless the same one was written; one that cannot be
    /// written yet waits in `pending`.
    fn emit(&mut self, e: Emitted, totals: &mut Totals) {
        let line = serde_json::to_string(&e).expect("serialises");
        let hash = fingerprint(line.as_bytes());
        let same = self.written.get(&e.id).is_some_and(|w| w.hash == hash);
        if same || self.pending.iter().any(|p| p == &e) {
            return;
        }
        if !self.write_line(line + "\n") {
            self.pending.push(e);
            return;
        }
        let w = Written {
            hash,
            wasted_tokens: e.wasted_tokens,
        };
        let before = self.written.insert(e.id.clone(), w);
        totals.count(&e, before.map(|b| b.wasted_tokens));
    }

    fn write_line(&mut self, line: String) -> bool {
        let before = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len());
        match self
            .out
            .write_all(line.as_bytes())
            .and_then(|_| self.out.flush())
        {
            Ok(()) => {
                if self.failing {
                    eprintln!("tokenhound watch: writing findings again");
                    self.failing = false;
                }
                self.appended += 1;
                true
            }
            Err(err) => {
                // Take back a partial line, so the file stays whole JSON lines.
                if let (Some(f), Some(len)) = (&self.file, before) {
                    let _ = f.set_len(len);
                }
                if !self.failing {
                    eprintln!(
                        "tokenhound watch: cannot write findings ({err}); they are kept and written when writing works again"
                    );
                    self.failing = true;
                }
                false
            }
        }
    }

    /// What the output file holds now, for a checkpoint (none without a file).
    fn snapshot(&self) -> Option<checkpoint::SavedOutput> {
        let len = self.file.as_ref()?.metadata().ok()?.len();
        let written = (self.written.iter())
            .map(|(id, w)| (id.clone(), w.hash, w.wasted_tokens))
            .collect();
        let path = self.path.clone()?;
        Some(checkpoint::SavedOutput { path, len, written })
    }

    fn retry(&mut self, totals: &mut Totals) {
        for e in std::mem::take(&mut self.pending) {
            self.emit(e, totals);
        }
    }
}

impl Totals {
    /// `before`: the waste of the line this finding replaces, if any.
    fn count(&mut self, e: &Emitted, before: Option<u64>) {
        let t = self.per_rule.entry(e.rule.clone()).or_default();
        t.0 += u64::from(before.is_none());
        t.1 -= before.unwrap_or(0).min(t.1);
        t.1 += e.wasted_tokens;
        self.recent.push(format!(
            "[{}] {}: {} ({} tokens)",
            e.severity,
            e.rule,
            crate::report::clean(&e.title),
            e.wasted_tokens
        ));
        if self.recent.len() > 10 {
            self.recent.remove(0);
        }
        self.changed = true;
    }
}

/// What the loop follows: files, the traces assembled from them, and the rules.
struct Live {
    follower: Follower,
    reader: Reader,
    asm: Assembler,
    runs: Vec<RuleRun>,
    trace_models: crate::prices::TraceModels,
    /// lines were read since the last look (a checkpoint is due)
    moved: bool,
}

impl Live {
    fn new(opts: &Options, runs: Vec<RuleRun>) -> Self {
        let own = (opts.output.iter())
            .chain(opts.checkpoint.iter())
            .map(|p| absolute(p))
            .chain(
                opts.checkpoint
                    .as_deref()
                    .map(|p| absolute(&checkpoint::temporary(p))),
            )
            .collect();
        Live {
            follower: Follower {
                dirs: opts.dirs.clone(),
                own,
                known: HashMap::new(),
                done_compressed: HashSet::new(),
                spool: None,
            },
            reader: Reader::new(crate::model::Keep::ALL),
            asm: Assembler::new(u64::MAX),
            runs,
            trace_models: Default::default(),
            moved: false,
        }
    }

    /// Read new complete lines into open traces; returns spans read.
    /// Read a round of new complete lines into open traces: the spans read,
    /// and whether a file has more (the loop goes on without sleeping).
    fn read(&mut self) -> (u64, bool) {
        let mut n = 0;
        let (reader, asm, moved) = (&mut self.reader, &mut self.asm, &mut self.moved);
        let more = self.follower.poll(&mut |path, first_line, data| {
            *moved = true;
            let name: Arc<str> = path.display().to_string().into();
            reader.read_chunk(&name, first_line, &data, &mut |spans| {
                for s in spans.into_iter().flatten() {
                    n += 1;
                    let _ = asm.add(s);
                }
            });
        });
        for p in std::mem::take(&mut self.reader.stats.first_problems) {
            eprintln!("tokenhound watch: {}", crate::report::clean(&p.to_string()));
        }
        (n, more)
    }

    /// Everything a restart needs (see `checkpoint`); `Err` says why it
    /// cannot be saved.
    fn save(
        &mut self,
        config: u64,
        dirs: &[PathBuf],
        output: Option<checkpoint::SavedOutput>,
    ) -> Result<checkpoint::Checkpoint, String> {
        let rules = (self.runs.iter_mut())
            .map(RuleRun::save)
            .collect::<Result<Vec<_>, _>>()?;
        let f = &self.follower;
        Ok(checkpoint::Checkpoint {
            version: env!("CARGO_PKG_VERSION").into(),
            config,
            dirs: dirs.to_vec(),
            files: (f.known.iter())
                .map(|(&k, p)| (k, p.offset, p.lines))
                .collect(),
            compressed: f.done_compressed.iter().cloned().collect(),
            assembler: self.asm.save(),
            trace_models: self.trace_models.save(),
            rules,
            output,
        })
    }

    /// Go on from a checkpoint; says what was resumed, or why it could not be
    /// (then this `Live` may be half restored and is to be dropped).
    fn resume(&mut self, engine: &Engine, cp: checkpoint::Checkpoint) -> Result<String, String> {
        if cp.rules.len() != self.runs.len() {
            return Err("the rules changed since".into());
        }
        for (run, saved) in self.runs.iter_mut().zip(cp.rules) {
            run.restore(engine, saved)?;
        }
        let read: u64 = cp.files.iter().map(|f| f.1).sum();
        let f = &mut self.follower;
        f.known = (cp.files.iter())
            .map(|&(k, offset, lines)| (k, Progress { offset, lines }))
            .collect();
        f.done_compressed = cp.compressed.into_iter().collect();
        self.asm = Assembler::restore(cp.assembler, u64::MAX);
        self.trace_models = crate::prices::TraceModels::restore(cp.trace_models);
        Ok(format!(
            "{:.1} MB already read in {} ({} open), not read again",
            read as f64 / 1e6,
            crate::report::count(f.known.len() as u64, "file"),
            crate::report::count(self.asm.open_traces() as u64, "trace"),
        ))
    }

    /// Hand idle traces to the rules and write what changed; whether any
    /// trace was handed on.
    fn analyse(&mut self, opts: &Options, sink: &mut Sink, totals: &mut Totals) -> bool {
        let done = self.asm.take_idle(opts.quiet, opts.grace);
        for n in self.asm.take_notes().0 {
            let p = crate::ingest::Problem::at(&n.origin, n.what);
            eprintln!("tokenhound watch: {}", crate::report::clean(&p.to_string()));
        }
        let fed = !done.is_empty();
        if fed {
            scan::feed(&mut self.runs, done, 8192, &mut self.trace_models);
        }
        for run in self.runs.iter_mut() {
            for i in run.findings.take_changed() {
                let e = emitted(run, &run.findings.list[i]);
                sink.emit(e, totals);
            }
            // Written (or waiting in the sink): a long watch need not hold them.
            if run.findings.settled() >= FORGET_AFTER {
                run.findings.forget_settled();
            }
            if let Some(why) = run.failure.take() {
                let e = engine_finding(
                    format!(
                        "detector {} {} stopped",
                        run.plugin.meta.name, run.plugin.meta.version
                    ),
                    format!("rule `{}` ({}): {why}", run.rule.id, run.plugin.source),
                );
                sink.emit(e, totals);
            }
        }
        fed
    }
}

/// Findings without a group are forgotten once this many are written (the
/// list is rebuilt, so not after each one).
const FORGET_AFTER: usize = 1024;

/// When and where checkpoints are written (see `checkpoint`).
struct Checkpoints {
    path: PathBuf,
    /// something changed since the last one
    dirty: bool,
    last: Instant,
    /// how long the last one took: the next waits 20 times as long, so
    /// checkpoints cost at most about 5% of the time
    took: Duration,
    /// why checkpoints are off (a detector cannot save its state), said once
    off: Option<String>,
    /// the last write failed (said once until one succeeds)
    failing: bool,
}

/// The least time between two checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

impl Checkpoints {
    fn new(path: PathBuf) -> Self {
        Checkpoints {
            path,
            dirty: false,
            last: Instant::now(),
            took: Duration::ZERO,
            off: None,
            failing: false,
        }
    }

    /// When the next checkpoint is due, if one is waiting.
    fn next_due(&self, sink: &Sink) -> Option<Instant> {
        (self.dirty && self.off.is_none() && sink.pending.is_empty())
            .then(|| self.last + CHECKPOINT_EVERY.max(self.took * 20))
    }

    /// A reload replaced the rules (and read the files again into them).
    fn reloaded(&mut self) {
        self.dirty = true;
        self.off = None;
    }

    /// Write one if something changed and it is time (or `now`). Never while
    /// a finding waits to be written: its detector's state would be saved
    /// past it, and a restart would not find it again.
    fn maybe_write(
        &mut self,
        live: &mut Live,
        sink: &Sink,
        config: u64,
        dirs: &[PathBuf],
        now: bool,
    ) {
        let due = self.last.elapsed() >= CHECKPOINT_EVERY.max(self.took * 20);
        if !self.dirty || !(due || now) || !sink.pending.is_empty() || self.off.is_some() {
            return;
        }
        let started = Instant::now();
        match live.save(config, dirs, sink.snapshot()) {
            Ok(cp) => match checkpoint::write(&self.path, &cp) {
                Ok(_) => {
                    self.dirty = false;
                    self.failing = false;
                }
                // An older checkpoint stays valid (what came after it is read
                // again); this one is tried again later.
                Err(e) => {
                    if !std::mem::replace(&mut self.failing, true) {
                        eprintln!(
                            "tokenhound watch: cannot write the checkpoint {} ({e}); trying again",
                            self.path.display()
                        );
                    }
                }
            },
            Err(why) => {
                eprintln!("tokenhound watch: no checkpoint: {why}; a restart reads the files from the start");
                self.off = Some(why);
            }
        }
        self.last = Instant::now();
        self.took = started.elapsed();
    }
}

/// Go on from the checkpoint read from `path` if it is usable; else say why
/// and start from the beginning of the files, with new analyzers.
fn resume(
    engine: &Engine,
    opts: &Options,
    mut live: Live,
    path: &Path,
    saved: Result<Option<checkpoint::Checkpoint>, String>,
    config: u64,
) -> anyhow::Result<Live> {
    let found = saved.and_then(|cp| match cp {
        None => Ok(None),
        Some(cp) => match cp.mismatch(config, &opts.dirs) {
            Some(why) => Err(why),
            None => live.resume(engine, cp).map(Some),
        },
    });
    match found {
        Ok(None) => Ok(live),
        Ok(Some(what)) => {
            eprintln!("tokenhound watch: resumed from {}: {what}", path.display());
            Ok(live)
        }
        Err(why) => {
            eprintln!(
                "tokenhound watch: checkpoint {} not used ({why}); reading the files from the start",
                path.display()
            );
            let runs = load(engine, &opts.packs, opts.plugins.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Live::new(opts, runs))
        }
    }
}

/// A reload starts the new rule set on the files from their start (findings
/// already written are not written again; the loop reads them in rounds), so
/// detector state built before the reload is not lost, and the result equals a
/// scan, as after a restart. Whether the new set took over.
fn reload(
    engine: &Engine,
    opts: &Options,
    live: &mut Live,
    sink: &mut Sink,
    totals: &mut Totals,
) -> bool {
    match load(engine, &opts.packs, opts.plugins.as_deref()) {
        Ok(runs) => {
            eprintln!("tokenhound watch: reloaded: {}", describe(&runs));
            // The receiver's spool stays reported (its backpressure).
            let spool = live.follower.spool.take();
            *live = Live::new(opts, runs);
            live.follower.spool = spool;
            true
        }
        Err(why) => {
            let why = crate::report::clean(&why).into_owned();
            eprintln!("tokenhound watch: reload failed, previous detectors keep running: {why}");
            sink.emit(engine_finding("reload failed".into(), why), totals);
            false
        }
    }
}

/// How long the loop may sleep: until a trace goes idle, a reload or a
/// checkpoint is due, the run ends, or (as a safety net for missed events) a
/// few seconds pass.
fn sleep_for(opts: &Options, live: &Live, due: [Option<Instant>; 2], started: Instant) -> Duration {
    let now = Instant::now();
    let mut wake = now + Duration::from_secs(5);
    let candidates = [
        live.asm.next_idle(opts.quiet, opts.grace),
        opts.run_for.map(|d| started + d),
    ];
    for t in candidates.into_iter().chain(due).flatten() {
        wake = wake.min(t);
    }
    wake.saturating_duration_since(now)
        .max(Duration::from_millis(5))
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    // First: compiling the detectors writes the cache.
    ignore_file_size_signal();
    let engine = Engine::new(opts.cache_dir.clone(), false, None).context("starting the engine")?;
    let runs =
        load(&engine, &opts.packs, opts.plugins.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("tokenhound watch: detectors loaded: {}", describe(&runs));
    let saved = match &opts.checkpoint {
        Some(path) => checkpoint::read(path),
        None => Ok(None),
    };
    let saved_output = saved
        .as_ref()
        .ok()
        .and_then(|c| c.as_ref()?.output.as_ref());
    let mut sink = Sink::open(opts.output.as_deref(), !opts.live_view, saved_output)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let s = stop.clone();
        // A second handler (tests running several watches in one process) is fine to skip.
        let _ = ctrlc::set_handler(move || s.store(true, Ordering::SeqCst));
    }
    let mut config = Config::new(&opts.packs, opts.plugins.as_deref());
    let (_watcher, rx) = start_watcher(&opts.dirs, &config)?;
    let mut live = Live::new(opts, runs);
    let mut checkpoints = opts.checkpoint.clone().map(Checkpoints::new);
    if let Some(path) = &opts.checkpoint {
        live = resume(&engine, opts, live, path, saved, config.digest)?;
    }
    live.follower.spool = receive(opts)?;
    let mut totals = Totals::default();
    let started = Instant::now();
    let mut reload_due: Option<Instant> = None;
    let mut last_view: Option<Instant> = None;
    let mut data_changed = true;
    let mut last_poll = Instant::now();
    loop {
        // Sleep until something changes: only events that change content count
        // (reading a file raises access events, which would wake us forever).
        let due = checkpoints.as_ref().and_then(|c| c.next_due(&sink));
        // Data known to be there (the first round, a file with more to read,
        // a reload) is read at once: no wait for the safety re-check.
        let wait = if data_changed {
            Duration::ZERO
        } else {
            sleep_for(opts, &live, [reload_due, due], started)
        };
        let (config_changed, data) = wake(&rx, wait, &config);
        data_changed |= data;
        if config_changed {
            // Debounce: editors write a file in several steps.
            reload_due = Some(Instant::now() + Duration::from_millis(150));
        }
        if reload_due.is_some_and(|t| Instant::now() >= t) {
            reload_due = None;
            let digest = config.content_digest();
            if digest != config.digest {
                config.digest = digest;
                if reload(&engine, opts, &mut live, &mut sink, &mut totals) {
                    data_changed = true;
                    if let Some(c) = checkpoints.as_mut() {
                        c.reloaded();
                    }
                }
            }
        }
        if data_changed || last_poll.elapsed() >= Duration::from_secs(5) {
            last_poll = Instant::now();
            let (n, more) = live.read();
            totals.spans += n;
            totals.changed |= n > 0;
            data_changed = more;
        }
        let fed = live.analyse(opts, &mut sink, &mut totals);
        sink.retry(&mut totals);
        let stopping =
            stop.load(Ordering::SeqCst) || opts.run_for.is_some_and(|d| started.elapsed() >= d);
        if let Some(c) = checkpoints.as_mut() {
            c.dirty |= fed || std::mem::take(&mut live.moved);
            c.maybe_write(&mut live, &sink, config.digest, &opts.dirs, stopping);
        }

        if opts.live_view
            && (totals.changed || last_view.is_none())
            && last_view.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            last_view = Some(Instant::now());
            totals.changed = false;
            eprint!("{}", live_view(&totals, &live, started));
        }

        if stopping {
            break;
        }
    }
    eprintln!(
        "tokenhound watch: stopped; {} read, {} written this run{}",
        crate::report::count(totals.spans, "span"),
        crate::report::count(sink.appended, "finding"),
        if sink.pending.is_empty() {
            String::new()
        } else {
            format!(", {} could not be written", sink.pending.len())
        }
    );
    Ok(())
}

/// Start the OTLP receiver when asked; its spool (in the first directory) and
/// the counter the watch reports its reading to.
fn receive(opts: &Options) -> anyhow::Result<Option<(PathBuf, Arc<std::sync::atomic::AtomicU64>)>> {
    if opts.listen.is_none() && opts.grpc.is_none() {
        return Ok(None);
    }
    let dir = opts
        .dirs
        .first()
        .context("a directory for the receiver's spool")?;
    let spool = crate::receive::Spool::open(dir, opts.max_pending)?;
    let out = (spool.path().to_path_buf(), spool.read.clone());
    let r = crate::receive::start(spool, opts.listen, opts.grpc)?;
    if let Some(a) = r.http {
        eprintln!("tokenhound watch: receiving OTLP/HTTP on http://{a}/v1/traces");
    }
    if let Some(a) = r.grpc {
        eprintln!("tokenhound watch: receiving OTLP/gRPC on {a}");
    }
    Ok(Some(out))
}

type Events = mpsc::Receiver<notify::Result<notify::Event>>;

/// Watch the span folders (recursively) and the folders of the packs and
/// plugins (for reloads).
fn start_watcher(
    dirs: &[PathBuf],
    config: &Config,
) -> anyhow::Result<(notify::RecommendedWatcher, Events)> {
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(tx).context("starting the file watcher")?;
    for d in dirs {
        watcher
            .watch(d, notify::RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", d.display()))?;
    }
    for c in config.folders() {
        watcher
            .watch(&c, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", c.display()))?;
    }
    Ok((watcher, rx))
}

/// Sleep until something changes or `wait` is over; then say whether the
/// packs or plugins changed and whether span files did. Only events that
/// change content count (reading a file raises access events, which would
/// wake the loop forever).
fn wake(rx: &Events, wait: Duration, config: &Config) -> (bool, bool) {
    let (mut config_changed, mut data_changed) = (false, false);
    let first = rx.recv_timeout(wait).ok();
    for ev in first.into_iter().chain(rx.try_iter()).flatten() {
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            continue;
        }
        config_changed |= ev.paths.iter().any(|p| config.concerns(p));
        data_changed |= ev.paths.iter().any(|p| !config.concerns(p));
    }
    (config_changed, data_changed)
}

fn live_view(totals: &Totals, live: &Live, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let mut v = String::from("\x1b[2J\x1b[Htokenhound watch\n");
    v += &format!(
        "{} spans read ({:.0}/s), {} traces open\n\n",
        totals.spans,
        totals.spans as f64 / secs,
        live.asm.open_traces()
    );
    let mut rules: Vec<_> = totals.per_rule.iter().collect();
    rules.sort();
    for (r, (n, w)) in rules {
        v += &format!("{r:<30} {n:>6} findings {w:>12} tokens\n");
    }
    v += "\nrecent:\n";
    for r in totals.recent.iter().rev() {
        v += &format!("  {r}\n");
    }
    v
}

/// With `ulimit -f`, writing past the limit raises SIGXFSZ, which kills the
/// process by default; ignored, the write fails with an error we report.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN has no handler to race with.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
