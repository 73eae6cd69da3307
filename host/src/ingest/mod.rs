//! Readers: turn exports (files, folders, stdin; plain, gzip or zstd) into
//! canonical spans. The format is recognised from the content; a reader knows
//! nothing of detectors. A bad record becomes a located [`Problem`]; a run never
//! dies on one bad record and never drops good ones.

mod ahead;
pub mod attrs;
pub mod dialect;
mod document;
mod lines;
pub mod mapping;
pub mod otlp;
pub mod parts;
pub mod proto;
pub mod records;
mod words;

use records::Shape;
use std::collections::BTreeMap;

use crate::model::{FileName, Keep, Origin, Span};
use rayon::prelude::*;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A record that could not be used, and where it was.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Problem {
    pub file: Arc<str>,
    pub line: u64,
    pub reason: String,
}

impl Problem {
    pub fn at(origin: &Origin, reason: String) -> Self {
        Problem {
            file: origin.file.name(),
            line: origin.line,
            reason,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.reason),
            n => write!(f, "{}:{n}: {}", self.file, self.reason),
        }
    }
}

/// An input that cannot be read at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Broken { path: String, why: String },
    #[error("{path}: not a span export tokenhound reads ({why}). Expected one of: OTLP JSON (lines of {{\"resourceSpans\": …}} from the Collector's file exporter, or one document), OTLP protobuf (length-prefixed, `format: proto`), a Langfuse trace download, API response or blob export (JSON, JSONL, CSV), Arize Phoenix spans, Logfire query results (JSON, CSV), OpenTelemetry Python console output, or a Helicone export; plain, .gz or .zst. Use --input-format to say which.")]
    UnknownFormat { path: String, why: String },
}

impl InputError {
    pub fn path(&self) -> &str {
        match self {
            InputError::Io { path, .. }
            | InputError::Broken { path, .. }
            | InputError::UnknownFormat { path, .. } => path,
        }
    }

    /// The error without its path, for a problem that names the file apart.
    pub fn reason(&self) -> String {
        match self {
            InputError::Io { source, .. } => source.to_string(),
            InputError::Broken { why, .. } => why.clone(),
            InputError::UnknownFormat { path, .. } => {
                let full = self.to_string();
                let rest = full.strip_prefix(path.as_str()).unwrap_or(&full);
                format!("skipped: {}", rest.trim_start_matches(": "))
            }
        }
    }
}

/// What reading saw, for the report.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReadStats {
    pub files: u64,
    pub records: u64,
    pub spans: u64,
    pub problems: u64,
    /// The first problems, located; `problems` counts them all.
    pub first_problems: Vec<Problem>,
    /// format → records read in it
    pub formats: BTreeMap<String, u64>,
    /// attribute dialect → spans that use it
    pub dialects: BTreeMap<String, u64>,
    /// attributes that look like token usage but were not understood → spans
    pub unknown_usage: BTreeMap<String, u64>,
    /// files (or the rest of a file) that could not be read; each is a problem too
    pub skipped_files: u64,
    /// spans seen again (same trace id and span id) and counted once
    pub repeated_spans: u64,
    /// file → spans in it that repeat a span read before
    pub repeated_in: BTreeMap<String, u64>,
}

const KEEP_PROBLEMS: usize = 50;
const BLOCK: usize = 2 << 20;

/// Records parsed together on the thread pool, at least: a block of fewer
/// than twice this many (long records: the month's lines are 29 KB, 72 to a
/// block) is parsed on the reading thread, but for its last
/// [`POOL_SHARE`]th, and a block of more (short records) in pieces of this
/// many on the pool.
const PIECE: usize = 64;

/// The share of a block of long records parsed on the thread pool (one in
/// this many bytes), while the reading thread parses the rest. That thread
/// sets a scan's pace (assembly and the detectors left a third of the other
/// core idle): with the last eighth of each block on the pool, the month took
/// 0.945 of the time (8 pairs ABBA, faster in 7, the same CPU); a fifth to a
/// twelfth measured the same. Slower, measured: the whole block on the pool
/// (the bytes just read are in the reading core's cache: 11% more CPU), an
/// eighth of a block of short records (one span a line: 1.05; they stay on
/// the pool in pieces), the eighth on a thread started per block (1.06), and
/// a second thread taking records from the end as it could (1.02: it took
/// the time assembly needed).
const POOL_SHARE: usize = 8;

/// Spans, their problems and what they showed of their dialects: of one
/// record, or of records read in a row (see [`Run`]).
pub(crate) type Parsed = (Vec<Box<Span>>, Vec<Problem>, Seen);

/// Records parsed one after another on one thread: what they share
/// ([`otlp::Recent`]), their spans, problems and dialects seen together, and
/// how many. A result per record (three vectors) cost an allocation or more
/// per line, and a move of each, where one span a line is common.
#[derive(Default)]
struct Run {
    recent: otlp::Recent,
    parsed: Parsed,
    records: u64,
}

