//! `ytdlp-host proxies ...`.

use super::output::{say, tell};
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{Result, bail};
use ytdlp_contract::proxy_list::parse_entry;
use ytdlp_contract::{Failure, FailureKind, ProxyMeta, ProxyState, Success, now_ms, proxy_url};
use ytdlp_host_core::HostBuilder;
use ytdlp_host_plugin_host::{Contract, ProxyChoice, StatsRow};

pub(crate) async fn stats(builder: &HostBuilder, json: bool) -> Result<ExitCode> {
    if builder.backend_names().len() > 1 {
        return chain_stats(builder, json).await;
    }
    let mut backend = builder.start_backend().await?;
    let Some(stats) = backend.get_stats(&builder.call_options()).await? else {
        tell!(
            "plugin `{}` does not support stats (it does not export {}, or says it keeps none)",
            backend.name(),
            backend.plugin().contract.interface("stats")
        );
        return Ok(ExitCode::FAILURE);
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print_stats_table(&stats);
    }
    Ok(ExitCode::SUCCESS)
}

/// Several backends: each one's rows under its name (the rows carry it in
/// `--json`); one that cannot answer is said and left out.
async fn chain_stats(builder: &HostBuilder, json: bool) -> Result<ExitCode> {
    let source = builder.start_source().await?;
    let Some(stats) = source.get_stats(&builder.source_options()).await? else {
        tell!("none of `{}` keeps statistics", source.name());
        return Ok(ExitCode::FAILURE);
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(ExitCode::SUCCESS);
    }
    for name in builder.backend_names() {
        let rows: Vec<StatsRow> = stats
            .iter()
            .filter(|r| r.backend.as_deref() == Some(name.as_str()))
            .cloned()
            .collect();
        say!("{name}:");
        print_stats_table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn get(builder: &HostBuilder, for_url: Option<&str>) -> Result<ExitCode> {
    // Through every backend, in order, as a download asks.
    let source = builder.start_source().await?;
    let options = builder.source_options();
    let req = ytdlp_host_core::first_request(for_url.unwrap_or(""), "proxies-get", builder.want()?);
    match source.get_proxy(&req, &options).await {
        Ok(choice) => {
            let meta = choice.meta.to_string();
            say!(
                "{} [{}] (timeout {} ms{}{meta})",
                choice.url,
                choice.id,
                choice.timeout_ms,
                if meta.is_empty() { "" } else { "; " }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tell!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(crate) async fn change(builder: &HostBuilder, urls: &[String], add: bool) -> Result<ExitCode> {
    let mut backend = builder.start_backend().await?;
    let options = builder.call_options();
    let answer = if add {
        let mut entries = Vec::with_capacity(urls.len());
        for u in urls {
            entries.push(
                parse_entry(u).map_err(|e| anyhow::anyhow!("{}: {e}", proxy_url::mask_url(u)))?,
            );
        }
        backend.add_proxies(&entries, &options).await?
    } else {
        // By id (as `proxies stats` shows it) or by URL.
        let ids: Vec<String> = urls
            .iter()
            .map(|u| match parse_entry(u) {
                Ok(e) => e.url.expose().to_string(),
                Err(_) => u.clone(),
            })
            .collect();
        backend.remove_proxies(&ids, &options).await?
    };
    match answer {
        Some(n) if add => say!("added {n} new of {} proxies", urls.len()),
        Some(n) => say!("removed {n} of {} proxies", urls.len()),
        None => {
            tell!(
                "plugin `{}` does not support changing its proxy list (it does not export {})",
                backend.name(),
                backend.plugin().contract.interface("admin")
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
    let entry =
        parse_entry(url).map_err(|e| anyhow::anyhow!("{}: {e}", proxy_url::mask_url(url)))?;
    let mut backend = builder.start_backend().await?;
    // A 0.1 plugin names proxies by URL; a 0.2 one built on the SDK by the
    // URL's identity (scheme, user, host, port).
    let id = match backend.plugin().contract {
        Contract::V0_1 => entry.url.id(),
        Contract::V0_2 => entry.url.identity_id(),
    };
    let proxy = Arc::new(ProxyChoice {
        id,
        url: entry.url,
        timeout_ms: 1000,
        meta: ProxyMeta::default(),
        backend: String::new(),
    });
    let options = builder.call_options();
    let req = ytdlp_host_core::first_request("", "proxies-report", Default::default());
    let started = std::time::Instant::now();
    for _ in 0..count {
        match (success, failure) {
            (true, _) => {
                backend
                    .report_success(&proxy, &req, &Success::default(), &options)
                    .await?
            }
            (false, Some(kind)) => {
                let f = Failure::new(kind, "reported by `ytdlp-host proxies report`");
                backend
                    .report_failure(&proxy, &req, &f, 0, &options)
                    .await?
            }
            (false, None) => bail!("give --success or --failure KIND"),
        }
    }
    let what = match failure {
        Some(kind) if !success => format!("{kind} failure"),
        _ => "success".to_string(),
    };
    say!(
        "reported {count} {what}{} for {} [{}] in {:.1} ms",
        if count == 1 { "" } else { "s" },
        proxy.url,
        proxy.id,
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(ExitCode::SUCCESS)
}

/// A time ahead, as a person reads it: "in 45 s", "in 12 min", "in 3 h".
fn in_time(until_ms: u64) -> String {
    let secs = until_ms.saturating_sub(now_ms()).div_ceil(1000);
    match secs {
        0 => "now".to_string(),
        s if s < 120 => format!("in {s} s"),
        s if s < 2 * 3600 => format!("in {} min", s.div_ceil(60)),
        s => format!("in {} h", s.div_ceil(3600)),
    }
}

/// An `extra` value as shown: ban times (`banned.SITE`, ms since the epoch)
/// as a time ahead, the rest as given.
fn show_extra(key: &str, value: &str) -> String {
    match (key.starts_with("banned."), value.parse::<u64>()) {
        (true, Ok(until)) => format!("{key} {}", in_time(until)),
        _ => format!("{key}={value}"),
    }
}

fn print_stats_table(rows: &[StatsRow]) {
    if rows.is_empty() {
        say!("no proxies");
        return;
    }
    let width = rows
        .iter()
        .map(|r| r.stats.url.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let id_width = rows
        .iter()
        .map(|r| r.id.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(2)
        .max(9);
    let metas: Vec<String> = rows.iter().map(|r| r.stats.meta.to_string()).collect();
    let meta_width = metas.iter().map(String::len).max().unwrap_or(0).max(4);
    say!(
        "{:width$}  {:id_width$}  {:meta_width$}  {:>9}  {:>8}  {:>6}  {:<24}  EXTRA",
        "PROXY",
        "ID",
        "META",
        "SUCCESSES",
        "FAILURES",
        "CONSEC",
        "STATE"
    );
    for (r, meta) in rows.iter().zip(&metas) {
        let s = &r.stats;
        let state = match &s.state {
            ProxyState::Active => "active".to_string(),
            ProxyState::Disabled => "disabled".to_string(),
            ProxyState::CoolingDown(until) => format!("cooling down ({})", in_time(*until)),
        };
        let extra: Vec<String> = s.extra.iter().map(|(k, v)| show_extra(k, v)).collect();
        say!(
            "{:width$}  {:id_width$}  {:meta_width$}  {:>9}  {:>8}  {:>6}  {:<24}  {}",
            s.url,
            r.id.as_deref().unwrap_or("-"),
            if meta.is_empty() { "-" } else { meta },
            s.successes,
            s.failures,
            s.consecutive_failures,
            state,
            extra.join(" ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_times_read_as_times_ahead() {
        let now = now_ms();
        assert_eq!(
            show_extra("banned.example.com", &(now + 30_000).to_string()),
            "banned.example.com in 30 s"
        );
        assert_eq!(
            show_extra("banned.example.com", &(now + 720_000).to_string()),
            "banned.example.com in 12 min"
        );
        assert_eq!(show_extra("failures.blocked", "3"), "failures.blocked=3");
        assert_eq!(in_time(now), "now");
    }
}
