//! A backend behind an actor: one task owns the plugin instance (its Store)
//! and takes requests over a bounded channel, answering each on a oneshot.
//! A requester that goes away (a cancelled download, a client that hung up)
//! never cancels a guest call half-way, which would poison the instance for
//! the next download and lose the report; the call runs to its end (or its
//! deadline) and its answer is dropped. Calls stay one at a time, as the
//! contract promises plugins.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use ytdlp_contract::proxy_list::ProxyEntry;
use ytdlp_contract::{Failure, Options, Request, Success};

use crate::backend::{Backend, BackendError, PluginInfo, ProxyChoice, StatsRow};
use crate::loading::Contract;

/// Requests waiting for the instance at most; more wait to be queued.
const QUEUE: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, BackendError>>;

enum Call {
    GetProxy(Request, Options, Reply<Arc<ProxyChoice>>),
    ReportSuccess(Arc<ProxyChoice>, Request, Success, Options, Reply<()>),
    ReportFailure(Arc<ProxyChoice>, Request, Failure, u32, Options, Reply<()>),
    GetStats(Options, Reply<Option<Vec<StatsRow>>>),
    Describe(Reply<Option<PluginInfo>>),
    Add(Vec<ProxyEntry>, Options, Reply<Option<u32>>),
    Remove(Vec<String>, Options, Reply<Option<u32>>),
}

/// A running backend, shared by concurrent downloads. Cheap to clone; the
/// instance goes when the last handle does.
#[derive(Clone)]
pub struct BackendHandle {
    name: String,
    contract: Contract,
    has_stats: bool,
    has_admin: bool,
    tx: mpsc::Sender<Call>,
}

/// Runs one call; each answer is sent whether or not anyone still waits.
async fn serve(backend: &mut Backend, call: Call) {
    match call {
        Call::GetProxy(req, o, reply) => {
            let _ = reply.send(backend.get_proxy(&req, &o).await);
        }
        Call::ReportSuccess(p, req, s, o, reply) => {
            let _ = reply.send(backend.report_success(&p, &req, &s, &o).await);
        }
        Call::ReportFailure(p, req, f, ms, o, reply) => {
            let _ = reply.send(backend.report_failure(&p, &req, &f, ms, &o).await);
        }
        Call::GetStats(o, reply) => {
            let _ = reply.send(backend.get_stats(&o).await);
        }
        Call::Describe(reply) => {
            let _ = reply.send(backend.describe().await);
        }
        Call::Add(entries, o, reply) => {
            let _ = reply.send(backend.add_proxies(&entries, &o).await);
        }
        Call::Remove(ids, o, reply) => {
            let _ = reply.send(backend.remove_proxies(&ids, &o).await);
        }
    }
}

impl BackendHandle {
    /// Moves `backend` into its own task. Must be called in a tokio runtime
    /// (a multi-thread one for sync plugins to be fast: see `exec`).
    pub fn spawn(backend: Backend) -> BackendHandle {
        let (tx, mut rx) = mpsc::channel::<Call>(QUEUE);
        let handle = BackendHandle {
            name: backend.name().to_string(),
            contract: backend.plugin().contract,
            has_stats: backend.has_stats(),
            has_admin: backend.plugin().has_admin,
            tx,
        };
        // One task owns the instance. A sync plugin's calls run in it too:
        // `Backend::call` moves each where WASI's sync host calls may block
        // (`exec::run_sync`: `block_in_place` on a multi-thread runtime, as
        // the CLI and `serve` run), which costs far less than handing every
        // call to a thread of its own and waking it (measured in
        // BENCHMARKS.md, "Plugin calls").
        let mut backend = backend;
        tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                serve(&mut backend, call).await;
            }
        });
        handle
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The contract version the plugin was built for.
    pub fn contract(&self) -> Contract {
        self.contract
    }

    pub fn has_stats(&self) -> bool {
        self.has_stats
    }

    pub fn has_admin(&self) -> bool {
        self.has_admin
    }

    fn gone(&self) -> BackendError {
        BackendError::Unavailable {
            plugin: self.name.clone(),
            message: "the backend's task has stopped".to_string(),
        }
    }

    async fn ask<R>(&self, make: impl FnOnce(Reply<R>) -> Call) -> Result<R, BackendError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    pub async fn get_proxy(
        &self,
        req: &Request,
        options: &Options,
    ) -> Result<Arc<ProxyChoice>, BackendError> {
        self.ask(|r| Call::GetProxy(req.clone(), options.clone(), r))
            .await
    }

    pub async fn report_success(
        &self,
        proxy: &Arc<ProxyChoice>,
        req: &Request,
        outcome: &Success,
        options: &Options,
    ) -> Result<(), BackendError> {
        self.ask(|r| Call::ReportSuccess(proxy.clone(), req.clone(), *outcome, options.clone(), r))
            .await
    }

    pub async fn report_failure(
        &self,
        proxy: &Arc<ProxyChoice>,
        req: &Request,
        failure: &Failure,
        elapsed_ms: u32,
        options: &Options,
    ) -> Result<(), BackendError> {
        self.ask(|r| {
            Call::ReportFailure(
                proxy.clone(),
                req.clone(),
                failure.clone(),
                elapsed_ms,
                options.clone(),
                r,
            )
        })
        .await
    }

    /// `Ok(None)` when the plugin keeps no statistics.
    pub async fn get_stats(
        &self,
        options: &Options,
    ) -> Result<Option<Vec<StatsRow>>, BackendError> {
        self.ask(|r| Call::GetStats(options.clone(), r)).await
    }

    /// `Ok(None)` when the plugin does not describe itself.
    pub async fn describe(&self) -> Result<Option<PluginInfo>, BackendError> {
        self.ask(Call::Describe).await
    }

    /// `Ok(None)` when the plugin does not export `admin`.
    pub async fn add_proxies(
        &self,
        entries: &[ProxyEntry],
        options: &[(String, String)],
    ) -> Result<Option<u32>, BackendError> {
        self.ask(|r| Call::Add(entries.to_vec(), options.to_vec(), r))
            .await
    }

    /// Removes by id or URL. `Ok(None)` when the plugin does not export
    /// `admin`.
    pub async fn remove_proxies(
        &self,
        ids: &[String],
        options: &[(String, String)],
    ) -> Result<Option<u32>, BackendError> {
        self.ask(|r| Call::Remove(ids.to_vec(), options.to_vec(), r))
            .await
    }
}
