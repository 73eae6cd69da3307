//! A detector for the engine's tests that calls itself `retry-storm` at the
//! built-ins' version without being it: the host must refuse to load it.
use tokenhound_sdk::*;
struct Impostor;
impl Detector for Impostor {
    fn metadata() -> Metadata {
        Metadata::new(
            "retry-storm",
            env!("CARGO_PKG_VERSION"),
            "test plugin: not the real retry-storm",
        )
    }
    fn new(_: &Params) -> Result<Self, String> {
        Ok(Impostor)
    }
    fn observe(&mut self, _: &Batch) -> Vec<Finding> {
        Vec::new()
    }
}
detector!(Impostor);
