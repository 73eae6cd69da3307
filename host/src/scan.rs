//! One scan: load the packs and their detectors, read the inputs, assemble
//! traces into batches, run every rule over every batch, and gather the results
//! for the report.

use crate::engine::{self, Analyzer, Columns, Engine, Field, LoadedPlugin, SpanKind};
use crate::ingest::{self, InputError, Problem, ReadStats, Reader};
use crate::model::{self, Added, Assembler, Keep, Kind};
use crate::rules::{PackError, Rule, RuleSet, Source};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What can stop a scan before it reports, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("invalid rule pack: {0}")]
    Pack(#[from] PackError),
    #[error("detector failed to load: {0}")]
    Load(String),
    #[error("{0}")]
    Nothing(String),
    /// a file named on the command line that is not what it should be
    #[error("{0}")]
    Usage(String),
    /// findings could not be set aside on disk
    #[error("{0}")]
    Spill(String),
}

impl ScanError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ScanError::Input(_)
            | ScanError::Nothing(_)
            | ScanError::Usage(_)
            | ScanError::Spill(_) => 2,
            ScanError::Pack(_) => 3,
            ScanError::Load(_) => 4,
        }
    }
}

#[derive(Clone)]
pub struct Options {
    pub inputs: Vec<PathBuf>,
    pub packs: Vec<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub batch_spans: usize,
    /// a trace is complete once the stream's clock is this far past its last span
    pub quiet_ns: u64,
    pub progress: bool,
    /// `--input-format`: skip detection
    pub input_format: Option<ingest::InputFormat>,
    /// mapping files (`--mapping`), added to the packs' mappings
    pub mapping_files: Vec<PathBuf>,
    /// spans held open before quiet traces are analysed early
    pub open_spans: usize,
    /// keep the N costliest LLM calls with their input parts (`top`); 0: none
    pub costliest: usize,
    /// an earlier JSON report whose daily totals stand for periods the input
    /// does not hold (`--baseline`)
    pub baseline: Option<PathBuf>,
    /// `--since` / `--until`: what findings and totals count
    pub since: Option<Bound>,
    pub until: Option<Bound>,
    /// findings held in memory before they go to disk ([`FINDINGS_IN_MEMORY`])
    pub findings_in_memory: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            inputs: Vec::new(),
            packs: Vec::new(),
            cache_dir: default_cache_dir(),
            batch_spans: 8192,
            quiet_ns: 300_000_000_000,
            progress: false,
            input_format: None,
            mapping_files: Vec::new(),
            open_spans: OPEN_BUDGET,
            costliest: 0,
            baseline: None,
            since: None,
            until: None,
            findings_in_memory: FINDINGS_IN_MEMORY,
        }
    }
}

/// `$TOKENHOUND_CACHE_DIR`, else the user's cache folder.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TOKENHOUND_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tokenhound"))
}

/// A rule with its loaded detector, ready to run.
pub struct RuleRun {
    pub rule: Rule,
    pub plugin: Arc<LoadedPlugin>,
    analyzer: Option<Analyzer>,
    /// the parameters it was created with (JSON), to restore it
    params: String,
    pub findings: Findings,
    pub counters: Vec<(String, u64)>,
    /// why the engine stopped this detector, if it did
    pub failure: Option<String>,
    /// charges this detector made to spans that are not in the input (or of more
    /// tokens than the whole input holds), not counted
    pub dropped_charges: u64,
    /// the tokens its kept findings charge to calls, by the UTC day each
    /// call starts (the report's daily chart): dated when a finding is
    /// checked, while the input's spans are still known
    pub waste_days: WasteDays,
}

/// Tokens by UTC day number.
pub type WasteDays = std::collections::BTreeMap<u64, u64>;

/// A rule's findings, with the indexes that make merging linear: a group's
/// finding by its key, and the spans it already names.
#[derive(Default)]
pub struct Findings {
    pub list: Vec<engine::Finding>,
    /// each listed finding's place in the order findings were first added
    /// (the report's order among equals), kept through spilling
    seq: Vec<u64>,
    next_seq: u64,
    /// settled findings set aside on disk by a scan ([`Findings::spill_settled`]),
    /// each as its place and the finding
    spilled: Option<crate::spill::Spill>,
    by_group: HashMap<String, usize>,
    /// what each listed group's finding names and when it was last joined
    spans_of: HashMap<usize, Joined>,
    /// grouped findings no finding joined for a while, on disk (scans only,
    /// [`Findings::park_idle`]); one that a finding joins is read back
    parked: Option<Parked>,
    /// counts [`Findings::park_idle`] calls
    round: u64,
    /// indexes of findings added or updated since the last look (watch mode),
    /// and a mark per finding so each is listed once
    changed: Vec<usize>,
    marked: Vec<bool>,
}

impl Findings {
    /// Indexes of the findings added or updated since the last call.
    pub fn take_changed(&mut self) -> Vec<usize> {
        for &i in &self.changed {
            self.marked[i] = false;
        }
        std::mem::take(&mut self.changed)
    }

    /// Findings without a group that were taken as changed can change no
    /// more: watch has written them.
    pub fn settled(&self) -> usize {
        self.list.len() - self.by_group.len()
    }

    /// Forget the settled findings (see [`Findings::settled`]), so a watch
    /// that runs for months holds only the grouped findings, which may still
    /// grow. Only between rounds: nothing may be waiting in `take_changed`.
    pub fn forget_settled(&mut self) {
        debug_assert!(self.changed.is_empty(), "changes not taken yet");
        self.keep_grouped(|_, _| Ok(()))
            .expect("forgetting never fails");
    }

    /// Keep only the grouped findings in the list; each settled one goes to
    /// `settle` with its place in the order of adding.
    fn keep_grouped(
        &mut self,
        mut settle: impl FnMut(u64, engine::Finding) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut spans_of = std::mem::take(&mut self.spans_of);
        self.by_group.clear();
        let seqs = std::mem::take(&mut self.seq);
        for (i, (f, seq)) in std::mem::take(&mut self.list)
            .into_iter()
            .zip(seqs)
            .enumerate()
        {
            let Some(g) = f.group.clone() else {
                settle(seq, f)?;
                continue;
            };
            let j = self.list.len();
            self.by_group.insert(g, j);
            if let Some(set) = spans_of.remove(&i) {
                self.spans_of.insert(j, set);
            }
            self.list.push(f);
            self.seq.push(seq);
        }
        self.marked = vec![false; self.list.len()];
        Ok(())
    }

    /// A scan's settled findings, checked by `keep` (which may drop one),
    /// go to disk; the grouped ones stay, as they may still grow. Scans only:
    /// what `take_changed` would have said is forgotten.
    pub fn spill_settled(
        &mut self,
        mut keep: impl FnMut(&mut engine::Finding) -> bool,
    ) -> Result<(), SpillError> {
        self.changed.clear();
        let mut spill = match self.spilled.take() {
            Some(s) => s,
            None => crate::spill::Spill::new().map_err(SpillError::Create)?,
        };
        let r = self.keep_grouped(|seq, mut f| {
            if !keep(&mut f) {
                return Ok(());
            }
            put_aside(&mut spill, seq, &f).map(drop)
        });
        self.spilled = Some(spill);
        r.map_err(SpillError::Write)
    }

