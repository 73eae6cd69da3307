//! The name of the file a span came from, as a small number.
//!
//! Every span carries where it came from (for located problems). As a shared
//! name (`Arc<str>`) that cost each span two locked operations on a count
//! every span of the file shares: one on the reading thread that made it and
//! one on the thread that dropped it, each waiting for the other's cache line.
//! A number is copied for nothing. Names are kept for the life of the
//! process: a scan reads a handful of files, and `watch` the files of its
//! directories, a name each.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileName(u32);

/// Every name given a number so far; number 0 is the empty name.
struct Names {
    list: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

static NAMES: LazyLock<RwLock<Names>> = LazyLock::new(|| {
    let empty: Arc<str> = Arc::from("");
    RwLock::new(Names {
        list: vec![empty.clone()],
        index: HashMap::from([(empty, 0)]),
    })
});

impl FileName {
    /// The number of `name`, given it on first sight.
    pub fn of(name: &str) -> FileName {
        if let Some(&n) = read().index.get(name) {
            return FileName(n);
        }
        let mut names = NAMES.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = names.index.get(name) {
            return FileName(n);
        }
        let n = u32::try_from(names.list.len()).expect("fewer than 2^32 file names");
        let name: Arc<str> = Arc::from(name);
        names.list.push(name.clone());
        names.index.insert(name, n);
        FileName(n)
    }

    /// The name.
    pub fn name(self) -> Arc<str> {
        read().list[self.0 as usize].clone()
    }
}

fn read() -> std::sync::RwLockReadGuard<'static, Names> {
    // A panic elsewhere while the names were written leaves them whole (a
    // push and an insert), so a poisoned lock is still read.
    NAMES.read().unwrap_or_else(|e| e.into_inner())
}

impl From<&str> for FileName {
    fn from(name: &str) -> Self {
        FileName::of(name)
    }
}

impl std::fmt::Debug for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.name(), f)
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Written as the name (watch's checkpoints hold spans), read back as its number.
impl serde::Serialize for FileName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for FileName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(FileName::of(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_number_and_reads_back_through_a_checkpoint() {
        let a = FileName::of("spans/a.jsonl");
        let b = FileName::of("spans/b.jsonl");
        assert_ne!(a, b);
        assert_eq!(FileName::of("spans/a.jsonl"), a);
        assert_eq!(&*a.name(), "spans/a.jsonl");
        assert_eq!(FileName::default().to_string(), "");
        let bytes = postcard::to_allocvec(&(a, b)).unwrap();
        let back: (FileName, FileName) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, (a, b));
        // the same bytes as the name itself, as checkpoints held before
        assert_eq!(
            bytes,
            postcard::to_allocvec(&("spans/a.jsonl", "spans/b.jsonl")).unwrap()
        );
    }
}