/// Where a block's last lines begin that make up at most a `one_in`th of
/// its bytes (none of a block of one line: a whole document).
fn pool_cut(lines: &[(u64, &[u8])], one_in: usize) -> usize {
    let share = lines.iter().map(|(_, l)| l.len()).sum::<usize>() / one_in;
    let mut taken = 0;
    let mut cut = lines.len();
    while cut > 1 && taken + lines[cut - 1].1.len() <= share {
        cut -= 1;
        taken += lines[cut].1.len();
    }
    cut
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Default for the longest record (line, protobuf message) read: `[settings] max_record_mb`.
pub const MAX_RECORD: usize = 64 << 20;
/// Default for the largest whole-file JSON document: `[settings] max_document_mb`.
pub const MAX_DOCUMENT: usize = 1 << 30;

/// What the dialect reader saw in a record, merged into [`ReadStats`].
#[derive(Default)]
pub struct Seen {
    /// spans that use each of [`dialect::DIALECTS`], counted span by span: a
    /// record's count once went to all its spans, so the same spans batched
    /// fifty to a line showed seven times as many GenAI spans as one a line
    dialects: [u64; dialect::DIALECTS.len()],
    unknown_usage: Vec<String>,
}

/// Where a [`Seen`] stands: spans of each dialect, unknown names noted.
type SeenMark = ([u64; dialect::DIALECTS.len()], usize);

/// What one attribute name tells [`Seen`]: the dialects it belongs to, and
/// whether it looks like token usage that no reader (and no mapping) reads.
#[derive(Clone, Copy)]
struct KeyNote {
    dialects: u16,
    unknown_usage: bool,
}

impl KeyNote {
    /// What the name tells whatever the mappings are.
    fn unmapped(key: &str) -> Self {
        KeyNote {
            dialects: dialect::dialect_of_key(key),
            unknown_usage: dialect::looks_like_usage(key) && !dialect::understood_usage_key(key),
        }
    }

    /// Usage a mapping reads is not unknown.
    fn mapped(self, key: &str, maps: &mapping::Mappings) -> Self {
        KeyNote {
            unknown_usage: self.unknown_usage && !maps.reads(key),
            ..self
        }
    }
}

/// Names judged at most before the cache below starts again: an export that
/// makes a name per span (an id in it) costs a bounded cache, not a growing one.
const NOTES_AT_MOST: usize = 1 << 14;

thread_local! {
    /// What each attribute name this thread has met tells apart from the
    /// mappings ([`KeyNote::unmapped`]). An export repeats a few hundred
    /// names in every record; judged afresh for each record they were
    /// 35 thousand judgements in a tenth of a month, 0.7% of a scan.
    static NOTES: std::cell::RefCell<rustc_hash::FxHashMap<Box<str>, KeyNote>> =
        Default::default();
}

impl Seen {
    /// Where it stands, to go back to with [`Seen::reset`].
    pub(super) fn mark(&self) -> SeenMark {
        (self.dialects, self.unknown_usage.len())
    }

    /// Back to a [`Seen::mark`]: what was seen since is forgotten.
    pub(super) fn reset(&mut self, (dialects, unknown): SeenMark) {
        self.dialects = dialects;
        self.unknown_usage.truncate(unknown);
    }

    /// The attribute names of one span, each judged once per thread; the
    /// span counts once for each dialect any of its names belongs to.
    fn spans(&mut self, attrs: &[attrs::KeyValue], maps: &mapping::Mappings) {
        let mut dialects = 0u16;
        NOTES.with_borrow_mut(|notes| {
            for kv in attrs {
                let note = match notes.get(&*kv.key) {
                    Some(n) => *n,
                    None => {
                        if notes.len() >= NOTES_AT_MOST {
                            notes.clear();
                        }
                        let n = KeyNote::unmapped(&kv.key);
                        notes.insert(Box::from(&*kv.key), n);
                        n
                    }
                };
                dialects |= note.dialects;
                if note.mapped(&kv.key, maps).unknown_usage {
                    self.unknown_usage.push(kv.key.to_string());
                }
            }
        });
        while dialects != 0 {
            self.dialects[dialects.trailing_zeros() as usize] += 1;
            dialects &= dialects - 1;
        }
    }
}

impl ReadStats {
    fn seen(&mut self, seen: Seen) {
        for (d, &n) in dialect::DIALECTS.iter().zip(&seen.dialects) {
            if n > 0 {
                *self.dialects.entry(d.to_string()).or_default() += n;
            }
        }
        for k in seen.unknown_usage {
            *self.unknown_usage.entry(k).or_default() += 1;
        }
    }

    /// Count spans an assembler dropped as repeats, by file.
    pub fn repeats(&mut self, by_file: BTreeMap<Arc<str>, u64>) {
        for (f, n) in by_file {
            self.repeated_spans += n;
            *self.repeated_in.entry(f.to_string()).or_default() += n;
        }
    }

    fn problem(&mut self, p: Problem) {
        self.problems += 1;
        if self.first_problems.len() < KEEP_PROBLEMS {
            self.first_problems.push(p);
        }
    }

    /// Add what another reader counted (a file read beside this one).
    fn merge(&mut self, o: ReadStats) {
        self.files += o.files;
        self.records += o.records;
        self.spans += o.spans;
        self.skipped_files += o.skipped_files;
        self.repeated_spans += o.repeated_spans;
        self.problems += o.problems - o.first_problems.len() as u64;
        for p in o.first_problems {
            self.problem(p);
        }
        let add = |to: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>| {
            for (k, v) in from {
                *to.entry(k).or_default() += v;
            }
        };
        add(&mut self.formats, o.formats);
        add(&mut self.dialects, o.dialects);
        add(&mut self.unknown_usage, o.unknown_usage);
        add(&mut self.repeated_in, o.repeated_in);
    }
}

/// Spans handed on together, in input order: the spans of each record (or
/// file) stay in the vector they were parsed into. Joining them into one
/// vector copied every span once more (a span is some 500 bytes; 2% of a scan).
///
/// Each span is boxed once, as it is read: from here on it moves as a
/// pointer. Moved by value into its trace, and again each time a trace's
/// vector grew, spans were copied four or five times (memory copies were 8–10%
/// of a scan's profile).
pub type Block = Vec<Vec<Box<Span>>>;

/// A record's spans, each boxed as it is made (see [`Block`]): made on the
/// stack, moved into a vector of spans and then each into a box, a span was
/// copied twice, and those copies were a tenth of the reading thread's time.
#[allow(clippy::vec_box, reason = "a span moves as a pointer from here on")]
pub type Spans = Vec<Box<Span>>;

/// A file read beside others: what it counted, its spans, how it ended.
struct ReadAside {
    stats: ReadStats,
    blocks: Vec<Block>,
    done: Result<(), InputError>,
}

/// Small files read at once, at most (their spans are held until handed on).
const SMALL_FILES_AT_ONCE: usize = 64;

/// Whether `line` is one JSON object or array whose brackets (outside
/// strings) balance and close at its end, with nothing but white space after.
fn closes_at_end(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    if !matches!(text.first(), Some(b'{' | b'[')) {
        return false;
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                // To the string's closing quote, past escaped characters.
                loop {
                    match memchr::memchr2(b'"', b'\\', &text[i + 1..]) {
                        None => return false,
                        Some(j) if text[i + 1 + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i == text.len() - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// The read buffer of a stream (a file's is its size, up to this). No larger
/// than the least read of [`lines::LineBlocks`]: std's `BufReader` hands a read
/// at least its size straight to the source, so lines are read (or
/// decompressed) into their block directly. A 1 MiB buffer copied every byte
/// of a large export once more on its way.
const IO_BUFFER: usize = lines::MIN_READ;

/// Spans of small files handed on together, about what a block of a large
/// file holds.
const JOINED_SPANS: usize = 4096;

/// The size of a regular file (none for stdin, whose size is unknown, and for
/// FIFOs).
fn file_size(p: &Path) -> Option<u64> {
    if p.as_os_str() == "-" {
        return None;
    }
    std::fs::metadata(p)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// A file under 1 MiB.
fn is_small(size: Option<u64>) -> bool {
    size.is_some_and(|n| n < 1 << 20)
}

/// The files behind the arguments: files as given, folders walked in name order
/// (hidden entries skipped), `-` for stdin. What cannot be read as a file (a
/// missing path, a dangling link, a link loop, a FIFO or device inside a folder)
/// is a located problem, never the end of the run.
pub fn expand(paths: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut visited = std::collections::HashSet::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(p.clone());
            continue;
        }
        match std::fs::metadata(p) {
            Err(e) => problems.push(file_problem(p, format!("cannot read: {e}"))),
            Ok(m) if m.is_dir() => walk(p, &mut out, &mut visited, problems),
            // A FIFO named on the command line is a pipe the user set up
            // (`<(zcat …)`); it is opened without waiting for a writer.
            Ok(m) if m.is_file() || is_fifo(&m) => out.push(p.clone()),
            Ok(m) => problems.push(file_problem(p, not_regular(&m))),
        }
    }
    let mut given = std::collections::HashSet::new();
    out.retain(|p| p.as_os_str() == "-" || given.insert(file_identity(p)));
    out
}

/// What makes two paths one file: its device and inode where there are such
/// (one `stat`; resolving the path cost a `readlink` per part, per file of a
/// folder), else the resolved path.
#[derive(Hash, PartialEq, Eq)]
enum FileIdentity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn file_identity(p: &Path) -> FileIdentity {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(p) {
        use std::os::unix::fs::MetadataExt;
        return FileIdentity::Inode(m.dev(), m.ino());
    }
    FileIdentity::Path(std::fs::canonicalize(p).unwrap_or(p.to_path_buf()))
}

fn file_problem(path: &Path, reason: String) -> Problem {
    Problem {
        file: path.display().to_string().into(),
        line: 0,
        reason,
    }
}

#[cfg(unix)]
fn is_fifo(m: &std::fs::Metadata) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type())
}
#[cfg(not(unix))]
fn is_fifo(_: &std::fs::Metadata) -> bool {
    false
}

fn not_regular(m: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        let what = if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        format!("skipped: {what}, not a regular file")
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        "skipped: not a regular file".into()
    }
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut std::collections::HashSet<PathBuf>,
    problems: &mut Vec<Problem>,
) {
    // A folder reached twice (a link loop, or a link to a folder already walked)
    // is walked once.
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !visited.insert(real) {
        problems.push(file_problem(
            dir,
            "skipped: a link to a folder already read (a loop?)".into(),
        ));
        return;
    }
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) => {
            problems.push(file_problem(dir, format!("cannot read the folder: {e}")));
            return;
        }
    };
    entries.sort();
    for p in entries {
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        match std::fs::metadata(&p) {
            Err(e) => problems.push(file_problem(
                &p,
                format!("skipped: {e} (a dangling or looping link?)"),
            )),
            Ok(m) if m.is_dir() => walk(&p, out, visited, problems),
            Ok(m) if m.is_file() => out.push(p),
            Ok(m) => problems.push(file_problem(&p, not_regular(&m))),
        }
    }
}