    /// Findings listed and set aside.
    pub fn len(&self) -> usize {
        self.list.len()
            + self.spilled.as_ref().map_or(0, |s| s.len())
            + self.parked.as_ref().map_or(0, |p| p.at.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every finding, set aside or listed, with its place, in the order they
    /// were added (both are in that order: a finding is set aside only after
    /// every settled one added before it); the findings are empty afterwards.
    pub fn take_all(&mut self) -> impl Iterator<Item = (u64, engine::Finding)> {
        // Read in order, decoded on every core a chunk at a time (decoding was
        // most of building a large report).
        let spilled = self.spilled.take().map(|s| {
            let mut records = s
                .drain()
                .expect("findings set aside on disk can be read back");
            std::iter::from_fn(move || {
                let chunk: Vec<Vec<u8>> = (records.by_ref())
                    .take(1024)
                    .map(|r| r.expect("findings set aside on disk can be read back"))
                    .collect();
                (!chunk.is_empty()).then(|| {
                    chunk
                        .par_iter()
                        .map(|bytes| {
                            set_aside(bytes).expect("findings set aside are read as written")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .flatten()
        });
        let listed = (std::mem::take(&mut self.seq).into_iter()).zip(
            std::mem::take(&mut self.list)
                .into_iter()
                .map(Place::Listed),
        );
        let mut parked = self.parked.take();
        let rest = in_seq_order(listed, parked.as_mut())
            .expect("findings set aside on disk can be read back");
        let mut listed = (rest.into_iter())
            .map(move |(seq, place)| match place {
                Place::Listed(f) => (seq, f),
                Place::Parked(at) => (parked.as_ref())
                    .and_then(|p| p.read(at).ok())
                    .expect("findings set aside on disk can be read back"),
            })
            .peekable();
        *self = Findings {
            next_seq: self.next_seq,
            ..Findings::default()
        };
        let mut spilled = spilled.into_iter().flatten().peekable();
        std::iter::from_fn(move || match (spilled.peek(), listed.peek()) {
            (Some(a), Some(b)) if b.0 < a.0 => listed.next(),
            (Some(_), _) => spilled.next(),
            (None, _) => listed.next(),
        })
    }

    /// Look at every finding, set aside or listed, in the order they were added.
    pub fn visit(&mut self, mut look: impl FnMut(&engine::Finding)) -> std::io::Result<()> {
        let listed = (self.seq.iter().copied()).zip((0..self.list.len()).map(Place::Listed));
        let rest = in_seq_order(listed, self.parked.as_mut())?;
        let spilled = self.spilled.take();
        let (list, parked) = (&self.list, &self.parked);
        let mut show = |place: Place<&engine::Finding>| -> std::io::Result<()> {
            match place {
                Place::Listed(f) => look(f),
                Place::Parked(at) => {
                    let p = parked.as_ref().expect("a parked finding has its file");
                    look(&p.read(at)?.1);
                }
            }
            Ok(())
        };
        let by_index = |place: &Place<usize>| match *place {
            Place::Listed(i) => Place::Listed(&list[i]),
            Place::Parked(at) => Place::Parked(at),
        };
        let mut listed = rest.iter().peekable();
        if let Some(spilled) = spilled {
            let mut again = crate::spill::Spill::new()?;
            for bytes in spilled.drain()? {
                let bytes = bytes?;
                let (seq, f) = set_aside(&bytes)?;
                while let Some((_, place)) = listed.next_if(|(s, _)| *s < seq) {
                    show(by_index(place))?;
                }
                show(Place::Listed(&f))?;
                again.push(&bytes)?;
            }
            self.spilled = Some(again);
        }
        for (_, place) in listed {
            show(by_index(place))?;
        }
        Ok(())
    }

    /// Keep the listed findings that `keep` keeps (it may change them).
    pub fn retain_listed(&mut self, mut keep: impl FnMut(&mut engine::Finding) -> bool) {
        let seqs = std::mem::take(&mut self.seq);
        let list = std::mem::take(&mut self.list);
        let (mut list2, mut seq2) = (Vec::new(), Vec::new());
        let mut moved = HashMap::new();
        for (i, (mut f, seq)) in list.into_iter().zip(seqs).enumerate() {
            if keep(&mut f) {
                moved.insert(i, list2.len());
                list2.push(f);
                seq2.push(seq);
            }
        }
        self.list = list2;
        self.seq = seq2;
        self.by_group.retain(|_, i| match moved.get(i) {
            Some(&j) => {
                *i = j;
                true
            }
            None => false,
        });
        let spans_of = std::mem::take(&mut self.spans_of);
        self.spans_of = (spans_of.into_iter())
            .filter_map(|(i, set)| moved.get(&i).map(|&j| (j, set)))
            .collect();
        self.changed.retain_mut(|i| match moved.get(i) {
            Some(&j) => {
                *i = j;
                true
            }
            None => false,
        });
        self.marked = vec![false; self.list.len()];
        for &i in &self.changed {
            self.marked[i] = true;
        }
    }

    /// Add a finding (see [`Findings::merge_into`]) and note it as changed.
    pub fn merge(&mut self, f: engine::Finding) {
        let i = self.merge_into(f);
        self.marked.resize(self.list.len(), false);
        if !std::mem::replace(&mut self.marked[i], true) {
            self.changed.push(i);
        }
    }

    /// Index a group's finding about to be listed at the end.
    fn list_group(&mut self, group: String, f: &engine::Finding) {
        let i = self.list.len();
        let spans = (f.spans.iter())
            .map(|s| model::span_key(&s.trace_id, &s.span_id))
            .collect();
        let round = self.round;
        self.spans_of.insert(i, Joined { spans, round });
        self.by_group.insert(group, i);
    }

    /// A parked group's finding listed again (at the end, with its place).
    fn unpark(&mut self, group: &str) {
        let Some((seq, f)) = self.parked.as_mut().and_then(|p| p.take(group)) else {
            return;
        };
        self.list_group(group.to_string(), &f);
        self.list.push(f);
        self.seq.push(seq);
        self.marked.resize(self.list.len(), false);
    }

    /// Grouped findings not joined since the last call go to disk, to be
    /// read back if a finding joins them: a scan's groups cannot be known to
    /// be complete before its end, and a long scan's all stayed in memory (a
    /// session and file each, for context-reread). Scans only: watch lists
    /// what changed by index.
    pub fn park_idle(&mut self) -> Result<(), SpillError> {
        let idle_before = self.round;
        self.round += 1;
        let parked = match self.parked.as_mut() {
            Some(p) => p,
            None => self.parked.insert(Parked {
                spill: crate::spill::Spill::new().map_err(SpillError::Create)?,
                at: HashMap::new(),
            }),
        };
        let mut spans_of = std::mem::take(&mut self.spans_of);
        self.by_group.clear();
        let seqs = std::mem::take(&mut self.seq);
        let mut failed = None;
        for (i, (f, seq)) in std::mem::take(&mut self.list)
            .into_iter()
            .zip(seqs)
            .enumerate()
        {
            let joined = spans_of.remove(&i);
            let idle = joined.as_ref().is_some_and(|j| j.round < idle_before);
            if let (Some(g), true, None) = (&f.group, idle, &failed) {
                match put_aside(&mut parked.spill, seq, &f) {
                    Ok(at) => {
                        parked.at.insert(g.clone(), (seq, at));
                        continue;
                    }
                    // kept in memory; the scan stops with the error
                    Err(e) => failed = Some(e),
                }
            }
            let j = self.list.len();
            if let Some(g) = &f.group {
                self.by_group.insert(g.clone(), j);
            }
            if let Some(joined) = joined {
                self.spans_of.insert(j, joined);
            }
            self.list.push(f);
            self.seq.push(seq);
        }
        self.changed.clear();
        self.marked = vec![false; self.list.len()];
        failed.map_or(Ok(()), |e| Err(SpillError::Write(e)))
    }

    /// Grouped findings listed or parked.
    pub fn grouped(&self) -> usize {
        self.by_group.len()
    }

    /// Keep the parked findings that `keep` keeps (it may change them): the
    /// end-of-scan check of [`Findings::retain_listed`], one at a time.
    pub fn retain_parked(
        &mut self,
        mut keep: impl FnMut(&mut engine::Finding) -> bool,
    ) -> std::io::Result<()> {
        let Some(parked) = self.parked.as_mut() else {
            return Ok(());
        };
        parked.spill.flush()?;
        let groups: Vec<String> = parked.at.keys().cloned().collect();
        for g in groups {
            let (seq, at) = parked.at[&g];
            let (_, mut f) = parked.read(at)?;
            if !keep(&mut f) {
                parked.at.remove(&g);
                continue;
            }
            let at = put_aside(&mut parked.spill, seq, &f)?;
            parked.at.insert(g, (seq, at));
        }
        Ok(())
    }

    fn push(&mut self, f: engine::Finding) {
        self.list.push(f);
        self.seq.push(self.next_seq);
        self.next_seq += 1;
    }

    /// Add a finding, merging it into an earlier one of the same group (waste
    /// and time added, spans joined, latest text, pattern and alert state
    /// kept). Returns its index.
    fn merge_into(&mut self, f: engine::Finding) -> usize {
        let Some(g) = f.group.clone() else {
            self.push(f);
            return self.list.len() - 1;
        };
        if !self.by_group.contains_key(&g) {
            self.unpark(&g);
        }
        let Some(&i) = self.by_group.get(&g) else {
            let i = self.list.len();
            self.list_group(g, &f);
            self.push(f);
            return i;
        };
        let joined = self.spans_of.entry(i).or_default();
        joined.round = self.round;
        let set = &mut joined.spans;
        let old = &mut self.list[i];
        let mut spans = std::mem::take(&mut old.spans);
        for s in f.spans.iter() {
            if set.insert(model::span_key(&s.trace_id, &s.span_id)) {
                spans.push(s.clone());
            }
        }
        let mut waste = std::mem::take(&mut old.waste);
        waste.extend(f.waste.iter().cloned());
        let waste_seconds = old.waste_seconds + f.waste_seconds;
        *old = engine::Finding {
            spans,
            waste,
            waste_seconds,
            ..f
        };
        i
    }
}

/// A listed group's finding: the spans it names, by key (`model::span_key`:
/// a pair of strings per span was a third of a long scan's grouped findings),
/// and the round it was last joined in.
#[derive(Default)]
struct Joined {
    spans: rustc_hash::FxHashSet<u64>,
    round: u64,
}

/// A finding in memory (or its index), or where one is on disk.
enum Place<F> {
    Listed(F),
    Parked(crate::spill::At),
}

/// Grouped findings on disk: by group, its place in the order of adding and
/// where its record is. A group read back and parked again leaves its old
/// record unused in the file.
struct Parked {
    spill: crate::spill::Spill,
    at: HashMap<String, (u64, crate::spill::At)>,
}

impl Parked {
    /// Take a group's finding back from disk.
    fn take(&mut self, group: &str) -> Option<(u64, engine::Finding)> {
        let (_, at) = self.at.remove(group)?;
        let read = (self.spill.flush()).and_then(|_| self.read(at));
        Some(read.expect("findings set aside on disk can be read back"))
    }

    /// A parked finding with its place (after [`Spill::flush`](crate::spill::Spill::flush)).
    fn read(&self, at: crate::spill::At) -> std::io::Result<(u64, engine::Finding)> {
        set_aside(&self.spill.read(at)?)
    }
}

/// Listed findings (or their indexes) and the parked ones, by their place in
/// the order of adding: a group read back from disk was listed at the end.
fn in_seq_order<F>(
    listed: impl Iterator<Item = (u64, Place<F>)>,
    parked: Option<&mut Parked>,
) -> std::io::Result<Vec<(u64, Place<F>)>> {
    let mut all: Vec<_> = listed.collect();
    if let Some(p) = parked {
        p.spill.flush()?;
        all.extend(p.at.values().map(|&(seq, at)| (seq, Place::Parked(at))));
    }
    all.sort_unstable_by_key(|r| r.0);
    Ok(all)
}

/// Write a finding with its place, as [`set_aside`] reads it.
fn put_aside(
    spill: &mut crate::spill::Spill,
    seq: u64,
    f: &engine::Finding,
) -> std::io::Result<crate::spill::At> {
    let bytes = postcard::to_stdvec(&(seq, f)).map_err(std::io::Error::other)?;
    spill.push(&bytes)
}

/// A finding as [`Findings::spill_settled`] wrote it: its place and itself.
fn set_aside(bytes: &[u8]) -> std::io::Result<(u64, engine::Finding)> {
    postcard::from_bytes(bytes).map_err(std::io::Error::other)
}

/// Why findings could not go to disk.
#[derive(Debug)]
pub enum SpillError {
    /// no spill file could be made: nothing was moved
    Create(std::io::Error),
    /// writing failed part way: findings may be lost, the scan cannot report
    Write(std::io::Error),
}

/// A rule's state in watch mode's checkpoint: its analyzer's saved state
/// (none if it was stopped) and the grouped findings it may still add to.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedRule {
    pub id: String,
    /// sha-256 of the component: a state is restored only into the same one
    pub plugin: String,
    pub params: String,
    analyzer: Option<Vec<u8>>,
    grouped: Vec<engine::Finding>,
}

impl RuleRun {
    /// This rule's state for a checkpoint; `Err` says why it cannot be saved
    /// (its detector cannot, or failed to).
    pub fn save(&mut self) -> Result<SavedRule, String> {
        let analyzer = match self.analyzer.as_mut() {
            None => None,
            Some(a) => match a.save() {
                Ok(Some(state)) => Some(state),
                Ok(None) => {
                    return Err(format!(
                        "{} {} ({}) does not save its state",
                        self.plugin.meta.name, self.plugin.meta.version, self.plugin.wit
                    ))
                }
                Err(stop) => return Err(format!("{}: save {stop}", self.plugin.meta.name)),
            },
        };
        // Findings without a group never change again: they were written.
        let grouped = (self.findings.list.iter())
            .filter(|f| f.group.is_some())
            .cloned()
            .collect();
        Ok(SavedRule {
            id: self.rule.id.clone(),
            plugin: self.plugin.hash.clone(),
            params: self.params.clone(),
            analyzer,
            grouped,
        })
    }

    /// Put this rule back as [`RuleRun::save`] found it: same component and
    /// parameters, the analyzer restored (or stopped, as it was).
    pub fn restore(&mut self, engine: &Engine, saved: SavedRule) -> Result<(), String> {
        if saved.id != self.rule.id
            || saved.plugin != self.plugin.hash
            || saved.params != self.params
        {
            return Err(format!("rule `{}` changed", self.rule.id));
        }
        self.analyzer = match saved.analyzer {
            None => None,
            Some(state) => Some(
                engine
                    .restore(&self.plugin, &self.params, &state, &self.rule.limits)
                    .map_err(|e| format!("rule `{}`: {e}", self.rule.id))?,
            ),
        };
        self.findings = Findings::default();
        for f in saved.grouped {
            self.findings.merge_into(f);
        }
        Ok(())
    }

    /// Keep what a call returned, within the rule's output limits; a call that
    /// failed or broke them stops the detector, and says why.
    fn record(&mut self, r: Result<Vec<engine::Finding>, engine::Stop>, stage: &str) {
        let r = r
            .map_err(|stop| stop.to_string())
            .and_then(|fs| self.rule.limits.output.check(&fs).map(|_| fs));
        match r {
            Ok(fs) => fs.into_iter().for_each(|f| self.findings.merge(f)),
            Err(why) => {
                self.failure = Some(format!("{stage}: {why}"));
                self.analyzer = None;
            }
        }
    }
}

/// Load every enabled rule's detector and create its analyzer.
pub fn prepare(set: &RuleSet, engine: &Engine) -> Result<Vec<RuleRun>, ScanError> {
    let mut loaded: HashMap<String, Arc<LoadedPlugin>> = HashMap::new();
    let mut runs = Vec::new();
    for rule in set.rules.iter().filter(|r| r.enabled) {
        let key = rule.source.to_string();
        let plugin = match loaded.get(&key) {
            Some(p) => p.clone(),
            None => {
                let bytes: std::borrow::Cow<[u8]> = match &rule.source {
                    Source::Builtin(n) => crate::builtin::wasm(n).expect("validated").into(),
                    Source::File(p) => engine::read_component(p).map_err(ScanError::Load)?.into(),
                };
                let p = Arc::new(engine.load(&bytes, &key).map_err(|e| {
                    ScanError::Load(format!(
                        "rule `{}` ({}:{}): {e:#}",
                        rule.id, rule.at.file, rule.at.line
                    ))
                })?);
                loaded.insert(key, p.clone());
                p
            }
        };
        let params = rule.params_json(&plugin, set)?;
        let analyzer =
            engine
                .analyzer(&plugin, &params, &rule.limits)
                .map_err(|why| match why {
                    engine::StartError::BadParams(_) => {
                        ScanError::Pack(rule.at.error(format!("rule `{}`: {why}", rule.id)))
                    }
                    engine::StartError::Failed(_) => {
                        ScanError::Load(format!("rule `{}` ({}): {why}", rule.id, plugin.source))
                    }
                })?;
        runs.push(RuleRun {
            rule: rule.clone(),
            plugin,
            analyzer: Some(analyzer),
            params,
            findings: Findings::default(),
            counters: Vec::new(),
            failure: None,
            dropped_charges: 0,
            waste_days: WasteDays::new(),
        });
    }
    Ok(runs)
}

/// What to keep of the spans' big texts: only what some rule reads.
pub fn keep_for(runs: &[RuleRun]) -> Keep {
    let any = |f: Field| runs.iter().any(|r| r.plugin.needs(f));
    Keep {
        input_text: any(Field::InputText),
        output_text: any(Field::OutputText),
        tool_args: any(Field::ToolArguments) || any(Field::Tool),
        tool_result: any(Field::ToolResult),
    }
}

/// Totals over the whole input, for shares.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Totals {
    pub spans: u64,
    pub traces: u64,
    pub sessions: u64,
    pub llm_calls: u64,
    pub tool_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub total_tokens: u64,
    /// tokens per model, for the cost of the input (cache priced apart)
    pub by_model: std::collections::BTreeMap<String, crate::model::Usage>,
    /// what all LLM calls cost: as the source recorded it where it did, else at
    /// list prices where the model's price is known
    pub cost_usd: Option<f64>,
    /// the part of `cost_usd` the source recorded, and for how many calls
    pub cost_recorded_usd: f64,
    pub cost_recorded_calls: u64,
    /// per model, the calls whose cost the source recorded (not priced again)
    #[serde(skip)]
    pub recorded: std::collections::BTreeMap<String, Recorded>,
    /// models of LLM calls that have no known price
    pub unpriced_models: u64,
    /// their names, so a price can be added for them (`[prices."MODEL"]` in a pack)
    pub unpriced: Vec<String>,
    /// what was captured, so a report can say which detectors could not look
    pub content: Captured,
    /// bytes of all captured texts: no charge of content tokens can exceed it
    #[serde(skip)]
    pub content_bytes: u64,
    /// the time the input covers: the oldest span's start and the newest span's end
    pub first_start_ns: u64,
    pub last_end_ns: u64,
    /// per UTC day (by day number; `YYYY-MM-DD` in JSON), the day a call starts:
    /// the LLM calls' tokens, and their cost once priced (what `--baseline` reads back)
    #[serde(serialize_with = "days_as_dates")]
    pub daily: std::collections::BTreeMap<u64, Day>,
}

/// Day numbers become dates only when written: counting a call stays cheap.
fn days_as_dates<S: serde::Serializer>(
    days: &std::collections::BTreeMap<u64, Day>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        days.iter()
            .map(|(d, v)| (model::utc_day(d * model::DAY_NS), v)),
    )
}

/// One UTC day's LLM calls.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Day {
    pub llm_calls: u64,
    pub tokens: u64,
    pub cost_usd: Option<f64>,
    /// wasted tokens charged to this day's calls, by rule (filled by the report)
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub waste: std::collections::BTreeMap<String, u64>,
    /// usage by model, to price the day
    #[serde(skip)]
    pub by_model: std::collections::BTreeMap<String, crate::model::Usage>,
}

impl Totals {
    /// Days the input covers (newest span end − oldest span start).
    pub fn covered_days(&self) -> f64 {
        self.last_end_ns.saturating_sub(self.first_start_ns) as f64 / 86_400e9
    }
}

/// Calls of one model whose cost the source recorded.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub calls: u64,
    pub usd: f64,
    pub usage: crate::model::Usage,
}

/// How many calls carry each kind of content a detector may read.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Captured {
    pub llm_input_text: u64,
    pub llm_output_text: u64,
    /// tool calls with arguments or a resource URI
    pub tool_arguments: u64,
}

/// Everything a report is made of.
pub struct Outcome {
    pub runs: Vec<RuleRun>,
    pub totals: Totals,
    pub read: ReadStats,
    pub trace_models: crate::prices::TraceModels,
    pub peak_open: usize,
    pub prices: crate::prices::Prices,
    pub packs: Vec<(String, String)>,
    /// the costliest LLM calls, costliest first (when `Options::costliest` asked)
    pub costliest: Vec<crate::costliest::Call>,
    /// bytes per content token (`[settings] bytes_per_token`, else 4)
    pub bytes_per_token: f64,
    /// what findings and totals counted, when a window was asked for
    pub window: Option<Window>,
    /// `--baseline`'s days, `YYYY-MM-DD=tokens` (and `covered=…`)
    pub baseline_days: Vec<String>,
    /// a report of more findings than this keeps them on disk
    pub findings_in_memory: usize,
}

/// Feed sessions to every rule, batch by batch, rules in parallel.
pub fn feed(
    runs: &mut [RuleRun],
    sessions: Vec<model::Session>,
    batch_spans: usize,
    trace_models: &mut crate::prices::TraceModels,
) {
    // Ordinary service spans are most spans of a real service, and no
    // built-in detector reads them: they stay out of the columns unless some
    // rule asks for them (`span-kinds`).
    let keep_other = runs.iter().any(|r| r.plugin.reads(SpanKind::Other));
    for mut batch in model::batches(sessions, batch_spans) {
        let (cols, data) = Columns::build(&mut batch, keep_other);
        for (trace, model) in &cols.trace_models {
            trace_models.add(*trace, model);
        }
        let data = Arc::new(data);
        runs.par_iter_mut().for_each(|run| {
            if let Some(a) = run.analyzer.as_mut() {
                let r = a.observe(&cols, &run.plugin.meta.needs, data.clone());
                run.record(r, "observe");
            }
        });
    }
}

/// Ask every rule for what it held back, and its counters.
pub fn finish(runs: &mut [RuleRun]) {
    runs.par_iter_mut().for_each(|run| {
        if let Some(a) = run.analyzer.as_mut() {
            let r = a.finish();
            let c = a.counters();
            run.record(r, "finish");
            if let Ok(c) = c {
                run.counters = c.into_iter().map(|c| (c.name, c.value)).collect();
            }
        }
    });
}

/// Add up totals of complete sessions: of the spans inside the window, if
/// there is one (the others are still analysed, as context, but not counted;
/// their keys go to `outside`). `seen` holds the sessions counted so far: a
/// long session can reach the detectors in several parts and still counts once.
pub fn survey(
    sessions: &[model::Session],
    t: &mut Totals,
    seen: &mut rustc_hash::FxHashSet<Arc<str>>,
    window: Option<&Window>,
    outside: &mut rustc_hash::FxHashSet<u64>,
) {
    for s in sessions {
        let mut session_in = false;
        for tr in &s.traces {
            let mut trace_in = false;
            for sp in &tr.spans {
                if window.is_some_and(|w| !w.contains(sp.start_ns)) {
                    outside.insert(model::span_key(&sp.trace_id, &sp.span_id));
                    continue;
                }
                trace_in = true;
                t.count(sp);
            }
            t.traces += u64::from(trace_in);
            session_in |= trace_in;
        }
        if session_in && seen.insert(s.id.clone()) {
            t.sessions += 1;
        }
    }
    t.total_tokens = t.input_tokens + t.output_tokens;
}

impl Totals {
    fn count(&mut self, sp: &model::Span) {
        self.spans += 1;
        if sp.start_ns > 0 {
            let first = if self.first_start_ns == 0 {
                sp.start_ns
            } else {
                self.first_start_ns
            };
            self.first_start_ns = first.min(sp.start_ns);
        }
        self.last_end_ns = self.last_end_ns.max(sp.end_ns);
        self.content_bytes += [&sp.input_text, &sp.output_text, &sp.tool_args]
            .iter()
            .map(|x| x.as_ref().map_or(0, |x| x.len() as u64))
            .sum::<u64>()
            + sp.tool_result_bytes().unwrap_or(0);
        match sp.kind {
            Kind::Llm => self.count_llm(sp),
            Kind::Tool => {
                self.tool_calls += 1;
                self.content.tool_arguments +=
                    u64::from(sp.tool_args.is_some() || sp.resource_uri.is_some());
            }
            _ => {}
        }
    }

    fn count_llm(&mut self, sp: &model::Span) {
        let model = sp.model.as_deref().unwrap_or("(unknown)");
        let u = &sp.usage;
        self.llm_calls += 1;
        self.content.llm_input_text += u64::from(sp.input_text.is_some());
        self.content.llm_output_text += u64::from(sp.output_text.is_some());
        self.input_tokens += u.input;
        self.output_tokens += u.output;
        self.cached_tokens += u.cache_read;
        self.by_model.entry(model.to_string()).or_default().add(u);
        let day_no = sp.start_ns / model::DAY_NS;
        let day = self.daily.entry(day_no).or_default();
        day.llm_calls += 1;
        day.tokens += u.input + u.output;
        day.by_model.entry(model.to_string()).or_default().add(u);
        if let Some(usd) = sp.recorded_cost {
            let r = self.recorded.entry(model.to_string()).or_default();
            r.calls += 1;
            r.usd += usd;
            r.usage.add(u);
        }
    }
}

/// The part of the input that findings and totals count (`--since`, `--until`):
/// spans starting at or after `since` and before `until`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Window {
    pub since: Option<u64>,
    pub until: Option<u64>,
}

impl Window {
    pub fn contains(&self, ns: u64) -> bool {
        self.since.is_none_or(|s| ns >= s) && self.until.is_none_or(|u| ns < u)
    }
}

/// A window bound as given: a UTC date (`2026-11-01`) or a span back from the
/// newest span's end (`7d`, `24h`).
#[derive(Clone, Debug, PartialEq)]
pub enum Bound {
    Date(u64),
    Back(u64),
}

impl std::str::FromStr for Bound {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let back = |n: &str, unit: u64| {
            n.parse::<u64>()
                .map(|n| Bound::Back(n.saturating_mul(unit)))
                .map_err(|_| format!("`{s}`: expected a number before the unit"))
        };
        if let Some(n) = s.strip_suffix('d') {
            return back(n, 86_400_000_000_000);
        }
        if let Some(n) = s.strip_suffix('h') {
            return back(n, 3_600_000_000_000);
        }
        let bad = || format!("`{s}`: expected a date (2026-11-01, UTC) or a span back (7d, 24h)");
        let mut parts = s.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (Some(Some(y)), Some(Some(m)), Some(Some(d))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let month = time::Month::try_from(m as u8).map_err(|_| bad())?;
        let d = time::Date::from_calendar_date(y as i32, month, d as u8).map_err(|_| bad())?;
        let ns = d.midnight().assume_utc().unix_timestamp_nanos();
        u64::try_from(ns)
            .map(Bound::Date)
            .map_err(|_| format!("`{s}`: before 1970"))
    }
}

/// The window the options ask for. A bound counted back from the newest span
/// needs that span first: the exports are read once more, timestamps only.
pub fn window(opts: &Options) -> Result<Option<Window>, ScanError> {
    if opts.since.is_none() && opts.until.is_none() {
        return Ok(None);
    }
    let relative = [&opts.since, &opts.until]
        .iter()
        .any(|b| matches!(b, Some(Bound::Back(_))));
    let newest = if relative { newest_end(opts) } else { 0 };
    Ok(Some(Window {
        since: opts.since.as_ref().map(|b| b.at(newest)),
        until: opts.until.as_ref().map(|b| b.at(newest)),
    }))
}

/// The end of the span that ends last in the exports.
fn newest_end(opts: &Options) -> u64 {
    let mut reader = Reader::new(Keep {
        input_text: false,
        output_text: false,
        tool_args: false,
        tool_result: false,
    });
    reader.format = opts.input_format;
    // Nothing runs beside this reading (no assembly, no detectors): half of
    // each block is parsed on the pool, not an eighth; and spans need only
    // their times.
    reader.pool_share = 2;
    reader.times_only = true;
    let files = reader.expand(&opts.inputs);
    let mut newest = 0;
    reader.read_all(&files, &mut |spans| {
        let ends = spans.iter().flatten().map(|s| s.end_ns);
        newest = ends.fold(newest, u64::max);
    });
    newest
}

impl Bound {
    fn at(&self, newest_end: u64) -> u64 {
        match self {
            Bound::Date(ns) => *ns,
            Bound::Back(d) => newest_end.saturating_sub(*d),
        }
    }
}

/// Spans held in open traces before the scan starts closing quiet ones.
pub const OPEN_BUDGET: usize = 50_000;

/// A rule's settled findings held in memory before they go to disk, and the
/// most findings a report holds in memory (see `spill`): a few MB.
pub const FINDINGS_IN_MEMORY: usize = 2048;

/// Streams spans into traces and complete traces into the rules.
pub struct Pipeline<'a> {
    pub runs: &'a mut [RuleRun],
    pub asm: Assembler,
    pub totals: Totals,
    pub problems: Vec<Problem>,
    /// problems only counted (a flood of notes)
    pub more_problems: u64,
    pub trace_models: crate::prices::TraceModels,
    pub batch_spans: usize,
    /// most traces open at once, to show memory stays bounded
    pub peak_open: usize,
    /// spans held open before quiet traces are closed early
    pub open_budget: usize,
    /// the budget was passed: quiet traces are closed as they become quiet
    closing: bool,
    /// the costliest LLM calls, when asked for (`top`)
    pub costliest: Option<crate::costliest::Costliest>,
    /// what totals and findings count (`--since`, `--until`); spans outside
    /// it are analysed as context only
    pub window: Option<Window>,
    /// spans analysed but outside the window
    outside: rustc_hash::FxHashSet<u64>,
    sessions_seen: rustc_hash::FxHashSet<Arc<str>>,
    /// a rule's settled findings past this many go to disk (see [`Findings::spill_settled`])
    pub spill_at: usize,
    /// why findings could not be set aside; the scan then fails
    spill_error: Option<std::io::Error>,
}

