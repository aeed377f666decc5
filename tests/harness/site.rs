//! A site that answers by client address, as real sites do to proxies: a
//! per-address rate limit (`429` with `Retry-After`), refused address ranges
//! (`403`), bot checks, geo restrictions, 404s, and the media clip that
//! yt-dlp's generic extractor downloads (two GETs per download). Every
//! request is recorded with the address it came from, so a test or bench
//! can tell the user's own address (127.0.0.1) from proxies' egress
//! addresses (127.0.0.N, see [`crate::pool`]).
//!
//! A small HTTP/1.1 server of its own rather than tiny_http: the bot check
//! and the geo answer need their own reason phrase (yt-dlp prints `HTTP
//! Error <status>: <reason>`, so the reason is how a real site's wording
//! reaches its error message), and one request per connection keeps the
//! address accounting exact.
//!
//! Paths:
//! - `/v/<id>.mp4`: the clip (`video/mp4`);
//! - `/geo/<CC>[+<CC>...]/<id>.mp4`: the clip for clients whose address maps
//!   to one of those countries ([`SiteConfig::countries`]), else `451` with
//!   YouTube's wording;
//! - `/api/geo/<id>.json?countries=DE,FR`: the metadata the fixture
//!   extractor plugin (crates/ytdlp/fixtures/site/plugin, URL
//!   `/fx/geo/<id>?countries=...`) asks for: the clip's URL for clients in
//!   those countries, else the geo error that it raises through yt-dlp's
//!   own geo-restriction path (`This video is available in Germany.`);
//! - `/bot/<id>.mp4`: a bot check for everyone;
//! - `/status/<code>/<anything>`: that status (e.g. a site's own `401`);
//! - anything else: `404`.
//!
//! Before the path: an address in [`SiteConfig::flagged`] gets `403
//! Forbidden`, one in [`SiteConfig::bot_checked`] the bot check, and then the
//! rate limit applies to every request that is answered (404s included: a
//! real site counts them too).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::CLIP;

/// `requests` per sliding `window` per client address; the request over
/// that is answered `429` with `Retry-After: retry_after`, and so is every
/// request from that address until `retry_after` has passed (refused
/// requests do not count towards the window).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
    pub retry_after: Duration,
}

/// What the site does by client address.
#[derive(Clone, Debug, Default)]
pub struct SiteConfig {
    pub limit: Option<RateLimit>,
    /// Answered `403 Forbidden` whatever the path.
    pub flagged: Vec<RangeInclusive<Ipv4Addr>>,
    /// Answered with the bot check whatever the path.
    pub bot_checked: Vec<RangeInclusive<Ipv4Addr>>,
    /// Geo mode: the country (ISO code) of each address range; addresses in
    /// none have no country and get no `/geo/` media.
    pub countries: Vec<(RangeInclusive<Ipv4Addr>, String)>,
}

impl SiteConfig {
    fn contains(ranges: &[RangeInclusive<Ipv4Addr>], ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => ranges.iter().any(|r| r.contains(&v4)),
            IpAddr::V6(_) => false,
        }
    }

    /// The country of `ip` in geo mode.
    pub fn country_of(&self, ip: IpAddr) -> Option<&str> {
        let IpAddr::V4(v4) = ip else { return None };
        self.countries
            .iter()
            .find(|(r, _)| r.contains(&v4))
            .map(|(_, c)| c.as_str())
    }
}

/// How the site answered one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    /// `200`, the clip.
    Media,
    /// `404 Not Found`.
    NotFound,
    /// `403 Forbidden` (a flagged address).
    Forbidden,
    /// `403 Sign in to confirm you're not a bot`.
    BotCheck,
    /// `429 Too Many Requests` with `Retry-After`.
    TooMany,
    /// `451`, not available in the client's country.
    GeoBlocked,
    /// `200`, `/api/geo/` metadata: the clip's URL.
    Meta,
    /// `200`, `/api/geo/` metadata: the geo error with the allowed countries.
    GeoError,
    /// `/status/<code>/`.
    Status(u16),
    /// Not HTTP, or not a GET/HEAD: `400`.
    Bad,
}

