//! Durable state shared by host processes: the bundled plugin keeps proxy
//! health in the host's key-value store (SQLite by default, Redis when
//! configured), so concurrent `download -a` processes on one machine (or
//! several, on Redis) count every report. Real yt-dlp, real tinyproxy, a
//! real redis-server, separate host processes.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{Env, Run, harness};
use harness::{MediaServer, redis, tinyproxy};

/// `download --json -a BATCH` of `urls` in a new host process, files to
/// `out`.
fn spawn_batch(
    env: &Env,
    config: &std::path::Path,
    name: &str,
    urls: &[String],
    out: &std::path::Path,
) -> Child {
    let batch = env.path().join(format!("{name}.txt"));
    std::fs::write(&batch, urls.join("\n") + "\n").unwrap();
    env.cmd()
        .arg("--config")
        .arg(config)
        .arg("download")
        .arg("--json")
        .arg("-o")
        .arg(out.join("%(id)s.%(ext)s"))
        .arg("-a")
        .arg(&batch)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `n` host processes at once, each `download -a` of its own `per` URLs
/// through one tinyproxy; returns the env and the proxy's URL.
fn concurrent_batches(n: usize, per: usize, store: &str) -> (Env, String, MediaServer) {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let proxy_url = proxy.url("http");
    let env = Env::new();
    let config = env.write_config(&format!("proxies = [\"{proxy_url}\"]\n{store}"));
    // Compile the plugin once, before the processes race to.
    let warm = env.run(&["--config", config.to_str().unwrap(), "plugins", "list"]);
    assert!(warm.ok(), "{}", warm.dump());
    let children: Vec<(Child, PathBuf)> = (0..n)
        .map(|p| {
            let urls: Vec<String> = (0..per)
                .map(|i| media.url(&format!("/v/p{p}-{i}.mp4")))
                .collect();
            let out = env.path().join(format!("out-{p}"));
            let child = spawn_batch(&env, &config, &format!("batch-{p}"), &urls, &out);
            (child, out)
        })
        .collect();
    for (child, out) in children {
        let run = Run {
            output: child.wait_with_output().unwrap(),
        };
        assert!(run.ok(), "{}", run.dump());
        let done = run
            .json_lines()
            .iter()
            .filter(|r| r["status"] == "done")
            .count();
        assert_eq!(done, per, "{}", run.dump());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), per);
    }
    drop(proxy);
    (env, proxy_url, media)
}

fn successes(env: &Env, store: &str, proxy_url: &str) -> u64 {
    stats_row(env, store, proxy_url)["successes"]
        .as_u64()
        .unwrap()
}

/// `proxies stats --json` in a new process, the proxy configured.
fn stats_run(env: &Env, store: &str, proxy_url: &str) -> Run {
    let config = env.write_config(&format!("proxies = [\"{proxy_url}\"]\n{store}"));
    let run = env.run(&[
        "--config",
        config.to_str().unwrap(),
        "proxies",
        "stats",
        "--json",
    ]);
    assert!(run.ok(), "{}", run.dump());
    run
}

fn stats_row(env: &Env, store: &str, proxy_url: &str) -> serde_json::Value {
    let rows = stats_run(env, store, proxy_url).json();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["url"] == proxy_url)
        .unwrap_or_else(|| panic!("no {proxy_url} in {rows}"))
        .clone()
}

/// The three terminals: before the store, 45 downloads counted 15.
#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn three_concurrent_processes_count_every_success() {
    let (env, proxy, _media) = concurrent_batches(3, 5, "");
    assert_eq!(successes(&env, "", &proxy), 15);
    assert!(env.path().join("state/ytdlp-host/store.sqlite3").is_file());
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn eight_concurrent_processes_count_every_success() {
    let (env, proxy, _media) = concurrent_batches(8, 3, "");
    assert_eq!(successes(&env, "", &proxy), 24);
}

/// The same plugin, unchanged, on Redis (`[store] url`): what several
/// machines would share.
#[test]
#[ignore = "needs yt-dlp, tinyproxy and redis-server (bash .ci/run installs them)"]
fn on_redis_three_concurrent_processes_count_every_success() {
    let redis = redis();
    let store = format!("[store]\nurl = \"redis://127.0.0.1:{}\"\n", redis.port);
    let (env, proxy, _media) = concurrent_batches(3, 4, &store);
    assert_eq!(successes(&env, &store, &proxy), 12);
    // Nothing went to the SQLite file.
    assert!(!env.path().join("state/ytdlp-host/store.sqlite3").exists());
}

/// A damaged store file: a warning naming it, a fresh start, the command
/// still works.
#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_damaged_store_file_is_named_moved_aside_and_started_afresh() {
    let (env, proxy, _media) = concurrent_batches(1, 2, "");
    let file = env.path().join("state/ytdlp-host/store.sqlite3");
    // Stopped; then the file is overwritten (and its WAL lost).
    std::fs::write(&file, b"garbage, not SQLite ".repeat(500)).unwrap();
    let _ = std::fs::remove_file(file.with_extension("sqlite3-wal"));
    let err = stats_run(&env, "", &proxy).stderr();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("moved to"), "{err}");
    assert_eq!(successes(&env, "", &proxy), 0);
}

