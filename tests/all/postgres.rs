//! The PostgreSQL plugin (plugins/postgres) in the real host: a real
//! PostgreSQL 15 (its own cluster on a free loopback port, stopped by PID;
//! the plugin's own test harness), the real yt-dlp through a real tinyproxy.

use crate::common::{Env, attempts, harness};
use harness::{MediaServer, plugins, require, tinyproxy};

// (It allows its own dead code: not every helper is used here.)
// (tests/all/chain.rs borrows it too.)
#[path = "../../plugins/postgres/tests/support/mod.rs"]
pub(crate) mod pg;

/// The plugin's config tables for `server`: its URL, the grant to reach
/// it.
pub(crate) fn plugin_tables(server: &pg::PgServer) -> String {
    format!(
        "[plugins.postgres.options]\n\
         url = \"{}\"\n\
         [plugins.postgres.grants]\n\
         tcp = [\"127.0.0.1:{}\"]\n",
        server.url(),
        server.port
    )
}

#[test]
#[ignore = "needs PostgreSQL 15, yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn downloads_through_tinyproxy_with_the_pool_in_postgres_and_fails_closed_without_it() {
    require("yt-dlp");
    let mut server = pg::PgServer::start().expect(
        "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin; bash .ci/run installs it)",
    );
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    env.install_plugin(plugins::POSTGRES, "postgres");
    let config = env.write_config(&format!(
        "backend = \"postgres\"\n{}",
        plugin_tables(&server)
    ));
    let cfg = config.to_str().unwrap();
    // The pool is created on first use and filled through `admin`.
    let add = env.run(&["--config", cfg, "proxies", "add", &proxy.url("http")]);
    assert!(add.ok(), "{}", add.dump());
    let run = env.download(&["--config", cfg, &media.url("/clip.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_eq!(attempts(r), [(proxy.url("http"), None)], "{r}");
    assert!(
        harness::proxied_requests(&proxy.log(), &format!("127.0.0.1:{}/clip.mp4", media.port)) >= 1,
        "{}",
        proxy.log()
    );
    // The success is in the table.
    let stats = env.run(&["--config", cfg, "proxies", "stats", "--json"]);
    assert!(stats.ok(), "{}", stats.dump());
    let rows = stats.json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["url"] == proxy.url("http"))
        .unwrap_or_else(|| panic!("no row: {rows}"))
        .clone();
    assert_eq!(row["successes"], 1, "{row}");
    // The database password never shows, in any form.
    let encoded = server.url();
    let encoded_pw = encoded
        .split_once(':')
        .and_then(|(_, r)| r.split_once(':'))
        .and_then(|(_, r)| r.split_once('@'))
        .map(|(p, _)| p.to_string())
        .unwrap();
    for out in [&add, &run, &stats] {
        let all = format!("{}{}", out.stdout(), out.stderr());
        assert!(!all.contains(pg::PASSWORD), "{all}");
        assert!(!all.contains(&encoded_pw), "{all}");
    }

    // PostgreSQL stopped: a typed `backend-unavailable`, the URL fails
    // with it (policy `fail`), nothing goes out from this machine.
    let before = media.requests();
    server.stop();
    let run = env.download(&[
        "--config",
        cfg,
        "--on-no-proxy",
        "fail",
        &media.url("/clip2.mp4"),
    ]);
    assert!(!run.ok(), "{}", run.dump());
    let error = run.json_lines()[0]["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("plugin `postgres`") && error.contains("unavailable"),
        "{error}"
    );
    assert_eq!(media.requests(), before, "went direct");
}
