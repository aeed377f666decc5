//! A real PostgreSQL for the tests: a fresh cluster (initdb) in a temporary
//! directory, a postmaster on a free loopback port, a superuser with a
//! SCRAM-SHA-256 password, stopped by its PID when dropped.
//!
//! Recipe (what `PgServer::start` does; PostgreSQL 15 binaries in
//! `/usr/lib/postgresql/15/bin`, or `$PG_BIN`):
//!
//! ```sh
//! D=$(mktemp -d /tmp/ytdlp-pg.XXXXXX); chown postgres: $D    # only when root
//! printf '%s\n' "$PASSWORD" > $D/pwfile
//! runuser -u postgres -- initdb -D $D/data -U ytdlp --pwfile=$D/pwfile \
//!     --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --no-locale -N
//! # pg_hba.conf rewritten: scram-sha-256 on 127.0.0.1 (plus md5/password
//! # lines for two test users)
//! runuser -u postgres -- postgres -D $D/data -p $PORT -k $D \
//!     -c listen_addresses=127.0.0.1 -c fsync=off &
//! kill -INT $!        # fast shutdown, by PID
//! ```
//!
//! As root, the harness does the `runuser` part itself: `Command::uid/gid`
//! of the `postgres` account (initdb and postgres refuse to run as root).

#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use ytdlp_plugin_postgres::pg::{Client, Config, Error};

pub const SUPERUSER: &str = "ytdlp";
/// Needs percent-encoding in a URL on purpose.
pub const PASSWORD: &str = "s3cr:t/p@ss w%rd";