impl Answer {
    pub fn status(self) -> u16 {
        match self {
            Answer::Media | Answer::Meta | Answer::GeoError => 200,
            Answer::NotFound => 404,
            Answer::Forbidden | Answer::BotCheck => 403,
            Answer::TooMany => 429,
            Answer::GeoBlocked => 451,
            Answer::Status(c) => c,
            Answer::Bad => 400,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Answer::Media | Answer::Meta | Answer::GeoError => "OK",
            Answer::NotFound => "Not Found",
            Answer::Forbidden => "Forbidden",
            // yt-dlp's error is `HTTP Error 403: <this>`: the wording the
            // classifier knows from YouTube (ASCII apostrophe: a reason
            // phrase is Latin-1).
            Answer::BotCheck => "Sign in to confirm you're not a bot",
            Answer::TooMany => "Too Many Requests",
            Answer::GeoBlocked => "The uploader has not made this video available in your country",
            Answer::Status(c) => standard_reason(c),
            Answer::Bad => "Bad Request",
        }
    }
}

fn standard_reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// One request as the site saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    /// Since the site started or was last [`Site::reset`].
    pub at: Duration,
    pub from: IpAddr,
    pub method: String,
    pub path: String,
    pub answer: Answer,
}

/// Requests from one address, by answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: usize,
    pub by_answer: BTreeMap<Answer, usize>,
}

impl Tally {
    pub fn count(&self, answer: Answer) -> usize {
        self.by_answer.get(&answer).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Client {
    /// When its answered requests came, within the window.
    served: VecDeque<Instant>,
    penalty_until: Option<Instant>,
}

struct State {
    epoch: Instant,
    hits: Vec<Hit>,
    clients: HashMap<IpAddr, Client>,
}

struct Inner {
    config: SiteConfig,
    state: Mutex<State>,
}

/// The site, on 127.0.0.1; stopped when dropped.
pub struct Site {
    pub port: u16,
    inner: Arc<Inner>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    pub fn start(config: SiteConfig) -> Site {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the site");
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(State {
                epoch: Instant::now(),
                hits: Vec::new(),
                clients: HashMap::new(),
            }),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (i, s) = (inner.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let i = i.clone();
                std::thread::spawn(move || serve(conn, &i));
            }
        });
        Site {
            port,
            inner,
            stop,
            thread: Some(thread),
        }
    }

