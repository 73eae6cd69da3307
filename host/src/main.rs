//! The `tokenhound` command line: parse, dispatch to `tokenhound::cmd`, and
//! turn a failure into its message and exit code.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tokenhound::cmd;

// Parsing exports allocates many small strings; mimalloc is much faster at that.
#[global_allocator]
static ALLOC: Mimalloc = Mimalloc;

/// mimalloc, asked for a plain block wherever a plain block is aligned enough.
/// The `mimalloc` crate asks for an aligned block every time, and mimalloc
/// serves a word-aligned request of a size that is not a power of two, once
/// its page of that size is full, by allocating a larger block and aligning
/// into it: about 400 instructions instead of 30. That was 3% of a scan's
/// instructions (callgrind), most of them the reader's, for each span.
struct Mimalloc;

/// Whether a plain block serves `layout`: every mimalloc block is aligned to
/// a word at least.
fn plain(layout: std::alloc::Layout) -> bool {
    layout.align() <= std::mem::size_of::<usize>()
}

// SAFETY: a plain mimalloc block is aligned to a word, so it serves any layout
// aligned to a word or less; larger alignments still go to the aligned calls.
// Each call hands mimalloc's result on unchanged, and mimalloc frees and
// resizes blocks of either kind, telling them apart itself.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        let p = if plain(layout) {
            unsafe { mi_malloc(layout.size()) }
        } else {
            unsafe { mi_malloc_aligned(layout.size(), layout.align()) }
        };
        p.cast()
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        let p = if plain(layout) {
            unsafe { mi_zalloc(layout.size()) }
        } else {
            unsafe { mi_zalloc_aligned(layout.size(), layout.align()) }
        };
        p.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        let p = if plain(layout) {
            unsafe { mi_realloc(ptr.cast(), size) }
        } else {
            unsafe { mi_realloc_aligned(ptr.cast(), size, layout.align()) }
        };
        p.cast()
    }
}

/// mimalloc's `purge_delay` option (its index in `mi_option_e`, the same in
/// mimalloc 2 and 3; the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages go back to the system after 100 ms instead of mimalloc's
/// default: a scan frees a block's spans as the next block is parsed, and
/// holding them longer raised its peak memory by 10-20% (bench month: 140-155
/// MB against 158-186 MB, the same time). `MIMALLOC_PURGE_DELAY` still wins.
fn return_freed_memory_sooner() {
    // SAFETY: sets a default of an option mimalloc reads when it first purges.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 100) }
    no_transparent_huge_pages();
}

/// No transparent huge pages for this process: mimalloc asks for them (on the
/// heap's first arena, before `main`, so its option comes too late), and each
/// page faulted in is then 2 MiB zeroed at once (the kernel's `clear_page` was
/// 11% of a scan's samples), and a purge of part of one faults a whole one in
/// again. With `MIMALLOC_ALLOW_THP=0` on the bench month, alternated: peak
/// 117-119 MB against 141-144 MB, 7.75-7.94 s against 8.06-8.88 s, the same
/// findings. The kernel checks the flag at each fault, so it covers the
/// arena mapped before `main` too.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[derive(Parser)]
#[command(
    name = "tokenhound",
    version,
    about = "Find where an LLM agent's tokens go"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run rule packs over span exports (files, folders, `-` for stdin).
    ///
    /// Exit codes: 0 no finding at or above --fail-on, 1 such findings,
    /// 2 bad usage or unreadable input, 3 invalid rule pack, 4 a detector failed to load.
    Scan(cmd::scan::Args),
    /// Show what was read: formats, dialects, counts, tokens, models, captured
    /// content, skipped records, and usage-like attributes not understood.
    Inspect(cmd::inspect::Args),
    /// Follow span directories live; hot-reload packs and plugins when they change.
    Watch(cmd::watch::Args),
    /// The costliest LLM calls, each with its input by parts and the findings
    /// that charge it.
    Top(cmd::top::Args),
    /// The Monday routine: the four detectors and the weekly audit's three, the
    /// patterns, the costliest calls, and what changed since last week.
    Audit(cmd::audit::Args),
    /// Compare two JSON reports: per detector and pattern, waste before and
    /// after, new and gone patterns (exit 1 with --fail-on-growth when one grew).
    Diff(cmd::diff::Args),
    /// Run detector tests: fixtures next to NAME.expect.toml files.
    Test(cmd::test::Args),
    /// List the detectors: built in, from packs, from a plugins folder.
    Detectors(cmd::detectors::Args),
    /// Start a new detector project.
    New(cmd::new::Args),
    /// Check rule packs without running them.
    Check(cmd::check::Args),
}

fn main() -> ExitCode {
    return_freed_memory_sooner();
    let done = match Cli::parse().command {
        Command::Scan(a) => cmd::scan::run(a),
        Command::Inspect(a) => cmd::inspect::command(a),
        Command::Watch(a) => cmd::watch::run(a),
        Command::Top(a) => cmd::top::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Test(a) => cmd::test::command(a),
        Command::Detectors(a) => cmd::detectors::command(a),
        Command::New(a) => cmd::new::command(a),
        Command::Check(a) => cmd::check::run(a),
    };
    match done {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("tokenhound: {f}");
            ExitCode::from(f.code)
        }
    }
}
