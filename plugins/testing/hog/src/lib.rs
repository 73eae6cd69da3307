//! A misbehaving detector for the engine's tests: allocates without end.
use tokenhound_sdk::*;
struct Hog(Vec<Vec<u8>>);
impl Detector for Hog {
    fn metadata() -> Metadata {
        Metadata::new("hog", "0.1.0", "test plugin: allocates without end")
    }
    fn new(_: &Params) -> Result<Self, String> {
        Ok(Hog(Vec::new()))
    }
    fn observe(&mut self, _: &Batch) -> Vec<Finding> {
        loop {
            self.0.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}
detector!(Hog);
