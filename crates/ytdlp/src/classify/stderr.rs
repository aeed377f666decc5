//! The stderr front end: the signals in yt-dlp's stderr (the process
//! runner), read from its last `ERROR:` line.
//!
//! yt-dlp's wording depends on its HTTP stack (urllib or requests), but the
//! exception class after `(caused by ...)` and the `HTTP Error NNN` text are
//! stable across both, so the rules key on those. Fixtures of both stacks'
//! real output are in the tests below.

use super::signals::Signals;

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

/// The signals in a failed run's stderr and exit code.
pub fn signals(stderr: &str, exit_code: Option<i32>) -> Signals {
    let l = error_line(stderr).to_ascii_lowercase();
    let has = |s: &str| l.contains(s);
    Signals {
        host_setup: has("no module named yt_dlp") || exit_code == Some(2) && has("yt-dlp: error:"),
        http_status: http_status(&l),
        http_reason: l.clone(),
        proxy_auth_required: has("proxy authentication required"),
        socks_auth_rejected: has("authentication methods were rejected")
            || has("authentication failed") && has("socks"),
        socks_general_failure: has("general socks server failure"),
        text: l.clone(),
        ..Signals::default()
    }
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
    use super::super::classify;
    use super::*;
    use ytdlp_contract::FailureKind::{self, *};

    /// (stack, stderr, proxy has credentials, expected). Real output of
    /// yt-dlp 2026.10.26 with urllib (plain `pip install yt-dlp`) and with
    /// requests installed, recorded on loopback against tinyproxy and
    /// microsocks.
    const FIXTURES: &[(&str, &str, bool, FailureKind)] = &[
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-http-proxy-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-http-proxy-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-socks-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-socks-refused.txt"),
            false,
            ProxyConnect,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-blackhole.txt"),
            false,
            ProxyTimeout,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-blackhole.txt"),
            false,
            ProxyTimeout,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-407.txt"),
            false,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-407.txt"),
            false,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-wrong-password.txt"),
            true,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-wrong-password.txt"),
            true,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-socks-auth.txt"),
            false,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-socks-auth.txt"),
            false,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-404.txt"),
            false,
            Content,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-404.txt"),
            false,
            Content,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-429.txt"),
            false,
            Blocked,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-429.txt"),
            false,
            Blocked,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-403.txt"),
            false,
            Blocked,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-403.txt"),
            false,
            Blocked,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-unsupported.txt"),
            false,
            Content,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-unsupported.txt"),
            false,
            Content,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-not-a-url.txt"),
            false,
            Content,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-target-down-tinyproxy.txt"),
            false,
            Unknown,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-target-down-tinyproxy.txt"),
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
}
