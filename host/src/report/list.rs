//! The report's findings, largest first: in memory, or, past a few thousand,
//! on disk, each as the JSON the report writes for it.
//!
//! A large input's findings were most of a scan's peak memory (about 2 KB each
//! as structures), so ten months took ten times the memory. On disk, what
//! stays in memory per finding is its place in the file and what sorting and
//! the patterns need (some 80 bytes); the JSON report copies the rendered
//! findings from the file in order, and the other formats read back only the
//! findings they show.

use super::{finding_json, patterns, FindingCore, FindingOut};
use crate::rules::Severity;
use crate::spill::{At, Spill};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::sync::Arc;

/// Findings rendered together: enough to keep both cores busy, few enough
/// that the rendered text stays a few MB.
pub const RENDER_BATCH: usize = 2048;

/// Findings on disk up to this many bytes are read back at once to be
/// written (the memory is the report's, after the scan's is given back).
const READ_WHOLE_AT_MOST: u64 = 64 << 20;

/// The report's findings, largest first.
pub enum FindingList {
    Memory(Vec<FindingOut>),
    Disk(OnDisk),
}

impl Default for FindingList {
    fn default() -> Self {
        FindingList::Memory(Vec::new())
    }
}

/// Findings rendered into a spill file, in report order.
pub struct OnDisk {
    /// written out in full ([`Spill::flush`]), then only read
    file: Spill,
    /// each finding's place, share and cost, in report order
    index: Vec<Entry>,
    worst: Option<Severity>,
}

struct Entry {
    at: At,
    share_pct: f64,
    cost_usd: Option<f64>,
}

impl FindingList {
    pub fn len(&self) -> usize {
        match self {
            FindingList::Memory(v) => v.len(),
            FindingList::Disk(d) => d.index.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th finding (0 is the largest).
    pub fn get(&self, i: usize) -> Option<Cow<'_, FindingOut>> {
        match self {
            FindingList::Memory(v) => v.get(i).map(Cow::Borrowed),
            FindingList::Disk(d) => d.index.get(i).map(|e| Cow::Owned(d.read(e))),
        }
    }

    /// The findings, largest first.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Cow<'_, FindingOut>> + '_> {
        match self {
            FindingList::Memory(v) => Box::new(v.iter().map(Cow::Borrowed)),
            FindingList::Disk(d) => Box::new(d.index.iter().map(|e| Cow::Owned(d.read(e)))),
        }
    }

    /// The highest severity of any finding.
    pub fn worst(&self) -> Option<Severity> {
        match self {
            FindingList::Memory(v) => v.iter().map(|f| f.severity).max(),
            FindingList::Disk(d) => d.worst,
        }
    }

    /// Each finding as the pretty printer writes it inside the report, with
    /// the separators between them; rendered on every core, or copied from disk.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.write_json_reading(w, READ_WHOLE_AT_MOST)
    }

    /// [`FindingList::write_json`], reading findings on disk back in one read
    /// when they take at most `whole` bytes (the month's 29,000 findings:
    /// 42 MB, where a read each was 2% of its scan), else one by one.
    pub(super) fn write_json_reading(
        &self,
        w: &mut dyn std::io::Write,
        whole: u64,
    ) -> std::io::Result<()> {
        let mut first = true;
        let mut put = |w: &mut dyn std::io::Write, f: &[u8]| {
            w.write_all(if first { b"\n    " } else { b",\n    " })?;
            first = false;
            w.write_all(f)
        };
        match self {
            FindingList::Memory(v) => {
                for batch in v.chunks(RENDER_BATCH) {
                    let rendered: Vec<Vec<u8>> = batch
                        .par_iter()
                        .map(finding_json)
                        .collect::<Result<_, _>>()
                        .map_err(std::io::Error::other)?;
                    for f in rendered {
                        put(w, &f)?;
                    }
                }
            }
            FindingList::Disk(d) => match d.file.whole(whole)? {
                Some(all) => {
                    for e in &d.index {
                        put(w, &all[e.at.range()])?;
                    }
                }
                None => {
                    for e in &d.index {
                        put(w, &d.file.read(e.at)?)?;
                    }
                }
            },
        }
        Ok(())
    }
}

