//! The protocol between the host and a worker, JSON lines. The host writes
//! one [`Request`] per job on the worker's stdin; the worker answers with
//! progress lines and one `done` line on a private copy of its stdout
//! (anything yt-dlp prints goes to stderr). See `worker.py`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::classify::ExcInfo;
use crate::run::Progress;

/// The protocol's version, sent by the worker in `ready` (`worker.py`'s
/// `PROTOCOL`). Fields are only ever added, optional on this side (a chain
/// item's `headers`, `url_scheme`, `countries`; `done`'s `retry_error`),
/// so it stays 1.
pub const PROTOCOL: u32 = 1;

/// One job for a worker.
#[derive(Debug, Serialize)]
pub struct Request<'a> {
    pub job: u64,
    /// yt-dlp CLI options (checked by the host).
    pub argv: &'a [String],
    pub url: &'a str,
}

/// The end of a job.
#[derive(Debug, Deserialize)]
pub struct Done {
    pub job: u64,
    pub ok: bool,
    #[serde(default)]
    pub retcode: i32,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub chain: Vec<ExcInfo>,
    /// The last `[download] Got error: ...` yt-dlp reported before giving
    /// up (the only trace of what refused skipped fragments).
    #[serde(default)]
    pub retry_error: Option<String>,
    /// yt-dlp refused the options.
    #[serde(default)]
    pub options: bool,
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Line {
    Ready {
        #[serde(default)]
        version: String,
        #[serde(default)]
        python: String,
        #[serde(default)]
        protocol: u32,
    },
    Fatal {
        #[serde(default)]
        error: String,
    },
    Progress {
        job: u64,
        #[serde(flatten)]
        progress: Progress,
    },
    Done(Done),
}

/// One line from a worker.
#[derive(Debug)]
pub enum Event {
    /// yt-dlp imported: the worker takes jobs.
    Ready {
        version: String,
        python: String,
    },
    /// yt-dlp cannot be imported; the worker exits.
    Fatal(String),
    /// Progress of a job, in the process runner's shape.
    Progress(u64, Progress),
    Done(Done),
    /// Not a protocol line (logged, ignored).
    Other,
}

impl Event {
    pub fn parse(line: &str) -> Event {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Ready {
                version,
                python,
                protocol,
            }) if protocol == PROTOCOL => Event::Ready { version, python },
            Ok(Line::Ready { protocol, .. }) => Event::Fatal(format!(
                "the worker script speaks protocol {protocol}, this host {PROTOCOL}"
            )),
            Ok(Line::Fatal { error }) => Event::Fatal(error),
            Ok(Line::Progress { job, progress }) => Event::Progress(job, progress),
            Ok(Line::Done(d)) => Event::Done(d),
            Err(_) => Event::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_into_typed_events() {
        let p = Event::parse(
            r#"{"event":"progress","job":3,"status":"downloading","downloaded_bytes":1024,"total_bytes":null,"speed":1.5,"eta":2}"#,
        );
        assert!(
            matches!(&p, Event::Progress(3, p) if p.downloaded_bytes == Some(1024.0) && p.status.as_deref() == Some("downloading")),
            "{p:?}"
        );
        assert!(matches!(Event::parse("not json"), Event::Other));
        assert!(matches!(Event::parse(r#"{"event":"nope"}"#), Event::Other));
        assert!(matches!(
            Event::parse(r#"{"event":"ready","version":"2026.10.26","python":"3.11.7","pid":1,"protocol":1}"#),
            Event::Ready { version, .. } if version == "2026.10.26"
        ));
        assert!(matches!(
            Event::parse(r#"{"event":"ready","version":"x","python":"3","protocol":7}"#),
            Event::Fatal(e) if e.contains("protocol 7")
        ));
        let d = Event::parse(
            r#"{"event":"done","job":3,"ok":false,"retcode":1,"error":"ERROR: x","chain":[{"types":["builtins.TimeoutError"],"msg":"timed out"}]}"#,
        );
        let Event::Done(d) = d else { panic!() };
        assert_eq!((d.job, d.ok, d.chain.len()), (3, false, 1));
        assert_eq!(d.retry_error, None, "an older worker's line still parses");
    }

    #[test]
    fn done_lines_carry_the_answers_headers_the_countries_and_the_last_retry() {
        let Event::Done(d) = Event::parse(
            r#"{"event":"done","job":4,"ok":false,"retcode":1,"error":"ERROR: x","retry_error":"[download] Got error: HTTP Error 403: Forbidden. Retrying fragment 2 (10/10)...","chain":[{"types":["yt_dlp.networking.exceptions.HTTPError"],"msg":"HTTP Error 429: Too Many Requests","status":429,"headers":{"Retry-After":"30","Via":"1.1 vm (tinyproxy/1.11.1)"},"url_scheme":"http","future":1},{"types":["yt_dlp.utils.GeoRestrictedError"],"msg":"geo","countries":["DE","FR"]}]}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            d.retry_error.as_deref(),
            Some("[download] Got error: HTTP Error 403: Forbidden. Retrying fragment 2 (10/10)...")
        );
        assert_eq!(d.chain[0].header("retry-after"), Some("30"));
        assert_eq!(d.chain[0].url_scheme.as_deref(), Some("http"));
        assert_eq!(
            d.chain[1].countries,
            Some(vec!["DE".to_string(), "FR".to_string()])
        );
    }

    #[test]
    fn requests_are_one_json_object() {
        let argv = vec!["-f".to_string(), "best".to_string()];
        let r = Request {
            job: 7,
            argv: &argv,
            url: "http://x/",
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"job":7,"argv":["-f","best"],"url":"http://x/"}"#
        );
    }
}
