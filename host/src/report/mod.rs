//! Reports: the versioned JSON document (the source of truth) and renderings of
//! it for a terminal and for Markdown.

pub use crate::prices::{self, Prices};
pub mod diff;
pub mod html;
pub mod list;
pub mod patterns;

use crate::ingest::ReadStats;
use crate::rules::Severity;
use crate::scan::{Outcome, Totals};
pub use list::FindingList;
use serde::Serialize;
use std::fmt::Write as _;

/// The JSON schema id; bump on any incompatible change (docs/report-schema.md).
pub const SCHEMA: &str = "tokenhound.report/v1";

#[derive(Serialize)]
pub struct Report {
    /// the window findings and totals count (`--since`, `--until`), in ns; spans
    /// outside it were read as context only
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::scan::Window>,
    pub schema: &'static str,
    pub tokenhound: &'static str,
    pub packs: Vec<PackRef>,
    pub input: ReadStats,
    pub totals: Totals,
    /// the previous period's daily tokens from `--baseline`, by UTC date
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub baseline_daily: std::collections::BTreeMap<String, u64>,
    pub detectors: Vec<DetectorSummary>,
    pub summary: Summary,
    /// findings grouped by rule and pattern, largest first
    pub patterns: Vec<patterns::PatternOut>,
    /// the last field: [`Report::write_json`] renders it apart
    pub findings: FindingList,
}

impl Report {
    /// The report as pretty JSON, byte for byte what `serde_json`'s pretty
    /// printer writes, with the findings (most of a large report) rendered on
    /// every core, a batch at a time, and the rest as usual. Writing the
    /// report was the larger part of a scan's last step, which ran on one
    /// core while the other idled.
    pub fn write_json(&mut self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let findings = std::mem::take(&mut self.findings);
        let head = serde_json::to_string_pretty(&*self);
        self.findings = findings;
        let head = head.map_err(std::io::Error::other)?;
        let Some(open) = head.strip_suffix("\"findings\": []\n}") else {
            return serde_json::to_writer_pretty(w, self).map_err(std::io::Error::other);
        };
        w.write_all(open.as_bytes())?;
        w.write_all(b"\"findings\": [")?;
        if self.findings.is_empty() {
            return w.write_all(b"]\n}");
        }
        self.findings.write_json(w)?;
        w.write_all(b"\n  ]\n}")
    }
}

/// One finding as the pretty printer writes it as an element of the report's
/// `findings`: two levels in, which the printer is told by opening the object
/// and the array around it (on a writer that drops them). Printed flat and
/// then indented line by line, each finding was written twice (the scan's
/// time did not measurably change without the second pass).
fn finding_json(f: &FindingOut) -> serde_json::Result<Vec<u8>> {
    use serde_json::ser::Formatter;
    let mut printer = serde_json::ser::PrettyFormatter::new();
    let outside = &mut std::io::sink();
    printer
        .begin_object(outside)
        .map_err(serde_json::Error::io)?;
    printer
        .begin_array(outside)
        .map_err(serde_json::Error::io)?;
    let mut out = Vec::with_capacity(2048);
    f.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, printer,
    ))?;
    Ok(out)
}

#[derive(Serialize)]
pub struct PackRef {
    pub name: String,
    pub version: String,
}

#[derive(Serialize)]
pub struct DetectorSummary {
    pub rule: String,
    pub detector: String,
    pub version: String,
    pub source: String,
    pub sha256: String,
    pub severity: Severity,
    pub findings: usize,
    pub wasted_tokens: u64,
    pub share_pct: f64,
    pub cost_usd: Option<f64>,
    /// waste and its cost projected to a 30-day month from the time the input
    /// covers (absent when it covers less than a day)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_month: Option<PerMonth>,
    pub counters: Vec<(String, u64)>,
    /// why the engine stopped this detector, if it did
    pub failure: Option<String>,
    /// "not checked: no output content captured" when the input lacks what it reads
    pub not_checked: Option<String>,
}

#[derive(Serialize)]
pub struct Summary {
    pub findings: usize,
    pub wasted_tokens: u64,
    pub share_pct_sum: f64,
    /// tokens counted by more than one detector (charged to the same span)
    pub overlap_tokens: u64,
    pub overlap_pct: f64,
    pub cost_usd: Option<f64>,
    /// all detectors' waste and cost per 30-day month, the overlap counted
    /// once: "$X / month reclaimable"
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_month: Option<PerMonth>,
    /// days the input covers (newest span end − oldest span start)
    pub covered_days: f64,
}

/// A figure projected to a 30-day month.
#[derive(Serialize, serde::Deserialize, Clone, Copy, Debug)]
pub struct PerMonth {
    pub wasted_tokens: u64,
    pub cost_usd: Option<f64>,
}

impl PerMonth {
    /// `tokens` and `cost` over `days`, scaled to 30 days; none for an input
    /// that covers less than a day (a projection from minutes would mislead).
    fn of(tokens: u64, cost: Option<f64>, days: f64) -> Option<Self> {
        (days >= 1.0).then(|| PerMonth {
            wasted_tokens: (tokens as f64 * 30.0 / days).round() as u64,
            cost_usd: cost.map(|c| c * 30.0 / days),
        })
    }
}

#[derive(Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct SpanOut {
    pub trace_id: String,
    pub span_id: String,
}

