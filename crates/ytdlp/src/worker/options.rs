//! The yt-dlp options the worker runner accepts, checked with optparse's
//! syntax, and a job's argv.

use crate::args;
use crate::run::RunSpec;

/// The yt-dlp options the worker runner accepts, with an example value for
/// those that take one (the tests pass every one of them through yt-dlp's
/// parser). Everything maps to `YoutubeDL` params alone; options that act
/// outside them (printing, post-processing, updating, batch files, ...) are
/// refused, and so are those the host owns (`args::HOST_OWNED`, refused
/// before this list is read).
pub const SUPPORTED_OPTIONS: &[(&[&str], Option<&str>)] = &[
    // Format selection
    (&["-f", "--format"], Some("best")),
    (&["-S", "--format-sort"], Some("res,ext")),
    (&["--merge-output-format"], Some("mp4")),
    // Output
    (&["-o", "--output"], Some("%(id)s.%(ext)s")),
    (&["-P", "--paths"], Some("/tmp")),
    (&["--output-na-placeholder"], Some("NA")),
    (&["--restrict-filenames"], None),
    (&["--no-restrict-filenames"], None),
    (&["--windows-filenames"], None),
    (&["--no-windows-filenames"], None),
    (&["--trim-filenames"], Some("100")),
    (&["-w", "--no-overwrites"], None),
    (&["--force-overwrites"], None),
    (&["--no-force-overwrites"], None),
    (&["-c", "--continue"], None),
    (&["--no-continue"], None),
    (&["--part"], None),
    (&["--no-part"], None),
    (&["--mtime"], None),
    (&["--no-mtime"], None),
    // Playlists and filters
    (&["--no-playlist"], None),
    (&["--yes-playlist"], None),
    (&["-I", "--playlist-items"], Some("1:3")),
    (&["--max-filesize"], Some("50M")),
    (&["--min-filesize"], Some("1k")),
    (&["--download-archive"], Some("/tmp/archive.txt")),
    (&["--no-download-archive"], None),
    // Download
    (&["-r", "--limit-rate", "--rate-limit"], Some("4.2M")),
    (&["--throttled-rate"], Some("100K")),
    (&["-R", "--retries"], Some("3")),
    (&["--fragment-retries"], Some("infinite")),
    (&["--extractor-retries"], Some("2")),
    (&["--file-access-retries"], Some("2")),
    (&["--retry-sleep"], Some("linear=1::2")),
    (&["-N", "--concurrent-fragments"], Some("4")),
    (&["--http-chunk-size"], Some("10M")),
    (&["--buffer-size"], Some("16K")),
    (&["--sleep-requests"], Some("1")),
    (&["--sleep-interval", "--min-sleep-interval"], Some("1")),
    (&["--max-sleep-interval"], Some("2")),
    // Network and requests
    (&["-4", "--force-ipv4"], None),
    (&["-6", "--force-ipv6"], None),
    (&["--source-address"], Some("127.0.0.1")),
    (&["--no-check-certificates"], None),
    (&["--add-headers", "--add-header"], Some("X-Test:1")),
    (&["--referer"], Some("http://127.0.0.1/")),
    (&["--user-agent"], Some("test-agent")),
    (&["--cookies"], Some("/tmp/cookies.txt")),
    (&["--no-cookies"], None),
    // Subtitles and metadata files (params only, written beside the media)
    (&["--write-subs", "--write-srt"], None),
    (&["--no-write-subs", "--no-write-srt"], None),
    (&["--write-auto-subs", "--write-automatic-subs"], None),
    (&["--no-write-auto-subs", "--no-write-automatic-subs"], None),
    (&["--sub-langs", "--srt-langs"], Some("en.*,ja")),
    (&["--sub-format"], Some("srt/best")),
    (&["--write-info-json"], None),
    (&["--no-write-info-json"], None),
    (&["--write-description"], None),
    (&["--no-write-description"], None),
    (&["--write-thumbnail"], None),
    (&["--no-write-thumbnail"], None),
    // Extractors
    (&["--use-extractors", "--ies"], Some("generic")),
    (&["--extractor-args"], Some("generic:impersonate")),
    (&["--cache-dir"], Some("/tmp/ytdlp-cache")),
    (&["--no-cache-dir"], None),
    // Verbosity and simulation (progress lines always come from hooks)
    (&["--no-warnings"], None),
    (&["-v", "--verbose"], None),
    (&["-s", "--simulate"], None),
    (&["--no-simulate"], None),
    (&["--skip-download", "--no-download"], None),
    (&["--newline"], None),
    (&["--progress"], None),
    (&["--no-progress"], None),
    (&["--no-colors", "--no-color"], None),
];

