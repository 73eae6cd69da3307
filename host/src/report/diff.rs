//! Two reports compared: did the fix work? Per detector and per pattern, waste
//! before and after, as tokens, as a share of all tokens and per 30-day month;
//! what is new, what is gone, what grew. Shares are compared, not token counts:
//! two windows of different lengths or traffic compare fairly as shares.
//!
//! A side is read from a JSON report (`scan --format json`, or the `report` of
//! an `audit`), so last month's file compares with today's scan; `scan
//! --split-at` compares the two halves of one export the same way.

use super::{clean, md, num, usd};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The schema id of `diff --format json`.
pub const SCHEMA: &str = "tokenhound.diff/v1";

/// Changes of a share smaller than this (relative, %) are "same": the noise of
/// any two weeks.
const SAME_WITHIN_PCT: f64 = 5.0;

/// What a diff reads of a JSON report: only fields schema v1 has always had,
/// every one optional so an older or trimmed report still compares.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Side {
    pub totals: SideTotals,
    pub summary: SideSummary,
    pub detectors: Vec<Figures>,
    pub patterns: Vec<Figures>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SideTotals {
    pub total_tokens: u64,
    pub cost_usd: Option<f64>,
    pub first_start_ns: u64,
    pub last_end_ns: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SideSummary {
    pub wasted_tokens: u64,
    pub covered_days: f64,
    pub per_month: Option<super::PerMonth>,
}

/// A detector's or a pattern's waste in one report.
#[derive(Deserialize, Serialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Figures {
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub wasted_tokens: u64,
    pub share_pct: f64,
    pub cost_usd: Option<f64>,
    pub per_month: Option<super::PerMonth>,
}

impl Side {
    /// A JSON report, or an audit holding one.
    pub fn from_json(mut v: serde_json::Value) -> Result<Self, String> {
        if let Some(r) = v.get_mut("report") {
            v = r.take();
        }
        if v.get("schema").and_then(|s| s.as_str()) != Some(super::SCHEMA) {
            return Err(format!(
                "not a tokenhound JSON report (schema {}); write one with `tokenhound scan --format json`",
                super::SCHEMA
            ));
        }
        serde_json::from_value(v).map_err(|e| format!("not a report tokenhound can read: {e}"))
    }

    /// The side of a report built in this run: the fields the JSON would
    /// carry, without writing its findings out and reading them back.
    pub fn of(r: &super::Report) -> Self {
        let t = &r.totals;
        let figures = |rule: &str, pattern: Option<&str>, tokens, share, cost, month| Figures {
            rule: rule.to_string(),
            pattern: pattern.map(String::from),
            wasted_tokens: tokens,
            share_pct: share,
            cost_usd: cost,
            per_month: month,
        };
        Side {
            totals: SideTotals {
                total_tokens: t.total_tokens,
                cost_usd: t.cost_usd,
                first_start_ns: t.first_start_ns,
                last_end_ns: t.last_end_ns,
            },
            summary: SideSummary {
                wasted_tokens: r.summary.wasted_tokens,
                covered_days: r.summary.covered_days,
                per_month: r.summary.per_month,
            },
            detectors: r
                .detectors
                .iter()
                .map(|d| {
                    figures(
                        &d.rule,
                        None,
                        d.wasted_tokens,
                        d.share_pct,
                        d.cost_usd,
                        d.per_month,
                    )
                })
                .collect(),
            patterns: r
                .patterns
                .iter()
                .map(|p| {
                    let (tokens, share) = (p.wasted_tokens, p.share_pct);
                    figures(
                        &p.rule,
                        Some(&p.pattern),
                        tokens,
                        share,
                        p.cost_usd,
                        p.per_month,
                    )
                })
                .collect(),
        }
    }
}

/// How a detector or pattern changed.
#[derive(Serialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Gone,
    Grown,
    Shrunk,
    Same,
}

/// One detector or pattern, before and after.
#[derive(Serialize, Debug)]
pub struct Row {
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub change: Change,
    /// the share's relative change, % (absent for new and gone)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_pct: Option<f64>,
    pub before: Option<Figures>,
    pub after: Option<Figures>,
}

impl Row {
    fn compare(before: Option<Figures>, after: Option<Figures>) -> Self {
        let any = after.as_ref().or(before.as_ref()).expect("one side");
        let (rule, pattern) = (any.rule.clone(), any.pattern.clone());
        let (change, change_pct) = match (&before, &after) {
            (None, _) => (Change::New, None),
            (_, None) => (Change::Gone, None),
            (Some(b), Some(a)) => relative(b.share_pct, a.share_pct),
        };
        Row {
            rule,
            pattern,
            change,
            change_pct,
            before,
            after,
        }
    }

    /// The pattern as one line: `rule: pattern`.
    pub fn name(&self) -> String {
        match &self.pattern {
            Some(p) => format!("{}: {}", self.rule, p),
            None => self.rule.clone(),
        }
    }

    fn share(f: &Option<Figures>) -> f64 {
        f.as_ref().map_or(0.0, |f| f.share_pct)
    }
}

