//! ytdlp-host's service (`ytdlp-host serve`): the HTTP API ([`router`])
//! over the download queue, hot reload of the backend plugin when its file
//! changes, and a graceful shutdown.

pub mod router;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ytdlp_host_config::BUNDLED_BACKEND;
use ytdlp_host_core::{Host, HostBuilder, Limits, PluginSource};

pub use router::router;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port).
    pub listen: String,
    /// Downloads running at once.
    pub max_concurrent: usize,
    /// Downloads waiting or running at most; more get 503.
    pub queue_limit: usize,
    /// On shutdown, how long running downloads may finish.
    pub grace: Duration,
}

/// Runs the service until `shutdown` resolves (it yields the signal's name,
/// for the log), then stops taking work and drains for the grace period.
/// Prints `listening on http://ADDR` once bound.
pub async fn serve(
    builder: Arc<HostBuilder>,
    options: ServeOptions,
    shutdown: impl Future<Output = &'static str> + Send + 'static,
) -> Result<()> {
    let downloader = builder.downloader().await?;
    let host = Host::new(
        downloader,
        Limits {
            concurrency: options.max_concurrent.max(1),
            queue: options.queue_limit.max(1),
        },
    );
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    // One line a script can wait for.
    println!("listening on http://{addr}");
    let _watcher = watch_plugins(builder.clone(), host.clone());
    let app = router(host.clone(), builder.backend_name().to_string());
    let grace = options.grace;
    let stopping = host.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let signal = shutdown.await;
            tracing::warn!(
                "{signal}: not taking new downloads; waiting up to {} s for {} running",
                grace.as_secs(),
                stopping.pending()
            );
            let killed = stopping.shutdown(grace).await;
            if killed > 0 {
                tracing::warn!("cancelled {killed} download(s) at the end of the grace period");
            }
        })
        .await
        .context("the HTTP server failed")?;
    Ok(())
}

/// Watches the plugin directory: a changed or new `.wasm` of the configured
/// backend is checked and swapped in for new downloads (running ones keep
/// the old instance); a broken one leaves the old one serving.
fn watch_plugins(builder: Arc<HostBuilder>, host: Host) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let backend = builder.backend_name().to_string();
    if backend == BUNDLED_BACKEND {
        return None; // embedded in the binary: nothing to watch
    }
    let dir = builder.plugin_dir_path();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                for p in event.paths {
                    let _ = tx.send(p);
                }
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("cannot watch the plugin directory (no hot reload): {e}");
                return None;
            }
        };
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!("cannot watch {} (no hot reload): {e}", dir.display());
        return None;
    }
    let target = ytdlp_host_core::builder::plugin_file(&dir, &backend);
    tokio::spawn(async move {
        while let Some(path) = rx.recv().await {
            if !is_same_file(&path, &target) {
                continue;
            }
            // Let a copy in progress finish: wait for a quiet moment.
            loop {
                match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            match builder.start_backend().await {
                Ok(b) => {
                    host.downloader()
                        .set_source(Some(Arc::new(PluginSource::new(b))));
                    tracing::warn!(
                        "reloaded plugin `{backend}` from {}; new downloads use it",
                        target.display()
                    );
                }
                Err(e) => tracing::warn!(
                    "plugin `{backend}` changed but the new file cannot be used, keeping the old one: {e}"
                ),
            }
        }
    });
    Some(watcher)
}

fn is_same_file(a: &Path, b: &Path) -> bool {
    a.file_name() == b.file_name()
}
