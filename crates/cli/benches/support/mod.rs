//! What the plugin benches share.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Calls per second with `hosts` threads, each with its own state made by
/// `setup` (its own host: a plugin instance and its connection), started
/// together; each thread calls once before the clock starts (connected).
pub fn per_second<S>(
    hosts: usize,
    for_how_long: Duration,
    setup: impl Fn() -> S + Sync,
    call: impl Fn(&mut S) + Sync,
) -> f64 {
    let barrier = Barrier::new(hosts);
    let results: Vec<(u64, Duration)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..hosts)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = setup();
                    call(&mut state);
                    barrier.wait();
                    let started = Instant::now();
                    let mut n = 0u64;
                    while started.elapsed() < for_how_long {
                        call(&mut state);
                        n += 1;
                    }
                    (n, started.elapsed())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let total: u64 = results.iter().map(|r| r.0).sum();
    let secs = results
        .iter()
        .map(|r| r.1.as_secs_f64())
        .fold(0.0, f64::max);
    total as f64 / secs
}

/// A runtime per host thread (a plugin's calls are awaited one at a time).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
