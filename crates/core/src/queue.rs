//! The download queue: ids, limited concurrency, statuses, cancellation and
//! a stream of events. The CLI's batch mode, the service mode and library
//! users all run on it.
//!
//! ```no_run
//! # async fn demo(host: ytdlp_host_core::Host) {
//! use ytdlp_host_core::DownloadRequest;
//!
//! let mut events = host.subscribe();
//! let id = host.submit(DownloadRequest::new("https://example.com/v/1")).unwrap();
//! let result = host.wait(&id).await;
//! # }
//! ```
//!
//! Each download runs in its own task: a panic in one is that URL's `host`
//! failure, and the queue keeps its concurrency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use ytdlp_contract::FailureKind;
use ytdlp_host_ytdlp::Progress;

use crate::downloader::{AttemptEvent, DownloadRequest, DownloadResult, Downloader, Status};

pub type DownloadId = String;

/// Concurrency and queue bounds. Downloads start in the order they were
/// submitted.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// yt-dlp runs at once.
    pub concurrency: usize,
    /// Downloads waiting or running at most; more are refused.
    pub queue: usize,
}

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl State {
    pub fn is_final(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }
}

/// A download's status, as `GET /downloads/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadStatus {
    pub id: DownloadId,
    pub url: String,
    pub state: State,
    /// The attempt running now, or the last one.
    pub attempt: u32,
    /// The proxy of the running attempt (masked).
    pub proxy: Option<String>,
    pub progress: Option<Progress>,
    /// The final result, once there is one.
    pub result: Option<DownloadResult>,
}

/// Events, one JSON object per line with `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Event {
    Queued {
        id: DownloadId,
        url: String,
    },
    Started {
        id: DownloadId,
        url: String,
        attempt: u32,
        proxy: Option<String>,
    },
    Progress {
        id: DownloadId,
        proxy: Option<String>,
        #[serde(flatten)]
        progress: Progress,
    },
    Retried {
        id: DownloadId,
        attempt: u32,
        kind: FailureKind,
        message: String,
    },
    Done {
        #[serde(flatten)]
        result: DownloadResult,
    },
    Failed {
        #[serde(flatten)]
        result: DownloadResult,
    },
    Cancelled {
        id: DownloadId,
        url: String,
    },
}

impl Event {
    pub fn id(&self) -> &str {
        match self {
            Event::Queued { id, .. }
            | Event::Started { id, .. }
            | Event::Progress { id, .. }
            | Event::Retried { id, .. }
            | Event::Cancelled { id, .. } => id,
            Event::Done { result } | Event::Failed { result } => &result.id,
        }
    }
}

/// Why a download was not accepted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("the queue is full ({0} downloads waiting or running)")]
    QueueFull(usize),
    #[error("shutting down: no new downloads")]
    ShuttingDown,
    #[error("not a URL: {0}")]
    BadUrl(String),
}

struct Entry {
    status: DownloadStatus,
    cancel: watch::Sender<bool>,
    done: watch::Sender<bool>,
}

/// A queued download, as a worker takes it.
struct Job {
    id: DownloadId,
    req: DownloadRequest,
    cancel: watch::Receiver<bool>,
}

struct Inner {
    downloader: Arc<Downloader>,
    limits: Limits,
    events: broadcast::Sender<Event>,
    table: Mutex<HashMap<DownloadId, Entry>>,
    accepting: Mutex<bool>,
    queue: mpsc::UnboundedSender<Job>,
}

/// A download queue over one [`Downloader`]. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

impl Host {
    /// Must be called inside a tokio runtime (downloads run as tasks).
    pub fn new(downloader: Downloader, limits: Limits) -> Host {
        Host::with_shared(Arc::new(downloader), limits)
    }

    pub fn with_shared(downloader: Arc<Downloader>, limits: Limits) -> Host {
        let (events, _) = broadcast::channel(4096);
        let (queue, jobs) = mpsc::unbounded_channel();
        let host = Host {
            inner: Arc::new(Inner {
                downloader,
                limits,
                events,
                table: Mutex::new(HashMap::new()),
                accepting: Mutex::new(true),
                queue,
            }),
        };
        // `concurrency` workers take jobs in submission order.
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..limits.concurrency.max(1) {
            let worker = Arc::downgrade(&host.inner);
            let jobs = jobs.clone();
            tokio::spawn(async move {
                loop {
                    let job = jobs.lock().await.recv().await;
                    let (Some(job), Some(inner)) = (job, worker.upgrade()) else {
                        return;
                    };
                    Host { inner }.run_job(job).await;
                }
            });
        }
        host
    }

