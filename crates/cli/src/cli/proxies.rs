//! `ytdlp-host proxies ...`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use ytdlp_contract::options::{HOST_SITE, HOST_URL};
use ytdlp_contract::{FailureKind, ProxyState, ProxyStats, now_ms, proxy_url};
use ytdlp_host_core::HostBuilder;
use ytdlp_host_plugin_host::FailureReport;
use ytdlp_host_plugin_host::loading;

pub(crate) async fn stats(builder: &HostBuilder, json: bool) -> Result<ExitCode> {
    let mut backend = builder.start_backend().await?;
    let Some(stats) = backend.get_stats(&builder.call_options()).await? else {
        eprintln!(
            "plugin `{}` does not support stats (it does not export {})",
            backend.name(),
            loading::STATS_INTERFACE
        );
        return Ok(ExitCode::FAILURE);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print_stats_table(&stats);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn get(builder: &HostBuilder, for_url: Option<&str>) -> Result<ExitCode> {
    let mut backend = builder.start_backend().await?;
    let mut options = builder.call_options();
    if let Some(url) = for_url {
        options.push((HOST_URL.to_string(), url.to_string()));
        options.push((HOST_SITE.to_string(), ytdlp_host_core::site_of(url)));
    }
    match backend.get_proxy(&options).await {
        Ok(choice) => {
            println!("{} (timeout {} ms)", choice.url, choice.timeout_ms);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(crate) async fn change(builder: &HostBuilder, urls: &[String], add: bool) -> Result<ExitCode> {
    for u in urls {
        proxy_url::validate(u).map_err(|e| anyhow::anyhow!("{}: {e}", proxy_url::mask(u)))?;
    }
    let mut backend = builder.start_backend().await?;
    let options = builder.call_options();
    let answer = if add {
        backend.add_proxies(urls, &options).await?
    } else {
        backend.remove_proxies(urls, &options).await?
    };
    match answer {
        Some(n) if add => println!("added {n} new of {} proxies", urls.len()),
        Some(n) => println!("removed {n} of {} proxies", urls.len()),
        None => {
            eprintln!(
                "plugin `{}` does not support changing its proxy list (it does not export {})",
                backend.name(),
                loading::ADMIN_INTERFACE
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn report(
    builder: &HostBuilder,
    url: &str,
    success: bool,
    failure: Option<FailureKind>,
    count: u32,
) -> Result<ExitCode> {
    let proxy =
        proxy_url::validate(url).map_err(|e| anyhow::anyhow!("{}: {e}", proxy_url::mask(url)))?;
    let mut backend = builder.start_backend().await?;
    let options = builder.call_options();
    let started = std::time::Instant::now();
    for _ in 0..count {
        match (success, failure) {
            (true, _) => backend.report_success(&proxy, &options).await?,
            (false, Some(kind)) => {
                backend
                    .report_failure(
                        &proxy,
                        &FailureReport {
                            kind,
                            message: "reported by `ytdlp-host proxies report`".to_string(),
                        },
                        &options,
                    )
                    .await?
            }
            (false, None) => bail!("give --success or --failure KIND"),
        }
    }
    tracing::info!(
        "{count} reports in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(ExitCode::SUCCESS)
}

fn print_stats_table(stats: &[ProxyStats]) {
    if stats.is_empty() {
        println!("no proxies");
        return;
    }
    let width = stats.iter().map(|s| s.url.len()).max().unwrap_or(5).max(5);
    println!(
        "{:width$}  {:>9}  {:>8}  {:>6}  {:<24}  EXTRA",
        "PROXY", "SUCCESSES", "FAILURES", "CONSEC", "STATE"
    );
    for s in stats {
        let state = match &s.state {
            ProxyState::Active => "active".to_string(),
            ProxyState::Disabled => "disabled".to_string(),
            ProxyState::CoolingDown(until) => {
                let secs = until.saturating_sub(now_ms()).div_ceil(1000);
                format!("cooling down ({secs} s)")
            }
        };
        let extra: Vec<String> = s.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:width$}  {:>9}  {:>8}  {:>6}  {:<24}  {}",
            s.url,
            s.successes,
            s.failures,
            s.consecutive_failures,
            state,
            extra.join(" ")
        );
    }
}
