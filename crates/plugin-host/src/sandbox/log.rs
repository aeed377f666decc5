//! A plugin's stderr: each line goes to the host's log (as a warning that
//! names the plugin), and the last few KiB are kept for the message of a
//! trap. Writes never fail, so a chatty plugin cannot trap itself.

use std::sync::Arc;

/// How much of a plugin's stderr the host keeps (for panic messages).
const STDERR_TAIL: usize = 16 * 1024;
/// Longest line of a plugin's stderr that reaches the host's log.
const STDERR_LINE: usize = 500;

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
                    let text = ytdlp_contract::proxy_url::mask(text);
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
