//! A misbehaving detector for the engine's tests: loops forever on the first batch.
use tokenhound_sdk::*;
struct Spin;
impl Detector for Spin {
    fn metadata() -> Metadata {
        Metadata::new("spin", "0.1.0", "test plugin: never returns")
    }
    fn new(_: &Params) -> Result<Self, String> {
        Ok(Spin)
    }
    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        let mut x = b.len() as u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }
}
detector!(Spin);
