//! Why a yt-dlp run failed. Two front ends read what a run left behind,
//! yt-dlp's stderr ([`stderr`], the process runner) and the exception chain
//! ([`chain`], the worker runner); both reduce it to [`Signals`], and one
//! function, [`decide`], gives the kind.

pub mod chain;
pub mod signals;
pub mod stderr;

use ytdlp_contract::FailureKind;

pub use chain::ExcInfo;
pub use signals::{Signals, decide};
pub use stderr::error_line;

/// Classifies a failed run from yt-dlp's stderr and exit code.
pub fn classify(stderr: &str, exit_code: Option<i32>, proxy_has_credentials: bool) -> FailureKind {
    decide(&stderr::signals(stderr, exit_code), proxy_has_credentials)
}

/// Classifies a failed worker job from its exception chain and its `ERROR:`
/// line: the chain's typed signals first, then the line's.
pub fn classify_chain(
    chain: &[ExcInfo],
    error_line: &str,
    proxy_has_credentials: bool,
) -> FailureKind {
    let signals = chain::merge(chain::signals(chain), stderr::signals(error_line, Some(1)));
    decide(&signals, proxy_has_credentials)
}

/// The failure message as both runners word it: the `ERROR:` line without
/// yt-dlp's bug-report boilerplate, on one line, capped, cleaned (it comes
/// from a site as much as from yt-dlp).
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
