//! Compiled plugins kept on disk, so a plugin is compiled once, not per run.
//!
//! The key is a SHA-256 of the component's bytes plus wasmtime's own
//! compatibility hash of the engine (version, settings, CPU features): a
//! changed plugin or engine simply misses. Writes are atomic (temp file +
//! rename, see `ytdlp_contract::atomic_file`); an entry that fails to load is recompiled and replaced.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// How a component was obtained, for messages and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

impl CompileCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: Some(dir.into()),
        }
    }

    /// No cache: always compile.
    pub fn disabled() -> CompileCache {
        CompileCache { dir: None }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn key(engine: &Engine, bytes: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let mut sha = Sha256::new();
        sha.update(bytes);
        sha.update(h.finish().to_le_bytes());
        let digest = sha.finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The compiled component for `bytes`, from the cache or compiled now
    /// (and stored). Compile errors are returned as they are; cache I/O
    /// problems only cost a recompile.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, name, bytes)?, CacheOutcome::Compiled));
        };
        let path = dir.join(format!("{}.cwasm", Self::key(engine, bytes)));
        if path.is_file() {
            // Deserializing is loading native code: only from a directory
            // and a file that nobody but this user can have written.
            if let Err(why) = private(dir).and_then(|_| private(&path)) {
                tracing::warn!(
                    "not using the compiled plugin cache ({why}); compiling instead (fix: chmod 700 {} and remove foreign files)",
                    dir.display()
                );
                return Ok((compile(engine, name, bytes)?, CacheOutcome::Compiled));
            }
            // SAFETY: the file is one this cache wrote from a component it
            // compiled (the name is a hash of the source and the engine), in
            // a directory and a file only this user can write (checked just
            // above). wasmtime still checks its header and engine
            // compatibility and fails cleanly otherwise.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "compiled plugin cache entry unusable, recompiling: {e}");
                }
            }
        }
        let component = compile(engine, name, bytes)?;
        if let Err(e) = store(dir, &path, &component) {
            tracing::warn!(dir = %dir.display(), "cannot write the compiled plugin cache: {e:#}");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

/// A compile that takes longer than this is announced (at the default log
/// level), then reported every [`STILL_EVERY`]: a 40 MB Python component
/// takes 5-20 s, which silence makes look like a hang.
const ANNOUNCE_AFTER: Duration = Duration::from_secs(2);
const STILL_EVERY: Duration = Duration::from_secs(5);

/// `Component::new`, with word to the user when it is slow.
fn compile(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Component> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let started = Instant::now();
    let size_mb = bytes.len() as f64 / 1e6;
    let label = name.to_string();
    let watcher = std::thread::spawn(move || {
        let mut next = ANNOUNCE_AFTER;
        let mut announced = false;
        loop {
            let left = next.saturating_sub(started.elapsed());
            match wait.recv_timeout(left) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                // Finished (or the compile panicked and dropped the sender).
                _ => return announced,
            }
            if announced {
                tracing::warn!(
                    "still compiling plugin `{label}` ({} s so far)",
                    started.elapsed().as_secs()
                );
            } else {
                tracing::warn!(
                    "compiling plugin `{label}` ({size_mb:.1} MB) for first use; this happens once per plugin file and host version (`ytdlp-host plugins install FILE` does it ahead of time)"
                );
                announced = true;
            }
            next = started.elapsed() + STILL_EVERY;
        }
    });
    let out = Component::new(engine, bytes);
    drop(done);
    if watcher.join().unwrap_or(false) {
        tracing::warn!(
            "compiled plugin `{name}` in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(out?)
}

/// `path` is owned by this user and writable by no one else.
fn private(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not {me}",
            path.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o})",
            path.display(),
            m.mode() & 0o777
        ));
    }
    if m.file_type().is_symlink() {
        return Err(format!("{} is a symbolic link", path.display()));
    }
    Ok(())
}

fn store(dir: &Path, path: &Path, component: &Component) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    private(dir).map_err(|why| anyhow::anyhow!("{why}"))?;
    let bytes = component.serialize()?;
    ytdlp_contract::atomic_file::write(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_files_count_as_cache() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ytdlp-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(private(&dir).is_ok());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            private(&dir)
                .unwrap_err()
                .contains("writable by group or others")
        );
        let f = dir.join("x.cwasm");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(private(&f).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
