//! The stderr front end: the signals in yt-dlp's stderr (the process
//! runner), read from its last `ERROR:` message.
//!
//! yt-dlp's wording depends on its HTTP stack (urllib or requests), but the
//! exception class after `(caused by ...)` and the `HTTP Error NNN` text are
//! stable across both, so the rules key on those. Fixtures of both stacks'
//! real output are in the tests below.

use super::countries;
use super::signals::{Signals, Stage};

/// The line of yt-dlp's geo message that every extractor's shares (the
/// last of the three lines `GeoRestrictedError` prints).
const GEO_MARKER: &str = "you might want to use a vpn or a proxy server";
/// A traceback's last words when yt-dlp crashed printing a geo error's
/// countries (a code its table lacks): no `ERROR:` line then.
const GEO_TRACEBACK: &str = "yt_dlp.utils.GeoRestrictedError: ";

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

/// The failure as yt-dlp printed it: the last `ERROR:` line with the lines
/// of the same message after it (a geo restriction's is three lines), else
/// the last non-empty line.
pub fn error_block(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let Some(at) = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("ERROR:"))
    else {
        return error_line(stderr).to_string();
    };
    let mut block = vec![lines[at].trim()];
    // A message's own lines; yt-dlp's next messages start with a prefix.
    block.extend(
        lines[at + 1..]
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .take_while(|l| !l.starts_with("WARNING:") && !l.starts_with('[')),
    );
    block.join("\n")
}

/// Lower case, with the curly apostrophe YouTube writes (`you’re`,
/// `isn’t`) made straight.
fn normalize(s: &str) -> String {
    s.replace('\u{2019}', "'").to_lowercase()
}

/// The signals in a failed run's stderr and exit code (the worker's error
/// text reads the same).
pub fn signals(stderr: &str, exit_code: Option<i32>) -> Signals {
    let block = error_block(stderr);
    let l = normalize(&block);
    let has = |s: &str| l.contains(s);
    let geo_restricted = has(GEO_MARKER) || stderr.lines().any(|x| x.starts_with(GEO_TRACEBACK));
    Signals {
        host_setup: has("no module named yt_dlp") || exit_code == Some(2) && has("yt-dlp: error:"),
        http_status: status_after(&l, "http error "),
        http_reason: l.clone(),
        tunnel_status: status_after(&l, "tunnel connection failed: "),
        proxy_auth_required: has("proxy authentication required"),
        socks_auth_rejected: has("authentication methods were rejected")
            || has("authentication failed") && has("socks"),
        socks_general_failure: has("general socks server failure"),
        // The class yt-dlp prints after "caused by", or requests' words.
        proxy_error: has("proxyerror(")
            || has("unable to connect to proxy")
            || has("socks5error(")
            || has("socks4error(")
            || has("general socks server failure"),
        connection_dropped: has("connection refused")
            || has("connection reset")
            || has("remote end closed connection"),
        geo_restricted,
        countries: if geo_restricted {
            block
                .lines()
                .find_map(countries::parse_available)
                .unwrap_or_default()
        } else {
            Vec::new()
        },
        stage: stage(&l),
        retry_status: stderr.lines().rev().find_map(retry_status),
        text: l.clone(),
        ..Signals::default()
    }
}

/// Where yt-dlp was, by its error's wording.
fn stage(l: &str) -> Stage {
    let has = |s: &str| l.contains(s);
    if has("unable to download video data")
        || has("[download]")
        || has("the downloaded file is empty")
        || has("unable to continue")
    {
        Stage::Download
    } else if l
        .trim_start()
        .strip_prefix("error:")
        .is_some_and(|r| r.trim_start().starts_with('['))
    {
        // `ERROR: [youtube] id: ...`: an extractor's error.
        Stage::Extraction
    } else {
        Stage::Unknown
    }
}

/// The status of a retried HTTP error: `[download] Got error: HTTP Error
/// 403: Forbidden. Retrying fragment 1 (10/10)...`.
pub fn retry_status(line: &str) -> Option<u16> {
    let l = line.to_ascii_lowercase();
    let at = l.find("got error: ")?;
    status_after(&l[at..], "got error: http error ")
}

