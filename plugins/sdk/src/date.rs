//! UTC dates without a date library (guests stay small): day numbers since
//! 1970-01-01 to and from civil dates (Howard Hinnant's algorithms), and the
//! texts detectors put in evidence.

/// Nanoseconds in a day.
pub const DAY_NS: u64 = 86_400_000_000_000;

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day number of a civil date (the inverse of [`civil`]).
pub fn day_of(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-03` of a day number.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `2026-11-03`.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    Some(day_of(y, m as u32, d as u32))
}

/// `2026-11-03T14:22:05Z` of a time in nanoseconds.
pub fn utc_text(ns: u64) -> String {
    let secs = ns / 1_000_000_000 % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date((ns / DAY_NS) as i64),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_round_trip() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(parse_date("2026-11-01"), Some(20_758));
        for day in [-1, 0, 59, 20_758, 30_000] {
            assert_eq!(parse_date(&date(day)), Some(day));
        }
        assert_eq!(
            utc_text(1_717_041_600 * 1_000_000_000),
            "2024-05-30T04:00:00Z"
        );
    }
}
