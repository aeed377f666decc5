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

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use ytdlp_contract::FailureKind;
use ytdlp_host_ytdlp::Progress;

use crate::downloader::{AttemptEvent, DownloadRequest, DownloadResult, Downloader, Status};

mod fleet;
mod journal;
use fleet::{Fleet, status_of};
pub use fleet::{FleetOptions, consumer_name};
use journal::{Journal, Saved};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// No proxy is free for the URL's site (policy `wait`): it waits until
    /// `until_ms` (Unix ms).
    Waiting {
        id: DownloadId,
        until_ms: u64,
        reason: String,
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
            | Event::Waiting { id, .. }
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
    /// The download's yt-dlp arguments override what the host owns.
    #[error("{0}")]
    BadArgs(String),
    /// The store that keeps the queue refused the record: the download is
    /// not queued (nothing acknowledged is lost).
    #[error("the download could not be recorded, so it was not queued: {0}")]
    Unrecorded(String),
}

/// How long finished downloads stay in the table (for `status`, `list`,
/// `wait`); the default keeps them all (a batch, a library user). A
/// long-running service sets one, so its memory stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Finished downloads kept at most (the oldest finished go first).
    pub count: Option<usize>,
    /// Finished downloads are forgotten this long after they end.
    pub age: Option<Duration>,
}

/// Told of every download's end, in the queue's own order (never dropped,
/// unlike the event stream): what metrics are counted from.
pub trait QueueObserver: Send + Sync {
    /// A download ended (done, failed or cancelled). `ran` is how long it
    /// ran, `None` if it never started.
    fn finished(&self, status: &DownloadStatus, ran: Option<Duration>);
}

/// Downloads by state, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub queued: usize,
    pub running: usize,
    /// Finished downloads still kept.
    pub finished: usize,
}

/// One page of [`Host::list_page`].
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<DownloadStatus>,
    /// The id to pass as `after` for the next page; `None` at the end.
    pub next: Option<DownloadId>,
}

/// What became of a cancel ([`Host::cancel_and_wait`]).
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    Unknown,
    /// Cancelled: its yt-dlp was killed (or it never started).
    Cancelled(DownloadStatus),
    /// It had ended, or ended by itself before the cancel took effect.
    Ended(DownloadStatus),
    /// It runs on another host of the fleet: not cancelled (cancelling
    /// across hosts is not supported; cancel it on the host that runs it).
    Elsewhere(DownloadStatus),
}

/// A download that just ended, to announce.
struct Ended {
    status: DownloadStatus,
    ran: Option<Duration>,
    result: Option<DownloadResult>,
}

struct Entry {
    status: DownloadStatus,
    /// What was asked (the store keeps it, to run it again after a
    /// restart).
    req: DownloadRequest,
    /// Runs a restart cut short.
    restarts: u32,
    cancel: watch::Sender<bool>,
    /// The final status, once there is one (it outlives the entry).
    done: watch::Sender<Option<DownloadStatus>>,
    started: Option<Instant>,
}

/// A queued download, as a worker takes it.
struct Job {
    id: DownloadId,
    req: DownloadRequest,
    cancel: watch::Receiver<bool>,
}

/// Downloads by submission order (the number in their id), with counters
/// kept as they change: no operation walks the whole table but `list`.
#[derive(Default)]
struct Table {
    entries: BTreeMap<u64, Entry>,
    /// Finished downloads, in the order they ended.
    finished: VecDeque<(u64, Instant)>,
    queued: usize,
    running: usize,
    retention: Retention,
    /// Where downloads are recorded (`serve`); `None`: in memory only.
    journal: Option<Arc<Journal>>,
    /// Shutting down: downloads cancelled now stay recorded as they were,
    /// so the next start runs them.
    draining: bool,
    /// The fleet this host takes downloads from (`serve` on Redis).
    fleet: Option<Arc<Fleet>>,
}

