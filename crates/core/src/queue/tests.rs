//! The queue's bookkeeping: retention, counters, pages, honest cancels,
//! refused arguments. A runner that waits for a gate (or its time), no
//! proxy source, tokio's clock paused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ytdlp_host_config::NoProxyPolicy;
use ytdlp_host_ytdlp::{BoxFuture, Progress, RunOutcome, RunSpec, Runner};

use super::*;
use crate::downloader::Settings;

/// Each run lasts `secs` of (paused) time, then succeeds.
struct TimedRunner {
    secs: u64,
}

impl Runner for TimedRunner {
    fn name(&self) -> &'static str {
        "timed"
    }

    fn run<'a>(
        &'a self,
        _spec: &'a RunSpec,
        _on_progress: &'a mut (dyn FnMut(Progress) + Send),
    ) -> BoxFuture<'a, RunOutcome> {
        let d = Duration::from_secs(self.secs);
        Box::pin(async move {
            tokio::time::sleep(d).await;
            RunOutcome {
                exit_code: Some(0),
                duration: d,
                file: None,
                failure: None,
            }
        })
    }
}

fn host(secs: u64, concurrency: usize, queue: usize) -> Host {
    let settings = Settings {
        yt_dlp: "yt-dlp".into(),
        max_attempts: 1,
        on_no_proxy: NoProxyPolicy::Direct,
        direct_after_proxy: false,
        output: None,
        extra_args: Vec::new(),
        run_timeout: Duration::from_secs(3600),
        direct_socket_timeout_secs: 30,
        preflight: None,
        want: Default::default(),
        max_wait: Duration::from_secs(5),
    };
    let d = Downloader::new(None, Vec::new(), settings, Arc::new(TimedRunner { secs }));
    Host::new(d, Limits { concurrency, queue })
}

const URL: &str = "http://127.0.0.1:9/v.mp4";

fn submit(h: &Host) -> DownloadId {
    h.submit(DownloadRequest::new(URL)).unwrap()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(State, Option<Duration>)>>);

impl QueueObserver for Recorder {
    fn finished(&self, status: &DownloadStatus, ran: Option<Duration>) {
        self.0.lock().unwrap().push((status.state, ran));
    }
}

