//! ytdlp-host's service (`ytdlp-host serve`): the HTTP API ([`router`])
//! over the download queue, hot reload of the backend plugin when its file
//! changes, and a graceful shutdown.
//!
//! Exposed as a database server is: bearer tokens ([`auth`]), a Host and
//! Origin guard ([`guard`]), one request policy for yt-dlp's options and
//! outputs (`ytdlp_host_ytdlp::policy`), bounded state (the queue's
//! retention), metrics ([`metrics`]) and an OpenAPI contract ([`api`],
//! [`router::openapi`]). TLS is a reverse proxy's job.

pub mod api;
pub mod auth;
pub mod guard;
pub mod metrics;
pub mod router;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ytdlp_host_config::{BUNDLED_BACKEND, RunnerKind, ServeConfig};
use ytdlp_host_core::{FleetOptions, Host, HostBuilder, Limits, Restored, Retention};
use ytdlp_host_ytdlp::policy::RequestPolicy;

pub use router::{openapi, router};

use crate::auth::TokenSet;
use crate::guard::Guard;
use crate::metrics::{Metrics, Observed};

/// The default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port); `None`: `[serve]
    /// listen`, else [`DEFAULT_LISTEN`].
    pub listen: Option<String>,
    /// Downloads running at once.
    pub max_concurrent: usize,
    /// Downloads waiting or running at most; more get 503.
    pub queue_limit: usize,
    /// On shutdown, how long running downloads may finish.
    pub grace: Duration,
}

/// The download directory of a `[serve]` section (default
/// `$XDG_DATA_HOME/ytdlp-host/downloads`).
pub fn download_dir(cfg: &ServeConfig) -> PathBuf {
    cfg.download_dir
        .clone()
        .unwrap_or_else(|| ytdlp_host_config::data_dir().join("downloads"))
}

/// The token file `serve` reads: `[serve] tokens_file`, else the default
/// one if it exists. The bool says whether it was named in the config.
pub fn tokens_file(cfg: &ServeConfig) -> (PathBuf, bool) {
    match &cfg.tokens_file {
        Some(p) => (p.clone(), true),
        None => (auth::default_tokens_file(), false),
    }
}

fn load_tokens(cfg: &ServeConfig) -> Result<TokenSet> {
    let (file, named) = tokens_file(cfg);
    let file = (named || file.is_file()).then_some(file);
    let env = std::env::var(auth::TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty());
    let tokens = TokenSet::load(file.as_deref(), env.as_deref())?;
    if let Some(path) = &file
        && tokens.plain_in_file > 0
    {
        use std::os::unix::fs::PermissionsExt;
        let loose = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o077 != 0)
            .unwrap_or(false);
        tracing::warn!(
            "{} holds {} token(s) in the clear{}; `ytdlp-host token new` writes SHA-256 digests instead",
            path.display(),
            tokens.plain_in_file,
            if loose { " and others may read it" } else { "" }
        );
    }
    Ok(tokens)
}

/// The addresses `listen` names (a name is resolved).
async fn resolve(listen: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: not an address"))?
        .collect();
    if addrs.is_empty() {
        bail!("cannot listen on {listen}: it names no address");
    }
    Ok(addrs)
}

