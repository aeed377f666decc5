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
//! - `env`: get-proxy reads the variable `target`.

use std::cell::RefCell;
use std::hint::black_box;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "proxy-backend",
});

use exports::ytdlp::proxy::backend::Guest;
use ytdlp::proxy::types::{Failure, GetProxyError, Options, Proxy};

thread_local! {
    static INIT: RefCell<Options> = const { RefCell::new(Vec::new()) };
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
            _ => Ok(good()),
        }
    }

    fn report_success(_proxy_url: String, _options: Options) {}

    fn report_failure(_proxy_url: String, _failure: Failure, options: Options) {
        if call_opt(&options, "mode").as_deref() == Some("sleep") {
            std::thread::sleep(std::time::Duration::from_secs(10));
        }
    }
}

export!(Hostile);
