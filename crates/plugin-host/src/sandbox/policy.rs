//! A plugin's grants resolved against the world, once, when the plugin
//! starts: granted directories must exist, granted host names are looked
//! up. The config only checked their syntax.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use ytdlp_host_config::{DirGrant, Grants, HostGrants};

use super::http::HttpPolicy;
use super::keyvalue::{self, KvGrant};
use super::tcp::TcpPolicy;

/// What one plugin may reach, ready for each of its instances.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub(crate) dirs: Vec<DirGrant>,
    pub(crate) tcp: TcpPolicy,
    pub(crate) http: HttpPolicy,
    pub(crate) env: Vec<String>,
    pub(crate) keyvalue: Option<KvGrant>,
}

impl Policy {
    /// Checks and resolves `plugin`'s `grants` (and adds the host's own);
    /// opens the store if a key-value bucket is granted. Blocking
    /// (filesystem, DNS): call it on a blocking thread.
    pub fn resolve(plugin: &str, grants: &Grants, host: &HostGrants) -> Result<Policy> {
        grants.validate()?;
        let protected: Vec<PathBuf> = host.protected.iter().map(|p| absolute(p)).collect();
        for dir in &grants.dirs {
            if !dir.host.is_dir() {
                bail!("dirs: {} is not a directory", dir.host.display());
            }
            let granted = absolute(&dir.host);
            if let Some(p) = protected
                .iter()
                .find(|p| granted.starts_with(p) || p.starts_with(&granted))
            {
                bail!(
                    "dirs: {} overlaps {}, which the host keeps to itself (its compile cache, config, plugins or state); grant a directory outside it",
                    dir.host.display(),
                    p.display()
                );
            }
        }
        let mut dirs = grants.dirs.clone();
        dirs.extend(host.dirs.iter().cloned());
        Ok(Policy {
            dirs,
            tcp: TcpPolicy::resolve(&grants.tcp)?,
            http: HttpPolicy::parse(&grants.http)?,
            env: grants.env.clone(),
            keyvalue: keyvalue::grant(plugin, grants, host)?,
        })
    }
}

/// `p` made absolute with symlinks resolved, as far as it exists (a
/// protected directory need not exist yet; a symlink must not hide an
/// overlap).
fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => absolute(parent).join(name),
        _ => std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(host: &Path) -> Grants {
        Grants {
            dirs: vec![DirGrant {
                host: host.to_path_buf(),
                guest: "/data".into(),
                rw: true,
            }],
            ..Grants::default()
        }
    }

    #[test]
    fn grants_that_overlap_the_hosts_own_directories_are_refused() {
        let root = std::env::temp_dir().join(format!("ytdlp-policy-{}", std::process::id()));
        let cache = root.join("cache/ytdlp-host");
        let data = root.join("data");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(&cache, root.join("link")).unwrap();
        let host = HostGrants {
            protected: vec![cache.clone(), root.join("state/not-yet-created")],
            ..HostGrants::default()
        };
        for bad in [
            root.clone(),
            cache.clone(),
            root.join("link"),
            root.join("cache"),
        ] {
            let e = Policy::resolve("p", &dir(&bad), &host)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("overlaps") && e.contains("keeps to itself"),
                "{}: {e}",
                bad.display()
            );
        }
        assert!(Policy::resolve("p", &dir(&data), &host).is_ok());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
