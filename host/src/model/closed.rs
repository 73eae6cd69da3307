//! The span keys of traces already analysed, kept so that a span that comes
//! again, however late, is dropped as a repeat and not counted twice.
//!
//! They are 8 bytes per span of the whole input: 112 MB for 14 M spans, most
//! of a large scan's memory once findings went to disk. Only a repeated or late
//! span of an old trace, or a detector's charge to one, ever looks them up, so
//! the most recent traces' keys stay in memory and older ones go to a
//! temporary file, with only their place (some 30 bytes a trace) in memory.

use crate::spill::{At, Spill};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Keys held in memory before the oldest traces' go to disk (8 MB).
pub const IN_MEMORY: usize = 1 << 20;

pub struct ClosedKeys {
    /// recent traces' sorted span keys, by trace id hash
    recent: FxHashMap<u64, Box<[u64]>>,
    /// `recent`'s traces, oldest first
    order: VecDeque<u64>,
    /// keys in `recent`
    held: usize,
    /// keys held in memory at most; past it the oldest traces go to disk
    budget: usize,
    /// older traces' keys: the file and each trace's place in it
    disk: Option<Spill>,
    on_disk: FxHashMap<u64, At>,
}

impl Default for ClosedKeys {
    fn default() -> Self {
        ClosedKeys::with_budget(IN_MEMORY)
    }
}

impl ClosedKeys {
    pub fn with_budget(budget: usize) -> Self {
        ClosedKeys {
            recent: FxHashMap::default(),
            order: VecDeque::new(),
            held: 0,
            budget,
            disk: None,
            on_disk: FxHashMap::default(),
        }
    }

    /// `None` if the trace was never closed; else whether `key` is one of its
    /// spans.
    pub fn lookup(&self, trace: u64, key: u64) -> Option<bool> {
        if let Some(keys) = self.recent.get(&trace) {
            return Some(keys.binary_search(&key).is_ok());
        }
        let at = *self.on_disk.get(&trace)?;
        Some(self.read(at).binary_search(&key).is_ok())
    }

    /// Remember a trace's span keys (beside those of an earlier part of it,
    /// when late spans made a second one).
    pub fn add(&mut self, trace: u64, keys: impl IntoIterator<Item = u64>) {
        let earlier: Vec<u64> = match self.recent.remove(&trace) {
            Some(k) => {
                self.held -= k.len();
                k.into_vec()
            }
            None => match self.on_disk.remove(&trace) {
                Some(at) => {
                    // Back in memory with the new keys; its old copy on disk
                    // is no longer pointed to.
                    self.order.push_back(trace);
                    self.read(at)
                }
                None => {
                    self.order.push_back(trace);
                    Vec::new()
                }
            },
        };
        let mut all = earlier;
        all.extend(keys);
        all.sort_unstable();
        self.held += all.len();
        self.recent.insert(trace, all.into_boxed_slice());
        if self.held > self.budget {
            self.evict();
        }
    }

    /// Every closed trace with its sorted keys (watch mode's checkpoint).
    pub fn all(&self) -> Vec<(u64, Vec<u64>)> {
        let recent = self.recent.iter().map(|(&t, k)| (t, k.to_vec()));
        let old = self.on_disk.iter().map(|(&t, &at)| (t, self.read(at)));
        recent.chain(old).collect()
    }

    /// Move the oldest traces' keys to disk until half the budget is left.
    fn evict(&mut self) {
        if self.disk.is_none() {
            match Spill::new() {
                Ok(s) => self.disk = Some(s),
                Err(e) => {
                    eprintln!("tokenhound: {e}; the ids of analysed spans are kept in memory");
                    self.budget = usize::MAX;
                    return;
                }
            }
        }
        let disk = self.disk.as_mut().expect("made above");
        while self.held > self.budget / 2 {
            let Some(trace) = self.order.pop_front() else {
                break;
            };
            let Some(keys) = self.recent.remove(&trace) else {
                continue;
            };
            self.held -= keys.len();
            let bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
            let at = disk
                .push(&bytes)
                .expect("the ids of analysed spans can be written to a temporary file");
            self.on_disk.insert(trace, at);
        }
        disk.flush()
            .expect("the ids of analysed spans can be written to a temporary file");
    }

    fn read(&self, at: At) -> Vec<u64> {
        let disk = self.disk.as_ref().expect("keys on disk have a file");
        let bytes = disk
            .read(at)
            .expect("the ids of analysed spans can be read back");
        bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys moved to disk are found as before; a trace closed again gathers
    /// its old and new keys; nothing is forgotten.
    #[test]
    fn keys_on_disk_are_found_as_in_memory() {
        let mut c = ClosedKeys::with_budget(100);
        for t in 0..1000u64 {
            c.add(t, (0..10).map(|k| t * 1000 + k));
        }
        assert!(c.held <= 100, "{} keys in memory", c.held);
        assert!(!c.on_disk.is_empty());
        for t in [0, 1, 500, 999] {
            assert_eq!(c.lookup(t, t * 1000 + 3), Some(true), "trace {t}");
            assert_eq!(c.lookup(t, t * 1000 + 11), Some(false), "trace {t}");
        }
        assert_eq!(c.lookup(5000, 1), None, "never closed");
        c.add(0, [77]);
        assert_eq!(c.lookup(0, 77), Some(true));
        assert_eq!(c.lookup(0, 9), Some(true), "the earlier keys too");
        let all = c.all();
        assert_eq!(all.len(), 1000);
        assert_eq!(all.iter().map(|(_, k)| k.len()).sum::<usize>(), 10_001);
    }
}
