//! Memory per proxy of the engine, natively (64-bit pointers: an upper bound
//! for the wasm32 build), for every strategy at 100k proxies in three
//! regions.
//!
//!     cargo bench -p ytdlp-plugin-memory --bench engine_memory

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ytdlp_plugin_memory::engine::{Engine, Kind};
use ytdlp_plugin_sdk::{Request, Site, parse_entry};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n = 100_000usize;
    // Typical proxy URLs: 26-28 bytes.
    let urls: Vec<String> = (0..n)
        .map(|i| format!("http://10.{}.{}.{}:3128", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let url_bytes: usize = urls.iter().map(String::len).sum();
    // A few regions, as a real list has: a handful of metadata classes.
    let entries: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| parse_entry(&format!("{u};region={}", ["DE", "FR", "US"][i % 3])).unwrap())
        .collect();
    let request = Request {
        site: Site {
            host: "www.example.com".into(),
            domain: "example.com".into(),
        },
        ..Request::default()
    };
    for strategy in [
        "round_robin",
        "random",
        "least_used",
        "healthiest",
        "weighted",
    ] {
        let opts = vec![
            ("strategy".to_string(), strategy.to_string()),
            ("seed".to_string(), "1".to_string()),
        ];
        let before = LIVE.load(Ordering::Relaxed);
        let mut e = Engine::from_options(&opts).unwrap();
        for entry in &entries {
            e.add(entry, 1, false);
        }
        // Some traffic, so counters and indices are in use.
        for t in 0..10_000u64 {
            let p = e.next_for(t, &request).unwrap();
            if t % 7 == 0 {
                e.failure(&p.id, Kind::ProxyTimeout, "example.com", t);
            } else {
                e.success(&p.id, t);
            }
        }
        let _ = e.take_dirty();
        let used = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "{strategy:12} {n} proxies: {:.0} bytes/proxy ({:.0} without the URL text, avg URL {} bytes)",
            used as f64 / n as f64,
            (used as f64 - url_bytes as f64) / n as f64,
            url_bytes / n
        );
        drop(e);
    }
}
