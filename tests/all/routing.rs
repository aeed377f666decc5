//! Routing by what proxies are (contract 0.2's metadata), with the real
//! yt-dlp through real tinyproxies, each with its own egress address that
//! the harness site maps to a country: a geo-restricted video ends
//! downloaded through a proxy of an allowed country; `--region` and tiers
//! filter; and a plugin still on contract 0.1 passes the kit and downloads.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::common::{Env, Run, attempts, harness};
use harness::pool::{FLAGGED, USER_ADDR};
use harness::site::{Answer, Site, SiteConfig};
use harness::{CLIP, Daemon, fixtures, free_port, require, tinyproxy_with};

const US: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const FR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const DE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// The folder that holds `yt_dlp_plugins/` of the fixture extractor, which
/// raises yt-dlp's own geo restriction from the site's `/api/geo/` answer.
fn extractor_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ytdlp/fixtures/site/plugin")
}

/// A site that places US, FR and DE at their egress addresses, and a
/// tinyproxy egressing from each, listed in that order with its region.
struct World {
    site: Site,
    proxies: Vec<(Ipv4Addr, Daemon)>,
}

impl World {
    fn start(config: SiteConfig) -> World {
        require("yt-dlp");
        let site = Site::start(config);
        let proxies = [US, FR, DE]
            .into_iter()
            .map(|ip| (ip, tinyproxy_with(free_port(), None, Some(ip))))
            .collect();
        World { site, proxies }
    }

    fn geo() -> World {
        World::start(SiteConfig {
            countries: [(US, "US"), (FR, "FR"), (DE, "DE")]
                .into_iter()
                .map(|(ip, c)| (ip..=ip, c.to_string()))
                .collect(),
            ..SiteConfig::default()
        })
    }

    fn url_of(&self, ip: Ipv4Addr) -> String {
        let (_, d) = self.proxies.iter().find(|(i, _)| *i == ip).unwrap();
        d.url("http")
    }

    /// `[[proxy]]` tables: each proxy with its region and tier.
    fn config(&self, env: &Env, meta: &[(Ipv4Addr, &str, u8)]) -> String {
        let mut text = String::new();
        for (ip, region, tier) in meta {
            text.push_str(&format!(
                "[[proxy]]\nurl = \"{}\"\nregion = \"{region}\"\ntier = {tier}\n\n",
                self.url_of(*ip)
            ));
        }
        env.write_config(&text).to_string_lossy().into_owned()
    }

    /// `download` with the fixture extractor on yt-dlp's path.
    fn download(&self, env: &Env, args: &[&str]) -> Run {
        let mut c = env.cmd();
        c.env("PYTHONPATH", extractor_path())
            .arg("download")
            .arg("--json")
            .arg("-o")
            .arg(env.out_dir().join("%(id)s.%(ext)s"))
            .args(args);
        Run::of(c)
    }

    fn regions(&self, env: &Env) -> String {
        self.config(env, &[(US, "US", 0), (FR, "FR", 0), (DE, "DE", 0)])
    }
}

fn proxy_port(attempt_proxy: &str) -> u16 {
    attempt_proxy
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {attempt_proxy}"))
}

fn port_of(w: &World, ip: Ipv4Addr) -> u16 {
    w.proxies.iter().find(|(i, _)| *i == ip).unwrap().1.port
}