/// The number in an id (`PID-N`), which orders downloads.
fn seq_of(id: &str) -> Option<u64> {
    id.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

impl Table {
    fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(&seq_of(id)?).filter(|e| e.status.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries
            .get_mut(&seq_of(id)?)
            .filter(|e| e.status.id == id)
    }

    /// Forgets finished downloads beyond the retention.
    fn evict(&mut self, now: Instant) {
        while let Some(&(seq, ended)) = self.finished.front() {
            let too_many = self
                .retention
                .count
                .is_some_and(|c| self.finished.len() > c);
            let too_old = self
                .retention
                .age
                .is_some_and(|age| now.saturating_duration_since(ended) >= age);
            if !too_many && !too_old {
                break;
            }
            self.finished.pop_front();
            if let Some(e) = self.entries.remove(&seq)
                && let Some(j) = &self.journal
            {
                j.forget(&e.status.id);
            }
        }
    }

    /// The download `id` as the store keeps it.
    fn saved(&self, id: &str) -> Option<Saved> {
        let e = self.get(id)?;
        Some(Saved {
            id: e.status.id.clone(),
            req: e.req.clone(),
            state: e.status.state,
            result: e.status.result.clone(),
            ended_ms: e.status.state.is_final().then(now_ms),
            restarts: e.restarts,
        })
    }

    /// Records the download `id` as it stands now.
    fn record(&self, id: &str) -> Option<Result<(), ytdlp_host_store::StoreError>> {
        let j = self.journal.as_ref()?;
        Some(j.save(&self.saved(id)?))
    }

    /// [`Table::record`] after acknowledging: a failure is warned about.
    fn record_or_warn(&self, id: &str) {
        if let Some(Err(e)) = self.record(id) {
            tracing::warn!("cannot record download {id}: {e}");
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What [`Host::restore`] found in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Queued again (in their submission order).
    pub queued: usize,
    /// Of those, downloads that were running when the host stopped: run
    /// again (yt-dlp continues a partial file), each a new attempt.
    pub rerun: usize,
    /// Finished ones, kept per the retention.
    pub finished: usize,
    /// Records that could not be read (skipped, with a warning each).
    pub unreadable: usize,
}

struct Inner {
    downloader: Arc<Downloader>,
    limits: Limits,
    events: broadcast::Sender<Event>,
    table: Mutex<Table>,
    accepting: Mutex<bool>,
    queue: mpsc::UnboundedSender<Job>,
    observer: Mutex<Option<Arc<dyn QueueObserver>>>,
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
                table: Mutex::new(Table::default()),
                accepting: Mutex::new(true),
                queue,
                observer: Mutex::new(None),
            }),
        };
        // Workers take jobs in submission order; at most `concurrency`
        // attempts run at once (the downloader's slots). There are more
        // workers than slots so that URLs waiting for their site's next
        // free proxy (policy `wait`, slot given up) do not hold back URLs
        // of other sites.
        let concurrency = limits.concurrency.max(1);
        host.inner.downloader.limit_runs(concurrency);
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..concurrency + concurrency.max(4) {
            let worker = Arc::downgrade(&host.inner);
            let jobs = jobs.clone();
            tokio::spawn(async move {
                loop {
                    // The job, then its slot, under the receiver's lock:
                    // jobs get slots in the order they were submitted, and
                    // an idle worker holds no slot (a download that gave
                    // its slot up to wait gets one back).
                    let mut rx = jobs.lock().await;
                    let job = rx.recv().await;
                    let (Some(job), Some(inner)) = (job, worker.upgrade()) else {
                        return;
                    };
                    let slot = inner.downloader.slot().await;
                    drop(rx);
                    Host { inner }.run_job(job, slot).await;
                }
            });
        }
        host
    }

    pub fn downloader(&self) -> &Arc<Downloader> {
        &self.inner.downloader
    }

    /// How long finished downloads are kept (default: all of them).
    pub fn set_retention(&self, retention: Retention) {
        let mut t = self.table();
        t.retention = retention;
        t.evict(Instant::now());
    }

    /// Who is told of every download's end.
    pub fn set_observer(&self, observer: Arc<dyn QueueObserver>) {
        *self
            .inner
            .observer
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    /// The queue's bounds.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Every event from now on. A slow reader loses the oldest events
    /// (`RecvError::Lagged`) rather than slowing downloads.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn emit(&self, e: Event) {
        let _ = self.inner.events.send(e);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps downloads in `store` from now on, after taking back what it
    /// holds: finished downloads (kept per the retention), queued ones
    /// queued again in their order, and ones that were running run again.
    /// Ids stay valid. Call it once, before submitting anything.
    pub fn restore(
        &self,
        store: Arc<dyn ytdlp_host_store::Store>,
    ) -> Result<Restored, ytdlp_host_store::StoreError> {
        let journal = Journal::new(store);
        let (mut saved, unreadable) = journal.load()?;
        saved.retain(|s| seq_of(&s.id).is_some());
        saved.sort_by_key(|s| seq_of(&s.id));
        let mut found = Restored {
            unreadable,
            ..Restored::default()
        };
        let (now, now_ms) = (Instant::now(), now_ms());
        let mut jobs = Vec::new();
        let mut ended = Vec::new();
        let mut max_seq = 0;
        {
            let mut table = self.table();
            for s in saved {
                let seq = seq_of(&s.id).expect("kept above");
                max_seq = max_seq.max(seq);
                let (cancel_tx, cancel_rx) = watch::channel(false);
                let (done_tx, _) = watch::channel(None);
                let rerun = s.state == State::Running;
                let mut status = status_of(&s);
                if s.state.is_final() {
                    done_tx.send_replace(Some(status.clone()));
                    let age =
                        Duration::from_millis(now_ms.saturating_sub(s.ended_ms.unwrap_or(now_ms)));
                    ended.push((
                        s.ended_ms.unwrap_or(now_ms),
                        seq,
                        now.checked_sub(age).unwrap_or(now),
                    ));
                    found.finished += 1;
                } else {
                    status.state = State::Queued;
                    table.queued += 1;
                    found.queued += 1;
                    found.rerun += usize::from(rerun);
                    jobs.push(Job {
                        id: s.id.clone(),
                        req: s.req.clone(),
                        cancel: cancel_rx,
                    });
                }
                table.entries.insert(
                    seq,
                    Entry {
                        status,
                        req: s.req,
                        restarts: s.restarts + u32::from(rerun),
                        cancel: cancel_tx,
                        done: done_tx,
                        started: None,
                    },
                );
            }
            ended.sort();
            table
                .finished
                .extend(ended.into_iter().map(|(_, seq, at)| (seq, at)));
            table.journal = Some(Arc::new(journal));
            for job in &jobs {
                table.record_or_warn(&job.id);
            }
            table.evict(now);
        }
        self.inner.downloader.ids_after(max_seq);
        for job in jobs {
            if found.rerun > 0 {
                tracing::debug!("queued again after a restart: {}", job.id);
            }
            self.emit(Event::Queued {
                id: job.id.clone(),
                url: job.req.url.clone(),
            });
            let id = job.id.clone();
            if self.inner.queue.send(job).is_err() {
                self.finish(&id, State::Cancelled, None);
            }
        }
        Ok(found)
    }

    /// Where downloads are recorded, if anywhere (for messages).
    pub fn recorded_in(&self) -> Option<String> {
        self.table().journal.as_ref().map(|j| j.describe())
    }

    /// Downloads waiting or running.
    pub fn pending(&self) -> usize {
        let t = self.table();
        t.queued + t.running
    }

    /// Downloads by state.
    pub fn counts(&self) -> QueueCounts {
        let mut t = self.table();
        t.evict(Instant::now());
        QueueCounts {
            queued: t.queued,
            running: t.running,
            finished: t.finished.len(),
        }
    }

    /// Is the queue taking new downloads (false once shutting down)?
    pub fn accepting(&self) -> bool {
        *self
            .inner
            .accepting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a download; returns its id at once.
    pub fn submit(&self, req: DownloadRequest) -> Result<DownloadId, SubmitError> {
        if !self.accepting() {
            return Err(SubmitError::ShuttingDown);
        }
        if url::Url::parse(&req.url).is_err() {
            return Err(SubmitError::BadUrl(req.url));
        }
        ytdlp_host_ytdlp::args::check_user_args(&req.ytdlp_args).map_err(SubmitError::BadArgs)?;
        if let Some(fleet) = self.fleet() {
            return self.submit_to_fleet(&fleet, req);
        }
        let id = self.inner.downloader.next_id();
        let Some(seq) = seq_of(&id) else {
            unreachable!("the downloader's ids end in a number: {id}");
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, _) = watch::channel(None);
        {
            let mut table = self.table();
            table.evict(Instant::now());
            let pending = table.queued + table.running;
            if pending >= self.inner.limits.queue {
                return Err(SubmitError::QueueFull(pending));
            }
            table.queued += 1;
            table.entries.insert(
                seq,
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
                    req: req.clone(),
                    restarts: 0,
                    cancel: cancel_tx,
                    done: done_tx,
                    started: None,
                },
            );
            // Recorded before the id is answered: an acknowledged download
            // survives a crash.
            if let Some(Err(e)) = table.record(&id) {
                table.entries.remove(&seq);
                table.queued -= 1;
                return Err(SubmitError::Unrecorded(e.to_string()));
            }
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
            self.finish(&id, State::Cancelled, None);
        }
        Ok(id)
    }

    /// Runs one queued job on a worker (unless it was cancelled while
    /// waiting).
    async fn run_job(&self, job: Job, slot: Option<tokio::sync::OwnedSemaphorePermit>) {
        let Job {
            id,
            req,
            mut cancel,
        } = job;
        // Still queued (not cancelled meanwhile)? It stays `queued` until
        // its first attempt gets one of the downloader's slots (see
        // `mark_running`).
        if self.table().get(&id).map(|e| e.status.state) != Some(State::Queued) {
            return;
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
                .run_in_slot(&run_id, &run_req, slot, move |e| {
                    events.on_attempt_event(&events_id, e)
                })
                .await
        });
        let joined = |joined: Result<DownloadResult, tokio::task::JoinError>| match joined {
            Ok(result) => Some(result),
            Err(e) if e.is_panic() => Some(panicked(&id, &req, e.into_panic())),
            Err(_) => None,
        };
        // Aborting `work` on cancel drops the run, which kills it (its
        // process group) and removes its partial file; wait for that. A run
        // that had ended by then keeps its result: the answer to a cancel
        // says what really happened.
        let outcome = tokio::select! {
            biased;
            result = &mut work => joined(result),
            _ = cancelled => {
                work.abort();
                joined(work.await)
            }
        };
        match outcome {
            Some(result) => {
                let state = if result.status == Status::Done {
                    State::Done
                } else {
                    State::Failed
                };
                self.finish(&id, state, Some(result));
            }
            None => self.finish(&id, State::Cancelled, None),
        }
    }

    /// A download's end: its final state in the table, its waiters woken,
    /// its event, the observer told; then the retention applies.
    fn finish(&self, id: &str, state: State, result: Option<DownloadResult>) {
        let ended = Host::end(&mut self.table(), id, state, result);
        if let Some(ended) = ended {
            self.announce(ended);
        }
    }

    /// The end, in the table (under its lock).
    fn end(
        table: &mut Table,
        id: &str,
        state: State,
        result: Option<DownloadResult>,
    ) -> Option<Ended> {
        let now = Instant::now();
        let seq = seq_of(id)?;
        let e = table
            .entries
            .get_mut(&seq)
            .filter(|e| e.status.id == id && !e.status.state.is_final())?;
        match e.status.state {
            State::Queued => table.queued -= 1,
            _ => table.running -= 1,
        }
        e.status.state = state;
        if result.is_some() {
            e.status.result = result.clone();
        }
        let status = e.status.clone();
        let ran = e.started.map(|s| now.saturating_duration_since(s));
        e.done.send_replace(Some(status.clone()));
        let kept = table.draining && state == State::Cancelled;
        if let Some(fleet) = &table.fleet {
            // Written (with the claim's end) by the keeper; one cancelled
            // by a shutdown is let go for another host to run.
            match table.saved(id) {
                Some(saved) if !kept => fleet.finished(saved),
                _ => fleet.release(id),
            }
        } else if !kept {
            table.record_or_warn(id);
        }
        table.finished.push_back((seq, now));
        table.evict(now);
        Some(Ended {
            status,
            ran,
            result,
        })
    }

    /// The end, outside the table's lock: the event, the observer.
    fn announce(&self, ended: Ended) {
        let Ended {
            status,
            ran,
            result,
        } = ended;
        self.emit(match (status.state, result) {
            (State::Done, Some(result)) => Event::Done { result },
            (State::Failed, Some(result)) => Event::Failed { result },
            _ => Event::Cancelled {
                id: status.id.clone(),
                url: status.url.clone(),
            },
        });
        let observer = self
            .inner
            .observer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(o) = observer {
            o.finished(&status, ran);
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut DownloadStatus)) {
        if let Some(e) = self.table().get_mut(id) {
            f(&mut e.status);
        }
    }

    /// Queued -> running, when the download's first attempt has a slot
    /// (its first event).
    fn mark_running(&self, id: &str) {
        let mut table = self.table();
        let table = &mut *table;
        if let Some(e) = table.get_mut(id)
            && e.status.state == State::Queued
        {
            e.status.state = State::Running;
            e.started = Some(Instant::now());
            table.queued -= 1;
            table.running += 1;
            table.record_or_warn(id);
        }
    }

    fn on_attempt_event(&self, id: &str, e: AttemptEvent) {
        match e {
            AttemptEvent::Running => self.mark_running(id),
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
            AttemptEvent::Waiting { until_ms, reason } => self.emit(Event::Waiting {
                id: id.to_string(),
                until_ms,
                reason,
            }),
        }
    }

    /// A download's status; `None` if unknown (or finished and forgotten).
    pub fn status(&self, id: &str) -> Option<DownloadStatus> {
        let local = {
            let mut t = self.table();
            t.evict(Instant::now());
            t.get(id).map(|e| e.status.clone())
        };
        if local.is_some() || self.fleet().is_none() {
            return local;
        }
        // Submitted to, or run by, another host of the fleet.
        match self.journal_get(id) {
            Ok(rec) => rec.map(|(s, _)| status_of(&s)),
            Err(e) => {
                tracing::warn!("cannot read download {id} from the fleet's store: {e}");
                None
            }
        }
    }

    /// Every download kept, oldest first.
    pub fn list(&self) -> Vec<DownloadStatus> {
        self.list_page(None, None, usize::MAX).items
    }

    /// Up to `limit` downloads submitted after the one `after` names (by
    /// its number, so a forgotten id still works as a cursor), oldest
    /// first, in `state` if given.
    pub fn list_page(&self, state: Option<State>, after: Option<&str>, limit: usize) -> Page {
        let from = after.and_then(seq_of).map_or(0, |n| n.saturating_add(1));
        if self.fleet().is_some() {
            return self.fleet_page(state, from, limit);
        }
        let mut t = self.table();
        t.evict(Instant::now());
        let items: Vec<DownloadStatus> = t
            .entries
            .range(from..)
            .map(|(_, e)| &e.status)
            .filter(|s| state.is_none_or(|st| s.state == st))
            .take(limit.saturating_add(1))
            .cloned()
            .collect();
        page_of(items, limit)
    }

    /// [`Host::list_page`] in a fleet: every host's downloads, from the
    /// store, with this host's running ones as it sees them (progress).
    fn fleet_page(&self, state: Option<State>, from: u64, limit: usize) -> Page {
        let journal = self.table().journal.clone();
        let saved = journal.map(|j| j.load().map(|(s, _)| s));
        let mut all: BTreeMap<u64, DownloadStatus> = BTreeMap::new();
        match saved {
            Some(Ok(saved)) => {
                for s in saved {
                    if let Some(n) = seq_of(&s.id).filter(|n| *n >= from) {
                        all.insert(n, status_of(&s));
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!("cannot list the fleet's downloads, listing this host's: {e}")
            }
            None => {}
        }
        {
            let mut t = self.table();
            t.evict(Instant::now());
            for (n, e) in t.entries.range(from..) {
                all.insert(*n, e.status.clone());
            }
        }
        let items = all
            .into_values()
            .filter(|s| state.is_none_or(|st| s.state == st))
            .take(limit.saturating_add(1))
            .collect();
        page_of(items, limit)
    }
}

/// A page of up to `limit` from `items` (which hold one more if there is a
/// next page).
fn page_of(mut items: Vec<DownloadStatus>, limit: usize) -> Page {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|s| s.id.clone())
    } else {
        None
    };
    Page { items, next }
}

