//! The request policy: which yt-dlp options a caller of the HTTP API may
//! give, whatever the runner, and the confinement of every output path to
//! the download directory.
//!
//! One allowlist ([`ALLOWED`]): format selection, rate limits, retries,
//! subtitles, metadata files, filters, and output templates relative to the
//! download directory. Everything else is refused, naming the option (an
//! admin may widen the list, explicitly, in `[serve] allow_ytdlp_options`).
//! The checked arguments are written back in one canonical form
//! (`--long-name=VALUE`), so yt-dlp reads exactly what was checked: no
//! abbreviation, no cluster of short flags, no value read as an option.
//!
//! Output confinement follows what yt-dlp does with a path: `-P` and `-o`
//! take an optional `TYPES:` prefix (case-insensitive), `~` and `$VAR` are
//! expanded, `-P` values are stripped of spaces, an absolute template
//! ignores the home path, and a field's value may be `..` (yt-dlp replaces
//! `/` in values, not a whole `..`). So a template must be relative, with
//! no `~`, `$`, `.`/`..` component, and every directory component that
//! holds a field must hold a literal character besides dots; a path's
//! existing directories must not lead outside through a symlink.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Component, Path, PathBuf};

use ytdlp_host_config::OptionArity;

use crate::args;

/// What an allowed option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    Nothing,
    /// A value, checked only for control characters and length.
    Value,
    /// `-o`: `[TYPES:]TEMPLATE`, confined.
    Template,
    /// `-P`: `[TYPES:]PATH`, confined and rewritten under the root.
    Path,
}

/// The built-in allowlist: names (the first long one is written back) and
/// what each takes. Every one is also accepted by the worker runner (a test
/// checks), so the API accepts the same options whatever the runner.
pub const ALLOWED: &[(&[&str], Takes)] = &[
    // Format selection
    (&["-f", "--format"], Takes::Value),
    (&["-S", "--format-sort"], Takes::Value),
    (&["--merge-output-format"], Takes::Value),
    // Output, inside the download directory
    (&["-o", "--output"], Takes::Template),
    (&["-P", "--paths"], Takes::Path),
    (&["--restrict-filenames"], Takes::Nothing),
    (&["--no-restrict-filenames"], Takes::Nothing),
    (&["--windows-filenames"], Takes::Nothing),
    (&["--no-windows-filenames"], Takes::Nothing),
    (&["--trim-filenames"], Takes::Value),
    (&["-w", "--no-overwrites"], Takes::Nothing),
    (&["--force-overwrites"], Takes::Nothing),
    (&["--no-force-overwrites"], Takes::Nothing),
    (&["-c", "--continue"], Takes::Nothing),
    (&["--no-continue"], Takes::Nothing),
    (&["--part"], Takes::Nothing),
    (&["--no-part"], Takes::Nothing),
    (&["--mtime"], Takes::Nothing),
    (&["--no-mtime"], Takes::Nothing),
    // Playlists and filters
    (&["--no-playlist"], Takes::Nothing),
    (&["--yes-playlist"], Takes::Nothing),
    (&["-I", "--playlist-items"], Takes::Value),
    (&["--max-filesize"], Takes::Value),
    (&["--min-filesize"], Takes::Value),
    (&["--no-download-archive"], Takes::Nothing),
    // Rate limits and retries
    (&["-r", "--limit-rate", "--rate-limit"], Takes::Value),
    (&["--throttled-rate"], Takes::Value),
    (&["-R", "--retries"], Takes::Value),
    (&["--fragment-retries"], Takes::Value),
    (&["--extractor-retries"], Takes::Value),
    (&["--file-access-retries"], Takes::Value),
    (&["--retry-sleep"], Takes::Value),
    (&["-N", "--concurrent-fragments"], Takes::Value),
    (&["--http-chunk-size"], Takes::Value),
    (&["--buffer-size"], Takes::Value),
    (&["--sleep-requests"], Takes::Value),
    (&["--sleep-interval", "--min-sleep-interval"], Takes::Value),
    (&["--max-sleep-interval"], Takes::Value),
    // What is asked of the site
    (&["--referer"], Takes::Value),
    (&["--user-agent"], Takes::Value),
    (&["--add-headers", "--add-header"], Takes::Value),
    (&["--use-extractors", "--ies"], Takes::Value),
    // Subtitles and metadata files (written beside the media)
    (&["--write-subs", "--write-srt"], Takes::Nothing),
    (&["--no-write-subs", "--no-write-srt"], Takes::Nothing),
    (
        &["--write-auto-subs", "--write-automatic-subs"],
        Takes::Nothing,
    ),
    (
        &["--no-write-auto-subs", "--no-write-automatic-subs"],
        Takes::Nothing,
    ),
    (&["--sub-langs", "--srt-langs"], Takes::Value),
    (&["--sub-format"], Takes::Value),
    (&["--write-info-json"], Takes::Nothing),
    (&["--no-write-info-json"], Takes::Nothing),
    (&["--write-description"], Takes::Nothing),
    (&["--no-write-description"], Takes::Nothing),
    (&["--write-thumbnail"], Takes::Nothing),
    (&["--no-write-thumbnail"], Takes::Nothing),
    // Simulation and warnings
    (&["-s", "--simulate"], Takes::Nothing),
    (&["--no-simulate"], Takes::Nothing),
    (&["--skip-download", "--no-download"], Takes::Nothing),
    (&["--no-warnings"], Takes::Nothing),
];

