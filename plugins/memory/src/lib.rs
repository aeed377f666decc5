//! The bundled in-memory proxy backend of ytdlp-host.
//!
//! The proxy logic lives in [`engine`], plain Rust that is unit-tested
//! natively; `component` (wasm only) adapts it to the WIT contract through
//! the SDK. The host embeds the wasm build and loads it like any user
//! plugin.

pub mod engine;
pub mod shared;
pub mod state;

#[cfg(target_family = "wasm")]
mod component;

use ytdlp_plugin_sdk::{OptionInfo, PluginInfo};

/// What `describe` answers: every option of [`engine::OPTIONS`], all read
/// at `init` (the per-download context comes in the request).
pub fn describe() -> PluginInfo {
    engine::OPTIONS.iter().fold(
        ytdlp_plugin_sdk::plugin_info!()
            .summary("the bundled backend: proxies from the config, health kept across runs"),
        |info, &(key, help, repeated, secret)| {
            let mut o = OptionInfo::init(key, help);
            o.repeated = repeated;
            o.secret = secret;
            info.option(o)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_exactly_the_options_init_reads() {
        let info = describe();
        assert_eq!(info.name, "ytdlp-plugin-memory");
        assert!(info.get("proxy").is_some_and(|o| o.repeated && o.secret));
        let ok_value = |key: &str| match key {
            "proxy" => "http://10.0.0.1:3128;region=DE",
            "weight" => "http://10.0.0.1:3128=2",
            "strategy" => "random",
            "jitter" => "none",
            "recovery" | "read_only" => "true",
            "state_dir" => "/state",
            "keyvalue" => "health",
            "site_ban_jitter" => "0.5",
            "site_rate" => "youtube.com=300/h",
            _ => "5",
        };
        for o in &info.options {
            let opts = vec![(o.key.clone(), ok_value(&o.key).to_string())];
            assert!(engine::Init::parse(&opts).is_ok(), "{}", o.key);
        }
        assert_eq!(info.check(&[("proxy".into(), "x".into())], false), Ok(()));
        let unknown = vec![("treshold".to_string(), "3".to_string())];
        assert!(info.check(&unknown, false).is_err());
        assert!(engine::Init::parse(&unknown).is_err());
    }
}
