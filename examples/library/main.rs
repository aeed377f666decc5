//! ytdlp-host as a library: a host with the bundled proxy backend and a
//! list of proxies, downloads queued, their events watched, their results
//! waited for.
//!
//!     cargo run --release --example library -- --proxy http://127.0.0.1:3128 URL...
//!
//! (`--proxy` may repeat; yt-dlp must be on PATH or in YTDLP_HOST_YT_DLP.)

use ytdlp_host::{DownloadRequest, Event, HostBuilder};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut builder = HostBuilder::new().output("%(id)s.%(ext)s").concurrency(2);
    let mut urls = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--proxy" => builder = builder.proxy(args.next().expect("--proxy URL")),
            _ => urls.push(a),
        }
    }
    let host = builder.build().await?;

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
        let r = host
            .wait(&id)
            .await
            .and_then(|s| s.result)
            .expect("finished");
        println!(
            "{id}: {:?} {:?} after {} attempt(s)",
            r.status,
            r.file,
            r.attempts.len()
        );
    }
    Ok(())
}
