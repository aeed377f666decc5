//! `write-preview1-adapter OUT.wasm`: writes the WASI preview1 reactor
//! adapter of wasmtime 48 to OUT.wasm.

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .expect("usage: write-preview1-adapter OUT.wasm");
    std::fs::write(
        &out,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", std::path::Path::new(&out).display()));
}