    pub fn config(&self) -> &SiteConfig {
        &self.inner.config
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Forgets every request and every address's rate-limit state (a fresh
    /// site on the same port, for the next contender).
    pub fn reset(&self) {
        let mut st = self.inner.state.lock().unwrap();
        st.epoch = Instant::now();
        st.hits.clear();
        st.clients.clear();
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.state.lock().unwrap().hits.clone()
    }

    /// Requests that came from `ip`.
    pub fn requests_from(&self, ip: Ipv4Addr) -> usize {
        let ip = IpAddr::V4(ip);
        let st = self.inner.state.lock().unwrap();
        st.hits.iter().filter(|h| h.from == ip).count()
    }

    /// Requests by client address and answer.
    pub fn tally(&self) -> BTreeMap<IpAddr, Tally> {
        let mut out: BTreeMap<IpAddr, Tally> = BTreeMap::new();
        for h in self.inner.state.lock().unwrap().hits.iter() {
            let t = out.entry(h.from).or_default();
            t.requests += 1;
            *t.by_answer.entry(h.answer).or_default() += 1;
        }
        out
    }

    /// Requests answered `answer`, from any address.
    pub fn answered(&self, answer: Answer) -> usize {
        let st = self.inner.state.lock().unwrap();
        st.hits.iter().filter(|h| h.answer == answer).count()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    /// The answer to `path` from `from` at `now`, recorded.
    fn decide(&self, from: IpAddr, method: &str, path: &str, now: Instant) -> (Answer, u64) {
        let mut st = self.state.lock().unwrap();
        let (answer, retry_after) = self.answer(&mut st, from, method, path, now);
        let at = now.saturating_duration_since(st.epoch);
        st.hits.push(Hit {
            at,
            from,
            method: method.to_string(),
            path: path.to_string(),
            answer,
        });
        (answer, retry_after)
    }

    fn answer(
        &self,
        st: &mut State,
        from: IpAddr,
        method: &str,
        path: &str,
        now: Instant,
    ) -> (Answer, u64) {
        let c = &self.config;
        if method != "GET" && method != "HEAD" {
            return (Answer::Bad, 0);
        }
        if SiteConfig::contains(&c.flagged, from) {
            return (Answer::Forbidden, 0);
        }
        if SiteConfig::contains(&c.bot_checked, from) {
            return (Answer::BotCheck, 0);
        }
        if let Some(limit) = &c.limit {
            let client = st.clients.entry(from).or_default();
            if let Some(until) = client.penalty_until {
                if now < until {
                    return (Answer::TooMany, ceil_secs(until - now));
                }
                client.penalty_until = None;
            }
            while client
                .served
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= limit.window)
            {
                client.served.pop_front();
            }
            if client.served.len() >= limit.requests as usize {
                client.penalty_until = Some(now + limit.retry_after);
                return (Answer::TooMany, ceil_secs(limit.retry_after));
            }
            client.served.push_back(now);
        }
        (route(c, from, path), 0)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

fn route(c: &SiteConfig, from: IpAddr, target: &str) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let here = c.country_of(from);
    let allowed = |list: &str, sep: char| {
        here.is_some_and(|h| list.split(sep).any(|x| x.eq_ignore_ascii_case(h)))
    };
    if let Some(name) = path.strip_prefix("/api/geo/")
        && !name.contains('/')
        && name.ends_with(".json")
    {
        let list = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("countries="))
            .unwrap_or("");
        return if allowed(list, ',') {
            Answer::Meta
        } else {
            Answer::GeoError
        };
    }
    let media = |p: &str| !p.is_empty() && !p.contains('/') && p.ends_with(".mp4");
    if let Some(rest) = path.strip_prefix("/v/") {
        if media(rest) {
            return Answer::Media;
        }
    } else if let Some(rest) = path.strip_prefix("/geo/") {
        if let Some((countries, name)) = rest.split_once('/')
            && media(name)
        {
            return if allowed(countries, '+') {
                Answer::Media
            } else {
                Answer::GeoBlocked
            };
        }
    } else if let Some(rest) = path.strip_prefix("/bot/") {
        if media(rest) {
            return Answer::BotCheck;
        }
    } else if let Some(rest) = path.strip_prefix("/status/")
        && let Some(code) = rest
            .split('/')
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c))
    {
        return Answer::Status(code);
    }
    Answer::NotFound
}

/// The `/api/geo/` document for the fixture extractor plugin.
fn api_body(answer: Answer, target: &str, port: u16) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let id = path
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".json"))
        .unwrap_or("clip");
    if answer == Answer::Meta {
        return format!(
            r#"{{"id": "{id}", "title": "{id}", "url": "http://127.0.0.1:{port}/v/{id}.mp4", "ext": "mp4"}}"#
        );
    }
    let countries: Vec<String> = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("countries="))
        .unwrap_or("")
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| format!("\"{}\"", c.to_ascii_uppercase()))
        .collect();
    format!(
        r#"{{"error": {{"type": "geo", "message": "The uploader has not made this video available in your country", "countries": [{}]}}}}"#,
        countries.join(", ")
    )
}

