//! A misbehaving detector for the engine's tests: its output cannot be trusted.
//! `mode` picks the lie: "flood" (more findings than a call may return),
//! "wide" (one grouped finding naming more spans than allowed), "ghost" (waste
//! charged to a span that does not exist), "huge" (charges that would wrap a
//! sum), "escape" (terminal control codes in its texts), "many-groups" (50,000
//! grouped findings merged by the host, to show merging is linear).
use tokenhound_sdk::*;
struct Liar(String);
impl Detector for Liar {
    fn metadata() -> Metadata {
        Metadata::new("liar", "0.1.0", "test plugin: untrustworthy output").param(Param::text(
            "mode",
            "ghost",
            "which lie",
        ))
    }
    fn new(p: &Params) -> Result<Self, String> {
        Ok(Liar(p.str("mode").to_string()))
    }
    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        let real = b.span_ref(0);
        let f = || Finding::new("lie", "a finding", "none");
        match self.0.as_str() {
            "flood" => (0..100_001).map(|_| f()).collect(),
            "wide" => {
                let refs = (0..100_001).map(|i| SpanRef {
                    trace_id: real.trace_id.clone(),
                    span_id: format!("{i:016x}"),
                });
                vec![f().spans(refs).group("g")]
            }
            "ghost" => vec![f()
                .charge(
                    SpanRef {
                        trace_id: "ffffffffffffffffffffffffffffffff".into(),
                        span_id: "ffffffffffffffff".into(),
                    },
                    1_000_000,
                )
                .charge(real, 7)],
            "huge" => vec![
                f().charge(real.clone(), u64::MAX),
                f().charge(real.clone(), 1 << 63).charge(real, 1 << 63),
            ],
            "escape" => vec![Finding::new(
                "\u{1b}]0;pwned\u{7}\u{1b}[2Jtitle",
                "message \u{1b}[31mred",
                "fix",
            )
            .charge(real, 1)],
            "many-groups" => (0..50_000)
                .map(|i| {
                    f().span(real.clone())
                        .charge(real.clone(), 0)
                        .group(format!("g{}", i % 25_000))
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}
detector!(Liar);
