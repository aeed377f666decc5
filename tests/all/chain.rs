//! Several backends chained (`backend = ["postgres", "memory"]`) in the real
//! host: a real PostgreSQL 15 (the plugin's own harness), the bundled memory
//! backend, the real yt-dlp through two real tinyproxies, one per backend.

use crate::common::{Env, attempts, harness};
use crate::postgres::{pg, plugin_tables};
use harness::{MediaServer, plugins, require, tinyproxy};

/// The `proxies stats --json` row of `url` kept by `backend`, if any.
fn row(env: &Env, cfg: &str, backend: &str, url: &str) -> Option<serde_json::Value> {
    let stats = env.run(&["--config", cfg, "proxies", "stats", "--json"]);
    assert!(stats.ok(), "{}", stats.dump());
    stats
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backend"] == backend && r["url"] == url)
        .cloned()
}

#[test]
#[ignore = "needs PostgreSQL 15, yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn postgres_first_memory_when_it_is_down_each_success_reported_to_its_own_backend() {
    require("yt-dlp");
    let mut server = pg::PgServer::start().expect(
        "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin; bash .ci/run installs it)",
    );
    let media = MediaServer::start();
    let (pg_proxy, mem_proxy) = (tinyproxy(None), tinyproxy(None));
    let (pg_url, mem_url) = (pg_proxy.url("http"), mem_proxy.url("http"));
    let env = Env::new();
    env.install_plugin(plugins::POSTGRES, "postgres");
    let config = env.write_config(&format!(
        "backend = [\"postgres\", \"memory\"]\n\
         proxies = [\"{mem_url}\"]\n\
         on_no_proxy = \"fail\"\n{}",
        plugin_tables(&server)
    ));
    let cfg = config.to_str().unwrap();
    // `proxies add` addresses the first backend: PostgreSQL's table.
    let add = env.run(&["--config", cfg, "proxies", "add", &pg_url]);
    assert!(add.ok(), "{}", add.dump());

    // PostgreSQL down: the memory backend's proxy serves, and hears the
    // success.
    server.stop();
    let run = env.download(&["--config", cfg, &media.url("/v/first.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_eq!(attempts(r), [(mem_url.clone(), None)], "{r}");
    let mem_row = row(&env, cfg, "memory", &mem_url).expect("memory's row");
    assert_eq!(mem_row["successes"], 1, "{mem_row}");

    // PostgreSQL back: its proxy serves, the success lands in its table,
    // memory hears nothing of it.
    server.restart();
    let run = env.download(&["--config", cfg, &media.url("/v/second.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_eq!(attempts(r), [(pg_url.clone(), None)], "{r}");
    let pg_row = row(&env, cfg, "postgres", &pg_url).expect("postgres's row");
    assert_eq!(pg_row["successes"], 1, "{pg_row}");
    assert_eq!(row(&env, cfg, "memory", &mem_url).unwrap()["successes"], 1);
    assert!(row(&env, cfg, "memory", &pg_url).is_none());
    assert!(row(&env, cfg, "postgres", &mem_url).is_none());

    // The table shows each backend's rows under its name.
    let table = env.run(&["--config", cfg, "proxies", "stats"]);
    assert!(table.ok(), "{}", table.dump());
    let out = table.stdout();
    let (pg_at, mem_at) = (out.find("postgres:").unwrap(), out.find("memory:").unwrap());
    assert!(pg_at < out.find(&pg_url).unwrap(), "{out}");
    assert!(
        mem_at < out.rfind(&mem_url).unwrap() && pg_at < mem_at,
        "{out}"
    );

    // Every request the site saw came through one of the proxies: none
    // went out directly.
    let proxied = |log: &str, path: &str| {
        harness::proxied_requests(log, &format!("127.0.0.1:{}{path}", media.port))
    };
    let (first, second) = (
        proxied(&mem_proxy.log(), "/v/first.mp4"),
        proxied(&pg_proxy.log(), "/v/second.mp4"),
    );
    assert!(first >= 1 && second >= 1, "{first} {second}");
    assert_eq!(proxied(&pg_proxy.log(), "/v/first.mp4"), 0);
    assert_eq!(proxied(&mem_proxy.log(), "/v/second.mp4"), 0);
    assert_eq!(media.requests(), first + second, "{:?}", media.paths());
    // The database password never shows.
    for out in [&add, &run, &table] {
        let all = format!("{}{}", out.stdout(), out.stderr());
        assert!(!all.contains(pg::PASSWORD), "{all}");
    }
}

#[test]
fn a_backend_that_cannot_start_fails_the_build_naming_it() {
    let env = Env::new();
    let config = env.write_config("backend = [\"memory\", \"nosuch\"]\n");
    let run = env.run(&["--config", config.to_str().unwrap(), "proxies", "get"]);
    assert!(!run.ok(), "{}", run.dump());
    assert!(run.stderr().contains("nosuch"), "{}", run.dump());
}

#[test]
fn a_bad_backend_list_is_refused_naming_backend_and_the_value() {
    let env = Env::new();
    for (text, needle) in [
        (
            "backend = [\"memory\", \"memory\"]\n",
            "backend: `memory` is listed twice",
        ),
        ("backend = []\n", "backend: the list is empty"),
        ("backend = [\"a/b\"]\n", "`a/b` is not a plugin name"),
    ] {
        let config = env.write_config(text);
        let run = env.run(&["--config", config.to_str().unwrap(), "proxies", "get"]);
        assert!(!run.ok(), "{text}: {}", run.dump());
        assert!(run.stderr().contains(needle), "{text}: {}", run.dump());
    }
    let run = env.run(&["--backend", "memory,memory", "proxies", "get"]);
    assert!(
        run.stderr().contains("--backend: `memory` is listed twice"),
        "{}",
        run.dump()
    );
}
