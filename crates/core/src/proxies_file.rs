//! A proxies file (`--proxy-file`, `proxies_file`): read at start, and
//! re-read when it changes, in `serve` and in long batches. Proxies that
//! stay keep their health (the plugin is told only what was added and what
//! was removed); a bad line is reported with its file and line number and
//! the rest are used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use ytdlp_contract::proxy_list::{self, ProxyEntry};

use crate::source::ProxySource;

/// How often the file's modification time and size are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// The entries of a proxies file; bad lines are logged (with the file and
/// the line) and skipped.
pub fn read(path: &Path) -> std::io::Result<Vec<ProxyEntry>> {
    let text = std::fs::read_to_string(path)?;
    let parsed = proxy_list::parse_list(&text);
    for (line, e) in &parsed.bad {
        tracing::warn!("{}:{line}: not a proxy, skipped: {e}", path.display());
    }
    Ok(parsed.entries.into_iter().map(|(_, e)| e).collect())
}

/// What changed between two readings: entries to remove (by URL) and to
/// add. An entry whose metadata changed is added again (plugins update a
/// known proxy's metadata on add, keeping its health).
pub fn diff(old: &[ProxyEntry], new: &[ProxyEntry]) -> (Vec<String>, Vec<ProxyEntry>) {
    let key = |e: &ProxyEntry| e.url.expose().to_string();
    let old_by: BTreeMap<String, &ProxyEntry> = old.iter().map(|e| (key(e), e)).collect();
    let new_by: BTreeMap<String, &ProxyEntry> = new.iter().map(|e| (key(e), e)).collect();
    let removed = old_by
        .keys()
        .filter(|k| !new_by.contains_key(*k))
        .cloned()
        .collect();
    let added = new_by
        .iter()
        .filter(|(k, e)| old_by.get(*k).is_none_or(|o| o.meta != e.meta))
        .map(|(_, e)| (*e).clone())
        .collect();
    (removed, added)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watches `path` and tells `source` what changed, until the source is
/// dropped. `current` is what the source was started with.
pub fn watch(path: PathBuf, current: Vec<ProxyEntry>, source: Weak<dyn ProxySource>) {
    tokio::spawn(async move {
        let mut current = current;
        let mut seen = stamp(&path);
        loop {
            tokio::time::sleep(POLL).await;
            let Some(source) = source.upgrade() else {
                return;
            };
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            seen = now;
            let fresh = match read(&path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(
                        "proxies file {}: {e}; keeping the proxies read before",
                        path.display()
                    );
                    continue;
                }
            };
            apply(source, &path, &mut current, fresh).await;
        }
    });
}

async fn apply(
    source: Arc<dyn ProxySource>,
    path: &Path,
    current: &mut Vec<ProxyEntry>,
    fresh: Vec<ProxyEntry>,
) {
    let (removed, added) = diff(current, &fresh);
    if removed.is_empty() && added.is_empty() {
        return;
    }
    for e in &fresh {
        ytdlp_host_text::secrets::register_proxy(&e.url);
    }
    let r = if removed.is_empty() {
        Ok(Some(0))
    } else {
        source.remove_proxies(&removed).await
    };
    let a = if added.is_empty() {
        Ok(Some(0))
    } else {
        source.add_proxies(&added).await
    };
    match (r, a) {
        (Ok(Some(_)), Ok(Some(_))) => {
            tracing::info!(
                "proxies file {} changed: {} added or updated, {} removed",
                path.display(),
                added.len(),
                removed.len()
            );
            *current = fresh;
        }
        (Ok(None), _) | (_, Ok(None)) => tracing::warn!(
            "proxies file {} changed, but backend `{}` cannot change its list while running",
            path.display(),
            source.name()
        ),
        (Err(e), _) | (_, Err(e)) => tracing::warn!(
            "proxies file {} changed, but the backend did not take it: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(lines: &[&str]) -> Vec<ProxyEntry> {
        lines
            .iter()
            .map(|l| proxy_list::parse_entry(l).unwrap())
            .collect()
    }

    #[test]
    fn only_what_changed_is_added_or_removed() {
        let old = entries(&["http://a:1", "http://b:1;region=DE", "http://c:1"]);
        let new = entries(&["http://a:1", "http://b:1;region=FR", "http://d:1"]);
        let (removed, added) = diff(&old, &new);
        assert_eq!(removed, ["http://c:1"]);
        let added: Vec<String> = added.iter().map(|e| e.to_line()).collect();
        assert_eq!(added, ["http://b:1;region=FR", "http://d:1"]);
        assert_eq!(diff(&new, &new), (vec![], vec![]));
    }
}