/// The three digits after `marker` in the (lower-cased) line.
fn status_after(line: &str, marker: &str) -> Option<u16> {
    let at = line.find(marker)?;
    let digits: String = line[at + marker.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok().filter(|c| (100..600).contains(c))
}

#[cfg(test)]
mod tests {
    use super::super::classify;
    use super::super::signals::Context;
    use super::*;
    use ytdlp_contract::FailureKind::{self, *};

    /// Through an HTTP proxy (tinyproxy), to a plain-HTTP URL.
    const HTTP: Context = Context {
        proxied: true,
        http_proxy: true,
        proxy_has_credentials: false,
        https_url: false,
    };
    const HTTP_CREDS: Context = Context {
        proxy_has_credentials: true,
        ..HTTP
    };
    /// Through a SOCKS proxy (microsocks).
    const SOCKS: Context = Context {
        http_proxy: false,
        ..HTTP
    };

    /// (stack, stderr, context, expected). Real output of yt-dlp 2026.10.26
    /// with urllib (plain `pip install yt-dlp`) and with requests
    /// installed, recorded on loopback against tinyproxy and microsocks
    /// (record.py here; fixtures/site/record.py records the rest).
    const FIXTURES: &[(&str, &str, Context, FailureKind)] = &[
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-http-proxy-refused.txt"),
            HTTP,
            ProxyConnect,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-http-proxy-refused.txt"),
            HTTP,
            ProxyConnect,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-socks-refused.txt"),
            SOCKS,
            ProxyConnect,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-socks-refused.txt"),
            SOCKS,
            ProxyConnect,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-blackhole.txt"),
            HTTP,
            ProxyTimeout,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-blackhole.txt"),
            HTTP,
            ProxyTimeout,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-407.txt"),
            HTTP,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-407.txt"),
            HTTP,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-wrong-password.txt"),
            HTTP_CREDS,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-wrong-password.txt"),
            HTTP_CREDS,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-socks-auth.txt"),
            SOCKS,
            ProxyAuth,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-socks-auth.txt"),
            SOCKS,
            ProxyAuth,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-404.txt"),
            HTTP,
            Content,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-404.txt"),
            HTTP,
            Content,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-429.txt"),
            HTTP,
            Blocked,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-429.txt"),
            HTTP,
            Blocked,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-403.txt"),
            HTTP,
            Blocked,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-403.txt"),
            HTTP,
            Blocked,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-unsupported.txt"),
            HTTP,
            Content,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-unsupported.txt"),
            HTTP,
            Content,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-not-a-url.txt"),
            HTTP,
            Content,
        ),
        (
            "urllib",
            include_str!("../../fixtures/stderr/urllib-target-down-tinyproxy.txt"),
            HTTP,
            Unknown,
        ),
        (
            "requests",
            include_str!("../../fixtures/stderr/requests-target-down-tinyproxy.txt"),
            HTTP,
            Unknown,
        ),
    ];

    #[test]
    fn real_yt_dlp_output_of_both_stacks() {
        for (stack, stderr, ctx, want) in FIXTURES {
            assert!(!stderr.trim().is_empty(), "empty fixture");
            assert_eq!(
                classify(stderr, Some(1), ctx).kind,
                *want,
                "{stack}: {}",
                error_line(stderr)
            );
        }
    }

    #[test]
    fn written_rules() {
        let c = |s: &str| classify(s, Some(1), &HTTP).kind;
        assert_eq!(
            c("ERROR: [youtube] x: Sign in to confirm you're not a bot"),
            Blocked
        );
        assert_eq!(c("ERROR: Unsupported proxy type: \"ftp\""), ProxyConnect);
        assert_eq!(c("/usr/bin/python3: No module named yt_dlp"), Host);
        assert_eq!(
            classify("yt-dlp: error: no such option: --bogus", Some(2), &HTTP).kind,
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
        // "Sign in" alone is no bot check.
        assert_eq!(
            c("ERROR: [youtube] x: Sign in to confirm you\u{2019}re not a bot"),
            Blocked
        );
        assert_eq!(c("ERROR: [youtube] x: Sign in to view this"), Unknown);
    }

    #[test]
    fn the_geo_message_is_read_whole() {
        let stderr = "WARNING: [x] something\nERROR: [x] id: The uploader has not made this video available in your country\nThis video is available in Germany, France.\nYou might want to use a VPN or a proxy server (with --proxy) to workaround.\n";
        assert_eq!(
            error_block(stderr),
            "ERROR: [x] id: The uploader has not made this video available in your country\nThis video is available in Germany, France.\nYou might want to use a VPN or a proxy server (with --proxy) to workaround."
        );
        let s = signals(stderr, Some(1));
        assert!(s.geo_restricted);
        assert_eq!(s.countries, ["DE", "FR"]);
        // Later messages are not part of it.
        assert_eq!(
            error_block("ERROR: a\n[download] b\nc\n"),
            "ERROR: a",
            "a prefixed line ends the message"
        );
        assert_eq!(error_block("no error\nlast words\n\n"), "last words");
    }

    #[test]
    fn statuses_come_from_their_own_wording() {
        let s = signals(
            "ERROR: \r[download] Got error: HTTP Error 403: Forbidden. Giving up after 10 retries\nERROR: fragment 1 not found, unable to continue\n",
            Some(1),
        );
        assert_eq!((s.http_status, s.retry_status), (None, Some(403)));
        assert_eq!(s.stage, Stage::Download);
        let s = signals(
            "ERROR: [x] a5: Unable to download JSON metadata: ('Unable to connect to proxy', OSError('Tunnel connection failed: 407 Proxy Authentication Required'))",
            Some(1),
        );
        assert_eq!((s.tunnel_status, s.http_status), (Some(407), None));
        assert!(s.proxy_error);
        assert_eq!(s.stage, Stage::Extraction);
        assert_eq!(retry_status("[download] Got error: timed out"), None);
        assert_eq!(status_after("http error 9999", "http error "), None);
    }
}
