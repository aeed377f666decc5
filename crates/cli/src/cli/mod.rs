//! The `ytdlp-host` command line. Flags are defined once, here (clap
//! derive); `--help` is generated from them. Each command group runs in its
//! own module: `download`, `proxies`, `plugins`.

mod download;
mod output;
mod plugins;
mod proxies;
mod token;

use output::{say, tell};

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use ytdlp_contract::FailureKind;
use ytdlp_contract::options::is_host_key;
use ytdlp_host_config::{self as config, NoProxyPolicy, RunnerKind};
use ytdlp_host_core::HostBuilder;
use ytdlp_host_ytdlp::locate;

#[derive(Debug, Parser)]
#[command(
    name = "ytdlp-host",
    version,
    about = "Run yt-dlp behind rotating proxies chosen by WebAssembly plugins",
    after_help = "Config: --config FILE, else $XDG_CONFIG_HOME/ytdlp-host/config.toml (never one from the current directory; paths in it are relative to its directory).\nLogs: -v/-vv, or YTDLP_HOST_LOG=debug."
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
    /// Backend plugin by name (file stem in the plugin directory) [default: memory]; several,
    /// comma-separated (`postgres,memory`), are asked in that order.
    #[arg(long, global = true, value_name = "NAME[,NAME...]")]
    pub backend: Option<String>,
    /// Backend option for this run, merged over the config's (repeatable).
    #[arg(long = "backend-opt", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub backend_opts: Vec<(String, String)>,
    /// Add a proxy to the bundled memory backend's list (repeatable): `URL`, or with its
    /// metadata `URL;region=DE;tags=residential;tier=1`. A URL without a scheme is http://.
    #[arg(long = "proxy", global = true, value_name = "URL")]
    pub proxies: Vec<String>,
    /// Read the bundled backend's proxies from FILE (one per line: `scheme://user:pass@host:port`,
    /// `host:port`, `user:pass@host:port` or `host:port:user:pass`, each with an optional
    /// `;region=..;tags=..;tier=..`; `#` comments). Re-read when it changes.
    #[arg(long = "proxy-file", global = true, value_name = "FILE")]
    pub proxy_file: Option<PathBuf>,
    /// Only proxies in this region (ISO 3166 country code such as DE, optionally with a
    /// sub-region: US-CA), for every download (repeatable: any of them).
    #[arg(long = "region", global = true, value_name = "CC")]
    pub regions: Vec<String>,
    /// Only proxies with this tag (repeatable: all of them).
    #[arg(long = "tag", global = true, value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only proxies of this tier or a cheaper one (0 is the cheapest).
    #[arg(long = "max-tier", global = true, value_name = "N")]
    pub max_tier: Option<u8>,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log lines as text, or as one JSON object per line (for a log collector).
    #[arg(long, global = true, default_value = "text", value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: String,
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
    /// Run the HTTP API (POST /downloads, GET/DELETE /downloads/{id},
    /// GET /proxies/stats, GET /metrics, GET /healthz, GET /openapi.json),
    /// reloading the backend plugin when its file changes. Needs a token
    /// (`token new`) to listen beyond loopback.
    Serve(ServeArgs),
    /// Bearer tokens for `serve`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Install the pinned yt-dlp into the host's private venv.
    Setup,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start) [default: [serve] listen,
    /// else 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Downloads running at once.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_JOBS))]
    pub max_concurrent: usize,
    /// Downloads waiting or running at most; more get 503.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub queue_limit: usize,
    /// On SIGINT/SIGTERM/SIGHUP, how long running downloads may finish (a
    /// second signal stops at once).
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=config::MAX_GRACE_SECS))]
    pub grace_secs: u64,
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
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=config::MAX_ATTEMPTS as i64))]
    pub max_attempts: Option<u32>,
    /// When the backend has no proxy: wait for the next free one (when the backend says when),
    /// fail the URL, or download directly [default: wait when any proxy or a plugin of your own
    /// is configured, direct only when none is].
    #[arg(long, value_name = "POLICY", value_parser = named::<NoProxyPolicy>(&NoProxyPolicy::NAMES))]
    pub on_no_proxy: Option<NoProxyPolicy>,
    /// Under policy `wait`: the longest one URL waits, in all, for its site's next free proxy
    /// [default: 600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=config::MAX_WAIT_SECS))]
    pub max_wait: Option<u64>,
    /// Downloads at once (one backend shared by all).
    #[arg(short = 'j', long, default_value_t = 1, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_JOBS))]
    pub jobs: usize,
    /// How yt-dlp runs: warm Python workers, or one process per attempt [default: worker when
    /// yt-dlp's Python module imports, else process].
    #[arg(long, value_name = "RUNNER", value_parser = named::<RunnerKind>(&RunnerKind::NAMES))]
    pub runner: Option<RunnerKind>,
    /// One JSON event per line on stdout (queued, started, progress,
    /// retried, done, failed, then a summary); done/failed carry the result.
    #[arg(long)]
    pub json: bool,
    /// Arguments passed to yt-dlp as they are (after `--`).
    #[arg(last = true, value_name = "YT-DLP ARGS")]
    pub ytdlp_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a random token: printed once on stdout, its SHA-256 appended to the token file
    /// ([serve] tokens_file, else $XDG_CONFIG_HOME/ytdlp-host/tokens), which `serve` reads.
    New {
        /// A token that may only read (GET, metrics).
        #[arg(long)]
        read_only: bool,
        /// The token file to append to.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
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
        #[arg(long, value_name = "KIND", value_parser = named::<FailureKind>(&FailureKind::NAMES))]
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
    /// Check a .wasm file, copy it into the plugin directory (atomically) and compile it
    /// ahead, so its first use starts in milliseconds; refuses a file that fails the checks.
    Install {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The conformance kit: exercise a plugin through the contract without yt-dlp (init with
    /// the --backend-opt options, get-proxy, every report, stats, timings); exit non-zero on
    /// a failure.
    Test {
        /// A .wasm file, or the name of a plugin (`memory`: the bundled one).
        #[arg(value_name = "FILE|NAME")]
        file: PathBuf,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
        /// get-proxy calls in the repeat check.
        #[arg(long, default_value_t = 100, value_name = "N")]
        repeat: u32,
    },
}

/// Most downloads at once (each may hold a yt-dlp process or worker).
const MAX_JOBS: u64 = 256;

/// A parser for one of a fixed list of names (listed in `--help`).
fn named<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Debug,
{
    PossibleValuesParser::new(names.iter().copied())
        .map(|s| s.parse::<T>().expect("a listed name parses"))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    if is_host_key(k) {
        return Err(format!(
            "`{k}`: keys starting with `host.` are reserved for the host"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The signals that stop the host: SIGINT (Ctrl-C), SIGTERM, and SIGHUP (a
/// closed terminal or SSH session: yt-dlp runs in its own process group, so
/// the terminal's hangup reaches only the host, which must take its
/// children along).
pub(crate) struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(crate) fn new() -> Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next stop signal's name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// The first stop signal; a second one, while the first is being handled
/// (a graceful stop that takes too long), exits at once (the children die
/// with the host: their parent-death signal).
pub(crate) async fn stop_then_force(mut signals: StopSignals) -> &'static str {
    let first = signals.recv().await;
    tokio::spawn(async move {
        let again = signals.recv().await;
        tell!("{again} again: exiting now");
        std::process::exit(130);
    });
    first
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
            tell!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            tell!("error: {e:#}");
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every line cleaned (secrets redacted, control characters escaped),
        // JSON lines too: a masked or redacted value stays a JSON string.
        .with_writer(output::CleanStderrMaker)
        .with_target(false);
    let _ = if g.log_format == "json" {
        // One object per line, control characters escaped: a log collector
        // reads it as it is, and no message can forge a line.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .try_init()
    };
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let (config, _path) = config::load(cli.global.config.as_deref())?;
    let g = &cli.global;
    let mut builder = HostBuilder::new().config(config);
    if let Some(dir) = &g.plugin_dir {
        builder = builder.plugin_dir(dir);
    }
    if let Some(names) = &g.backend {
        builder = builder.backends(names.split(',').map(str::to_string).collect());
    }
    for (k, v) in &g.backend_opts {
        builder = builder.backend_option(k, v);
    }
    for p in &g.proxies {
        builder = builder.proxy(p);
    }
    if let Some(f) = &g.proxy_file {
        builder = builder.proxies_file(f);
    }
    builder = builder.regions(g.regions.clone()).tags(g.tags.clone());
    if let Some(t) = g.max_tier {
        builder = builder.max_tier(t);
    }
    builder.validate()?;
    match cli.command {
        Command::Download(args) => download::run(builder, args).await,
        Command::Serve(args) => serve(builder, args).await,
        // Queries: the bundled backend reads its saved health, writes none.
        Command::Proxies(ProxiesCommand::Stats { json }) => {
            proxies::stats(&builder.read_only(true), json).await
        }
        Command::Proxies(ProxiesCommand::Get { for_url }) => {
            proxies::get(&builder.read_only(true), for_url.as_deref()).await
        }
        Command::Proxies(ProxiesCommand::Add { urls }) => {
            proxies::change(&builder, &urls, true).await
        }
        Command::Proxies(ProxiesCommand::Remove { urls }) => {
            proxies::change(&builder, &urls, false).await
        }
        Command::Proxies(ProxiesCommand::Report {
            url,
            success,
            failure,
            count,
        }) => proxies::report(&builder, &url, success, failure, count).await,
        Command::Plugins(PluginsCommand::List { json }) => plugins::list(&builder, json),
        Command::Plugins(PluginsCommand::Check { file }) => plugins::check(&builder, &file).await,
        Command::Plugins(PluginsCommand::Install { file }) => {
            plugins::install(&builder, &file).await
        }
        Command::Plugins(PluginsCommand::Test { file, json, repeat }) => {
            plugins::test(&builder, &file, json, repeat).await
        }
        Command::Token(TokenCommand::New { read_only, file }) => {
            token::new(&builder, read_only, file.as_deref())
        }
        Command::Setup => setup(),
    }
}

/// `ytdlp-host serve`.
async fn serve(builder: HostBuilder, args: ServeArgs) -> Result<ExitCode> {
    let builder = builder.concurrency(args.max_concurrent);
    ytdlp_host_service::serve(
        builder,
        ytdlp_host_service::ServeOptions {
            listen: args.listen,
            max_concurrent: args.max_concurrent,
            queue_limit: args.queue_limit,
            grace: Duration::from_secs(args.grace_secs),
        },
        stop_then_force(StopSignals::new()?),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn setup() -> Result<ExitCode> {
    let exe = locate::install_private()?;
    let version = locate::version(&exe)?;
    say!("yt-dlp {version} ready at {}", exe.display());
    Ok(ExitCode::SUCCESS)
}
