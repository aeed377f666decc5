//! The secrets the host has seen, and their redaction by value from any
//! text it prints.
//!
//! A secret is registered in every form it can take in output: raw,
//! percent-encoded (as in a URL's userinfo), base64 (as in a
//! `Proxy-Authorization: Basic` header, together with its user name), and
//! JSON-escaped. Very short values (under [`MIN_LEN`] characters) are not
//! redacted by value, or every `a` would go; structural masking still hides
//! them in URLs.

use std::sync::{PoisonError, RwLock};

use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use ytdlp_contract::ProxyUrl;
use ytdlp_contract::proxy_url::HIDDEN;

/// Shortest secret redacted by value.
pub const MIN_LEN: usize = 4;

static FORMS: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn add(forms: &mut Vec<String>, s: String) {
    if s.chars().count() >= MIN_LEN && !forms.contains(&s) {
        forms.push(s);
    }
}

/// Remembers `secret` (and its encodings) for [`redact`].
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_LEN {
        return;
    }
    let mut forms = FORMS.write().unwrap_or_else(PoisonError::into_inner);
    add(&mut forms, secret.to_string());
    add(
        &mut forms,
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
    );
    // The userinfo encode set leaves some characters raw: the form the URL
    // parser keeps is the one users pasted, already added above.
    add(
        &mut forms,
        base64::engine::general_purpose::STANDARD.encode(secret),
    );
    let json = serde_escape(secret);
    add(&mut forms, json);
    // Longest first, so a secret that contains another is replaced whole.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// Remembers a proxy URL's user name and password, and the base64 of
/// `user:password` that an HTTP proxy sees.
pub fn register_proxy(url: &ProxyUrl) {
    if let Some((user, pass)) = url.credentials() {
        register(&user);
        if let Some(p) = &pass {
            register(p);
        }
        let pair = format!("{user}:{}", pass.as_deref().unwrap_or(""));
        register(&base64::engine::general_purpose::STANDARD.encode(pair));
        // The raw userinfo as written (percent-encoded parts stay so).
        if let Some(userinfo) = url
            .expose()
            .split_once("://")
            .and_then(|(_, r)| r.rsplit_once('@'))
            .map(|(u, _)| u.to_string())
        {
            for part in userinfo.split(':') {
                register(part);
            }
        }
    }
}

/// How `s` reads inside a JSON string.
fn serde_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let forms = FORMS.read().unwrap_or_else(PoisonError::into_inner);
    if forms.is_empty() {
        return text.to_string();
    }
    let mut out = text.to_string();
    for f in forms.iter() {
        if out.contains(f.as_str()) {
            out = out.replace(f.as_str(), HIDDEN);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // One process-wide registry: each test uses its own secrets.

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        register("s3cr,et)pw");
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr,et)pw");
        for text in [
            "raw s3cr,et)pw here".to_string(),
            "pct s3cr%2Cet%29pw here".to_string(),
            format!("b64 {b64} here"),
        ] {
            let r = redact(&text);
            assert!(!r.contains("s3cr") && !r.contains(&b64), "{r}");
            assert!(r.contains(HIDDEN), "{r}");
        }
        assert_eq!(redact("nothing secret"), "nothing secret");
    }

    #[test]
    fn a_proxys_user_name_and_basic_header_are_redacted() {
        let url =
            ytdlp_contract::proxy_url::validate("http://APIKEY123:p%40ss@vendor:8011").unwrap();
        register_proxy(&url);
        let basic = base64::engine::general_purpose::STANDARD.encode("APIKEY123:p@ss");
        let r = redact(&format!("user APIKEY123 sent Basic {basic}"));
        assert!(!r.contains("APIKEY123") && !r.contains(&basic), "{r}");
    }

    proptest::proptest! {
        // Any secret of the printable alphabet, in any of its forms, in any
        // surrounding text, is gone after redaction.
        #[test]
        fn a_registered_secret_never_survives(
            secret in "[!-~]{4,24}",
            before in "[ -~]{0,12}",
            after in "[ -~]{0,12}",
            form in 0usize..3,
        ) {
            register(&secret);
            let shown = match form {
                0 => secret.clone(),
                1 => utf8_percent_encode(&secret, NON_ALPHANUMERIC).to_string(),
                _ => base64::engine::general_purpose::STANDARD.encode(&secret),
            };
            let r = redact(&format!("{before}{shown}{after}"));
            proptest::prop_assert!(!r.contains(&shown), "{}", r);
        }
    }

    #[test]
    fn short_values_are_left_alone() {
        register("ab");
        assert_eq!(redact("a cab"), "a cab");
    }
}
