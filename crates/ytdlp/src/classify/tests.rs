//! The classifier over real yt-dlp 2026.10.26 output: the failures
//! fixtures/site/record.py recorded (both HTTP stacks, the process runner's
//! stderr and the worker's `done` line for each case) give the same kind
//! with both runners, and the detail each can see; the exception chains of
//! the loopback fault matrix classify like the stderr the same faults print
//! (see `stderr.rs` for those fixtures).

use std::path::{Path, PathBuf};

use ytdlp_contract::FailureKind::{self, *};
use ytdlp_contract::{FailureDetail, Phase};

use super::signals::Stage;
use super::*;

const HTTP: Context = Context {
    proxied: true,
    http_proxy: true,
    proxy_has_credentials: false,
    https_url: false,
};
const DIRECT: Context = Context {
    proxied: false,
    http_proxy: false,
    proxy_has_credentials: false,
    https_url: false,
};

/// The kind a chain's typed signals give on their own (no error text).
fn typed_kind(chain: &[ExcInfo], ctx: &Context) -> Option<FailureKind> {
    let s = chain::signals(chain);
    (s != Signals::default()).then(|| decide(&s, ctx).kind)
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

/// The chains real yt-dlp 2026.10.26 reports for the loopback fault matrix
/// (both HTTP stacks give these types), and the kinds `stderr.rs` gives
/// for the same faults.
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
    let creds = Context {
        proxy_has_credentials: true,
        ..HTTP
    };
    let socks_ctx = Context {
        http_proxy: false,
        ..HTTP
    };
    let socks_creds = Context {
        proxy_has_credentials: true,
        ..socks_ctx
    };
    let cases: Vec<(&str, Vec<ExcInfo>, Context, FailureKind)> = vec![
        ("dead port, urllib", refused_urllib, HTTP, ProxyConnect),
        ("dead port, requests", refused_requests, HTTP, ProxyConnect),
        ("black hole", blackhole, HTTP, ProxyTimeout),
        (
            "407",
            http(407, "Proxy Authentication Required"),
            HTTP,
            ProxyAuth,
        ),
        (
            "tinyproxy wrong password",
            http(401, "Unauthorized"),
            creds,
            ProxyAuth,
        ),
        ("site 401", http(401, "Unauthorized"), HTTP, Content),
        ("socks auth refused", socks(0xFF), socks_ctx, ProxyAuth),
        ("socks wrong password", socks(0x01), socks_creds, ProxyAuth),
        ("socks target refused", socks(0x05), socks_ctx, ProxyConnect),
        ("404", http(404, "Not Found"), HTTP, Content),
        ("urllib HTTPError 404", urllib_404, HTTP, Content),
        ("429", http(429, "Too Many Requests"), HTTP, Blocked),
        ("403", http(403, "Forbidden"), HTTP, Blocked),
        (
            "site 500",
            http(500, "Internal Server Error"),
            HTTP,
            Content,
        ),
        ("unsupported URL", unsupported, HTTP, Content),
        (
            "target down behind tinyproxy",
            http(500, "Unable to connect"),
            HTTP,
            Unknown,
        ),
    ];
    for (name, chain, ctx, want) in cases {
        assert_eq!(typed_kind(&chain, &ctx), Some(want), "{name}");
    }
}

#[test]
fn undecided_chains_fall_back_to_the_text_rules() {
    let c = |chain: &[ExcInfo], line: &str| classify_chain(chain, line, None, &HTTP).kind;
    let not_a_url = "ERROR: [generic] 'not-a-url' is not a valid URL";
    assert_eq!(typed_kind(&[exc(EXTRACTOR)], &HTTP), None);
    assert_eq!(c(&[exc(EXTRACTOR)], not_a_url), Content);
    let bad_type = "ERROR: Unable to handle request: Unsupported proxy type: \"ftp\" (urllib)";
    let nsh = exc(&["yt_dlp.networking.exceptions.NoSupportingHandlers"]);
    assert_eq!(c(&[nsh], bad_type), ProxyConnect);
    let bot = "ERROR: [youtube] x: Sign in to confirm you're not a bot";
    assert_eq!(c(&[exc(EXTRACTOR)], bot), Blocked);
    assert_eq!(c(&[], ""), Unknown);
    // A short read is not a proxy fault by type: the text decides.
    let short = vec![exc(&[
        "yt_dlp.networking.exceptions.IncompleteRead",
        "yt_dlp.networking.exceptions.TransportError",
    ])];
    assert_eq!(typed_kind(&short, &HTTP), None);
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

// ---------------------------------------------------------------------------
// The recorded site failures (fixtures/site/record.py)

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

const STACKS: [&str; 2] = ["urllib", "requests"];

/// The context of a recorded case, from its (masked) proxy and URL.
fn context_of(case: &str) -> Context {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("site/cases.json")).expect("cases.json"),
    )
    .expect("cases.json parses");
    let c = &index[case];
    let proxy = c["proxy"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: not recorded"));
    Context {
        proxied: !proxy.is_empty(),
        http_proxy: proxy.starts_with("http"),
        proxy_has_credentials: proxy.contains('@'),
        https_url: c["url"].as_str().unwrap().starts_with("https://"),
    }
}

