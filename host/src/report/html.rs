//! The HTML report: one self-contained page for the Monday read, opened from
//! disk with no network (inline CSS and SVG, no script; a Content-Security-
//! Policy forbids every fetch). The headline, waste per day stacked by detector
//! (a fix shows as a drop on its day), the patterns with their instances and
//! span ids, the costliest calls with their input, the budget pace, and the
//! latency and error tables. Everything a plugin or an input wrote is escaped.

use super::{count, num, usd, FindingOut, Report};
use crate::costliest::Top;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

mod chart;

/// What a page shows besides the report.
#[derive(Default)]
pub struct Extras<'a> {
    pub title: &'a str,
    /// the costliest calls (`scan --format html`, `audit`)
    pub costliest: Option<&'a Top>,
    /// "since last week": (heading, items)
    pub since_last: Vec<(&'static str, Vec<String>)>,
}

/// Colours of the detectors, in report order (distinct for the colour-blind
/// as far as eight can be: Okabe–Ito).
const COLOURS: [&str; 8] = [
    "#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f", "#f0e442",
];

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' => o.push_str(&c.escape_unicode().to_string()),
            c => o.push(c),
        }
    }
    o
}

/// The page.
pub fn page(r: &Report, x: &Extras) -> String {
    let mut o = String::with_capacity(64 * 1024);
    // Read once: findings kept on disk are read back here, not in each part.
    let all: Vec<Cow<FindingOut>> = r.findings.iter().collect();
    head(&mut o, x.title);
    headline(&mut o, r, x.title);
    since_last(&mut o, &x.since_last);
    daily(&mut o, r);
    detectors(&mut o, r);
    patterns(&mut o, r, &all);
    if let Some(top) = x.costliest {
        costliest(&mut o, top);
    }
    pace(&mut o, r, &all);
    tables(&mut o, r, &all, "tail-latency", "Tail latency");
    tables(&mut o, r, &all, "error-patterns", "Error patterns");
    footer(&mut o, r);
    o.push_str("</main></body></html>\n");
    o
}

fn colour(r: &Report, rule: &str) -> &'static str {
    let i = r.detectors.iter().position(|d| d.rule == rule).unwrap_or(7);
    COLOURS[i % COLOURS.len()]
}

