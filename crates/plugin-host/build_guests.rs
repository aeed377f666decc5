// Shared by the build scripts of `host` (the bundled plugin) and `tests`
// (fixture plugins): builds workspace guest crates for wasm32-wasip2.
//
// A nested cargo gets its own target directory (the outer one is locked)
// and a clean environment (the outer build's flags are for the host, not
// for wasm).

use std::path::{Path, PathBuf};
use std::process::Command;

pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Where guests are built: `<target-dir>/guests`.
pub fn guest_target_dir(workspace: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    target.join("guests")
}

/// Builds `packages` (workspace members) with the `guest` profile and returns
/// the path of each `.wasm`, in the same order.
pub fn build_guests(workspace: &Path, packages: &[&str]) -> Vec<PathBuf> {
    let target_dir = guest_target_dir(workspace);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--locked",
            "--profile",
            "guest",
            "--target",
            GUEST_TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build guests {packages:?}: {e}"));
    if !status.success() {
        panic!(
            "building guests {packages:?} for {GUEST_TARGET} failed ({status}); \
             is the target installed? `rustup target add {GUEST_TARGET}`"
        );
    }
    packages
        .iter()
        .map(|p| {
            let file = format!("{}.wasm", p.replace('-', "_"));
            let path = target_dir.join(GUEST_TARGET).join("guest").join(file);
            assert!(path.exists(), "guest build produced no {}", path.display());
            path
        })
        .collect()
}

/// Tells cargo to rerun the build script when anything under `paths` changes.
pub fn rerun_if_changed(workspace: &Path, paths: &[&str]) {
    for p in paths {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }
}
