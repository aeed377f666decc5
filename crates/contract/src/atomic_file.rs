//! Writing a file so that a reader (another thread, another process, a
//! later run after a crash) sees the old content or the new, never half:
//! write a temp file with a unique name in the same directory, flush it to
//! disk, rename it over the target. The one helper for the compile cache,
//! installed plugins, the worker script and the bundled plugin's state.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name no other writer uses at the same time: a per-process random part
/// (std's hasher seed comes from the platform's randomness, wasi:random in a
/// plugin) and a per-call counter. `std::process::id` is not available to
/// wasm guests.
fn unique_suffix() -> String {
    use std::hash::BuildHasher;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let r = std::hash::RandomState::new().hash_one(n);
    format!("{r:016x}.{n}")
}

/// The temp file's path for `target`: a hidden sibling.
fn temp_for(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.tmp", unique_suffix()))
}

/// Writes `bytes` to `target` atomically and durably (the data is synced
/// before the rename). The directory must exist. On error the temp file is
/// removed and `target` is untouched.
pub fn write(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_for(target);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("ytdlp-contract-atomic-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("f.json");
        write(&target, b"one").unwrap();
        write(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert!(write(&dir.join("missing/x"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_names_differ_between_calls() {
        let t = Path::new("/d/f");
        assert_ne!(temp_for(t), temp_for(t));
    }
}
