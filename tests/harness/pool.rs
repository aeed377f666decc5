//! A pool of real proxies on loopback, each kind a user meets in a bought or
//! scraped list, for scenario benchmarks and tests. Every proxy that reaches
//! a site does so from its own egress address (tinyproxy's `Bind`,
//! microsocks' `-b`), 127.0.0.2 and up: 127.0.0.1 stays the user's own
//! address, so a [`crate::site::Site`] can tell direct requests apart.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::site::{RateLimit, SiteConfig};
use crate::{BlackHole, Daemon, free_port, require, spawn_logged, tinyproxy_with};

/// The user's own address: what the site sees from a direct download.
pub const USER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Egress addresses of proxies the site serves.
pub const CLEAN: RangeInclusive<Ipv4Addr> =
    Ipv4Addr::new(127, 0, 0, 2)..=Ipv4Addr::new(127, 0, 0, 199);
/// Egress addresses the site answers `403 Forbidden` ([`ProxyKind::Flagged`]).
pub const FLAGGED: RangeInclusive<Ipv4Addr> =
    Ipv4Addr::new(127, 0, 0, 200)..=Ipv4Addr::new(127, 0, 0, 227);
/// Egress addresses the site answers with a bot check ([`ProxyKind::BotChecked`]).
pub const BOT_CHECKED: RangeInclusive<Ipv4Addr> =
    Ipv4Addr::new(127, 0, 0, 228)..=Ipv4Addr::new(127, 0, 0, 254);

/// Credentials of the SOCKS proxies.
pub const SOCKS_USER: &str = "bench";
pub const SOCKS_PASS: &str = "s3cret";

/// A site config that refuses [`FLAGGED`] and bot-checks [`BOT_CHECKED`].
pub fn site_config(limit: Option<RateLimit>) -> SiteConfig {
    SiteConfig {
        limit,
        flagged: vec![FLAGGED],
        bot_checked: vec![BOT_CHECKED],
        countries: Vec::new(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProxyKind {
    /// tinyproxy with its own clean egress address.
    Good,
    /// microsocks (SOCKS5) with a user and password, its own clean egress.
    Socks,
    /// tinyproxy behind a slow link ([`SlowRelay`]): latency and little
    /// bandwidth, but it delivers.
    Slow,
    /// A good tinyproxy whose egress is in the site's 403 range.
    Flagged,
    /// A good tinyproxy whose egress the site answers with a bot check.
    BotChecked,
    /// A port nothing listens on (connection refused).
    Dead,
    /// Accepts connections and never answers.
    BlackHole,
}

impl ProxyKind {
    pub const ALL: [ProxyKind; 7] = [
        ProxyKind::Good,
        ProxyKind::Socks,
        ProxyKind::Slow,
        ProxyKind::Flagged,
        ProxyKind::BotChecked,
        ProxyKind::Dead,
        ProxyKind::BlackHole,
    ];

    /// Through it the site delivers media (given the rate limit).
    pub fn delivers(self) -> bool {
        matches!(self, ProxyKind::Good | ProxyKind::Socks | ProxyKind::Slow)
    }

    /// A working proxy (it relays), whether or not the site likes it.
    pub fn relays(self) -> bool {
        !matches!(self, ProxyKind::Dead | ProxyKind::BlackHole)
    }

    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Good => "good",
            ProxyKind::Socks => "socks",
            ProxyKind::Slow => "slow",
            ProxyKind::Flagged => "flagged",
            ProxyKind::BotChecked => "bot-checked",
            ProxyKind::Dead => "dead",
            ProxyKind::BlackHole => "black-hole",
        }
    }
}

/// A small seeded generator (SplitMix64): the same seed gives the same pool
/// layout and URL order.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// One proxy of a pool.
#[derive(Clone, Debug)]
pub struct Member {
    pub kind: ProxyKind,
    /// The URL to give a downloader (with credentials for SOCKS).
    pub url: String,
    /// Its port on 127.0.0.1 (stats show URLs masked; the port identifies).
    pub port: u16,
    /// The address the site sees from it (`None`: it never reaches it).
    pub egress: Option<Ipv4Addr>,
}

/// Running proxies; all stopped (by PID) when dropped.
pub struct Pool {
    /// In the seeded order a downloader is given them.
    pub members: Vec<Member>,
    _daemons: Vec<Daemon>,
    _holes: Vec<BlackHole>,
    _relays: Vec<SlowRelay>,
}

impl Pool {
    /// Starts `counts` of each kind, in an order and with egress addresses
    /// drawn from `rng`.
    pub fn start(counts: &[(ProxyKind, usize)], rng: &mut Rng) -> Pool {
        let mut kinds: Vec<ProxyKind> = counts
            .iter()
            .flat_map(|&(k, n)| std::iter::repeat_n(k, n))
            .collect();
        rng.shuffle(&mut kinds);
        let mut taken: Vec<Ipv4Addr> = Vec::new();
        let mut pool = Pool {
            members: Vec::new(),
            _daemons: Vec::new(),
            _holes: Vec::new(),
            _relays: Vec::new(),
        };
        for kind in kinds {
            let egress = match kind {
                ProxyKind::Good | ProxyKind::Socks | ProxyKind::Slow => {
                    Some(draw(&CLEAN, &mut taken, rng))
                }
                ProxyKind::Flagged => Some(draw(&FLAGGED, &mut taken, rng)),
                ProxyKind::BotChecked => Some(draw(&BOT_CHECKED, &mut taken, rng)),
                ProxyKind::Dead | ProxyKind::BlackHole => None,
            };
            let (url, port) = match kind {
                ProxyKind::Good | ProxyKind::Flagged | ProxyKind::BotChecked => {
                    let d = tinyproxy_with(free_port(), None, egress);
                    let out = (d.url("http"), d.port);
                    pool._daemons.push(d);
                    out
                }
                ProxyKind::Socks => {
                    let d = microsocks_bound(Some((SOCKS_USER, SOCKS_PASS)), egress);
                    let out = (
                        format!("socks5://{SOCKS_USER}:{SOCKS_PASS}@127.0.0.1:{}", d.port),
                        d.port,
                    );
                    pool._daemons.push(d);
                    out
                }
                ProxyKind::Slow => {
                    let d = tinyproxy_with(free_port(), None, egress);
                    let relay = SlowRelay::start(d.port, SLOW_LATENCY, SLOW_BYTES_PER_SEC);
                    let out = (relay.url(), relay.port);
                    pool._daemons.push(d);
                    pool._relays.push(relay);
                    out
                }
                ProxyKind::Dead => {
                    let port = free_port();
                    (format!("http://127.0.0.1:{port}"), port)
                }
                ProxyKind::BlackHole => {
                    let h = BlackHole::start();
                    let out = (h.url(), h.port);
                    pool._holes.push(h);
                    out
                }
            };
            pool.members.push(Member {
                kind,
                url,
                port,
                egress,
            });
        }
        pool
    }

    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.url.clone()).collect()
    }

    pub fn count(&self, pred: impl Fn(ProxyKind) -> bool) -> usize {
        self.members.iter().filter(|m| pred(m.kind)).count()
    }

    /// The member listening on `port`.
    pub fn by_port(&self, port: u16) -> Option<&Member> {
        self.members.iter().find(|m| m.port == port)
    }

    /// The member an address's requests came from.
    pub fn by_egress(&self, ip: Ipv4Addr) -> Option<&Member> {
        self.members.iter().find(|m| m.egress == Some(ip))
    }
}

