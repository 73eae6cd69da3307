//! A misbehaving detector for the engine's tests: panics on the first batch,
//! after printing `chatter_kb` KiB of lines to stderr (the panic message comes
//! last, so the host must keep the tail of what a plugin prints).
use tokenhound_sdk::*;
struct Panic {
    chatter_kb: u64,
}
impl Detector for Panic {
    fn metadata() -> Metadata {
        Metadata::new("panic", "0.1.0", "test plugin: panics").param(Param::integer(
            "chatter_kb",
            0,
            "KiB printed before the panic",
        ))
    }
    fn new(p: &Params) -> Result<Self, String> {
        Ok(Panic {
            chatter_kb: p.u64("chatter_kb"),
        })
    }
    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        let line = "debug: still thinking about this batch ......................\n";
        for _ in 0..self.chatter_kb * 1024 / line.len() as u64 {
            eprint!("{line}");
        }
        panic!("detector bug on a batch of {} spans", b.len())
    }
}
detector!(Panic);
