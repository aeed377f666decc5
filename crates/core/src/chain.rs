//! Several backends as one proxy source (`backend = ["postgres", "memory"]`):
//! asked in order, the first that hands out a proxy serves the attempt, and
//! the outcome is reported to the backend that handed that proxy out.
//!
//! A backend that gives no proxy, for whatever reason (its store is down, it
//! has none free, it trapped or timed out), passes the request on: the next
//! one is another proxy, never a direct download, so falling through is
//! always safe. When none hands one out, the error names each backend and
//! its answer, and carries the earliest `retry-at` any of them gave (so
//! policy `wait` sleeps until the first of them can serve again).

use std::sync::Arc;

use ytdlp_contract::options::is_host_key;
use ytdlp_contract::proxy_list::ProxyEntry;
use ytdlp_contract::{Failure, Options, Request, Success};
use ytdlp_host_config::merge_options;
use ytdlp_host_plugin_host::{BackendError, ProxyChoice, StatsRow};
use ytdlp_host_ytdlp::BoxFuture;

use crate::source::ProxySource;

/// One backend of a chain, with its own options (its `[plugins.NAME]`
/// table), under whatever a call passes.
pub struct Link {
    pub source: Arc<dyn ProxySource>,
    pub options: Options,
}

/// Backends asked in order; see the module docs.
pub struct ChainSource {
    name: String,
    links: Vec<Link>,
}

impl ChainSource {
    /// `links` in the order they are asked; the chain is named after them
    /// (`postgres+memory`).
    pub fn new(links: Vec<Link>) -> ChainSource {
        let name = links
            .iter()
            .map(|l| l.source.name())
            .collect::<Vec<_>>()
            .join("+");
        ChainSource { name, links }
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    fn names(&self) -> Vec<&str> {
        self.links.iter().map(|l| l.source.name()).collect()
    }

    /// The options for link `i`: its own, under the call's as routed to it.
    fn options_for(&self, i: usize, options: &Options) -> Options {
        let link = &self.links[i];
        let routed = route_options(options, link.source.name(), &self.names());
        merge_options(&link.options, &routed)
    }

    /// The backend that handed `choice` out (each choice names its
    /// plugin), and its options for a report; a choice no link handed out
    /// (one the host made up) goes to the first.
    fn owner(&self, choice: &ProxyChoice, options: &Options) -> (&dyn ProxySource, Options) {
        let i = self
            .links
            .iter()
            .position(|l| l.source.name() == choice.backend)
            .unwrap_or(0);
        (self.links[i].source.as_ref(), self.options_for(i, options))
    }

    /// The chain's error when no link answered: each link's reason, the
    /// earliest retry time; "no proxy" when every link said so or one can
    /// say when, "unavailable" otherwise.
    fn none_served(&self, errors: Vec<BackendError>) -> BackendError {
        let retry_at_ms = errors
            .iter()
            .filter_map(|e| match e {
                BackendError::NoProxy { retry_at_ms, .. } => *retry_at_ms,
                _ => None,
            })
            .min();
        let all_no_proxy = errors
            .iter()
            .all(|e| matches!(e, BackendError::NoProxy { .. }));
        let message = format!("no backend handed out a proxy: {}", reasons(&errors));
        let plugin = self.name.clone();
        if all_no_proxy || retry_at_ms.is_some() {
            BackendError::NoProxy {
                plugin,
                message,
                retry_at_ms,
            }
        } else {
            BackendError::Unavailable { plugin, message }
        }
    }
}

/// The options a call passes, as one backend of `names` sees them: a key
/// `NAME.KEY` whose NAME is one of the chain's goes to that backend only,
/// as `KEY`; any other key goes to every backend. (`host.*` keys are the
/// host's, for every backend.)
pub fn route_options(options: &Options, name: &str, names: &[&str]) -> Options {
    options
        .iter()
        .filter_map(|(k, v)| {
            if is_host_key(k) {
                return Some((k.clone(), v.clone()));
            }
            match k.split_once('.') {
                Some((to, rest)) if to == name => Some((rest.to_string(), v.clone())),
                Some((to, _)) if names.contains(&to) => None,
                _ => Some((k.clone(), v.clone())),
            }
        })
        .collect()
}

impl ProxySource for ChainSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn get_proxy<'a>(
        &'a self,
        req: &'a Request,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<ProxyChoice>, BackendError>> {
        Box::pin(async move {
            let mut errors = Vec::new();
            for (i, link) in self.links.iter().enumerate() {
                match link
                    .source
                    .get_proxy(req, &self.options_for(i, options))
                    .await
                {
                    Ok(choice) => {
                        if !errors.is_empty() {
                            tracing::debug!(
                                "{}: served by `{}` after: {}",
                                self.name,
                                link.source.name(),
                                reasons(&errors)
                            );
                        }
                        return Ok(choice);
                    }
                    Err(e) => errors.push(e),
                }
            }
            Err(self.none_served(errors))
        })
    }

    fn report_success<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        outcome: &'a Success,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let (source, opts) = self.owner(proxy, options);
            source.report_success(proxy, req, outcome, &opts).await
        })
    }

    fn report_failure<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        failure: &'a Failure,
        elapsed_ms: u32,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let (source, opts) = self.owner(proxy, options);
            source
                .report_failure(proxy, req, failure, elapsed_ms, &opts)
                .await
        })
    }

    /// Every backend's rows, each labelled with its backend. A backend
    /// that cannot answer is left out (said in the log), so one store
    /// down does not hide the others; an error only when none answers.
    fn get_stats<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<StatsRow>>, BackendError>> {
        Box::pin(async move {
            let mut rows = Vec::new();
            let (mut any, mut errors) = (false, Vec::new());
            for (i, link) in self.links.iter().enumerate() {
                match link.source.get_stats(&self.options_for(i, options)).await {
                    Ok(Some(r)) => {
                        any = true;
                        let name = link.source.name();
                        rows.extend(r.into_iter().map(|mut row| {
                            row.backend = Some(name.to_string());
                            row
                        }));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!("no statistics from `{}`: {e}", link.source.name());
                        errors.push(e);
                    }
                }
            }
            match (any, errors.is_empty()) {
                (true, _) => Ok(Some(rows)),
                (false, true) => Ok(None),
                (false, false) => Err(BackendError::Unavailable {
                    plugin: self.name.clone(),
                    message: format!("no backend gave its statistics: {}", reasons(&errors)),
                }),
            }
        })
    }

    /// To the first backend that can change its list; an error there is
    /// the answer (the proxies are not put in another store instead).
    fn add_proxies<'a>(
        &'a self,
        entries: &'a [ProxyEntry],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        Box::pin(async move {
            for link in &self.links {
                if let Some(n) = link.source.add_proxies(entries).await? {
                    return Ok(Some(n));
                }
            }
            Ok(None)
        })
    }

    /// From every backend that can change its list (a proxy may be in
    /// more than one); the count is the sum.
    fn remove_proxies<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        Box::pin(async move {
            let mut removed = None;
            for link in &self.links {
                if let Some(n) = link.source.remove_proxies(ids).await? {
                    removed = Some(removed.unwrap_or(0) + n);
                }
            }
            Ok(removed)
        })
    }
}

/// Each backend's error, one after another.
fn reasons(errors: &[BackendError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
