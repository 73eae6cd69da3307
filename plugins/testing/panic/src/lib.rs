//! A misbehaving detector for the engine's tests: panics on the first batch.
use tokenhound_sdk::*;
struct Panic;
impl Detector for Panic {
    fn metadata() -> Metadata {
        Metadata::new("panic", "0.1.0", "test plugin: panics")
    }
    fn new(_: &Params) -> Result<Self, String> {
        Ok(Panic)
    }
    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        panic!("detector bug on a batch of {} spans", b.len())
    }
}
detector!(Panic);