impl<'a> Pipeline<'a> {
    pub fn new(runs: &'a mut [RuleRun], quiet_ns: u64, batch_spans: usize) -> Self {
        Pipeline {
            runs,
            asm: Assembler::new(quiet_ns),
            totals: Totals::default(),
            problems: Vec::new(),
            more_problems: 0,
            trace_models: Default::default(),
            batch_spans,
            peak_open: 0,
            open_budget: OPEN_BUDGET,
            closing: false,
            costliest: None,
            window: None,
            outside: Default::default(),
            sessions_seen: Default::default(),
            spill_at: FINDINGS_IN_MEMORY,
            spill_error: None,
        }
    }

    /// Add a block of spans, then analyse the traces that are complete.
    pub fn push(&mut self, spans: ingest::Block) {
        let now = std::time::Instant::now();
        for s in spans.into_iter().flatten() {
            match self.asm.add_at(s, now) {
                Added::New => {}
                Added::Late {
                    origin,
                    trace_id,
                    span_id,
                } => self.problems.push(Problem::at(
                    &origin,
                    format!(
                        "span {span_id} of trace {trace_id} arrived after that trace was analysed early to bound memory; it is analysed as part of a partial trace (raise --open-spans above {}, or --quiet-secs)",
                        self.open_budget
                    ),
                )),
                Added::Repeat => {}
            }
        }
        self.take_notes();
        self.peak_open = self.peak_open.max(self.asm.open_traces());
        // Below the budget nothing is closed early, so an export in any order is
        // read exactly. Once past it, quiet traces go to the detectors as they
        // become quiet: closing them only when the budget is crossed again would
        // send them in bursts of the whole budget, and reading would stall while
        // a burst is analysed.
        self.closing |= self.asm.open_spans() > self.open_budget;
        if self.closing {
            let done = self.asm.take_quiet();
            self.take_notes();
            self.analyse(done);
        }
    }

