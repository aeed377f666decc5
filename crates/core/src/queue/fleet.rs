//! A fleet of `serve` hosts on one Redis: the queue is a Redis stream read
//! by one consumer group (`ytdlp_host_store::RedisQueue`), so any host may
//! take a download submitted to any other. Two threads per host (Redis
//! calls block):
//!
//! - the claimer takes a download when this host has a free run slot: one
//!   whose holder stopped renewing its claim for the lease (a dead host)
//!   first, else a new one;
//! - the keeper renews the claims this host holds every third of the
//!   lease, and writes final records (with the acknowledgement, only while
//!   the claim is still this host's), keeping them until Redis takes them
//!   when it is down.
//!
//! Redis down: no download is taken, running ones go on, their ends wait
//! in memory, and submissions are refused (nothing is acknowledged that
//! was not recorded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use ytdlp_host_store::{Claim, RedisQueue, Store, StoreError};

use super::journal::{Journal, Saved};
use super::{
    CancelOutcome, DownloadId, DownloadStatus, Entry, Event, Host, Inner, Job, State, SubmitError,
    now_ms, seq_of,
};

/// How a host joins a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The Redis URL (`[store] url`).
    pub url: String,
    /// A claim not renewed for this long is taken over by another host.
    pub lease: Duration,
    /// This host's consumer name; unique in the fleet ([`consumer_name`]).
    pub consumer: String,
}