/// Why well-known options are refused (the rest: "not on the allowlist").
const REASONS: &[(&[&str], &str)] = &[
    (
        &[
            "--exec",
            "--exec-before-download",
            "--no-exec",
            "--postprocessor-args",
            "--ppa",
            "--external-downloader",
            "--downloader",
            "--external-downloader-args",
            "--downloader-args",
            "--ffmpeg-location",
            "--plugin-dirs",
            "--use-postprocessor",
            "--extractor-args",
        ],
        "it runs or loads programs chosen by the caller",
    ),
    (
        &[
            "-a",
            "--batch-file",
            "--load-info-json",
            "--cookies",
            "--cookies-from-browser",
            "--download-archive",
            "--cache-dir",
            "--print-to-file",
            "--netrc-location",
            "--netrc-cmd",
            "--config-locations",
            "--output-na-placeholder",
        ],
        "it reads or writes files the caller names, outside the download directory",
    ),
    (
        &[
            "--proxy",
            "--geo-verification-proxy",
            "--source-address",
            "--socket-timeout",
            "--impersonate",
            "--no-check-certificates",
        ],
        "the host decides how yt-dlp connects (the proxy comes from the backend)",
    ),
    (
        &[
            "-u",
            "--username",
            "-p",
            "--password",
            "-n",
            "--netrc",
            "--video-password",
            "--ap-username",
            "--ap-password",
            "-2",
            "--twofactor",
            "--client-certificate",
            "--client-certificate-key",
            "--client-certificate-password",
        ],
        "credentials are not taken from API callers",
    ),
];

/// Values longer than this (in characters) are refused (a real format or
/// template is far shorter).
pub const MAX_VALUE_LEN: usize = 1024;

/// `-o`/`-P` type keys (yt-dlp's `OUTTMPL_TYPES`, and `home`/`temp` for
/// `-P`).
const OUTPUT_TYPES: &[&str] = &[
    "chapter",
    "subtitle",
    "thumbnail",
    "description",
    "annotation",
    "infojson",
    "link",
    "pl_video",
    "pl_thumbnail",
    "pl_description",
    "pl_infojson",
];
const PATH_ONLY_TYPES: &[&str] = &["home", "temp"];

/// A refused argument: the option at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub option: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.option, self.reason)
    }
}

fn refuse<T>(option: &str, reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        option: option.to_string(),
        reason: reason.into(),
    })
}

