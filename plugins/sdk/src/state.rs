//! A detector's state as bytes, for `watch`'s checkpoint: the detector derives
//! serde's `Serialize` and `Deserialize` and implements
//! [`Detector::save`](crate::Detector::save) and
//! [`Detector::restore`](crate::Detector::restore) with these two calls.
//! postcard is compact and, unlike JSON, takes maps with tuple keys.
//!
//! ```ignore
//! fn save(&self) -> Option<Vec<u8>> { state::save(self) }
//! fn restore(_: &Params, s: &[u8]) -> Result<Self, String> { state::restore(s) }
//! ```

/// The bytes of `value`; `None` if it cannot be written (the host then
/// replays on a restart, which is slower but as exact).
pub fn save<T: serde::Serialize>(value: &T) -> Option<Vec<u8>> {
    postcard::to_allocvec(value).ok()
}

/// The value [`save`] wrote.
pub fn restore<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("a saved state this version cannot read: {e}"))
}