fn recorded_stderr(stack: &str, case: &str) -> String {
    let p = fixtures().join(format!("stderr/site/{stack}-{case}.txt"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A recorded `done` line: what the classifier reads of it (the pool's
/// parsing of the same files is tested in worker/pool.rs).
#[derive(serde::Deserialize)]
struct Done {
    error: Option<String>,
    #[serde(default)]
    chain: Vec<ExcInfo>,
    retry_error: Option<String>,
}

fn recorded_done(stack: &str, case: &str) -> Done {
    let p = fixtures().join(format!("worker/site/{stack}-{case}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The process runner's verdict on a recorded case.
fn cli(stack: &str, case: &str) -> Verdict {
    classify(&recorded_stderr(stack, case), Some(1), &context_of(case))
}

/// The worker runner's verdict on a recorded case.
fn worker(stack: &str, case: &str) -> Verdict {
    let d = recorded_done(stack, case);
    classify_chain(
        &d.chain,
        d.error.as_deref().unwrap_or(""),
        d.retry_error.as_deref(),
        &context_of(case),
    )
}

#[derive(Clone)]
struct Want(Verdict);

fn want(kind: FailureKind, status: Option<u16>, phase: Option<Phase>, from_proxy: bool) -> Want {
    Want(Verdict {
        kind,
        detail: FailureDetail {
            http_status: status,
            phase,
            from_proxy,
            ..FailureDetail::default()
        },
    })
}

impl Want {
    fn countries(mut self, c: &[&str]) -> Want {
        self.0.detail.countries = c.iter().map(|s| s.to_string()).collect();
        self
    }

    fn retry_after(mut self, ms: u64) -> Want {
        self.0.detail.retry_after_ms = Some(ms);
        self
    }

    fn status(mut self, s: Option<u16>) -> Want {
        self.0.detail.http_status = s;
        self
    }
}

/// Every recorded case: the worker's verdict, and the process runner's
/// where it differs beyond `retry_after_ms` (which stderr never shows).
fn site_cases() -> Vec<(&'static str, Want, Option<Want>)> {
    use Phase::*;
    let geo = want(GeoRestricted, None, Some(Request), false);
    let de_fr = geo.clone().countries(&["DE", "FR"]);
    let blocked = want(Blocked, None, Some(Request), false);
    let content = want(Content, None, Some(Request), false);
    let unknown_direct = want(Unknown, None, Some(Connect), false);
    let tunnel = |kind, code| want(kind, Some(code), Some(Connect), true);
    vec![
        // Geo restriction: the countries from the exception (worker) and
        // from the names printed (process runner).
        ("geo", de_fr.clone(), None),
        ("geo-https", de_fr.clone(), None),
        ("geo-xff", de_fr.clone(), None),
        ("yt-geo", de_fr.clone(), None),
        ("geo-nocountries", geo.clone(), None),
        (
            "geo-commas",
            geo.clone().countries(&["KR", "TW", "VI", "BO"]),
            None,
        ),
        // XK is not in yt-dlp's table: the CLI crashes printing it (a
        // traceback, no names), the exception still has the codes.
        (
            "geo-badcode",
            geo.clone().countries(&["DE", "XK"]),
            Some(geo.clone()),
        ),
        // Bot checks (both apostrophes, both forms), rate limits (also
        // "Video unavailable. This content isn't available"), IP blocks.
        ("bot", blocked.clone(), None),
        ("bot-ascii", blocked.clone(), None),
        ("bot-old", blocked.clone(), None),
        ("ratelimit", blocked.clone(), None),
        ("ratelimit-account", blocked.clone(), None),
        ("ratelimit-curly", blocked.clone(), None),
        ("ipblocked", blocked.clone(), None),
        ("captcha", blocked.clone(), None),
        // "Sign in" here is the content's, not a bot check.
        ("private", content.clone(), None),
        ("members", content.clone(), None),
        ("age", content.clone(), None),
        // "blocked it in your country" on copyright grounds: no geo error.
        ("copyright", content.clone(), None),
        ("unavailable", content.clone(), None),
        ("flagged-403", blocked.clone().status(Some(403)), None),
        (
            "rate-limit-429",
            blocked.clone().status(Some(429)).retry_after(30_000),
            None,
        ),
        (
            "api-429",
            blocked.clone().status(Some(429)).retry_after(30_000),
            None,
        ),
        (
            "direct-429",
            blocked.clone().status(Some(429)).retry_after(30_000),
            None,
        ),
        // A site's 503 (with Retry-After): not clearly anyone's.
        (
            "api-503",
            want(Unknown, Some(503), Some(Request), false).retry_after(30_000),
            None,
        ),
        (
            "media403",
            want(Blocked, Some(403), Some(Transfer), false),
            None,
        ),
        (
            "media429",
            want(Blocked, Some(429), Some(Transfer), false).retry_after(30_000),
            None,
        ),
        // Fragments refused: "The downloaded file is empty". The worker
        // keeps the last retry's status; the process runner's stderr
        // (under --quiet) has none.
        (
            "hls403",
            want(Blocked, Some(403), Some(Transfer), false),
            Some(want(Blocked, None, Some(Transfer), false)),
        ),
        (
            "hls403-generic",
            want(Blocked, Some(403), Some(Transfer), false),
            Some(want(Blocked, None, Some(Transfer), false)),
        ),
        (
            "hls403-abort",
            want(Blocked, Some(403), Some(Transfer), false),
            None,
        ),
        // 401s: the site's is content; the proxy's is proxy-auth. Over plain
        // HTTP only the worker can tell them apart (by the answer's
        // headers): the process runner takes a 401 through a proxy given
        // credentials for the proxy's.
        (
            "site-401-proxy-creds",
            content.clone().status(Some(401)),
            Some(want(ProxyAuth, Some(401), Some(Connect), true)),
        ),
        (
            "site-401-proxy-creds-https",
            content.clone().status(Some(401)),
            None,
        ),
        ("site-401-direct", content.clone().status(Some(401)), None),
        (
            "proxy-401-wrong-creds",
            want(ProxyAuth, Some(401), Some(Connect), true),
            None,
        ),
        ("proxy-401-wrong-creds-https", tunnel(ProxyAuth, 401), None),
        (
            "proxy-407-no-creds",
            want(ProxyAuth, Some(407), Some(Connect), true),
            None,
        ),
        ("proxy-407-no-creds-https", tunnel(ProxyAuth, 407), None),
        // Proxies that could not reach the site: tinyproxy's, squid's and
        // privoxy's error pages and tunnel errors alike.
        (
            "tinyproxy-500-target-down",
            want(Unknown, Some(500), Some(Connect), true),
            None,
        ),
        ("tinyproxy-target-down-https", tunnel(Unknown, 500), None),
        (
            "squid-503-target-down",
            want(Unknown, Some(503), Some(Connect), true),
            // squid's standard phrase: only its headers say it is squid's.
            Some(want(Unknown, Some(503), Some(Request), false)),
        ),
        ("squid-503-target-down-https", tunnel(Unknown, 503), None),
        (
            "squid-502-drop",
            want(Unknown, Some(502), Some(Connect), true),
            Some(want(Unknown, Some(502), Some(Request), false)),
        ),
        (
            "privoxy-503-target-down",
            want(Unknown, Some(503), Some(Connect), true),
            None,
        ),
        ("privoxy-503-target-down-https", tunnel(Unknown, 503), None),
        (
            "privoxy-502-drop",
            want(Unknown, Some(502), Some(Connect), true),
            None,
        ),
        // tinyproxy relays the site's close as its own: a dying proxy.
        (
            "tinyproxy-drop",
            want(ProxyConnect, None, Some(Connect), true),
            None,
        ),
        (
            "socks-target-down",
            want(ProxyConnect, None, Some(Connect), true),
            None,
        ),
        (
            "socks-no-creds",
            want(ProxyAuth, None, Some(Connect), true),
            None,
        ),
        (
            "socks-wrong-creds",
            want(ProxyAuth, None, Some(Connect), true),
            None,
        ),
        (
            "http-proxy-refused",
            want(ProxyConnect, None, Some(Connect), true),
            None,
        ),
        (
            "proxy-blackhole",
            want(ProxyTimeout, None, Some(Connect), false),
            None,
        ),
        (
            "proxy-blackhole-https",
            want(ProxyTimeout, None, Some(Connect), false),
            None,
        ),
        // No proxy: never a proxy-* kind (the same refusal through a proxy
        // is proxy-connect, above).
        ("direct-refused", unknown_direct.clone(), None),
        ("direct-refused-generic", unknown_direct.clone(), None),
        ("direct-refused-https", unknown_direct.clone(), None),
        ("direct-blackhole", unknown_direct.clone(), None),
        ("site-drop-direct", unknown_direct.clone(), None),
    ]
}

#[test]
fn recorded_site_failures_classify_alike_with_both_runners() {
    let mut wrong = Vec::new();
    let cases = site_cases();
    for (case, w, c) in &cases {
        let cli_want = c.clone().unwrap_or_else(|| {
            let mut v = w.clone();
            v.0.detail.retry_after_ms = None;
            v
        });
        let mut kinds = Vec::new();
        for stack in STACKS {
            let got = worker(stack, case);
            kinds.push(got.kind);
            if got != w.0 {
                wrong.push(format!("{stack} worker {case}: {got:?}\n  want {:?}", w.0));
            }
            let got = cli(stack, case);
            kinds.push(got.kind);
            if got != cli_want.0 {
                wrong.push(format!(
                    "{stack} process {case}: {got:?}\n  want {:?}",
                    cli_want.0
                ));
            }
        }
        // Both runners, both stacks, one kind: but for the one case the
        // process runner cannot see (a site's 401 over plain HTTP).
        kinds.sort();
        kinds.dedup();
        if (kinds.len() == 1) == (*case == "site-401-proxy-creds") {
            wrong.push(format!("{case}: kinds {kinds:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every recorded case is checked.
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("site/cases.json")).unwrap())
            .unwrap();
    let recorded: Vec<&String> = index.as_object().unwrap().keys().collect();
    let checked: Vec<&str> = cases.iter().map(|(c, _, _)| *c).collect();
    for r in recorded {
        assert!(
            checked.contains(&r.as_str()),
            "{r} is recorded but not checked"
        );
    }
}

/// The same refusal prints the same words through a proxy and without one
/// (urllib): only the context tells `proxy-connect` from `unknown`.
#[test]
fn a_direct_run_never_blames_a_proxy() {
    let via = recorded_stderr("urllib", "http-proxy-refused");
    let direct = recorded_stderr("urllib", "direct-refused");
    assert_eq!(via.replace("p1:", "r1:"), direct);
    assert_eq!(classify(&direct, Some(1), &HTTP).kind, ProxyConnect);
    assert_eq!(classify(&direct, Some(1), &DIRECT).kind, Unknown);
    // No proxy-* kind from any wording without a proxy.
    let proxyish = [
        "ERROR: [generic] clip: Unable to download webpage: HTTP Error 407: Proxy Authentication Required",
        "ERROR: x: <urlopen error Tunnel connection failed: 401 Unauthorized> (caused by ProxyError('x'))",
        "ERROR: x: timed out (caused by TransportError('timed out'))",
        "ERROR: x: [Errno 5] Connection refused (caused by ProxyError('x'))",
        "ERROR: x: general SOCKS server failure",
        "ERROR: x: all offered authentication methods were rejected (caused by ProxyError('x'))",
        "ERROR: Unsupported proxy type: \"ftp\"",
    ];
    for line in proxyish {
        let v = classify(line, Some(1), &DIRECT);
        assert!(!v.kind.is_proxy_fault(), "{line}: {}", v.kind);
        assert!(!v.detail.from_proxy, "{line}");
        assert!(
            classify(line, Some(1), &HTTP).kind.is_proxy_fault(),
            "{line}"
        );
    }
    for case in ["direct-refused", "direct-blackhole", "site-drop-direct"] {
        for stack in STACKS {
            let d = recorded_done(stack, case);
            let error = d.error.as_deref().unwrap();
            assert!(
                classify_chain(&d.chain, error, None, &HTTP)
                    .kind
                    .is_proxy_fault(),
                "{stack} {case} through a proxy"
            );
        }
    }
}

/// YouTube's wordings as users reported them (yt-dlp's own issues, see
/// the team's notes), beside the recorded ones.
#[test]
fn youtubes_reported_wordings() {
    let c = |l: &str| classify(l, Some(1), &HTTP).kind;
    let hint = "Use --cookies-from-browser or --cookies for the authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies  for tips on effectively exporting YouTube cookies";
    for apostrophe in ["'", "\u{2019}"] {
        assert_eq!(
            c(&format!(
                "ERROR: [youtube] Mr_0pQ8vlEQ: Sign in to confirm you{apostrophe}re not a bot. {hint}"
            )),
            Blocked
        );
        assert_eq!(
            c(&format!(
                "ERROR: [youtube] qaImFO_DgAM: Video unavailable. This content isn{apostrophe}t available."
            )),
            Blocked
        );
    }
    assert_eq!(
        c(&format!(
            "ERROR: [youtube] zKB3M5GFFUU: Private video. Sign in if you've been granted access to this video. {hint}"
        )),
        Content
    );
    assert_eq!(
        c(&format!(
            "ERROR: [youtube] mJgC9LEBTuQ: Sign in to confirm your age. This video may be inappropriate for some users. {hint}"
        )),
        Content
    );
    assert_eq!(
        c(
            "ERROR: [youtube] h7aSM88pUv8: Join this channel from your computer or Android app to get access to members-only content like this video."
        ),
        Content
    );
    assert_eq!(
        c("ERROR: [youtube] we1BT4NJQ0E: Video unavailable"),
        Content
    );
    assert_eq!(
        c(
            "ERROR: [youtube] x: Unable to download API page: HTTP Error 429: Too Many Requests (caused by <HTTPError 429: Too Many Requests>)"
        ),
        Blocked
    );
}

/// What the verdict's detail says of a phase, and which status it names,
/// with both stages of the same answer.
#[test]
fn the_phase_follows_the_stage_and_the_proxy_layer() {
    let v = |l: &str| classify(l, Some(1), &HTTP).detail;
    let extraction =
        v("ERROR: [x] id: Unable to download JSON metadata: HTTP Error 403: Forbidden");
    assert_eq!(
        (extraction.phase, extraction.http_status),
        (Some(Phase::Request), Some(403))
    );
    let download = v("ERROR: unable to download video data: HTTP Error 403: Forbidden");
    assert_eq!(download.phase, Some(Phase::Transfer));
    let stall = v("ERROR: \r[download] Got error: timed out. Giving up after 2 retries");
    assert_eq!(stall.phase, Some(Phase::Transfer));
    // The proxy's own failure is Connect at any stage.
    let proxy = v("ERROR: unable to download video data: HTTP Error 500: Unable to connect");
    assert_eq!(
        (proxy.phase, proxy.from_proxy),
        (Some(Phase::Connect), true)
    );
    // No phase for the host's own setup or a URL that is none.
    assert_eq!(v("/usr/bin/python3: No module named yt_dlp").phase, None);
    assert_eq!(v("ERROR: [generic] 'x' is not a valid URL").phase, None);
    assert_eq!(
        classify("ERROR: x", Some(1), &HTTP).detail,
        FailureDetail::default()
    );
    assert_eq!(
        stderr::signals("ERROR: [x] y: z", Some(1)).stage,
        Stage::Extraction
    );
}

/// The worker's chain items carry the answer's headers: who answered, and
/// when to come back.
#[test]
fn the_answers_headers_tell_who_answered_and_when_to_return() {
    let d = recorded_done("requests", "api-429");
    let s = chain::signals(&d.chain);
    assert_eq!((s.http_status, s.retry_after_ms), (Some(429), Some(30_000)));
    assert_eq!(s.proxy_page, Some(false), "the site's, relayed");
    // An HTTP-date counts from the answer's own Date.
    let mut answer = ExcInfo {
        status: Some(503),
        reason: Some("Service Unavailable".into()),
        ..exc(YT_HTTP)
    };
    answer
        .headers
        .insert("Retry-After".into(), "Tue, 01 Dec 2026 19:12:01 GMT".into());
    answer
        .headers
        .insert("date".into(), "Tue, 01 Dec 2026 19:11:01 GMT".into());
    let s = chain::signals(&[answer.clone()]);
    assert_eq!(s.retry_after_ms, Some(60_000));
    assert_eq!(s.proxy_page, Some(false));
    answer
        .headers
        .insert("X-Squid-Error".into(), "ERR_CONNECT_FAIL 111".into());
    assert_eq!(chain::signals(&[answer.clone()]).proxy_page, Some(true));
    let v = decide(&chain::signals(&[answer]), &HTTP);
    assert_eq!(
        (v.kind, v.detail.from_proxy, v.detail.retry_after_ms),
        (Unknown, true, Some(60_000))
    );
    // Through a tunnel an answer is never the proxy's page.
    let d = recorded_done("urllib", "site-401-proxy-creds-https");
    let s = chain::signals(&d.chain);
    assert_eq!(s.answer_https, Some(true));
}