    /// The assembler's notes (clock errors, parent loops) become located problems.
    fn take_notes(&mut self) {
        let (notes, more) = self.asm.take_notes();
        self.problems
            .extend(notes.into_iter().map(|n| Problem::at(&n.origin, n.what)));
        self.more_problems += more;
    }

    fn analyse(&mut self, sessions: Vec<model::Session>) {
        if sessions.is_empty() {
            return;
        }
        let window = self.window;
        survey(
            &sessions,
            &mut self.totals,
            &mut self.sessions_seen,
            window.as_ref(),
            &mut self.outside,
        );
        if let Some(c) = self.costliest.as_mut() {
            for s in &sessions {
                let calls = s.traces.iter().flat_map(|t| &t.spans);
                calls
                    .filter(|sp| sp.kind == Kind::Llm)
                    .filter(|sp| window.is_none_or(|w| w.contains(sp.start_ns)))
                    .for_each(|sp| c.offer(sp, &s.id));
            }
        }
        feed(
            self.runs,
            sessions,
            self.batch_spans,
            &mut self.trace_models,
        );
        self.spill();
    }

    /// End of input: analyse what is still open, then finish every rule.
    pub fn close(&mut self) {
        let rest = self.asm.take_all();
        self.take_notes();
        self.analyse(rest);
        finish(self.runs);
        self.check_charges();
    }

