//! What a plugin says about itself (the contract's optional `describe`):
//! its name, version, summary and every option it reads.

use ytdlp_contract::PluginError;
use ytdlp_contract::options::is_host_key;

/// When an option is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionScope {
    /// By `init` only.
    Init,
    /// Also per download (the host lets `serve` callers set only these).
    PerCall,
}

/// One option of a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionInfo {
    pub key: String,
    /// One line for `plugins info`.
    pub help: String,
    pub scope: OptionScope,
    /// Its value is a secret: the host never shows it.
    pub secret: bool,
    /// The key may repeat (a list).
    pub repeated: bool,
}

impl OptionInfo {
    /// An option read by `init` only.
    pub fn init(key: impl Into<String>, help: impl Into<String>) -> OptionInfo {
        OptionInfo {
            key: key.into(),
            help: help.into(),
            scope: OptionScope::Init,
            secret: false,
            repeated: false,
        }
    }

    /// An option that may also be given per download.
    pub fn per_call(key: impl Into<String>, help: impl Into<String>) -> OptionInfo {
        OptionInfo {
            scope: OptionScope::PerCall,
            ..OptionInfo::init(key, help)
        }
    }

    /// Marks its value secret.
    pub fn secret(mut self) -> OptionInfo {
        self.secret = true;
        self
    }

    /// Marks the key repeatable.
    pub fn repeated(mut self) -> OptionInfo {
        self.repeated = true;
        self
    }
}

/// What the plugin is and which options it takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    /// One line for `plugins list`.
    pub summary: String,
    pub options: Vec<OptionInfo>,
}

impl PluginInfo {
    /// Named `name`, at `version`; see [`plugin_info!`](crate::plugin_info)
    /// for the calling crate's.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            ..PluginInfo::default()
        }
    }

    pub fn summary(mut self, summary: impl Into<String>) -> PluginInfo {
        self.summary = summary.into();
        self
    }

    pub fn option(mut self, option: OptionInfo) -> PluginInfo {
        self.options.push(option);
        self
    }

    /// An empty name or version replaced by the given ones (the glue passes
    /// the plugin crate's, so [`Backend::describe`](crate::Backend::describe)'s
    /// default names the plugin, not the SDK).
    pub fn or_named(mut self, name: &str, version: &str) -> PluginInfo {
        if self.name.is_empty() {
            self.name = name.to_string();
        }
        if self.version.is_empty() {
            self.version = version.to_string();
        }
        self
    }

    /// The option called `key`, if the plugin lists it.
    pub fn get(&self, key: &str) -> Option<&OptionInfo> {
        self.options.iter().find(|o| o.key == key)
    }

    /// Refuses the first option that is not listed (`host.` keys are
    /// skipped), or, with `per_call`, that is listed for `init` only. A
    /// backend can call it first thing in `init` and in each call, so the
    /// list in `describe` is the one that is enforced.
    pub fn check(&self, options: &[(String, String)], per_call: bool) -> Result<(), PluginError> {
        for (key, _) in options {
            match self.get(key) {
                None if is_host_key(key) => {}
                None => return Err(PluginError::unknown_option(key.clone())),
                Some(o) if per_call && o.scope == OptionScope::Init => {
                    return Err(PluginError::invalid(
                        key.clone(),
                        "read at init only; it cannot be set per download",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The calling crate's [`PluginInfo`]: its package name and version.
#[macro_export]
macro_rules! plugin_info {
    () => {
        $crate::PluginInfo::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_listed_options_are_the_enforced_ones() {
        let info = crate::plugin_info!()
            .summary("test")
            .option(OptionInfo::init("pool", "the pool"))
            .option(OptionInfo::per_call("region", "a region").repeated())
            .option(OptionInfo::init("token", "the API token").secret());
        assert_eq!(info.name, "ytdlp-plugin-sdk");
        assert!(info.get("token").unwrap().secret);
        assert!(info.get("region").unwrap().repeated);
        assert_eq!(
            info.check(&opts(&[("pool", "a"), ("token", "t")]), false),
            Ok(())
        );
        assert_eq!(
            info.check(&opts(&[("pol", "a")]), false),
            Err(PluginError::unknown_option("pol"))
        );
        assert!(info.check(&opts(&[("region", "DE")]), true).is_ok());
        let e = info.check(&opts(&[("pool", "a")]), true).unwrap_err();
        assert!(e.to_string().contains("init only"), "{e}");
        assert!(info.check(&opts(&[("host.url", "x")]), true).is_ok());
    }

    #[test]
    fn an_unnamed_plugin_takes_the_crates_name() {
        let info = PluginInfo::default().or_named("my-plugin", "1.2.3");
        assert_eq!(
            (info.name.as_str(), info.version.as_str()),
            ("my-plugin", "1.2.3")
        );
        let named = PluginInfo::new("mine", "2").or_named("my-plugin", "1.2.3");
        assert_eq!((named.name.as_str(), named.version.as_str()), ("mine", "2"));
    }
}
