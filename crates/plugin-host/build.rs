// Builds the bundled `memory` plugin from source so the host can embed it;
// no .wasm binary is committed.

use std::path::PathBuf;

#[path = "build_guests.rs"]
mod build_guests;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .to_path_buf();
    // Everything the guest is built from: its own source, the SDK and the
    // contract model it depends on, the WIT, the guest profile.
    build_guests::rerun_if_changed(
        &workspace,
        &[
            "wit",
            "plugins/memory",
            "plugins/sdk",
            "crates/contract",
            "Cargo.lock",
            "Cargo.toml",
        ],
    );
    println!("cargo:rerun-if-changed=build_guests.rs");
    let wasm = build_guests::build_guests(&workspace, &["ytdlp-plugin-memory"]);
    println!(
        "cargo:rustc-env=YTDLP_HOST_MEMORY_PLUGIN={}",
        wasm[0].display()
    );
}
