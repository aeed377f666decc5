//! Options as the contract passes them: key/value string pairs, in order; a
//! key may repeat to carry a list. The host adds its context under the
//! reserved `host.` prefix. The helpers here are what every plugin needs to
//! read them: the last value of a key, numbers within bounds, booleans, and
//! one refusal of unknown keys that skips the host's.

/// Key/value options, in order; a key may repeat (a list).
pub type Options = Vec<(String, String)>;

/// Keys starting with this are the host's context, never a user's.
pub const HOST_PREFIX: &str = "host.";

/// The URL being downloaded.
pub const HOST_URL: &str = "host.url";
/// That URL's host name, lower case.
pub const HOST_SITE: &str = "host.site";
/// 1 for the first attempt at a URL, 2 for the first retry, ...
pub const HOST_ATTEMPT: &str = "host.attempt";
/// An id shared by all attempts at one URL.
pub const HOST_DOWNLOAD_ID: &str = "host.download-id";

/// Is `key` one of the host's reserved keys?
pub fn is_host_key(key: &str) -> bool {
    key.starts_with(HOST_PREFIX)
}

/// The last value of `key`, if any.
pub fn opt<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every value of `key`, in order.
pub fn opt_all<'a>(
    options: &'a [(String, String)],
    key: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    options
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `value` of option `key` as a number in `min..=max`, or a message that
/// names the key, the value and the bounds.
pub fn parse_num<T>(key: &str, value: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match value.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(format!(
            "option `{key}`: `{value}` is not a whole number from {min} to {max}"
        )),
    }
}

/// `value` of option `key` as a boolean (`true/false`, `yes/no`, `1/0`,
/// `on/off`).
pub fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("option `{key}`: `{value}` is not true or false")),
    }
}

/// `value` of option `key` as a number in `min..=max`, or the typed
/// refusal (0.2's `invalid-value`): the key and the bounds, not the value,
/// which may be a secret pasted in the wrong place.
pub fn num<T>(key: &str, value: &str, min: T, max: T) -> Result<T, crate::PluginError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match value.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(crate::PluginError::invalid(
            key,
            format!("not a whole number from {min} to {max}"),
        )),
    }
}

/// `value` of option `key` as a fraction from 0 to 1, or the typed
/// refusal.
pub fn fraction(key: &str, value: &str) -> Result<f64, crate::PluginError> {
    let v = value.trim();
    v.parse::<f64>()
        .ok()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| {
            crate::PluginError::invalid(key, format!("`{v}` is not a fraction from 0 to 1"))
        })
}

/// `value` of option `key` as a boolean (as [`parse_bool`]), or the typed
/// refusal.
pub fn flag(key: &str, value: &str) -> Result<bool, crate::PluginError> {
    parse_bool(key, value)
        .map_err(|_| crate::PluginError::invalid(key, "not true or false (or yes/no, 1/0, on/off)"))
}

/// The refusal of an unknown option, listing the known ones; `None` for a
/// host key (those are skipped, never refused).
pub fn unknown(key: &str, known: &[&str]) -> Option<String> {
    (!is_host_key(key)).then(|| format!("unknown option `{key}` (known: {})", known.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_last_value_wins_and_lists_keep_their_order() {
        let o = opts(&[("a", "1"), ("b", "x"), ("a", "2")]);
        assert_eq!(opt(&o, "a"), Some("2"));
        assert_eq!(opt(&o, "c"), None);
        assert_eq!(opt_all(&o, "a").collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn numbers_and_booleans_name_the_key() {
        assert_eq!(parse_num("n", " 5 ", 1u32, 10), Ok(5));
        let e = parse_num("n", "0", 1u32, 10).unwrap_err();
        assert_eq!(e, "option `n`: `0` is not a whole number from 1 to 10");
        assert_eq!(parse_bool("b", "on"), Ok(true));
        assert!(parse_bool("b", "maybe").unwrap_err().contains("`b`"));
    }

    #[test]
    fn typed_refusals_name_the_key_and_not_the_value() {
        assert_eq!(num("n", "7", 1u32, 10), Ok(7));
        let e = num("n", "s3cret", 1u32, 10).unwrap_err();
        assert_eq!(e.to_string(), "option `n`: not a whole number from 1 to 10");
        assert_eq!(flag("b", "off"), Ok(false));
        assert!(
            !flag("b", "s3cret")
                .unwrap_err()
                .to_string()
                .contains("s3cret")
        );
    }

    #[test]
    fn unknown_keys_are_refused_but_host_keys_skipped() {
        assert_eq!(unknown(HOST_URL, &["a"]), None);
        assert_eq!(
            unknown("treshold", &["threshold", "pool"]).unwrap(),
            "unknown option `treshold` (known: threshold, pool)"
        );
    }
}