fn head(o: &mut String, title: &str) {
    let _ = write!(
        o,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title>
<style>{CSS}</style></head><body><main>
"#,
        esc(title)
    );
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f6f7f9;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.sub{color:#5b6472;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 14px}
.card b{display:block;font-size:22px;margin-top:2px}.card small{color:#5b6472}
.card.hot b{color:#b03a00}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e7}
th,td{padding:6px 8px;border-bottom:1px solid #eceff3;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600;font-size:13px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
details summary{cursor:pointer;color:#0b57a4}
details ol{margin:6px 0 0;padding-left:22px;font-size:13px}
code{font:12px ui-monospace,Menlo,Consolas,monospace;color:#39414d}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:6px 0 0;font-size:13px}
.chart{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px}
.chart svg{width:100%;height:auto;display:block}
.bar{display:flex;height:10px;border-radius:3px;overflow:hidden;min-width:160px;background:#eceff3;margin:3px 0}
.bar i{display:block;height:100%}
.sev{font-size:11px;text-transform:uppercase;font-weight:600;padding:1px 5px;border-radius:3px;background:#eceff3}
.sev.high,.sev.critical{background:#fbe1d4;color:#8a2d00}.sev.medium{background:#fdf0d0;color:#6b4b00}
.muted{color:#5b6472}.ok{color:#1a7f37}
ul.changes{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 10px 10px 30px;margin:0}
footer{margin-top:36px;color:#5b6472;font-size:12px}
"#;

fn headline(o: &mut String, r: &Report, title: &str) {
    let t = &r.totals;
    let s = &r.summary;
    let period = if t.first_start_ns == 0 {
        "no spans".to_string()
    } else {
        format!(
            "{} to {} ({:.1} days)",
            crate::model::utc_day(t.first_start_ns),
            crate::model::utc_day(t.last_end_ns.saturating_sub(1)),
            s.covered_days
        )
    };
    let _ = write!(
        o,
        "<h1>{}</h1><p class=sub>{} · {} sessions · {} LLM calls · {} tool calls · {} spans</p>",
        esc(title),
        esc(&period),
        num(t.sessions),
        num(t.llm_calls),
        num(t.tool_calls),
        num(t.spans)
    );
    let cost = t.cost_usd.map_or("unknown".into(), usd);
    let month = match s.per_month {
        _ if s.wasted_tokens == 0 => usd(0.0),
        Some(m) => m.cost_usd.map_or("–".into(), usd),
        None => "–".into(),
    };
    let _ = write!(
        o,
        r#"<div class=cards>
<div class=card><small>Tokens</small><b>{}</b><small>{} input · {} cached · {} output</small></div>
<div class=card><small>Cost</small><b>{}</b><small>at list prices where not recorded</small></div>
<div class="card hot"><small>Wasted</small><b>{:.1}%</b><small>{} tokens · {} findings · {} patterns</small></div>
<div class="card hot"><small>Reclaimable</small><b>{} / month</b><small>{} tokens per 30 days, overlap counted once</small></div>
</div>"#,
        num(t.total_tokens),
        num(t.input_tokens),
        num(t.cached_tokens),
        num(t.output_tokens),
        cost,
        super::pct(
            s.wasted_tokens.saturating_sub(s.overlap_tokens),
            t.total_tokens
        ),
        num(s.wasted_tokens.saturating_sub(s.overlap_tokens)),
        num(s.findings as u64),
        num(r.patterns.len() as u64),
        month,
        s.per_month.map_or("–".into(), |m| num(m.wasted_tokens)),
    );
}

fn since_last(o: &mut String, items: &[(&'static str, Vec<String>)]) {
    if items.is_empty() {
        return;
    }
    o.push_str("<h2>Since last week</h2><ul class=changes>");
    for (what, list) in items {
        let text = if list.is_empty() {
            "none".to_string()
        } else {
            list.iter().map(|i| esc(i)).collect::<Vec<_>>().join("; ")
        };
        let _ = write!(o, "<li><b>{}</b>: {text}</li>", esc(what));
    }
    o.push_str("</ul>");
}

/// Waste per UTC day, stacked by detector, with its legend.
fn daily(o: &mut String, r: &Report) {
    let days = &r.totals.daily;
    let (Some(&first), Some(&last)) = (days.keys().next(), days.keys().next_back()) else {
        return;
    };
    let series: Vec<(String, &'static str)> = r
        .detectors
        .iter()
        .filter(|d| d.wasted_tokens > 0)
        .map(|d| (d.rule.clone(), colour(r, &d.rule)))
        .collect();
    let bars: Vec<chart::Bar> = (first..=last)
        .map(|d| chart::Bar {
            day: d,
            stack: series
                .iter()
                .map(|(rule, c)| {
                    let v = days.get(&d).and_then(|x| x.waste.get(rule)).copied();
                    (v.unwrap_or(0), *c, rule.as_str())
                })
                .collect(),
        })
        .collect();
    if series.is_empty() {
        o.push_str("<h2>Waste per day</h2><p class=ok>No waste found.</p>");
        return;
    }
    o.push_str("<h2>Waste per day</h2><div class=chart>");
    chart::stacked(o, &bars, "wasted tokens per UTC day");
    o.push_str("<div class=legend>");
    for (rule, c) in &series {
        let _ = write!(
            o,
            "<span><i class=sw style=\"background:{c}\"></i>{}</span>",
            esc(rule)
        );
    }
    o.push_str("</div>");
    if r.summary.overlap_tokens > 0 {
        let _ = write!(
            o,
            "<p class=muted>A token charged by two detectors is in both stacks ({} tokens in all, {:.1}% of all tokens); the headline counts it once.</p>",
            num(r.summary.overlap_tokens),
            r.summary.overlap_pct
        );
    }
    o.push_str("</div>");
}

fn detectors(o: &mut String, r: &Report) {
    o.push_str("<h2>Detectors</h2><table><tr><th>detector</th><th class=n>findings</th><th class=n>wasted tokens</th><th class=n>share</th><th class=n>cost</th><th class=n>cost / month</th><th>note</th></tr>");
    for d in &r.detectors {
        let note = match (&d.failure, &d.not_checked) {
            (Some(f), _) => format!("stopped: {f}"),
            (None, Some(n)) => n.clone(),
            _ => String::new(),
        };
        let secs: f64 = r
            .findings
            .iter()
            .filter(|f| f.rule == d.rule)
            .map(|f| f.wasted_seconds)
            .sum();
        let note = if secs > 0.0 {
            format!("{secs:.0} s of waiting {note}")
        } else {
            note
        };
        let _ = write!(
            o,
            "<tr><td><i class=sw style=\"background:{}\"></i>{} <span class=muted>{}</span></td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.1}%</td><td class=n>{}</td><td class=n>{}</td><td class=muted>{}</td></tr>",
            colour(r, &d.rule),
            esc(&d.rule),
            esc(&d.version),
            d.findings,
            num(d.wasted_tokens),
            d.share_pct,
            dollars(d.cost_usd),
            dollars(d.per_month.and_then(|m| m.cost_usd)),
            esc(&note)
        );
    }
    o.push_str("</table>");
}

fn patterns(o: &mut String, r: &Report, all: &[Cow<FindingOut>]) {
    if r.patterns.is_empty() {
        o.push_str("<h2>Patterns</h2><p class=ok>No finding.</p>");
        return;
    }
    let _ = write!(o, "<h2>Patterns <span class=muted>({}, largest first)</span></h2><table><tr><th>pattern</th><th class=n>instances</th><th class=n>sessions</th><th class=n>wasted tokens</th><th class=n>share</th><th class=n>cost / month</th></tr>", r.patterns.len());
    for p in &r.patterns {
        let _ = write!(
            o,
            "<tr><td><span class=\"sev {sev}\">{sev}</span> <i class=sw style=\"background:{}\"></i><b>{}</b>: {}<br><span class=muted>typical: {} · fix: {}</span>",
            colour(r, &p.rule),
            esc(&p.rule),
            esc(&p.pattern),
            esc(&p.typical),
            esc(&p.fix),
            sev = p.severity,
        );
        instances(o, all, &p.findings);
        let _ = write!(
            o,
            "</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.2}%</td><td class=n>{}</td></tr>",
            num(p.instances as u64),
            sessions(p),
            num(p.wasted_tokens),
            p.share_pct,
            dollars(p.per_month.and_then(|m| m.cost_usd))
        );
    }
    o.push_str("</table>");
}

/// Sessions affected and their share; `–` when its findings name no session
/// (one finding over many sessions, such as an error signature).
fn sessions(p: &super::patterns::PatternOut) -> String {
    if p.sessions == 0 {
        "–".into()
    } else {
        format!("{} ({:.0}%)", num(p.sessions as u64), p.sessions_pct)
    }
}

/// Dollars in cents, or `–`; amounts under a cent keep their digits.
fn dollars(c: Option<f64>) -> String {
    match c {
        Some(c) if c >= 0.01 => format!("${c:.2}"),
        Some(c) => usd(c),
        None => "–".into(),
    }
}

/// A pattern's instances, folded: title, tokens, session, trace and span ids.
fn instances(o: &mut String, all: &[Cow<FindingOut>], which: &[usize]) {
    let _ = write!(
        o,
        "<details><summary>{}</summary><ol>",
        count(which.len() as u64, "instance")
    );
    for f in which.iter().filter_map(|&i| all.get(i)) {
        instance(o, f);
    }
    o.push_str("</ol></details>");
}

fn instance(o: &mut String, f: &FindingOut) {
    let spans: Vec<String> = f.spans.iter().map(|s| esc(&s.span_id)).collect();
    let _ = write!(
        o,
        "<li>{} — {} tokens{}<br><span class=muted>session <code>{}</code> trace <code>{}</code> spans <code>{}</code></span></li>",
        esc(&f.title),
        num(f.wasted_tokens),
        if f.wasted_seconds > 0.0 {
            format!(", {:.1} s waited", f.wasted_seconds)
        } else {
            String::new()
        },
        esc(f.session.as_deref().unwrap_or("–")),
        esc(f.trace_id.as_deref().unwrap_or("–")),
        spans.join(" ")
    );
}

/// The costliest calls, each input as a bar of its parts (largest first).
fn costliest(o: &mut String, top: &Top) {
    let _ = write!(o, "<h2>The {} costliest calls <span class=muted>of {} LLM calls</span></h2><table><tr><th class=n>#</th><th class=n>cost</th><th>model · when</th><th class=n>tokens</th><th>input by parts</th><th>charged by</th></tr>", top.calls.len(), num(top.llm_calls));
    for (i, c) in top.calls.iter().enumerate() {
        let k = &c.call;
        let _ = write!(
            o,
            "<tr><td class=n>{}</td><td class=n>{}</td><td>{}<br><span class=muted>{} · <code>{}</code></span></td><td class=n>{}<br><span class=muted>{} cached</span></td><td>",
            i + 1,
            dollars(k.cost_usd),
            esc(k.model.as_deref().unwrap_or("(unknown model)")),
            crate::model::utc_minute(k.start_ns),
            esc(&k.span_id),
            num(k.total_tokens),
            num(k.usage.cache_read)
        );
        parts(o, c);
        let by: Vec<String> = c
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{}: {} ({} tokens)",
                    esc(&f.rule),
                    esc(&f.title),
                    num(f.tokens)
                )
            })
            .collect();
        let _ = write!(
            o,
            "</td><td>{}</td></tr>",
            if by.is_empty() {
                "–".into()
            } else {
                by.join("<br>")
            }
        );
    }
    o.push_str("</table>");
}

/// Part colours by kind.
fn part_colour(k: crate::model::PartKind) -> &'static str {
    use crate::model::PartKind as K;
    match k {
        K::System => "#7f7f7f",
        K::Message => "#0072b2",
        K::ToolCall => "#e69f00",
        K::ToolResult => "#d55e00",
        K::Other => "#cc79a7",
    }
}

fn parts(o: &mut String, c: &crate::costliest::TopCall) {
    let bytes: u64 = c.parts.iter().map(|p| p.part.bytes).sum();
    if bytes == 0 {
        o.push_str("<span class=muted>input not captured</span>");
        return;
    }
    o.push_str("<div class=bar>");
    for p in &c.parts {
        let _ = write!(
            o,
            "<i style=\"width:{:.2}%;background:{}\" title=\"{}\"></i>",
            p.part.bytes as f64 * 100.0 / bytes as f64,
            part_colour(p.part.kind),
            esc(&p.part.title())
        );
    }
    o.push_str("</div><small>");
    let named: Vec<String> = c
        .parts
        .iter()
        .take(4)
        .map(|p| {
            format!(
                "<i class=sw style=\"background:{}\"></i>{} {} tok",
                part_colour(p.part.kind),
                esc(&p.part.title()),
                num(p.tokens)
            )
        })
        .collect();
    o.push_str(&named.join(" · "));
    if c.parts.len() > 4 {
        let _ = write!(o, " · {} more", c.parts.len() - 4);
    }
    o.push_str("</small>");
}

/// Cumulative tokens of this calendar month against the last, and the alerts.
fn pace(o: &mut String, r: &Report, all: &[Cow<FindingOut>]) {
    let mut by_day: BTreeMap<String, u64> = r.baseline_daily.clone();
    for (d, day) in &r.totals.daily {
        by_day.insert(crate::model::utc_day(d * crate::model::DAY_NS), day.tokens);
    }
    let Some(last) = by_day.keys().next_back().cloned() else {
        return;
    };
    let month = |d: &str| d.get(..7).unwrap_or("").to_string();
    let this = month(&last);
    let prev = month_before(&this).filter(|m| by_day.keys().any(|d| d.starts_with(m.as_str())));
    let cumulative = |m: &str| -> Vec<(u32, u64)> {
        let mut sum = 0;
        by_day
            .iter()
            .filter(|(d, _)| month(d) == m)
            .map(|(d, t)| {
                sum += t;
                (d.get(8..10).and_then(|x| x.parse().ok()).unwrap_or(1), sum)
            })
            .collect()
    };
    o.push_str("<h2>Budget pace</h2><div class=chart>");
    let now = cumulative(&this);
    let before = prev.as_deref().map(cumulative).unwrap_or_default();
    chart::pace(o, &now, &before, &this, prev.as_deref());
    o.push_str("</div>");
    let alerts: Vec<_> = all.iter().filter(|f| f.alert).collect();
    if alerts.is_empty() {
        let why = if prev.is_none() {
            "No previous month in the input: pass last month's JSON report with --baseline to compare."
        } else {
            "No budget alert: this month is not on pace to exceed the last by the alert's margin."
        };
        let _ = write!(o, "<p class=muted>{why}</p>");
    }
    for f in alerts {
        let _ = write!(
            o,
            "<p><span class=\"sev {sev}\">{sev}</span> <b>{}</b> — {}</p>",
            esc(&f.title),
            esc(&f.message),
            sev = f.severity
        );
    }
}

/// `2026-02` for `2026-03`, `2025-12` for `2026-01`.
fn month_before(month: &str) -> Option<String> {
    let y: i32 = month.get(..4)?.parse().ok()?;
    let m: u32 = month.get(5..7)?.parse().ok()?;
    Some(if m == 1 {
        format!("{}-12", y - 1)
    } else {
        format!("{y}-{:02}", m - 1)
    })
}

/// A detector's findings as a table: title, then each evidence key a column.
fn tables(o: &mut String, r: &Report, all: &[Cow<FindingOut>], detector: &str, heading: &str) {
    if !r.detectors.iter().any(|d| d.detector == detector) {
        return;
    }
    let found: Vec<_> = all.iter().filter(|f| f.detector == detector).collect();
    let _ = write!(o, "<h2>{}</h2>", esc(heading));
    if found.is_empty() {
        o.push_str("<p class=ok>No finding.</p>");
        return;
    }
    let mut keys: Vec<&str> = Vec::new();
    for (k, v) in found.iter().flat_map(|f| &f.evidence) {
        if !v.is_empty() && !keys.contains(&k.as_str()) {
            keys.push(k);
        }
    }
    o.push_str("<table><tr><th>finding</th>");
    for k in &keys {
        let _ = write!(o, "<th>{}</th>", esc(&k.replace('_', " ")));
    }
    o.push_str("</tr>");
    for f in &found {
        let _ = write!(
            o,
            "<tr><td><b>{}</b><br><span class=muted>{}</span></td>",
            esc(&f.title),
            esc(&f.fix)
        );
        for k in &keys {
            let v = f
                .evidence
                .iter()
                .find(|(x, _)| x == k)
                .map_or("", |(_, v)| v.as_str());
            let _ = write!(o, "<td>{}</td>", esc(v));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
}

fn footer(o: &mut String, r: &Report) {
    let i = &r.input;
    let packs: Vec<String> = r
        .packs
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let _ = write!(
        o,
        "<footer>tokenhound {} · packs: {} · read {} files, {} records, {} problems · prices of {} · every finding is in <code>--format json</code></footer>",
        esc(r.tokenhound),
        esc(&packs.join(", ")),
        num(i.files),
        num(i.records),
        num(i.problems),
        super::prices::AS_OF
    );
}
