//! `ytdlp-host token new`: a random bearer token for `serve`, printed once;
//! only its SHA-256 is stored.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use ytdlp_host_core::HostBuilder;
use ytdlp_host_service::auth::{self, Scope};

use super::{say, tell};

pub(crate) fn new(builder: &HostBuilder, read_only: bool, file: Option<&Path>) -> Result<ExitCode> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => ytdlp_host_service::tokens_file(&builder.config_ref().serve).0,
    };
    let scope = if read_only { Scope::Read } else { Scope::Write };
    let token = auth::new_token()?;
    auth::append_token(&path, &token, scope)?;
    // The token alone on stdout (for a script); the rest on stderr.
    say!("{token}");
    tell!(
        "a `{}` token; its SHA-256 is in {} (the token itself is not stored: keep it now). Clients send `Authorization: Bearer TOKEN`.",
        scope.name(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
