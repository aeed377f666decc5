//! Test fixture: a hostile backend (contract 0.2, every export). Option
//! `mode` (per call, else from init) picks the misdeed, in the spirit of
//! Extism's and Spin's adversarial components; `target` gives a path,
//! address, variable name or bad value for the modes that need one. Mode
//! `ok` (or none) behaves: hands out `use_proxy` (a URL, split into the
//! contract's record; `http://127.0.0.1:9` by default).
//!
//! Modes and where they strike:
//! - `loop`: infinite loop in get-proxy;
//! - `sleep`: sleeps 10 s in report-failure (a blocking host call);
//! - `hog`: allocates 1 GiB in get-proxy;
//! - `panic`: panics in get-proxy;
//! - `unreachable`: executes `unreachable` in get-proxy;
//! - `huge`: returns a 50 MB host name from get-proxy;
//! - `bad-url`: returns `target` as the proxy's host (0.2 has no URL: the
//!   host name is where anything can be smuggled; `--exec=...`,
//!   `file:///etc/passwd`, a newline);
//! - `bad-id`: returns `target` as the proxy's id (empty, too long, spaces);
//! - `bad-port`: returns port 0;
//! - `bad-timeout`: returns the timeout in `target` (0 by default);
//! - `bad-meta`: returns `target` as the region and as a tag;
//! - `bad-credentials`: returns `target` as the user name and password;
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
//!   message, stats rows with their proxy and metadata, describe after an
//!   init with `mode = escape`); init refuses with such a message when the
//!   init option `refuse` is `escape`. Admin calls always refuse with one.

use std::cell::RefCell;
use std::hint::black_box;

wit_bindgen::generate!({
    path: "../../../wit/proxy-0.2.wit",
    world: "proxy-backend-full",
});

use exports::ytdlp::proxy::admin::Guest as Admin;
use exports::ytdlp::proxy::backend::Guest;
use exports::ytdlp::proxy::describe::{Guest as Describe, OptionInfo, OptionScope, PluginInfo};
use exports::ytdlp::proxy::stats::Guest as Stats;
use ytdlp::proxy::types::{
    Credentials, Failure, GetProxyError, NoProxy, Options, PluginError, Proxy, ProxyMeta,
    ProxySpec, ProxyState, ProxyStats, Request, Scheme, Success,
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

/// The well-behaved answer: `use_proxy`, as the contract's record.
fn good() -> Result<Proxy, String> {
    let url = init_opt("use_proxy").unwrap_or_else(|| "http://127.0.0.1:9".to_string());
    let url = ytdlp_contract::proxy_url::validate(&url).map_err(|e| e.to_string())?;
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "socks4" => Scheme::Socks4,
        "socks4a" => Scheme::Socks4a,
        "socks5" => Scheme::Socks5,
        "socks5h" => Scheme::Socks5h,
        _ => Scheme::Http,
    };
    let (host, port) = url.host_and_port();
    Ok(Proxy {
        id: url.identity_id(),
        scheme,
        host,
        port,
        credentials: url.credentials().map(|(username, password)| Credentials {
            username,
            password: password.unwrap_or_default(),
        }),
        timeout_ms: 5_000,
        meta: ProxyMeta {
            region: None,
            tags: Vec::new(),
            tier: 0,
        },
    })
}

/// The good proxy with `f` applied: each `bad-*` mode breaks one field.
fn broken(f: impl FnOnce(&mut Proxy)) -> Result<Proxy, GetProxyError> {
    let mut p = good().map_err(GetProxyError::BackendUnavailable)?;
    f(&mut p);
    Ok(p)
}

struct Hostile;