    /// A detector's word is not trusted for what it charges: a charge must name
    /// a span of the input and cannot exceed all the input's tokens and texts.
    fn check_charges(&mut self) {
        let check = Checker::new(&self.totals, &self.asm, &self.outside, &self.window);
        for run in self.runs.iter_mut() {
            let (dropped, days) = (&mut run.dropped_charges, &mut run.waste_days);
            run.findings.retain_listed(|f| check.keep(f, dropped, days));
            if let Err(e) = run.findings.retain_parked(|f| check.keep(f, dropped, days)) {
                self.spill_error.get_or_insert(e);
            }
        }
    }

    /// Past `spill_at` settled findings, a rule's findings go to disk, checked
    /// as at the end but against the input read so far (a charge names spans
    /// of sessions already analysed, so nothing it may charge is still to come).
    fn spill(&mut self) {
        if self.spill_error.is_some() {
            return;
        }
        let check = Checker::new(&self.totals, &self.asm, &self.outside, &self.window);
        for run in self.runs.iter_mut() {
            let spill_at = self.spill_at.max(1);
            let mut set_aside = Ok(());
            if run.findings.grouped() >= spill_at {
                set_aside = run.findings.park_idle();
            }
            if set_aside.is_ok() && run.findings.settled() >= spill_at {
                let (dropped, days) = (&mut run.dropped_charges, &mut run.waste_days);
                set_aside = run.findings.spill_settled(|f| check.keep(f, dropped, days));
            }
            match set_aside {
                Ok(()) => {}
                Err(SpillError::Create(e)) => {
                    // Nothing moved: findings stay in memory, as they did
                    // before they could go to disk.
                    eprintln!("tokenhound: {e}; findings are kept in memory");
                    self.spill_at = usize::MAX;
                    return;
                }
                Err(SpillError::Write(e)) => {
                    self.spill_error = Some(e);
                    return;
                }
            }
        }
    }
}