fn assert_downloaded(env: &Env, r: &serde_json::Value, id: &str) {
    assert_eq!(r["status"], "done", "{r}");
    let file = env.out_dir().join(format!("{id}.mp4"));
    assert_eq!(std::fs::read(&file).unwrap(), CLIP, "{}", file.display());
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_geo_restricted_video_is_downloaded_through_a_proxy_of_an_allowed_country() {
    let w = World::geo();
    let env = Env::new();
    let config = w.regions(&env);
    let url = w.site.url("/fx/geo/g1?countries=DE");
    let run = w.download(&env, &["--config", &config, &url]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_downloaded(&env, r, "g1");
    let tried = attempts(r);
    // The first proxy (US) hears the site's geo restriction with its
    // allowed countries; the next attempt asks for DE and gets it, not the
    // next in turn (FR).
    assert_eq!(tried.len(), 2, "{}", run.dump());
    assert_eq!(proxy_port(&tried[0].0), port_of(&w, US), "{tried:?}");
    assert_eq!(tried[0].1.as_deref(), Some("geo-restricted"), "{tried:?}");
    assert_eq!(proxy_port(&tried[1].0), port_of(&w, DE), "{tried:?}");
    let tally = w.site.tally();
    let answers = |ip: Ipv4Addr| tally.get(&ip.into()).cloned().unwrap_or_default();
    assert_eq!(answers(US).count(Answer::GeoError), 1, "{tally:?}");
    assert_eq!(answers(DE).count(Answer::Meta), 1, "{tally:?}");
    assert_eq!(answers(DE).count(Answer::Media), 1, "{tally:?}");
    assert_eq!(answers(FR).requests, 0, "FR was never needed: {tally:?}");
    assert_eq!(answers(USER_ADDR).requests, 0, "never direct: {tally:?}");
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn region_asks_for_a_country_and_fails_closed_when_none_has_it() {
    let w = World::geo();
    let env = Env::new();
    let config = w.regions(&env);
    let url = w.site.url("/fx/geo/g2?countries=FR");
    let run = w.download(&env, &["--config", &config, "--region", "fr", &url]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_downloaded(&env, r, "g2");
    let tried = attempts(r);
    assert_eq!(tried.len(), 1, "{tried:?}");
    assert_eq!(proxy_port(&tried[0].0), port_of(&w, FR), "{tried:?}");

    // No proxy in JP: the URL fails with the reason, nothing reaches the
    // site, and nothing goes out from the user's address.
    w.site.reset();
    let url = w.site.url("/fx/geo/g3?countries=JP");
    let run = w.download(&env, &["--config", &config, "--region", "JP", &url]);
    assert!(!run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_eq!(r["status"], "failed", "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("JP"), "the reason names the region: {error}");
    assert!(
        r["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a["proxy"].is_null()),
        "no direct attempt: {r}"
    );
    assert!(w.site.hits().is_empty(), "{:?}", w.site.hits());

    // A region that is not a country code is refused before anything runs.
    let run = w.download(&env, &["--config", &config, "--region", "Germany", &url]);
    assert!(!run.ok(), "{}", run.dump());
    assert!(run.stderr().contains("Germany"), "{}", run.stderr());
    assert!(w.site.hits().is_empty());
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_site_that_refuses_the_cheap_tier_moves_up_for_that_site_only() {
    // The tier-0 proxy egresses from an address the site answers 403.
    let flagged = *FLAGGED.start();
    let site = Site::start(SiteConfig {
        flagged: vec![FLAGGED],
        ..SiteConfig::default()
    });
    require("yt-dlp");
    let cheap = tinyproxy_with(free_port(), None, Some(flagged));
    let dear = tinyproxy_with(free_port(), None, Some(DE));
    let env = Env::new();
    let config = env.write_config(&format!(
        "[[proxy]]\nurl = \"{}\"\ntier = 0\n\n[[proxy]]\nurl = \"{}\"\ntier = 1\n",
        cheap.url("http"),
        dear.url("http")
    ));
    let urls: Vec<String> = ["t1", "t2", "t3"]
        .iter()
        .map(|id| site.url(&format!("/v/{id}.mp4")))
        .collect();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend(urls.iter().map(String::as_str));
    let run = env.download(&args);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(results.len(), 3, "{}", run.dump());
    let ports: Vec<Vec<(u16, Option<String>)>> = results
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "done", "{r}");
            attempts(r)
                .into_iter()
                .map(|(p, k)| (proxy_port(&p), k))
                .collect()
        })
        .collect();
    // The first URL tries the cheap tier, is refused and moves up; the
    // others go to tier 1 at once (the next probe of tier 0 is a minute
    // away).
    assert_eq!(
        ports[0],
        [(cheap.port, Some("blocked".into())), (dear.port, None)],
        "{ports:?}"
    );
    assert_eq!(ports[1], [(dear.port, None)], "{ports:?}");
    assert_eq!(ports[2], [(dear.port, None)], "{ports:?}");
    let tally = site.tally();
    assert_eq!(tally[&flagged.into()].requests, 1, "{tally:?}");

    // `--max-tier 0`: the site's tier is out of reach, so it fails closed.
    let run = env.download(&[
        "--config",
        config.to_str().unwrap(),
        "--max-tier",
        "0",
        &site.url("/v/t4.mp4"),
    ]);
    let r = &run.json_lines()[0];
    assert_eq!(r["status"], "failed", "{}", run.dump());
    assert!(
        !site
            .hits()
            .iter()
            .any(|h| h.from == std::net::IpAddr::V4(USER_ADDR)),
        "never direct"
    );
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_contract_0_1_plugin_passes_the_kit_and_downloads() {
    require("yt-dlp");
    let env = Env::new();
    env.install_plugin(fixtures::V01_POOL, "pool");
    let run = env.run(&["plugins", "list", "--json"]);
    assert!(run.ok(), "{}", run.dump());
    let row = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pool")
        .cloned()
        .unwrap();
    assert_eq!(row["contract_version"], "0.1.0", "{row}");
    assert_eq!(row["error"], serde_json::Value::Null, "{row}");

    let proxy = tinyproxy_with(free_port(), None, Some(FR));
    let opt = format!("proxy={}", proxy.url("http"));
    let run = env.run(&["plugins", "test", "--json", "pool", "--backend-opt", &opt]);
    let report = run.json();
    assert_eq!(report["passed"], true, "{}", run.dump());

    let site = Site::start(SiteConfig::default());
    let run = env.download(&[
        "--backend",
        "pool",
        "--backend-opt",
        &opt,
        &site.url("/v/p1.mp4"),
    ]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_downloaded(&env, r, "p1");
    assert_eq!(site.requests_from(FR), 2, "{:?}", site.hits());
    assert_eq!(site.requests_from(USER_ADDR), 0);
}
