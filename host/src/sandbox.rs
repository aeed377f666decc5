//! The sandbox every plugin runs in: the wasmtime engine and its epoch
//! ticker, the WASI linker with denying defaults, the per-plugin grants
//! (directories, TCP, HTTP, environment) and the per-plugin limits (memory,
//! call deadlines).
//!
//! Default deny: no preopened directories, no sockets, no name lookup, no
//! outbound HTTP, no environment variables, no arguments, stdin closed.
//! Clocks and randomness are allowed. Every WASI interface the common guest
//! toolchains import is still linked, so plugins instantiate and get a
//! clean "denied" error inside instead of a link failure.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::config::{Grants, LimitsConfig};

/// How often the epoch advances. Deadlines are whole ticks, so a call is
/// interrupted at most about one tick after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a plugin's stderr the host keeps (for panic messages).
const STDERR_TAIL: usize = 16 * 1024;
/// Longest line of a plugin's stderr that reaches the host's log.
const STDERR_LINE: usize = 500;

/// The engine all plugins share. Its settings are part of the compile
/// cache key (an artifact only loads into an identically configured engine).
pub fn engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the wasmtime engine")
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // park, not sleep: dropping the ticker unparks it, so
                    // a process does not wait up to a tick to exit.
                    std::thread::park_timeout(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("cannot start the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Epoch ticks for a deadline: rounded up, at least one.
pub fn deadline_ticks(ms: u64) -> u64 {
    ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1)
}

/// The linker for plugins: WASI 0.2 (filesystem, sockets, clocks, random,
/// cli, io) and wasi:http, all gated by the store's grants.
pub fn linker(engine: &Engine) -> Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("cannot link WASI into the plugin linker")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("cannot link wasi:http into the plugin linker")?;
    // The contract's types interface holds only types, but some toolchains
    // import it as an instance all the same.
    crate::backend::bindings::ytdlp::proxy::types::add_to_linker::<
        PluginState,
        wasmtime::component::HasSelf<PluginState>,
    >(&mut linker, |s| s)
    .map_err(anyhow::Error::from)
    .context("cannot link ytdlp:proxy/types into the plugin linker")?;
    Ok(linker)
}

/// The data of one plugin's Store.
pub struct PluginState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: HttpGrants,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) stderr: GuestLog,
}

impl crate::backend::bindings::ytdlp::proxy::types::Host for PluginState {}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl PluginState {
    /// A fresh state granting exactly `grants`, limited by `limits`.
    pub fn new(plugin: &str, grants: &Grants, limits: &LimitsConfig) -> Result<PluginState> {
        let stderr = GuestLog::new(plugin);
        let mut b = WasiCtxBuilder::new();
        b.stderr(stderr.clone());
        for name in &grants.env {
            if let Ok(value) = std::env::var(name) {
                b.env(name, value);
            }
        }
        for dir in &grants.dirs {
            let perms = if dir.rw {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            b.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open granted directory {}", dir.host.display()))?;
        }
        let tcp = TcpGrants::parse(&grants.tcp)?;
        if !tcp.rules.is_empty() {
            b.allow_tcp(true);
            b.allow_ip_name_lookup(tcp.needs_name_lookup);
            let tcp = Arc::new(tcp);
            b.socket_addr_check(move |addr, usage| {
                let ok = tcp.allows(addr, usage);
                Box::pin(async move { ok })
            });
        } else {
            b.allow_tcp(false);
        }
        b.allow_udp(false);
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limits.memory_mib << 20).unwrap_or(usize::MAX))
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        Ok(PluginState {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            http_hooks: HttpGrants::parse(&grants.http)?,
            table: ResourceTable::new(),
            limits,
            stderr,
        })
    }
}

/// A plugin's stderr: each line goes to the host's log (as a warning that
/// names the plugin), and the last few KiB are kept for the message of a
/// trap. Writes never fail, so a chatty plugin cannot trap itself.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<std::sync::Mutex<GuestLogInner>>,
}

struct GuestLogInner {
    plugin: String,
    line: Vec<u8>,
    tail: Vec<u8>,
}

impl GuestLog {
    pub fn new(plugin: &str) -> GuestLog {
        GuestLog {
            inner: Arc::new(std::sync::Mutex::new(GuestLogInner {
                plugin: plugin.to_string(),
                line: Vec::new(),
                tail: Vec::new(),
            })),
        }
    }

    /// The last bytes written, as text.
    pub fn tail(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&g.tail).into_owned()
    }

    fn write(&self, buf: &[u8]) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.tail.extend_from_slice(buf);
        if g.tail.len() > 2 * STDERR_TAIL {
            let cut = g.tail.len() - STDERR_TAIL;
            g.tail.drain(..cut);
        }
        for &b in buf {
            if b == b'\n' {
                let line = std::mem::take(&mut g.line);
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    let text = crate::proxy_url::mask(text);
                    let text = &text[..text.floor_char_boundary(STDERR_LINE)];
                    tracing::warn!("plugin `{}`: {text}", g.plugin);
                }
            } else if g.line.len() < STDERR_LINE * 4 {
                g.line.push(b);
            }
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestLog {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Checks grants at config time, so a bad one refuses the whole config.
pub fn validate_grants(grants: &Grants) -> Result<()> {
    TcpGrants::parse(&grants.tcp)?;
    HttpGrants::parse(&grants.http)?;
    for name in &grants.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            bail!("env: `{name}` is not a variable name");
        }
    }
    for dir in &grants.dirs {
        if !dir.host.is_dir() {
            bail!("dirs: {} is not a directory", dir.host.display());
        }
        if !dir.guest.starts_with('/') {
            bail!("dirs: guest path `{}` must be absolute", dir.guest);
        }
    }
    Ok(())
}

