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