fn draw(range: &RangeInclusive<Ipv4Addr>, taken: &mut Vec<Ipv4Addr>, rng: &mut Rng) -> Ipv4Addr {
    let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
    let free: Vec<u32> = (lo..=hi)
        .filter(|a| !taken.contains(&Ipv4Addr::from(*a)))
        .collect();
    assert!(!free.is_empty(), "no egress address left in {range:?}");
    let ip = Ipv4Addr::from(free[rng.below(free.len() as u64) as usize]);
    taken.push(ip);
    ip
}

/// microsocks on a free port, with optional auth and egress address.
pub fn microsocks_bound(auth: Option<(&str, &str)>, bind: Option<Ipv4Addr>) -> Daemon {
    let exe = require("microsocks");
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(exe);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", u, "-P", p]);
    }
    if let Some(b) = bind {
        cmd.args(["-b", &b.to_string()]);
    }
    spawn_logged(cmd, port, dir, "microsocks")
}

/// The slow proxy's link: first byte of each answer this late, then this
/// rate. Slow enough to show, well inside a 1 s pre-flight and a 2 s socket
/// timeout (the 18 KB clip takes about 0.6 s per request).
pub const SLOW_LATENCY: Duration = Duration::from_millis(250);
pub const SLOW_BYTES_PER_SEC: u32 = 48 * 1024;

/// A TCP relay with latency and little bandwidth towards the client: a
/// slow link in front of a real proxy.
pub struct SlowRelay {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SlowRelay {
    pub fn start(upstream: u16, latency: Duration, bytes_per_sec: u32) -> SlowRelay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                std::thread::spawn(move || relay(client, upstream, latency, bytes_per_sec));
            }
        });
        SlowRelay {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay(client: TcpStream, upstream: u16, latency: Duration, bytes_per_sec: u32) {
    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)) else {
        return;
    };
    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Towards the proxy: as fast as it comes.
    let up = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    // Towards the client: late, then slow.
    let (mut s_in, mut c_out) = (server, client);
    let mut buf = [0u8; 1024];
    let mut first = true;
    while let Ok(n) = s_in.read(&mut buf) {
        if n == 0 {
            break;
        }
        if first {
            std::thread::sleep(latency);
            first = false;
        }
        std::thread::sleep(Duration::from_secs_f64(
            n as f64 / f64::from(bytes_per_sec.max(1)),
        ));
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    // Both ways: a client that keeps the connection open must not hold the
    // upstream thread.
    let _ = c_out.shutdown(Shutdown::Both);
    let _ = up.join();
}
