//! Bearer tokens: read from `[serve] tokens_file` (SHA-256 digests, or the
//! tokens themselves) and `YTDLP_HOST_TOKEN`, compared in constant time,
//! with two scopes: `read` (GET, metrics) and `write` (everything).
//!
//! A token file line is `sha256:HEX [SCOPE]` or `TOKEN [SCOPE]`, `SCOPE`
//! being `read` or `write` (the default); blank lines and lines starting
//! with `#` are skipped. `ytdlp-host token new` appends a digest line and
//! prints the token once.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The environment variable holding one `write` token.
pub const TOKEN_ENV: &str = "YTDLP_HOST_TOKEN";
/// Shortest token taken (ours are 43 characters).
pub const MIN_TOKEN_LEN: usize = 16;
const DIGEST_PREFIX: &str = "sha256:";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// GET requests, `/metrics`.
    Read,
    /// Everything.
    Write,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        }
    }
}

/// The accepted tokens, as SHA-256 digests only (a token is never kept).
#[derive(Debug, Default)]
pub struct TokenSet {
    entries: Vec<([u8; 32], Scope)>,
    /// Lines holding a token itself rather than its digest.
    pub plain_in_file: usize,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A token file's line, and its digest line.
pub fn digest_line(token: &str, scope: Scope) -> String {
    let hex: String = digest(token).iter().map(|b| format!("{b:02x}")).collect();
    format!("{DIGEST_PREFIX}{hex} {}", scope.name())
}

impl TokenSet {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The token file (if any) and the environment's token (if any).
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<TokenSet> {
        let mut set = TokenSet::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read tokens_file {}", path.display()))?;
            set.parse_file(&text)
                .with_context(|| format!("tokens_file {}", path.display()))?;
        }
        if let Some(t) = env {
            check_token(t).with_context(|| format!("${TOKEN_ENV}"))?;
            set.entries.push((digest(t), Scope::Write));
        }
        Ok(set)
    }

    fn parse_file(&mut self, text: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let secret = fields.next().expect("a non-empty line has a field");
            let scope = match fields.next() {
                None => Scope::Write,
                Some(s) => Scope::parse(s).with_context(|| {
                    format!("line {}: scope `{s}` is not `read` or `write`", n + 1)
                })?,
            };
            if fields.next().is_some() {
                bail!(
                    "line {}: expected `sha256:HEX [read|write]` or `TOKEN [read|write]`",
                    n + 1
                );
            }
            let d = match secret.strip_prefix(DIGEST_PREFIX) {
                Some(hex) => parse_hex(hex)
                    .with_context(|| format!("line {}: `sha256:` needs 64 hex digits", n + 1))?,
                None => {
                    check_token(secret).with_context(|| format!("line {}", n + 1))?;
                    self.plain_in_file += 1;
                    digest(secret)
                }
            };
            self.entries.push((d, scope));
        }
        Ok(())
    }

    /// The scope of a presented token; `None` if it is not one of ours.
    /// Every stored digest is compared, without an early exit.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        let d = digest(presented);
        let mut found = subtle::Choice::from(0u8);
        let mut write = subtle::Choice::from(0u8);
        for (stored, scope) in &self.entries {
            let m = stored.ct_eq(&d);
            found |= m;
            write |= m & subtle::Choice::from(u8::from(*scope == Scope::Write));
        }
        if !bool::from(found) {
            return None;
        }
        Some(if bool::from(write) {
            Scope::Write
        } else {
            Scope::Read
        })
    }
}

fn check_token(t: &str) -> Result<()> {
    if t.chars().count() < MIN_TOKEN_LEN {
        bail!(
            "a token must be at least {MIN_TOKEN_LEN} characters (`ytdlp-host token new` makes one)"
        );
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("a token may not hold spaces or control characters");
    }
    Ok(())
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new random token: 32 bytes from the OS, URL-safe base64.
pub fn new_token() -> Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The default token file: `$XDG_CONFIG_HOME/ytdlp-host/tokens`.
pub fn default_tokens_file() -> PathBuf {
    ytdlp_host_config::config_dir().join("tokens")
}

/// Appends a token's digest line to `path` (created `0600`, its directory
/// `0700`).
pub fn append_token(path: &Path, token: &str, scope: Scope) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{}", digest_line(token, scope))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The token in an `Authorization: Bearer TOKEN` header value (the scheme
/// is case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "tok-0123456789abcdef";
    const T2: &str = "tok-read-0123456789";

    #[test]
    fn digests_and_plain_tokens_with_their_scopes() {
        let text = format!("# tokens\n\n{}\n{T2} read\n", digest_line(T1, Scope::Write));
        let mut set = TokenSet::default();
        set.parse_file(&text).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.plain_in_file, 1);
        assert_eq!(set.scope_of(T1), Some(Scope::Write));
        assert_eq!(set.scope_of(T2), Some(Scope::Read));
        assert_eq!(set.scope_of("tok-0123456789abcdeF"), None);
        assert_eq!(set.scope_of(""), None);
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, needle) in [
            ("sha256:abc", "line 1: `sha256:` needs 64 hex digits"),
            ("\nshort", "line 2"),
            (&format!("{T1} admin"), "scope `admin`"),
            (&format!("{T1} read extra"), "expected"),
        ] {
            let e = format!("{:#}", TokenSet::default().parse_file(text).unwrap_err());
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = format!("{:#}", TokenSet::load(None, Some("short")).unwrap_err());
        assert!(
            e.contains("YTDLP_HOST_TOKEN") && e.contains("at least 16"),
            "{e}"
        );
    }

    #[test]
    fn a_new_token_is_appended_as_a_digest_in_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/tokens");
        let t = new_token().unwrap();
        assert_eq!(t.len(), 43);
        assert_ne!(t, new_token().unwrap());
        append_token(&path, &t, Scope::Read).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&t), "the token itself is not stored");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let set = TokenSet::load(Some(&path), None).unwrap();
        assert_eq!(set.scope_of(&t), Some(Scope::Read));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