impl serde::Serialize for FindingList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl OnDisk {
    fn read(&self, e: &Entry) -> FindingOut {
        let text = self
            .file
            .read(e.at)
            .expect("findings set aside on disk can be read back");
        let core: FindingCore =
            serde_json::from_slice(&text).expect("findings set aside are read as written");
        FindingOut {
            core,
            share_pct: e.share_pct,
            cost_usd: e.cost_usd,
        }
    }
}

/// What orders a finding: most tokens, then most severe, then title, then
/// the order the rules and their findings came in.
#[derive(Clone, Copy)]
struct Key {
    tokens: u64,
    severity: Severity,
    title: u32,
    run: usize,
    /// the finding's first span (trace and span id), as a text: findings
    /// otherwise alike are in the order of their spans, not in the order
    /// their traces happened to close (which moves with how the input was
    /// read in blocks)
    first_span: u32,
    seq: u64,
}

/// A finding as the builder keeps it: its key, what the patterns need, and
/// the finding itself (in memory) or its place (on disk).
struct Held {
    key: Key,
    fix: u32,
    pattern: u32,
    seconds: f64,
    share_pct: f64,
    cost_usd: Option<f64>,
    body: Body,
}

enum Body {
    Memory(Box<FindingOut>),
    Disk(At),
}

/// Gathers the report's findings in any order, then sorts them and groups
/// them into patterns.
pub struct Builder {
    /// findings beyond this many go to disk
    limit: usize,
    held: Vec<Held>,
    /// findings not yet rendered to disk (in memory they stay here)
    waiting: Vec<usize>,
    spill: Option<Spill>,
    texts: Texts,
    groups: patterns::Grouper,
}

/// Titles and fixes, each kept once (a rule's findings share a few).
#[derive(Default)]
struct Texts {
    ids: FxHashMap<Arc<str>, u32>,
    list: Vec<Arc<str>>,
}

impl Texts {
    /// Each text's place in the sorted texts.
    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.list.len() as u32).collect();
        order.par_sort_unstable_by_key(|&i| &self.list[i as usize]);
        let mut rank = vec![0; order.len()];
        for (r, i) in order.into_iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        rank
    }

    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        let text: Arc<str> = Arc::from(s);
        self.ids.insert(text.clone(), i);
        self.list.push(text);
        i
    }
}

impl Builder {
    /// `expected`: how many findings will come (at most), so the list is
    /// made once at its size. Grown by doubling, it held up to twice what it
    /// needed, and three times while it moved: 50 MB of the 10x input's
    /// report for 280,000 findings.
    pub fn new(limit: usize, expected: usize) -> Self {
        Builder {
            limit,
            held: Vec::with_capacity(expected),
            waiting: Vec::new(),
            spill: None,
            texts: Texts::default(),
            groups: patterns::Grouper::default(),
        }
    }

    /// Add the `seq`th finding of the `run`th rule, with its JSON if it was
    /// rendered already (it then goes straight to disk).
    pub fn push(
        &mut self,
        run: usize,
        seq: u64,
        f: FindingOut,
        rendered: Option<Vec<u8>>,
    ) -> std::io::Result<()> {
        let key = Key {
            tokens: f.wasted_tokens,
            severity: f.severity,
            title: self.texts.id(&f.title),
            run,
            first_span: self.texts.id(&f
                .spans
                .first()
                .map(|s| format!("{}/{}", s.trace_id, s.span_id))
                .unwrap_or_default()),
            seq,
        };
        self.held.push(Held {
            key,
            fix: self.texts.id(&f.fix),
            pattern: self.groups.add(&f),
            seconds: f.wasted_seconds,
            share_pct: f.share_pct,
            cost_usd: f.cost_usd,
            body: Body::Memory(Box::new(f)),
        });
        if let Some(text) = rendered {
            if let Some(spill) = self.spill_file() {
                let at = spill.push(&text)?;
                self.held.last_mut().expect("just pushed").body = Body::Disk(at);
                return Ok(());
            }
        }
        self.waiting.push(self.held.len() - 1);
        if self.held.len() > self.limit && self.waiting.len() >= RENDER_BATCH.min(self.limit.max(1))
        {
            self.render_waiting()?;
        }
        Ok(())
    }

