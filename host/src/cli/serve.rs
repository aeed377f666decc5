//! `ytdlp-host serve`: the HTTP API, hot reload of the backend plugin, and
//! a graceful shutdown on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::download::{RunOverrides, build_downloader};
use super::{App, ServeArgs};
use crate::host::{Host, Limits};
use crate::service;

pub(crate) async fn run(ctx: Arc<App>, args: ServeArgs) -> Result<ExitCode> {
    let overrides = RunOverrides {
        jobs: args.max_concurrent,
        ..RunOverrides::default()
    };
    let downloader = build_downloader(&ctx, &overrides).await?;
    let host = Host::new(
        downloader,
        Limits {
            concurrency: args.max_concurrent.max(1),
            queue: args.queue_limit.max(1),
        },
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // One line a script can wait for.
    println!("listening on http://{addr}");
    let _watcher = watch_plugins(ctx.clone(), host.clone());
    let app = service::router(host.clone(), ctx.backend.clone());
    let grace = Duration::from_secs(args.grace_secs);
    let stopping = host.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let signal = super::shutdown_signal().await;
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
    Ok(ExitCode::SUCCESS)
}

/// Watches the plugin directory: a changed or new `.wasm` of the configured
/// backend is checked and swapped in for new downloads (running ones keep
/// the old instance); a broken one leaves the old one serving.
fn watch_plugins(ctx: Arc<App>, host: Host) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    if ctx.backend == crate::config::BUNDLED_BACKEND {
        return None; // embedded in the binary: nothing to watch
    }
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
    if let Err(e) = watcher.watch(&ctx.plugin_dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(
            "cannot watch {} (no hot reload): {e}",
            ctx.plugin_dir.display()
        );
        return None;
    }
    let target = ctx.plugin_dir.join(format!("{}.wasm", ctx.backend));
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
            match ctx.start_backend().await {
                Ok(b) => {
                    host.downloader()
                        .set_backend(Some(Arc::new(tokio::sync::Mutex::new(b))));
                    tracing::warn!(
                        "reloaded plugin `{}` from {}; new downloads use it",
                        ctx.backend,
                        target.display()
                    );
                }
                Err(e) => tracing::warn!(
                    "plugin `{}` changed but the new file cannot be used, keeping the old one: {:#}",
                    ctx.backend,
                    e.into_anyhow()
                ),
            }
        }
    });
    Some(watcher)
}

fn is_same_file(a: &Path, b: &Path) -> bool {
    a.file_name() == b.file_name()
}