/// The policy of one service: its download root and its allowlist.
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    root: PathBuf,
    /// Admin-allowed options beyond [`ALLOWED`] (long names).
    widened: BTreeMap<String, OptionArity>,
}

impl RequestPolicy {
    /// Creates the download root if needed. `widened` may not hold an
    /// option the host owns.
    pub fn new(
        root: &Path,
        widened: &BTreeMap<String, OptionArity>,
    ) -> Result<RequestPolicy, String> {
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create download_dir {}: {e}", root.display()))?;
        let root = root
            .canonicalize()
            .map_err(|e| format!("download_dir {}: {e}", root.display()))?;
        for name in widened.keys() {
            if args::HOST_OWNED.contains(&name.as_str()) {
                return Err(format!(
                    "serve.allow_ytdlp_options: `{name}` is set by the host on every run and cannot be allowed"
                ));
            }
        }
        Ok(RequestPolicy {
            root,
            widened: widened.clone(),
        })
    }

    /// The download root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Admin-allowed options that the built-in list would refuse for a
    /// reason (for a warning at start).
    pub fn risky_widenings(&self) -> Vec<(String, &'static str)> {
        self.widened
            .keys()
            .filter_map(|n| reason_for(n).map(|r| (n.clone(), r)))
            .collect()
    }

    /// Admin-allowed option names.
    pub fn widened(&self) -> impl Iterator<Item = &str> {
        self.widened.keys().map(String::as_str)
    }

    /// Options the host puts before a caller's: downloads (and their
    /// temporary files) go to the root.
    pub fn host_args(&self) -> Vec<String> {
        let root = self.root.display();
        vec![
            format!("--paths=home:{root}"),
            format!("--paths=temp:{root}"),
        ]
    }

