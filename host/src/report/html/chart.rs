//! The report's two charts as inline SVG: waste per day stacked by detector,
//! and the budget pace (cumulative tokens this month against the last). Axes
//! with units and dates, gridlines at round numbers, a tooltip (`<title>`) on
//! every bar and point; no script.

use super::esc;
use crate::report::num;
use std::fmt::Write as _;

const W: f64 = 1100.0;
const H: f64 = 330.0;
const LEFT: f64 = 74.0;
const RIGHT: f64 = 18.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 50.0;

/// One day's bar: its UTC day number and (tokens, colour, series) from the bottom up.
pub struct Bar<'a> {
    pub day: u64,
    pub stack: Vec<(u64, &'static str, &'a str)>,
}

/// A round top for an axis and its step: 5 or so gridlines at 1, 2, 2.5 or 5 × 10^k.
fn scale(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 1.0);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// 1.2M, 350k, 900: an axis label.
fn short(v: f64) -> String {
    let trim = |x: f64, unit: &str| {
        let t = format!("{x:.1}");
        format!("{}{unit}", t.trim_end_matches(".0"))
    };
    if v >= 1e6 {
        trim(v / 1e6, "M")
    } else if v >= 1e3 {
        trim(v / 1e3, "k")
    } else {
        format!("{v:.0}")
    }
}

/// `Oct 5` of a UTC day number.
fn day_label(day: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = crate::model::utc_day(day * crate::model::DAY_NS);
    let m: usize = d.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let n: u32 = d.get(8..10).and_then(|n| n.parse().ok()).unwrap_or(1);
    format!("{} {n}", MONTHS[(m + 11) % 12])
}

/// The frame: y gridlines with labels, the axis titles.
fn frame(o: &mut String, top: f64, step: f64, y_title: &str, x_title: &str) {
    let plot_h = H - TOP - BOTTOM;
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = TOP + plot_h - v / top * plot_h;
        let _ = write!(
            o,
            "<line x1='{LEFT}' x2='{}' y1='{y:.1}' y2='{y:.1}' stroke='#e3e6eb'/><text x='{}' y='{:.1}' text-anchor='end' class='t'>{}</text>",
            W - RIGHT,
            LEFT - 8.0,
            y + 4.0,
            short(v)
        );
        v += step;
    }
    let _ = write!(
        o,
        "<line x1='{LEFT}' x2='{LEFT}' y1='{TOP}' y2='{}' stroke='#9aa3af'/><line x1='{LEFT}' x2='{}' y1='{0:}' y2='{0:}' stroke='#9aa3af'/>",
        TOP + plot_h,
        W - RIGHT
    );
    let _ = write!(
        o,
        "<text transform='translate(16 {:.0}) rotate(-90)' text-anchor='middle' class='a'>{}</text><text x='{:.0}' y='{}' text-anchor='middle' class='a'>{}</text>",
        TOP + plot_h / 2.0,
        esc(y_title),
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 8.0,
        esc(x_title)
    );
}

fn open(o: &mut String, label: &str) {
    let _ = write!(
        o,
        "<svg viewBox='0 0 {W} {H}' role='img' aria-label='{}' xmlns='http://www.w3.org/2000/svg'><style>.t{{font:12px system-ui,sans-serif;fill:#5b6472}}.a{{font:12px system-ui,sans-serif;fill:#39414d;font-weight:600}}</style>",
        esc(label)
    );
}

/// Bars per day, stacked; every day of the range gets a slot, empty or not.
pub fn stacked(o: &mut String, bars: &[Bar], y_title: &str) {
    let max = bars
        .iter()
        .map(|b| b.stack.iter().map(|s| s.0).sum::<u64>())
        .max()
        .unwrap_or(0) as f64;
    let (top, step) = scale(max);
    open(o, y_title);
    frame(o, top, step, y_title, "UTC day");
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - RIGHT) / bars.len().max(1) as f64;
    let every = (bars.len() as f64 / 12.0).ceil().max(1.0) as usize;
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + i as f64 * slot + slot * 0.12;
        let mut y = TOP + plot_h;
        for (tokens, colour, series) in b.stack.iter().filter(|s| s.0 > 0) {
            let h = *tokens as f64 / top * plot_h;
            y -= h;
            let _ = write!(
                o,
                "<rect x='{x:.1}' y='{y:.1}' width='{:.1}' height='{h:.1}' fill='{colour}'><title>{} {}: {} tokens</title></rect>",
                slot * 0.76,
                crate::model::utc_day(b.day * crate::model::DAY_NS),
                esc(series),
                num(*tokens)
            );
        }
        if i % every == 0 {
            let _ = write!(
                o,
                "<text x='{:.1}' y='{:.1}' text-anchor='middle' class='t'>{}</text>",
                x + slot * 0.38,
                TOP + plot_h + 17.0,
                day_label(b.day)
            );
        }
    }
    o.push_str("</svg>");
}