/// The change of a share, as a label and a relative %.
fn relative(before: f64, after: f64) -> (Change, Option<f64>) {
    if before == 0.0 {
        let c = if after == 0.0 {
            Change::Same
        } else {
            Change::Grown
        };
        return (c, None);
    }
    let pct = (after - before) * 100.0 / before;
    let c = if pct > SAME_WITHIN_PCT {
        Change::Grown
    } else if pct < -SAME_WITHIN_PCT {
        Change::Shrunk
    } else {
        Change::Same
    };
    (c, Some(pct))
}

/// One side's headline.
#[derive(Serialize, Debug)]
pub struct Headline {
    pub label: String,
    pub first_start_ns: u64,
    pub last_end_ns: u64,
    pub covered_days: f64,
    pub total_tokens: u64,
    pub wasted_tokens: u64,
    pub share_pct: f64,
    pub per_month: Option<super::PerMonth>,
}

impl Headline {
    fn of(label: &str, s: &Side) -> Self {
        Headline {
            label: label.to_string(),
            first_start_ns: s.totals.first_start_ns,
            last_end_ns: s.totals.last_end_ns,
            covered_days: s.summary.covered_days,
            total_tokens: s.totals.total_tokens,
            wasted_tokens: s.summary.wasted_tokens,
            share_pct: super::pct(s.summary.wasted_tokens, s.totals.total_tokens),
            per_month: s.summary.per_month,
        }
    }
}

/// `tokenhound.diff/v1`.
#[derive(Serialize, Debug)]
pub struct Diff {
    pub schema: &'static str,
    pub before: Headline,
    pub after: Headline,
    pub detectors: Vec<Row>,
    /// largest first (by the larger of the two sides' waste)
    pub patterns: Vec<Row>,
}

/// Compare two sides, matching detectors by rule and patterns by rule and pattern.
pub fn compare(before: (&str, Side), after: (&str, Side)) -> Diff {
    let (bl, mut b) = before;
    let (al, mut a) = after;
    let mut patterns = rows(
        std::mem::take(&mut b.patterns),
        std::mem::take(&mut a.patterns),
    );
    patterns.sort_by(|x, y| {
        let big = |r: &Row| Row::share(&r.before).max(Row::share(&r.after));
        big(y).total_cmp(&big(x)).then(x.name().cmp(&y.name()))
    });
    Diff {
        schema: SCHEMA,
        before: Headline::of(bl, &b),
        after: Headline::of(al, &a),
        detectors: rows(b.detectors, a.detectors),
        patterns,
    }
}

/// Rows matched by rule and pattern, in the order first seen (after, then before).
fn rows(before: Vec<Figures>, after: Vec<Figures>) -> Vec<Row> {
    let index: HashMap<(String, Option<String>), usize> = before
        .iter()
        .enumerate()
        .map(|(i, f)| ((f.rule.clone(), f.pattern.clone()), i))
        .collect();
    let mut then: Vec<Option<Figures>> = before.into_iter().map(Some).collect();
    let mut out: Vec<Row> = after
        .into_iter()
        .map(|f| {
            let b = index
                .get(&(f.rule.clone(), f.pattern.clone()))
                .and_then(|&i| then[i].take());
            Row::compare(b, Some(f))
        })
        .collect();
    out.extend(
        then.into_iter()
            .flatten()
            .map(|b| Row::compare(Some(b), None)),
    );
    out
}

impl Diff {
    /// Patterns whose share grew by more than `pct` % (new ones included:
    /// they grew from nothing).
    pub fn grown_over(&self, pct: f64) -> Vec<&Row> {
        self.patterns
            .iter()
            .filter(|r| match r.change {
                Change::New => true,
                Change::Grown => r.change_pct.is_none_or(|c| c > pct),
                _ => false,
            })
            .collect()
    }

    fn period(h: &Headline) -> String {
        if h.first_start_ns == 0 {
            return "no spans".into();
        }
        format!(
            "{} to {}, {:.1} days, {} tokens, waste {:.1}%{}",
            crate::model::utc_day(h.first_start_ns),
            crate::model::utc_day(h.last_end_ns.saturating_sub(1)),
            h.covered_days,
            num(h.total_tokens),
            h.share_pct,
            h.per_month
                .and_then(|m| m.cost_usd)
                .map_or(String::new(), |c| format!(
                    ", {} / month reclaimable",
                    usd(c)
                ))
        )
    }