/// A finding as every output writes it (the JSON report, `watch --output`):
/// what a rule's detector found, where, and what it wasted. Each output adds
/// its own context around it (the report its share and cost, watch an id).
#[derive(Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct FindingCore {
    pub rule: String,
    pub detector: String,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub session: Option<String>,
    pub trace_id: Option<String>,
    pub spans: Vec<SpanOut>,
    pub wasted_tokens: u64,
    /// "input" or "output": which price the waste is paid at
    pub waste_kind: String,
    pub evidence: Vec<(String, String)>,
    pub fix: String,
    /// charged spans and their tokens
    pub waste: Vec<(SpanOut, u64)>,
    /// what the finding's instances have in common (WIT 0.2.0), when set
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// time lost (tail latency), in seconds, when there is any: never tokens
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wasted_seconds: f64,
    /// an alert reports a state (budget pace), with no waste
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alert: bool,
}

impl FindingCore {
    /// A detector's finding under its rule.
    pub fn of(run: &crate::scan::RuleRun, f: crate::engine::Finding) -> Self {
        Self::under(&Rule::of(run), f)
    }

    /// A detector's finding under the rule named by `rule`.
    fn under(rule: &Rule, f: crate::engine::Finding) -> Self {
        FindingCore {
            rule: rule.id.to_string(),
            detector: rule.detector.to_string(),
            severity: f.severity.map_or(rule.severity, Severity::from),
            wasted_tokens: f.waste.iter().fold(0u64, |a, c| a.saturating_add(c.tokens)),
            waste_kind: if f.waste_kind.is_output() {
                "output"
            } else {
                "input"
            }
            .into(),
            spans: f.spans.iter().map(span_out).collect(),
            waste: f
                .waste
                .iter()
                .map(|c| (span_out(&c.span), c.tokens))
                .collect(),
            title: f.title,
            message: f.message,
            session: f.session,
            trace_id: f.trace_id,
            evidence: f.evidence,
            fix: f.fix,
            pattern: f.pattern,
            wasted_seconds: f.waste_seconds,
            alert: f.alert,
        }
    }

    /// A finding of the engine itself (a detector stopped, a reload failed).
    pub fn engine(rule: &str, title: String, message: String, fix: &str) -> Self {
        FindingCore {
            rule: rule.to_string(),
            detector: "engine".into(),
            severity: Severity::High,
            title,
            message,
            session: None,
            trace_id: None,
            spans: Vec::new(),
            wasted_tokens: 0,
            waste_kind: "input".into(),
            evidence: Vec::new(),
            fix: fix.to_string(),
            waste: Vec::new(),
            pattern: None,
            wasted_seconds: 0.0,
            alert: false,
        }
    }
}

/// A finding in the report: the finding, its share of all tokens and its cost.
#[derive(Serialize, Clone)]
pub struct FindingOut {
    #[serde(flatten)]
    pub core: FindingCore,
    pub share_pct: f64,
    pub cost_usd: Option<f64>,
}

impl std::ops::Deref for FindingOut {
    type Target = FindingCore;
    fn deref(&self) -> &FindingCore {
        &self.core
    }
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn add_cost(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0.0) + y.unwrap_or(0.0)),
    }
}

/// Tokens charged to each span, by rule: where two rules charge one span, the
/// smaller charges are the overlap the summary shows. Spans are known by their
/// key (see `model::span_key`), with the input price of their trace's model.
///
/// Each charge is one entry in a list, sorted once when the overlap is asked
/// for: a table entry per charged span with a list of its own cost about 120
/// bytes a span (50 MB of the report's peak on the 10x input's 410,000
/// charges); an entry here is 24 bytes.
#[derive(Default)]
struct Overlaps {
    charges: Vec<Charged>,
    /// the distinct input prices met, by index (`Charged::price`)
    prices: Vec<Option<f64>>,
    /// a model's index in `prices`, met once per model
    by_model: rustc_hash::FxHashMap<String, u32>,
}

/// One charge: the span's key, the rule (by index), the span's input price
/// (index into `Overlaps::prices`) and the tokens.
struct Charged {
    span: u64,
    rule: u32,
    price: u32,
    tokens: u64,
}

/// What the spans charged by more than one rule add up to.
#[derive(Default)]
struct Overlap {
    tokens: u64,
    /// (overlapping spans, their extra tokens) at each price index
    at_price: Vec<(u64, u64)>,
}

impl Overlaps {
    /// `rule` charged `c`; its price is the input price of the trace's model.
    fn charge(
        &mut self,
        rule: usize,
        c: &crate::engine::Charge,
        models: &crate::prices::TraceModels,
        prices: &crate::prices::Prices,
    ) {
        let model = models.get(&c.span.trace_id).unwrap_or("");
        let price = match self.by_model.get(model) {
            Some(&i) => i,
            None => {
                let p = (!model.is_empty())
                    .then(|| prices.of(model))
                    .flatten()
                    .map(|p| p.input);
                let i = match self.prices.iter().position(|x| *x == p) {
                    Some(i) => i as u32,
                    None => {
                        self.prices.push(p);
                        self.prices.len() as u32 - 1
                    }
                };
                self.by_model.insert(model.to_string(), i);
                i
            }
        };
        self.charges.push(Charged {
            span: crate::model::span_key(&c.span.trace_id, &c.span.span_id),
            rule: rule as u32,
            price,
            tokens: c.tokens,
        });
    }

    /// Sum each span's charges by rule; a span charged by more than one rule
    /// adds all but its largest rule's charge.
    fn overlap(&mut self) -> Overlap {
        // On every core: a month's 400 thousand charges took half of the
        // report's building on one (the findings are rendered by then).
        use rayon::slice::ParallelSliceMut;
        self.charges.par_sort_unstable_by_key(|c| (c.span, c.rule));
        let mut out = Overlap {
            tokens: 0,
            at_price: vec![(0, 0); self.prices.len()],
        };
        for span in self.charges.chunk_by(|a, b| a.span == b.span) {
            let by_rule = span
                .chunk_by(|a, b| a.rule == b.rule)
                .map(|r| r.iter().fold(0u64, |a, c| a.saturating_add(c.tokens)));
            let (mut rules, mut sum, mut max) = (0, 0u64, 0u64);
            for t in by_rule {
                rules += 1;
                sum = sum.saturating_add(t);
                max = max.max(t);
            }
            if rules > 1 {
                let extra = sum - max;
                out.tokens = out.tokens.saturating_add(extra);
                let at = &mut out.at_price[span[0].price as usize];
                at.0 += 1;
                at.1 = at.1.saturating_add(extra);
            }
        }
        out
    }

