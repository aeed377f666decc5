//! Test fixture: a backend (contract 0.2) that also imports an interface
//! no host provides, so loading it must fail naming that import.

wit_bindgen::generate!({
    inline: "
        package fixture:foreign@0.1.0;
        interface secret-store {
            fetch: func(key: string) -> string;
        }
        world foreign {
            import secret-store;
            export ytdlp:proxy/backend@0.2.0;
        }
    ",
    path: "../../../wit/proxy-0.2.wit",
    world: "fixture:foreign/foreign@0.1.0",
    generate_all,
});

use exports::ytdlp::proxy::backend::Guest;
use ytdlp::proxy::types::{
    Failure, GetProxyError, Options, PluginError, Proxy, ProxyMeta, Request, Scheme, Success,
};

struct Foreign;

impl Guest for Foreign {
    fn init(_options: Options) -> Result<(), PluginError> {
        Ok(())
    }

    fn get_proxy(_request: Request, _options: Options) -> Result<Proxy, GetProxyError> {
        let host = fixture::foreign::secret_store::fetch("proxy-host");
        Ok(Proxy {
            id: "foreign".to_string(),
            scheme: Scheme::Http,
            host,
            port: 3128,
            credentials: None,
            timeout_ms: 1_000,
            meta: ProxyMeta {
                region: None,
                tags: Vec::new(),
                tier: 0,
            },
        })
    }

    fn report_success(_proxy_id: String, _request: Request, _outcome: Success, _options: Options) {}

    fn report_failure(_proxy_id: String, _request: Request, _failure: Failure, _options: Options) {}
}

export!(Foreign);