fn pg_bin_dir() -> PathBuf {
    std::env::var_os("PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

fn pg_bin(name: &str) -> PathBuf {
    let p = pg_bin_dir().join(name);
    if p.exists() { p } else { PathBuf::from(name) }
}

/// Is PostgreSQL installed where the tests look for it? If not, says so
/// (naming the test) so that a test returning early reads as skipped.
pub fn installed() -> bool {
    let initdb = pg_bin_dir().join("initdb");
    if initdb.exists() {
        return true;
    }
    eprintln!(
        "SKIPPED {}: PostgreSQL 15 is not installed ({} is missing; \
         `apt-get install postgresql-15`, or set PG_BIN to its bin directory)",
        std::thread::current().name().unwrap_or("test"),
        initdb.display()
    );
    false
}

/// uid and gid of the `postgres` account, when the tests run as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("running as root needs a `postgres` account to run PostgreSQL as");
    let f: Vec<&str> = line.split(':').collect();
    Some((f[2].parse().unwrap(), f[3].parse().unwrap()))
}

fn command(bin: &str) -> Command {
    let mut c = Command::new(pg_bin(bin));
    if let Some((uid, gid)) = run_as() {
        c.uid(uid).gid(gid);
    }
    c
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub struct PgServer {
    dir: PathBuf,
    pub port: u16,
    settings: Vec<(String, String)>,
    child: Option<Child>,
}

const HBA: &str = "\
local all all trust
host all md5user 127.0.0.1/32 md5
host all plainuser 127.0.0.1/32 password
host all all 127.0.0.1/32 scram-sha-256
";

impl PgServer {
    /// [`PgServer::start`], failing the test (with what to install) when
    /// PostgreSQL is not installed: the tests that need it are ignored by
    /// a plain `cargo test` and run by the README's command.
    pub fn require() -> PgServer {
        PgServer::require_with(&[("fsync", "off")])
    }

    /// [`PgServer::start_with`], failing the test when not installed.
    pub fn require_with(settings: &[(&str, &str)]) -> PgServer {
        PgServer::start_with(settings).expect(
            "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin; bash .ci/run installs it)",
        )
    }

    /// A fresh cluster with `fsync=off` (fast, fine for tests); `None` if
    /// PostgreSQL is not installed.
    pub fn start() -> Option<PgServer> {
        PgServer::start_with(&[("fsync", "off")])
    }

    /// A fresh cluster with these `-c` settings (`None`: not installed).
    pub fn start_with(settings: &[(&str, &str)]) -> Option<PgServer> {
        if !installed() {
            return None;
        }
        Some(PgServer::start_installed(settings))
    }

    fn start_installed(settings: &[(&str, &str)]) -> PgServer {
        let started = Instant::now();
        let dir =
            std::env::temp_dir().join(format!("ytdlp-pg-{}-{}", std::process::id(), free_port()));
        fs::create_dir_all(&dir).unwrap();
        let owner = run_as();
        if let Some((uid, gid)) = owner {
            chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let pwfile = dir.join("pwfile");
        fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        if let Some((uid, gid)) = owner {
            chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.join("data");
        let out = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
            .args(["-E", "UTF8", "--no-locale", "-N"])
            .stdin(Stdio::null())
            .output()
            .expect("initdb is not installed (PostgreSQL 15: /usr/lib/postgresql/15/bin)");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(data.join("pg_hba.conf"), HBA).unwrap();
        let mut server = PgServer {
            dir,
            port: free_port(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        server.launch();
        eprintln!(
            "[pg] cluster on 127.0.0.1:{} ready in {} ms ({})",
            server.port,
            started.elapsed().as_millis(),
            server.dir.display()
        );
        server
    }

    fn launch(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .unwrap();
        let mut c = command("postgres");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for (k, v) in &self.settings {
            c.args(["-c", &format!("{k}={v}")]);
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start postgres");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(&self.config()) {
                Ok(_) => return,
                Err(e) => {
                    if let Some(c) = self.child.as_mut()
                        && let Ok(Some(status)) = c.try_wait()
                    {
                        panic!("postgres exited ({status}): {}", self.log_tail());
                    }
                    assert!(
                        Instant::now() < until,
                        "postgres never accepted a connection: {e}; {}",
                        self.log_tail()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        log[log.floor_char_boundary(start)..].to_string()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the postmaster this harness started.
            unsafe { libc::kill(pid as libc::pid_t, sig) };
        }
    }

    /// Fast shutdown (SIGINT to the postmaster), waiting until it is gone.
    pub fn stop(&mut self) {
        self.signal(libc::SIGINT);
        if let Some(mut child) = self.child.take() {
            let until = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > until {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Starts the same cluster again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freezes the postmaster and every backend (SIGSTOP): a hung server.
    pub fn freeze(&self) {
        self.for_each_process(libc::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.for_each_process(libc::SIGCONT);
    }

    fn for_each_process(&self, sig: libc::c_int) {
        let Some(pid) = self.pid() else { return };
        // The postmaster and its children (backends, checkpointer, ...).
        let mut pids = vec![pid];
        if let Ok(entries) = fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                // pid (comm) state ppid ...
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|s| s.parse::<u32>().ok());
                if ppid == Some(pid) {
                    pids.push(p);
                }
            }
        }
        for p in pids {
            // SAFETY: signals to the postmaster started here and its children.
            unsafe { libc::kill(p as libc::pid_t, sig) };
        }
    }

    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            utf8_percent_encode(user, NON_ALPHANUMERIC),
            utf8_percent_encode(password, NON_ALPHANUMERIC),
            self.port,
            utf8_percent_encode(db, NON_ALPHANUMERIC)
        )
    }

    /// The superuser on database `postgres`.
    pub fn url(&self) -> String {
        self.url_for(SUPERUSER, PASSWORD, "postgres")
    }

    pub fn config(&self) -> Config {
        let mut c = Config::parse(&self.url()).unwrap();
        c.connect_timeout = Duration::from_secs(2);
        c.io_timeout = Duration::from_secs(60);
        c
    }

    /// A superuser connection (generous timeouts), for setting up tests.
    pub fn admin(&self) -> Client {
        Client::connect(&self.config()).unwrap()
    }

    /// Creates a database (and returns the superuser URL for it).
    pub fn create_db(&self, name: &str) -> String {
        self.admin()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        self.url_for(SUPERUSER, PASSWORD, name)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.thaw();
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `f` is true (or panics after `secs`).
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Err` text, for assertions.
pub fn err_text<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

/// Fills the pool with `n` proxies with varied regions, tiers, tags, use
/// times and health, so that no index is trivially ordered.
pub fn fill(admin: &mut Client, n: i64) {
    admin
        .execute(
            "INSERT INTO proxies (ident, url, region, tier, tags, last_used_at, success_count, fault_count)
             SELECT 'b' || g, 'http://10.' || (g / 65536) || '.' || (g / 256 % 256) || '.' || (g % 256) || ':3128',
                    (ARRAY['DE', 'US-CA', 'JP', 'BR'])[g % 4 + 1],
                    g % 3,
                    CASE WHEN g % 10 = 0 THEN '{residential}'::text[] ELSE '{}' END,
                    now() - random() * interval '1 day',
                    (random() * 100)::int8,
                    (random() * 20)::int8
             FROM generate_series(1, $1::int8) g",
            &[&n],
        )
        .unwrap();
    admin.batch_execute("VACUUM ANALYZE proxies").unwrap();
}
