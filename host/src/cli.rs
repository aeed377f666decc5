//! The `ytdlp-host` command line. Flags are defined once here (clap derive);
//! `--help` is generated from them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::backend::{Backend, BackendError, FailureReport, ProxyState, ProxyStats};
use crate::classify::FailureKind;
use crate::compile_cache::CompileCache;
use crate::config::{self, BUNDLED_BACKEND, Config, NoProxyPolicy, Options};
use crate::download::{Downloader, Settings, Status};
use crate::loading::{self, Loader, Source};
use crate::sandbox::{self, EpochTicker};
use crate::{proxy_url, ytdlp_locate};

#[derive(Debug, Parser)]
#[command(
    name = "ytdlp-host",
    version,
    about = "Run yt-dlp behind rotating proxies chosen by WebAssembly plugins",
    after_help = "Config: --config FILE, else ./ytdlp-host.toml, else $XDG_CONFIG_HOME/ytdlp-host/config.toml.\nLogs: -v/-vv, or YTDLP_HOST_LOG=debug."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file (TOML).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of *.wasm plugins [default: $XDG_CONFIG_HOME/ytdlp-host/plugins].
    #[arg(long, global = true, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Backend plugin by name (file stem in the plugin directory) [default: memory].
    #[arg(long, global = true, value_name = "NAME")]
    pub backend: Option<String>,
    /// Backend option for this run, merged over the config's (repeatable).
    #[arg(long = "backend-opt", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub backend_opts: Vec<(String, String)>,
    /// Add a proxy to the bundled memory backend's list (repeatable).
    #[arg(long = "proxy", global = true, value_name = "URL")]
    pub proxies: Vec<String>,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download URLs with yt-dlp through the backend's proxies.
    Download(DownloadArgs),
    /// Proxy commands.
    #[command(subcommand)]
    Proxies(ProxiesCommand),
    /// Plugin commands.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Install the pinned yt-dlp into the host's private venv.
    Setup,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// URLs to download.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line (`#` comments and blank lines skipped).
    #[arg(short = 'a', long = "batch-file", value_name = "FILE")]
    pub batch_file: Option<PathBuf>,
    /// yt-dlp output template.
    #[arg(short, long, value_name = "TEMPLATE")]
    pub output: Option<String>,
    /// yt-dlp executable.
    #[arg(long = "yt-dlp", value_name = "PATH")]
    pub yt_dlp: Option<PathBuf>,
    /// Run yt-dlp without any proxy backend.
    #[arg(long)]
    pub no_proxy_manager: bool,
    /// Attempts per URL, each through another proxy [default: 3].
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// When the backend has no proxy: download directly, or fail the URL [default: direct].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_no_proxy: Option<NoProxyPolicy>,
    /// One JSON object per URL on stdout.
    #[arg(long)]
    pub json: bool,
    /// Arguments passed to yt-dlp as they are (after `--`).
    #[arg(last = true, value_name = "YT-DLP ARGS")]
    pub ytdlp_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProxiesCommand {
    /// The backend's per-proxy statistics.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Ask the backend for a proxy and print it (masked), without downloading.
    Get {
        /// The URL the proxy would be for (sets `host.url` and `host.site`).
        #[arg(long, value_name = "URL")]
        for_url: Option<String>,
    },
    /// Add proxies to the backend's list (plugins that export `admin`).
    Add {
        #[arg(value_name = "URL", required = true)]
        urls: Vec<String>,
    },
    /// Remove proxies from the backend's list (plugins that export `admin`).
    Remove {
        #[arg(value_name = "URL", required = true)]
        urls: Vec<String>,
    },
    /// Report an outcome for a proxy, as a download would (e.g. to mark a
    /// proxy bad by hand, or to load-test a backend).
    Report {
        #[arg(value_name = "URL")]
        url: String,
        /// Report a success.
        #[arg(long, conflicts_with = "failure", required_unless_present = "failure")]
        success: bool,
        /// Report a failure of this kind.
        #[arg(long, value_enum, value_name = "KIND")]
        failure: Option<FailureKind>,
        /// How many times.
        #[arg(long, default_value_t = 1, value_name = "N")]
        count: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every plugin: name, file, contract version, exports, load error.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check one .wasm file; exit non-zero with the reason if it is not a usable plugin.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    if k.starts_with("host.") {
        return Err(format!(
            "`{k}`: keys starting with `host.` are reserved for the host"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", proxy_url::mask(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(g: &Global) {
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("YTDLP_HOST_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("ytdlp_host={default},warn"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let (config, _path) = config::load(cli.global.config.as_deref())?;
    let ctx = App::new(&cli.global, config)?;
    match cli.command {
        Command::Download(args) => download(&ctx, args).await,
        Command::Proxies(ProxiesCommand::Stats { json }) => proxies_stats(&ctx, json).await,
        Command::Proxies(ProxiesCommand::Get { for_url }) => {
            proxies_get(&ctx, for_url.as_deref()).await
        }
        Command::Proxies(ProxiesCommand::Add { urls }) => proxies_change(&ctx, &urls, true).await,
        Command::Proxies(ProxiesCommand::Remove { urls }) => {
            proxies_change(&ctx, &urls, false).await
        }
        Command::Proxies(ProxiesCommand::Report {
            url,
            success,
            failure,
            count,
        }) => proxies_report(&ctx, &url, success, failure, count).await,
        Command::Plugins(PluginsCommand::List { json }) => plugins_list(&ctx, json),
        Command::Plugins(PluginsCommand::Check { file }) => plugins_check(&ctx, &file).await,
        Command::Setup => setup(),
    }
}

/// What every command needs: the validated config and flags, an engine.
struct App {
    config: Config,
    plugin_dir: PathBuf,
    backend: String,
    backend_opts: Options,
    extra_proxies: Vec<String>,
    loader: Loader,
    _ticker: EpochTicker,
}

impl App {
    fn new(g: &Global, config: Config) -> Result<App> {
        for (i, p) in g.proxies.iter().enumerate() {
            proxy_url::validate(p)
                .map_err(|e| anyhow::anyhow!("--proxy #{} ({}): {e}", i + 1, proxy_url::mask(p)))?;
        }
        let backend = g
            .backend
            .clone()
            .or_else(|| config.backend.clone())
            .unwrap_or_else(|| BUNDLED_BACKEND.to_string());
        if !g.proxies.is_empty() && backend != BUNDLED_BACKEND {
            bail!(
                "--proxy feeds the bundled `{BUNDLED_BACKEND}` backend, but the backend is `{backend}`; give that plugin its proxies through its own options"
            );
        }
        let plugin_dir = g
            .plugin_dir
            .clone()
            .or_else(|| config.plugin_dir.clone())
            .unwrap_or_else(|| config::config_dir().join("plugins"));
        let engine = sandbox::engine()?;
        let ticker = EpochTicker::start(&engine);
        let loader = Loader::new(
            engine,
            CompileCache::new(config::cache_dir().join("compiled")),
        )?;
        Ok(App {
            plugin_dir,
            backend,
            backend_opts: g.backend_opts.clone(),
            extra_proxies: g.proxies.clone(),
            config,
            loader,
            _ticker: ticker,
        })
    }

    /// Options for `init`: the plugin's config options, plus the proxy
    /// list for the bundled backend.
    fn init_options(&self) -> Options {
        let mut opts = config::options_from_table(&self.config.plugin(&self.backend).options);
        if self.backend == BUNDLED_BACKEND {
            for p in self.config.proxies.iter().chain(&self.extra_proxies) {
                opts.push(("proxy".to_string(), p.clone()));
            }
        }
        opts
    }

    /// Options for every call: config options with this run's over them.
    fn call_options(&self) -> Options {
        config::merge_options(
            &config::options_from_table(&self.config.plugin(&self.backend).options),
            &self.backend_opts,
        )
    }

    async fn start_backend(&self) -> Result<Backend, StartError> {
        let plugin = loading::find(&self.loader, &self.plugin_dir, &self.backend)
            .map_err(StartError::Load)?;
        Backend::start(
            plugin,
            self.config.plugin(&self.backend),
            self.init_options(),
        )
        .await
        .map_err(StartError::Backend)
    }
}

enum StartError {
    Load(anyhow::Error),
    Backend(BackendError),
}

impl StartError {
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            StartError::Load(e) => e,
            StartError::Backend(e) => e.into(),
        }
    }
}

fn read_batch(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read batch file {}", path.display()))?;
    let mut urls = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read batch file {}", path.display()))?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            urls.push(line.to_string());
        }
    }
    Ok(urls)
}

async fn download(ctx: &App, args: DownloadArgs) -> Result<ExitCode> {
    let mut urls = args.urls.clone();
    if let Some(batch) = &args.batch_file {
        urls.extend(read_batch(batch)?);
    }
    if urls.is_empty() {
        bail!("no URL given (pass URLs or -a FILE)");
    }
    let policy = args
        .on_no_proxy
        .or(ctx.config.on_no_proxy)
        .unwrap_or(NoProxyPolicy::Direct);
    let backend = if args.no_proxy_manager {
        None
    } else {
        match ctx.start_backend().await {
            Ok(b) => Some(Arc::new(tokio::sync::Mutex::new(b))),
            // A plugin that crashes or hangs at start falls under the
            // policy; a missing plugin or refused options are config errors.
            Err(StartError::Backend(e)) if e.is_fault() && policy == NoProxyPolicy::Direct => {
                tracing::warn!("{e}; downloading without a proxy (policy `direct`)");
                None
            }
            Err(e) => return Err(e.into_anyhow()),
        }
    };
    let (yt_dlp, origin) =
        ytdlp_locate::locate_or_install(args.yt_dlp.as_deref(), ctx.config.yt_dlp.as_deref())?;
    tracing::info!("yt-dlp: {} (from {origin})", yt_dlp.display());
    let settings = Settings {
        yt_dlp,
        max_attempts: args
            .max_attempts
            .or(ctx.config.max_attempts)
            .unwrap_or(3)
            .max(1),
        on_no_proxy: policy,
        output: args.output.clone().or_else(|| ctx.config.output.clone()),
        extra_args: args.ytdlp_args.clone(),
        run_timeout: Duration::from_secs(ctx.config.run_timeout_secs.unwrap_or(3600)),
        direct_socket_timeout_secs: 30,
    };
    let downloader = Downloader::new(backend, ctx.call_options(), settings);
    let progress = ProgressView::new(!args.json);
    let mut failed = Vec::new();
    for url in &urls {
        let bar = progress.start(url);
        let result = downloader
            .download(url, &Options::new(), |p| progress.update(&bar, p))
            .await;
        progress.finish(bar);
        if args.json {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &result)?;
            writeln!(out)?;
        } else if result.status == Status::Done {
            let file = result
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default();
            println!("done {url} -> {file}");
        }
        if result.status == Status::Failed {
            failed.push(result);
        }
    }
    for r in &failed {
        let kind = r.kind.map(|k| format!("{k}, ")).unwrap_or_default();
        eprintln!(
            "failed: {} ({kind}{} attempt{}): {}",
            r.url,
            r.attempts.len(),
            if r.attempts.len() == 1 { "" } else { "s" },
            r.error.as_deref().unwrap_or("unknown error")
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Progress bars on a terminal; nothing otherwise (the result lines say it).
struct ProgressView {
    enabled: bool,
}

impl ProgressView {
    fn new(enabled: bool) -> Self {
        ProgressView {
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }

    fn start(&self, url: &str) -> Option<indicatif::ProgressBar> {
        if !self.enabled {
            return None;
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:40!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(url.to_string());
        Some(bar)
    }

    fn update(&self, bar: &Option<indicatif::ProgressBar>, p: &crate::ytdlp_run::Progress) {
        if let Some(bar) = bar {
            if let Some(t) = p.total_bytes {
                bar.set_length(t as u64);
            }
            if let Some(d) = p.downloaded_bytes {
                bar.set_position(d as u64);
            }
        }
    }

    fn finish(&self, bar: Option<indicatif::ProgressBar>) {
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
}

async fn proxies_stats(ctx: &App, json: bool) -> Result<ExitCode> {
    let mut backend = ctx.start_backend().await.map_err(StartError::into_anyhow)?;
    let Some(stats) = backend.get_stats(&ctx.call_options()).await? else {
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

async fn proxies_get(ctx: &App, for_url: Option<&str>) -> Result<ExitCode> {
    let mut backend = ctx.start_backend().await.map_err(StartError::into_anyhow)?;
    let mut options = ctx.call_options();
    if let Some(url) = for_url {
        options.push(("host.url".to_string(), url.to_string()));
        options.push(("host.site".to_string(), crate::download::site_of(url)));
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

async fn proxies_change(ctx: &App, urls: &[String], add: bool) -> Result<ExitCode> {
    for u in urls {
        proxy_url::validate(u).map_err(|e| anyhow::anyhow!("{}: {e}", proxy_url::mask(u)))?;
    }
    let mut backend = ctx.start_backend().await.map_err(StartError::into_anyhow)?;
    let options = ctx.call_options();
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

async fn proxies_report(
    ctx: &App,
    url: &str,
    success: bool,
    failure: Option<FailureKind>,
    count: u32,
) -> Result<ExitCode> {
    let proxy =
        proxy_url::validate(url).map_err(|e| anyhow::anyhow!("{}: {e}", proxy_url::mask(url)))?;
    let mut backend = ctx.start_backend().await.map_err(StartError::into_anyhow)?;
    let options = ctx.call_options();
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
                let secs = until
                    .saturating_sub(crate::backend::now_ms())
                    .div_ceil(1000);
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

fn plugins_list(ctx: &App, json: bool) -> Result<ExitCode> {
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

async fn plugins_check(ctx: &App, file: &Path) -> Result<ExitCode> {
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

fn setup() -> Result<ExitCode> {
    let exe = ytdlp_locate::install_private()?;
    let version = ytdlp_locate::version(&exe)?;
    println!("yt-dlp {version} ready at {}", exe.display());
    Ok(ExitCode::SUCCESS)
}