    pub fn downloader(&self) -> &Arc<Downloader> {
        &self.inner.downloader
    }

    /// Every event from now on. A slow reader loses the oldest events
    /// (`RecvError::Lagged`) rather than slowing downloads.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn emit(&self, e: Event) {
        let _ = self.inner.events.send(e);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<DownloadId, Entry>> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Downloads waiting or running.
    pub fn pending(&self) -> usize {
        self.table()
            .values()
            .filter(|e| !e.status.state.is_final())
            .count()
    }

    /// Queues a download; returns its id at once.
    pub fn submit(&self, req: DownloadRequest) -> Result<DownloadId, SubmitError> {
        if !*self
            .inner
            .accepting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            return Err(SubmitError::ShuttingDown);
        }
        if url::Url::parse(&req.url).is_err() {
            return Err(SubmitError::BadUrl(req.url));
        }
        let id = self.inner.downloader.next_id();
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, _) = watch::channel(false);
        {
            let mut table = self.table();
            let pending = table
                .values()
                .filter(|e| !e.status.state.is_final())
                .count();
            if pending >= self.inner.limits.queue {
                return Err(SubmitError::QueueFull(pending));
            }
            table.insert(
                id.clone(),
                Entry {
                    status: DownloadStatus {
                        id: id.clone(),
                        url: req.url.clone(),
                        state: State::Queued,
                        attempt: 0,
                        proxy: None,
                        progress: None,
                        result: None,
                    },
                    cancel: cancel_tx,
                    done: done_tx,
                },
            );
        }
        self.emit(Event::Queued {
            id: id.clone(),
            url: req.url.clone(),
        });
        let job = Job {
            id: id.clone(),
            req,
            cancel: cancel_rx,
        };
        if self.inner.queue.send(job).is_err() {
            self.finish_cancelled(&id);
        }
        Ok(id)
    }

    /// Runs one queued job on a worker (unless it was cancelled while
    /// waiting).
    async fn run_job(&self, job: Job) {
        let Job {
            id,
            req,
            mut cancel,
        } = job;
        {
            let mut table = self.table();
            match table.get_mut(&id) {
                Some(e) if e.status.state == State::Queued => e.status.state = State::Running,
                _ => return, // cancelled while queued
            }
        }
        let cancelled = async move {
            // Resolves when cancel is set (or its sender is gone).
            while !*cancel.borrow_and_update() {
                if cancel.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        // The download runs in a task of its own, so that a panic in it is
        // this URL's failure, not the queue worker's end.
        let host = self.clone();
        let (run_id, run_req) = (id.clone(), req.clone());
        let mut work = tokio::spawn(async move {
            let events = host.clone();
            let events_id = run_id.clone();
            host.inner
                .downloader
                .run(&run_id, &run_req, move |e| {
                    events.on_attempt_event(&events_id, e)
                })
                .await
        });
        // Aborting `work` on cancel drops the run, which kills it (its
        // process group) and removes its partial file; wait for that.
        let outcome = tokio::select! {
            joined = &mut work => match joined {
                Ok(result) => Some(result),
                Err(e) if e.is_panic() => Some(panicked(&id, &req, e.into_panic())),
                Err(_) => None,
            },
            _ = cancelled => {
                work.abort();
                let _ = work.await;
                None
            }
        };
        match outcome {
            Some(result) => {
                let state = if result.status == Status::Done {
                    State::Done
                } else {
                    State::Failed
                };
                self.update(&id, |s| {
                    s.state = state;
                    s.result = Some(result.clone());
                });
                self.emit(if state == State::Done {
                    Event::Done { result }
                } else {
                    Event::Failed { result }
                });
                self.signal_done(&id);
            }
            None => self.finish_cancelled(&id),
        }
    }

    fn signal_done(&self, id: &str) {
        if let Some(e) = self.table().get(id) {
            e.done.send_replace(true);
        }
    }

    fn finish_cancelled(&self, id: &str) {
        let mut url = String::new();
        self.update(id, |s| {
            s.state = State::Cancelled;
            url = s.url.clone();
        });
        self.emit(Event::Cancelled {
            id: id.to_string(),
            url,
        });
        self.signal_done(id);
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut DownloadStatus)) {
        if let Some(e) = self.table().get_mut(id) {
            f(&mut e.status);
        }
    }

    fn on_attempt_event(&self, id: &str, e: AttemptEvent) {
        match e {
            AttemptEvent::Started { attempt, proxy } => {
                let mut url = String::new();
                self.update(id, |s| {
                    s.attempt = attempt;
                    s.proxy = proxy.clone();
                    s.progress = None;
                    url = s.url.clone();
                });
                self.emit(Event::Started {
                    id: id.to_string(),
                    url,
                    attempt,
                    proxy,
                });
            }
            AttemptEvent::Progress(p) => {
                let mut proxy = None;
                self.update(id, |s| {
                    s.progress = Some(p.clone());
                    proxy = s.proxy.clone();
                });
                self.emit(Event::Progress {
                    id: id.to_string(),
                    proxy,
                    progress: p,
                });
            }
            AttemptEvent::Retrying {
                attempt,
                kind,
                message,
            } => self.emit(Event::Retried {
                id: id.to_string(),
                attempt,
                kind,
                message,
            }),
        }
    }

    pub fn status(&self, id: &str) -> Option<DownloadStatus> {
        self.table().get(id).map(|e| e.status.clone())
    }

    /// Every download, oldest first.
    pub fn list(&self) -> Vec<DownloadStatus> {
        let mut all: Vec<DownloadStatus> =
            self.table().values().map(|e| e.status.clone()).collect();
        all.sort_by_key(|s| {
            s.id.rsplit('-')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        });
        all
    }

    /// Cancels a queued or running download: its yt-dlp process group is
    /// killed and its partial file removed. False if unknown or finished.
    pub fn cancel(&self, id: &str) -> bool {
        let mut table = self.table();
        match table.get_mut(id) {
            Some(e) if e.status.state == State::Queued => {
                // Not started: its worker will skip it.
                e.status.state = State::Cancelled;
                drop(table);
                self.finish_cancelled(id);
                true
            }
            Some(e) if !e.status.state.is_final() => e.cancel.send(true).is_ok(),
            _ => false,
        }
    }

    /// Waits for a download's end; `None` if the id is unknown.
    pub async fn wait(&self, id: &str) -> Option<DownloadStatus> {
        let mut done = self.table().get(id)?.done.subscribe();
        while !*done.borrow_and_update() {
            if done.changed().await.is_err() {
                break;
            }
        }
        self.status(id)
    }

    /// Stops taking downloads, lets running ones finish for up to `grace`,
    /// then cancels what is left (queued ones at once). Returns how many
    /// were cancelled.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        *self
            .inner
            .accepting
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = false;
        let queued: Vec<DownloadId> = self
            .table()
            .values()
            .filter(|e| e.status.state == State::Queued)
            .map(|e| e.status.id.clone())
            .collect();
        let mut cancelled = 0;
        for id in &queued {
            if self.cancel(id) {
                cancelled += 1;
            }
        }
        // A grace too long to add is as good as forever.
        let deadline = Instant::now()
            .checked_add(grace)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let running: Vec<DownloadId> = self
            .table()
            .values()
            .filter(|e| !e.status.state.is_final())
            .map(|e| e.status.id.clone())
            .collect();
        for id in &running {
            if tokio::time::timeout_at(deadline, self.wait(id))
                .await
                .is_err()
                && self.cancel(id)
            {
                cancelled += 1;
            }
        }
        for id in running.iter().chain(&queued) {
            self.wait(id).await;
        }
        cancelled
    }
}

/// The result of a download whose task panicked: a `host` failure that
/// says so.
fn panicked(
    id: &str,
    req: &DownloadRequest,
    panic: Box<dyn std::any::Any + Send>,
) -> DownloadResult {
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    tracing::error!("download {id} ({}) panicked: {why}", req.url);
    DownloadResult {
        id: id.to_string(),
        url: req.url.clone(),
        status: Status::Failed,
        file: None,
        attempts: Vec::new(),
        error: Some(format!("the host's download task panicked: {why}")),
        kind: Some(FailureKind::Host),
    }
}
