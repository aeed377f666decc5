//! A plugin's stderr: each line goes to the host's log (as a warning that
//! names the plugin, cleaned of control characters and secrets, at most
//! [`LINES_PER_SECOND`] a second), and the last few KiB are kept for the
//! message of a trap. Writes never fail, so a chatty plugin cannot trap
//! itself, nor flood the host's log.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much of a plugin's stderr the host keeps (for panic messages).
const STDERR_TAIL: usize = 16 * 1024;
/// Longest line of a plugin's stderr that reaches the host's log.
const STDERR_LINE: usize = 500;
/// Lines of one plugin's stderr logged per second at most; the rest are
/// counted and the count logged.
pub const LINES_PER_SECOND: u32 = 20;

#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<std::sync::Mutex<GuestLogInner>>,
}

struct GuestLogInner {
    plugin: String,
    line: Vec<u8>,
    tail: Vec<u8>,
    window: Instant,
    logged: u32,
    suppressed: u64,
}

impl GuestLogInner {
    fn log_line(&mut self, text: &str) {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.flush_suppressed();
            self.window = now;
            self.logged = 0;
        }
        if self.logged < LINES_PER_SECOND {
            self.logged += 1;
            let text = ytdlp_host_text::clean(text);
            let text = &text[..text.floor_char_boundary(STDERR_LINE)];
            tracing::warn!("plugin `{}`: {text}", self.plugin);
        } else {
            self.suppressed += 1;
        }
    }

    fn flush_suppressed(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(
                "plugin `{}`: {} more stderr line(s) not logged (at most {LINES_PER_SECOND} a second)",
                self.plugin,
                self.suppressed
            );
            self.suppressed = 0;
        }
    }
}

impl Drop for GuestLogInner {
    fn drop(&mut self) {
        self.flush_suppressed();
    }
}

impl GuestLog {
    pub fn new(plugin: &str) -> GuestLog {
        GuestLog {
            inner: Arc::new(std::sync::Mutex::new(GuestLogInner {
                plugin: plugin.to_string(),
                line: Vec::new(),
                tail: Vec::new(),
                window: Instant::now(),
                logged: 0,
                suppressed: 0,
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
                    g.log_line(text);
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
