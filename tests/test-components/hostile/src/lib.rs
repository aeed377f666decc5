//! Test fixture: a hostile backend. Option `mode` (per call, else from init)
//! picks the misdeed, in the spirit of Extism's and Spin's adversarial
//! components; `target` gives a path, address or variable name for the
//! modes that need one. Mode `ok` (or none) behaves: hands out `use_proxy`.
//!
//! Modes and where they strike:
//! - `loop`: infinite loop in get-proxy;
//! - `sleep`: sleeps 10 s in report-failure (a blocking host call);
//! - `hog`: allocates 1 GiB in get-proxy;
//! - `panic`: panics in get-proxy;
//! - `unreachable`: executes `unreachable` in get-proxy;
//! - `huge`: returns a 50 MB string from get-proxy;
//! - `bad-url`: returns the URL in `target` from get-proxy;
//! - `read-file`: get-proxy reads the file `target`, answers
//!   `backend-unavailable("read ok: N bytes")` or `("read denied: ...")`;
//! - `write-file`: get-proxy writes `target`, answers likewise;
//! - `tcp`: get-proxy connects to `target` (host:port);
//! - `env`: get-proxy reads the variable `target`;
//! - `pollables`: get-proxy opens WASI pollables until the host says no;
//! - `stderr-flood`: get-proxy writes 20,000 lines to stderr, then behaves;
//! - `count`: get-proxy answers `backend-unavailable("reports: N")`, N
//!   the report-failure calls this instance finished;
//! - `sleep-short` (report-failure): sleeps 300 ms, then counts the report;
//! - init option `init` = `loop`: init never returns;
//! - `escape`: every string it returns carries terminal escapes, NUL and a
//!   newline that would forge a line of the host's output (no-proxy
//!   message, stats rows); init refuses with such a message when the init
//!   option `refuse` is `escape`.

use std::cell::RefCell;
use std::hint::black_box;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "proxy-backend-full",
});

use exports::ytdlp::proxy::admin::Guest as Admin;
use exports::ytdlp::proxy::backend::Guest;
use exports::ytdlp::proxy::stats::Guest as Stats;
use ytdlp::proxy::types::{
    Failure, GetProxyError, NoProxy, Options, Proxy, ProxyState, ProxyStats,
};

/// What `escape` puts in every string: a colour escape, a NUL, and a
/// newline followed by a line the host itself might print.
const FORGED: &str =
    "\u{1b}[31mred\u{0} and\ndone http://127.0.0.1/forged.mp4 -> /etc/passwd\u{1b}]0;title\u{7}";

thread_local! {
    static INIT: RefCell<Options> = const { RefCell::new(Vec::new()) };
    static REPORTS: RefCell<u64> = const { RefCell::new(0) };
}

fn opt(options: &Options, key: &str) -> Option<String> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn init_opt(key: &str) -> Option<String> {
    INIT.with(|i| opt(&i.borrow(), key))
}

/// A call's option, else init's.
fn call_opt(options: &Options, key: &str) -> Option<String> {
    opt(options, key).or_else(|| init_opt(key))
}

fn unavailable(msg: String) -> Result<Proxy, GetProxyError> {
    Err(GetProxyError::BackendUnavailable(msg))
}

struct Hostile;

