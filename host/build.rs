//! Builds the guest workspace (`plugins/`) for wasm32-wasip2 into its own target
//! directory and tells the host where the components are, so the built-in
//! detectors are always compiled from their sources: no stale copies.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins");

    rerun_for_tree(&plugins);
    rerun_for_tree(&root.join("wit"));
    optional_tools();

    ensure_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    // The outer build's flags are for the host, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_LLVM_COV",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("could not run cargo to build the detector plugins");
    if !status.success() {
        panic!(
            "building the detector plugins in {} failed (see the errors above)",
            plugins.display()
        );
    }
    println!(
        "cargo:rustc-env=TOKENHOUND_BUILTIN_VERSION={}",
        workspace_version(&plugins.join("Cargo.toml"))
    );
    let out = target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=TOKENHOUND_PLUGIN_DIR={}", out.display());
}

/// The guests' `[workspace.package] version`: the built-ins' version.
fn workspace_version(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).expect("plugins/Cargo.toml is readable");
    let package = text
        .split("[workspace.package]")
        .nth(1)
        .expect("plugins/Cargo.toml has a [workspace.package] table");
    package
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("plugins/Cargo.toml sets [workspace.package] version")
}

/// A fresh machine may lack the wasm target: add it with rustup,
/// with a clear message when that cannot be done.
fn ensure_target() {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string()));
    let installed = sysroot
        .as_ref()
        .map(|s| s.join("lib/rustlib").join(TARGET).exists())
        .unwrap_or(false);
    if installed {
        return;
    }
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed: install it and build again");
    }
}

fn rerun_for_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            // The folder too: a file added or removed changes it.
            println!("cargo:rerun-if-changed={}", p.display());
            rerun_for_tree(&p);
        } else {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

/// Tests that need a tool which is not installed are marked ignored, with the
/// reason, so `cargo test` shows them as not run instead of passing. In CI
/// (`CI` set) they run anyway and fail, so a missing install is never hidden.
fn optional_tools() {
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rustc-check-cfg=cfg(missing_componentize_py)");
    println!("cargo::rustc-check-cfg=cfg(missing_chromium)");
    println!("cargo::rustc-check-cfg=cfg(missing_otel_exporters)");
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ci = std::env::var_os("CI").is_some();
    if !ci && !have("componentize-py") {
        println!("cargo::rustc-cfg=missing_componentize_py");
    }
    // The HTML report's test renders it in a real browser (Debian's chromium).
    if !ci
        && !["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .any(|b| have(b))
    {
        println!("cargo::rustc-cfg=missing_chromium");
    }
    // The receiver's test sends a month with the OTel Python SDK's exporters.
    let exporters = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ci && !exporters {
        println!("cargo::rustc-cfg=missing_otel_exporters");
    }
}
