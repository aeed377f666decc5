//! Fail fast: before a yt-dlp run (0.5-1 s of Python start-up, then 2 s for
//! a refused port and 4-22 s for a black hole) the host checks the proxy
//! itself: a TCP connect, then the protocol's own greeting (the SOCKS
//! handshake, with authentication when the URL carries credentials; an HTTP
//! proxy's answer to a request that reaches no site). Results are cached
//! briefly, so a batch does not greet the same proxy for every URL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ytdlp_contract::FailureKind;
use ytdlp_contract::ProxyUrl;

/// How long a result is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(10);

/// A failed check: the kind to report and why.
pub type Failure = (FailureKind, String);

/// A check's result and when it was made.
type Checked = (Instant, Result<(), Failure>);

/// Pre-flight checks with a small result cache.
pub struct Preflight {
    timeout: Duration,
    cache: Mutex<HashMap<String, Checked>>,
}

impl Preflight {
    pub fn new(timeout: Duration) -> Preflight {
        Preflight {
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `proxy`, or returns the cached result of a recent check.
    pub async fn check(&self, proxy: &ProxyUrl) -> Result<(), Failure> {
        let key = proxy.expose().to_string();
        if let Some((at, r)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && at.elapsed() < CACHE_FOR
        {
            return r.clone();
        }
        let result = check(proxy, self.timeout).await;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        }
        cache.insert(key, (Instant::now(), result.clone()));
        result
    }
}

/// One check, uncached.
pub async fn check(proxy: &ProxyUrl, timeout: Duration) -> Result<(), Failure> {
    let url = url::Url::parse(proxy.expose())
        .map_err(|e| (FailureKind::ProxyConnect, format!("bad proxy URL: {e}")))?;
    let scheme = url.scheme().to_string();
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port().unwrap_or(match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => 1080,
    });
    let user = percent_decode(url.username());
    let pass = url.password().map(percent_decode);
    let started = Instant::now();
    let deadline = |what: &str| {
        (
            FailureKind::ProxyTimeout,
            format!("pre-flight: no {what} within {} ms", timeout.as_millis()),
        )
    };
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| deadline("name resolution"))?
            .map_err(|e| {
                (
                    FailureKind::ProxyConnect,
                    format!("pre-flight: cannot resolve {host}: {e}"),
                )
            })?
            .collect();
    let addr = *addrs.first().ok_or_else(|| {
        (
            FailureKind::ProxyConnect,
            format!("pre-flight: {host} has no address"),
        )
    })?;
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| deadline("TCP connection"))?
        .map_err(|e| {
            (
                FailureKind::ProxyConnect,
                format!("pre-flight: cannot connect: {e}"),
            )
        })?;
    let left = timeout.saturating_sub(started.elapsed());
    let greeting = async {
        match scheme.as_str() {
            "socks5" | "socks5h" => socks5(&mut stream, &user, pass.as_deref()).await,
            "socks4" | "socks4a" => socks4(&mut stream, &user).await,
            "http" => http(&mut stream, &user, pass.as_deref()).await,
            // TLS to the proxy itself: the TCP connection is what we check.
            _ => Ok(()),
        }
    };
    tokio::time::timeout(left, greeting)
        .await
        .map_err(|_| deadline("answer to the proxy greeting"))?
}

fn io_err(e: std::io::Error) -> Failure {
    (FailureKind::ProxyConnect, format!("pre-flight: {e}"))
}

async fn socks5(s: &mut TcpStream, user: &str, pass: Option<&str>) -> Result<(), Failure> {
    let with_auth = !user.is_empty();
    let hello: &[u8] = if with_auth { &[5, 2, 0, 2] } else { &[5, 1, 0] };
    s.write_all(hello).await.map_err(io_err)?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.map_err(io_err)?;
    match reply {
        [5, 0] => Ok(()),
        [5, 2] if with_auth => {
            let pass = pass.unwrap_or("");
            let mut req = vec![1, user.len().min(255) as u8];
            req.extend_from_slice(&user.as_bytes()[..user.len().min(255)]);
            req.push(pass.len().min(255) as u8);
            req.extend_from_slice(&pass.as_bytes()[..pass.len().min(255)]);
            s.write_all(&req).await.map_err(io_err)?;
            let mut status = [0u8; 2];
            s.read_exact(&mut status).await.map_err(io_err)?;
            if status[1] == 0 {
                Ok(())
            } else {
                Err((
                    FailureKind::ProxyAuth,
                    "pre-flight: the SOCKS proxy refused the credentials".to_string(),
                ))
            }
        }
        [5, 0xff] | [5, 2] => Err((
            FailureKind::ProxyAuth,
            "pre-flight: the SOCKS proxy accepts none of the offered authentication methods"
                .to_string(),
        )),
        other => Err((
            FailureKind::ProxyConnect,
            format!("pre-flight: not a SOCKS5 answer: {other:?}"),
        )),
    }
}

async fn socks4(s: &mut TcpStream, user: &str) -> Result<(), Failure> {
    // CONNECT to 0.0.0.1:1, an address no proxy can reach: any well-formed
    // answer (granted or rejected) shows the proxy is alive.
    let mut req = vec![4, 1, 0, 1, 0, 0, 0, 1];
    req.extend_from_slice(user.as_bytes());
    req.push(0);
    s.write_all(&req).await.map_err(io_err)?;
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).await.map_err(io_err)?;
    if reply[0] == 0 && (0x5a..=0x5d).contains(&reply[1]) {
        Ok(())
    } else {
        Err((
            FailureKind::ProxyConnect,
            format!("pre-flight: not a SOCKS4 answer: {:?}", &reply[..2]),
        ))
    }
}

async fn http(s: &mut TcpStream, user: &str, pass: Option<&str>) -> Result<(), Failure> {
    // A request for the proxy itself: `OPTIONS *` reaches no site.
    let mut req = String::from("OPTIONS * HTTP/1.1\r\nHost: ytdlp-host-preflight.invalid\r\n");
    if !user.is_empty() {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", pass.unwrap_or("")));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(io_err)?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).await.map_err(io_err)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    let status: Option<u16> = head
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok());
    match status {
        Some(407) => Err((
            FailureKind::ProxyAuth,
            "pre-flight: the proxy wants (other) credentials (407)".to_string(),
        )),
        Some(_) => Ok(()),
        None if got == 0 => Err((
            FailureKind::ProxyConnect,
            "pre-flight: the proxy closed the connection without answering".to_string(),
        )),
        None => Err((
            FailureKind::ProxyConnect,
            "pre-flight: not an HTTP answer".to_string(),
        )),
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss"), "p@ss");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