/// Counts the raw bytes read, for progress.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Open a file; a FIFO without a writer reads as empty instead of waiting forever.
fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        // Blocking again from here: a pipe with a writer is read as it comes.
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            let fd = f.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
        Ok(f)
    }
    #[cfg(not(unix))]
    std::fs::File::open(path)
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Open a file, or stdin for `-`.
fn open(path: &Path) -> Result<Box<dyn Read + Send>, InputError> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let f = open_file(path).map_err(|source| InputError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Box::new(f))
}

/// Buffer a byte source, decompressing gzip or zstd by their magic bytes.
///
/// A large compressed stream (`ahead`) is decoded on a thread of its own
/// ([`ahead::ReadAhead`]); a small one on the caller's, where a thread per
/// file would cost a folder of small files more than it saves.
fn decompress(
    name: &str,
    raw: Box<dyn Read + Send>,
    capacity: usize,
    ahead: bool,
    count: Arc<AtomicU64>,
) -> Result<Box<dyn BufRead + Send>, InputError> {
    let io = |source| InputError::Io {
        path: name.to_string(),
        source,
    };
    let mut r = BufReader::with_capacity(capacity, Counting { inner: raw, count });
    let head = r.fill_buf().map_err(io)?;
    let decoded: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Box::new(ruzstd::decoding::StreamingDecoder::new(r).map_err(|e| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("zstd: {e}"),
            ))
        })?)
    } else {
        // Plain bytes are read by the parsing thread itself: reading them
        // ahead on another measured no faster (the copy moves, not goes).
        return Ok(Box::new(r));
    };
    if !ahead {
        return Ok(Box::new(BufReader::with_capacity(IO_BUFFER, decoded)));
    }
    let read = ahead::ReadAhead::spawn(decoded).map_err(io)?;
    Ok(Box::new(BufReader::with_capacity(IO_BUFFER, read)))
}

/// Compressed files at least this large are decoded on a thread of their own.
const READ_AHEAD_FROM: u64 = 8 << 20;

/// A format named on the command line (`--input-format`), overriding detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    OtlpJson,
    OtlpProto,
    Langfuse,
    Phoenix,
    Logfire,
    OtelConsole,
    Helicone,
}

impl InputFormat {
    fn shape(self) -> Option<Shape> {
        match self {
            InputFormat::Langfuse => Some(Shape::Langfuse),
            InputFormat::Phoenix => Some(Shape::Phoenix),
            InputFormat::Logfire => Some(Shape::Logfire),
            InputFormat::OtelConsole => Some(Shape::OtelConsole),
            InputFormat::Helicone => Some(Shape::Helicone),
            _ => None,
        }
    }
}

/// How one line of a line-oriented file is read.
#[derive(Clone, Copy)]
enum LineKind {
    Otlp,
    Record(Option<Shape>),
}

/// Reads inputs and hands good spans to a sink, a block at a time, in file order.
pub struct Reader {
    pub keep: Keep,
    pub maps: Arc<mapping::Mappings>,
    pub format: Option<InputFormat>,
    pub stats: ReadStats,
    /// raw bytes read so far, for a progress bar
    pub bytes: Arc<AtomicU64>,
    /// the longest line or message read; longer ones are problems, read past
    pub max_record: usize,
    /// the largest whole-file document read
    pub max_document: usize,
    /// one in this many bytes of a block of long records is parsed on the
    /// pool ([`POOL_SHARE`]; 2 when nothing else runs beside the reading)
    pub pool_share: usize,
    /// every span made as an ordinary one (ids, times, status; its attributes
    /// not read, so no dialect counted), for a reading that wants times only,
    /// in every format
    pub times_only: bool,
}

fn first_json_char(head: &[u8]) -> Option<u8> {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    head.iter().copied().find(|b| !b.is_ascii_whitespace())
}

impl Reader {
    pub fn new(keep: Keep) -> Self {
        Reader {
            keep,
            maps: Arc::default(),
            format: None,
            stats: ReadStats::default(),
            bytes: Arc::default(),
            max_record: MAX_RECORD,
            max_document: MAX_DOCUMENT,
            pool_share: POOL_SHARE,
            times_only: false,
        }
    }

    /// The files behind the arguments ([`expand`]); what cannot be read as a
    /// file is a skipped file among the reader's problems.
    pub fn expand(&mut self, paths: &[PathBuf]) -> Vec<PathBuf> {
        let mut problems = Vec::new();
        let files = expand(paths, &mut problems);
        for p in problems {
            self.stats.skipped_files += 1;
            self.stats.problem(p);
        }
        files
    }

