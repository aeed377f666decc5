//! Why a yt-dlp run failed. Two front ends read what a run left behind,
//! yt-dlp's stderr ([`stderr`], the process runner) and the exception chain
//! ([`chain`], the worker runner); both reduce it to [`Signals`], and one
//! function, [`decide`], gives the kind and the detail, knowing the run's
//! [`Context`] (direct or through which proxy).

pub mod chain;
pub mod countries;
mod country_names;
pub mod retry_after;
pub mod signals;
pub mod stderr;

pub use chain::ExcInfo;
pub use signals::{Context, Signals, Verdict, decide};
pub use stderr::{error_block, error_line};

/// Classifies a failed run from yt-dlp's stderr and exit code. stderr
/// shows no headers: the verdict has no `retry_after_ms`.
pub fn classify(stderr: &str, exit_code: Option<i32>, ctx: &Context) -> Verdict {
    decide(&stderr::signals(stderr, exit_code), ctx)
}

/// Classifies a failed worker job from its exception chain, its `ERROR:`
/// text and its last retry line: the chain's typed signals first, then the
/// text's.
pub fn classify_chain(
    chain: &[ExcInfo],
    error: &str,
    retry_error: Option<&str>,
    ctx: &Context,
) -> Verdict {
    let mut text = stderr::signals(error, Some(1));
    text.retry_status = text
        .retry_status
        .or(retry_error.and_then(stderr::retry_status));
    decide(&chain::merge(chain::signals(chain), text), ctx)
}

/// The failure message as both runners word it: the `ERROR:` message
/// without yt-dlp's bug-report boilerplate, on one line, capped, cleaned
/// (it comes from a site as much as from yt-dlp).
pub fn failure_message(line: &str) -> String {
    let line = line
        .split("; please report this issue")
        .next()
        .unwrap_or_default()
        .trim();
    ytdlp_host_text::clean_capped(&line.replace(['\r', '\n'], " "), 500)
}

#[cfg(test)]
mod tests;
