//! The client against a real PostgreSQL 15 (see `support`): authentication,
//! queries, transactions, errors. `cargo test --release -p ytdlp-plugin-postgres`.

mod support;

use std::time::{Duration, Instant};

use support::{PASSWORD, PgServer, err_text};
use ytdlp_plugin_postgres::pg::{Client, Config, Error, ToParam, TxStatus};

fn connect(url: &str) -> Result<Client, Error> {
    let mut c = Config::parse(url)?;
    c.connect_timeout = Duration::from_secs(2);
    c.io_timeout = Duration::from_secs(10);
    Client::connect(&c)
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn scram_login_parameterised_queries_and_transactions() {
    let pg = PgServer::require();
    let mut c = connect(&pg.url()).expect("SCRAM login with a percent-encoded password");
    assert!(
        c.server_version().unwrap().starts_with("15"),
        "{:?}",
        c.server_version()
    );
    // SCRAM it was: the hba rule for 127.0.0.1 and the stored verifier.
    let rule = c
        .query_one(
            "SELECT auth_method FROM pg_hba_file_rules WHERE address = '127.0.0.1' AND 'all' = ANY(user_name)",
            &[],
        )
        .unwrap();
    assert_eq!(rule.text(0), Some("scram-sha-256"));
    let stored = c
        .query_one(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user",
            &[],
        )
        .unwrap();
    assert!(stored.get_bool(0).unwrap());

    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, name text, tags text[]); CREATE INDEX ON t (name)",
    )
    .unwrap();
    let evil = "x'); DROP TABLE t; --";
    let none: Option<&str> = None;
    assert_eq!(
        c.execute(
            "INSERT INTO t (id, name) VALUES ($1, $2), ($3, $4)",
            &[&1, &evil, &2, &none]
        )
        .unwrap(),
        2
    );
    let rows = c
        .query("SELECT id, name, name IS NULL FROM t ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].columns(), ["id", "name", "?column?"]);
    assert_eq!(rows[0].get::<i32>(0).unwrap(), 1);
    assert_eq!(rows[0].text(1), Some(evil));
    assert_eq!(rows[1].text(1), None);
    assert!(rows[1].get_bool(2).unwrap());

    // A server error is typed and leaves the connection usable.
    let e = c.query("SELECT * FROM nowhere", &[]).unwrap_err();
    assert_eq!(e.code(), Some("42P01"), "{e}");
    assert!(!e.is_broken());
    let e = c
        .execute("INSERT INTO t (id) VALUES ($1)", &[&1])
        .unwrap_err();
    assert_eq!(e.code(), Some("23505"), "{e}");
    // The detail (which would quote the key) is kept out of the message.
    assert!(!e.to_string().contains("(id)=(1)"), "{e}");
    let e = c.query("SELECT $1::int", &[&"seven"]).unwrap_err();
    assert_eq!(e.code(), Some("22P02"), "{e}");
    assert_eq!(c.query_one("SELECT 1", &[]).unwrap().text(0), Some("1"));

    // Transactions: commit, rollback on error, failed transaction refused.
    c.transaction(|c| c.execute("INSERT INTO t (id) VALUES (3)", &[]))
        .unwrap();
    let e = c
        .transaction(|c| {
            c.execute("INSERT INTO t (id) VALUES (4)", &[])?;
            c.execute("INSERT INTO t (id) VALUES (1)", &[])
        })
        .unwrap_err();
    assert_eq!(e.code(), Some("23505"));
    assert_eq!(c.transaction_status(), TxStatus::Idle);
    let r = c.transaction(|c| {
        let _ = c.execute("INSERT INTO t (id) VALUES (1)", &[]);
        c.execute("INSERT INTO t (id) VALUES (5)", &[]).or(Ok(0))
    });
    assert!(
        r.is_err(),
        "a transaction with a swallowed error must not commit"
    );
    let ids: Vec<i32> = c
        .query("SELECT id FROM t ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);

    // Pipelined: one round trip, all or nothing.
    let sets: Vec<Vec<Box<dyn ToParam>>> = (10..15)
        .map(|i| vec![Box::new(i) as Box<dyn ToParam>, Box::new(format!("n{i}"))])
        .collect();
    let refs: Vec<Vec<&dyn ToParam>> = sets
        .iter()
        .map(|s| s.iter().map(|b| b.as_ref()).collect())
        .collect();
    let slices: Vec<&[&dyn ToParam]> = refs.iter().map(|v| v.as_slice()).collect();
    let n = c
        .execute_many("INSERT INTO t (id, name) VALUES ($1, $2)", &slices)
        .unwrap();
    assert_eq!(n, [1, 1, 1, 1, 1]);
    let e = c
        .execute_many("INSERT INTO t (id) VALUES ($1)", &[&[&20], &[&1], &[&21]])
        .unwrap_err();
    assert_eq!(e.code(), Some("23505"));
    let count: i64 = c
        .query_one("SELECT count(*) FROM t WHERE id >= 20", &[])
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(count, 0, "the failed pipeline rolled back as a whole");

    // Arrays and unicode round-trip as text.
    let got = c
        .query_one("SELECT $1::text[], $2::text", &[&"{a,\"b c\"}", &"żółw ✓"])
        .unwrap();
    assert_eq!(got.text(0), Some("{a,\"b c\"}"));
    assert_eq!(got.text(1), Some("żółw ✓"));
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn md5_and_cleartext_logins_and_a_wrong_password() {
    let pg = PgServer::require();
    let mut admin = pg.admin();
    admin
        .batch_execute(
            "SET password_encryption = 'md5';
             CREATE ROLE md5user LOGIN PASSWORD 'md5 pass';
             RESET password_encryption;
             CREATE ROLE plainuser LOGIN PASSWORD 'plain pass';",
        )
        .unwrap();
    let mut c = connect(&pg.url_for("md5user", "md5 pass", "postgres")).expect("md5 login");
    assert_eq!(
        c.query_one("SELECT current_user", &[]).unwrap().text(0),
        Some("md5user")
    );
    let mut c = connect(&pg.url_for("plainuser", "plain pass", "postgres")).expect("cleartext");
    assert_eq!(
        c.query_one("SELECT current_user", &[]).unwrap().text(0),
        Some("plainuser")
    );

    for (user, secret) in [
        ("ytdlp", "not-the-password-XYZ"),
        ("md5user", "wrong-md5-XYZ"),
        ("plainuser", "wrong-plain-XYZ"),
    ] {
        let url = pg.url_for(user, secret, "postgres");
        let started = Instant::now();
        let e = connect(&url).expect_err("wrong password refused");
        assert!(matches!(e, Error::Auth { .. }), "{user}: {e:?}");
        assert_eq!(e.code(), Some("28P01"), "{user}: {e}");
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains("XYZ") && !shown.contains(PASSWORD),
            "{shown}"
        );
        assert!(
            shown.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{shown}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // No password in the URL but the server wants one.
    let e = err_text(connect(&format!(
        "postgres://ytdlp@127.0.0.1:{}/postgres",
        pg.port
    )));
    assert!(e.contains("asks user `ytdlp` for a password"), "{e}");
    // A database that does not exist is a server error, not an auth one.
    let e = connect(&pg.url_for("ytdlp", PASSWORD, "nope"))
        .err()
        .unwrap();
    assert_eq!(e.code(), Some("3D000"), "{e}");
    assert!(!matches!(e, Error::Auth { .. }));
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn refused_stopped_and_hung_servers_are_told_apart_quickly() {
    let mut pg = PgServer::require();
    let url = pg.url();

    // Server stopped under an open connection: the next request fails fast
    // with "connection lost", retryable (nothing of it ran).
    let mut c = connect(&url).unwrap();
    c.query_one("SELECT 1", &[]).unwrap();
    pg.stop();
    let started = Instant::now();
    let e = c.query_one("SELECT 1", &[]).unwrap_err();
    assert!(matches!(e, Error::Closed { .. }), "{e:?}");
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(c.is_broken());
    eprintln!("stopped server: {e} after {:?}", started.elapsed());

    // Nothing listening: refused at once.
    let started = Instant::now();
    let e = connect(&url).err().unwrap();
    assert!(e.is_connection_refused(), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("connection to 127.0.0.1:{} refused", pg.port)
    );
    assert!(started.elapsed() < Duration::from_millis(500));

    // Hung (SIGSTOP): bounded by the request timeout, not retryable.
    pg.restart();
    let mut cfg = Config::parse(&url).unwrap();
    cfg.io_timeout = Duration::from_millis(300);
    let mut c = Client::connect(&cfg).unwrap();
    pg.freeze();
    let started = Instant::now();
    let e = c.query_one("SELECT 1", &[]).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(!e.is_retryable());
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
    assert_eq!(e.to_string(), "no answer from the server within 300 ms");
    // Connecting to a hung server: the kernel accepts, the startup times out.
    cfg.connect_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = Client::connect(&cfg).err().unwrap();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(800));
    pg.thaw();
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn statement_timeout_is_enforced_by_the_server() {
    let pg = PgServer::require();
    let mut cfg = pg.config();
    cfg.params
        .push(("statement_timeout".into(), "100ms".into()));
    let mut c = Client::connect(&cfg).unwrap();
    let started = Instant::now();
    let e = c.query("SELECT pg_sleep(5)", &[]).unwrap_err();
    assert_eq!(e.code(), Some("57014"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        !e.is_broken(),
        "the server cancelled the statement; the session lives on"
    );
    assert_eq!(c.query_one("SELECT 2", &[]).unwrap().text(0), Some("2"));
}