    /// [`Reader::read_all`] on a thread of its own, a block ahead of `sink`,
    /// which runs on the calling thread: reading and parsing on one core, what
    /// the caller does with the spans (assembly, the detectors, counting) on
    /// the other. Gives the reader back when every file is read.
    pub fn read_all_ahead(mut self, files: &[PathBuf], sink: &mut dyn FnMut(Block)) -> Reader {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(1);
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                self.read_all(files, &mut |spans| {
                    let _ = tx.send(spans);
                });
                self
            });
            rx.into_iter().for_each(sink);
            worker.join().expect("reader thread")
        })
    }

    /// Read every file; a file that cannot be read (or whose end cannot) costs
    /// only itself: it is a problem naming the file, and the rest is read.
    ///
    /// A file is parsed in blocks split across the cores, but a small file is
    /// one block: runs of small files are read several at once, each by a
    /// reader of its own, and handed on in file order.
    pub fn read_all(&mut self, files: &[PathBuf], sink: &mut dyn FnMut(Block)) {
        let sizes: Vec<Option<u64>> = files.iter().map(|f| file_size(f)).collect();
        let mut i = 0;
        while i < files.len() {
            let run = sizes[i..]
                .iter()
                .take(SMALL_FILES_AT_ONCE)
                .take_while(|&&n| is_small(n))
                .count();
            if run < 2 {
                let r = self.read_sized_file(&files[i], sizes[i], sink);
                self.after(r);
                i += 1;
                continue;
            }
            let read: Vec<ReadAside> = (i..i + run)
                .into_par_iter()
                .map(|k| {
                    let mut r = self.fork();
                    let mut blocks = Vec::new();
                    let done = r.read_sized_file(&files[k], sizes[k], &mut |s| blocks.push(s));
                    ReadAside {
                        stats: r.stats,
                        blocks,
                        done,
                    }
                })
                .collect();
            // Their blocks are handed on joined: a small file's block is a few
            // hundred spans, and each block handed on costs a round of the
            // pipeline (closing quiet traces, a batch through every detector).
            let (mut joined, mut spans): (Block, usize) = (Vec::new(), 0);
            for r in read {
                self.stats.merge(r.stats);
                for block in r.blocks {
                    spans += block.iter().map(Vec::len).sum::<usize>();
                    joined.extend(block);
                    if spans >= JOINED_SPANS {
                        sink(std::mem::take(&mut joined));
                        spans = 0;
                    }
                }
                self.after(r.done);
            }
            if !joined.is_empty() {
                sink(joined);
            }
            i += run;
        }
    }

    /// A reader with the same settings and counters of its own.
    fn fork(&self) -> Reader {
        Reader {
            keep: self.keep,
            maps: self.maps.clone(),
            format: self.format,
            stats: ReadStats::default(),
            bytes: self.bytes.clone(),
            max_record: self.max_record,
            max_document: self.max_document,
            pool_share: self.pool_share,
            times_only: self.times_only,
        }
    }

    /// A file that failed is a skipped file and a problem naming it.
    fn after(&mut self, done: Result<(), InputError>) {
        let Err(e) = done else {
            return;
        };
        if matches!(e, InputError::UnknownFormat { .. }) {
            self.stats.files -= 1; // counted when opened, but nothing was read
        }
        self.stats.skipped_files += 1;
        self.stats.problem(Problem {
            file: e.path().into(),
            line: 0,
            reason: e.reason(),
        });
    }

    fn count_format(&mut self, name: &str, records: u64) {
        *self.stats.formats.entry(name.to_string()).or_default() += records;
    }

    pub fn read_file(
        &mut self,
        path: &Path,
        sink: &mut dyn FnMut(Block),
    ) -> Result<(), InputError> {
        self.read_sized_file(path, file_size(path), sink)
    }

    /// [`Reader::read_file`] of a file whose size is known (`None`: unknown).
    fn read_sized_file(
        &mut self,
        path: &Path,
        size: Option<u64>,
        sink: &mut dyn FnMut(Block),
    ) -> Result<(), InputError> {
        let name: Arc<str> = if path.as_os_str() == "-" {
            "<stdin>".into()
        } else {
            path.display().to_string().into()
        };
        let raw = open(path)?;
        // A small file gets a read buffer its size: the buffer is zeroed
        // before its first read (std's BufReader over a plain `Read`), and a
        // folder of small files zeroed a whole MiB per file.
        let capacity = size.map_or(IO_BUFFER, |n| (n as usize + 1).clamp(16 << 10, IO_BUFFER));
        // A file of unknown size is a pipe or a device: it may be long.
        let ahead = size.is_none_or(|n| n >= READ_AHEAD_FROM);
        self.read_sized(&name, raw, capacity, ahead, sink)
    }

    /// Read one export from any byte source (a file, stdin, bytes in memory for
    /// the fuzz targets), named `name` in problems.
    pub fn read_from(
        &mut self,
        name: &Arc<str>,
        raw: Box<dyn Read + Send>,
        sink: &mut dyn FnMut(Block),
    ) -> Result<(), InputError> {
        self.read_sized(name, raw, IO_BUFFER, false, sink)
    }

    /// [`Reader::read_from`] with a read buffer of `capacity` bytes.
    fn read_sized(
        &mut self,
        name: &Arc<str>,
        raw: Box<dyn Read + Send>,
        capacity: usize,
        ahead: bool,
        sink: &mut dyn FnMut(Block),
    ) -> Result<(), InputError> {
        let name = name.clone();
        let io = |source| InputError::Io {
            path: name.to_string(),
            source,
        };
        let unknown = |why: &str| InputError::UnknownFormat {
            path: name.to_string(),
            why: why.to_string(),
        };
        let mut r = decompress(&name, raw, capacity, ahead, self.bytes.clone())?;
        self.stats.files += 1;
        // What detection looks at: the first line, or all the reader has.
        let mut head = r.fill_buf().map_err(io)?;
        if let Some(nl) = memchr::memchr(b'\n', head) {
            head = &head[..(nl + 1).max(head.len().min(64 << 10))];
        }
        let mut head = head.to_vec();
        if !head.is_empty() && !head.contains(&b'\n') {
            // A pipe hands over what it has (64 KiB): read on to the first
            // line's end, or a partial first line makes a stream of lines look
            // like one document, read whole into memory.
            let mut first = Vec::new();
            (&mut r)
                .take(self.max_record as u64)
                .read_until(b'\n', &mut first)
                .map_err(io)?;
            head.clone_from(&first);
            let rest = std::io::Cursor::new(first).chain(r);
            r = Box::new(std::io::BufReader::with_capacity(IO_BUFFER, rest));
        }
        if head.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let forced = self.format;
        if proto::looks_like(&head) && matches!(forced, None | Some(InputFormat::OtlpProto)) {
            return self.read_proto_stream(&name, r, sink);
        }
        if forced == Some(InputFormat::OtlpProto) {
            // One bare message, not length-prefixed.
            let data = self.read_whole(&name, &mut r)?;
            return self.read_proto(&name, &data, sink);
        }
        let first = first_json_char(&head);
        if !matches!(first, Some(b'{') | Some(b'[')) {
            // A CSV header is a line of text: binary (or a stream of zeros) is
            // not read as one endless header.
            let text_head = head.len() < 4096 || head[..4096].contains(&b'\n');
            if text_head
                && !head.contains(&0)
                && (forced.is_none() || forced.and_then(InputFormat::shape).is_some())
            {
                if let Some(done) =
                    self.read_csv(&name, &mut r, sink, forced.and_then(InputFormat::shape))?
                {
                    return Ok(done);
                }
            }
            return Err(unknown(
                "neither JSON nor protobuf nor a CSV with a known header",
            ));
        }
        let otlp_json =
            forced == Some(InputFormat::OtlpJson) || (forced.is_none() && otlp::looks_like(&head));
        let shape_hint = forced.and_then(InputFormat::shape);
        // One record per line (the Collector's file exporter, JSONL exports), or one document?
        let first_line = &head[..memchr::memchr(b'\n', &head).unwrap_or(head.len())];
        if otlp_json {
            // OTLP lines need only know the first line is one whole JSON value:
            // its brackets close at its end (a later syntax error is that
            // line's located problem, as for any other line). Parsing it here
            // cost a small file of two lines half its reading time again.
            if closes_at_end(first_line) {
                return self.read_lines(r, &name, LineKind::Otlp, sink);
            }
        } else if let Ok(v) = serde_json::from_slice::<serde_json::Value>(first_line) {
            let kind = match shape_hint.or_else(|| Shape::of(&v)) {
                Some(s) => LineKind::Record(Some(s)),
                // One object on the first line, but a document (e.g. {"spans": […]}).
                None => return self.read_document(&name, r, sink, shape_hint),
            };
            return self.read_lines(r, &name, kind, sink);
        }
        if otlp_json {
            let text = self.read_whole(&name, &mut r)?;
            if serde_json::from_slice::<serde::de::IgnoredAny>(&text).is_ok() {
                self.parse_block(&name, LineKind::Otlp, vec![(1, &text[..])], sink);
                return Ok(());
            }
            // Lines with a broken first one: each line still counts on its own.
            return self.read_lines(
                Box::new(std::io::Cursor::new(text)),
                &name,
                LineKind::Otlp,
                sink,
            );
        }
        self.read_document(&name, r, sink, shape_hint)
    }

    fn read_lines(
        &mut self,
        mut r: Box<dyn BufRead + Send>,
        name: &Arc<str>,
        kind: LineKind,
        sink: &mut dyn FnMut(Block),
    ) -> Result<(), InputError> {
        let mut lb = lines::LineBlocks::new(self.max_record);
        loop {
            let read = lb.fill(&mut r, BLOCK);
            for (line, len) in std::mem::take(&mut lb.too_long) {
                self.stats.problem(Problem {
                    file: name.clone(),
                    line,
                    reason: format!(
                        "record skipped: {len} bytes, longer than the limit of {} MiB ([settings] max_record_mb)",
                        self.max_record >> 20
                    ),
                });
            }
            let more = *read.as_ref().unwrap_or(&false);
            while let Some(n) = lb.ready(BLOCK, !more) {
                self.parse_block(name, kind, lb.block(n), sink);
                lb.clear_block(n);
            }
            if let Err(e) = read {
                // A truncated or corrupt stream: the lines before were read.
                return Err(InputError::Broken {
                    path: name.to_string(),
                    why: format!(
                        "the stream breaks off after line {} (read up to there): {e}",
                        lb.line_no
                    ),
                });
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Parse a block's records, most of them on this thread and the last
    /// [`Reader::pool_share`]th of its bytes on the pool at the same time; hand spans
    /// on in input order.
    fn parse_block(
        &mut self,
        name: &Arc<str>,
        kind: LineKind,
        lines: Vec<(u64, &[u8])>,
        sink: &mut dyn FnMut(Block),
    ) {
        let (keep, plain) = (self.keep, self.times_only);
        let maps = &*self.maps;
        let file = FileName::of(name);
        // One record after another into `run` (see [`Run`]).
        let parse = |run: &mut Run, &(line, text): &(u64, &[u8])| {
            let origin = Origin { file, line };
            let from = run.parsed.0.len();
            match kind {
                LineKind::Otlp => otlp::parse_traces_data(
                    text,
                    &origin,
                    maps,
                    plain,
                    &mut run.recent,
                    &mut run.parsed,
                ),
                LineKind::Record(shape) => {
                    let (spans, problems, seen) = &mut run.parsed;
                    let t = text_of(text, &origin, problems);
                    match serde_json::from_str::<serde_json::Value>(&t) {
                        Err(e) => {
                            problems.push(Problem::at(&origin, format!("not a JSON record: {e}")))
                        }
                        Ok(v) => {
                            let read = RecordRead {
                                origin: &origin,
                                maps,
                                times_only: plain,
                            };
                            one_record(&v, shape, None, &read, spans, problems, seen)
                        }
                    }
                }
            }
            run.parsed.0[from..].iter_mut().for_each(|s| keep.apply(s));
            run.records += 1;
        };
        let run_of = |lines: &[(u64, &[u8])]| {
            let mut run = Run::default();
            (lines.iter().filter(|(_, l)| !is_blank(l))).for_each(|l| parse(&mut run, l));
            (run.records, run.parsed)
        };
        let results: Vec<(u64, Parsed)> = if lines.len() >= 2 * PIECE {
            // Short records, many to a block: in pieces on every core.
            (lines.par_iter().with_min_len(PIECE))
                .filter(|(_, l)| !is_blank(l))
                // boxed: rayon's fold moves its accumulator at every record
                .fold(Box::<Run>::default, |mut run, l| {
                    parse(&mut run, l);
                    run
                })
                .map(|run| (run.records, run.parsed))
                .collect()
        } else {
            let (head, tail) = lines.split_at(pool_cut(&lines, self.pool_share));
            let (mut results, mut on_pool) = (Vec::with_capacity(2), None);
            rayon::in_place_scope(|s| {
                if !tail.is_empty() {
                    s.spawn(|_| on_pool = Some(run_of(tail)));
                }
                results.push(run_of(head));
            });
            results.extend(on_pool);
            results
        };
        let format = match kind {
            LineKind::Otlp => "otlp-json",
            LineKind::Record(s) => s.map_or("json-records", Shape::name),
        };
        self.deliver_records(format, results, sink);
    }

    /// Count what a block's records held (in `format`; each result is so
    /// many records' spans, problems and dialects seen) and hand their spans on.
    fn deliver_records(
        &mut self,
        format: &str,
        results: Vec<(u64, Parsed)>,
        sink: &mut dyn FnMut(Block),
    ) {
        let records = results.iter().map(|r| r.0).sum();
        self.count_format(format, records);
        self.stats.records += records;
        let mut all = Vec::with_capacity(results.len());
        for (_, (spans, problems, seen)) in results {
            self.stats.spans += spans.len() as u64;
            self.stats.seen(seen);
            all.push(spans);
            problems.into_iter().for_each(|p| self.stats.problem(p));
        }
        sink(all);
    }

    /// A whole file, up to `max_document` bytes.
    fn read_whole(&self, name: &Arc<str>, r: &mut dyn BufRead) -> Result<Vec<u8>, InputError> {
        let mut data = Vec::new();
        let limit = self.max_document as u64;
        r.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| InputError::Broken {
                path: name.to_string(),
                why: format!(
                    "the stream breaks off after {} bytes (nothing of it read): {e}",
                    data.len()
                ),
            })?;
        if data.len() as u64 > limit {
            return Err(InputError::Broken {
                path: name.to_string(),
                why: format!(
                    "skipped: a single document larger than the limit of {} MiB ([settings] max_document_mb)",
                    limit >> 20
                ),
            });
        }
        Ok(data)
    }

    /// Length-prefixed protobuf messages, read a block at a time.
    fn read_proto_stream(
        &mut self,
        name: &Arc<str>,
        mut r: Box<dyn BufRead + Send>,
        sink: &mut dyn FnMut(Block),
    ) -> Result<(), InputError> {
        let broken = |at: u64, why: String| InputError::Broken {
            path: name.to_string(),
            why: format!("protobuf stream: {why} at byte {at} (the messages before were read)"),
        };
        let mut block: Vec<u8> = Vec::new();
        let mut frames: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
        let mut at = 0u64;
        loop {
            let mut len = [0u8; 4];
            let got = read_full(&mut r, &mut len).map_err(|e| broken(at, e.to_string()));
            let end = match got {
                Ok(0) => None,
                Ok(4) => Some(Ok(())),
                Ok(n) => Some(Err(broken(at, format!("{n} stray bytes at the end")))),
                Err(e) => Some(Err(e)),
            };
            let mut failure = None;
            let at_end = end.is_none();
            if let Some(Ok(())) = end {
                let n = u32::from_be_bytes(len) as usize;
                if n > self.max_record {
                    self.stats.problem(Problem {
                        file: name.clone(),
                        line: at,
                        reason: format!("message skipped: {n} bytes, longer than the limit of {} MiB ([settings] max_record_mb)", self.max_record >> 20),
                    });
                    match std::io::copy(&mut (&mut r).take(n as u64), &mut std::io::sink()) {
                        Ok(k) if k == n as u64 => {}
                        _ => {
                            failure = Some(broken(
                                at,
                                format!("message cut short ({n} bytes announced)"),
                            ))
                        }
                    }
                } else {
                    let s = block.len();
                    block.resize(s + n, 0);
                    match read_full(&mut r, &mut block[s..]) {
                        Ok(k) if k == n => frames.push((at, s..s + n)),
                        Ok(_) | Err(_) => {
                            block.truncate(s);
                            failure = Some(broken(
                                at,
                                format!("message cut short ({n} bytes announced)"),
                            ));
                        }
                    }
                }
                at += 4 + n as u64;
            } else if let Some(Err(e)) = end {
                failure = Some(e);
            }
            let last = at_end || failure.is_some();
            if (last || block.len() >= BLOCK) && !frames.is_empty() {
                let msgs: Vec<(u64, &[u8])> = frames
                    .iter()
                    .map(|(o, rg)| (*o, &block[rg.clone()]))
                    .collect();
                self.parse_proto(name, &msgs, sink);
                block.clear();
                frames.clear();
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if last {
                return Ok(());
            }
        }
    }

    fn read_proto(
        &mut self,
        name: &Arc<str>,
        data: &[u8],
        sink: &mut dyn FnMut(Block),
    ) -> Result<(), InputError> {
        let (mut frames, trailing) = proto::frames(data);
        if frames.is_empty() {
            // One bare message, not length-prefixed.
            frames.push((0, data));
        } else if let Some(t) = trailing {
            self.stats.problem(Problem {
                file: name.clone(),
                line: 0,
                reason: format!("protobuf stream: {t}"),
            });
        }
        self.parse_proto(name, &frames, sink);
        Ok(())
    }

    /// Decode messages in parallel; hand their spans on in order.
    fn parse_proto(
        &mut self,
        name: &Arc<str>,
        frames: &[(u64, &[u8])],
        sink: &mut dyn FnMut(Block),
    ) {
        let (keep, times_only) = (self.keep, self.times_only);
        let maps = &*self.maps;
        let file = FileName::of(name);
        let results: Vec<(u64, Parsed)> = frames
            .par_iter()
            .map(|&(offset, msg)| {
                // Protobuf has no lines: the location is the message's byte offset.
                let origin = Origin { file, line: offset };
                let mut parsed = Parsed::default();
                proto::parse(msg, &origin, maps, times_only, &mut parsed);
                parsed.0.iter_mut().for_each(|s| keep.apply(s));
                (1, parsed)
            })
            .collect();
        self.deliver_records("otlp-proto", results, sink);
    }

    /// A whole JSON document: a Langfuse trace download or API page, an array of
    /// records, a `{"spans": […]}` wrapper, a Logfire table, or JSON objects one
    /// after another (the console exporter).
    fn read_document(
        &mut self,
        name: &Arc<str>,
        mut r: Box<dyn BufRead + Send>,
        sink: &mut dyn FnMut(Block),
        hint: Option<Shape>,
    ) -> Result<(), InputError> {
        let bytes = self.read_whole(name, &mut r)?;
        let mut problems = Vec::new();
        let file = FileName::of(name);
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let origin = Origin {
                    file,
                    line: crate::location::line_of(&bytes, at),
                };
                text_of(&bytes, &origin, &mut problems).into_owned()
            }
        };
        let doc = document::records(name, &text, &mut problems)?;
        let shape = hint.or_else(|| doc.items.iter().find_map(|(_, v)| Shape::of(v)));
        let Some(shape) = shape else {
            return Err(InputError::UnknownFormat {
                path: name.to_string(),
                why: "no record looks like a span, an observation or a request".into(),
            });
        };
        let mut spans = Vec::new();
        let mut seen = Seen::default();
        for (line, v) in &doc.items {
            let origin = Origin { file, line: *line };
            let session = doc.session.as_deref();
            let read = RecordRead {
                origin: &origin,
                maps: &self.maps,
                times_only: self.times_only,
            };
            one_record(
                v,
                Some(shape),
                session,
                &read,
                &mut spans,
                &mut problems,
                &mut seen,
            );
        }
        spans.iter_mut().for_each(|s| self.keep.apply(s));
        let records = doc.items.len() as u64;
        self.deliver(shape.name(), records, spans, problems, seen, sink);
        Ok(())
    }

    /// A CSV export (Langfuse blob storage, Logfire): the header names the shape.
    fn read_csv(
        &mut self,
        name: &Arc<str>,
        r: &mut Box<dyn BufRead + Send>,
        sink: &mut dyn FnMut(Block),
        hint: Option<Shape>,
    ) -> Result<Option<()>, InputError> {
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(r);
        let Ok(header) = rdr.headers().cloned() else {
            return Ok(None);
        };
        let probe = serde_json::Value::Object(
            header
                .iter()
                .map(|h| (h.to_string(), serde_json::Value::Null))
                .collect(),
        );
        let Some(shape) = hint.or_else(|| Shape::of(&probe)) else {
            return Ok(None);
        };
        let keep = self.keep;
        let (mut spans, mut problems, mut seen) = (Vec::new(), Vec::new(), Seen::default());
        let mut rows = 0;
        let file = FileName::of(name);
        for (i, rec) in rdr.byte_records().enumerate() {
            // The reader knows the line a row starts on, multi-line cells and
            // broken rows included (the header is line 1).
            let line = match &rec {
                Ok(r) => r.position(),
                Err(e) => e.position(),
            }
            .map_or(i as u64 + 2, csv::Position::line);
            let origin = Origin { file, line };
            rows += 1;
            match rec {
                Err(e) => problems.push(Problem::at(&origin, format!("CSV row skipped: {e}"))),
                Ok(rec) => {
                    let mut cells = Vec::with_capacity(rec.len());
                    for c in rec.iter() {
                        cells.push(text_of(c, &origin, &mut problems));
                    }
                    let v = serde_json::Value::Object(
                        header
                            .iter()
                            .zip(cells.iter())
                            .map(|(h, c)| (h.to_string(), records::csv_cell(c)))
                            .collect(),
                    );
                    let read = RecordRead {
                        origin: &origin,
                        maps: &self.maps,
                        times_only: self.times_only,
                    };
                    one_record(
                        &v,
                        Some(shape),
                        None,
                        &read,
                        &mut spans,
                        &mut problems,
                        &mut seen,
                    );
                }
            }
        }
        spans.iter_mut().for_each(|s| keep.apply(s));
        self.deliver(
            &format!("{}-csv", shape.name()),
            rows,
            spans,
            problems,
            seen,
            sink,
        );
        Ok(Some(()))
    }

    /// Complete lines of a growing file (watch mode), numbered from `first_line`.
    /// Each line is OTLP JSON or a JSON record of a known shape.
    pub fn read_chunk(
        &mut self,
        name: &Arc<str>,
        first_line: u64,
        data: &[u8],
        sink: &mut dyn FnMut(Block),
    ) {
        let lines: Vec<(u64, &[u8])> = data
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, l)| (first_line + i as u64, l.strip_suffix(b"\r").unwrap_or(l)))
            .filter(|(_, l)| !l.is_empty())
            .collect();
        let Some(&(_, first)) = lines.first() else {
            return;
        };
        let kind = if otlp::looks_like(first) {
            LineKind::Otlp
        } else {
            LineKind::Record(
                serde_json::from_slice::<serde_json::Value>(first)
                    .ok()
                    .as_ref()
                    .and_then(Shape::of),
            )
        };
        self.parse_block(name, kind, lines, sink);
    }

    /// Count what a whole-file reader read and hand its spans on.
    fn deliver(
        &mut self,
        format: &str,
        records: u64,
        spans: Spans,
        problems: Vec<Problem>,
        seen: Seen,
        sink: &mut dyn FnMut(Block),
    ) {
        self.count_format(format, records);
        self.stats.records += records;
        self.stats.spans += spans.len() as u64;
        self.stats.seen(seen);
        problems.into_iter().for_each(|p| self.stats.problem(p));
        sink(vec![spans]);
    }

    /// A problem found after reading (e.g. during assembly).
    pub fn problem(&mut self, p: Problem) {
        self.stats.problem(p);
    }
}