    /// The overlap and what it costs, at the input price of each span's trace
    /// model (overlapping charges are re-sent context, paid as input); no
    /// cost when no overlapping span has a price.
    fn totals(mut self) -> (u64, Option<f64>) {
        let o = self.overlap();
        let cost = (o.at_price.iter().zip(&self.prices))
            .filter(|((spans, _), _)| *spans > 0)
            .fold(None, |cost, ((_, extra), price)| {
                add_cost(cost, price.map(|p| *extra as f64 * p / 1e6))
            });
        (o.tokens, cost)
    }
}

fn span_out(s: &crate::engine::SpanRef) -> SpanOut {
    SpanOut {
        trace_id: s.trace_id.clone(),
        span_id: s.span_id.clone(),
    }
}

/// What a finding is reported under: its rule, as [`FindingCore`] names it
/// (shared by the threads that convert a rule's findings, which the rule's
/// run, holding its detector's instance, cannot be).
struct Rule<'a> {
    id: &'a str,
    detector: &'a str,
    severity: Severity,
}

impl<'a> Rule<'a> {
    fn of(run: &'a crate::scan::RuleRun) -> Self {
        Rule {
            id: &run.rule.id,
            detector: &run.plugin.meta.name,
            severity: run.rule.severity,
        }
    }
}

/// What pricing a finding needs of the scan's outcome.
struct Pricing<'a> {
    trace_models: &'a crate::prices::TraceModels,
    prices: &'a crate::prices::Prices,
    total_tokens: u64,
}

impl<'a> Pricing<'a> {
    fn of(o: &'a Outcome) -> Self {
        Pricing {
            trace_models: &o.trace_models,
            prices: &o.prices,
            total_tokens: o.totals.total_tokens,
        }
    }
}

/// A finding's waste at list prices: each charge at its trace's model price,
/// input or output as the finding says.
fn waste_cost(f: &crate::engine::Finding, o: &Pricing) -> Option<f64> {
    f.waste.iter().fold(None, |cost, c| {
        let price = o
            .trace_models
            .get(&c.span.trace_id)
            .and_then(|m| o.prices.of(m));
        let per_m = price.map(|p| {
            if f.waste_kind.is_output() {
                p.output
            } else {
                p.input
            }
        });
        add_cost(cost, per_m.map(|m| c.tokens as f64 * m / 1e6))
    })
}

fn finding_out(rule: &Rule, f: crate::engine::Finding, o: &Pricing) -> FindingOut {
    let cost_usd = waste_cost(&f, o);
    let core = FindingCore::under(rule, f);
    FindingOut {
        share_pct: pct(core.wasted_tokens, o.total_tokens),
        cost_usd,
        core,
    }
}

/// A finding as the report writes it, with its place among its rule's
/// findings and, when rendered already, its JSON.
type Converted = (u64, FindingOut, Option<Vec<u8>>);

/// A rule's findings as the report writes them, each with its JSON when
/// `render`, converted on every core.
fn convert(
    rule: &Rule,
    batch: Vec<(u64, crate::engine::Finding)>,
    o: &Pricing,
    render: bool,
) -> serde_json::Result<Vec<Converted>> {
    use rayon::prelude::*;
    batch
        .into_par_iter()
        .map(|(seq, f)| {
            let out = finding_out(rule, f, o);
            let text = render.then(|| finding_json(&out)).transpose()?;
            Ok((seq, out, text))
        })
        .collect()
}

/// The `engine` finding that says a detector was stopped, and why.
fn stopped_finding(run: &crate::scan::RuleRun, why: &str) -> FindingOut {
    let (name, version) = (&run.plugin.meta.name, &run.plugin.meta.version);
    let mut core = FindingCore::engine(
        &run.rule.id,
        format!("detector {name} {version} stopped"),
        format!(
            "The engine stopped detector {name} (rule `{}`, {}) — {why}. Its findings up to then are kept; the other detectors ran to the end.",
            run.rule.id, run.plugin.source
        ),
        "Fix the detector, or raise its limits in the rule pack ([rule.limits] timeout_ms, memory_mb, fuel) if the work is legitimate.",
    );
    core.evidence = vec![
        ("source".into(), run.plugin.source.clone()),
        ("sha256".into(), run.plugin.hash.clone()),
    ];
    FindingOut {
        core,
        share_pct: 0.0,
        cost_usd: None,
    }
}

/// What a rule's findings add up to, added in the order they were found.
#[derive(Default)]
struct Found {
    count: usize,
    tokens: u64,
    cost_usd: Option<f64>,
}

impl Found {
    fn add(&mut self, f: &FindingOut) {
        self.count += 1;
        self.tokens = self.tokens.saturating_add(f.wasted_tokens);
        self.cost_usd = add_cost(self.cost_usd, f.cost_usd);
    }
}

