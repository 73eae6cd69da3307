//! A misbehaving detector for the engine's tests: sleeps in every call (30 s,
//! or for ever with `forever = true`). Under the frozen clock a sleep must not
//! hold the host.
use tokenhound_sdk::*;
struct Sleeper(bool);
impl Detector for Sleeper {
    fn metadata() -> Metadata {
        Metadata::new("sleeper", "0.1.0", "test plugin: sleeps in every call")
            .param(Param::boolean("forever", false, "sleep for Duration::MAX"))
    }
    fn new(p: &Params) -> Result<Self, String> {
        Ok(Sleeper(p.bool("forever")))
    }
    fn observe(&mut self, _: &Batch) -> Vec<Finding> {
        let d = if self.0 {
            std::time::Duration::MAX
        } else {
            std::time::Duration::from_secs(30)
        };
        std::thread::sleep(d);
        Vec::new()
    }
}
detector!(Sleeper);
