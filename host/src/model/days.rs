//! The UTC day each counted LLM and tool call starts, so a finding's waste can
//! be dated by the calls it charges (the report's daily chart, `diff` by day).
//!
//! It is kept for every call of the input until the report is built, so it
//! grows with the input: a map from span key to day took some 25 bytes a call
//! (36 MB at 14 M spans) and doubled while it grew. Here a call costs 8 bytes:
//! its key, in fixed-size chunks that never move; the day is its trace's (a
//! trace's calls nearly always start on one day), with the few calls of
//! another day (a trace across midnight) kept apart.

use rustc_hash::FxHashMap;

/// Keys per chunk (512 KiB).
const CHUNK: usize = 1 << 16;

#[derive(Debug, Default, Clone)]
pub struct CallDays {
    /// every call's span key, in arrival order
    chunks: Vec<Vec<u64>>,
    /// the day of each trace's first call, by trace id hash
    trace_day: FxHashMap<u64, u64>,
    /// calls that start on another day than their trace's first call
    other_day: FxHashMap<u64, u64>,
}

impl CallDays {
    /// Note the call `span_id` of `trace_id` starting on `day`.
    pub fn add(&mut self, trace_id: &str, span_id: &str, day: u64) {
        let key = super::span_key(trace_id, span_id);
        let first = *self
            .trace_day
            .entry(super::id_hash(trace_id))
            .or_insert(day);
        if first != day {
            self.other_day.insert(key, day);
        }
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(key),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(key);
                self.chunks.push(c);
            }
        }
    }

    /// The calls, sorted for lookups (the chunks are freed as they are copied).
    pub fn into_lookup(self) -> DayLookup {
        let mut keys = Vec::with_capacity(self.chunks.iter().map(Vec::len).sum());
        for c in self.chunks {
            keys.extend(c);
        }
        keys.sort_unstable();
        DayLookup {
            keys,
            trace_day: self.trace_day,
            other_day: self.other_day,
        }
    }
}

/// [`CallDays`] made ready to answer which day a span key's call starts.
pub struct DayLookup {
    keys: Vec<u64>,
    trace_day: FxHashMap<u64, u64>,
    other_day: FxHashMap<u64, u64>,
}

impl DayLookup {
    /// The day the call `span_id` of `trace_id` starts; `None` when that span
    /// is not a counted call.
    pub fn day(&self, trace_id: &str, span_id: &str) -> Option<u64> {
        let key = super::span_key(trace_id, span_id);
        self.keys.binary_search(&key).ok()?;
        self.other_day
            .get(&key)
            .or_else(|| self.trace_day.get(&super::id_hash(trace_id)))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_dated_by_its_own_start_even_when_its_trace_crosses_midnight() {
        let mut d = CallDays::default();
        d.add("t1", "a", 10);
        d.add("t1", "b", 11);
        d.add("t1", "c", 10);
        d.add("t2", "a", 11);
        let l = d.into_lookup();
        assert_eq!(l.day("t1", "a"), Some(10));
        assert_eq!(l.day("t1", "b"), Some(11));
        assert_eq!(l.day("t1", "c"), Some(10));
        assert_eq!(l.day("t2", "a"), Some(11));
    }

    #[test]
    fn a_span_that_is_not_a_counted_call_has_no_day() {
        let mut d = CallDays::default();
        d.add("t1", "a", 10);
        let l = d.into_lookup();
        assert_eq!(l.day("t1", "service"), None);
        assert_eq!(l.day("t9", "a"), None);
    }

    #[test]
    fn calls_past_one_chunk_are_all_found() {
        let mut d = CallDays::default();
        let n = CHUNK + 10;
        for i in 0..n {
            d.add("t", &i.to_string(), 3);
        }
        let l = d.into_lookup();
        assert!((0..n).all(|i| l.day("t", &i.to_string()) == Some(3)));
    }
}