impl Guest for Hostile {
    fn init(options: Options) -> Result<(), PluginError> {
        if opt(&options, "refuse").as_deref() == Some("escape") {
            return Err(PluginError::InvalidValue(
                ytdlp::proxy::types::InvalidValue {
                    key: "refuse".to_string(),
                    reason: format!("refused: {FORGED}"),
                },
            ));
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

    fn get_proxy(_request: Request, options: Options) -> Result<Proxy, GetProxyError> {
        let mode = call_opt(&options, "mode").unwrap_or_default();
        let target = call_opt(&options, "target").unwrap_or_default();
        match mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let v = black_box(vec![1u8; 1 << 30]);
                broken(|p| p.port = u16::from(v[v.len() - 1]))
            }
            "panic" => panic!("hostile plugin panics on purpose"),
            "unreachable" => {
                #[cfg(target_family = "wasm")]
                core::arch::wasm32::unreachable();
                #[cfg(not(target_family = "wasm"))]
                unreachable!()
            }
            "huge" => broken(|p| p.host = "x".repeat(black_box(50 << 20))),
            "bad-url" => broken(|p| p.host = target),
            "bad-id" => broken(|p| p.id = target),
            "bad-port" => broken(|p| p.port = 0),
            "bad-timeout" => broken(|p| p.timeout_ms = target.parse().unwrap_or(0)),
            "bad-meta" => broken(|p| {
                p.meta.region = Some(target.clone());
                p.meta.tags = vec![target];
            }),
            "bad-credentials" => broken(|p| {
                p.credentials = Some(Credentials {
                    username: target.clone(),
                    password: target,
                })
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
                broken(|_| {})
            }
            "count" => unavailable(format!("reports: {}", REPORTS.with(|r| *r.borrow()))),
            "escape" => Err(GetProxyError::NoProxyAvailable(NoProxy {
                message: format!("no proxy: {FORGED}"),
                retry_at_ms: None,
            })),
            _ => broken(|_| {}),
        }
    }

    fn report_success(_proxy_id: String, _request: Request, _outcome: Success, _options: Options) {}

    fn report_failure(_proxy_id: String, _request: Request, _failure: Failure, options: Options) {
        match call_opt(&options, "mode").as_deref() {
            Some("sleep") => std::thread::sleep(std::time::Duration::from_secs(10)),
            Some("sleep-short") => std::thread::sleep(std::time::Duration::from_millis(300)),
            _ => {}
        }
        REPORTS.with(|r| *r.borrow_mut() += 1);
    }
}

/// `s`, with the forged text after it when escaping.
fn text(escape: bool, s: &str) -> String {
    if escape {
        format!("{s}{FORGED}")
    } else {
        s.to_string()
    }
}

impl Stats for Hostile {
    fn get_stats(options: Options) -> Result<Vec<ProxyStats>, PluginError> {
        let escape = call_opt(&options, "mode").as_deref() == Some("escape");
        let mut proxy = good().map_err(PluginError::Unavailable)?;
        if escape {
            proxy.id = text(true, &proxy.id);
            proxy.host = text(true, &proxy.host);
            proxy.meta.region = Some(text(true, "DE"));
            proxy.meta.tags = vec![text(true, "tag")];
        }
        Ok(vec![ProxyStats {
            proxy,
            successes: 1,
            failures: 0,
            consecutive_failures: 0,
            state: ProxyState::Active,
            last_used_ms: None,
            extra: vec![(text(escape, "note"), text(escape, "fine"))],
        }])
    }
}

impl Admin for Hostile {
    fn add_proxies(_proxies: Vec<ProxySpec>, _options: Options) -> Result<u32, PluginError> {
        Err(PluginError::Unavailable(format!("no admin here: {FORGED}")))
    }

    fn remove_proxies(_ids: Vec<String>, _options: Options) -> Result<u32, PluginError> {
        Err(PluginError::Unsupported(format!("no admin here: {FORGED}")))
    }
}

impl Describe for Hostile {
    fn describe() -> PluginInfo {
        let escape = init_opt("mode").as_deref() == Some("escape");
        let o = |key: &str, help: &str| OptionInfo {
            key: key.to_string(),
            help: text(escape, help),
            scope: OptionScope::PerCall,
            secret: false,
            repeated: false,
        };
        PluginInfo {
            name: text(escape, "hostile"),
            version: text(escape, "0.0.0"),
            summary: text(escape, "a test fixture that misbehaves on purpose"),
            options: vec![
                o("mode", "the misdeed"),
                o("target", "what the misdeed aims at"),
                o("use_proxy", "the proxy handed out when behaving"),
                o("init", "`loop`: init never returns"),
                o("refuse", "`escape`: init refuses with escapes"),
            ],
        }
    }
}

export!(Hostile);
