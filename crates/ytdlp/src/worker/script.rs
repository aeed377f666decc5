//! The worker script: embedded in the binary, written once to the cache
//! directory (by content hash) so Python can run it as a file.

use std::fmt::Write as _;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// The worker script.
pub const SCRIPT: &str = include_str!("worker.py");

/// The script's path in the cache directory; `None` if it cannot be written
/// (the script is then passed with `-c`).
pub fn script_file() -> Option<PathBuf> {
    let hash = Sha256::digest(SCRIPT.as_bytes());
    let mut name = String::from("ytdlp_worker-");
    for b in &hash[..8] {
        let _ = write!(name, "{b:02x}");
    }
    name.push_str(".py");
    let dir = ytdlp_host_config::cache_dir().join("worker");
    let path = dir.join(&name);
    if std::fs::read(&path).is_ok_and(|b| b == SCRIPT.as_bytes()) {
        return Some(path);
    }
    std::fs::create_dir_all(&dir).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    ytdlp_contract::atomic_file::write(&path, SCRIPT.as_bytes()).ok()?;
    Some(path)
}
