//! A plugin's refusal of a call (the contract's `plugin-error`, 0.2), and
//! the outcome of a successful attempt (`success`).

use std::fmt;

/// Why a plugin refused `init`, `get-stats` or an admin call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "error", rename_all = "kebab-case"))]
pub enum PluginError {
    /// An option the plugin does not know (its key).
    UnknownOption { key: String },
    /// An option with a value the plugin cannot use (why; never the value,
    /// which may be a secret).
    InvalidValue { key: String, reason: String },
    /// The plugin does not do this call or this feature.
    Unsupported { message: String },
    /// The plugin cannot do it now (its store is down, ...).
    Unavailable { message: String },
}

impl PluginError {
    pub fn unknown_option(key: impl Into<String>) -> PluginError {
        PluginError::UnknownOption { key: key.into() }
    }

    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> PluginError {
        PluginError::InvalidValue {
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> PluginError {
        PluginError::Unsupported {
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> PluginError {
        PluginError::Unavailable {
            message: message.into(),
        }
    }

    /// The same refusal with every string passed through `f` (the host
    /// cleans text from plugins before showing it).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> PluginError {
        match self {
            PluginError::UnknownOption { key } => PluginError::UnknownOption { key: f(&key) },
            PluginError::InvalidValue { key, reason } => PluginError::InvalidValue {
                key: f(&key),
                reason: f(&reason),
            },
            PluginError::Unsupported { message } => PluginError::Unsupported {
                message: f(&message),
            },
            PluginError::Unavailable { message } => PluginError::Unavailable {
                message: f(&message),
            },
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginError::UnknownOption { key } => write!(f, "unknown option `{key}`"),
            PluginError::InvalidValue { key, reason } => write!(f, "option `{key}`: {reason}"),
            PluginError::Unsupported { message } => write!(f, "not supported: {message}"),
            PluginError::Unavailable { message } => write!(f, "unavailable: {message}"),
        }
    }
}

impl std::error::Error for PluginError {}

/// A successful attempt, as reported to the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Success {
    pub elapsed_ms: u32,
    pub bytes: Option<u64>,
}

/// `From` conversions both ways between [`PluginError`] and a generated
/// 0.2 binding's `plugin-error` (with its `invalid-value` record).
#[macro_export]
macro_rules! plugin_error_conversions {
    (error: $($pe:ident)::+, invalid: $($iv:ident)::+) => {
        impl ::core::convert::From<$crate::PluginError> for $($pe)::+ {
            fn from(e: $crate::PluginError) -> Self {
                match e {
                    $crate::PluginError::UnknownOption { key } => $($pe)::+::UnknownOption(key),
                    $crate::PluginError::InvalidValue { key, reason } => {
                        $($pe)::+::InvalidValue($($iv)::+ { key, reason })
                    }
                    $crate::PluginError::Unsupported { message } => $($pe)::+::Unsupported(message),
                    $crate::PluginError::Unavailable { message } => $($pe)::+::Unavailable(message),
                }
            }
        }
        impl ::core::convert::From<$($pe)::+> for $crate::PluginError {
            fn from(e: $($pe)::+) -> Self {
                match e {
                    $($pe)::+::UnknownOption(key) => $crate::PluginError::UnknownOption { key },
                    $($pe)::+::InvalidValue(v) => $crate::PluginError::InvalidValue {
                        key: v.key,
                        reason: v.reason,
                    },
                    $($pe)::+::Unsupported(message) => $crate::PluginError::Unsupported { message },
                    $($pe)::+::Unavailable(message) => $crate::PluginError::Unavailable { message },
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_option_and_never_echo_a_value() {
        assert_eq!(
            PluginError::unknown_option("treshold").to_string(),
            "unknown option `treshold`"
        );
        assert_eq!(
            PluginError::invalid("pool", "must be 1-64 letters").to_string(),
            "option `pool`: must be 1-64 letters"
        );
        let cleaned = PluginError::unsupported("a\nb").map_text(|s| s.replace('\n', "\\n"));
        assert_eq!(cleaned.to_string(), "not supported: a\\nb");
    }
}
