//! The queue's downloads in the host's store (`serve`), so a restart, a
//! crash or an OOM kill loses no acknowledged download: each download is
//! one record (`serve/queue`, keyed by its id), written when it is
//! submitted (before its id is answered), when it starts and when it ends,
//! and deleted when the retention forgets it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use ytdlp_host_store::{Store, StoreError};

use super::State;
use crate::downloader::{DownloadRequest, DownloadResult};

/// The store's namespace for the queue.
pub(super) const NS: &str = "serve/queue";

/// One download as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Saved {
    pub id: String,
    pub req: DownloadRequest,
    pub state: State,
    #[serde(default)]
    pub result: Option<DownloadResult>,
    /// When it ended (Unix ms), for the retention's age.
    #[serde(default)]
    pub ended_ms: Option<u64>,
    /// Runs a restart cut short (each re-run is a new attempt).
    #[serde(default)]
    pub restarts: u32,
}

pub(super) struct Journal {
    store: Arc<dyn Store>,
    /// Say a failing store once, not per download.
    warned: AtomicBool,
}

impl Journal {
    pub fn new(store: Arc<dyn Store>) -> Journal {
        Journal {
            store,
            warned: AtomicBool::new(false),
        }
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    pub fn save(&self, rec: &Saved) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rec).expect("plain data serialises");
        self.store.set(NS, &rec.id, &bytes)
    }

    /// One download's record, and its bytes (for a compare-and-swap).
    pub fn get(&self, id: &str) -> Result<Option<(Saved, Vec<u8>)>, StoreError> {
        Ok(self
            .store
            .get(NS, id)?
            .and_then(|b| Some((serde_json::from_slice::<Saved>(&b).ok()?, b))))
    }

    /// Writes `rec` if the record is still `old`; false if it changed.
    pub fn replace(&self, old: &[u8], rec: &Saved) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(rec).expect("plain data serialises");
        self.store.compare_and_swap(NS, &rec.id, Some(old), &bytes)
    }

    pub fn forget(&self, id: &str) {
        if let Err(e) = self.store.delete(NS, id) {
            self.warn(&e);
        }
    }

    fn warn(&self, e: &StoreError) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("cannot record the queue in the store: {e}");
        }
    }

    /// Every saved download, and how many records could not be read
    /// (skipped with a warning: a record this build cannot read is not a
    /// reason to lose the others).
    pub fn load(&self) -> Result<(Vec<Saved>, usize), StoreError> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.store.list_keys(NS, cursor.as_deref())?;
            keys.extend(page);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        let mut bad = 0;
        for chunk in keys.chunks(1000) {
            for (key, v) in chunk.iter().zip(self.store.get_many(NS, chunk)?) {
                let Some(v) = v else { continue };
                match serde_json::from_slice::<Saved>(&v) {
                    Ok(s) if s.id == *key => out.push(s),
                    _ => {
                        bad += 1;
                        tracing::warn!(
                            "the queue record `{key}` in {} cannot be read; skipped",
                            self.store.describe()
                        );
                    }
                }
            }
        }
        Ok((out, bad))
    }
}