#[tokio::test(start_paused = true)]
async fn finished_downloads_are_evicted_by_count_then_by_age() {
    let h = host(1, 4, 100);
    h.set_retention(Retention {
        count: Some(3),
        age: Some(Duration::from_secs(60)),
    });
    let ids: Vec<_> = (0..5).map(|_| submit(&h)).collect();
    for id in &ids {
        // `wait` answers even for an id evicted meanwhile.
        assert_eq!(h.wait(id).await.unwrap().state, State::Done);
    }
    let kept: Vec<_> = h.list().into_iter().map(|s| s.id).collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(h.status(&ids[0]).is_none());
    assert!(h.status(&ids[4]).is_some());
    assert_eq!(
        h.counts(),
        QueueCounts {
            queued: 0,
            running: 0,
            finished: 3
        }
    );
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(h.status(&ids[4]).is_none(), "kept past its age");
    assert_eq!(h.counts().finished, 0);
    assert!(h.wait(&ids[4]).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn counters_follow_the_states_and_bound_the_queue() {
    let h = host(10, 1, 3);
    let a = submit(&h);
    let b = submit(&h);
    let c = submit(&h);
    assert_eq!(
        h.submit(DownloadRequest::new(URL)),
        Err(SubmitError::QueueFull(3))
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        h.counts(),
        QueueCounts {
            queued: 2,
            running: 1,
            finished: 0
        }
    );
    assert_eq!(h.pending(), 3);
    h.wait(&a).await;
    h.wait(&b).await;
    // A finished download frees its place.
    let d = submit(&h);
    h.wait(&c).await;
    h.wait(&d).await;
    assert_eq!(h.pending(), 0);
    assert_eq!(h.counts().finished, 4);
}

#[tokio::test(start_paused = true)]
async fn pages_follow_the_submission_order_and_filter_by_state() {
    let h = host(5, 1, 100);
    let ids: Vec<_> = (0..7).map(|_| submit(&h)).collect();
    h.wait(&ids[1]).await;
    // 0 and 1 done, 2 running, 3..6 queued.
    let p = h.list_page(None, None, 3);
    assert_eq!(
        p.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
        ids[..3].iter().collect::<Vec<_>>()
    );
    assert_eq!(p.next.as_deref(), Some(ids[2].as_str()));
    let p = h.list_page(None, p.next.as_deref(), 3);
    assert_eq!(p.items[0].id, ids[3]);
    let p = h.list_page(None, p.next.as_deref(), 3);
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.next, None);
    let queued = h.list_page(Some(State::Queued), None, 100);
    assert_eq!(queued.items.len(), 4);
    assert!(queued.items.iter().all(|s| s.state == State::Queued));
    let done = h.list_page(Some(State::Done), Some(&ids[0]), 100);
    assert_eq!(
        done.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
        [&ids[1]]
    );
    h.shutdown(Duration::ZERO).await;
}

#[tokio::test(start_paused = true)]
async fn a_cancel_says_what_really_happened() {
    let h = host(5, 1, 100);
    let rec = Arc::new(Recorder::default());
    h.set_observer(rec.clone());
    let running = submit(&h);
    let queued = submit(&h);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(
        h.cancel_and_wait(&queued).await,
        CancelOutcome::Cancelled(s) if s.state == State::Cancelled
    ));
    assert!(matches!(
        h.cancel_and_wait(&running).await,
        CancelOutcome::Cancelled(_)
    ));
    let done = submit(&h);
    h.wait(&done).await;
    assert!(matches!(
        h.cancel_and_wait(&done).await,
        CancelOutcome::Ended(s) if s.state == State::Done
    ));
    assert!(matches!(
        h.cancel_and_wait("nope-1").await,
        CancelOutcome::Unknown
    ));
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (State::Cancelled, None),
            (State::Cancelled, Some(Duration::from_secs(1))),
            (State::Done, Some(Duration::from_secs(5))),
        ]
    );
    assert_eq!(h.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_run_that_ended_as_the_cancel_came_keeps_its_result() {
    let h = host(5, 1, 100);
    let id = submit(&h);
    // The run's end and the cancel at the same instant: the run wins.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let outcome = h.cancel_and_wait(&id).await;
    assert!(
        matches!(&outcome, CancelOutcome::Ended(s) if s.state == State::Done),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn arguments_that_override_the_host_are_refused_at_submission() {
    let h = host(1, 1, 100);
    let e = h
        .submit(DownloadRequest::new(URL).with_ytdlp_args(vec!["--proxy".into(), "".into()]))
        .unwrap_err();
    assert!(
        matches!(&e, SubmitError::BadArgs(m) if m.contains("`--proxy`")),
        "{e}"
    );
    assert_eq!(h.counts(), QueueCounts::default());
}

/// A real SQLite store in a temporary directory.
fn store(dir: &tempfile::TempDir) -> Arc<dyn ytdlp_host_store::Store> {
    let (s, _) = ytdlp_host_store::SqliteStore::open(&dir.path().join("store.sqlite3")).unwrap();
    Arc::new(s)
}

/// A host dies (no shutdown) with one download done, one running and two
/// queued; a new host on the same store finishes the three under their
/// ids and keeps the finished one's result.
#[test]
fn a_host_that_died_is_taken_back_by_the_next() {
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    // Host `a` in a runtime of its own: dropping the runtime ends every
    // task of it mid-run, as a SIGKILL would.
    let rt = paused();
    let ids: Vec<DownloadId> = rt.block_on(async {
        let a = host(10, 1, 100);
        assert_eq!(a.restore(store(&dir)).unwrap(), Restored::default());
        let ids: Vec<DownloadId> = (0..4).map(|_| submit(&a)).collect();
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(a.status(&ids[0]).unwrap().state, State::Done);
        assert_eq!(a.status(&ids[1]).unwrap().state, State::Running);
        ids
    });
    drop(rt);

    paused().block_on(async {
        let b = host(1, 2, 100);
        let found = b.restore(store(&dir)).unwrap();
        assert_eq!(
            found,
            Restored {
                queued: 3,
                rerun: 1,
                finished: 1,
                unreadable: 0
            }
        );
        assert!(b.status(&ids[0]).unwrap().result.is_some());
        for id in &ids[1..] {
            assert_eq!(b.wait(id).await.unwrap().state, State::Done, "{id}");
        }
        let new = submit(&b);
        assert!(!ids.contains(&new));
        assert!(seq_of(&new) > ids.iter().filter_map(|i| seq_of(i)).max());
    });
}

/// Shutting down leaves what did not run recorded as queued (the next
/// start runs it); a cancel by a user is final; evicted downloads leave
/// the store.
#[tokio::test(start_paused = true)]
async fn shutdown_keeps_the_queue_and_retention_empties_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let a = host(10, 1, 100);
    a.restore(store(&dir)).unwrap();
    let ids: Vec<DownloadId> = (0..3).map(|_| submit(&a)).collect();
    assert!(a.cancel(&ids[2]));
    a.shutdown(Duration::ZERO).await;

    let b = host(1, 1, 100);
    b.set_retention(Retention {
        count: Some(1),
        age: None,
    });
    let found = b.restore(store(&dir)).unwrap();
    assert_eq!((found.queued, found.finished), (2, 1), "{found:?}");
    assert_eq!(b.status(&ids[2]).unwrap().state, State::Cancelled);
    for id in &ids[..2] {
        assert_eq!(b.wait(id).await.unwrap().state, State::Done);
    }
    // Retention keeps one finished download: the store holds one record.
    let (keys, _) = store(&dir).list_keys("serve/queue", None).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

/// A fake store that refuses every write (what a full disk does to the
/// real one): a submission it cannot record is refused, nothing is
/// half-queued.
struct FullDiskFake;

impl ytdlp_host_store::Store for FullDiskFake {
    fn describe(&self) -> String {
        "a full disk (fake)".into()
    }
    fn get(&self, _: &str, _: &str) -> ytdlp_host_store::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn set(&self, _: &str, _: &str, _: &[u8]) -> ytdlp_host_store::Result<()> {
        Err(ytdlp_host_store::StoreError::Unavailable(
            "database or disk is full".into(),
        ))
    }
    fn delete(&self, _: &str, _: &str) -> ytdlp_host_store::Result<()> {
        Ok(())
    }
    fn list_keys(
        &self,
        _: &str,
        _: Option<&str>,
    ) -> ytdlp_host_store::Result<(Vec<String>, Option<String>)> {
        Ok((Vec::new(), None))
    }
    fn increment(&self, _: &str, _: &str, _: i64) -> ytdlp_host_store::Result<i64> {
        self.set("", "", b"").map(|_| 0)
    }
    fn compare_and_swap(
        &self,
        _: &str,
        _: &str,
        _: Option<&[u8]>,
        _: &[u8],
    ) -> ytdlp_host_store::Result<bool> {
        self.set("", "", b"").map(|_| false)
    }
    fn get_many(&self, _: &str, keys: &[String]) -> ytdlp_host_store::Result<Vec<Option<Vec<u8>>>> {
        Ok(vec![None; keys.len()])
    }
    fn set_many(&self, _: &str, _: &[(String, Vec<u8>)]) -> ytdlp_host_store::Result<()> {
        self.set("", "", b"")
    }
    fn delete_many(&self, _: &str, _: &[String]) -> ytdlp_host_store::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_submission_the_store_cannot_record_is_refused_whole() {
    let a = host(1, 1, 100);
    a.restore(Arc::new(FullDiskFake)).unwrap();
    let err = a.submit(DownloadRequest::new(URL)).unwrap_err();
    assert!(matches!(err, SubmitError::Unrecorded(_)), "{err}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert_eq!(a.pending(), 0);
    assert!(a.list().is_empty());
}
