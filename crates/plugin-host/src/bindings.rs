//! Host bindings of the contract (`wit/`), and their conversions to the
//! contract's model (`ytdlp-contract`), where the kinds and shapes are
//! written once.

wasmtime::component::bindgen!({
    path: "../../wit/proxy-0.1.wit",
    world: "proxy-backend-full",
    exports: { default: async },
});

ytdlp_contract::failure_kind_conversions!(v0_1: ytdlp::proxy::types::FailureKind);
ytdlp_contract::stats_conversions!(
    state: ytdlp::proxy::types::ProxyState,
    stats: ytdlp::proxy::types::ProxyStats
);