fn detector_summary(run: &crate::scan::RuleRun, found: &Found, o: &Outcome) -> DetectorSummary {
    let tokens = found.tokens;
    let mut counters = run.counters.clone();
    if run.dropped_charges > 0 {
        counters.push((
            "charges to spans not in the input, not counted".into(),
            run.dropped_charges,
        ));
    }
    DetectorSummary {
        rule: run.rule.id.clone(),
        detector: run.plugin.meta.name.clone(),
        version: run.plugin.meta.version.clone(),
        source: run.plugin.source.clone(),
        sha256: run.plugin.hash.clone(),
        severity: run.rule.severity,
        findings: found.count,
        wasted_tokens: tokens,
        share_pct: pct(tokens, o.totals.total_tokens),
        cost_usd: found.cost_usd,
        per_month: PerMonth::of(tokens, found.cost_usd, o.totals.covered_days()),
        counters,
        failure: run.failure.clone(),
        not_checked: crate::scan::not_checked(&run.plugin, &o.totals.content),
    }
}

/// What all LLM calls cost: the source's recorded cost where it has one, the
/// rest at list prices (cache reads and writes priced apart); models with no
/// price are named.
fn price_totals(totals: &mut Totals, prices: &Prices) {
    for day in totals.daily.values_mut() {
        day.cost_usd = day
            .by_model
            .iter()
            .fold(None, |a, (m, u)| add_cost(a, prices.cost_of(m, u)));
    }
    let models: Vec<(String, crate::model::Usage)> = totals
        .by_model
        .iter()
        .map(|(m, u)| (m.clone(), *u))
        .collect();
    for (model, all) in models {
        let recorded = totals.recorded.get(&model).cloned().unwrap_or_default();
        if recorded.calls > 0 {
            totals.cost_usd = Some(totals.cost_usd.unwrap_or(0.0) + recorded.usd);
            totals.cost_recorded_usd += recorded.usd;
            totals.cost_recorded_calls += recorded.calls;
        }
        let u = crate::model::Usage {
            input: all.input.saturating_sub(recorded.usage.input),
            output: all.output.saturating_sub(recorded.usage.output),
            cache_read: all.cache_read.saturating_sub(recorded.usage.cache_read),
            cache_write: all.cache_write.saturating_sub(recorded.usage.cache_write),
        };
        if recorded.calls > 0 && u.input + u.output == 0 {
            continue;
        }
        match prices.cost_of(&model, &u) {
            Some(usd) => totals.cost_usd = Some(totals.cost_usd.unwrap_or(0.0) + usd),
            None => {
                totals.unpriced_models += 1;
                totals.unpriced.push(model);
            }
        }
    }
}

/// A rule's charges on the day of each call it charges (dated when the scan
/// checked its findings), so a fix shows as a drop on the day it shipped.
/// Charges to spans that are neither LLM nor tool calls (a custom detector's
/// choice) have no day.
fn date_waste(totals: &mut Totals, rule: &str, days: &crate::scan::WasteDays) {
    for (&d, &tokens) in days {
        let day = totals.daily.entry(d).or_default();
        match day.waste.get_mut(rule) {
            Some(w) => *w = w.saturating_add(tokens),
            None => drop(day.waste.insert(rule.to_string(), tokens)),
        }
    }
}

/// Build the report, taking the findings out of the outcome (they can be many:
/// past `Outcome::findings_in_memory` they go to disk, see [`list`]).
pub fn build(o: &mut Outcome) -> Report {
    let mut detectors = Vec::new();
    let runs = std::mem::take(&mut o.runs);
    // each rule's findings, and one more where a rule stopped
    let expected = (runs.iter())
        .map(|r| r.findings.len() + usize::from(r.failure.is_some()))
        .sum();
    let mut list = list::Builder::new(o.findings_in_memory, expected);
    let mut overlaps = Overlaps::default();
    let mut totals = o.totals.clone();
    let spill = "findings can be set aside on disk while the report is built";
    // More findings than memory holds all go to disk as JSON: each is then
    // rendered beside its conversion, on every core, and the list only files
    // the text (converted here and rendered in the list's own batches, the
    // cores waited on each other: half idle while the report was built).
    let render = expected > o.findings_in_memory;
    for (ri, mut run) in runs.into_iter().enumerate() {
        date_waste(&mut totals, &run.rule.id, &run.waste_days);
        let mut found = Found::default();
        let mut all = run.findings.take_all();
        let (rule, pricing) = (Rule::of(&run), Pricing::of(o));
        // Each batch is converted while the one before is filed.
        let mut converted = Vec::new();
        loop {
            let batch: Vec<_> = all.by_ref().take(list::RENDER_BATCH).collect();
            if batch.is_empty() && converted.is_empty() {
                break;
            }
            for c in batch.iter().flat_map(|(_, f)| &f.waste) {
                overlaps.charge(ri, c, &o.trace_models, &o.prices);
            }
            let file = std::mem::take(&mut converted);
            let (next, filed) = rayon::join(
                || convert(&rule, batch, &pricing, render),
                || {
                    file.into_iter().try_for_each(|(seq, out, text)| {
                        found.add(&out);
                        list.push(ri, seq, out, text)
                    })
                },
            );
            filed.expect(spill);
            converted = next.expect("findings can be rendered as JSON");
        }
        detectors.push(detector_summary(&run, &found, o));
        if let Some(why) = &run.failure {
            list.push(ri, u64::MAX, stopped_finding(&run, why), None)
                .expect(spill);
        }
    }
    // what only the charges needed goes before the list is sorted
    let (overlap, overlap_cost) = overlaps.totals();
    price_totals(&mut totals, &o.prices);
    let total = totals.total_tokens;
    let days = totals.covered_days();
    let sessions = totals.sessions;
    let wasted = detectors
        .iter()
        .fold(0u64, |a, d| a.saturating_add(d.wasted_tokens));
    let (findings, patterns) = list.finish(total, sessions, days).expect(spill);
    Report {
        window: o.window,
        schema: SCHEMA,
        tokenhound: env!("CARGO_PKG_VERSION"),
        packs: o
            .packs
            .iter()
            .map(|(n, v)| PackRef {
                name: n.clone(),
                version: v.clone(),
            })
            .collect(),
        input: o.read.clone(),
        totals,
        baseline_daily: o
            .baseline_days
            .iter()
            .filter_map(|d| d.split_once('='))
            .filter_map(|(day, n)| Some((day.to_string(), n.parse().ok()?)))
            .collect(),
        summary: Summary {
            findings: findings.len(),
            wasted_tokens: wasted,
            share_pct_sum: detectors.iter().map(|d| d.share_pct).sum(),
            overlap_tokens: overlap,
            overlap_pct: pct(overlap, total),
            cost_usd: detectors.iter().fold(None, |a, d| add_cost(a, d.cost_usd)),
            // Reclaimable: a token two rules charge is saved once, so the
            // overlap and its cost are taken out.
            per_month: PerMonth::of(
                wasted.saturating_sub(overlap),
                detectors
                    .iter()
                    .fold(None, |a, d| add_cost(a, d.cost_usd))
                    .map(|c| (c - overlap_cost.unwrap_or(0.0)).max(0.0)),
                days,
            ),
            covered_days: days,
        },
        patterns,
        detectors,
        findings,
    }
}