/// How a record is read: where it is, with which mappings, and whether for
/// its times only (see [`dialect::times_only`]).
struct RecordRead<'r> {
    origin: &'r Origin,
    maps: &'r mapping::Mappings,
    times_only: bool,
}

/// Convert one JSON record of the given (or recognised) shape.
fn one_record(
    v: &serde_json::Value,
    shape: Option<Shape>,
    session: Option<&str>,
    read: &RecordRead,
    spans: &mut Spans,
    problems: &mut Vec<Problem>,
    seen: &mut Seen,
) {
    let (origin, maps) = (read.origin, read.maps);
    let Some(shape) = shape.or_else(|| Shape::of(v)) else {
        problems.push(Problem::at(
            origin,
            "record skipped: not a span, observation or request".into(),
        ));
        return;
    };
    match records::record(shape, v, session) {
        Err(e) => problems.push(Problem::at(origin, format!("record skipped: {e}"))),
        Ok(rec) if read.times_only => match dialect::times_only(rec.base, origin) {
            Ok(s) => spans.push(Box::new(s)),
            Err(e) => problems.push(Problem::at(origin, format!("record skipped: {e}"))),
        },
        Ok(rec) => match dialect::normalise(rec.base, &rec.resource, &rec.attrs, origin, maps) {
            Ok(s) => {
                seen.spans(&rec.attrs, maps);
                spans.push(Box::new(s))
            }
            Err(e) => problems.push(Problem::at(origin, format!("record skipped: {e}"))),
        },
    }
}