    /// The terminal rendering: headlines, detectors, then the patterns that changed.
    pub fn to_table(&self, top: usize) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "before: {}\n        {}",
            clean(&self.before.label),
            Self::period(&self.before)
        );
        let _ = writeln!(
            o,
            "after:  {}\n        {}\n",
            clean(&self.after.label),
            Self::period(&self.after)
        );
        let _ = writeln!(
            o,
            "{:<30} {:>14} {:>7} {:>14} {:>7} {:>8} {:>21}",
            "DETECTOR", "WASTE BEFORE", "SHARE", "WASTE AFTER", "SHARE", "CHANGE", "$ / MONTH"
        );
        for r in &self.detectors {
            row_line(&mut o, &r.rule, r);
        }
        let changed: Vec<&Row> = self
            .patterns
            .iter()
            .filter(|r| r.change != Change::Same)
            .collect();
        let _ = writeln!(
            o,
            "\nPatterns that changed ({} of {}; shares compared, change within ±{SAME_WITHIN_PCT}% is the same):",
            changed.len(),
            self.patterns.len()
        );
        for r in changed.iter().take(top) {
            let name = format!("{:<6} {}", label(r.change), clean(&r.name()));
            row_line(&mut o, &name, r);
        }
        if changed.len() > top {
            let _ = writeln!(o, "… {} more in --format json", changed.len() - top);
        }
        o
    }

    pub fn to_markdown(&self, top: usize) -> String {
        let mut o = String::from("# tokenhound diff\n\n");
        let _ = writeln!(
            o,
            "- before: `{}`: {}\n- after: `{}`: {}\n",
            md(&self.before.label),
            Self::period(&self.before),
            md(&self.after.label),
            Self::period(&self.after)
        );
        o.push_str("| detector or pattern | change | waste before | share | waste after | share | $ / month before → after |\n|---|---|---:|---:|---:|---:|---:|\n");
        let changed = self.patterns.iter().filter(|r| r.change != Change::Same);
        for r in self.detectors.iter().chain(changed.take(top)) {
            let (b, a) = (&r.before, &r.after);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.2}% | {} | {:.2}% | {} |",
                md(&r.name()),
                change_text(r),
                num(tokens(b)),
                Row::share(b),
                num(tokens(a)),
                Row::share(a),
                months(r)
            );
        }
        o
    }
}

fn tokens(f: &Option<Figures>) -> u64 {
    f.as_ref().map_or(0, |f| f.wasted_tokens)
}

fn label(c: Change) -> &'static str {
    match c {
        Change::New => "new",
        Change::Gone => "gone",
        Change::Grown => "grown",
        Change::Shrunk => "shrunk",
        Change::Same => "same",
    }
}

/// `-99%`, `new`, `gone`.
fn change_text(r: &Row) -> String {
    match (r.change, r.change_pct) {
        (Change::New | Change::Gone, _) | (_, None) => label(r.change).into(),
        (_, Some(p)) => format!("{p:+.0}%"),
    }
}

/// `$3.10 → $0.00` per month.
fn months(r: &Row) -> String {
    // A side with no waste costs nothing (its detector reports no cost at all).
    let m = |f: &Option<Figures>| match f {
        Some(f) if f.wasted_tokens == 0 => usd(0.0),
        Some(f) => f.per_month.and_then(|m| m.cost_usd).map_or("-".into(), usd),
        None => "-".into(),
    };
    format!("{} → {}", m(&r.before), m(&r.after))
}

/// One row of the table; a name too long for its column gets a line of its own.
fn row_line(o: &mut String, name: &str, r: &Row) {
    let (b, a) = (&r.before, &r.after);
    let name = if name.chars().count() > 30 {
        let _ = writeln!(o, "{name}");
        ""
    } else {
        name
    };
    let _ = writeln!(
        o,
        "{:<30} {:>14} {:>6.2}% {:>14} {:>6.2}% {:>8} {:>21}",
        name,
        num(tokens(b)),
        Row::share(b),
        num(tokens(a)),
        Row::share(a),
        change_text(r),
        months(r)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(rule: &str, pattern: &str, share: f64) -> Figures {
        Figures {
            rule: rule.into(),
            pattern: Some(pattern.into()),
            wasted_tokens: (share * 100.0) as u64,
            share_pct: share,
            ..Figures::default()
        }
    }

    fn side(patterns: Vec<Figures>) -> Side {
        Side {
            patterns,
            ..Side::default()
        }
    }

    #[test]
    fn patterns_are_matched_by_rule_and_pattern_and_compared_as_shares() {
        let before = side(vec![
            fig("retry-storm", "gh_api", 10.0),
            fig("filler-preamble", "Great question", 2.0),
            fig("context-reread", "CLAUDE.md", 5.0),
        ]);
        let after = side(vec![
            fig("filler-preamble", "Great question", 2.05),
            fig("context-reread", "CLAUDE.md", 7.0),
            fig("context-reread", "README.md", 1.0),
        ]);
        let d = compare(("a", before), ("b", after));
        let change = |n: &str| d.patterns.iter().find(|r| r.name() == n).unwrap().change;
        assert_eq!(change("retry-storm: gh_api"), Change::Gone);
        assert_eq!(change("filler-preamble: Great question"), Change::Same);
        assert_eq!(change("context-reread: CLAUDE.md"), Change::Grown);
        assert_eq!(change("context-reread: README.md"), Change::New);
        // 5% → 7% is +40%: over 30, under 50; the new pattern counts as growth.
        assert_eq!(d.grown_over(30.0).len(), 2);
        assert_eq!(d.grown_over(50.0).len(), 1);
        assert_eq!(d.patterns[0].name(), "retry-storm: gh_api", "largest first");
    }
}
