//! Any text as a `--mapping` file: parsed and validated or refused with a
//! message, never a panic; a mapping that parses is applied to attributes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenhound::ingest::mapping::{self, Mappings};
use tokenhound::ingest::attrs::{AnyValue, KeyValue};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(maps) = mapping::parse("fuzz.toml", text) {
        let maps = Mappings(maps);
        let attrs: Vec<KeyValue> = text
            .lines()
            .take(16)
            .map(|l| KeyValue {
                key: l.chars().take(64).collect(),
                value: AnyValue::Str(l.into()),
            })
            .collect();
        let _ = maps.apply(text.lines().next().unwrap_or(""), &attrs);
    }
});