/// A record's text. Bytes that are not UTF-8 (a truncated multi-byte character,
/// a Latin-1 name) become U+FFFD and the problem is reported: one bad byte in a
/// string must not cost the record's other spans.
fn text_of<'a>(
    bytes: &'a [u8],
    origin: &Origin,
    problems: &mut Vec<Problem>,
) -> std::borrow::Cow<'a, str> {
    if let Ok(t) = simdutf8::basic::from_utf8(bytes) {
        return std::borrow::Cow::Borrowed(t);
    }
    // std's check says where the first bad byte is
    match std::str::from_utf8(bytes) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(e) => {
            let fixed = String::from_utf8_lossy(bytes);
            let bad = fixed.matches('\u{FFFD}').count();
            problems.push(Problem::at(
                origin,
                format!(
                    "invalid UTF-8 at byte {} ({bad} bad sequence{}): replaced with U+FFFD, the rest of the record was read",
                    e.valid_up_to() + 1,
                    if bad == 1 { "" } else { "s" }
                ),
            ));
            std::borrow::Cow::Owned(fixed.into_owned())
        }
    }
}

/// Fill `buf` as far as the stream goes; returns how many bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::attrs::{AnyValue, KeyValue};
    use super::mapping::{Mapping, Mappings};
    use super::{closes_at_end, pool_cut, Keep, Reader, Seen, NOTES_AT_MOST};
    use std::sync::Arc;

    fn attribute(key: &str) -> KeyValue<'_> {
        KeyValue {
            key: key.into(),
            value: AnyValue::Int(1),
        }
    }

    fn unknown_usage(attrs: &[KeyValue], maps: &Mappings) -> Vec<String> {
        let mut seen = Seen::default();
        seen.spans(attrs, maps);
        seen.unknown_usage
    }

    #[test]
    fn a_name_judged_before_on_the_thread_is_judged_again_against_the_mappings() {
        let custom = [attribute("myapp.tokens.prompt")];
        let none = Mappings::default();
        assert_eq!(unknown_usage(&custom, &none), ["myapp.tokens.prompt"]);
        let reads_it = Mappings(vec![Mapping {
            name: None,
            span_name: "call".into(),
            kind: Some("llm".into()),
            input_excludes_cache: false,
            attributes: [(
                "gen_ai.usage.input_tokens".into(),
                "myapp.tokens.prompt".into(),
            )]
            .into(),
        }]);
        assert!(unknown_usage(&custom, &reads_it).is_empty());
        assert_eq!(unknown_usage(&custom, &none), ["myapp.tokens.prompt"]);
    }

    #[test]
    fn names_past_what_the_thread_keeps_are_still_judged() {
        let names: Vec<String> = (0..NOTES_AT_MOST + 10)
            .map(|i| format!("span.{i}.tokens"))
            .collect();
        let attrs: Vec<KeyValue> = names.iter().map(|n| attribute(n)).collect();
        let got = unknown_usage(&attrs, &Mappings::default());
        assert_eq!(got, names);
        let gen_ai = [attribute("gen_ai.usage.input_tokens")];
        assert!(unknown_usage(&gen_ai, &Mappings::default()).is_empty());
    }

    #[test]
    fn a_first_line_is_one_whole_value_only_when_its_brackets_close_at_its_end() {
        let whole: [&[u8]; 4] = [
            br#"{"resourceSpans":[{"a":"}]{["}]}"#,
            br#"{"s":"a \"quoted\" } and \\"}  "#,
            b"[1, [2], {}]\r",
            br#"{"k":"\\\""}"#,
        ];
        for line in whole {
            assert!(closes_at_end(line), "{}", String::from_utf8_lossy(line));
        }
        let not: [&[u8]; 6] = [
            b"{",
            br#"{"resourceSpans": ["#,
            br#"{"a":1}{"b":2}"#,
            br#"{"a":"unclosed}"#,
            b"resourceSpans",
            b"",
        ];
        for line in not {
            assert!(!closes_at_end(line), "{}", String::from_utf8_lossy(line));
        }
    }

    /// An HTTP span is read without a detail (see `model::Span`), and stays
    /// so when the texts no rule reads are dropped; a call has one.
    #[test]
    fn an_ordinary_span_is_read_and_kept_without_a_detail() {
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"t","spanId":"a","name":"GET /x","attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}}]},{"traceId":"t","spanId":"b","parentSpanId":"a","name":"chat gpt-4o","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.output.messages","value":{"stringValue":"[]"}}]}]}]}]}"#;
        let mut reader = Reader::new(Keep {
            input_text: false,
            output_text: false,
            tool_args: false,
            tool_result: false,
        });
        let mut spans = Vec::new();
        let input = std::io::Cursor::new(format!("{line}\n").into_bytes());
        let read = reader.read_from(&Arc::from("x.jsonl"), Box::new(input), &mut |b| {
            spans.extend(b.into_iter().flatten())
        });
        read.unwrap();
        let detail: Vec<(&str, bool)> = spans
            .iter()
            .map(|s| (s.span_id.as_str(), s.detail.is_some()))
            .collect();
        assert_eq!(detail, [("a", false), ("b", true)]);
    }

    /// A block of long records is parsed on two threads (the last eighth of
    /// its bytes on the pool): its spans and problems still come in input
    /// order, blank lines are skipped wherever they fall, and a bad line is
    /// named by its number.
    #[test]
    fn a_block_parsed_on_two_threads_keeps_its_records_in_input_order() {
        let span = |i: usize| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"t","spanId":"s{i}","name":"GET /{}"}}]}}]}}]}}"#,
                "x".repeat(500)
            )
        };
        let lines: Vec<String> = (0..40)
            .map(|i| match i {
                3 | 37 => String::new(),
                38 => "{not json".to_string(),
                _ => span(i),
            })
            .collect();
        let on_pool = pool_cut(
            &(lines.iter().enumerate())
                .map(|(i, l)| (i as u64 + 1, l.as_bytes()))
                .collect::<Vec<_>>(),
            super::POOL_SHARE,
        );
        assert!(
            (30..37).contains(&on_pool),
            "the last lines go to the pool: {on_pool}"
        );
        let mut reader = Reader::new(Keep::ALL);
        let mut ids = Vec::new();
        let input = std::io::Cursor::new((lines.join("\n") + "\n").into_bytes());
        let read = reader.read_from(&Arc::from("x.jsonl"), Box::new(input), &mut |b| {
            ids.extend(b.into_iter().flatten().map(|s| s.span_id.to_string()))
        });
        read.unwrap();
        let expected: Vec<String> = (0..40)
            .filter(|i| ![3, 37, 38].contains(i))
            .map(|i| format!("s{i}"))
            .collect();
        assert_eq!(ids, expected);
        let lines_named: Vec<u64> = reader.stats.first_problems.iter().map(|p| p.line).collect();
        assert_eq!(lines_named, [39]);
    }

    /// A reading for times only (a relative window's first pass) gives a
    /// record reader's and the protobuf reader's spans the same ids and times
    /// as a whole reading, skips the same, and reads no call.
    #[test]
    fn a_times_only_reading_of_records_and_protobuf_gives_the_same_times() {
        use super::proto;
        use prost::Message;
        let phoenix = concat!(
            r#"{"name":"ChatOpenAI","span_kind":"LLM","context":{"trace_id":"t1","span_id":"a"},"start_time":"2026-12-01T10:00:00Z","end_time":"2026-12-01T10:00:02Z","attributes":{"llm":{"token_count":{"prompt":5,"completion":2}}}}"#,
            "\n",
            r#"{"name":"no trace","span_kind":"CHAIN","context":{"trace_id":"","span_id":"b"},"start_time":"2026-12-01T10:00:00Z","end_time":"2026-12-01T11:00:00Z"}"#,
            "\n"
        );
        let kv = |k: &str, v: proto::OneValue| proto::KeyValue {
            key: k.into(),
            value: Some(proto::AnyValue { value: Some(v) }),
        };
        let span = |trace: &[u8], id: &[u8], start: u64| proto::PSpan {
            trace_id: trace.to_vec(),
            span_id: id.to_vec(),
            name: "chat m".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 9,
            attributes: vec![kv(
                "gen_ai.usage.input_tokens",
                proto::OneValue::IntValue(5),
            )],
            ..Default::default()
        };
        let message = proto::TracesData {
            resource_spans: vec![proto::ResourceSpans {
                resource: None,
                scope_spans: vec![proto::ScopeSpans {
                    scope: None,
                    spans: vec![span(&[1; 16], &[2; 8], 100), span(&[], &[3; 8], 500)],
                }],
            }],
        }
        .encode_to_vec();
        let framed = [&(message.len() as u32).to_be_bytes()[..], &message].concat();
        for (name, bytes) in [("x.jsonl", phoenix.as_bytes().to_vec()), ("x.pb", framed)] {
            let read = |times_only: bool| {
                let mut reader = Reader::new(Keep::ALL);
                reader.times_only = times_only;
                let mut spans = Vec::new();
                let input = std::io::Cursor::new(bytes.clone());
                let read = reader.read_from(&Arc::from(name), Box::new(input), &mut |b| {
                    spans.extend(b.into_iter().flatten())
                });
                read.unwrap();
                let times: Vec<_> = (spans.iter())
                    .map(|s| (s.span_id.to_string(), s.start_ns, s.end_ns))
                    .collect();
                let calls = spans
                    .iter()
                    .filter(|s| s.kind == crate::model::Kind::Llm)
                    .count();
                (times, calls, reader.stats.problems)
            };
            let (whole, calls, skipped) = read(false);
            assert_eq!(
                (whole.len(), calls, skipped),
                (1, 1, 1),
                "{name}: {whole:?}"
            );
            assert_eq!(read(true), (whole, 0, 1), "{name}");
        }
    }

    /// A large compressed stream is decoded on a thread of its own: what it
    /// gives is what decoding it in place gives, byte for byte.
    #[test]
    fn a_stream_decoded_ahead_reads_as_one_decoded_in_place() {
        use std::io::{Read, Write};
        let text: String = (0..20_000)
            .map(|i| format!("{{\"line\":{i},\"text\":\"{}\"}}\n", "x".repeat(i % 97)))
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let read = |ahead| {
            let raw = Box::new(std::io::Cursor::new(gz.clone()));
            let mut r = super::decompress("x.gz", raw, 1 << 16, ahead, Arc::default()).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            out
        };
        assert!(read(true) == text.as_bytes());
        assert!(read(false) == text.as_bytes());
    }
}