    /// Checks a caller's yt-dlp arguments; the canonical argv to run.
    pub fn check(&self, user: &[String]) -> Result<Vec<String>, Refusal> {
        let mut out = Vec::new();
        let mut templates: Vec<(String, String)> = Vec::new();
        let mut bases = vec![self.root.clone()];
        let mut queue: VecDeque<String> = user.iter().cloned().collect();
        while let Some(a) = queue.pop_front() {
            let (name, inline): (String, Option<String>) = if a.starts_with("--") {
                match a.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (a.clone(), None),
                }
            } else if a.len() >= 2 && a.starts_with('-') {
                // `-x`, `-xVALUE`, or a cluster of flags `-wc` (its rest is
                // read next as `-c`).
                let mut chars = a[1..].chars();
                let c = chars.next().expect("two or more chars");
                let rest: String = chars.collect();
                let name = format!("-{c}");
                match lookup(&name) {
                    _ if rest.is_empty() => (name, None),
                    Some((_, Takes::Nothing)) => {
                        queue.push_front(format!("-{rest}"));
                        (name, None)
                    }
                    _ => (name, Some(rest)),
                }
            } else {
                return refuse(
                    &a,
                    "extra URLs and other positional arguments are not taken from API callers",
                );
            };
            let takes = match lookup(&name) {
                Some((_, t)) => t,
                None => match self.widened.get(&name) {
                    Some(OptionArity::Flag) => Takes::Nothing,
                    Some(OptionArity::Value) => Takes::Value,
                    None => return refuse(&name, refusal_reason(&name)),
                },
            };
            let canonical = lookup(&name)
                .and_then(|(names, _)| names.iter().find(|n| n.starts_with("--")))
                .map_or(name.clone(), |n| n.to_string());
            if takes == Takes::Nothing {
                if inline.is_some() {
                    return refuse(&name, "takes no value");
                }
                out.push(canonical);
                continue;
            }
            let value = match inline.or_else(|| queue.pop_front()) {
                Some(v) => v,
                None => return refuse(&name, "needs a value"),
            };
            check_text(&name, &value)?;
            match takes {
                Takes::Template => {
                    self.typed(&name, &value, OUTPUT_TYPES)?;
                    templates.push((name.clone(), value.clone()));
                    out.push(format!("{canonical}={value}"));
                }
                Takes::Path => {
                    let (keys, path) = self.typed(&name, &value, OUTPUT_TYPES)?;
                    let keys = keys.unwrap_or_else(|| "home".to_string());
                    let resolved = self.confine_path(&name, &path)?;
                    bases.push(resolved.clone());
                    out.push(format!("{canonical}={keys}:{}", resolved.display()));
                }
                _ => out.push(format!("{canonical}={value}")),
            }
        }
        self.finish(out, templates, bases)
    }

    /// The templates, checked against every directory files may go to.
    fn finish(
        &self,
        out: Vec<String>,
        templates: Vec<(String, String)>,
        bases: Vec<PathBuf>,
    ) -> Result<Vec<String>, Refusal> {
        for (name, value) in &templates {
            let (_, template) = self.typed(name, value, OUTPUT_TYPES)?;
            for base in &bases {
                self.confine_template(name, &template, base)?;
            }
        }
        Ok(out)
    }

    /// Splits an optional `TYPES:` prefix as yt-dlp does; a prefix that
    /// could be read as one but names no known type is refused (yt-dlp
    /// might know it, and then use the rest as the path).
    fn typed(
        &self,
        name: &str,
        value: &str,
        types: &[&str],
    ) -> Result<(Option<String>, String), Refusal> {
        let Some((prefix, rest)) = value.split_once(':') else {
            return Ok((None, value.to_string()));
        };
        let keyish = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == ',' || !c.is_ascii());
        if !keyish {
            return Ok((None, value.to_string()));
        }
        let is_path = matches!(name, "-P" | "--paths");
        for key in prefix.split(',') {
            let k = key.to_ascii_lowercase();
            let known = key.is_ascii()
                && (types.contains(&k.as_str())
                    || (is_path && PATH_ONLY_TYPES.contains(&k.as_str())));
            if !known {
                return refuse(
                    name,
                    format!(
                        "`{key}:` is not an output type yt-dlp is known to take ({}{}); a `:` after a word reads as one",
                        if is_path { "home, temp, " } else { "" },
                        types.join(", ")
                    ),
                );
            }
        }
        Ok((Some(prefix.to_ascii_lowercase()), rest.to_string()))
    }

    /// A `-P` path: relative, no `..`, no expansion, inside the root
    /// through any existing symlink. The absolute path to pass on.
    fn confine_path(&self, name: &str, path: &str) -> Result<PathBuf, Refusal> {
        if path.is_empty() {
            return refuse(
                name,
                "an empty path would be the service's working directory",
            );
        }
        if path.trim() != path {
            return refuse(name, "leading or trailing spaces (yt-dlp strips them)");
        }
        no_expansion(name, path)?;
        let p = Path::new(path);
        if p.is_absolute() {
            return refuse(
                name,
                format!(
                    "an absolute path leaves the download directory; give a path relative to it ({})",
                    self.root.display()
                ),
            );
        }
        if p.components().any(|c| c == Component::ParentDir) {
            return refuse(name, "`..` leaves the download directory");
        }
        let full = self.root.join(p);
        self.no_symlink_escape(name, &full)?;
        Ok(full)
    }

    /// An output template, relative to `base` (a directory inside the
    /// root).
    fn confine_template(&self, name: &str, template: &str, base: &Path) -> Result<(), Refusal> {
        if template.is_empty() {
            return refuse(name, "an empty template");
        }
        if template.trim() != template {
            return refuse(name, "leading or trailing spaces");
        }
        no_expansion(name, template)?;
        if template.starts_with('/') {
            return refuse(
                name,
                "an absolute template leaves the download directory; give one relative to it",
            );
        }
        let parts = components(name, template)?;
        let last = parts.len() - 1;
        let mut literal_dir = PathBuf::new();
        let mut literal = true;
        for (n, part) in parts.iter().enumerate() {
            if part.text == "." || part.text == ".." {
                return refuse(name, format!("a `{}` path component", part.text));
            }
            if n < last && part.has_field {
                literal = false;
                // A field's value may be `..` or `.`: a directory made of
                // fields (and dots) could climb out.
                if !part.has_literal_beyond_dots {
                    return refuse(
                        name,
                        format!(
                            "the directory `{}` is made of fields only, and a field's value may be `..`; add a literal character (e.g. `by-%(uploader)s`)",
                            part.text
                        ),
                    );
                }
            }
            if n < last && literal && !part.has_field {
                literal_dir.push(&part.text);
            }
        }
        self.no_symlink_escape(name, &base.join(literal_dir))
    }

    /// Every existing prefix of `path` resolves inside the root.
    fn no_symlink_escape(&self, name: &str, path: &Path) -> Result<(), Refusal> {
        let mut at = PathBuf::new();
        for c in path.components() {
            at.push(c);
            match at.canonicalize() {
                Ok(real) if real.starts_with(&self.root) || self.root.starts_with(&real) => {}
                Ok(real) => {
                    return refuse(
                        name,
                        format!(
                            "{} is a symlink to {}, outside the download directory",
                            at.display(),
                            real.display()
                        ),
                    );
                }
                Err(_) => break, // not there yet: yt-dlp creates it
            }
        }
        Ok(())
    }

    /// The config's own `output` (trusted, but `serve` keeps it inside the
    /// root too): relative, or absolute under the root.
    pub fn check_config_output(&self, output: &str) -> Result<(), Refusal> {
        let (_, template) = self.typed("output", output, OUTPUT_TYPES)?;
        match template.strip_prefix(&format!("{}/", self.root.display())) {
            Some(rel) => self.confine_template("output", rel, &self.root),
            None if template.starts_with('/') => refuse(
                "output",
                format!(
                    "{template} is outside [serve] download_dir ({}); make it relative (it is written there)",
                    self.root.display()
                ),
            ),
            None => self.confine_template("output", &template, &self.root),
        }
    }
}

