//! The exception chains real yt-dlp 2026.10.26 reports for the fault matrix
//! (both HTTP stacks give these types) classify like the stderr the same
//! faults print (see `stderr.rs` for those fixtures).

use ytdlp_contract::FailureKind::{self, *};

use super::*;

/// The kind a chain's typed signals give on their own (no error text).
fn typed_kind(chain: &[ExcInfo], creds: bool) -> Option<FailureKind> {
    let s = chain::signals(chain);
    (s != Signals::default()).then(|| decide(&s, creds))
}

fn exc(types: &[&str]) -> ExcInfo {
    ExcInfo {
        types: types.iter().map(|s| s.to_string()).collect(),
        ..ExcInfo::default()
    }
}

const EXTRACTOR: &[&str] = &["yt_dlp.utils.ExtractorError", "yt_dlp.utils.YoutubeDLError"];
const YT_HTTP: &[&str] = &[
    "yt_dlp.networking.exceptions.HTTPError",
    "yt_dlp.networking.exceptions.RequestError",
];
const YT_PROXY: &[&str] = &[
    "yt_dlp.networking.exceptions.ProxyError",
    "yt_dlp.networking.exceptions.TransportError",
    "yt_dlp.networking.exceptions.RequestError",
];
const YT_TRANSPORT: &[&str] = &[
    "yt_dlp.networking.exceptions.TransportError",
    "yt_dlp.networking.exceptions.RequestError",
];
const SOCKS5: &[&str] = &[
    "yt_dlp.socks.Socks5Error",
    "yt_dlp.socks.ProxyError",
    "builtins.OSError",
];

fn http(status: i64, reason: &str) -> Vec<ExcInfo> {
    vec![
        exc(EXTRACTOR),
        ExcInfo {
            status: Some(status),
            reason: Some(reason.into()),
            ..exc(YT_HTTP)
        },
    ]
}

fn socks(errno: i64) -> Vec<ExcInfo> {
    vec![
        exc(EXTRACTOR),
        exc(YT_PROXY),
        exc(&["urllib.error.URLError", "builtins.OSError"]),
        ExcInfo {
            errno: Some(errno),
            ..exc(SOCKS5)
        },
    ]
}

/// The chains real yt-dlp 2026.10.26 reports for the fault matrix
/// (both HTTP stacks give these types), and the kinds `classify.rs`
/// gives for the same faults.
#[test]
fn the_fault_matrix_maps_like_the_stderr_classifier() {
    let refused_urllib = vec![
        exc(EXTRACTOR),
        exc(YT_TRANSPORT),
        ExcInfo {
            errno: Some(111),
            ..exc(&[
                "builtins.ConnectionRefusedError",
                "builtins.ConnectionError",
                "builtins.OSError",
            ])
        },
    ];
    // requests: urllib3's NewConnectionError derives from urllib3's own
    // TimeoutError, which must not read as a timeout.
    let refused_requests = vec![
        exc(EXTRACTOR),
        exc(YT_PROXY),
        exc(&[
            "requests.exceptions.ProxyError",
            "requests.exceptions.ConnectionError",
        ]),
        exc(&[
            "urllib3.exceptions.NewConnectionError",
            "urllib3.exceptions.ConnectTimeoutError",
            "urllib3.exceptions.TimeoutError",
            "urllib3.exceptions.HTTPError",
        ]),
        exc(&[
            "builtins.ConnectionRefusedError",
            "builtins.ConnectionError",
            "builtins.OSError",
        ]),
    ];
    let blackhole = vec![
        exc(EXTRACTOR),
        exc(YT_TRANSPORT),
        exc(&[
            "urllib3.exceptions.ReadTimeoutError",
            "urllib3.exceptions.TimeoutError",
        ]),
        exc(&["builtins.TimeoutError", "builtins.OSError"]),
    ];
    let urllib_404 = vec![
        exc(EXTRACTOR),
        ExcInfo {
            code: Some(404),
            ..exc(&["urllib.error.HTTPError", "urllib.error.URLError"])
        },
    ];
    let unsupported = vec![exc(&[
        "yt_dlp.utils.UnsupportedError",
        "yt_dlp.utils.ExtractorError",
    ])];
    let cases: Vec<(&str, Vec<ExcInfo>, bool, FailureKind)> = vec![
        ("dead port, urllib", refused_urllib, false, ProxyConnect),
        ("dead port, requests", refused_requests, false, ProxyConnect),
        ("black hole", blackhole, false, ProxyTimeout),
        (
            "407",
            http(407, "Proxy Authentication Required"),
            false,
            ProxyAuth,
        ),
        (
            "tinyproxy wrong password",
            http(401, "Unauthorized"),
            true,
            ProxyAuth,
        ),
        ("site 401", http(401, "Unauthorized"), false, Content),
        ("socks auth refused", socks(0xFF), false, ProxyAuth),
        ("socks wrong password", socks(0x01), true, ProxyAuth),
        ("socks target refused", socks(0x05), false, ProxyConnect),
        ("404", http(404, "Not Found"), false, Content),
        ("urllib HTTPError 404", urllib_404, false, Content),
        ("429", http(429, "Too Many Requests"), false, Blocked),
        ("403", http(403, "Forbidden"), false, Blocked),
        (
            "site 500",
            http(500, "Internal Server Error"),
            false,
            Content,
        ),
        ("unsupported URL", unsupported, false, Content),
        (
            "target down behind tinyproxy",
            http(500, "Unable to connect"),
            false,
            Unknown,
        ),
    ];
    for (name, chain, creds, want) in cases {
        assert_eq!(typed_kind(&chain, creds), Some(want), "{name}");
    }
}

#[test]
fn undecided_chains_fall_back_to_the_text_rules() {
    let not_a_url = "ERROR: [generic] 'not-a-url' is not a valid URL";
    assert_eq!(typed_kind(&[exc(EXTRACTOR)], false), None);
    assert_eq!(classify_chain(&[exc(EXTRACTOR)], not_a_url, false), Content);
    let bad_type = "ERROR: Unable to handle request: Unsupported proxy type: \"ftp\" (urllib)";
    let nsh = exc(&["yt_dlp.networking.exceptions.NoSupportingHandlers"]);
    assert_eq!(classify_chain(&[nsh], bad_type, false), ProxyConnect);
    let bot = "ERROR: [youtube] x: Sign in to confirm you're not a bot";
    assert_eq!(classify_chain(&[exc(EXTRACTOR)], bot, false), Blocked);
    assert_eq!(classify_chain(&[], "", false), Unknown);
    // A short read is not a proxy fault by type: the text decides.
    let short = vec![exc(&[
        "yt_dlp.networking.exceptions.IncompleteRead",
        "yt_dlp.networking.exceptions.TransportError",
    ])];
    assert_eq!(typed_kind(&short, false), None);
}

#[test]
fn messages_read_like_the_process_runners() {
    let m = failure_message(
        "ERROR: [generic] x: boom (caused by ProxyError('http://u:secret@h:1')); please report this issue on https://...",
    );
    assert_eq!(
        m,
        "ERROR: [generic] x: boom (caused by ProxyError('http://***@h:1'))"
    );
    assert_eq!(failure_message("ERROR: a\rb\nc"), "ERROR: a b c");
}