/// Runs the service until `shutdown` resolves (it yields the signal's name,
/// for the log), then stops taking work and drains for the grace period.
/// Prints `listening on http://ADDR` once bound.
pub async fn serve(
    builder: HostBuilder,
    options: ServeOptions,
    shutdown: impl Future<Output = &'static str> + Send + 'static,
) -> Result<()> {
    let cfg = builder.config_ref().serve.clone();
    let listen = options
        .listen
        .clone()
        .or_else(|| cfg.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());

    // Who may call: checked before anything starts.
    let tokens = load_tokens(&cfg)?;
    let addrs = resolve(&listen).await?;
    if tokens.is_empty() {
        if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            bail!(
                "refusing to serve on {a} without a token: anyone who can reach it could download through your proxies. \
                 Make one with `ytdlp-host token new` (it prints the token once and stores its SHA-256 in {}), \
                 or set {} to a long random string; clients send `Authorization: Bearer TOKEN`",
                tokens_file(&cfg).0.display(),
                auth::TOKEN_ENV
            );
        }
        tracing::warn!(
            "no token configured: any program on this machine may use the API (it listens on loopback only); `ytdlp-host token new` makes one"
        );
    }

    // What callers may ask of yt-dlp, and where files go.
    let policy = RequestPolicy::new(&download_dir(&cfg), &cfg.allow_ytdlp_options)
        .map_err(anyhow::Error::msg)?;
    if let Some(o) = &builder.config_ref().output {
        policy
            .check_config_output(o)
            .map_err(|r| anyhow::anyhow!("{r}"))?;
    }
    for (name, why) in policy.risky_widenings() {
        tracing::warn!("serve.allow_ytdlp_options lets API callers use `{name}`: {why}");
    }
    let builder = builder.ytdlp_args(policy.host_args());

    let downloader = builder.downloader().await?;
    if downloader.runner_name() == RunnerKind::Worker.name() {
        // One allowlist whatever the runner: refuse at start what the
        // worker would refuse per download.
        for name in policy.widened() {
            let supported = ytdlp_host_ytdlp::worker::SUPPORTED_OPTIONS
                .iter()
                .any(|(names, _)| names.contains(&name));
            if !supported {
                bail!(
                    "serve.allow_ytdlp_options: `{name}` is not supported by the worker runner; set runner = \"process\" to allow it"
                );
            }
        }
    }
    let metrics = Arc::new(Metrics::new());
    if let Some(s) = downloader.source() {
        downloader.set_source(Some(Observed::wrap(s, metrics.clone())));
    }
    let host = Host::new(
        downloader,
        Limits {
            concurrency: options.max_concurrent.max(1),
            queue: options.queue_limit.max(1),
        },
    );
    host.set_retention(Retention {
        count: Some(cfg.keep_finished.count as usize),
        age: Some(Duration::from_secs(cfg.keep_finished.age_secs)),
    });
    host.set_observer(metrics.clone());
    // The queue in the store: what a crash or a restart interrupted is
    // taken back before anything new is accepted.
    let store = builder
        .open_store()
        .map_err(|e| anyhow::anyhow!("cannot keep the download queue: {e}"))?;
    let fleet_url = builder.config_ref().store.url.clone();
    let restored = match fleet_url {
        // On Redis, hosts share the queue: what a dead host held is taken
        // over by any of them after the lease, nothing is restored here.
        Some(url) => {
            let consumer = ytdlp_host_core::consumer_name();
            let lease = Duration::from_secs(
                cfg.lease_secs
                    .unwrap_or(ytdlp_host_config::DEFAULT_LEASE_SECS),
            );
            host.join_fleet(
                store,
                FleetOptions {
                    url,
                    lease,
                    consumer: consumer.clone(),
                },
            )
            .map_err(|e| anyhow::anyhow!("cannot join the fleet's download queue: {e}"))?;
            tracing::info!(
                "in the fleet on {} as `{consumer}` (lease {} s)",
                host.recorded_in().unwrap_or_default(),
                lease.as_secs()
            );
            Restored::default()
        }
        None => host
            .restore(store)
            .map_err(|e| anyhow::anyhow!("cannot read the download queue back: {e}"))?,
    };
    if restored != Restored::default() {
        let what = format!(
            "downloads taken back from {}: {} queued again ({} of them were running and run again), {} finished kept{}",
            host.recorded_in().unwrap_or_default(),
            restored.queued,
            restored.rerun,
            restored.finished,
            if restored.unreadable > 0 {
                format!(", {} unreadable record(s) skipped", restored.unreadable)
            } else {
                String::new()
            }
        );
        // Interrupted work is worth the operator's attention.
        if restored.rerun > 0 || restored.unreadable > 0 {
            tracing::warn!("{what}");
        } else {
            tracing::info!("{what}");
        }
    }

    let listener = tokio::net::TcpListener::bind(addrs.as_slice())
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // One line a script can wait for.
    println!("listening on http://{addr}");
    tracing::info!(
        "downloads go to {}; {} token(s); runner {}",
        policy.root().display(),
        tokens.len(),
        host.downloader().runner_name()
    );
    let builder = Arc::new(builder);
    let _watcher = watch_plugins(builder.clone(), host.clone(), metrics.clone());
    let ctx = router::Ctx {
        host: host.clone(),
        backend_name: builder.backend_name().to_string(),
        policy: Arc::new(policy),
        client_backend_options: Arc::new(cfg.client_backend_options.clone()),
        metrics,
    };
    let access = router::Access {
        tokens: Arc::new(tokens),
        guard: Arc::new(Guard::new(&cfg.allowed_hosts, &cfg.cors_origins)),
    };
    let body_limit = cfg
        .max_body_bytes
        .map_or(router::DEFAULT_BODY_LIMIT, |n| n as usize);
    let app = router(ctx, access, body_limit);
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

/// Watches the plugin directory: a changed or new `.wasm` of a configured
/// backend is checked and swapped in for new downloads (running ones keep
/// the old instance; a chain is started anew as a whole); a broken one
/// leaves the old one serving.
fn watch_plugins(
    builder: Arc<HostBuilder>,
    host: Host,
    metrics: Arc<Metrics>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let backend = builder.backend_name();
    let names = builder.backend_names();
    if names.iter().all(|n| n == BUNDLED_BACKEND) {
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
    let targets: Vec<PathBuf> = names
        .iter()
        .filter(|n| *n != BUNDLED_BACKEND)
        .map(|n| ytdlp_host_core::builder::plugin_file(&dir, n))
        .collect();
    tokio::spawn(async move {
        while let Some(path) = rx.recv().await {
            let Some(target) = targets.iter().find(|t| is_same_file(&path, t)) else {
                continue;
            };
            // Let a copy in progress finish: wait for a quiet moment.
            loop {
                match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            match builder.start_source().await {
                Ok(source) => {
                    host.downloader()
                        .set_source(Some(Observed::wrap(source, metrics.clone())));
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