/// Days in a `YYYY-MM` month.
fn month_days(month: &str) -> u32 {
    let y: i32 = month.get(..4).and_then(|y| y.parse().ok()).unwrap_or(2026);
    let m: u8 = month.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    time::Month::try_from(m).map_or(30, |m| u32::from(m.length(y)))
}

/// Cumulative tokens by day of month: this month, its projection to the
/// month's end, the last month and the alert line 20% above its total.
pub fn pace(
    o: &mut String,
    now: &[(u32, u64)],
    before: &[(u32, u64)],
    this: &str,
    prev: Option<&str>,
) {
    let days = month_days(this);
    let last_total = before.last().map_or(0, |p| p.1) as f64;
    let projected = now.last().map_or(0.0, |&(d, t)| {
        t as f64 / f64::from(d.max(1)) * f64::from(days)
    });
    let max = projected
        .max(last_total * 1.2)
        .max(now.last().map_or(0, |p| p.1) as f64);
    let (top, step) = scale(max);
    open(o, "budget pace");
    frame(
        o,
        top,
        step,
        "tokens since the 1st (cumulative)",
        "day of the month",
    );
    let plot_h = H - TOP - BOTTOM;
    let x = |d: f64| LEFT + (d - 1.0) / f64::from(days.max(2) - 1) * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    for d in (1..=days).step_by(2) {
        let _ = write!(
            o,
            "<text x='{:.1}' y='{:.1}' text-anchor='middle' class='t'>{d}</text>",
            x(f64::from(d)),
            TOP + plot_h + 17.0
        );
    }
    let line = |o: &mut String, pts: &[(u32, u64)], colour: &str, name: &str| {
        let p: Vec<String> = pts
            .iter()
            .map(|&(d, v)| format!("{:.1},{:.1}", x(f64::from(d)), y(v as f64)))
            .collect();
        let _ = write!(
            o,
            "<polyline points='{}' fill='none' stroke='{colour}' stroke-width='2.5'><title>{}</title></polyline>",
            p.join(" "),
            esc(name)
        );
    };
    if let Some(prev) = prev {
        line(
            o,
            before,
            "#9aa3af",
            &format!("{prev}: {} tokens", num(last_total as u64)),
        );
        let alert = y(last_total * 1.2);
        let _ = write!(
            o,
            "<line x1='{LEFT}' x2='{}' y1='{alert:.1}' y2='{alert:.1}' stroke='#d55e00' stroke-dasharray='6 4'/>",
            W - RIGHT
        );
    }
    line(o, now, "#0072b2", this);
    // A dot per day with calls, so a month of one day still shows.
    for &(d, v) in now {
        let _ = write!(
            o,
            "<circle cx='{:.1}' cy='{:.1}' r='3' fill='#0072b2'><title>{this}-{d:02}: {} tokens so far</title></circle>",
            x(f64::from(d)),
            y(v as f64),
            num(v)
        );
    }
    if let Some(&(d, t)) = now.last() {
        let _ = write!(
            o,
            "<line x1='{:.1}' y1='{:.1}' x2='{:.1}' y2='{:.1}' stroke='#0072b2' stroke-dasharray='3 4' stroke-width='2'><title>projected: {} tokens</title></line>",
            x(f64::from(d)),
            y(t as f64),
            x(f64::from(days)),
            y(projected),
            num(projected as u64)
        );
    }
    legend(o, this, prev, projected);
    o.push_str("</svg>");
}

fn legend(o: &mut String, this: &str, prev: Option<&str>, projected: f64) {
    let mut items = vec![
        ("#0072b2", "", format!("{this} so far")),
        (
            "#0072b2",
            "3 4",
            format!("projected: {} tokens", short(projected)),
        ),
    ];
    if let Some(p) = prev {
        items.push(("#9aa3af", "", p.to_string()));
        items.push(("#d55e00", "6 4", format!("{p} + 20% (alert)")));
    }
    // A white ground, so the legend reads over the lines it names.
    let _ = write!(
        o,
        "<rect x='{}' y='{}' width='250' height='{}' fill='#fff' fill-opacity='0.9'/>",
        LEFT + 8.0,
        TOP + 2.0,
        items.len() as f64 * 18.0 + 4.0
    );
    for (i, (c, dash, label)) in items.iter().enumerate() {
        let yy = TOP + 12.0 + i as f64 * 18.0;
        let _ = write!(
            o,
            "<line x1='{}' x2='{}' y1='{yy}' y2='{yy}' stroke='{c}' stroke-width='2.5' stroke-dasharray='{dash}'/><text x='{}' y='{}' class='t'>{}</text>",
            LEFT + 14.0,
            LEFT + 40.0,
            LEFT + 46.0,
            yy + 4.0,
            esc(label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_above_the_largest_value() {
        assert_eq!(scale(430_000.0), (500_000.0, 100_000.0));
        assert_eq!(scale(97.0), (100.0, 20.0));
        assert_eq!(scale(0.0), (1.0, 1.0));
        assert_eq!(short(1_250_000.0), "1.2M");
        assert_eq!(short(50_000.0), "50k");
        assert_eq!(day_label(20_372), "Oct 11");
    }
}
