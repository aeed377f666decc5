//! Why a yt-dlp run failed, read from its stderr.
//!
//! yt-dlp's wording depends on its HTTP stack (urllib or requests), but the
//! exception class after `(caused by ...)` and the `HTTP Error NNN` text are
//! stable across both, so the rules key on those. Fixtures of both stacks'
//! real output are in the tests below.

use serde::Serialize;

/// The host's classification of a failed attempt (the contract's
/// `failure-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    ProxyConnect,
    ProxyTimeout,
    ProxyAuth,
    Blocked,
    Content,
    Host,
    Unknown,
}

impl FailureKind {
    pub const ALL: [FailureKind; 7] = [
        FailureKind::ProxyConnect,
        FailureKind::ProxyTimeout,
        FailureKind::ProxyAuth,
        FailureKind::Blocked,
        FailureKind::Content,
        FailureKind::Host,
        FailureKind::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ProxyConnect => "proxy-connect",
            FailureKind::ProxyTimeout => "proxy-timeout",
            FailureKind::ProxyAuth => "proxy-auth",
            FailureKind::Blocked => "blocked",
            FailureKind::Content => "content",
            FailureKind::Host => "host",
            FailureKind::Unknown => "unknown",
        }
    }

    /// Worth another attempt through another proxy? Content and host
    /// failures would fail the same way whatever the proxy.
    pub fn retry_elsewhere(self) -> bool {
        !matches!(self, FailureKind::Content | FailureKind::Host)
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The line that explains the failure: the last `ERROR:` line, else the
/// last non-empty line.
pub fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("ERROR:"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .map(str::trim)
        .unwrap_or("")
}

/// Classifies a failed run from yt-dlp's stderr and exit code.
/// `proxy_has_credentials` matters for 401: from a proxy that was given
/// credentials it means they were wrong (tinyproxy answers 401, not 407).
pub fn classify(stderr: &str, exit_code: Option<i32>, proxy_has_credentials: bool) -> FailureKind {
    let line = error_line(stderr);
    let l = line.to_ascii_lowercase();
    let has = |s: &str| l.contains(s);

    if has("no module named yt_dlp") || exit_code == Some(2) && has("yt-dlp: error:") {
        return FailureKind::Host;
    }
    // The proxy's own HTTP answers come first: they mention no target.
    if has("http error 407") || has("proxy authentication required") {
        return FailureKind::ProxyAuth;
    }
    if has("authentication methods were rejected")
        || has("authentication failed") && has("socks")
        || proxy_has_credentials && has("general socks server failure")
    {
        return FailureKind::ProxyAuth;
    }
    if let Some(code) = http_status(&l) {
        return match code {
            401 if proxy_has_credentials => FailureKind::ProxyAuth,
            403 | 429 => FailureKind::Blocked,
            // tinyproxy's "500 Unable to connect": the proxy is alive but
            // could not reach the target. Neither clearly the proxy's nor
            // the content's fault.
            500 | 502 | 503 | 504 if has("unable to connect") => FailureKind::Unknown,
            _ => FailureKind::Content,
        };
    }
    if has("sign in to confirm") || has("not a bot") || has("captcha") {
        return FailureKind::Blocked;
    }
    if has("unsupported url")
        || has("is not a valid url")
        || has("unsupported url scheme")
        || has("video unavailable")
        || has("private video")
        || has("requested format is not available")
        || has("no video formats found")
    {
        return FailureKind::Content;
    }
    if has("timed out") || has("timeout") {
        return FailureKind::ProxyTimeout;
    }
    if has("unsupported proxy type")
        || has("proxyerror(")
        || has("unable to connect to proxy")
        || has("tunnel connection failed")
        || has("connection refused")
        || has("connection reset")
        || has("remote end closed connection")
        || has("transporterror(")
        || has("network is unreachable")
        || has("socks")
    {
        return FailureKind::ProxyConnect;
    }
    FailureKind::Unknown
}

/// The status of an `HTTP Error NNN` in the (lower-cased) line.
fn http_status(line: &str) -> Option<u16> {
    let at = line.find("http error ")?;
    let digits: String = line[at + 11..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureKind::*;

    /// (stack, stderr, proxy has credentials, expected). Real output of
    /// yt-dlp 2026.10.26 with urllib (plain `pip install yt-dlp`) and with
    /// requests installed, recorded on loopback against tinyproxy and
    /// microsocks.
    const FIXTURES: &[(&str, &str, bool, FailureKind)] = &[
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-http-proxy-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-http-proxy-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-socks-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-socks-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-blackhole.txt"),
            false,
            ProxyTimeout,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-blackhole.txt"),
            false,
            ProxyTimeout,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-407.txt"),
            false,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-407.txt"),
            false,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-wrong-password.txt"),
            true,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-wrong-password.txt"),
            true,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-socks-auth.txt"),
            false,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-socks-auth.txt"),
            false,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-404.txt"),
            false,
            Content,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-404.txt"),
            false,
            Content,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-429.txt"),
            false,
            Blocked,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-429.txt"),
            false,
            Blocked,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-403.txt"),
            false,
            Blocked,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-403.txt"),
            false,
            Blocked,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-unsupported.txt"),
            false,
            Content,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-unsupported.txt"),
            false,
            Content,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-not-a-url.txt"),
            false,
            Content,
        ),
        (
            "urllib",
            include_str!("../fixtures/stderr/urllib-target-down-tinyproxy.txt"),
            false,
            Unknown,
        ),
        (
            "requests",
            include_str!("../fixtures/stderr/requests-target-down-tinyproxy.txt"),
            false,
            Unknown,
        ),
    ];

    #[test]
    fn real_yt_dlp_output_of_both_stacks() {
        for (stack, stderr, creds, want) in FIXTURES {
            assert!(!stderr.trim().is_empty(), "empty fixture");
            assert_eq!(
                classify(stderr, Some(1), *creds),
                *want,
                "{stack}: {}",
                error_line(stderr)
            );
        }
    }

    #[test]
    fn written_rules() {
        let c = |s: &str| classify(s, Some(1), false);
        assert_eq!(
            c("ERROR: [youtube] x: Sign in to confirm you're not a bot"),
            Blocked
        );
        assert_eq!(c("ERROR: Unsupported proxy type: \"ftp\""), ProxyConnect);
        assert_eq!(c("/usr/bin/python3: No module named yt_dlp"), Host);
        assert_eq!(
            classify("yt-dlp: error: no such option: --bogus", Some(2), false),
            Host
        );
        assert_eq!(
            c("ERROR: unable to download video data: HTTP Error 500: Internal Server Error"),
            Content
        );
        assert_eq!(
            c("ERROR: \r[download] Got error: timed out. Giving up after 2 retries"),
            ProxyTimeout
        );
        assert_eq!(c("ERROR: something new"), Unknown);
        assert_eq!(c(""), Unknown);
        // 401 from a target site (no proxy credentials) is the content's.
        assert_eq!(c("ERROR: HTTP Error 401: Unauthorized"), Content);
    }

    #[test]
    fn only_proxy_faults_and_blocks_are_retried_elsewhere() {
        assert!(ProxyConnect.retry_elsewhere());
        assert!(Blocked.retry_elsewhere());
        assert!(!Content.retry_elsewhere());
        assert!(!Host.retry_elsewhere());
    }
}