/// `, 1.9 s waited` for a time waste, nothing otherwise.
fn waited(seconds: f64) -> String {
    if seconds > 0.0 {
        format!(", {seconds:.1} s waited")
    } else {
        String::new()
    }
}

/// One pattern: what it is, how widespread, what it costs, a typical instance, the fix.
fn pattern_text(out: &mut String, rank: usize, p: &patterns::PatternOut) {
    let waited = waited(p.wasted_seconds);
    // A finding over many sessions (an error signature) names none.
    let spread = if p.sessions == 0 {
        String::new()
    } else {
        format!(
            " in {}, {} ({:.1}% of sessions)",
            count(p.turns as u64, "turn"),
            count(p.sessions as u64, "session"),
            p.sessions_pct
        )
    };
    let _ = writeln!(
        out,
        "{rank:>3}. [{}] {}: {} — {}{spread}",
        p.severity,
        p.rule,
        clean(&p.pattern),
        count(p.instances as u64, "instance"),
    );
    let _ = writeln!(
        out,
        "     {} tokens ({:.2}%), {}{}{waited}; typical: {}",
        num(p.wasted_tokens),
        p.share_pct,
        money(p.cost_usd),
        p.per_month
            .and_then(|m| m.cost_usd)
            .map_or(String::new(), |c| format!(", ${c:.2} / month")),
        clean(&p.typical)
    );
    let _ = writeln!(out, "     fix: {}", clean(&p.fix));
}

/// One finding of the terminal table: the line, its message, where, the
/// evidence and the fix.
fn finding_text(out: &mut String, rank: usize, f: &FindingOut) {
    let waited = waited(f.wasted_seconds);
    let _ = writeln!(
        out,
        "{rank:>3}. [{}] {}: {} — {} tokens ({:.2}%), {}{waited}",
        f.severity,
        f.rule,
        clean(&f.title),
        num(f.wasted_tokens),
        f.share_pct,
        money(f.cost_usd)
    );
    let _ = writeln!(out, "     {}", clean(&f.message));
    if let Some(s) = &f.session {
        let _ = write!(out, "     session {}", clean(s));
        if let Some(t) = &f.trace_id {
            let _ = write!(out, ", trace {}", clean(t));
        }
        out.push('\n');
    }
    if !f.evidence.is_empty() {
        let ev: Vec<String> = f
            .evidence
            .iter()
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect();
        let _ = writeln!(out, "     evidence: {}", ev.join(" "));
    }
    let _ = writeln!(out, "     fix: {}", clean(&f.fix));
}

/// A count with thousands separators: 5,204,795.
/// Text for a Markdown table cell: escaped control codes and no bars.
pub(crate) fn md(s: &str) -> String {
    clean(s).replace('|', "\\|")
}

/// A cost per month, or `-` when unknown or not projected.
fn monthly(m: Option<PerMonth>) -> String {
    money(m.and_then(|m| m.cost_usd))
}

/// Dollars: cents for amounts of a dollar or more, else four significant
/// digits (a small trace's cost is not "$0.00").
pub fn usd(c: f64) -> String {
    if c >= 1.0 || c == 0.0 {
        format!("${c:.2}")
    } else {
        let digits = (3 - c.log10().floor() as i32).clamp(2, 10) as usize;
        let text = format!("{c:.digits$}");
        format!("${}", text.trim_end_matches('0'))
    }
}

pub fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A detector's counters for a person: a count "X of M" beside "responses of M"
/// is shown as a rate among M's responses (the filler rate per model).
fn counter_text(counters: &[(String, u64)]) -> Vec<String> {
    let responses = |m: &str| {
        counters
            .iter()
            .find(|(k, _)| k.strip_prefix("responses of ") == Some(m))
            .map(|c| c.1)
    };
    counters
        .iter()
        .filter(|(k, v)| *v > 0 && !k.starts_with("responses of "))
        .map(|(k, v)| {
            let of = k.rsplit_once(" of ").and_then(|(_, m)| responses(m));
            match of {
                Some(n) if n > 0 => format!(
                    "{}: {} of {} responses ({:.1}%)",
                    clean(k),
                    num(*v),
                    num(n),
                    *v as f64 * 100.0 / n as f64
                ),
                _ => format!("{}: {}", clean(k), num(*v)),
            }
        })
        .collect()
}

/// "1 session", "2 sessions": a count with its noun.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", num(n))
    }
}

/// Text a plugin or an input wrote, made safe for a terminal: control
/// characters (ESC, OSC, carriage returns) are shown escaped, never sent raw.
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

