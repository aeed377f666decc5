//! Test fixture: a backend without stats that hands out the proxy named by
//! the last `use_proxy` option of the call (or of init), so tests can see
//! that per-download options reach a user plugin.

use std::cell::RefCell;

wit_bindgen::generate!({
    path: "../../../wit/proxy-0.1.wit",
    world: "proxy-backend",
});

use exports::ytdlp::proxy::backend::Guest;
use ytdlp::proxy::types::{Failure, GetProxyError, NoProxy, Options, Proxy};

thread_local! {
    static INIT: RefCell<Options> = const { RefCell::new(Vec::new()) };
}

fn last<'a>(options: &'a Options, key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

struct Echo;

impl Guest for Echo {
    fn init(options: Options) -> Result<(), String> {
        if last(&options, "refuse").is_some() {
            return Err("refused by option `refuse`".to_string());
        }
        INIT.with(|i| *i.borrow_mut() = options);
        Ok(())
    }

    fn get_proxy(options: Options) -> Result<Proxy, GetProxyError> {
        let url = last(&options, "use_proxy")
            .map(str::to_string)
            .or_else(|| INIT.with(|i| last(&i.borrow(), "use_proxy").map(str::to_string)));
        match url {
            Some(url) => Ok(Proxy {
                url,
                timeout_ms: 5_000,
            }),
            None => Err(GetProxyError::NoProxyAvailable(NoProxy {
                message: "no `use_proxy` option".to_string(),
                retry_at_ms: None,
            })),
        }
    }

    fn report_success(_proxy_url: String, _options: Options) {}

    fn report_failure(_proxy_url: String, _failure: Failure, _options: Options) {}
}

export!(Echo);