/// A name no other host (or earlier run of this one) has: the machine's
/// name, the process id and the clock.
pub fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}-{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// Between tries while Redis cannot be reached.
const BACKOFF: Duration = Duration::from_millis(500);
/// A blocking read's bound (under the connection's 2 s timeout).
const BLOCK: Duration = Duration::from_millis(1000);

pub(super) struct Fleet {
    /// For submissions and the keeper (quick calls only).
    pub q: RedisQueue,
    pub consumer: String,
    pub lease: Duration,
    /// The downloads this host holds, by id: their stream entry.
    held: Mutex<HashMap<DownloadId, String>>,
    /// Final records to the keeper.
    finals: Mutex<mpsc::Sender<Saved>>,
    /// Ends not yet written.
    unsaved: AtomicUsize,
    /// Why Redis cannot be used now; `None`: it can.
    down: Mutex<Option<String>>,
}

impl Fleet {
    pub fn new(opts: &FleetOptions) -> Result<(Fleet, mpsc::Receiver<Saved>), StoreError> {
        let q = RedisQueue::open(&opts.url, super::journal::NS)?;
        q.ensure_group()?;
        let (tx, rx) = mpsc::channel();
        Ok((
            Fleet {
                q,
                consumer: opts.consumer.clone(),
                lease: opts.lease,
                held: Mutex::new(HashMap::new()),
                finals: Mutex::new(tx),
                unsaved: AtomicUsize::new(0),
                down: Mutex::new(None),
            },
            rx,
        ))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<DownloadId, String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn hold(&self, id: &str, entry: &str) {
        self.held().insert(id.to_string(), entry.to_string());
    }

    /// Lets go of a download without ending it (shutting down): another
    /// host takes it once the lease runs out.
    pub fn release(&self, id: &str) {
        self.held().remove(id);
    }

    /// A download held here ended: its record goes to the keeper.
    pub fn finished(&self, saved: Saved) {
        self.unsaved.fetch_add(1, Ordering::SeqCst);
        let tx = self.finals.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(saved).is_err() {
            self.unsaved.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Ends not yet written to Redis.
    pub fn unsaved(&self) -> usize {
        self.unsaved.load(Ordering::SeqCst)
    }

    /// Why Redis cannot be used, if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes how the last Redis call went; says a change once.
    fn note<T>(&self, r: &Result<T, StoreError>) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match (r, down.is_some()) {
            (Err(e), false) => {
                tracing::warn!(
                    "the fleet's store is unavailable ({e}): taking no new downloads; running ones go on and their results are kept until it is back"
                );
                *down = Some(e.to_string());
            }
            (Ok(_), true) => {
                tracing::warn!("the fleet's store {} is back", self.q.describe());
                *down = None;
            }
            _ => {}
        }
    }
}

/// Starts the claimer and the keeper of `host`'s fleet; they end when the
/// host is dropped (or, the claimer, once it stops accepting).
pub(super) fn start(
    host: &Host,
    fleet: Arc<Fleet>,
    claimer: RedisQueue,
    finals: mpsc::Receiver<Saved>,
) {
    let weak = Arc::downgrade(&host.inner);
    let f = fleet.clone();
    std::thread::Builder::new()
        .name("fleet-claimer".into())
        .spawn(move || claim_loop(weak, f, claimer))
        .expect("spawn the fleet's claimer");
    let weak = Arc::downgrade(&host.inner);
    std::thread::Builder::new()
        .name("fleet-keeper".into())
        .spawn(move || keep_loop(weak, fleet, finals))
        .expect("spawn the fleet's keeper");
}

fn claim_loop(weak: Weak<Inner>, fleet: Arc<Fleet>, q: RedisQueue) {
    loop {
        let free = {
            let Some(inner) = weak.upgrade() else { return };
            let host = Host { inner };
            if !host.accepting() {
                return;
            }
            host.pending() < host.limits().concurrency.max(1)
        };
        if !free {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        // A dead host's download before a new one: it was submitted first.
        let got = q
            .take_over(&fleet.consumer, fleet.lease)
            .and_then(|c| match c {
                Some(c) => Ok(Some(c)),
                None => q.claim(&fleet.consumer, BLOCK),
            });
        fleet.note(&got);
        match got {
            Ok(Some(claim)) => {
                let Some(inner) = weak.upgrade() else { return };
                let host = Host { inner };
                if let Err(e) = host.fleet_take(&fleet, claim) {
                    // Not started: still pending here, so it is taken over
                    // after the lease.
                    fleet.note::<()>(&Err(e));
                }
            }
            Ok(None) => {}
            Err(_) => std::thread::sleep(BACKOFF),
        }
    }
}

fn keep_loop(weak: Weak<Inner>, fleet: Arc<Fleet>, finals: mpsc::Receiver<Saved>) {
    let every = (fleet.lease / 3).max(Duration::from_millis(100));
    let mut pending: Vec<Saved> = Vec::new();
    let mut renewed = Instant::now();
    loop {
        let wait = if pending.is_empty() {
            every.saturating_sub(renewed.elapsed())
        } else {
            BACKOFF
        };
        match finals.recv_timeout(wait) {
            Ok(s) => pending.push(s),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(s) = finals.try_recv() {
            pending.push(s);
        }
        let mut kept = Vec::new();
        for s in pending.drain(..) {
            match write_final(&fleet, &s) {
                Ok(()) => {
                    fleet.unsaved.fetch_sub(1, Ordering::SeqCst);
                }
                Err(()) => kept.push(s),
            }
        }
        pending = kept;
        if renewed.elapsed() >= every || fleet.unavailable().is_some() {
            renewed = Instant::now();
            renew(&weak, &fleet);
        }
        if weak.strong_count() == 0 && pending.is_empty() {
            return;
        }
    }
}

/// Writes one end; `Err` to try again (Redis down).
fn write_final(fleet: &Fleet, s: &Saved) -> Result<(), ()> {
    let Some(entry) = fleet.held().get(&s.id).cloned() else {
        // Lost (taken over) before it ended: the other host's result wins.
        return Ok(());
    };
    let bytes = serde_json::to_vec(s).expect("plain data serialises");
    let r = fleet.q.finish(&fleet.consumer, &entry, &s.id, Some(&bytes));
    fleet.note(&r);
    match r {
        Ok(true) => {
            fleet.release(&s.id);
            Ok(())
        }
        Ok(false) => {
            tracing::warn!(
                "download {} was taken over by another host (this host did not renew its claim within {} s); this host's result is dropped",
                s.id,
                fleet.lease.as_secs()
            );
            fleet.release(&s.id);
            Ok(())
        }
        Err(_) => Err(()),
    }
}

/// Renews every claim held; a download another host took over is
/// cancelled here (it runs there).
fn renew(weak: &Weak<Inner>, fleet: &Fleet) {
    let held: Vec<(DownloadId, String)> = fleet
        .held()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (id, entry) in held {
        let r = fleet.q.refresh(&fleet.consumer, &entry);
        fleet.note(&r);
        match r {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("download {id} was taken over by another host; stopping it here");
                fleet.release(&id);
                if let Some(inner) = weak.upgrade() {
                    Host { inner }.cancel(&id);
                }
            }
            Err(_) => return,
        }
    }
}

/// A record as a status (a download another host holds, or held).
pub(super) fn status_of(s: &Saved) -> DownloadStatus {
    DownloadStatus {
        id: s.id.clone(),
        url: s.req.url.clone(),
        state: s.state,
        attempt: s.result.as_ref().map_or(0, |r| r.attempts.len() as u32),
        proxy: None,
        progress: None,
        result: s.result.clone(),
    }
}

impl Host {
    /// Takes downloads from the fleet on Redis `opts.url` from now on:
    /// submissions go to the shared queue, this host runs what it claims,
    /// and reads see every host's downloads. `store` is the same Redis
    /// (the records). Call it once, instead of [`Host::restore`]: what a
    /// dead host held is taken over after the lease, by whichever host.
    pub fn join_fleet(&self, store: Arc<dyn Store>, opts: FleetOptions) -> Result<(), StoreError> {
        let (fleet, finals) = Fleet::new(&opts)?;
        let claimer = RedisQueue::open(&opts.url, super::journal::NS)?;
        let fleet = Arc::new(fleet);
        {
            let mut t = self.table();
            t.journal = Some(Arc::new(Journal::new(store)));
            t.fleet = Some(fleet.clone());
        }
        start(self, fleet, claimer, finals);
        Ok(())
    }

    pub(super) fn fleet(&self) -> Option<Arc<Fleet>> {
        self.table().fleet.clone()
    }

    /// Is this host one of a fleet?
    pub fn in_fleet(&self) -> bool {
        self.fleet().is_some()
    }

    /// Why the fleet's store cannot be used now (`None`: it can, or there
    /// is no fleet).
    pub fn store_unavailable(&self) -> Option<String> {
        self.fleet()?.unavailable()
    }

    /// A record, read outside the table's lock (a slow store holds no
    /// one up).
    pub(super) fn journal_get(&self, id: &str) -> Result<Option<(Saved, Vec<u8>)>, StoreError> {
        let journal = self.table().journal.clone();
        match journal {
            Some(j) => j.get(id),
            None => Ok(None),
        }
    }

    pub(super) fn submit_to_fleet(
        &self,
        fleet: &Fleet,
        req: crate::downloader::DownloadRequest,
    ) -> Result<DownloadId, SubmitError> {
        let unrecorded = |e: StoreError| {
            fleet.note::<()>(&Err(e.clone()));
            SubmitError::Unrecorded(e.to_string())
        };
        let seq = fleet.q.next_seq().map_err(unrecorded)?;
        let id = format!("{:x}-{seq}", std::process::id());
        let saved = Saved {
            id: id.clone(),
            req,
            state: State::Queued,
            result: None,
            ended_ms: None,
            restarts: 0,
        };
        let bytes = serde_json::to_vec(&saved).expect("plain data serialises");
        // The record and the stream entry together: acknowledged means
        // some host will run it.
        match fleet.q.enqueue(&id, &bytes, self.inner.limits.queue) {
            Ok(Ok(())) => {
                fleet.note(&Ok(()));
                self.emit(Event::Queued {
                    id: id.clone(),
                    url: saved.req.url,
                });
                Ok(id)
            }
            Ok(Err(n)) => Err(SubmitError::QueueFull(n)),
            Err(e) => Err(unrecorded(e)),
        }
    }

    /// A claimed download into this host's table and queue; one that
    /// ended meanwhile (or was cancelled while queued) is retired.
    pub(super) fn fleet_take(&self, fleet: &Fleet, claim: Claim) -> Result<(), StoreError> {
        let rec = self.journal_get(&claim.id)?;
        let Some((s, seq)) = rec.and_then(|(s, _)| {
            let seq = seq_of(&s.id).filter(|_| !s.state.is_final())?;
            Some((s, seq))
        }) else {
            fleet
                .q
                .finish(&fleet.consumer, &claim.entry, &claim.id, None)?;
            return Ok(());
        };
        let rerun = s.state == State::Running;
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, _) = watch::channel(None);
        {
            let mut t = self.table();
            fleet.hold(&s.id, &claim.entry);
            if t.entries
                .get(&seq)
                .is_some_and(|e| e.status.id == s.id && !e.status.state.is_final())
            {
                return Ok(()); // already ours; the claim renewed
            }
            t.queued += 1;
            t.entries.insert(
                seq,
                Entry {
                    status: DownloadStatus {
                        state: State::Queued,
                        result: None,
                        attempt: 0,
                        ..status_of(&s)
                    },
                    req: s.req.clone(),
                    restarts: s.restarts + u32::from(rerun),
                    cancel: cancel_tx,
                    done: done_tx,
                    started: None,
                },
            );
        }
        if rerun {
            tracing::warn!(
                "took over download {} ({}): the host that ran it stopped renewing its claim",
                s.id,
                s.req.url
            );
        }
        self.emit(Event::Queued {
            id: s.id.clone(),
            url: s.req.url.clone(),
        });
        let job = Job {
            id: s.id.clone(),
            req: s.req,
            cancel: cancel_rx,
        };
        if self.inner.queue.send(job).is_err() {
            self.finish(&s.id, State::Cancelled, None);
        }
        Ok(())
    }

    /// Cancels a download this host does not hold: one still queued in the
    /// fleet is marked cancelled (whoever claims it skips it); one running
    /// elsewhere is left alone.
    pub(super) fn cancel_in_fleet(&self, id: &str) -> CancelOutcome {
        let journal = self.table().journal.clone();
        let Some(journal) = journal else {
            return CancelOutcome::Unknown;
        };
        // A few tries: the record may change under us (it starts).
        for _ in 0..3 {
            let rec = match journal.get(id) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("cannot cancel download {id}: {e}");
                    return CancelOutcome::Unknown;
                }
            };
            let Some((s, bytes)) = rec else {
                return CancelOutcome::Unknown;
            };
            match s.state {
                st if st.is_final() => return CancelOutcome::Ended(status_of(&s)),
                State::Running => return CancelOutcome::Elsewhere(status_of(&s)),
                _ => {
                    let cancelled = Saved {
                        state: State::Cancelled,
                        ended_ms: Some(now_ms()),
                        ..s
                    };
                    match journal.replace(&bytes, &cancelled) {
                        Ok(true) => return CancelOutcome::Cancelled(status_of(&cancelled)),
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::warn!("cannot cancel download {id}: {e}");
                            return CancelOutcome::Unknown;
                        }
                    }
                }
            }
        }
        CancelOutcome::Unknown
    }
}