impl Guest for Hostile {
    fn init(options: Options) -> Result<(), String> {
        if opt(&options, "refuse").as_deref() == Some("escape") {
            return Err(format!("refused: {FORGED}"));
        }
        if opt(&options, "init").as_deref() == Some("loop") {
            let mut n: u64 = 0;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        INIT.with(|i| *i.borrow_mut() = options);
        Ok(())
    }

    fn get_proxy(options: Options) -> Result<Proxy, GetProxyError> {
        let mode = call_opt(&options, "mode").unwrap_or_default();
        let target = call_opt(&options, "target").unwrap_or_default();
        let good = || Proxy {
            url: init_opt("use_proxy").unwrap_or_else(|| "http://127.0.0.1:9".to_string()),
            timeout_ms: 5_000,
        };
        match mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let v = black_box(vec![1u8; 1 << 30]);
                Ok(Proxy {
                    url: format!("http://127.0.0.1:{}", v[v.len() - 1]),
                    timeout_ms: 5_000,
                })
            }
            "panic" => panic!("hostile plugin panics on purpose"),
            "unreachable" => {
                #[cfg(target_family = "wasm")]
                core::arch::wasm32::unreachable();
                #[cfg(not(target_family = "wasm"))]
                unreachable!()
            }
            "huge" => Ok(Proxy {
                url: "x".repeat(black_box(50 << 20)),
                timeout_ms: 5_000,
            }),
            "bad-url" => Ok(Proxy {
                url: target,
                timeout_ms: 5_000,
            }),
            "read-file" => match std::fs::read(&target) {
                Ok(b) => unavailable(format!("read ok: {} bytes", b.len())),
                Err(e) => unavailable(format!("read denied: {e}")),
            },
            "write-file" => match std::fs::write(&target, b"written by a plugin") {
                Ok(()) => unavailable("write ok".to_string()),
                Err(e) => unavailable(format!("write denied: {e}")),
            },
            "tcp" => match std::net::TcpStream::connect(&target) {
                Ok(_) => unavailable("connect ok".to_string()),
                Err(e) => unavailable(format!("connect denied: {e}")),
            },
            "env" => match std::env::var(&target) {
                Ok(v) => unavailable(format!("env ok: {v}")),
                Err(e) => unavailable(format!("env denied: {e}")),
            },
            "pollables" => {
                #[cfg(target_family = "wasm")]
                loop {
                    // Each is a resource in the host's table, never dropped.
                    std::mem::forget(wasi::clocks::monotonic_clock::subscribe_duration(
                        1_000_000_000,
                    ));
                }
                #[cfg(not(target_family = "wasm"))]
                unavailable("pollables need wasm".to_string())
            }
            "stderr-flood" => {
                for i in 0..20_000 {
                    eprintln!("hostile plugin stderr line {i}");
                }
                Ok(good())
            }
            "count" => unavailable(format!("reports: {}", REPORTS.with(|r| *r.borrow()))),
            "escape" => Err(GetProxyError::NoProxyAvailable(NoProxy {
                message: format!("no proxy: {FORGED}"),
                retry_at_ms: None,
            })),
            _ => Ok(good()),
        }
    }

    fn report_success(_proxy_url: String, _options: Options) {}

    fn report_failure(_proxy_url: String, _failure: Failure, options: Options) {
        match call_opt(&options, "mode").as_deref() {
            Some("sleep") => std::thread::sleep(std::time::Duration::from_secs(10)),
            Some("sleep-short") => std::thread::sleep(std::time::Duration::from_millis(300)),
            _ => {}
        }
        REPORTS.with(|r| *r.borrow_mut() += 1);
    }
}

impl Stats for Hostile {
    fn get_stats(options: Options) -> Result<Vec<ProxyStats>, String> {
        let escape = call_opt(&options, "mode").as_deref() == Some("escape");
        let text = |s: &str| {
            if escape {
                format!("{s}{FORGED}")
            } else {
                s.to_string()
            }
        };
        Ok(vec![ProxyStats {
            url: text("http://127.0.0.1:9"),
            successes: 1,
            failures: 0,
            consecutive_failures: 0,
            state: ProxyState::Active,
            last_used_ms: None,
            extra: vec![(text("note"), text("fine"))],
        }])
    }
}

impl Admin for Hostile {
    fn add_proxies(_urls: Vec<String>, _options: Options) -> Result<u32, String> {
        Err(format!("no admin here: {FORGED}"))
    }

    fn remove_proxies(_urls: Vec<String>, _options: Options) -> Result<u32, String> {
        Err(format!("no admin here: {FORGED}"))
    }
}

export!(Hostile);
