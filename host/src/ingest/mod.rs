//! Readers: turn exports (files, folders, stdin; plain or gzip) into canonical
//! spans. A reader knows nothing of detectors. A bad record becomes a located
//! [`Problem`]; a run never dies on one bad line and never drops good ones.

pub mod genai;
pub mod otlp;

use crate::model::{Keep, Origin, Span};
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
        Problem { file: origin.file.clone(), line: origin.line, reason }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// An input that cannot be read at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a span export tokenhound reads. Expected OTLP JSON: lines of {{\"resourceSpans\": …}} as the OpenTelemetry Collector's file exporter writes them, or one such document (plain or .gz)")]
    UnknownFormat { path: String },
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
}

const KEEP_PROBLEMS: usize = 50;
const BLOCK: usize = 8 << 20;

impl ReadStats {
    fn problem(&mut self, p: Problem) {
        self.problems += 1;
        if self.first_problems.len() < KEEP_PROBLEMS {
            self.first_problems.push(p);
        }
    }
}

/// The files behind the arguments: files as given, folders walked in name order
/// (hidden entries skipped), `-` for stdin.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(p.clone());
        } else if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(InputError::Io {
                path: p.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io = |source| InputError::Io { path: dir.display().to_string(), source };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io)?.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
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

/// Open a file or stdin, decompressing gzip by its magic bytes.
fn open(path: &Path, count: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>, InputError> {
    let io = |source| InputError::Io { path: path.display().to_string(), source };
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(io)?)
    };
    let mut r = BufReader::with_capacity(1 << 20, Counting { inner: raw, count });
    let head = r.fill_buf().map_err(io)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(1 << 20, flate2::bufread::MultiGzDecoder::new(r))))
    } else {
        Ok(Box::new(r))
    }
}

/// Reads inputs and hands good spans to a sink, a block at a time, in file order.
pub struct Reader {
    pub keep: Keep,
    pub stats: ReadStats,
    /// raw bytes read so far, for a progress bar
    pub bytes: Arc<AtomicU64>,
}

impl Reader {
    pub fn new(keep: Keep) -> Self {
        Reader { keep, stats: ReadStats::default(), bytes: Arc::default() }
    }

    pub fn read_file(&mut self, path: &Path, sink: &mut dyn FnMut(Vec<Span>)) -> Result<(), InputError> {
        let name: Arc<str> = if path.as_os_str() == "-" { "<stdin>".into() } else { path.display().to_string().into() };
        let io = |source| InputError::Io { path: name.to_string(), source };
        let mut r = open(path, self.bytes.clone())?;
        self.stats.files += 1;
        let head = r.fill_buf().map_err(io)?.to_vec();
        if head.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if !otlp::looks_like(&head) {
            return Err(InputError::UnknownFormat { path: name.to_string() });
        }
        // One record per line (the Collector's file exporter), or one document?
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
        if serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok() {
            return self.read_lines(r, &name, sink).map_err(io);
        }
        let mut text = Vec::new();
        r.read_to_end(&mut text).map_err(io)?;
        if serde_json::from_slice::<serde::de::IgnoredAny>(&text).is_ok() {
            self.parse_block(&name, vec![(1, &text[..])], sink);
            Ok(())
        } else {
            // Lines with a broken first one: each line still counts on its own.
            self.read_lines(Box::new(std::io::Cursor::new(text)), &name, sink).map_err(io)
        }
    }

    fn read_lines(&mut self, mut r: Box<dyn BufRead + Send>, name: &Arc<str>, sink: &mut dyn FnMut(Vec<Span>)) -> std::io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + (1 << 20));
        let mut starts: Vec<(u64, usize)> = Vec::new();
        let mut line_no = 0u64;
        loop {
            let at = buf.len();
            let n = r.read_until(b'\n', &mut buf)?;
            if n > 0 {
                line_no += 1;
                starts.push((line_no, at));
            }
            if (n == 0 || buf.len() >= BLOCK) && !starts.is_empty() {
                let lines: Vec<(u64, &[u8])> = starts
                    .iter()
                    .enumerate()
                    .map(|(i, &(no, s))| {
                        let e = starts.get(i + 1).map_or(buf.len(), |x| x.1);
                        let line = &buf[s..e];
                        let line = line.strip_suffix(b"\n").unwrap_or(line);
                        (no, line.strip_suffix(b"\r").unwrap_or(line))
                    })
                    .collect();
                self.parse_block(name, lines, sink);
                buf.clear();
                starts.clear();
            }
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// Parse records in parallel; hand spans on in input order.
    fn parse_block(&mut self, name: &Arc<str>, lines: Vec<(u64, &[u8])>, sink: &mut dyn FnMut(Vec<Span>)) {
        let keep = self.keep;
        let results: Vec<(Vec<Span>, Vec<Problem>)> = lines
            .par_iter()
            .with_min_len(64)
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .map(|&(line, text)| {
                let origin = Origin { file: name.clone(), line };
                let mut spans = Vec::new();
                let mut problems = Vec::new();
                otlp::parse_traces_data(text, &origin, &mut spans, &mut problems);
                spans.iter_mut().for_each(|s| keep.apply(s));
                (spans, problems)
            })
            .collect();
        let mut all = Vec::with_capacity(results.iter().map(|r| r.0.len()).sum());
        for (spans, problems) in results {
            self.stats.records += 1;
            self.stats.spans += spans.len() as u64;
            all.extend(spans);
            problems.into_iter().for_each(|p| self.stats.problem(p));
        }
        sink(all);
    }

    /// A problem found after reading (e.g. during assembly).
    pub fn problem(&mut self, p: Problem) {
        self.stats.problem(p);
    }
}
