//! Model prices in USD per million tokens, matched by the longest model-name
//! prefix. A pack's `[prices."PREFIX"]` entries override and extend this table.

use crate::rules::Price;
use std::collections::BTreeMap;

/// Published list prices (USD / 1M tokens) as of 2025-12 (the providers'
/// pricing pages; docs/detectors.md lists them). Gemini has no cache-write price
/// (cache storage is billed per hour): its writes are priced as input here.
pub const AS_OF: &str = "2025-12";
const BUILTIN: &[(&str, f64, f64, f64, f64)] = &[
    // (model prefix, input, output, cache read, cache write)
    ("claude-opus-4", 15.0, 75.0, 1.5, 18.75),
    ("claude-opus-4-5", 5.0, 25.0, 0.5, 6.25),
    ("claude-sonnet-4", 3.0, 15.0, 0.3, 3.75),
    ("claude-3-7-sonnet", 3.0, 15.0, 0.3, 3.75),
    ("claude-3-5-sonnet", 3.0, 15.0, 0.3, 3.75),
    ("claude-haiku-4-5", 1.0, 5.0, 0.1, 1.25),
    ("claude-3-5-haiku", 0.8, 4.0, 0.08, 1.0),
    ("claude-3-haiku", 0.25, 1.25, 0.03, 0.3),
    ("gpt-5", 1.25, 10.0, 0.125, 1.25),
    ("gpt-5-mini", 0.25, 2.0, 0.025, 0.25),
    ("gpt-5-nano", 0.05, 0.4, 0.005, 0.05),
    ("gpt-4.1", 2.0, 8.0, 0.5, 2.0),
    ("gpt-4.1-mini", 0.4, 1.6, 0.1, 0.4),
    ("gpt-4.1-nano", 0.1, 0.4, 0.025, 0.1),
    ("gpt-4o", 2.5, 10.0, 1.25, 2.5),
    ("gpt-4o-mini", 0.15, 0.6, 0.075, 0.15),
    ("o3", 2.0, 8.0, 0.5, 2.0),
    ("o4-mini", 1.1, 4.4, 0.275, 1.1),
    ("gemini-2.5-pro", 1.25, 10.0, 0.31, 1.25),
    ("gemini-2.5-flash", 0.30, 2.50, 0.075, 0.30),
    ("gemini-2.5-flash-lite", 0.10, 0.40, 0.025, 0.10),
    ("gemini-2.0-flash", 0.10, 0.40, 0.025, 0.10),
    ("gemini-2.0-flash-lite", 0.075, 0.30, 0.075, 0.075),
];

#[derive(Clone, Debug)]
pub struct Prices(Vec<(String, Price)>);

impl Prices {
    /// The built-in table with a pack's overrides on top.
    pub fn with(overrides: &BTreeMap<String, Price>) -> Self {
        let mut t: Vec<(String, Price)> = BUILTIN
            .iter()
            .map(|&(m, i, o, r, w)| {
                (
                    m.to_lowercase(),
                    Price {
                        input: i,
                        output: o,
                        cache_read: Some(r),
                        cache_write: Some(w),
                    },
                )
            })
            .collect();
        // Prefixes are kept lowercased: `of` runs for every charge of every
        // finding, and lowercasing each prefix there was most of a report's build.
        for (m, p) in overrides {
            let m = m.to_lowercase();
            t.retain(|(x, _)| *x != m);
            t.push((m, *p));
        }
        Prices(t)
    }

    /// What `usage` of `model` costs at list prices, cache reads and writes
    /// priced apart from the rest of the input; `None` when the model has no price.
    pub fn cost_of(&self, model: &str, u: &crate::model::Usage) -> Option<f64> {
        let p = self.of(model)?;
        let plain = u.input.saturating_sub(u.cache_read + u.cache_write);
        Some(
            (plain as f64 * p.input
                + u.cache_read as f64 * p.cache_read.unwrap_or(p.input)
                + u.cache_write as f64 * p.cache_write.unwrap_or(p.input)
                + u.output as f64 * p.output)
                / 1e6,
        )
    }

    /// The price of a model: the longest matching prefix, provider prefix ignored.
    pub fn of(&self, model: &str) -> Option<Price> {
        let m = model.rsplit('/').next().unwrap_or(model).to_lowercase();
        self.0
            .iter()
            .filter(|(p, _)| m.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_overrides_apply() {
        let mut o = BTreeMap::new();
        o.insert(
            "gpt-4o".to_string(),
            Price {
                input: 9.0,
                output: 9.0,
                cache_read: None,
                cache_write: None,
            },
        );
        let p = Prices::with(&o);
        assert_eq!(p.of("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(p.of("openai/gpt-4o-2024-08-06").unwrap().input, 9.0);
        assert_eq!(p.of("claude-sonnet-4-20250514").unwrap().output, 15.0);
        assert!(p.of("mistral-small").is_none());
    }
}

/// The model of each trace's first LLM call, by trace: a finding's charges
/// are priced at it. A trace is known by a 64-bit hash of its id (as spans
/// are by `model::span_key`) and each model name is held once, by index: as a
/// pair of strings per trace this was about 13 MB at 110,000 traces, growing
/// with the input; an entry is now 16 bytes a trace.
#[derive(Default)]
pub struct TraceModels {
    by_trace: rustc_hash::FxHashMap<u64, u32>,
    names: Vec<std::sync::Arc<str>>,
    index: rustc_hash::FxHashMap<std::sync::Arc<str>, u32>,
}

/// A trace's key in [`TraceModels`].
pub fn trace_key(trace_id: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(trace_id)
}

impl TraceModels {
    /// Note a trace's model; a later note of the same trace replaces it.
    pub fn add(&mut self, trace: u64, model: &str) {
        let i = match self.index.get(model) {
            Some(&i) => i,
            None => {
                let n: std::sync::Arc<str> = model.into();
                let i = self.names.len() as u32;
                self.names.push(n.clone());
                self.index.insert(n, i);
                i
            }
        };
        self.by_trace.insert(trace, i);
    }

    pub fn get(&self, trace_id: &str) -> Option<&str> {
        let i = *self.by_trace.get(&trace_key(trace_id))?;
        Some(&self.names[i as usize])
    }

    /// As a watch checkpoint holds them.
    pub fn save(&self) -> Vec<(u64, String)> {
        let mut all: Vec<_> = (self.by_trace.iter())
            .map(|(&k, &m)| (k, self.names[m as usize].to_string()))
            .collect();
        all.sort_unstable();
        all
    }

    pub fn restore(saved: Vec<(u64, String)>) -> Self {
        let mut t = TraceModels::default();
        for (k, m) in saved {
            t.add(k, &m);
        }
        t
    }
}
