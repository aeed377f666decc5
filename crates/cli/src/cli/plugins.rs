//! `ytdlp-host plugins ...`.

use super::output::{say, tell};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use ytdlp_host_config as config;
use ytdlp_host_core::HostBuilder;
use ytdlp_host_plugin_host::{Backend, Source, conformance};

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

pub(crate) fn list(builder: &HostBuilder, json: bool) -> Result<ExitCode> {
    let runtime = builder.runtime()?;
    let plugin_dir = builder.plugin_dir_path();
    let rows: Vec<PluginRow> = runtime
        .catalog(&plugin_dir)
        .into_iter()
        .map(|e| {
            let pc = builder.config_ref().plugin(&e.name);
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
        say!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    say!("plugin directory: {}", plugin_dir.display());
    for r in &rows {
        let source = match &r.path {
            Some(p) => p.display().to_string(),
            None => "(bundled)".to_string(),
        };
        match &r.error {
            None => {
                let grants = describe_grants(&r.grants);
                say!(
                    "{:16} contract {}  exports {:14} grants {}  {}",
                    r.name,
                    r.contract_version.as_deref().unwrap_or("?"),
                    r.exports.join("+"),
                    grants,
                    source
                );
            }
            Some(err) => say!("{:16} NOT LOADED: {err}  {source}", r.name),
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

pub(crate) async fn check(builder: &HostBuilder, file: &Path) -> Result<ExitCode> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_string();
    let plugin = match builder.runtime()?.load_file(&name, file) {
        Ok(p) => p,
        Err(e) => {
            tell!("{}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let pc = builder.config_ref().plugin(&name);
    if let Err(e) = Backend::probe(&plugin, &pc).await {
        tell!("{}: {e}", file.display());
        return Ok(ExitCode::FAILURE);
    }
    say!(
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
pub(crate) async fn install(builder: &HostBuilder, file: &Path) -> Result<ExitCode> {
    let Some(name) = file.file_stem().and_then(|s| s.to_str()) else {
        tell!("{}: refused: no file name", file.display());
        return Ok(ExitCode::FAILURE);
    };
    if file.extension().is_none_or(|x| x != "wasm") {
        tell!(
            "{}: refused: a plugin file must end in .wasm (its name is the file stem)",
            file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if name == config::BUNDLED_BACKEND {
        tell!(
            "{}: refused: the name `{name}` is the bundled plugin's; rename the file",
            file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Err(e) = config::validate_plugin_name(name) {
        tell!("{}: refused: {e}", file.display());
        return Ok(ExitCode::FAILURE);
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            tell!("{}: refused: cannot read: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let started = std::time::Instant::now();
    let runtime = builder.runtime()?;
    let plugin = match runtime.load_bytes(name, Source::File(file.to_path_buf()), &bytes) {
        Ok(p) => p,
        Err(e) => {
            tell!("{}: refused: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(e) = Backend::probe(&plugin, &builder.config_ref().plugin(name)).await {
        tell!("{}: refused: {e}", file.display());
        return Ok(ExitCode::FAILURE);
    }
    let compile = started.elapsed();
    let plugin_dir = builder.plugin_dir_path();
    let dest = plugin_dir.join(format!("{name}.wasm"));
    let replaced = dest.exists();
    std::fs::create_dir_all(&plugin_dir)
        .and_then(|_| ytdlp_contract::atomic_file::write(&dest, &bytes))
        .map_err(|e| anyhow::anyhow!("cannot install into {}: {e:#}", dest.display()))?;
    // Load the installed copy as a run would: from the cache.
    let reload = runtime.load_file(name, &dest);
    let next = match &reload {
        Ok(p) => format!(
            "next load {:.1} ms ({:?})",
            p.load_time.as_secs_f64() * 1000.0,
            p.cache
        ),
        Err(e) => format!("warning: the installed copy did not load: {e}"),
    };
    say!(
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
    if builder.config_ref().plugin(name).grants.is_empty() {
        say!(
            "it runs with no grants; give it any in the config under [plugins.{name}.grants], select it with --backend {name}"
        );
    } else {
        say!("select it with --backend {name}");
    }
    Ok(if reload.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `plugins test FILE.wasm|NAME`: the conformance kit.
pub(crate) async fn test(
    builder: &HostBuilder,
    target: &Path,
    json: bool,
    repeat: u32,
) -> Result<ExitCode> {
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
    let cfg = builder.config_ref();
    let pc = cfg.plugin(&name);
    let call_options = config::merge_options(
        &config::options_from_table(&pc.options),
        builder.backend_options(),
    );
    let mut init_options = call_options.clone();
    if name == config::BUNDLED_BACKEND {
        for p in cfg
            .proxies
            .iter()
            .map(String::as_str)
            .chain(builder.extra_proxies().iter().map(String::as_str))
        {
            init_options.push(("proxy".to_string(), p.to_string()));
        }
    }
    let settings = conformance::KitSettings {
        name: name.clone(),
        config: pc,
        call_options,
        init_options,
        repeat,
    };
    let runtime = builder.runtime()?;
    let report = if is_file {
        conformance::run_file(runtime, target, &settings).await
    } else {
        let loaded = runtime
            .find(&builder.plugin_dir_path(), &name)
            .map_err(|e| format!("{e}"));
        conformance::run_loaded(loaded, name.clone(), &settings).await
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
