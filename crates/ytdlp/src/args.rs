//! yt-dlp's argv: the options the host owns, given first by both runners,
//! then the user's own. The process runner adds its output markers and the
//! URL (after `--`, so no URL is ever read as an option). The user's own
//! may not override what the host owns ([`check_user_args`]).

use ytdlp_contract::ProxyUrl;

use crate::run::RunSpec;

/// How the proxy URL reaches yt-dlp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVia {
    /// In the option list (the worker: it is sent over a private pipe).
    Argv,
    /// In a config yt-dlp reads on its stdin (`--config-locations -`): a
    /// process's argv is visible to every local user.
    ConfigOnStdin,
}

/// The options the host sets on every run, in both runners: no user config
/// (a `yt-dlp.conf` with `--proxy` would otherwise apply), the proxy (empty:
/// direct), the socket timeout (from the proxy's timeout), the output
/// template.
pub fn host_options(spec: &RunSpec, via: ProxyVia) -> Vec<String> {
    let mut a = vec!["--ignore-config".to_string()];
    match via {
        ProxyVia::Argv => {
            a.push("--proxy".to_string());
            a.push(
                spec.proxy
                    .as_ref()
                    .map(ProxyUrl::expose)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        // `--ignore-config` still loads what `--config-locations` names.
        ProxyVia::ConfigOnStdin => {
            a.push("--config-locations".to_string());
            a.push("-".to_string());
        }
    }
    a.extend([
        "--socket-timeout".to_string(),
        spec.socket_timeout_secs.max(1).to_string(),
    ]);
    if let Some(o) = &spec.output {
        a.push("-o".to_string());
        a.push(o.clone());
    }
    a
}

/// yt-dlp options that set what the host owns on every run (the proxy, the
/// socket timeout, what yt-dlp prints, which config it reads), or undo it.
/// A user's argument that overrides one would make the host report a run it
/// did not make (`--proxy ""` downloads direct while the host reports the
/// proxy), so they are refused whatever the runner.
pub const HOST_OWNED: &[&str] = &[
    "--proxy",
    "--geo-verification-proxy",
    "--socket-timeout",
    "-O",
    "--print",
    "--print-to-file",
    "--progress-template",
    "-q",
    "--quiet",
    "--no-quiet",
    "--ignore-config",
    "--no-config",
    "--config-locations",
    "--no-config-locations",
];

/// yt-dlp's own options that are proper prefixes of a host-owned name: an
/// exact name wins over an abbreviation in yt-dlp's parser, so these are
/// not abbreviations of the host's.
pub const EXACT_PREFIXES: &[&str] = &["--progress"];

/// yt-dlp's short options that take a value (2026.10.26; a test checks
/// them against the installed yt-dlp): their value is never an option.
pub const SHORT_WITH_VALUE: &[char] = &[
    '2', 'I', 'N', 'O', 'P', 'R', 'S', 'a', 'f', 'o', 'p', 'r', 't', 'u',
];

/// The host-owned option a long option means: the same name, or (yt-dlp's
/// parser accepts unambiguous abbreviations, `--prox` is `--proxy`) a
/// prefix of one.
fn host_owned_long(name: &str) -> Option<&'static str> {
    if let Some(o) = HOST_OWNED.iter().find(|o| **o == name) {
        return Some(o);
    }
    if EXACT_PREFIXES.contains(&name) || name.len() <= 2 {
        return None;
    }
    HOST_OWNED
        .iter()
        .find(|o| o.starts_with("--") && o.starts_with(name))
        .copied()
}

/// Refuses user arguments (after `--` on the command line, or a library
/// request's) that override an option the host owns, naming it. Arguments
/// after a `--` of their own are positional for yt-dlp, so they are not
/// read. An option this does not know is taken to be a flag, so that its
/// argument is checked too (a refusal of an odd value, never a miss).
pub fn check_user_args(args: &[String]) -> Result<(), String> {
    let refuse = |given: &str, owned: &str| {
        let what = if given == owned {
            format!("`{owned}`")
        } else {
            format!("`{given}` (yt-dlp reads it as `{owned}`)")
        };
        let hint = match owned {
            "--proxy" | "--geo-verification-proxy" => {
                "; give proxies to the backend (`--proxy` before `--`, or the config), or use --no-proxy-manager to download without one"
            }
            "--socket-timeout" => "; it comes from the proxy's timeout (`timeout_ms`)",
            _ => "",
        };
        Err(format!(
            "yt-dlp option {what} is set by the host on every run (the proxy, the socket timeout, what yt-dlp prints and which config it reads) and cannot be overridden{hint}"
        ))
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" {
            break;
        }
        if a.starts_with("--") {
            let name = a.split_once('=').map_or(a, |(n, _)| n);
            if let Some(owned) = host_owned_long(name) {
                return refuse(name, owned);
            }
            continue;
        }
        if a.len() < 2 || !a.starts_with('-') {
            continue;
        }
        // A cluster of short flags (`-qs`); one that takes a value takes
        // the rest of the word, or the next argument.
        let chars: Vec<char> = a[1..].chars().collect();
        for (at, c) in chars.iter().enumerate() {
            let name = format!("-{c}");
            if HOST_OWNED.contains(&name.as_str()) {
                return refuse(&name, &name);
            }
            if SHORT_WITH_VALUE.contains(c) {
                if at + 1 == chars.len() {
                    i += 1;
                }
                break;
            }
        }
    }
    Ok(())
}

