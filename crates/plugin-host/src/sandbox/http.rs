//! Outbound HTTP: exact origins. wasi:http does not go through the socket
//! check, so requests are filtered here by scheme, host and port.

use anyhow::Result;
use ytdlp_host_config::HttpOrigin;

#[derive(Debug, Default, Clone)]
pub struct HttpPolicy {
    origins: Vec<HttpOrigin>,
}

impl HttpPolicy {
    pub fn parse(entries: &[String]) -> Result<HttpPolicy> {
        let origins = entries
            .iter()
            .map(|e| HttpOrigin::parse(e))
            .collect::<Result<_>>()?;
        Ok(HttpPolicy { origins })
    }

    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        self.origins
            .iter()
            .any(|o| o.scheme == scheme && o.host == host && o.port == port)
    }
}

impl wasmtime_wasi_http::WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        if !self.allows(request.uri()) {
            tracing::debug!(uri = %request.uri(), "plugin HTTP request denied (no grant)");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_grants_match_scheme_host_and_port() {
        let g = HttpPolicy::parse(&["http://127.0.0.1:8080".into(), "https://api.example".into()])
            .unwrap();
        let u = |s: &str| s.parse::<http::Uri>().unwrap();
        assert!(g.allows(&u("http://127.0.0.1:8080/proxy")));
        assert!(!g.allows(&u("http://127.0.0.1:8081/proxy")));
        assert!(!g.allows(&u("https://127.0.0.1:8080/proxy")));
        assert!(g.allows(&u("https://API.example/x")));
        assert!(!g.allows(&u("http://api.example/x")));
    }
}