/// What [`Pipeline::check_charges`] checks a finding against.
struct Checker<'p> {
    /// all the input's tokens and text bytes
    all: u64,
    asm: &'p Assembler,
    /// spans outside the window
    outside: &'p rustc_hash::FxHashSet<u64>,
    window: bool,
}

impl<'p> Checker<'p> {
    fn new(
        totals: &Totals,
        asm: &'p Assembler,
        outside: &'p rustc_hash::FxHashSet<u64>,
        window: &Option<Window>,
    ) -> Self {
        Checker {
            all: totals.total_tokens + totals.content_bytes,
            asm,
            outside,
            window: window.is_some(),
        }
    }

    /// Drop the charges the finding may not make (counted in `dropped`) and
    /// those outside the window; whether the finding is kept. A kept
    /// finding's charges to calls add to `days`, on the day each call starts.
    fn keep(&self, f: &mut engine::Finding, dropped: &mut u64, days: &mut WasteDays) -> bool {
        let outside = |s: &engine::SpanRef| {
            self.outside
                .contains(&model::span_key(&s.trace_id, &s.span_id))
        };
        let mut dated = Vec::new();
        f.waste.retain(|c| {
            let known = (c.tokens <= self.all)
                .then(|| self.asm.taken(&c.span.trace_id, &c.span.span_id))
                .flatten();
            let Some(call_day) = known else {
                *dropped += 1;
                return false;
            };
            // Outside the window: context, not counted.
            if outside(&c.span) {
                return false;
            }
            dated.extend(call_day.map(|d| (d, c.tokens)));
            true
        });
        // A finding with nothing in the window is not this window's.
        let kept = !self.window
            || !f.waste.is_empty()
            || f.alert
            || f.spans.is_empty()
            || f.spans.iter().any(|s| !outside(s));
        if kept {
            for (day, tokens) in dated {
                let w = days.entry(day).or_default();
                *w = w.saturating_add(tokens);
            }
        }
        kept
    }
}

/// A whole scan, from files to the outcome.
pub fn run(opts: &Options) -> Result<Outcome, ScanError> {
    let mut set = RuleSet::from_files(&opts.packs)?;
    if let Some(b) = &opts.baseline {
        set.baseline_days = baseline_days(b)?;
    }
    let outcome = run_set(&set, opts)?;
    understood(&outcome.read, &outcome.totals)?;
    Ok(outcome)
}

