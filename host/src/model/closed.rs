//! The span keys of traces already analysed, kept so that a span that comes
//! again, however late, is dropped as a repeat and not counted twice.
//!
//! They are 8 bytes per span of the whole input: 112 MB for 14 M spans, most
//! of a large scan's memory once findings went to disk. Only a repeated or late
//! span of an old trace, or a detector's charge to one, ever looks them up, so
//! the most recent traces' keys stay in memory and older ones go to a
//! temporary file, with only their place (some 30 bytes a trace) in memory.
//!
//! A key also says whether its span is an LLM or tool call and the UTC day
//! it starts: its low 16 bits are that tag, the other 48 the span's key. A
//! finding's waste is dated by the calls it charges; a separate index of
//! every call's day grew with the input (8 bytes a call, 16 MB at 14 M spans)
//! where this one costs nothing more and waits on disk with the keys. Two
//! spans of one trace alike in 48 bits are one span to this index: for a
//! trace of 1,000 spans about one chance in 10^9.

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
    /// (packed by [`pack`]: 16 bytes a trace in the table, not 24)
    on_disk: FxHashMap<u64, u64>,
}

impl Default for ClosedKeys {
    fn default() -> Self {
        ClosedKeys::with_budget(IN_MEMORY)
    }
}

/// The bits of a stored key that tag its span (see the module's words).
const TAG: u64 = 0xFFFF;

/// The tag of a span: 0 for one that is not a counted call, else its start
/// day + 1 (days after 65,534, in the year 2149, are dated that day).
pub fn tag(call_day: Option<u64>) -> u64 {
    call_day.map_or(0, |d| d.min(TAG - 1) + 1)
}

/// A span's key as stored: `key` with `tag` in its low bits.
pub fn tagged(key: u64, tag: u64) -> u64 {
    (key & !TAG) | tag
}

/// What the index knows of a span of a closed trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// the trace was never closed
    NoTrace,
    /// the trace was closed without this span
    NoSpan,
    /// one of the trace's spans; the day it starts if it is a counted call
    Span { call_day: Option<u64> },
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
        match self.find(trace, key) {
            Known::NoTrace => None,
            Known::NoSpan => Some(false),
            Known::Span { .. } => Some(true),
        }
    }

    /// Whether `key` is a span of the closed trace `trace`, and its call day.
    pub fn find(&self, trace: u64, key: u64) -> Known {
        let found = match self.recent.get(&trace) {
            Some(keys) => search(keys, key),
            None => match self.on_disk.get(&trace) {
                Some(&at) => search(&self.read(unpack(at)), key),
                None => return Known::NoTrace,
            },
        };
        match found {
            None => Known::NoSpan,
            Some(stored) => Known::Span {
                call_day: (stored & TAG).checked_sub(1),
            },
        }
    }

    /// Remember a trace's span keys, each [`tagged`] (beside those of an
    /// earlier part of it, when late spans made a second one).
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
                    self.read(unpack(at))
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
        let old = (self.on_disk.iter()).map(|(&t, &at)| (t, self.read(unpack(at))));
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
            let bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
            let at = disk
                .push(&bytes)
                .expect("the ids of analysed spans can be written to a temporary file");
            match pack(at) {
                Some(packed) => {
                    self.held -= keys.len();
                    self.on_disk.insert(trace, packed);
                }
                // past a terabyte of ids, or a trace of 16 M spans: it stays
                None => drop(self.recent.insert(trace, keys)),
            }
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

/// A place on disk in one word: the offset in 40 bits, the number of keys in
/// 24 (`None` past either).
fn pack(at: At) -> Option<u64> {
    let keys = u64::from(at.len) / 8;
    (at.offset < 1 << 40 && keys < 1 << 24).then_some(at.offset << 24 | keys)
}

fn unpack(packed: u64) -> At {
    At {
        offset: packed >> 24,
        len: (packed & 0xFF_FFFF) as u32 * 8,
    }
}

/// The stored key of sorted `keys` that is `key` but for the tag.
fn search(keys: &[u64], key: u64) -> Option<u64> {
    let bare = key & !TAG;
    let i = keys.partition_point(|k| k & !TAG < bare);
    keys.get(i).copied().filter(|k| k & !TAG == bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span key as the assembler makes them (only the high 48 bits count).
    fn key(n: u64) -> u64 {
        n << 16
    }

    /// Keys moved to disk are found as before; a trace closed again gathers
    /// its old and new keys; nothing is forgotten.
    #[test]
    fn keys_on_disk_are_found_as_in_memory() {
        let mut c = ClosedKeys::with_budget(100);
        for t in 0..1000u64 {
            c.add(t, (0..10).map(|k| key(t * 1000 + k)));
        }
        assert!(c.held <= 100, "{} keys in memory", c.held);
        assert!(!c.on_disk.is_empty());
        for t in [0, 1, 500, 999] {
            assert_eq!(c.lookup(t, key(t * 1000 + 3)), Some(true), "trace {t}");
            assert_eq!(c.lookup(t, key(t * 1000 + 11)), Some(false), "trace {t}");
        }
        assert_eq!(c.lookup(5000, key(1)), None, "never closed");
        c.add(0, [key(77)]);
        assert_eq!(c.lookup(0, key(77)), Some(true));
        assert_eq!(c.lookup(0, key(9)), Some(true), "the earlier keys too");
        let all = c.all();
        assert_eq!(all.len(), 1000);
        assert_eq!(all.iter().map(|(_, k)| k.len()).sum::<usize>(), 10_001);
    }

    /// A trace's place on disk is one word; a place that does not fit says so.
    #[test]
    fn a_place_on_disk_packs_into_one_word_or_not_at_all() {
        let at = At {
            offset: (1 << 40) - 1,
            len: 8 * ((1 << 24) - 1),
        };
        let back = unpack(pack(at).expect("fits"));
        assert_eq!((back.offset, back.len), (at.offset, at.len));
        assert!(pack(At {
            offset: 1 << 40,
            len: 8
        })
        .is_none());
        assert!(pack(At {
            offset: 0,
            len: 8 << 24
        })
        .is_none());
    }

    /// The day a call starts is read back with its key, in memory and from
    /// disk; a span that is not a call has none; day 0 is a day.
    #[test]
    fn a_keys_tag_gives_back_its_calls_day() {
        let mut c = ClosedKeys::with_budget(4);
        let span = |n: u64, day: Option<u64>| tagged(key(n), tag(day));
        c.add(1, [span(1, Some(20_400)), span(2, None), span(3, Some(0))]);
        c.add(2, [span(4, Some(20_401)), span(5, None)]);
        c.add(3, (10..20).map(|n| span(n, None)));
        assert!(!c.on_disk.is_empty(), "trace 1 went to disk");
        let day = |t, n| c.find(t, key(n) | 0x1234);
        assert_eq!(
            day(1, 1),
            Known::Span {
                call_day: Some(20_400)
            }
        );
        assert_eq!(day(1, 2), Known::Span { call_day: None });
        assert_eq!(day(1, 3), Known::Span { call_day: Some(0) });
        assert_eq!(
            day(2, 4),
            Known::Span {
                call_day: Some(20_401)
            }
        );
        assert_eq!(day(2, 6), Known::NoSpan);
        assert_eq!(day(9, 1), Known::NoTrace);
        assert_eq!(tag(Some(u64::MAX)), TAG, "a day past 2149 is clamped");
    }
}
