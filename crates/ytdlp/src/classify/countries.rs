//! Country names back to codes. yt-dlp's CLI prints a geo restriction's
//! countries by name (`This video is available in Germany, France.`), with
//! its own ISO 3166 table ([`COUNTRY_NAMES`], generated from it); the
//! worker gets the codes themselves from the exception.

use std::collections::HashMap;
use std::sync::OnceLock;

pub use super::country_names::COUNTRY_NAMES;

/// The line of yt-dlp's geo message that names the countries.
const AVAILABLE_IN: &str = "This video is available in ";

fn by_name() -> &'static HashMap<&'static str, &'static str> {
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| COUNTRY_NAMES.iter().map(|&(c, n)| (n, c)).collect())
}

/// The most `, `-separated parts in one name (`Korea, Republic of`).
fn max_parts() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        COUNTRY_NAMES
            .iter()
            .map(|(_, n)| n.split(", ").count())
            .max()
            .unwrap_or(1)
    })
}

/// The codes of `This video is available in <name>, <name>, ....`, in the
/// line's order; `None` if `line` is not that line or names a country the
/// table does not know (a partial list would wrongly leave one out).
///
/// Names may hold `, ` themselves (`Korea, Republic of`) and one ends in a
/// period (`Virgin Islands, U.S.`, which the line then ends with `U.S..`):
/// the line is cut at its one final period, and at each position the
/// longest known name wins.
pub fn parse_available(line: &str) -> Option<Vec<String>> {
    let rest = line.trim().strip_prefix(AVAILABLE_IN)?.strip_suffix('.')?;
    let parts: Vec<&str> = rest.split(", ").collect();
    let mut codes = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let longest = (i + max_parts()).min(parts.len());
        let (code, next) = (i + 1..=longest).rev().find_map(|j| {
            by_name()
                .get(parts[i..j].join(", ").as_str())
                .map(|c| (*c, j))
        })?;
        codes.push(code.to_string());
        i = next;
    }
    (!codes.is_empty()).then_some(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(codes: &[&str]) -> String {
        let names: Vec<&str> = codes
            .iter()
            .map(|c| COUNTRY_NAMES.iter().find(|(k, _)| k == c).unwrap().1)
            .collect();
        format!("{AVAILABLE_IN}{}.", names.join(", "))
    }

    #[test]
    fn names_go_back_to_codes_even_with_commas_and_periods_inside() {
        assert_eq!(
            parse_available("This video is available in Germany, France."),
            Some(vec!["DE".to_string(), "FR".to_string()])
        );
        // Recorded from yt-dlp 2026.10.26 (geo-commas).
        assert_eq!(
            parse_available(
                "This video is available in Korea, Republic of, Taiwan, Province of China, Virgin Islands, U.S., Bolivia, Plurinational State of."
            ),
            Some(["KR", "TW", "VI", "BO"].map(String::from).to_vec())
        );
        assert_eq!(
            parse_available("This video is available in Atlantis."),
            None
        );
        assert_eq!(parse_available("This video is available in Germany"), None);
        assert_eq!(parse_available("You might want to use a VPN"), None);
    }

    /// Every code, alone and all at once, in the table's order and reversed,
    /// comes back from its printed line: no name is read as another.
    #[test]
    fn every_name_round_trips() {
        let all: Vec<&str> = COUNTRY_NAMES.iter().map(|(c, _)| *c).collect();
        for c in &all {
            assert_eq!(parse_available(&line(&[c])), Some(vec![c.to_string()]));
        }
        let mut rev = all.clone();
        rev.reverse();
        for seq in [all, rev] {
            let want: Vec<String> = seq.iter().map(|c| c.to_string()).collect();
            assert_eq!(parse_available(&line(&seq)), Some(want));
        }
        // Each name with a comma next to every other name, both sides.
        for (c, n) in COUNTRY_NAMES.iter().filter(|(_, n)| n.contains(", ")) {
            for (d, _) in COUNTRY_NAMES {
                for pair in [[*c, *d], [*d, *c]] {
                    let got = parse_available(&line(&pair));
                    assert_eq!(got, Some(pair.map(String::from).to_vec()), "{n}");
                }
            }
        }
    }

    /// The table is the installed yt-dlp's (regenerate it with
    /// fixtures/gen_country_names.py when this fails after an upgrade).
    #[test]
    #[ignore = "needs yt-dlp (bash .ci/run installs it)"]
    fn country_names_are_yt_dlps() {
        // yt-dlp's own interpreter, from its shebang (a zipapp yt-dlp holds
        // the module: it goes on sys.path).
        let path = std::env::var_os("PATH").unwrap_or_default();
        let exe = std::env::split_paths(&path)
            .map(|d| d.join("yt-dlp"))
            .find(|p| p.is_file())
            .expect("yt-dlp on PATH");
        let head = std::fs::read(&exe).expect("read yt-dlp");
        let first =
            String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or(&[])).into_owned();
        let words: Vec<&str> = first
            .strip_prefix("#!")
            .unwrap_or("python3")
            .split_whitespace()
            .collect();
        let python = match words.as_slice() {
            [env, p, ..] if env.ends_with("/env") => *p,
            [p, ..] => *p,
            [] => "python3",
        };
        let out = std::process::Command::new(python)
            .args([
                "-c",
                "import json, sys; sys.path[:0] = sys.argv[1:]; \
                 from yt_dlp.utils import ISO3166Utils as I; \
                 print(json.dumps([[c, I.short2full(c)] for c in I._country_map]))",
            ])
            .arg(&exe)
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<(String, String)> = serde_json::from_slice(&out.stdout).expect("json");
        let ours: Vec<(String, String)> = COUNTRY_NAMES
            .iter()
            .map(|(c, n)| (c.to_string(), n.to_string()))
            .collect();
        assert_eq!(ours, theirs);
    }
}