fn lookup(name: &str) -> Option<bool> {
    SUPPORTED_OPTIONS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, sample)| sample.is_some())
}

fn unsupported(what: &str) -> String {
    format!(
        "yt-dlp option `{what}` is not supported by the worker runner; use `runner = \"process\"` \
         (or `--runner process`), which passes every option to yt-dlp"
    )
}

/// Checks the user's yt-dlp arguments against [`SUPPORTED_OPTIONS`]
/// (optparse syntax: `--opt VALUE`, `--opt=VALUE`, `-fVALUE`, clustered
/// short flags). The error names the first unsupported option.
pub fn check_args(args: &[String]) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" || a == "-" || !a.starts_with('-') {
            return Err(format!(
                "`{a}`: extra URLs or positional yt-dlp arguments are not supported by the worker \
                 runner; use `runner = \"process\"` (or `--runner process`)"
            ));
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (format!("--{n}"), true),
                None => (a.to_string(), false),
            };
            match lookup(&name) {
                None => return Err(unsupported(&name)),
                Some(false) if inline => {
                    return Err(format!("yt-dlp option `{name}` takes no value"));
                }
                Some(true) if !inline => {
                    if i >= args.len() {
                        return Err(format!("yt-dlp option `{name}` needs a value"));
                    }
                    i += 1;
                }
                Some(_) => {}
            }
            continue;
        }
        // Short options: flags may be clustered (`-qs`); one that takes a
        // value takes the rest of the word, or the next argument.
        for (at, c) in a.char_indices().skip(1) {
            let name = format!("-{c}");
            match lookup(&name) {
                None => return Err(unsupported(&name)),
                Some(false) => {}
                Some(true) => {
                    if at + c.len_utf8() == a.len() {
                        if i >= args.len() {
                            return Err(format!("yt-dlp option `{name}` needs a value"));
                        }
                        i += 1;
                    }
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The options a job hands to `yt_dlp.parse_options`: the host's own (as
/// for the process runner, without its stdout printing, which the hooks
/// replace), then the user's.
pub fn job_argv(spec: &RunSpec) -> Result<Vec<String>, String> {
    check_args(&spec.extra_args)?;
    // The argv goes to the worker over its stdin, not on a command line.
    let mut a = args::host_options(spec, args::ProxyVia::Argv);
    a.extend(spec.extra_args.iter().cloned());
    Ok(a)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ytdlp_contract::proxy_url;

    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }
    #[test]
    fn supported_options_pass_in_every_syntax() {
        for ok in [
            &["-f", "best", "--no-playlist", "-w"][..],
            &["--format=bestvideo+bestaudio", "--limit-rate", "50K"],
            &["-fbest", "-ws", "-R", "infinite", "--rate-limit=1M"],
            &["-o", "%(title)s.%(ext)s", "--yes-playlist", "--simulate"],
            &["-wf", "best"],
            &["-wfbest"],
            &[],
        ] {
            assert_eq!(check_args(&args(ok)), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn unsupported_options_are_named_and_point_at_the_process_runner() {
        for (bad, name) in [
            (&["--embed-subs"][..], "--embed-subs"),
            (&["-f", "best", "-x"], "-x"),
            (&["--print=title"], "--print"),
            (&["-wj"], "-j"),
            (&["--no-play"], "--no-play"),
        ] {
            let e = check_args(&args(bad)).unwrap_err();
            assert!(e.contains(&format!("`{name}`")), "{e}");
            assert!(e.contains("runner = \"process\""), "{e}");
        }
        let e = check_args(&args(&["http://example.com/other"])).unwrap_err();
        assert!(e.contains("positional"), "{e}");
        assert!(
            check_args(&args(&["-f"]))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            check_args(&args(&["--no-playlist=1"]))
                .unwrap_err()
                .contains("takes no value")
        );
    }

    #[test]
    fn the_job_argv_has_the_wrapper_options_then_the_users() {
        let spec = RunSpec {
            program: "yt-dlp".into(),
            url: "http://x/".into(),
            proxy: Some(proxy_url::validate("socks5://u:p@127.0.0.1:1080").unwrap()),
            socket_timeout_secs: 0,
            output: Some("%(id)s.%(ext)s".into()),
            extra_args: args(&["-f", "best"]),
            deadline: Duration::from_secs(5),
        };
        assert_eq!(
            job_argv(&spec).unwrap(),
            args(&[
                "--ignore-config",
                "--proxy",
                "socks5://u:p@127.0.0.1:1080",
                "--socket-timeout",
                "1",
                "-o",
                "%(id)s.%(ext)s",
                "-f",
                "best"
            ])
        );
        let direct = RunSpec {
            proxy: None,
            ..spec
        };
        assert_eq!(job_argv(&direct).unwrap()[2], "");
    }
}
