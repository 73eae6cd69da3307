//! `tokenhound check`: validate rule packs and load their detectors without
//! running anything, as CI does before a pack is merged.

use super::Failure;
use crate::rules::RuleSet;
use crate::scan;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    packs: Vec<PathBuf>,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let set = RuleSet::from_files(&a.packs)
        .map_err(|e| Failure::pack(format!("invalid rule pack: {e}")))?;
    let engine =
        crate::engine::Engine::new(scan::default_cache_dir(), set.wants_fuel(), set.max_stack)
            .map_err(|e| Failure::load(format!("{e:#}")))?;
    for r in scan::prepare(&set, &engine)? {
        println!(
            "ok  {:<30} {} {} ({})",
            r.rule.id, r.plugin.meta.name, r.plugin.meta.version, r.plugin.source
        );
    }
    Ok(0)
}