fn money(c: Option<f64>) -> String {
    c.map_or("-".into(), |c| format!("${c:.2}"))
}

impl Report {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.worst()
    }

    fn header(&self, out: &mut String) {
        let t = &self.totals;
        let _ = writeln!(
            out,
            "tokenhound {}: {}, {}, {} ({}, {}), {} ({} input, {} cached, {} output)",
            self.tokenhound,
            count(t.sessions, "session"),
            count(t.traces, "trace"),
            count(t.spans, "span"),
            count(t.llm_calls, "LLM call"),
            count(t.tool_calls, "tool call"),
            count(t.total_tokens, "token"),
            num(t.input_tokens),
            num(t.cached_tokens),
            num(t.output_tokens)
        );
        self.window_line(out);
        self.cost_line(out);
        self.month_line(out);
        let i = &self.input;
        let _ = write!(
            out,
            "read {}, {}; {}",
            count(i.files, "file"),
            count(i.records, "record"),
            count(i.problems, "problem")
        );
        if i.skipped_files > 0 {
            let _ = write!(out, " ({} skipped or cut short)", num(i.skipped_files));
        }
        out.push('\n');
        if i.repeated_spans > 0 {
            let from: Vec<String> = i
                .repeated_in
                .iter()
                .map(|(f, n)| format!("{} ({})", clean(f), num(*n)))
                .collect();
            let _ = writeln!(
                out,
                "{} repeated (same trace and span id) and counted once; the repeats came from {}",
                count(i.repeated_spans, "span"),
                from.join(", ")
            );
        }
        for p in i.first_problems.iter().take(10) {
            let _ = writeln!(out, "  {}", clean(&p.to_string()));
        }
        if i.problems > 10 {
            let kept = i.first_problems.len() as u64;
            let _ = writeln!(
                out,
                "  … {} more ({} of them listed in --format json, where `input.problems` counts all)",
                num(i.problems - 10),
                num(kept.saturating_sub(10))
            );
        }
    }

    /// "$X / month reclaimable", when the input covers a day or more (a
    /// projection from minutes would mislead).
    fn month_line(&self, out: &mut String) {
        let s = &self.summary;
        let Some(m) = s.per_month.filter(|_| s.covered_days >= 1.0) else {
            return;
        };
        let money = m.cost_usd.map_or(String::new(), |c| {
            format!("{} / month reclaimable: ", usd(c))
        });
        let _ = writeln!(
            out,
            "{money}{} wasted tokens per 30-day month (tokens two rules charge counted once), projected from the {:.1} days counted",
            num(m.wasted_tokens),
            s.covered_days
        );
    }

    fn window_line(&self, out: &mut String) {
        let Some(w) = self.window else {
            return;
        };
        let at =
            |ns: Option<u64>, open: &str| ns.map_or(open.to_string(), crate::model::utc_minute);
        let _ = writeln!(
            out,
            "window: {} to {}; findings and totals count it, spans outside were read as context",
            at(w.since, "the start"),
            at(w.until, "the end")
        );
    }

    fn cost_line(&self, out: &mut String) {
        let t = &self.totals;
        let unpriced = if t.unpriced.is_empty() {
            String::new()
        } else {
            format!(
                "; no price known for {} (add [prices.\"MODEL\"] to a pack)",
                t.unpriced
                    .iter()
                    .map(|m| clean(m).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match t.cost_usd {
            Some(c) if t.cost_recorded_calls == t.llm_calls => {
                let _ = writeln!(
                    out,
                    "cost: {}, as the source recorded it for every call{unpriced}",
                    usd(c)
                );
            }
            Some(c) if t.cost_recorded_calls > 0 => {
                let _ = writeln!(
                    out,
                    "cost: {}: {} as the source recorded it ({} of {} calls), the rest at list prices of {}{unpriced}",
                    usd(c),
                    usd(t.cost_recorded_usd),
                    num(t.cost_recorded_calls),
                    num(t.llm_calls),
                    prices::AS_OF
                );
            }
            Some(c) => {
                let _ = writeln!(
                    out,
                    "cost at list prices: {} (prices of {}, cache reads and writes priced apart){unpriced}",
                    usd(c),
                    prices::AS_OF
                );
            }
            None if t.llm_calls > 0 => {
                let _ = writeln!(out, "cost: unknown{unpriced}");
            }
            None => {}
        }
    }

    /// The terminal table: a summary per detector, the patterns, and the
    /// `findings` largest findings.
    pub fn to_table(&self, top: usize, findings: usize) -> String {
        let mut out = String::new();
        self.header(&mut out);
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<30} {:>8} {:>14} {:>7} {:>10} {:>12}",
            "DETECTOR", "FINDINGS", "WASTED TOKENS", "SHARE", "COST", "COST/MONTH"
        );
        for d in &self.detectors {
            let name = if d.rule == d.detector {
                d.rule.clone()
            } else {
                format!("{} ({})", d.rule, d.detector)
            };
            let note = if d.failure.is_some() {
                "  STOPPED".to_string()
            } else {
                d.not_checked
                    .as_ref()
                    .map_or(String::new(), |n| format!("  {n}"))
            };
            let _ = writeln!(
                out,
                "{:<30} {:>8} {:>14} {:>6.1}% {:>10} {:>12}{}",
                name,
                d.findings,
                num(d.wasted_tokens),
                d.share_pct,
                money(d.cost_usd),
                monthly(d.per_month),
                note
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{:<30} {:>8} {:>14} {:>6.1}% {:>10} {:>12}",
            "TOTAL",
            self.detectors.iter().map(|d| d.findings).sum::<usize>(),
            num(s.wasted_tokens),
            s.share_pct_sum,
            money(s.cost_usd),
            monthly(s.per_month)
        );
        if s.overlap_tokens > 0 {
            let _ = writeln!(
                out,
                "overlap: {} tokens ({:.2}% of all tokens) are counted by more than one detector; the sum of shares includes them once per detector.",
                num(s.overlap_tokens),
                s.overlap_pct
            );
        }
        for d in &self.detectors {
            let c = counter_text(&d.counters);
            if !c.is_empty() {
                let _ = writeln!(out, "{}: {}", d.rule, c.join(", "));
            }
        }
        self.patterns_text(&mut out, top);
        if findings > 0 && !self.findings.is_empty() {
            let _ = writeln!(out, "\nTop findings (of {}):", self.findings.len());
        }
        for (i, f) in self.findings.iter().take(findings).enumerate() {
            finding_text(&mut out, i + 1, &f);
        }
        out
    }

    /// The patterns that matter, one by one (the first three, then those of
    /// 1% of all tokens or more, at most `top`); the rest folded per rule in
    /// one line each, so a month's report fits a screen.
    fn patterns_text(&self, out: &mut String, top: usize) {
        if self.patterns.is_empty() {
            return;
        }
        let shown = self
            .patterns
            .iter()
            .enumerate()
            .take_while(|(i, p)| *i < top && (*i < 3 || p.share_pct >= 1.0))
            .count();
        let _ = writeln!(
            out,
            "\nTop patterns (of {}; every finding is in --format json and html):",
            num(self.patterns.len() as u64)
        );
        for (i, p) in self.patterns.iter().take(shown).enumerate() {
            pattern_text(out, i + 1, p);
        }
        let mut folded: Vec<(&str, Vec<&patterns::PatternOut>)> = Vec::new();
        for p in &self.patterns[shown..] {
            match folded.iter_mut().find(|(r, _)| *r == p.rule) {
                Some((_, v)) => v.push(p),
                None => folded.push((&p.rule, vec![p])),
            }
        }
        for (rule, ps) in folded {
            let tokens = ps
                .iter()
                .fold(0u64, |a, p| a.saturating_add(p.wasted_tokens));
            let month = ps.iter().fold(None, |a, p| {
                add_cost(a, p.per_month.and_then(|m| m.cost_usd))
            });
            let _ = writeln!(
                out,
                "   + {rule}: {} more pattern{}, {} tokens ({:.2}%){}; largest: {}",
                num(ps.len() as u64),
                if ps.len() == 1 { "" } else { "s" },
                num(tokens),
                pct(tokens, self.totals.total_tokens),
                month.map_or(String::new(), |c| format!(", ${c:.2} / month")),
                clean(&ps[0].pattern)
            );
        }
    }

    /// The patterns as a Markdown table.
    fn patterns_markdown(&self, out: &mut String, top: usize) {
        if !self.patterns.is_empty() {
            let _ = writeln!(
                out,
                "\n## Top patterns (of {})\n\n| rule | pattern | instances | turns | sessions | wasted tokens | share | cost | cost / month | fix |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
                num(self.patterns.len() as u64)
            );
        }
        for p in self.patterns.iter().take(top) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} ({:.1}%) | {} | {:.2}% | {} | {} | {} |",
                p.rule,
                md(&p.pattern),
                p.instances,
                p.turns,
                p.sessions,
                p.sessions_pct,
                num(p.wasted_tokens),
                p.share_pct,
                money(p.cost_usd),
                monthly(p.per_month),
                md(&p.fix)
            );
        }
        if !self.patterns.is_empty() {
            out.push('\n');
        }
    }

    pub fn to_markdown(&self, top: usize) -> String {
        let mut out = String::from("# tokenhound report\n\n");
        let mut h = String::new();
        self.header(&mut h);
        for l in h.lines() {
            let _ = writeln!(out, "{l}  ");
        }
        out.push_str(
            "\n| detector | findings | wasted tokens | share | cost | cost / month |\n|---|---:|---:|---:|---:|---:|\n",
        );
        for d in &self.detectors {
            let note = match (&d.failure, &d.not_checked) {
                (Some(_), _) => " (stopped)".to_string(),
                (None, Some(n)) => format!(" ({n})"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "| {}{} | {} | {} | {:.1}% | {} | {} |",
                d.rule,
                note,
                d.findings,
                num(d.wasted_tokens),
                d.share_pct,
                money(d.cost_usd),
                monthly(d.per_month)
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "| **total** | | {} | {:.1}% | {} | {} |",
            num(s.wasted_tokens),
            s.share_pct_sum,
            money(s.cost_usd),
            monthly(s.per_month)
        );
        let _ = writeln!(
            out,
            "\nOverlap: {} tokens ({:.2}%) are counted by more than one detector.\n",
            num(s.overlap_tokens),
            s.overlap_pct
        );
        self.patterns_markdown(&mut out, top);
        if !self.findings.is_empty() {
            out.push_str("## Top findings\n\n");
        }
        for f in self.findings.iter().take(top) {
            let _ = writeln!(
                out,
                "### [{}] {}: {}\n",
                f.severity,
                f.rule,
                clean(&f.title)
            );
            let _ = writeln!(out, "{}\n", clean(&f.message));
            if let Some(s) = &f.session {
                let _ = write!(out, "- session: `{}`", clean(s));
                if let Some(t) = &f.trace_id {
                    let _ = write!(out, ", trace: `{}`", clean(t));
                }
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "- wasted: {} tokens ({:.2}%), {}",
                num(f.wasted_tokens),
                f.share_pct,
                money(f.cost_usd)
            );
            for (k, v) in &f.evidence {
                let _ = writeln!(out, "- {}: `{}`", clean(k), clean(v));
            }
            let _ = writeln!(out, "- fix: {}\n", clean(&f.fix));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example month scanned with findings kept in memory up to `limit`,
    /// its costliest calls, and its report.
    fn month(limit: usize) -> (crate::costliest::Top, Report) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let opts = crate::scan::Options {
            inputs: vec![root.join("examples/month.jsonl.gz")],
            // the weekly audit's rules group their findings
            packs: vec![
                root.join("rules/default.toml"),
                root.join("rules/weekly-audit.toml"),
            ],
            findings_in_memory: limit,
            costliest: 14,
            // traces analysed as they go quiet, in many rounds: groups are
            // joined across rounds, and idle ones parked on disk
            open_spans: 2_000,
            ..Default::default()
        };
        let mut outcome = crate::scan::run(&opts).unwrap();
        let top = crate::costliest::build(&mut outcome);
        (top, build(&mut outcome))
    }

    /// Where rules charge one span, all but the largest rule's charge is
    /// overlap (a rule's own charges to a span add up first), priced at the
    /// span's trace model; a span of an unpriced model adds tokens, no cost.
    #[test]
    fn spans_charged_by_several_rules_count_their_smaller_charges_as_overlap() {
        let mut models = crate::prices::TraceModels::default();
        models.add(crate::prices::trace_key("t1"), "gpt-4o");
        let prices = crate::prices::Prices::with(&Default::default());
        let charge = |trace: &str, span: &str, tokens| crate::engine::Charge {
            span: crate::engine::SpanRef {
                trace_id: trace.into(),
                span_id: span.into(),
            },
            tokens,
        };
        let mut o = Overlaps::default();
        for (rule, c) in [
            (0, charge("t1", "a", 100)),
            (1, charge("t1", "a", 40)),
            (1, charge("t1", "a", 70)), // rule 1 now charges a 110 in all
            (0, charge("t1", "b", 500)),
            (0, charge("t1", "b", 500)), // one rule only: no overlap
            (2, charge("t2", "c", 30)),  // t2 has no model: no price
            (0, charge("t2", "c", 20)),
        ] {
            o.charge(rule, &c, &models, &prices);
        }
        let (tokens, cost) = o.totals();
        assert_eq!(tokens, 100 + 20, "a: 100 of 210; c: 20 of 50");
        let input = prices.of("gpt-4o").unwrap().input;
        assert_eq!(cost, Some(100.0 * input / 1e6), "only a is priced");

        let mut unpriced = Overlaps::default();
        unpriced.charge(0, &charge("t2", "c", 30), &models, &prices);
        unpriced.charge(1, &charge("t2", "c", 20), &models, &prices);
        unpriced.charge(0, &charge("t1", "d", 10), &models, &prices); // priced, no overlap
        assert_eq!(unpriced.totals(), (20, None), "no overlap priced, no cost");
    }

    /// The report written with its findings rendered apart is byte for byte
    /// what serde_json's pretty printer writes, with many findings and none,
    /// in memory and on disk.
    #[test]
    fn a_report_written_in_parts_is_the_pretty_printers_report() {
        for limit in [usize::MAX, 0] {
            let (_, mut report) = month(limit);
            assert!(
                report.findings.len() > list::RENDER_BATCH,
                "more than a batch"
            );
            let on_disk = matches!(report.findings, FindingList::Disk(_));
            assert_eq!(on_disk, limit == 0, "findings on disk past the limit");
            for _ in 0..2 {
                let mut ours = Vec::new();
                report.write_json(&mut ours).unwrap();
                let theirs = serde_json::to_vec_pretty(&report).unwrap();
                assert!(ours == theirs, "{} findings", report.findings.len());
                // findings on disk read back one by one, as past the size
                // read at once
                let (mut one_by_one, mut at_once) = (Vec::new(), Vec::new());
                let list = &report.findings;
                list.write_json_reading(&mut one_by_one, 0).unwrap();
                list.write_json_reading(&mut at_once, u64::MAX).unwrap();
                assert!(one_by_one == at_once && !at_once.is_empty());
                if let FindingList::Memory(v) = &mut report.findings {
                    v.truncate(1);
                }
            }
            report.findings = FindingList::default();
            let mut ours = Vec::new();
            report.write_json(&mut ours).unwrap();
            assert_eq!(ours, serde_json::to_vec_pretty(&report).unwrap());
        }
    }

    /// Findings set aside on disk (while scanning, and in the report) change
    /// nothing a user sees: every format, and the costliest calls, are the same
    /// as with every finding in memory, whatever the limit.
    #[test]
    fn findings_on_disk_give_the_same_reports_as_in_memory() {
        let text = |(top, mut r): (crate::costliest::Top, Report)| {
            let mut json = Vec::new();
            r.write_json(&mut json).unwrap();
            let x = html::Extras {
                costliest: Some(&top),
                ..Default::default()
            };
            (
                String::from_utf8(json).unwrap(),
                r.to_table(10, 40),
                r.to_markdown(10),
                html::page(&r, &x),
                serde_json::to_string(&top).unwrap(),
                r.worst(),
            )
        };
        let memory = text(month(usize::MAX));
        assert!(
            memory.0.matches("\"rule\":").count() > 1000,
            "many findings"
        );
        for limit in [0, 1, 700] {
            let disk = text(month(limit));
            assert!(disk.0 == memory.0, "JSON differs at limit {limit}");
            assert!(disk.1 == memory.1, "table differs at limit {limit}");
            assert!(disk.2 == memory.2, "Markdown differs at limit {limit}");
            assert!(disk.3 == memory.3, "HTML differs at limit {limit}");
            assert!(disk.4 == memory.4, "costliest differ at limit {limit}");
            assert_eq!(disk.5, memory.5, "worst severity at limit {limit}");
        }
    }
}
