//! Test fixture: a backend that also imports an interface no host provides.

wit_bindgen::generate!({
    inline: "
        package fixture:foreign@0.1.0;
        interface secret-store {
            fetch: func(key: string) -> string;
        }
        world foreign {
            import secret-store;
            export ytdlp:proxy/backend@0.1.0;
        }
    ",
    path: "../../../wit/proxy-0.1.wit",
    world: "fixture:foreign/foreign@0.1.0",
    generate_all,
});

use exports::ytdlp::proxy::backend::Guest;
use ytdlp::proxy::types::{Failure, GetProxyError, Options, Proxy};

struct Foreign;

impl Guest for Foreign {
    fn init(_options: Options) -> Result<(), String> {
        Ok(())
    }

    fn get_proxy(_options: Options) -> Result<Proxy, GetProxyError> {
        let url = fixture::foreign::secret_store::fetch("proxy");
        Ok(Proxy {
            url,
            timeout_ms: 1_000,
        })
    }

    fn report_success(_proxy_url: String, _options: Options) {}

    fn report_failure(_proxy_url: String, _failure: Failure, _options: Options) {}
}

export!(Foreign);