/// The config yt-dlp reads on its stdin with [`ProxyVia::ConfigOnStdin`]:
/// one `--proxy` line, shell-quoted as yt-dlp's config parser expects (a
/// validated proxy URL has no whitespace, but may hold a `'`).
pub fn proxy_config(spec: &RunSpec) -> String {
    let url = spec.proxy.as_ref().map(ProxyUrl::expose).unwrap_or("");
    format!("--proxy '{}'\n", url.replace('\'', "'\"'\"'"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn host_options_come_first_and_a_direct_run_has_an_empty_proxy() {
        let mut spec = RunSpec {
            program: "yt-dlp".into(),
            url: "http://x/".into(),
            proxy: Some(
                ytdlp_contract::proxy_url::validate("socks5://u:p@127.0.0.1:1080").unwrap(),
            ),
            socket_timeout_secs: 0,
            output: Some("%(id)s.%(ext)s".into()),
            extra_args: vec![],
            deadline: Duration::from_secs(5),
        };
        assert_eq!(
            host_options(&spec, ProxyVia::Argv),
            [
                "--ignore-config",
                "--proxy",
                "socks5://u:p@127.0.0.1:1080",
                "--socket-timeout",
                "1",
                "-o",
                "%(id)s.%(ext)s"
            ]
        );
        spec.proxy = None;
        assert_eq!(host_options(&spec, ProxyVia::Argv)[2], "");
        let a = host_options(&spec, ProxyVia::ConfigOnStdin);
        assert_eq!(a[1..3], ["--config-locations", "-"]);
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn user_args_that_override_the_host_are_refused_by_name() {
        for (bad, named) in [
            (&["--proxy", ""][..], "`--proxy`"),
            (&["-f", "best", "--proxy="], "`--proxy`"),
            (&["--prox", ""], "`--prox` (yt-dlp reads it as `--proxy`)"),
            (&["--socket-t", "1"], "`--socket-timeout`"),
            (&["--print", "title"], "`--print`"),
            (&["-O", "title"], "`-O`"),
            (&["-sq"], "`-q`"),
            (&["--no-quiet"], "`--no-quiet`"),
            (
                &["--config-locations", "/tmp/x.conf"],
                "`--config-locations`",
            ),
            (&["--no-config"], "`--no-config`"),
            (&["--progress-template", "x"], "`--progress-template`"),
            (
                &["--geo-verification-proxy", "http://h:1"],
                "`--geo-verification-proxy`",
            ),
        ] {
            let e = check_user_args(&args(bad)).unwrap_err();
            assert!(e.contains(named), "{bad:?}: {e}");
            assert!(e.contains("set by the host"), "{e}");
        }
        assert!(
            check_user_args(&args(&["--proxy", ""]))
                .unwrap_err()
                .contains("--no-proxy-manager")
        );
    }

    #[test]
    fn other_user_args_pass_and_values_are_not_read_as_options() {
        for ok in [
            &["-f", "best", "--no-playlist"][..],
            &["-o", "-q.%(ext)s"],
            &["-f-q"],
            &["-xf", "-O"],
            &["--progress", "--newline", "--limit-rate", "1M"],
            &["--", "--proxy"],
            &["-P", "/tmp", "--embed-subs"],
            &[],
        ] {
            assert_eq!(check_user_args(&args(ok)), Ok(()), "{ok:?}");
        }
    }
}