impl Host {
    /// Cancels a queued or running download: its yt-dlp process group is
    /// killed and its partial file removed. False if unknown or finished.
    pub fn cancel(&self, id: &str) -> bool {
        let mut table = self.table();
        match table.get(id).map(|e| e.status.state) {
            Some(State::Queued) => {
                // Not started: its worker skips it, or (one holding it while
                // it waits for a slot) stops it. Under the same lock as the
                // check, so it does not start in between.
                if let Some(e) = table.get(id) {
                    let _ = e.cancel.send(true);
                }
                let ended = Host::end(&mut table, id, State::Cancelled, None);
                drop(table);
                if let Some(ended) = ended {
                    self.announce(ended);
                }
                true
            }
            Some(s) if !s.is_final() => table.get(id).is_some_and(|e| e.cancel.send(true).is_ok()),
            _ => false,
        }
    }

    /// Cancels a download and waits for its end; says what really
    /// happened (it may have finished meanwhile).
    pub async fn cancel_and_wait(&self, id: &str) -> CancelOutcome {
        let here = self.table().get(id).is_some();
        if !here && self.fleet().is_some() {
            return self.cancel_in_fleet(id);
        }
        let Some(before) = self.status(id) else {
            return CancelOutcome::Unknown;
        };
        if before.state.is_final() {
            return CancelOutcome::Ended(before);
        }
        self.cancel(id);
        match self.wait(id).await {
            None => CancelOutcome::Unknown,
            Some(s) if s.state == State::Cancelled => CancelOutcome::Cancelled(s),
            Some(s) => CancelOutcome::Ended(s),
        }
    }