/// One request on one connection, then close.
fn serve(mut conn: TcpStream, inner: &Inner) {
    let Ok(peer) = conn.peer_addr() else { return };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if head.is_empty() {
        // The accept loop's wake-up, or a client that went away.
        return;
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("");
    // Absolute form (a proxy that forwards it as is) or origin form.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => target,
    }
    .to_string();
    let (answer, retry_after) = inner.decide(peer.ip(), &method, &path, Instant::now());
    let meta;
    let body: &[u8] = match answer {
        Answer::Media => CLIP,
        Answer::Meta | Answer::GeoError => {
            meta = api_body(answer, &path, conn.local_addr().map(|a| a.port()).unwrap_or(0));
            meta.as_bytes()
        }
        Answer::BotCheck => b"<html><body>Sign in to confirm you're not a bot.</body></html>",
        Answer::GeoBlocked => {
            b"<html><body>The uploader has not made this video available in your country.</body></html>"
        }
        _ => b"",
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status(),
        answer.reason(),
        body.len()
    );
    out.push_str(match answer {
        Answer::Media => "Content-Type: video/mp4\r\n",
        Answer::Meta | Answer::GeoError => "Content-Type: application/json\r\n",
        _ => "Content-Type: text/html\r\n",
    });
    if answer == Answer::TooMany {
        out.push_str(&format!("Retry-After: {retry_after}\r\n"));
    }
    out.push_str("\r\n");
    let _ = conn.write_all(out.as_bytes());
    if method != "HEAD" {
        let _ = conn.write_all(body);
    }
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Write);
    // Drains what the client still sends so the close is not a reset that
    // could cut the body short.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = conn.read(&mut buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    fn inner(config: SiteConfig) -> Inner {
        Inner {
            config,
            state: Mutex::new(State {
                epoch: Instant::now(),
                hits: Vec::new(),
                clients: HashMap::new(),
            }),
        }
    }

    #[test]
    fn the_limit_is_per_address_and_the_penalty_ends() {
        let site = inner(SiteConfig {
            limit: Some(RateLimit {
                requests: 2,
                window: Duration::from_secs(10),
                retry_after: Duration::from_secs(15),
            }),
            ..SiteConfig::default()
        });
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            site.decide(ip(2), "GET", "/v/a.mp4", at(0)).0,
            Answer::Media
        );
        assert_eq!(site.decide(ip(2), "GET", "/x", at(1)).0, Answer::NotFound);
        assert_eq!(
            site.decide(ip(2), "GET", "/v/a.mp4", at(2)),
            (Answer::TooMany, 15)
        );
        // Another address has its own budget.
        assert_eq!(
            site.decide(ip(3), "GET", "/v/a.mp4", at(2)).0,
            Answer::Media
        );
        assert_eq!(
            site.decide(ip(2), "GET", "/v/a.mp4", at(10)),
            (Answer::TooMany, 7)
        );
        assert_eq!(
            site.decide(ip(2), "GET", "/v/a.mp4", at(17)).0,
            Answer::Media
        );
    }

    #[test]
    fn ranges_and_geo() {
        let lo = Ipv4Addr::new(127, 0, 0, 200);
        let hi = Ipv4Addr::new(127, 0, 0, 210);
        let site = inner(SiteConfig {
            flagged: vec![lo..=hi],
            bot_checked: vec![Ipv4Addr::new(127, 0, 0, 220)..=Ipv4Addr::new(127, 0, 0, 220)],
            countries: vec![(
                Ipv4Addr::new(127, 0, 0, 2)..=Ipv4Addr::new(127, 0, 0, 9),
                "DE".into(),
            )],
            ..SiteConfig::default()
        });
        let now = Instant::now();
        assert_eq!(
            site.decide(ip(205), "GET", "/v/a.mp4", now).0,
            Answer::Forbidden
        );
        assert_eq!(
            site.decide(ip(220), "GET", "/v/a.mp4", now).0,
            Answer::BotCheck
        );
        assert_eq!(
            site.decide(ip(5), "GET", "/geo/US+de/a.mp4", now).0,
            Answer::Media
        );
        assert_eq!(
            site.decide(ip(5), "GET", "/geo/US/a.mp4", now).0,
            Answer::GeoBlocked
        );
        assert_eq!(
            site.decide(ip(1), "GET", "/geo/DE/a.mp4", now).0,
            Answer::GeoBlocked
        );
        assert_eq!(
            site.decide(ip(5), "GET", "/api/geo/a.json?countries=US,de", now)
                .0,
            Answer::Meta
        );
        assert_eq!(
            site.decide(ip(6), "GET", "/api/geo/a.json?countries=FR", now)
                .0,
            Answer::GeoError
        );
        assert!(
            api_body(Answer::GeoError, "/api/geo/a.json?countries=de,fr", 1)
                .contains(r#""countries": ["DE", "FR"]"#)
        );
        assert!(
            api_body(Answer::Meta, "/api/geo/a.json?countries=DE", 9)
                .contains(r#""url": "http://127.0.0.1:9/v/a.mp4""#)
        );
        assert_eq!(
            site.decide(ip(1), "GET", "/status/401/a", now).0,
            Answer::Status(401)
        );
        assert_eq!(
            site.decide(ip(1), "GET", "/bot/a.mp4", now).0,
            Answer::BotCheck
        );
        assert_eq!(site.decide(ip(1), "POST", "/v/a.mp4", now).0, Answer::Bad);
    }
}
