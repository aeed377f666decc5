//! `ytdlp-host plugins ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use super::App;
use crate::backend::Backend;
use crate::loading::{self, Source};
use crate::{config, conformance};

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
                Ok(p) => (Some(p.version.clone()), p.exports(), None),
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
        plugin.exports().join("+"),
        plugin.imports.len(),
        plugin.load_time.as_secs_f64() * 1000.0,
        plugin.cache
    );
    Ok(ExitCode::SUCCESS)
}

/// `plugins install FILE.wasm`: every check, then an atomic copy into the
/// plugin directory (temp file + rename), with the compiled code put in
/// the cache so that the first real use starts in milliseconds.
pub(crate) async fn install(ctx: &App, file: &Path) -> Result<ExitCode> {
    let Some(name) = file.file_stem().and_then(|s| s.to_str()) else {
        eprintln!("{}: refused: no file name", file.display());
        return Ok(ExitCode::FAILURE);
    };
    if file.extension().is_none_or(|x| x != "wasm") {
        eprintln!(
            "{}: refused: a plugin file must end in .wasm (its name is the file stem)",
            file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if name == config::BUNDLED_BACKEND {
        eprintln!(
            "{}: refused: the name `{name}` is the bundled plugin's; rename the file",
            file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        eprintln!(
            "{}: refused: `{name}` is not a plugin name (letters, digits, `-`, `_`, `.`)",
            file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: refused: cannot read: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let started = std::time::Instant::now();
    let plugin = match ctx
        .loader
        .load_bytes(name, Source::File(file.to_path_buf()), &bytes)
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: refused: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(e) = Backend::probe(&plugin, &ctx.config.plugin(name)).await {
        eprintln!("{}: refused: {e}", file.display());
        return Ok(ExitCode::FAILURE);
    }
    let compile = started.elapsed();
    let dest = ctx.plugin_dir.join(format!("{name}.wasm"));
    let replaced = dest.exists();
    copy_atomically(&bytes, &ctx.plugin_dir, &dest)
        .map_err(|e| anyhow::anyhow!("cannot install into {}: {e:#}", dest.display()))?;
    // Load the installed copy as a run would: from the cache.
    let reload = ctx.loader.load_file(name, &dest);
    let next = match &reload {
        Ok(p) => format!(
            "next load {:.1} ms ({:?})",
            p.load_time.as_secs_f64() * 1000.0,
            p.cache
        ),
        Err(e) => format!("warning: the installed copy did not load: {e}"),
    };
    println!(
        "{} plugin `{name}` at {}: contract {}, {}; checked and compiled in {:.2} s ({:?}); {next}",
        if replaced { "replaced" } else { "installed" },
        dest.display(),
        plugin.version,
        match (plugin.has_stats, plugin.has_admin) {
            (true, true) => "exports backend+stats+admin",
            (true, false) => "exports backend+stats",
            (false, true) => "exports backend+admin",
            (false, false) => "exports backend",
        },
        compile.as_secs_f64(),
        plugin.cache,
    );
    if ctx.config.plugin(name).grants.is_empty() {
        println!(
            "it runs with no grants; give it any in the config under [plugins.{name}.grants], select it with --backend {name}"
        );
    } else {
        println!("select it with --backend {name}");
    }
    Ok(if reload.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes `bytes` to `dest` in `dir` through a temp file and a rename, so a
/// running host never sees half a plugin.
fn copy_atomically(bytes: &[u8], dir: &Path, dest: &Path) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `plugins test FILE.wasm|NAME`: the conformance kit.
pub(crate) async fn test(ctx: &App, target: &Path, json: bool, repeat: u32) -> Result<ExitCode> {
    let is_file = target.is_file() || target.extension().is_some_and(|x| x == "wasm");
    let name = if is_file {
        target
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin")
            .to_string()
    } else {
        target.to_string_lossy().into_owned()
    };
    let pc = ctx.config.plugin(&name);
    let mut init_options =
        config::merge_options(&config::options_from_table(&pc.options), &ctx.backend_opts);
    if name == config::BUNDLED_BACKEND {
        for p in ctx.config.proxies.iter().chain(&ctx.extra_proxies) {
            init_options.push(("proxy".to_string(), p.clone()));
        }
    }
    let settings = conformance::KitSettings {
        name: name.clone(),
        config: pc,
        call_options: config::merge_options(
            &config::options_from_table(&ctx.config.plugin(&name).options),
            &ctx.backend_opts,
        ),
        init_options,
        repeat,
    };
    let report = if is_file {
        conformance::run_file(&ctx.loader, target, &settings).await
    } else {
        let loaded = loading::find(&ctx.loader, &ctx.plugin_dir, &name).map_err(|e| format!("{e}"));
        conformance::run_loaded(loaded, name.clone(), &settings).await
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
