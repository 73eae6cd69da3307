//! Findings grouped by rule and pattern (spec "Patterns"): people act on one
//! offender, not on its thousand instances. A finding's pattern is what its
//! detector says its instances share (the tool, the file, the opener); a
//! detector that says nothing gets one pattern per title.

use super::{add_cost, pct, FindingCore, PerMonth};
use crate::rules::Severity;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::Serialize;

#[derive(Serialize, Clone, Debug)]
pub struct PatternOut {
    pub rule: String,
    pub pattern: String,
    pub severity: Severity,
    pub instances: usize,
    pub turns: usize,
    pub sessions: usize,
    /// sessions affected, as a share of all sessions
    pub sessions_pct: f64,
    pub wasted_tokens: u64,
    pub share_pct: f64,
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_month: Option<PerMonth>,
    #[serde(skip_serializing_if = "super::is_zero")]
    pub wasted_seconds: f64,
    /// the largest instance's title: what a typical one looks like
    pub typical: String,
    pub fix: String,
    /// the instances, as indexes into `findings`
    pub findings: Vec<usize>,
}

/// The turns and sessions a pattern's findings touch: those they name, or,
/// for an aggregate finding (one naming no session, such as an error
/// signature's), the counts it states in its evidence: its example spans name
/// only a few of them.
#[derive(Default)]
struct Affected {
    // Hashes of the ids, not the ids: only the sizes are reported, and the
    // findings need not stay in memory (64 bits: two ids of one report share
    // a hash with a chance of about n²/2⁶⁵).
    turns: HashSet<u64>,
    sessions: HashSet<u64>,
    stated_turns: usize,
    stated_sessions: usize,
}

fn id(s: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(s)
}

impl Affected {
    fn add(&mut self, f: &FindingCore) {
        self.turns.extend(f.trace_id.as_deref().map(id));
        self.turns.extend(f.spans.iter().map(|s| id(&s.trace_id)));
        self.sessions.extend(f.session.as_deref().map(id));
        if f.session.is_none() {
            self.stated_turns = self.stated_turns.max(stated_count(f, "turns"));
            self.stated_sessions = self.stated_sessions.max(stated_count(f, "sessions"));
        }
    }

    /// (turns, sessions)
    fn counts(&self) -> (usize, usize) {
        (
            self.turns.len().max(self.stated_turns),
            self.sessions.len().max(self.stated_sessions),
        )
    }
}

/// A count an aggregate finding states in its evidence (0 when it does not).
fn stated_count(f: &FindingCore, key: &str) -> usize {
    f.evidence
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Groups findings by rule and pattern in two steps: first each finding in
/// any order (what does not depend on order: which pattern, how severe, what
/// it touches), then all of them in report order (sums, the typical instance,
/// the indexes), so the findings need not all be in memory at once.
#[derive(Default)]
pub struct Grouper {
    /// by rule, then pattern
    index: HashMap<String, HashMap<String, u32>>,
    groups: Vec<Group>,
}

struct Group {
    rule: String,
    pattern: String,
    severity: Severity,
    affected: Affected,
}

/// A finding as [`Grouper::finish`] needs it.
pub struct Instance<'a> {
    /// what [`Grouper::add`] returned for it
    pub pattern: u32,
    pub tokens: u64,
    pub cost_usd: Option<f64>,
    pub seconds: f64,
    pub title: &'a str,
    pub fix: &'a str,
}

impl Grouper {
    /// A finding, in any order: the pattern it is an instance of.
    pub fn add(&mut self, f: &FindingCore) -> u32 {
        let key = f.pattern.as_deref().unwrap_or(&f.title);
        let known = self.index.get(&f.rule).and_then(|m| m.get(key));
        let at = match known {
            Some(&at) => at,
            None => {
                let at = self.groups.len() as u32;
                (self.index.entry(f.rule.clone()).or_default()).insert(key.to_string(), at);
                self.groups.push(Group {
                    rule: f.rule.clone(),
                    pattern: key.to_string(),
                    severity: f.severity,
                    affected: Affected::default(),
                });
                at
            }
        };
        let g = &mut self.groups[at as usize];
        g.severity = g.severity.max(f.severity);
        g.affected.add(f);
        at
    }

    /// The patterns, largest first, from every finding in report order
    /// (largest first).
    pub fn finish<'a>(
        self,
        sorted: impl Iterator<Item = Instance<'a>>,
        total_tokens: u64,
        all_sessions: u64,
        days: f64,
    ) -> Vec<PatternOut> {
        let mut out: Vec<Option<PatternOut>> = (0..self.groups.len()).map(|_| None).collect();
        for (i, f) in sorted.enumerate() {
            let g = &self.groups[f.pattern as usize];
            let p = out[f.pattern as usize].get_or_insert_with(|| PatternOut {
                rule: g.rule.clone(),
                pattern: g.pattern.clone(),
                severity: g.severity,
                instances: 0,
                turns: 0,
                sessions: 0,
                sessions_pct: 0.0,
                wasted_tokens: 0,
                share_pct: 0.0,
                cost_usd: None,
                per_month: None,
                wasted_seconds: 0.0,
                typical: f.title.to_string(),
                fix: f.fix.to_string(),
                findings: Vec::new(),
            });
            p.instances += 1;
            p.wasted_tokens = p.wasted_tokens.saturating_add(f.tokens);
            p.cost_usd = add_cost(p.cost_usd, f.cost_usd);
            p.wasted_seconds += f.seconds;
            p.findings.push(i);
        }
        let mut out: Vec<PatternOut> = (out.into_iter().zip(&self.groups))
            .filter_map(|(p, g)| {
                let mut p = p?;
                (p.turns, p.sessions) = g.affected.counts();
                p.sessions_pct = pct(p.sessions as u64, all_sessions);
                p.share_pct = pct(p.wasted_tokens, total_tokens);
                p.per_month = PerMonth::of(p.wasted_tokens, p.cost_usd, days);
                Some(p)
            })
            .collect();
        out.sort_by(|a, b| {
            b.wasted_tokens
                .cmp(&a.wasted_tokens)
                .then(b.wasted_seconds.total_cmp(&a.wasted_seconds))
                .then(b.severity.cmp(&a.severity))
                .then(a.rule.cmp(&b.rule))
                .then(a.pattern.cmp(&b.pattern))
        });
        out
    }
}
