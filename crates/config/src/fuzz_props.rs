//! Property tests (fuzzing with proptest) over the two parsers that take
//! untrusted input: proxy URLs (from plugins and users) and the config.
//! CI runs the default number of cases; for a long run:
//!
//!     PROPTEST_CASES=2000000 cargo test --release -p ytdlp-host-config fuzz_props
//!
//! Invariants: nothing panics; an accepted proxy URL can never be read as an
//! option or smuggle whitespace, control characters, another scheme or a
//! path; masking never shows a password; a config is accepted or refused
//! whole, with a message.

use proptest::prelude::*;

use crate::Config;
use ytdlp_contract::proxy_url::{self, SCHEMES};

/// Strings shaped like proxy URLs, with hostile pieces mixed in.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("http".to_string()),
        Just("https".to_string()),
        Just("socks5".to_string()),
        Just("socks5h".to_string()),
        Just("socks4a".to_string()),
        Just("file".to_string()),
        Just("ftp".to_string()),
        Just("-".to_string()),
        "[a-z]{0,6}",
    ];
    let userinfo = prop_oneof![Just(String::new()), "[a-z]{1,5}@", "[a-z]{1,5}:[!-~]{0,8}@",];
    let host = prop_oneof![
        "[a-z0-9.-]{0,12}",
        Just("127.0.0.1".to_string()),
        Just("[::1]".to_string()),
        "[ -~]{0,10}",
    ];
    let tail = prop_oneof![
        Just(String::new()),
        ":[0-9]{1,6}",
        "/[ -~]{0,8}",
        "[\\x00-\\x20]{1,2}--exec",
        "\\?[a-z=]{0,5}",
    ];
    (scheme, userinfo, host, tail).prop_map(|(s, u, h, t)| format!("{s}://{u}{h}{t}"))
}

proptest! {
    #[test]
    fn accepted_proxy_urls_are_safe_for_an_argv(raw in prop_oneof![url_like(), any::<String>()]) {
        if let Ok(url) = proxy_url::validate(&raw) {
            let s = url.expose();
            prop_assert!(!s.starts_with('-'));
            prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert!(s.len() <= proxy_url::MAX_LEN);
            let scheme = s.split("://").next().unwrap();
            prop_assert!(SCHEMES.contains(&scheme), "{}", s);
            let parsed = url::Url::parse(s).unwrap();
            prop_assert!(matches!(parsed.path(), "" | "/"));
            prop_assert!(parsed.query().is_none() && parsed.fragment().is_none());
        }
    }

    // User names and passwords from the whole printable alphabet but `@`
    // (`)`, `,`, `'`, `/`, `]`, `:`, quotes: what generated credentials
    // hold), raw or percent-encoded.
    #[test]
    fn masking_never_shows_a_user_name_or_a_password(
        user in "[!-?A-~]{1,12}",
        pass in "[!-?A-~]{6,16}",
        before in "[ -~]{0,10}",
        after in "[ -~]{0,10}",
        encode in any::<bool>(),
    ) {
        let enc = |s: &str| if encode {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        } else {
            s.to_string()
        };
        let userinfo = format!("{}:{}", enc(&user), enc(&pass));
        let text = format!("{before} http://{userinfo}@127.0.0.1:3128 {after}");
        let masked = proxy_url::mask(&text);
        prop_assert!(!masked.contains(&userinfo), "{}", masked);
        prop_assert!(masked.contains("***@127.0.0.1:3128"), "{}", masked);
        // A value meant to be one URL, even one that does not parse.
        let one = proxy_url::mask_url(&format!("http://{userinfo}@127.0.0.1:3128"));
        prop_assert_eq!(one, "http://***@127.0.0.1:3128");
        // A valid one shows no credential at all.
        if let Ok(u) = proxy_url::validate(&format!("http://{userinfo}@127.0.0.1:3128")) {
            prop_assert_eq!(u.to_string(), "http://***@127.0.0.1:3128");
        }
    }

    #[test]
    fn configs_are_accepted_or_refused_with_a_message(text in config_like()) {
        match Config::from_toml(&text) {
            Ok(c) => {
                // Accepted means usable: every proxy validates.
                for p in &c.proxies {
                    prop_assert!(proxy_url::validate(p).is_ok());
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(!msg.is_empty());
            }
        }
    }
}

/// TOML-shaped text: known and unknown keys, good and bad values.
fn config_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("backend"),
        Just("proxies"),
        Just("max_attempts"),
        Just("on_no_proxy"),
        Just("plugin_dir"),
        Just("preflight_timeout_ms"),
        Just("run_timeout_secs"),
        Just("output"),
        Just("runner"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        "\"[ -~]{0,12}\"",
        "-?[0-9]{1,4}",
        Just("true".to_string()),
        Just("[\"http://127.0.0.1:1\", \"ftp://x\"]".to_string()),
        url_like().prop_map(|u| format!("[{u:?}]")),
        "[ -~]{0,8}",
    ];
    let line = (key, value).prop_map(|(k, v)| format!("{k} = {v}\n"));
    let section = prop_oneof![
        Just(String::new()),
        Just("[plugins.memory.options]\nfailure_threshold = 2\n".to_string()),
        Just("[plugins.x.limits]\ncall_timeout_ms = 0\n".to_string()),
        Just("[plugins.x.grants]\ntcp = [\"127.0.0.1:*\"]\n".to_string()),
        Just("[plugins.x.grants]\nhttp = [\"ftp://x\"]\n".to_string()),
        "\\[[a-z.]{0,10}\\]\n",
    ];
    (prop::collection::vec(line, 0..6), section).prop_map(|(lines, s)| lines.concat() + &s)
}
