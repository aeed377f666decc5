//! The host's tables of yt-dlp options against the installed yt-dlp's own
//! parser: the options the host owns exist, every short option that takes
//! a value is known (so no value is read as an option), every real option
//! that is a prefix of a host-owned one is listed, and the API's allowlist
//! has each option's arity right.

use serde_json::Value;
use ytdlp_host_ytdlp::args::{EXACT_PREFIXES, HOST_OWNED, SHORT_WITH_VALUE};
use ytdlp_host_ytdlp::policy::{ALLOWED, Takes};
use ytdlp_host_ytdlp::worker as ytdlp_worker;

use crate::common::harness;

/// Every option of the installed yt-dlp: name -> takes a value.
fn yt_dlp_options() -> Vec<(String, bool)> {
    let python = ytdlp_worker::find_python(&harness::require("yt-dlp"), None).expect("python");
    let out = std::process::Command::new(&python.python)
        .arg("-c")
        .arg(
            "import json, yt_dlp.options as o\n\
             p = o.create_parser()\n\
             opts = [x for g in [p] + p.option_groups for x in g.option_list]\n\
             print(json.dumps([[n, x.takes_value()] for x in opts for n in x._short_opts + x._long_opts]))",
        )
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_bool().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn the_host_s_option_tables_match_the_installed_yt_dlp() {
    let all = yt_dlp_options();
    let takes = |name: &str| all.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    for o in HOST_OWNED {
        assert!(takes(o).is_some(), "{o} is not a yt-dlp option");
    }
    let mut shorts: Vec<char> = all
        .iter()
        .filter(|(n, v)| *v && n.len() == 2 && !n.starts_with("--"))
        .map(|(n, _)| n.chars().nth(1).unwrap())
        .collect();
    shorts.sort();
    let mut ours = SHORT_WITH_VALUE.to_vec();
    ours.sort();
    assert_eq!(ours, shorts, "yt-dlp's short options that take a value");
    for (name, _) in all.iter().filter(|(n, _)| n.starts_with("--")) {
        let prefix_of_owned = HOST_OWNED
            .iter()
            .any(|o| o.len() > name.len() && o.starts_with(name.as_str()));
        if prefix_of_owned {
            assert!(
                HOST_OWNED.contains(&name.as_str()) || EXACT_PREFIXES.contains(&name.as_str()),
                "{name} is a prefix of a host-owned option: list it in EXACT_PREFIXES"
            );
        }
    }
    // An alias may be an abbreviation yt-dlp resolves (`--add-header` is
    // `--add-headers`); the name written back (the first long one) is exact.
    let resolve = |name: &str| {
        takes(name).or_else(|| {
            let matches: Vec<bool> = all
                .iter()
                .filter(|(n, _)| n.starts_with(name))
                .map(|(_, v)| *v)
                .collect();
            (matches.len() == 1).then(|| matches[0])
        })
    };
    for (names, t) in ALLOWED {
        let canonical = names.iter().find(|n| n.starts_with("--")).unwrap();
        assert_eq!(
            takes(canonical),
            Some(*t != Takes::Nothing),
            "{canonical}: not yt-dlp's arity"
        );
        for n in *names {
            assert_eq!(
                resolve(n),
                Some(*t != Takes::Nothing),
                "{n}: not yt-dlp's arity"
            );
        }
    }
}