fn lookup(name: &str) -> Option<(&'static [&'static str], Takes)> {
    ALLOWED
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(names, t)| (*names, *t))
}

fn reason_for(name: &str) -> Option<&'static str> {
    REASONS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, r)| *r)
}

fn refusal_reason(name: &str) -> String {
    let why = reason_for(name)
        .map(|r| format!(" ({r})"))
        .unwrap_or_else(|| {
            if args::HOST_OWNED.contains(&name) {
                " (it is set by the host on every run)".to_string()
            } else {
                String::new()
            }
        });
    format!(
        "not allowed from the API{why}; the allowed options are listed in the README (an admin may add more with [serve] allow_ytdlp_options)"
    )
}

fn check_text(name: &str, value: &str) -> Result<(), Refusal> {
    if value.len() > MAX_VALUE_LEN {
        return refuse(
            name,
            format!(
                "the value is {} bytes (at most {MAX_VALUE_LEN})",
                value.len()
            ),
        );
    }
    if value.chars().any(char::is_control) {
        return refuse(name, "the value has control characters");
    }
    Ok(())
}

/// yt-dlp expands `~` and `$VAR` in paths and templates.
fn no_expansion(name: &str, text: &str) -> Result<(), Refusal> {
    if text.starts_with('~') {
        return refuse(name, "`~` is expanded to a home directory");
    }
    if text.contains('$') {
        return refuse(name, "`$` expands environment variables");
    }
    Ok(())
}

/// One `/`-separated part of a template.
#[derive(Debug)]
struct Part {
    text: String,
    has_field: bool,
    has_literal_beyond_dots: bool,
}

