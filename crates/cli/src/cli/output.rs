//! Everything the command line prints goes through here: each line is
//! redacted of every secret the host has seen, its URL credentials masked,
//! and its control characters escaped (text from plugins, sites and yt-dlp
//! must neither forge a line of the host's output nor drive the terminal).

use std::io::Write;

/// One line as it may be printed.
pub(crate) fn clean_line(line: &str) -> String {
    ytdlp_host_text::for_output(line)
}

/// Writes `text` to `w`, each line cleaned.
pub(crate) fn emit(mut w: impl Write, text: &str) {
    let mut out = String::with_capacity(text.len() + 1);
    for line in text.split('\n') {
        out.push_str(&clean_line(line));
        out.push('\n');
    }
    let _ = w.write_all(out.as_bytes());
}

/// `println!` through the filter.
macro_rules! say {
    ($($t:tt)*) => { $crate::cli::output::emit(std::io::stdout().lock(), &format!($($t)*)) };
}

/// `eprintln!` through the filter.
macro_rules! tell {
    ($($t:tt)*) => { $crate::cli::output::emit(std::io::stderr().lock(), &format!($($t)*)) };
}

pub(crate) use {say, tell};

/// The log's writer: tracing formats each event and writes it whole; the
/// writer cleans it line by line.
pub(crate) struct CleanStderr;

impl Write for CleanStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        emit(std::io::stderr().lock(), text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CleanStderrMaker {
    type Writer = CleanStderr;

    fn make_writer(&'a self) -> CleanStderr {
        CleanStderr
    }
}

/// Makes [`CleanStderr`]s for tracing.
pub(crate) struct CleanStderrMaker;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_cleaned_and_none_is_forged() {
        ytdlp_host_text::secrets::register("hunter2-secret");
        let mut out = Vec::new();
        emit(
            &mut out,
            "failed: x (proxy-connect): no proxy\u{1b}[31m hunter2-secret\n{\"url\":\"http://h:1/v\",\"proxy\":\"http://***@h:1\"}",
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            !text.contains('\u{1b}') && !text.contains("hunter2"),
            "{text}"
        );
        // JSON the host wrote goes out whole.
        assert!(
            text.contains("{\"url\":\"http://h:1/v\",\"proxy\":\"http://***@h:1\"}"),
            "{text}"
        );
    }
}
