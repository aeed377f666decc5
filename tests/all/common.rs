//! Running the `ytdlp-host` binary in an isolated environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use ytdlp_host_tests as harness;

/// A private home for one test: XDG dirs, plugin dir, output dir.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir_all(env.plugin_dir()).unwrap();
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.path().join("plugins")
    }

    pub fn out_dir(&self) -> PathBuf {
        self.path().join("out")
    }

    /// Copies a fixture plugin into the plugin directory as NAME.wasm.
    pub fn install_plugin(&self, fixture: &str, name: &str) -> PathBuf {
        let to = self.plugin_dir().join(format!("{name}.wasm"));
        std::fs::copy(fixture, &to).expect("copy fixture plugin");
        to
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The binary, with this env's XDG dirs, run in this env's directory.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ytdlp-host"));
        c.current_dir(self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env_remove("YTDLP_HOST_LOG")
            // The real yt-dlp from PATH; when it is missing, a path that
            // does not exist, so the host never installs a private copy (the
            // tests that download are ignored without yt-dlp anyway).
            .env(
                "YTDLP_HOST_YT_DLP",
                harness::find("yt-dlp")
                    .unwrap_or_else(|| "/nonexistent/yt-dlp-is-not-installed".into()),
            )
            .arg("--plugin-dir")
            .arg(self.plugin_dir());
        c
    }

    /// `ytdlp-host download --json -o OUT/%(id)s.%(ext)s ARGS...`
    pub fn download(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.arg("download")
            .arg("--json")
            .arg("-o")
            .arg(self.out_dir().join("%(id)s.%(ext)s"))
            .args(args);
        Run::of(c)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(args);
        Run::of(c)
    }
}

/// A finished run of the binary.
pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn of(mut c: Command) -> Run {
        let output = c.output().expect("run ytdlp-host");
        Run { output }
    }

    pub fn ok(&self) -> bool {
        self.output.status.success()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Every JSON event on stdout.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nstderr: {}", self.stderr()))
            })
            .collect()
    }

    /// The per-URL results (`done` and `failed` events), in the order the
    /// URLs were given (ids count up from submission).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let mut results: Vec<serde_json::Value> = self
            .events()
            .into_iter()
            .filter(|e| e["event"] == "done" || e["event"] == "failed")
            .collect();
        results.sort_by_key(|r| {
            r["id"]
                .as_str()
                .and_then(|id| id.rsplit('-').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        });
        results
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                self.stdout(),
                self.stderr()
            )
        })
    }

    /// For assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "status: {}\nstdout:\n{}\nstderr:\n{}",
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
}

/// The proxies of a result's attempts, and their kinds.
pub fn attempts(result: &serde_json::Value) -> Vec<(String, Option<String>)> {
    result["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["proxy"].as_str().unwrap_or("direct").to_string(),
                a["kind"].as_str().map(str::to_string),
            )
        })
        .collect()
}
