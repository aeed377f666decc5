//! ytdlp-host as a library: start the bundled proxy backend with a list of
//! proxies, queue downloads, watch their events, wait for the results.
//!
//!     cargo run --release --example library -- --proxy http://127.0.0.1:3128 URL...
//!
//! (`--proxy` may repeat; yt-dlp must be on PATH or in YTDLP_HOST_YT_DLP.)

use std::time::Duration;

use ytdlp_host::backend::Backend;
use ytdlp_host::compile_cache::CompileCache;
use ytdlp_host::config::{self, NoProxyPolicy, PluginConfig};
use ytdlp_host::download::{DownloadRequest, Downloader, Settings};
use ytdlp_host::host::{Event, Host, Limits};
use ytdlp_host::loading::Loader;
use ytdlp_host::runner::Runner;
use ytdlp_host::sandbox::{self, EpochTicker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut proxies = Vec::new();
    let mut urls = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--proxy" => proxies.push(args.next().expect("--proxy URL")),
            _ => urls.push(a),
        }
    }

    // The sandbox: one engine, its epoch ticker (deadlines), a loader with
    // the compile cache.
    let engine = sandbox::engine()?;
    let _ticker = EpochTicker::start(&engine);
    let loader = Loader::new(
        engine,
        CompileCache::new(config::cache_dir().join("compiled")),
    )?;

    // The bundled plugin, given its proxies as init options.
    let plugin = loader.load_bundled()?;
    let init: Vec<(String, String)> = proxies
        .iter()
        .map(|p| ("proxy".into(), p.clone()))
        .collect();
    let backend = Backend::start(plugin, PluginConfig::default(), init).await?;

    let yt_dlp = ytdlp_host::ytdlp_locate::locate(None, None)
        .map(|(p, _)| p)
        .ok_or_else(|| anyhow::anyhow!("yt-dlp not found: pip install yt-dlp"))?;
    let settings = Settings {
        yt_dlp,
        max_attempts: 3,
        on_no_proxy: NoProxyPolicy::Direct,
        output: Some("%(id)s.%(ext)s".into()),
        extra_args: Vec::new(),
        run_timeout: Duration::from_secs(600),
        direct_socket_timeout_secs: 30,
        preflight: Some(Duration::from_millis(1000)),
        runner: Runner::default(),
    };
    let downloader = Downloader::new(
        Some(std::sync::Arc::new(tokio::sync::Mutex::new(backend))),
        Vec::new(),
        settings,
    );

    // The queue: 2 at a time; events as they happen; ids to wait on.
    let host = Host::new(
        downloader,
        Limits {
            concurrency: 2,
            queue: 100,
        },
    );
    let mut events = host.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            match e {
                Event::Started { id, url, proxy, .. } => {
                    println!("{id}: {url} via {}", proxy.as_deref().unwrap_or("no proxy"))
                }
                Event::Retried { id, kind, .. } => println!("{id}: retrying after {kind}"),
                _ => {}
            }
        }
    });
    let ids: Vec<String> = urls
        .into_iter()
        .map(|u| host.submit(DownloadRequest::new(u)))
        .collect::<Result<_, _>>()?;
    for id in ids {
        let status = host.wait(&id).await.expect("known id");
        let r = status.result.expect("finished");
        println!(
            "{id}: {:?} {:?} after {} attempt(s)",
            r.status,
            r.file,
            r.attempts.len()
        );
    }
    Ok(())
}
