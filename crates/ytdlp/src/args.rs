//! yt-dlp's argv: the options the host owns, given first by both runners,
//! then the user's own. The process runner adds its output markers and the
//! URL (after `--`, so no URL is ever read as an option).

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
}