    /// Waits for a download's end; `None` if the id is unknown.
    pub async fn wait(&self, id: &str) -> Option<DownloadStatus> {
        let mut done = self.table().get(id)?.done.subscribe();
        loop {
            if let Some(s) = done.borrow_and_update().clone() {
                return Some(s);
            }
            if done.changed().await.is_err() {
                return self.status(id);
            }
        }
    }

    /// Ids of downloads in a state (for shutdown).
    fn ids_where(&self, f: impl Fn(State) -> bool) -> Vec<DownloadId> {
        self.table()
            .entries
            .values()
            .filter(|e| f(e.status.state))
            .map(|e| e.status.id.clone())
            .collect()
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
        self.table().draining = true;
        let queued = self.ids_where(|s| s == State::Queued);
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
        let running = self.ids_where(|s| !s.is_final());
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
        if let Some(fleet) = self.fleet() {
            // The ends reach Redis before the process goes (while it can
            // be reached; what is not written is run again elsewhere).
            let until = Instant::now() + Duration::from_secs(10);
            while fleet.unsaved() > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if fleet.unsaved() > 0 {
                tracing::warn!(
                    "{} download end(s) could not be written to the fleet's store; other hosts run them again",
                    fleet.unsaved()
                );
            }
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

#[cfg(test)]
mod tests;
