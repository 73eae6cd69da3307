//! budget-pace: the alert "on pace to beat last month by 20% with no design
//! change" (spec section 7). Daily token totals of LLM calls; the current
//! period's projection against the previous period's total. An alert, not a
//! waste: it fires once per period (a group), updated as the pace changes, so in
//! `watch` it appears as soon as the running projection crosses.

use std::collections::BTreeMap;
use tokenhound_sdk::date::{civil, date, parse_date, DAY_NS};
use tokenhound_sdk::*;

/// An entry of `baseline_days`: a day's tokens (`2026-10-01=31000`) or the
/// days the baseline report covers (`covered=2026-10-01..2026-10-31`).
enum Entry {
    Day(i64, u64),
    Covered(i64, i64),
}

fn baseline_entry(s: &str) -> Option<Entry> {
    let (left, right) = s.split_once('=')?;
    if left == "covered" {
        let (a, b) = right.split_once("..")?;
        return Some(Entry::Covered(parse_date(a)?, parse_date(b)?));
    }
    Some(Entry::Day(parse_date(left)?, right.trim().parse().ok()?))
}

fn days_in_month(y: i64, m: u32) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[derive(Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum Period {
    Month,
    Week,
}

impl Period {
    /// The period holding `day`: its first day and its length in days.
    fn of(self, day: i64) -> (i64, i64) {
        match self {
            Period::Month => {
                let (y, m, d) = civil(day);
                (day - i64::from(d) + 1, days_in_month(y, m))
            }
            // ISO weeks start on Monday; 1970-01-01 was a Thursday.
            Period::Week => (day - (day + 3).rem_euclid(7), 7),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Week => "week",
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BudgetPace {
    period: Period,
    over_pct: f64,
    min_days: i64,
    /// the previous period's total when the input lacks it (a parameter)
    baseline: u64,
    /// daily totals of an earlier report (`scan --baseline`), by day number
    baseline_days: BTreeMap<i64, u64>,
    /// the days that report covers: it stands only for periods it covers whole
    baseline_covers: Option<(i64, i64)>,
    daily: BTreeMap<i64, u64>,
    first_day: Option<i64>,
    last_end_ns: u64,
    not_evaluated: u64,
}

/// What one evaluation found.
struct Pace {
    start: i64,
    elapsed: i64,
    so_far: u64,
    projection: f64,
    previous: u64,
    crossed: Option<i64>,
}

impl BudgetPace {
    fn sum(&self, from: i64, to_incl: i64) -> u64 {
        self.daily.range(from..=to_incl).map(|(_, t)| t).sum()
    }

    /// Whether `so_far` tokens in `elapsed` of `len` days project to more
    /// than `previous` × (1 + over_pct / 100). Exact for a whole percentage
    /// (in integers: at the line is not over it, as the spec says), else in
    /// floating point.
    fn over(&self, so_far: u64, len: i64, elapsed: i64, previous: u64) -> bool {
        let pct = self.over_pct;
        if pct >= 0.0 && pct.fract() == 0.0 && pct < 1e12 {
            let lhs = u128::from(so_far) * len as u128 * 100;
            let rhs = u128::from(previous) * (100 + pct as u128) * elapsed as u128;
            return lhs > rhs;
        }
        let projection = so_far as f64 * len as f64 / elapsed as f64;
        projection > previous as f64 * (1.0 + pct / 100.0)
    }

    fn evaluate(&self) -> Option<Pace> {
        let first = self.first_day?;
        let newest = (self.last_end_ns / DAY_NS) as i64;
        let (start, len) = self.period.of(newest);
        let elapsed = newest - start + 1;
        if elapsed < self.min_days {
            return None;
        }
        let (prev_start, _) = self.period.of(start - 1);
        let from_baseline = || {
            let (from, to) = self.baseline_covers?;
            (from <= prev_start && to >= start - 1).then(|| {
                self.baseline_days
                    .range(prev_start..start)
                    .map(|(_, t)| t)
                    .sum()
            })
        };
        let previous = if first <= prev_start {
            self.sum(prev_start, start - 1)
        } else if let Some(total) = from_baseline() {
            total
        } else if self.baseline > 0 {
            self.baseline
        } else {
            return None;
        };
        // A previous period without a single LLM call (the agent was not
        // running yet) is nothing to be on pace against: any use is "∞% over".
        if previous == 0 {
            return None;
        }
        let project = |to: i64| self.sum(start, to) as f64 * len as f64 / (to - start + 1) as f64;
        let over = |to: i64| self.over(self.sum(start, to), len, to - start + 1, previous);
        let crossed = (start + self.min_days - 1..=newest).find(|&d| over(d));
        Some(Pace {
            start,
            elapsed,
            so_far: self.sum(start, newest),
            projection: project(newest),
            previous,
            crossed: crossed.filter(|_| over(newest)),
        })
    }

    fn finding(&self, p: &Pace) -> Finding {
        let name = self.period.name();
        let ratio = p.projection / p.previous.max(1) as f64;
        let crossed = p.crossed.map_or("-".into(), date);
        Finding::new(
            format!(
                "on pace for {:.0} tokens this {name}, {:.0}% over last {name}'s {}",
                p.projection,
                (ratio - 1.0) * 100.0,
                p.previous
            ),
            format!(
                "{} tokens in the first {} days of the {name} starting {} project to {:.0}, more than last {name}'s {} by over {}%; the pace crossed on {crossed}. With no design change, something is wrong.",
                p.so_far,
                p.elapsed,
                date(p.start),
                p.projection,
                p.previous,
                self.over_pct
            ),
            "Find what grew (the per-day totals and the other detectors' findings since that day) before the invoice does.",
        )
        .alert()
        .group(format!("budget-pace {}", date(p.start)))
        .pattern(format!("budget-pace per {name}"))
        .evidence("period", format!("{name} from {}", date(p.start)))
        .evidence("days_elapsed", p.elapsed)
        .evidence("tokens_so_far", p.so_far)
        .evidence("projection", format!("{:.0}", p.projection))
        .evidence("previous_total", p.previous)
        .evidence("ratio", format!("{ratio:.3}"))
        .evidence("crossed_on", crossed)
    }

    /// The alert, when the pace is over the line now.
    fn alert(&self) -> Option<Finding> {
        let p = self.evaluate()?;
        p.crossed.is_some().then(|| self.finding(&p))
    }
}

impl Detector for BudgetPace {
    fn save(&self) -> Option<Vec<u8>> {
        state::save(self)
    }
    fn restore(_: &Params, saved: &[u8]) -> Result<Self, String> {
        state::restore(saved)
    }
    fn metadata() -> Metadata {
        Metadata::new(
            "budget-pace",
            env!("CARGO_PKG_VERSION"),
            "An alert when this period's tokens are on pace to beat the previous period's by over_pct",
        )
        .param(Param::text("period", "month", "month (UTC calendar month) or week (ISO week)"))
        .param(Param::number("over_pct", 20.0, "alert when the projection is more than this % over the previous period"))
        .param(Param::integer("min_days", 3, "days of the period elapsed before judging"))
        .param(Param::integer("previous_total", 0, "the previous period's tokens when the input lacks it; 0: none"))
        .param(Param::text_list("baseline_days", &[], "daily totals of an earlier report, YYYY-MM-DD=tokens (scan --baseline sets it)"))
        .needs(&[Field::Tokens])
        .kinds(CALLS_AND_AGENTS)
    }

    fn new(p: &Params) -> Result<Self, String> {
        let mut days = BTreeMap::new();
        let mut covers = None;
        for s in p.strings("baseline_days") {
            match baseline_entry(&s) {
                Some(Entry::Day(d, t)) => {
                    days.insert(d, t);
                }
                Some(Entry::Covered(a, b)) => covers = Some((a, b)),
                None => {
                    return Err(format!(
                        "baseline_days: `{s}` is not YYYY-MM-DD=tokens or covered=DAY..DAY"
                    ))
                }
            }
        }
        let period = match p.str("period") {
            "month" => Period::Month,
            "week" => Period::Week,
            other => return Err(format!("period must be month or week, got `{other}`")),
        };
        Ok(BudgetPace {
            period,
            over_pct: p.f64("over_pct"),
            min_days: p.u64("min_days").max(1) as i64,
            baseline: p.u64("previous_total"),
            baseline_days: days,
            baseline_covers: covers,
            daily: BTreeMap::new(),
            first_day: None,
            last_end_ns: 0,
            not_evaluated: 0,
        })
    }

    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        for row in 0..b.len() as u32 {
            self.last_end_ns = self.last_end_ns.max(b.end(row));
            // Where the input starts (any span: the spec's "the input starts
            // on or before the previous period's first day").
            let day = (b.start(row) / DAY_NS) as i64;
            self.first_day = Some(self.first_day.map_or(day, |f| f.min(day)));
            if b.is_llm(row) {
                *self.daily.entry(day).or_default() += b.total_tokens(row);
            }
        }
        // Live: the alert as soon as the running projection crosses.
        self.alert().into_iter().collect()
    }

    fn finish(&mut self) -> Vec<Finding> {
        if self.evaluate().is_none() {
            self.not_evaluated = 1;
        }
        self.alert().into_iter().collect()
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![
            ("days with LLM calls".into(), self.daily.len() as u64),
            (
                "not evaluated (too few days, or no previous period with LLM calls)".into(),
                self.not_evaluated,
            ),
        ]
    }
}

detector!(BudgetPace);
