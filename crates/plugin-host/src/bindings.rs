//! Host bindings of the contract, one module per version this host runs
//! (`wit/proxy-0.1.wit`, `wit/proxy-0.2.wit`), and their conversions to the
//! contract's model (`ytdlp-contract`), where the kinds and shapes are
//! written once.

/// Contract 0.1.0: context in `host.*` options, proxies as URL strings.
pub mod v01 {
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
}

/// Contract 0.2.0: a typed request, proxy records with ids and metadata,
/// failure detail, typed refusals. Async calls (for plugins that can block
/// in a host call: a deadline must be able to cut them) here; sync calls,
/// the fast path for plugins that cannot block, in [`v02::sync`].
pub mod v02 {
    wasmtime::component::bindgen!({
        path: "../../wit/proxy-0.2.wit",
        world: "proxy-backend-full",
        exports: { default: async },
        // To tell a proxy handed out again from a changed one.
        additional_derives: [PartialEq],
    });

    ytdlp_contract::failure_kind_conversions!(ytdlp::proxy::types::FailureKind);
    ytdlp_contract::plugin_error_conversions!(
        error: ytdlp::proxy::types::PluginError,
        invalid: ytdlp::proxy::types::InvalidValue
    );

    /// The same world with sync exports, sharing the types above.
    pub mod sync {
        wasmtime::component::bindgen!({
            path: "../../wit/proxy-0.2.wit",
            world: "proxy-backend-full",
            with: { "ytdlp:proxy/types": super::ytdlp::proxy::types },
        });
    }
}
