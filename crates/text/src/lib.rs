//! What the host may print. Text from plugins, sites and yt-dlp is not the
//! host's: before any of it reaches a terminal, a log or a JSON answer it
//! goes through [`clean`]:
//!
//! - control characters (ESC, NUL, CR, LF, ...) are escaped visibly
//!   ([`sanitize`]), so a crafted string can neither forge a line of the
//!   host's output nor drive the terminal;
//! - credentials in URLs are masked structurally
//!   ([`ytdlp_contract::proxy_url::mask`]);
//! - every secret the host has seen ([`secrets::register`]: proxy
//!   credentials from the config, `--proxy` and plugin answers, tokens) is
//!   replaced by value, in its raw, percent-encoded and base64 forms
//!   ([`secrets::redact`]).

use std::borrow::Cow;

pub mod secrets;

pub use secrets::redact;

/// `s` with every control character escaped (`\n`, `\u{1b}`, ...).
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text fit for output: secrets redacted, URL credentials masked, control
/// characters escaped.
pub fn clean(text: &str) -> String {
    let masked = ytdlp_contract::proxy_url::mask(&redact(text));
    sanitize(&masked).into_owned()
}

/// The last net before output, for text the host composed (which may hold
/// JSON, where a URL-shaped mask would cut through fields): secrets
/// redacted by value, control characters escaped. Foreign text was already
/// [`clean`]ed when it came in.
pub fn for_output(line: &str) -> String {
    sanitize(&redact(line)).into_owned()
}

/// [`clean`], then at most `max` bytes.
pub fn clean_capped(text: &str, max: usize) -> String {
    ytdlp_contract::text::cap(&clean(text), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_visibly() {
        assert_eq!(sanitize("plain"), "plain");
        assert_eq!(
            sanitize("a\nforged\x1b[2J\0b\r"),
            "a\\nforged\\u{1b}[2J\\u{0}b\\r"
        );
        let forged = clean("no proxy\ndone http://127.0.0.1/forged.mp4 -> /etc/passwd");
        assert!(!forged.contains('\n'), "{forged}");
    }
}