/// Splits a template into its path components, reading fields as yt-dlp
/// does (`%(key)FORMAT`, `%%` a literal `%`).
fn components(name: &str, t: &str) -> Result<Vec<Part>, Refusal> {
    const TYPES: &str = "diouxXeEfFgGcrsaljhqBUDS";
    let mut parts = Vec::new();
    let mut cur = Part {
        text: String::new(),
        has_field: false,
        has_literal_beyond_dots: false,
    };
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    fn literal(cur: &mut Part, c: char) {
        cur.text.push(c);
        if c != '.' {
            cur.has_literal_beyond_dots = true;
        }
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            '/' => {
                parts.push(std::mem::replace(
                    &mut cur,
                    Part {
                        text: String::new(),
                        has_field: false,
                        has_literal_beyond_dots: false,
                    },
                ));
                i += 1;
            }
            '%' if chars.get(i + 1) == Some(&'%') => {
                literal(&mut cur, '%');
                cur.text.push('%');
                i += 2;
            }
            '%' if chars.get(i + 1) == Some(&'(') => {
                let Some(close) = chars[i + 2..].iter().position(|&c| c == ')') else {
                    return refuse(name, "a field `%(` is not closed");
                };
                let key: String = chars[i + 2..i + 2 + close].iter().collect();
                if key.contains('/') {
                    return refuse(name, "a `/` inside a field");
                }
                let mut j = i + 2 + close + 1;
                while j < chars.len() && "#0-+ ".contains(chars[j]) {
                    j += 1;
                }
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                if chars.get(j) == Some(&'.') {
                    j += 1;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                if j < chars.len()
                    && "hlL".contains(chars[j])
                    && j + 1 < chars.len()
                    && TYPES.contains(chars[j + 1])
                {
                    j += 1;
                }
                if !chars.get(j).is_some_and(|c| TYPES.contains(*c)) {
                    return refuse(
                        name,
                        format!("the field `%({key})` has no conversion (e.g. `%({key})s`)"),
                    );
                }
                cur.text.extend(&chars[i..=j]);
                cur.has_field = true;
                i = j + 1;
            }
            c => {
                // A lone `%` is literal in yt-dlp too.
                literal(&mut cur, c);
                i += 1;
            }
        }
    }
    parts.push(cur);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn policy() -> (tempfile::TempDir, RequestPolicy) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("downloads");
        let p = RequestPolicy::new(&root, &BTreeMap::new()).unwrap();
        (dir, p)
    }

    #[test]
    fn allowed_options_come_back_in_one_canonical_form() {
        let (_d, p) = policy();
        let root = p.root().display().to_string();
        assert_eq!(
            p.check(&args(&[
                "-f",
                "best",
                "-fworst",
                "--limit-rate=1M",
                "-wc",
                "--write-subs",
                "-o",
                "%(title)s [%(id)s].%(ext)s",
                "-P",
                "sub",
                "-P",
                "temp:tmp",
                "-Rinfinite",
                "-o",
                "subtitle:subs/%(id)s.%(ext)s",
            ]))
            .unwrap(),
            args(&[
                "--format=best",
                "--format=worst",
                "--limit-rate=1M",
                "--no-overwrites",
                "--continue",
                "--write-subs",
                "--output=%(title)s [%(id)s].%(ext)s",
                &format!("--paths=home:{root}/sub"),
                &format!("--paths=temp:{root}/tmp"),
                "--retries=infinite",
                "--output=subtitle:subs/%(id)s.%(ext)s",
            ])
        );
        assert_eq!(
            p.host_args(),
            [
                format!("--paths=home:{root}"),
                format!("--paths=temp:{root}")
            ]
        );
        // A value that looks like an option is a value.
        assert_eq!(
            p.check(&args(&["-f", "--exec"])).unwrap(),
            ["--format=--exec"]
        );
    }

    #[test]
    fn options_that_run_commands_or_touch_files_are_refused_by_name() {
        let (_d, p) = policy();
        for (bad, named, why) in [
            (
                &["--exec", "touch /tmp/x"][..],
                "--exec",
                "runs or loads programs",
            ),
            (&["--exec=touch /tmp/x"], "--exec", "runs"),
            (&["--exe", "touch /tmp/x"], "--exe", "not allowed"),
            (&["--ppa", "ffmpeg:-i x"], "--ppa", "runs"),
            (
                &["--external-downloader", "sh"],
                "--external-downloader",
                "runs",
            ),
            (&["--cookies", "/root/c.txt"], "--cookies", "files"),
            (
                &["--cookies-from-browser", "firefox"],
                "--cookies-from-browser",
                "files",
            ),
            (
                &["--download-archive", "/tmp/a"],
                "--download-archive",
                "files",
            ),
            (&["--cache-dir", "/tmp/c"], "--cache-dir", "files"),
            (&["--batch-file", "/etc/passwd"], "--batch-file", "files"),
            (&["-a", "/etc/passwd"], "-a", "files"),
            (&["--load-info-json", "/x"], "--load-info-json", "files"),
            (&["--config-locations", "/x"], "--config-locations", "files"),
            (&["--plugin-dirs", "/x"], "--plugin-dirs", "programs"),
            (
                &["--ffmpeg-location", "/x"],
                "--ffmpeg-location",
                "programs",
            ),
            (&["--proxy", ""], "--proxy", "connects"),
            (&["--netrc"], "--netrc", "credentials"),
            (&["--username", "u"], "--username", "credentials"),
            (&["-v"], "-v", "not allowed"),
            (&["-q"], "-q", "set by the host"),
            (&["--print", "x"], "--print", "set by the host"),
            (&["-wx"], "-x", "not allowed"),
            (
                &["http://other.example/"],
                "http://other.example/",
                "positional",
            ),
            (&["--no-playlist=1"], "--no-playlist", "takes no value"),
            (&["-f"], "-f", "needs a value"),
            (&["-f", "a\nb"], "-f", "control"),
        ] {
            let e = p.check(&args(bad)).unwrap_err();
            assert_eq!(e.option, named, "{bad:?}: {e}");
            assert!(e.reason.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn output_paths_stay_inside_the_root() {
        let (d, p) = policy();
        for (bad, why) in [
            (&["-o", "/root/.ssh/authorized_keys"][..], "absolute"),
            (&["--output=/tmp/x"], "absolute"),
            (&["-o/tmp/x"], "absolute"),
            (&["-o", "../x.%(ext)s"], "`..`"),
            (&["-o", "a/../../x"], "`..`"),
            (&["-o", "~/x"], "`~`"),
            (&["-o", "$HOME/x"], "`$`"),
            (&["-o", "${HOME}/x"], "`$`"),
            (&["-o", "infojson:/tmp/x"], "absolute"),
            (&["-o", "INFOJSON:/tmp/x"], "absolute"),
            (&["-o", "link\u{212a}:/tmp/x"], "not an output type"),
            (&["-o", "c:/tmp/x"], "not an output type"),
            (&["-o", "%(title)s/%(id)s.%(ext)s"], "fields only"),
            (&["-o", "%(a)s%(b)s/x"], "fields only"),
            (&["-o", "..%(a)s/x"], "fields only"),
            (&["-o", "%(title)/x"], "no conversion"),
            (&["-o", "%(title"], "not closed"),
            (&["-o", " /tmp/x"], "spaces"),
            (&["-o", ""], "empty"),
            (&["-P", "/tmp"], "absolute"),
            (&["-P", "home:/tmp"], "absolute"),
            (&["-P", "temp:../t"], "`..`"),
            (&["-P", " /tmp"], "spaces"),
            (&["-P", "home:"], "empty"),
            (&["-P", "~"], "`~`"),
        ] {
            let e = p.check(&args(bad)).unwrap_err();
            assert!(e.reason.contains(why), "{bad:?}: {e}");
            assert!(
                ["-o", "--output", "-P", "--paths"].contains(&e.option.as_str()),
                "{e}"
            );
        }
        // Directories with a literal part, typed templates, literal `%`.
        for ok in [
            &["-o", "by-%(uploader)s/%(title)s.%(ext)s"][..],
            &["-o", "a/b/%(id)s.%(ext)s"],
            &["-o", "100%% %(id)s.%(ext)s"],
            &["-o", "%(title)s: %(id)s.%(ext)s"],
            &["-o", "%(id)s"],
            &["-P", "a/b", "-o", "x%(id)s/%(id)s.%(ext)s"],
        ] {
            assert!(
                p.check(&args(ok)).is_ok(),
                "{ok:?}: {:?}",
                p.check(&args(ok))
            );
        }
        // A symlink inside the root that leads out.
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, p.root().join("link")).unwrap();
        for bad in [
            &["-o", "link/%(id)s.%(ext)s"][..],
            &["-P", "link"],
            &["-P", "link/deeper"],
            &["-P", "temp:link"],
            &["-P", "link", "-o", "%(id)s.%(ext)s"],
        ] {
            let e = p.check(&args(bad)).unwrap_err();
            assert!(e.reason.contains("symlink"), "{bad:?}: {e}");
        }
        // A symlink that stays inside is fine.
        std::fs::create_dir_all(p.root().join("real")).unwrap();
        std::os::unix::fs::symlink(p.root().join("real"), p.root().join("alias")).unwrap();
        assert!(p.check(&args(&["-o", "alias/%(id)s.%(ext)s"])).is_ok());
    }

    #[test]
    fn the_config_output_must_be_inside_the_root() {
        let (_d, p) = policy();
        let root = p.root().display().to_string();
        assert!(p.check_config_output("%(id)s.%(ext)s").is_ok());
        assert!(
            p.check_config_output(&format!("{root}/%(id)s.%(ext)s"))
                .is_ok()
        );
        let e = p
            .check_config_output("/elsewhere/%(id)s.%(ext)s")
            .unwrap_err();
        assert!(e.reason.contains("outside [serve] download_dir"), "{e}");
    }

    #[test]
    fn an_admin_may_widen_the_list_but_not_with_what_the_host_owns() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BTreeMap::new();
        w.insert("--embed-subs".to_string(), OptionArity::Flag);
        w.insert("--extractor-args".to_string(), OptionArity::Value);
        let p = RequestPolicy::new(dir.path(), &w).unwrap();
        assert_eq!(
            p.check(&args(&[
                "--embed-subs",
                "--extractor-args",
                "generic:impersonate"
            ]))
            .unwrap(),
            args(&["--embed-subs", "--extractor-args=generic:impersonate"])
        );
        assert_eq!(p.risky_widenings().len(), 1);
        // A flag given a value is refused; a wrong arity in the config can
        // only make yt-dlp refuse `--name=VALUE`, never read `--exec`.
        assert!(p.check(&args(&["--embed-subs=--exec"])).is_err());
        w.insert("--proxy".to_string(), OptionArity::Value);
        let e = RequestPolicy::new(dir.path(), &w).unwrap_err();
        assert!(e.contains("`--proxy` is set by the host"), "{e}");
    }

    #[test]
    fn every_allowed_option_is_one_the_worker_runner_takes() {
        let worker: Vec<&str> = crate::worker::SUPPORTED_OPTIONS
            .iter()
            .flat_map(|(names, _)| names.iter().copied())
            .collect();
        for (names, takes) in ALLOWED {
            for n in *names {
                assert!(
                    worker.contains(n),
                    "{n} is allowed by the API but not by the worker"
                );
                let worker_takes_value = crate::worker::SUPPORTED_OPTIONS
                    .iter()
                    .find(|(ns, _)| ns.contains(n))
                    .map(|(_, sample)| sample.is_some())
                    .unwrap();
                assert_eq!(worker_takes_value, *takes != Takes::Nothing, "{n}");
            }
            assert!(
                names.iter().any(|n| n.starts_with("--")),
                "{names:?}: the canonical form needs a long name"
            );
        }
    }
}
