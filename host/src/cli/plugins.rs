//! `ytdlp-host plugins ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use super::App;
use crate::backend::Backend;
use crate::config;
use crate::loading::{self, Source};

#[derive(serde::Serialize)]
struct PluginRow {
    name: String,
    path: Option<PathBuf>,
    bundled: bool,
    contract_version: Option<String>,
    exports: Vec<&'static str>,
    grants: config::Grants,
    limits: config::LimitsConfig,
    error: Option<String>,
}

pub(crate) fn list(ctx: &App, json: bool) -> Result<ExitCode> {
    let rows: Vec<PluginRow> = loading::catalog(&ctx.loader, &ctx.plugin_dir)
        .into_iter()
        .map(|e| {
            let pc = ctx.config.plugin(&e.name);
            let (version, exports, error) = match &e.result {
                Ok(p) => (
                    Some(p.version.clone()),
                    if p.has_stats {
                        vec!["backend", "stats"]
                    } else {
                        vec!["backend"]
                    },
                    None,
                ),
                Err(err) => (None, vec![], Some(err.to_string())),
            };
            PluginRow {
                name: e.name,
                path: match &e.source {
                    Source::File(p) => Some(p.clone()),
                    Source::Bundled => None,
                },
                bundled: e.source == Source::Bundled,
                contract_version: version,
                exports,
                grants: pc.grants,
                limits: pc.limits,
                error,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("plugin directory: {}", ctx.plugin_dir.display());
    for r in &rows {
        let source = match &r.path {
            Some(p) => p.display().to_string(),
            None => "(bundled)".to_string(),
        };
        match &r.error {
            None => {
                let grants = describe_grants(&r.grants);
                println!(
                    "{:16} contract {}  exports {:14} grants {}  {}",
                    r.name,
                    r.contract_version.as_deref().unwrap_or("?"),
                    r.exports.join("+"),
                    grants,
                    source
                );
            }
            Some(err) => println!("{:16} NOT LOADED: {err}  {source}", r.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_grants(g: &config::Grants) -> String {
    if g.is_empty() {
        return "none".to_string();
    }
    let mut parts = Vec::new();
    for d in &g.dirs {
        parts.push(format!(
            "dir {}:{}{}",
            d.host.display(),
            d.guest,
            if d.rw { " (rw)" } else { " (ro)" }
        ));
    }
    parts.extend(g.tcp.iter().map(|t| format!("tcp {t}")));
    parts.extend(g.http.iter().map(|h| format!("http {h}")));
    parts.extend(g.env.iter().map(|e| format!("env {e}")));
    parts.join(", ")
}

pub(crate) async fn check(ctx: &App, file: &Path) -> Result<ExitCode> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_string();
    let plugin = match ctx.loader.load_file(&name, file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let pc = ctx.config.plugin(&name);
    if let Err(e) = Backend::probe(&plugin, &pc).await {
        eprintln!("{}: {e}", file.display());
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{}: ok: contract {}, exports {}, {} imports, loaded in {:.1} ms ({:?})",
        file.display(),
        plugin.version,
        if plugin.has_stats {
            "backend+stats"
        } else {
            "backend"
        },
        plugin.imports.len(),
        plugin.load_time.as_secs_f64() * 1000.0,
        plugin.cache
    );
    Ok(ExitCode::SUCCESS)
}
