//! yt-dlp's argv: the options the host owns, given first by both runners,
//! then the user's own. The process runner adds its output markers and the
//! URL (after `--`, so no URL is ever read as an option).

use ytdlp_contract::ProxyUrl;

use crate::run::RunSpec;

/// The options the host sets on every run, in both runners: no user config
/// (a `yt-dlp.conf` with `--proxy` would otherwise apply), the proxy (empty:
/// direct), the socket timeout (from the proxy's timeout), the output
/// template.
pub fn host_options(spec: &RunSpec) -> Vec<String> {
    let mut a = vec![
        "--ignore-config".to_string(),
        "--proxy".to_string(),
        spec.proxy
            .as_ref()
            .map(ProxyUrl::expose)
            .unwrap_or("")
            .to_string(),
        "--socket-timeout".to_string(),
        spec.socket_timeout_secs.max(1).to_string(),
    ];
    if let Some(o) = &spec.output {
        a.push("-o".to_string());
        a.push(o.clone());
    }
    a
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
            host_options(&spec),
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
        assert_eq!(host_options(&spec)[2], "");
    }
}
