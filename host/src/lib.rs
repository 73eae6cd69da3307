//! tokenhound: find where an LLM agent's tokens go.
//!
//! The flow, one module per stage: [`ingest`] (readers and dialects) →
//! [`model`] (canonical spans, traces, batches) → [`engine`] (sandboxed WASM
//! detectors) → [`rules`] (packs) → [`report`] (renderers), with [`scan`]
//! tying them together for one run.

pub mod builtin;
pub mod cmd;
pub mod costliest;
pub mod engine;
pub mod ingest;
pub mod location;
pub mod model;
pub mod prices;
pub mod receive;
pub mod report;
pub mod rules;
pub mod scan;
pub mod spill;
pub mod watch;
