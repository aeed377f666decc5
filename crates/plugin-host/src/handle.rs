//! A backend behind an actor: one task owns the plugin instance (its Store)
//! and takes requests over a bounded channel, answering each on a oneshot.
//! A requester that goes away (a cancelled download, a client that hung up)
//! never cancels a guest call half-way, which would poison the instance for
//! the next download and lose the report; the call runs to its end (or its
//! deadline) and its answer is dropped. Calls stay one at a time, as the
//! contract promises plugins.

use tokio::sync::{mpsc, oneshot};
use ytdlp_contract::{Options, ProxyUrl};

use crate::backend::{Backend, BackendError, FailureReport, ProxyChoice, StatsRow};

/// Requests waiting for the instance at most; more wait to be queued.
const QUEUE: usize = 1024;

enum Request {
    GetProxy(Options, oneshot::Sender<Result<ProxyChoice, BackendError>>),
    ReportSuccess(ProxyUrl, Options, oneshot::Sender<Result<(), BackendError>>),
    ReportFailure(
        ProxyUrl,
        FailureReport,
        Options,
        oneshot::Sender<Result<(), BackendError>>,
    ),
    GetStats(
        Options,
        oneshot::Sender<Result<Option<Vec<StatsRow>>, BackendError>>,
    ),
    Admin {
        add: bool,
        urls: Vec<String>,
        options: Options,
        reply: oneshot::Sender<Result<Option<u32>, BackendError>>,
    },
}

/// A running backend, shared by concurrent downloads. Cheap to clone; the
/// instance goes when the last handle does.
#[derive(Clone)]
pub struct BackendHandle {
    name: String,
    has_stats: bool,
    has_admin: bool,
    tx: mpsc::Sender<Request>,
}

impl BackendHandle {
    /// Moves `backend` into its own task. Must be called in a tokio runtime.
    pub fn spawn(backend: Backend) -> BackendHandle {
        let (tx, mut rx) = mpsc::channel::<Request>(QUEUE);
        let handle = BackendHandle {
            name: backend.name().to_string(),
            has_stats: backend.has_stats(),
            has_admin: backend.plugin().has_admin,
            tx,
        };
        let mut backend = backend;
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                // Each answer is sent whether or not anyone still waits.
                match req {
                    Request::GetProxy(o, reply) => {
                        let _ = reply.send(backend.get_proxy(&o).await);
                    }
                    Request::ReportSuccess(p, o, reply) => {
                        let _ = reply.send(backend.report_success(&p, &o).await);
                    }
                    Request::ReportFailure(p, f, o, reply) => {
                        let _ = reply.send(backend.report_failure(&p, &f, &o).await);
                    }
                    Request::GetStats(o, reply) => {
                        let _ = reply.send(backend.get_stats(&o).await);
                    }
                    Request::Admin {
                        add,
                        urls,
                        options,
                        reply,
                    } => {
                        let r = if add {
                            backend.add_proxies(&urls, &options).await
                        } else {
                            backend.remove_proxies(&urls, &options).await
                        };
                        let _ = reply.send(r);
                    }
                }
            }
        });
        handle
    }

    pub fn name(&self) -> &str {
        &self.name
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

    async fn ask<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<R, BackendError>>) -> Request,
    ) -> Result<R, BackendError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    pub async fn get_proxy(&self, options: &Options) -> Result<ProxyChoice, BackendError> {
        self.ask(|r| Request::GetProxy(options.clone(), r)).await
    }

    pub async fn report_success(
        &self,
        proxy: &ProxyUrl,
        options: &Options,
    ) -> Result<(), BackendError> {
        self.ask(|r| Request::ReportSuccess(proxy.clone(), options.clone(), r))
            .await
    }

    pub async fn report_failure(
        &self,
        proxy: &ProxyUrl,
        failure: &FailureReport,
        options: &Options,
    ) -> Result<(), BackendError> {
        self.ask(|r| Request::ReportFailure(proxy.clone(), failure.clone(), options.clone(), r))
            .await
    }

    /// `Ok(None)` when the plugin does not export `stats`.
    pub async fn get_stats(
        &self,
        options: &Options,
    ) -> Result<Option<Vec<StatsRow>>, BackendError> {
        self.ask(|r| Request::GetStats(options.clone(), r)).await
    }

    /// `Ok(None)` when the plugin does not export `admin`.
    pub async fn add_proxies(
        &self,
        urls: &[String],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        self.admin(true, urls, options).await
    }

    /// `Ok(None)` when the plugin does not export `admin`.
    pub async fn remove_proxies(
        &self,
        urls: &[String],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        self.admin(false, urls, options).await
    }

    async fn admin(
        &self,
        add: bool,
        urls: &[String],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        self.ask(|reply| Request::Admin {
            add,
            urls: urls.to_vec(),
            options: options.clone(),
            reply,
        })
        .await
    }
}