    /// The spill file, made on first use; none if it cannot be made (the
    /// report is then built in memory, as before findings could go to disk).
    fn spill_file(&mut self) -> Option<&mut Spill> {
        if self.spill.is_none() && self.limit != usize::MAX {
            match Spill::new() {
                Ok(s) => self.spill = Some(s),
                Err(e) => {
                    eprintln!("tokenhound: {e}; the report's findings are kept in memory");
                    self.limit = usize::MAX;
                }
            }
        }
        self.spill.as_mut()
    }

    /// Render the waiting findings (on every core) into the spill file.
    fn render_waiting(&mut self) -> std::io::Result<()> {
        if self.spill_file().is_none() {
            return Ok(());
        }
        let spill = self.spill.as_mut().expect("made above");
        let waiting = std::mem::take(&mut self.waiting);
        let rendered: Vec<Vec<u8>> = waiting
            .par_iter()
            .map(|&i| match &self.held[i].body {
                Body::Memory(f) => finding_json(f),
                Body::Disk(_) => unreachable!("a finding is rendered once"),
            })
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        for (i, text) in waiting.into_iter().zip(rendered) {
            self.held[i].body = Body::Disk(spill.push(&text)?);
        }
        Ok(())
    }

    /// The findings, largest first, and their patterns.
    pub fn finish(
        mut self,
        total_tokens: u64,
        all_sessions: u64,
        days: f64,
    ) -> std::io::Result<(FindingList, Vec<patterns::PatternOut>)> {
        if self.spill.is_some() && !self.waiting.is_empty() {
            self.render_waiting()?;
        }
        // Titles compared by their rank among all texts, each text compared
        // once (comparing the texts themselves was most of the sort).
        let rank = self.texts.ranks();
        self.held.par_sort_unstable_by_key(|h| {
            let k = &h.key;
            (
                std::cmp::Reverse(k.tokens),
                std::cmp::Reverse(k.severity),
                rank[k.title as usize],
                k.run,
                rank[k.first_span as usize],
                k.seq,
            )
        });
        let instances = self.held.iter().map(|h| patterns::Instance {
            pattern: h.pattern,
            tokens: h.key.tokens,
            cost_usd: h.cost_usd,
            seconds: h.seconds,
            title: &self.texts.list[h.key.title as usize],
            fix: &self.texts.list[h.fix as usize],
        });
        let patterns = self
            .groups
            .finish(instances, total_tokens, all_sessions, days);
        let list = match self.spill {
            None => FindingList::Memory(
                (self.held.into_iter())
                    .map(|h| match h.body {
                        Body::Memory(f) => *f,
                        Body::Disk(_) => unreachable!("nothing went to disk"),
                    })
                    .collect(),
            ),
            Some(mut spill) => FindingList::Disk(OnDisk {
                file: {
                    spill.flush()?;
                    spill
                },
                worst: self.held.iter().map(|h| h.key.severity).max(),
                index: (self.held.into_iter())
                    .map(|h| Entry {
                        at: match h.body {
                            Body::Disk(at) => at,
                            Body::Memory(_) => unreachable!("every finding went to disk"),
                        },
                        share_pct: h.share_pct,
                        cost_usd: h.cost_usd,
                    })
                    .collect(),
            }),
        };
        Ok((list, patterns))
    }
}