/// A scan with a rule set built by the caller (the test harness).
pub fn run_set(set: &RuleSet, opts: &Options) -> Result<Outcome, ScanError> {
    let mut set = set.clone();
    let window = window(opts)?;
    set.window_ns = window.map(|w| (w.since.unwrap_or(0), w.until.unwrap_or(u64::MAX)));
    let engine = Engine::new(opts.cache_dir.clone(), set.wants_fuel(), set.max_stack)
        .map_err(|e| ScanError::Load(format!("{e:#}")))?;
    let mut runs = prepare(&set, &engine)?;
    let mut reader = Reader::new(keep_for(&runs));
    set.apply_input_limits(&mut reader);
    let files = reader.expand(&opts.inputs);
    reader.format = opts.input_format;
    let mut maps = set.mappings.clone();
    maps.extend(load_mappings(&opts.mapping_files)?.0);
    reader.maps = Arc::new(ingest::mapping::Mappings(maps));
    let bar = opts.progress.then(|| progress_bar(&files));
    let bytes = reader.bytes.clone();
    let mut pipe = Pipeline::new(&mut runs, opts.quiet_ns, opts.batch_spans);
    pipe.open_budget = opts.open_spans;
    pipe.spill_at = opts.findings_in_memory;
    pipe.window = window;
    if opts.costliest > 0 {
        let prices = crate::prices::Prices::with(&set.prices);
        pipe.costliest = Some(crate::costliest::Costliest::new(opts.costliest, prices));
    }
    // Reading and parsing run on their own thread, a block ahead of assembly
    // and the detectors.
    let mut reader = reader.read_all_ahead(&files, &mut |spans| {
        pipe.push(spans);
        if let Some(b) = &bar {
            b.set_position(bytes.load(std::sync::atomic::Ordering::Relaxed));
        }
    });
    pipe.close();
    if let Some(e) = pipe.spill_error.take() {
        return Err(ScanError::Spill(e.to_string()));
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    for p in std::mem::take(&mut pipe.problems) {
        reader.problem(p);
    }
    reader.stats.problems += pipe.more_problems;
    reader.stats.repeats(pipe.asm.take_repeats());
    let (totals, trace_models, peak_open) = (
        std::mem::take(&mut pipe.totals),
        std::mem::take(&mut pipe.trace_models),
        pipe.peak_open,
    );
    let read = reader.stats;
    let window = pipe.window;
    let costliest = pipe
        .costliest
        .take()
        .map_or_else(Vec::new, |c| c.into_sorted());
    // Every rule has finished: the assembler's indexes and the detectors'
    // instances (their memories are the scan's largest) go before the report
    // is built, so building it reuses their room instead of adding to the peak.
    drop(pipe);
    runs.iter_mut().for_each(|r| r.analyzer = None);
    Ok(Outcome {
        runs,
        totals,
        read,
        trace_models,
        peak_open,
        prices: crate::prices::Prices::with(&set.prices),
        packs: set.packs,
        costliest,
        bytes_per_token: set.bytes_per_token.unwrap_or(4.0),
        window,
        baseline_days: set.baseline_days.clone(),
        findings_in_memory: opts.findings_in_memory,
    })
}

/// The daily totals of an earlier JSON report (`totals.daily`), as
/// `YYYY-MM-DD=tokens`.
fn baseline_days(path: &std::path::Path) -> Result<Vec<String>, ScanError> {
    let bad = |why: String| ScanError::Usage(format!("--baseline {}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON report: {e}")))?;
    // An audit (`tokenhound audit --format json`) holds its report.
    let report = report.get("report").unwrap_or(&report);
    let daily = report["totals"]["daily"].as_object().ok_or_else(|| {
        bad("no totals.daily (a JSON report of tokenhound 0.1 or later, with --format json)".into())
    })?;
    let mut days: Vec<String> = daily
        .iter()
        .filter_map(|(day, d)| d["tokens"].as_u64().map(|t| format!("{day}={t}")))
        .collect();
    // The days the report covers: a period it covers only in part (last week's
    // report for last month) must not stand for the whole period.
    let (first, last) = (
        &report["totals"]["first_start_ns"],
        &report["totals"]["last_end_ns"],
    );
    if let (Some(f), Some(l)) = (first.as_u64(), last.as_u64()) {
        days.push(format!(
            "covered={}..{}",
            model::utc_day(f),
            model::utc_day(l)
        ));
    }
    Ok(days)
}

/// Why no file was read, if none was: what `scan` and `inspect` both say.
pub fn nothing_read(read: &ReadStats) -> Option<&'static str> {
    match (read.files, read.problems) {
        (0, 0) => Some("no file found in the paths given"),
        (0, _) => Some("no file could be read"),
        _ => None,
    }
}

/// A scan that understood no LLM call would report a clean bill of health for
/// nothing: it is an error that says what was read and where to look.
fn understood(read: &ReadStats, totals: &Totals) -> Result<(), ScanError> {
    // Tool calls alone are something to analyse (retries, re-reads); LLM calls
    // without any token usage, or nothing at all, are not.
    let some = (totals.llm_calls > 0 && totals.total_tokens > 0)
        || (totals.llm_calls == 0 && totals.tool_calls > 0);
    if some {
        return Ok(());
    }
    let what = if let Some(why) = nothing_read(read) {
        why.to_string()
    } else if read.spans == 0 {
        format!(
            "{} file(s) read, {} record(s), no span understood",
            read.files, read.records
        )
    } else if totals.llm_calls > 0 {
        format!(
            "{} file(s) read, {} span(s), {} LLM call(s), but no token usage that tokenhound understands",
            read.files, read.spans, totals.llm_calls
        )
    } else {
        format!(
            "{} file(s) read, {} span(s), but none is an LLM call tokenhound understands",
            read.files, read.spans
        )
    };
    let mut msg = format!("nothing to analyse: {what}.");
    for p in read.first_problems.iter().take(5) {
        msg += &format!("\n  {p}");
    }
    if read.problems > 5 {
        msg += &format!("\n  … {} more problem(s)", read.problems - 5);
    }
    msg += "\nRun `tokenhound inspect EXPORTS` to see the formats, dialects and attributes read; custom attribute names need a mapping (`--mapping FILE`, see the README's \"Custom instrumentation\"); `--input-format` overrides format recognition.";
    Err(ScanError::Nothing(msg))
}

/// Read mapping files; a bad one is an invalid pack (exit 3).
pub fn load_mappings(files: &[PathBuf]) -> Result<ingest::mapping::Mappings, ScanError> {
    let mut all = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| {
            ScanError::Pack(PackError {
                file: name.clone(),
                line: 0,
                message: format!("cannot read: {e}"),
            })
        })?;
        let ms = ingest::mapping::parse(&name, &text).map_err(|e| {
            ScanError::Pack(PackError {
                file: name.clone(),
                line: 0,
                message: e,
            })
        })?;
        all.extend(ms);
    }
    Ok(ingest::mapping::Mappings(all))
}

fn progress_bar(files: &[PathBuf]) -> indicatif::ProgressBar {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "reading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template"),
    );
    bar
}

