//! Findings grouped by rule and pattern (spec "Patterns"): people act on one
//! offender, not on its thousand instances. A finding's pattern is what its
//! detector says its instances share (the tool, the file, the opener); a
//! detector that says nothing gets one pattern per title.

use super::{add_cost, pct, FindingOut, PerMonth};
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
struct Affected<'a> {
    // Hashed, not ordered: only their sizes are reported (ordered sets of
    // trace ids were most of a large report's build).
    turns: HashSet<&'a str>,
    sessions: HashSet<&'a str>,
    stated_turns: usize,
    stated_sessions: usize,
}

impl<'a> Affected<'a> {
    fn add(&mut self, f: &'a FindingOut) {
        self.turns.extend(f.trace_id.as_deref());
        self.turns
            .extend(f.spans.iter().map(|s| s.trace_id.as_str()));
        self.sessions.extend(f.session.as_deref());
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
fn stated_count(f: &FindingOut, key: &str) -> usize {
    f.evidence
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Group `findings` (sorted, largest first) by rule and pattern, largest first.
pub fn group(
    findings: &[FindingOut],
    total_tokens: u64,
    all_sessions: u64,
    days: f64,
) -> Vec<PatternOut> {
    let mut index: HashMap<(&str, &str), usize> = HashMap::default();
    let mut out: Vec<PatternOut> = Vec::new();
    let mut affected: Vec<Affected> = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        let key = f.pattern.as_deref().unwrap_or(&f.title);
        let at = *index.entry((&f.rule, key)).or_insert_with(|| {
            out.push(PatternOut {
                rule: f.rule.clone(),
                pattern: key.to_string(),
                severity: f.severity,
                instances: 0,
                turns: 0,
                sessions: 0,
                sessions_pct: 0.0,
                wasted_tokens: 0,
                share_pct: 0.0,
                cost_usd: None,
                per_month: None,
                wasted_seconds: 0.0,
                typical: f.title.clone(),
                fix: f.fix.clone(),
                findings: Vec::new(),
            });
            affected.push(Affected::default());
            out.len() - 1
        });
        let p = &mut out[at];
        p.instances += 1;
        p.severity = p.severity.max(f.severity);
        p.wasted_tokens = p.wasted_tokens.saturating_add(f.wasted_tokens);
        p.cost_usd = add_cost(p.cost_usd, f.cost_usd);
        p.wasted_seconds += f.wasted_seconds;
        p.findings.push(i);
        affected[at].add(f);
    }
    for (p, a) in out.iter_mut().zip(&affected) {
        (p.turns, p.sessions) = a.counts();
        p.sessions_pct = pct(p.sessions as u64, all_sessions);
        p.share_pct = pct(p.wasted_tokens, total_tokens);
        p.per_month = PerMonth::of(p.wasted_tokens, p.cost_usd, days);
    }
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
