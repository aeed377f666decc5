//! Finding yt-dlp: `--yt-dlp`, then `YTDLP_HOST_YT_DLP`, then the config's
//! `yt_dlp`, then `PATH`, then a private copy the host manages in its data
//! directory (a Python venv with a pinned yt-dlp from PyPI), installed on
//! first need or by `ytdlp-host setup`.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use ytdlp_host_config as config;

/// The yt-dlp release the private copy pins (tested against it).
pub const PINNED_YT_DLP: &str = "2026.10.26";
pub const ENV_VAR: &str = "YTDLP_HOST_YT_DLP";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    Config,
    Path,
    Private,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--yt-dlp",
            Origin::Env => ENV_VAR,
            Origin::Config => "config `yt_dlp`",
            Origin::Path => "PATH",
            Origin::Private => "private copy",
        })
    }
}

/// The private venv.
pub fn private_venv() -> PathBuf {
    config::data_dir().join("venv")
}

fn private_exe() -> PathBuf {
    private_venv().join("bin").join("yt-dlp")
}

/// Looks in order; does not install anything.
pub fn locate(flag: Option<&Path>, from_config: Option<&Path>) -> Option<(PathBuf, Origin)> {
    if let Some(p) = flag {
        return Some((p.to_path_buf(), Origin::Flag));
    }
    if let Some(p) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(p), Origin::Env));
    }
    if let Some(p) = from_config {
        return Some((p.to_path_buf(), Origin::Config));
    }
    if let Some(p) = search_path("yt-dlp") {
        return Some((p, Origin::Path));
    }
    let private = private_exe();
    private.is_file().then_some((private, Origin::Private))
}

/// Like [`locate`], but installs the private copy when nothing is found.
pub fn locate_or_install(
    flag: Option<&Path>,
    from_config: Option<&Path>,
) -> Result<(PathBuf, Origin)> {
    if let Some(found) = locate(flag, from_config) {
        return Ok(found);
    }
    eprintln!(
        "yt-dlp was not found (--yt-dlp, {ENV_VAR}, config `yt_dlp`, PATH); installing yt-dlp=={PINNED_YT_DLP} into {} (once; `ytdlp-host setup` does this explicitly)",
        private_venv().display()
    );
    let exe = install_private()?;
    Ok((exe, Origin::Private))
}

/// Creates (or updates) the private venv with the pinned yt-dlp.
pub fn install_private() -> Result<PathBuf> {
    let python = search_path("python3").context(
        "yt-dlp is not installed and python3 is not on PATH to install it: \
         install yt-dlp (e.g. `pip install yt-dlp`) or pass --yt-dlp PATH",
    )?;
    let venv = private_venv();
    if !venv.join("bin").join("python").exists() {
        std::fs::create_dir_all(venv.parent().unwrap_or(Path::new(".")))?;
        run_quiet(Command::new(&python).arg("-m").arg("venv").arg(&venv)).with_context(|| {
            format!(
                "cannot create a Python venv at {} (on Debian: apt-get install python3-venv)",
                venv.display()
            )
        })?;
    }
    run_quiet(
        Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("yt-dlp=={PINNED_YT_DLP}")),
    )
    .with_context(|| {
        format!(
            "cannot install yt-dlp=={PINNED_YT_DLP} into {}",
            venv.display()
        )
    })?;
    let exe = private_exe();
    if !exe.is_file() {
        bail!("pip finished but {} does not exist", exe.display());
    }
    Ok(exe)
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        bail!(
            "{} failed: {}",
            cmd.get_program().to_string_lossy(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(())
}

/// `yt-dlp --version`, to tell a broken install from a working one.
pub fn version(exe: &Path) -> Result<String> {
    let out = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "{} --version failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The first executable `name` on PATH.
pub fn search_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    let name = name.as_ref();
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