/// Outbound TCP grants: resolved addresses, port or any port.
#[derive(Debug, Default)]
struct TcpGrants {
    rules: Vec<(IpAddr, Option<u16>)>,
    needs_name_lookup: bool,
}

impl TcpGrants {
    fn parse(entries: &[String]) -> Result<TcpGrants> {
        let mut out = TcpGrants::default();
        for entry in entries {
            let (host, port) = entry
                .rsplit_once(':')
                .with_context(|| format!("tcp: `{entry}` is not host:port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = match port {
                "*" => None,
                p => Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .with_context(|| format!("tcp: `{entry}`: port must be 1-65535 or *"))?,
                ),
            };
            match host.parse::<IpAddr>() {
                Ok(ip) => out.rules.push((ip, port)),
                Err(_) => {
                    out.needs_name_lookup = true;
                    let addrs = (host, port.unwrap_or(1))
                        .to_socket_addrs()
                        .with_context(|| format!("tcp: cannot resolve `{host}`"))?;
                    out.rules.extend(addrs.map(|a| (a.ip(), port)));
                }
            }
        }
        Ok(out)
    }

    fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        match usage {
            // The implicit bind before a connect asks for the wildcard
            // address and port 0: needed to connect at all, grants nothing.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
            SocketAddrUse::TcpConnect => self
                .rules
                .iter()
                .any(|(ip, port)| *ip == addr.ip() && port.is_none_or(|p| p == addr.port())),
            _ => false,
        }
    }
}

/// Outbound HTTP grants: exact origins. wasi:http does not go through the
/// socket check, so requests are filtered here by scheme, host and port.
#[derive(Debug, Default)]
pub(crate) struct HttpGrants {
    origins: Vec<(String, String, u16)>,
}

impl HttpGrants {
    fn parse(entries: &[String]) -> Result<HttpGrants> {
        let mut origins = Vec::new();
        for entry in entries {
            let url = url::Url::parse(entry)
                .with_context(|| format!("http: `{entry}` is not scheme://host[:port]"))?;
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || !matches!(url.path(), "" | "/")
                || url.query().is_some()
            {
                bail!("http: `{entry}` must be http(s)://host[:port] with nothing after it");
            }
            origins.push((
                url.scheme().to_string(),
                url.host_str().unwrap_or_default().to_ascii_lowercase(),
                url.port_or_known_default().unwrap_or(80),
            ));
        }
        Ok(HttpGrants { origins })
    }

    fn allows(&self, uri: &http::Uri) -> bool {
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
        self.origins.iter().any(|(s, h, p)| {
            s == scheme && h.trim_start_matches('[').trim_end_matches(']') == host && *p == port
        })
    }
}

impl WasiHttpHooks for HttpGrants {
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
    fn tcp_grants_allow_exactly_what_they_name() {
        let g = TcpGrants::parse(&["127.0.0.1:6379".into(), "[::1]:*".into()]).unwrap();
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(g.allows(a("127.0.0.1:6379"), SocketAddrUse::TcpConnect));
        assert!(!g.allows(a("127.0.0.1:6380"), SocketAddrUse::TcpConnect));
        assert!(!g.allows(a("127.0.0.2:6379"), SocketAddrUse::TcpConnect));
        assert!(g.allows(a("[::1]:1"), SocketAddrUse::TcpConnect));
        assert!(g.allows(a("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(!g.allows(a("127.0.0.1:80"), SocketAddrUse::TcpBind));
        assert!(!g.allows(a("127.0.0.1:6379"), SocketAddrUse::UdpBind));
    }

    #[test]
    fn bad_grants_are_refused() {
        for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:http"] {
            assert!(TcpGrants::parse(&[bad.into()]).is_err(), "{bad}");
        }
        for bad in ["ftp://h", "http://h/path", "h:80"] {
            assert!(HttpGrants::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_grants_match_scheme_host_and_port() {
        let g = HttpGrants::parse(&["http://127.0.0.1:8080".into(), "https://api.example".into()])
            .unwrap();
        let u = |s: &str| s.parse::<http::Uri>().unwrap();
        assert!(g.allows(&u("http://127.0.0.1:8080/proxy")));
        assert!(!g.allows(&u("http://127.0.0.1:8081/proxy")));
        assert!(!g.allows(&u("https://127.0.0.1:8080/proxy")));
        assert!(g.allows(&u("https://API.example/x")));
        assert!(!g.allows(&u("http://api.example/x")));
    }

    #[test]
    fn deadlines_round_up_to_ticks() {
        assert_eq!(deadline_ticks(0), 1);
        assert_eq!(deadline_ticks(10), 1);
        assert_eq!(deadline_ticks(11), 2);
        assert_eq!(deadline_ticks(500), 50);
    }
}