/// Why a rule's detector could not look at this input, if it could not: it
/// needs content that no call carries. A detector that looked and found nothing
/// must read differently from one that could not look.
pub fn not_checked(plugin: &LoadedPlugin, c: &Captured) -> Option<String> {
    let missing = [
        (Field::OutputText, c.llm_output_text, "no output content"),
        (Field::InputText, c.llm_input_text, "no input content"),
        (Field::ToolArguments, c.tool_arguments, "no tool arguments"),
    ];
    missing
        .iter()
        .find(|(f, n, _)| *n == 0 && plugin.needs(*f))
        .map(|(_, _, what)| format!("not checked: {what} captured"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(title: &str, group: Option<&str>, span: &str) -> engine::Finding {
        let s = engine::SpanRef {
            trace_id: "t".into(),
            span_id: span.into(),
        };
        engine::Finding {
            title: title.into(),
            message: String::new(),
            severity: None,
            session: None,
            trace_id: None,
            spans: vec![s.clone()],
            waste: vec![engine::Charge {
                span: s,
                tokens: 10,
            }],
            waste_kind: engine::TokenKind::Input,
            evidence: Vec::new(),
            fix: String::new(),
            group: group.map(String::from),
            pattern: None,
            waste_seconds: 0.0,
            alert: false,
        }
    }

    /// A long watch forgets findings that can no longer change, and a group
    /// kept goes on growing as before (its spans named once).
    #[test]
    fn settled_findings_are_forgotten_and_groups_still_grow() {
        let mut f = Findings::default();
        f.merge(finding("a", None, "1"));
        f.merge(finding("g", Some("g"), "2"));
        f.merge(finding("b", None, "3"));
        assert_eq!(f.take_changed(), vec![0, 1, 2]);
        assert_eq!(f.settled(), 2);
        f.forget_settled();
        assert_eq!(f.list.len(), 1);
        assert_eq!(f.settled(), 0);
        f.merge(finding("g2", Some("g"), "2"));
        f.merge(finding("g3", Some("g"), "4"));
        assert_eq!(f.take_changed(), vec![0]);
        let g = &f.list[0];
        assert_eq!(
            (g.title.as_str(), g.spans.len(), g.waste.len()),
            ("g3", 2, 3)
        );
    }

    /// Findings set aside on disk come back with the listed ones in the order
    /// they were first added (a group at its first place, grown), without
    /// those the check dropped; looking at them leaves them as they were.
    #[test]
    fn findings_set_aside_come_back_in_the_order_they_were_added() {
        let mut f = Findings::default();
        f.merge(finding("a", None, "1"));
        f.merge(finding("g", Some("g"), "2"));
        f.merge(finding("b", None, "3"));
        f.merge(finding("dropped", None, "4"));
        f.spill_settled(|x| x.title != "dropped").unwrap();
        assert_eq!((f.list.len(), f.len()), (1, 3), "the group stays listed");
        f.merge(finding("c", None, "5"));
        f.merge(finding("g2", Some("g"), "6"));
        f.spill_settled(|_| true).unwrap();
        f.merge(finding("d", None, "7"));
        let mut seen = Vec::new();
        f.visit(|x| seen.push(x.title.clone())).unwrap();
        let all: Vec<(u64, String)> = f.take_all().map(|(i, x)| (i, x.title)).collect();
        let titles: Vec<&str> = all.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(titles, ["a", "g2", "b", "c", "d"]);
        assert_eq!(seen, titles, "visit sees them in the same order");
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "{all:?}");
        assert!(f.is_empty());
    }

    /// A group no finding joined since the last round goes to disk; one that a
    /// finding joins later comes back whole (its spans and waste kept, a span
    /// named twice listed once), the end-of-scan check reaches parked ones,
    /// and every finding still comes back in the order it was first added.
    #[test]
    fn idle_groups_parked_on_disk_are_joined_checked_and_kept_in_order() {
        let mut f = Findings::default();
        f.merge(finding("g", Some("g"), "1"));
        f.merge(finding("h", Some("h"), "2"));
        f.merge(finding("dropped", Some("x"), "3"));
        f.park_idle().unwrap(); // all joined in this round: none parked
        assert_eq!((f.list.len(), f.grouped()), (3, 3));
        f.merge(finding("h2", Some("h"), "4"));
        f.park_idle().unwrap(); // g and x were idle
        assert_eq!((f.list.len(), f.grouped(), f.len()), (1, 1, 3));
        f.merge(finding("a", None, "5"));
        f.merge(finding("g2", Some("g"), "1")); // read back; span 1 again
        f.merge(finding("g3", Some("g"), "6"));
        f.park_idle().unwrap(); // h is idle now
        f.retain_listed(|x| x.title != "dropped");
        f.retain_parked(|x| x.title != "dropped").unwrap();
        let mut seen = Vec::new();
        f.visit(|x| seen.push(x.title.clone())).unwrap();
        let all: Vec<(u64, engine::Finding)> = f.take_all().collect();
        let titles: Vec<&str> = all.iter().map(|(_, x)| x.title.as_str()).collect();
        assert_eq!(titles, ["g3", "h2", "a"]);
        assert_eq!(seen, titles, "visit sees them in the same order");
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in order");
        let g = &all[0].1;
        let spans: Vec<&str> = g.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(spans, ["1", "6"], "span 1 once");
        assert_eq!(g.waste.len(), 3, "every charge joined");
    }

    /// Every built-in goes on from a saved state exactly as the analyzer that
    /// saved it would: half the example month, then save and restore into new
    /// analyzers, then the other half into both; the same findings (grouped
    /// ones included) and counters come out.
    #[test]
    fn a_restored_analyzer_goes_on_as_the_saved_one_would() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let packs = [
            root.join("rules/default.toml"),
            root.join("rules/weekly-audit.toml"),
        ];
        let set = RuleSet::from_files(&packs).unwrap();
        let engine = Engine::new(None, false, None).unwrap();
        let (mut saved, mut restored) = (
            prepare(&set, &engine).unwrap(),
            prepare(&set, &engine).unwrap(),
        );
        assert_eq!(saved.len(), 7, "every built-in");
        let mut reader = Reader::new(keep_for(&saved));
        let mut asm = model::Assembler::new(u64::MAX);
        reader.read_all(&[root.join("examples/month.jsonl.gz")], &mut |spans| {
            spans.into_iter().flatten().for_each(|s| drop(asm.add(s)))
        });
        let mut sessions = asm.take_all();
        let later = sessions.split_off(sessions.len() / 2);
        let mut models = crate::prices::TraceModels::default();
        feed(&mut saved, sessions, 512, &mut models);
        for (s, r) in saved.iter_mut().zip(restored.iter_mut()) {
            let state = s.save().unwrap_or_else(|e| panic!("{}: {e}", s.rule.id));
            r.restore(&engine, state).unwrap();
            // What a restore keeps of the findings (the others were written).
            let grouped: Vec<_> = (s.findings.list.iter())
                .filter(|f| f.group.is_some())
                .cloned()
                .collect();
            s.findings = Findings::default();
            for f in grouped {
                s.findings.merge_into(f);
            }
        }
        feed(&mut saved, later.clone(), 512, &mut models);
        feed(&mut restored, later, 512, &mut models);
        finish(&mut saved);
        finish(&mut restored);
        for (s, r) in saved.iter().zip(&restored) {
            assert!(
                s.failure.is_none() && r.failure.is_none(),
                "{:?} {:?}",
                s.failure,
                r.failure
            );
            let text = |run: &RuleRun| serde_json::to_string(&run.findings.list).unwrap();
            let (a, b) = (text(s), text(r));
            assert!(
                a == b,
                "{}: {} findings against {} restored",
                s.rule.id,
                s.findings.list.len(),
                r.findings.list.len()
            );
            assert_eq!(s.counters, r.counters, "{}", s.rule.id);
        }
        let found: Vec<_> = (saved.iter())
            .filter(|s| !s.findings.list.is_empty())
            .map(|s| s.rule.id.as_str())
            .collect();
        assert!(
            found.len() >= 5,
            "too few rules found something to compare: {found:?}"
        );
    }
}
