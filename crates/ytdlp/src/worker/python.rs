//! Finding the Python whose `yt_dlp` module is the configured yt-dlp.

use std::path::{Path, PathBuf};

use crate::locate;

/// Overrides the Python the workers run (else config `worker.python`, else
/// found from yt-dlp).
pub const PYTHON_ENV_VAR: &str = "YTDLP_HOST_PYTHON";

/// The Python that runs the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonSpec {
    pub python: PathBuf,
    /// Put first on `sys.path` (a zipapp yt-dlp: the module is inside it).
    pub sys_path: Option<PathBuf>,
    /// Where the choice came from, for logs.
    pub origin: String,
}

/// Finds the Python whose `yt_dlp` is the configured yt-dlp:
/// `$YTDLP_HOST_PYTHON`, config `worker.python`, the interpreter in
/// yt-dlp's shebang (a zipapp yt-dlp is put on `sys.path`), python3 on PATH
/// for a wrapper script (e.g. a pyenv shim), then the private venv's. A
/// standalone yt-dlp binary (no shebang) has no Python module: an error.
pub fn find_python(yt_dlp: &Path, configured: Option<&Path>) -> Result<PythonSpec, String> {
    if let Some(p) = std::env::var_os(PYTHON_ENV_VAR).filter(|v| !v.is_empty()) {
        return Ok(PythonSpec {
            python: PathBuf::from(p),
            sys_path: None,
            origin: PYTHON_ENV_VAR.to_string(),
        });
    }
    if let Some(p) = configured {
        return Ok(PythonSpec {
            python: p.to_path_buf(),
            sys_path: None,
            origin: "config `worker.python`".to_string(),
        });
    }
    let exe = if yt_dlp.components().count() == 1 {
        locate::search_path(yt_dlp).unwrap_or_else(|| yt_dlp.to_path_buf())
    } else {
        yt_dlp.to_path_buf()
    };
    let head = read_head(&exe, 4096)
        .map_err(|e| format!("cannot read yt-dlp at {}: {e}", exe.display()))?;
    match shebang_python(&head) {
        Shebang::Python(interp) => {
            let python = if interp.components().count() == 1 {
                locate::search_path(&interp).ok_or_else(|| {
                    format!("yt-dlp's interpreter `{}` is not on PATH", interp.display())
                })?
            } else {
                interp
            };
            Ok(PythonSpec {
                python,
                sys_path: is_zipapp(&head).then(|| exe.clone()),
                origin: format!("the shebang of {}", exe.display()),
            })
        }
        Shebang::Other => {
            let private = locate::private_venv().join("bin").join("python");
            locate::search_path("python3")
                .map(|p| PythonSpec {
                    python: p,
                    sys_path: None,
                    origin: format!("PATH ({} is a wrapper script)", exe.display()),
                })
                .or_else(|| {
                    private.is_file().then(|| PythonSpec {
                        python: private,
                        sys_path: None,
                        origin: "the private venv".to_string(),
                    })
                })
                .ok_or_else(|| "no python3 on PATH".to_string())
        }
        Shebang::None => Err(format!(
            "yt-dlp at {} is a standalone binary, not a Python script",
            exe.display()
        )),
    }
}

fn read_head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)?
        .take(n as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[derive(Debug, PartialEq, Eq)]
enum Shebang {
    /// A Python interpreter: a path, or a name to look up on PATH.
    Python(PathBuf),
    /// Some other interpreter (a shell wrapper).
    Other,
    /// No shebang (a binary).
    None,
}

fn shebang_python(head: &[u8]) -> Shebang {
    let Some(rest) = head.strip_prefix(b"#!") else {
        return Shebang::None;
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let Some(interp) = words.next() else {
        return Shebang::Other;
    };
    let interp = if Path::new(interp).file_name().is_some_and(|n| n == "env") {
        // `/usr/bin/env [-S] python3 [args]`
        match words.find(|w| !w.starts_with('-')) {
            Some(w) => w,
            None => return Shebang::Other,
        }
    } else {
        interp
    };
    let is_python = Path::new(interp)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("python"));
    if is_python {
        Shebang::Python(PathBuf::from(interp))
    } else {
        Shebang::Other
    }
}

/// A zipapp: a shebang line, then a zip archive.
fn is_zipapp(head: &[u8]) -> bool {
    head.iter()
        .position(|&b| b == b'\n')
        .is_some_and(|nl| head[nl + 1..].starts_with(b"PK\x03\x04"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs() {
        assert_eq!(
            shebang_python(b"#!/venv/bin/python3\nimport re\n"),
            Shebang::Python("/venv/bin/python3".into())
        );
        assert_eq!(
            shebang_python(b"#!/usr/bin/env python3\nPK\x03\x04..."),
            Shebang::Python("python3".into())
        );
        assert_eq!(
            shebang_python(b"#!/usr/bin/env -S python3.12 -E\n"),
            Shebang::Python("python3.12".into())
        );
        assert_eq!(
            shebang_python(b"#!/usr/bin/env bash\nexec ..."),
            Shebang::Other
        );
        assert_eq!(shebang_python(b"\x7fELF\x02\x01"), Shebang::None);
        assert!(is_zipapp(b"#!/usr/bin/env python3\nPK\x03\x04rest"));
        assert!(!is_zipapp(b"#!/usr/bin/python3\nimport sys\n"));
    }
}