/// Health an older build kept in the state directory moves into the store
/// once, with a notice.
#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn health_from_the_journal_files_moves_into_the_store_once() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let proxy_url = proxy.url("http");
    let env = Env::new();
    let config = env.write_config(&format!("proxies = [\"{proxy_url}\"]\n"));
    let cfg = config.to_str().unwrap();
    let run = env.download(&["--config", cfg, &media.url("/v/1.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    let id = stats_row(&env, "", &proxy_url)["id"]
        .as_str()
        .unwrap()
        .to_string();
    // What an older build would have left: a snapshot with 5 successes.
    let dir = env.path().join("state/ytdlp-host/memory");
    let record = serde_json::json!({
        "format": 2,
        "entries": [{
            "id": id,
            "url": proxy_url,
            "successes": 5,
            "health": "Active",
        }],
        "bans": [],
    });
    std::fs::remove_file(env.path().join("state/ytdlp-host/store.sqlite3")).unwrap();
    for side in ["store.sqlite3-wal", "store.sqlite3-shm"] {
        let _ = std::fs::remove_file(env.path().join("state/ytdlp-host").join(side));
    }
    std::fs::write(dir.join("memory-state.json"), record.to_string()).unwrap();
    let run = env.download(&["--config", cfg, &media.url("/v/2.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    assert!(
        run.stderr().contains("moved the saved proxy health"),
        "{}",
        run.dump()
    );
    assert!(dir.join("memory-state.moved").exists());
    assert_eq!(successes(&env, "", &proxy_url), 6);
    // Once: the next run says nothing of it.
    let run = env.download(&["--config", cfg, &media.url("/v/3.mp4")]);
    assert!(!run.stderr().contains("moved the saved"), "{}", run.dump());
    assert_eq!(successes(&env, "", &proxy_url), 7);
}

/// `serve` killed (SIGKILL) with 50 downloads queued and 4 running, then
/// started again on the same store: all 54 end `done` under their ids.
#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn serve_killed_with_50_queued_and_4_running_finishes_all_54_after_a_restart() {
    use crate::service::Service;
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let config = format!("proxies = [\"{}\"]\n", proxy.url("http"));
    let mut svc = Service::start(&env, &config, &["--max-concurrent", "4"]);
    // The first four take seconds (so they are running at the kill); the
    // other fifty wait behind them.
    let ids: Vec<String> = (0..54)
        .map(|i| {
            let path = if i < 4 {
                format!("/slow/6000/k{i}.mp4")
            } else {
                format!("/v/k{i}.mp4")
            };
            svc.submit(&media.url(&path))
        })
        .collect();
    for id in &ids[..4] {
        svc.wait_state(id, "running");
    }
    let (_, page) = svc.get("/downloads?state=queued&limit=100");
    assert_eq!(page["downloads"].as_array().unwrap().len(), 50, "{page}");
    svc.signal(libc::SIGKILL);
    assert_eq!(
        svc.exit(Duration::from_secs(10)),
        None,
        "killed by a signal"
    );
    drop(svc);

    let svc = Service::start(&env, &config, &["--max-concurrent", "4"]);
    for id in &ids {
        let s = svc.wait_for(id, "done", |s| {
            s["state"] == "done" || s["state"] == "failed"
        });
        assert_eq!(s["state"], "done", "{s}\n{}", svc.log());
        assert_eq!(s["id"], *id);
    }
    assert!(
        svc.log()
            .contains("54 queued again (4 of them were running"),
        "{}",
        svc.log()
    );
    // Every file is there once.
    let files = std::fs::read_dir(env.out_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "mp4"))
        .count();
    assert_eq!(files, 54);
    // A new download gets an id of its own, after the restored ones.
    let new = svc.submit(&media.url("/v/after.mp4"));
    assert!(!ids.contains(&new));
}

/// A site's pace (`site_rate`) is one budget for every process on the
/// store: two batches at once get 2 handouts in the minute between them,
/// not 2 each (the rest fail under policy `fail`, none goes direct).
#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_site_pace_is_one_budget_for_concurrent_processes() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let config = env.write_config(&format!(
        "proxies = [\"{}\"]\non_no_proxy = \"fail\"\n\
         [plugins.memory.options]\nsite_rate = \"127.0.0.1=2/60s\"\n",
        proxy.url("http")
    ));
    let warm = env.run(&["--config", config.to_str().unwrap(), "plugins", "list"]);
    assert!(warm.ok(), "{}", warm.dump());
    let children: Vec<Child> = (0..2)
        .map(|p| {
            let urls: Vec<String> = (0..3)
                .map(|i| media.url(&format!("/v/paced{p}-{i}.mp4")))
                .collect();
            spawn_batch(&env, &config, &format!("paced-{p}"), &urls, &env.out_dir())
        })
        .collect();
    let (mut done, mut failed) = (0, 0);
    for child in children {
        let run = Run {
            output: child.wait_with_output().unwrap(),
        };
        for r in run.json_lines() {
            match r["status"].as_str() {
                Some("done") => done += 1,
                Some("failed") => {
                    assert!(
                        r["attempts"].as_array().unwrap().is_empty(),
                        "refused before any run, never direct: {r}"
                    );
                    failed += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!((done, failed), (2, 4));
    assert_eq!(media.requests(), 2 * 2, "two downloads, two requests each");
}
