//! A plugin's grants resolved against the world, once, when the plugin
//! starts: granted directories must exist, granted host names are looked
//! up. The config only checked their syntax.

use anyhow::{Result, bail};
use ytdlp_host_config::{DirGrant, Grants};

use super::http::HttpPolicy;
use super::tcp::TcpPolicy;

/// What one plugin may reach, ready for each of its instances.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub(crate) dirs: Vec<DirGrant>,
    pub(crate) tcp: TcpPolicy,
    pub(crate) http: HttpPolicy,
    pub(crate) env: Vec<String>,
}

impl Policy {
    /// Checks and resolves `grants`. Blocking (filesystem, DNS): call it on
    /// a blocking thread.
    pub fn resolve(grants: &Grants) -> Result<Policy> {
        grants.validate()?;
        for dir in &grants.dirs {
            if !dir.host.is_dir() {
                bail!("dirs: {} is not a directory", dir.host.display());
            }
        }
        Ok(Policy {
            dirs: grants.dirs.clone(),
            tcp: TcpPolicy::resolve(&grants.tcp)?,
            http: HttpPolicy::parse(&grants.http)?,
            env: grants.env.clone(),
        })
    }
}
