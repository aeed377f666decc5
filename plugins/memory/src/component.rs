//! The contract glue, through the SDK: one engine per instance, configured
//! by `init`. Health is kept in the host's key-value store when the host
//! grants a bucket (`keyvalue`, the default: shared by every host process
//! on the store, see `shared.rs`), else in the state directory's journal
//! (`state.rs`), else nowhere.

use ytdlp_plugin_sdk::contract::now_ms;
use ytdlp_plugin_sdk::kv::{Bucket, KvError};
use ytdlp_plugin_sdk::{
    Backend, Failure, GetProxyError, Options, PluginError, Proxy, ProxyEntry, ProxyStats, Request,
    Success,
};

use crate::engine::{Engine, FailureInfo, Init};
use crate::shared::Shared;
use crate::state::{self, Store};

enum Keep {
    Nothing,
    Journal(Store),
    Shared(Box<Shared<Bucket>>),
}

struct Memory {
    engine: Engine,
    keep: Keep,
    /// Warn about a failing store once, not on every call.
    warned: bool,
}

impl Memory {
    /// Runs `op` on the engine and keeps what changed; `primary` names the
    /// proxy the call is about (see `Shared::run`).
    fn with<R>(
        &mut self,
        mut op: impl FnMut(&mut Engine, u64) -> R,
        primary: impl Fn(&R) -> Option<String>,
    ) -> R {
        let now = now_ms();
        let problem = match &mut self.keep {
            Keep::Nothing => return op(&mut self.engine, now),
            Keep::Journal(store) => {
                let r = op(&mut self.engine, now);
                match store.save_changes(&mut self.engine, now) {
                    Ok(()) => return r,
                    Err(e) => (Some(r), e.to_string()),
                }
            }
            Keep::Shared(shared) => {
                match shared.run(&mut self.engine, now, |e| op(e, now), &primary) {
                    Ok(r) => return r,
                    Err(e) => (None, e.to_string()),
                }
            }
        };
        if !self.warned {
            eprintln!("cannot save proxy health: {}", problem.1);
            self.warned = true;
        }
        // The call still gets its answer, from this process's view.
        match problem.0 {
            Some(r) => r,
            None => {
                let r = op(&mut self.engine, now);
                let _ = self.engine.take_dirty();
                r
            }
        }
    }
}

/// Health an older build saved in the state directory, and a note that it
/// was moved; the files are renamed `*.moved` once the store has it.
fn legacy(dir: &str) -> Option<state::Saved> {
    let mut store = Store::new(dir);
    let (saved, warnings) = store.load();
    for w in warnings {
        eprintln!("{w}");
    }
    (!saved.entries.is_empty() || !saved.removed.is_empty()).then_some(saved)
}

fn open_shared(
    bucket: &str,
    init: &Init,
    engine: &mut Engine,
    now: u64,
) -> Result<Shared<Bucket>, KvError> {
    let kv = Bucket::open(bucket)?;
    let dir = init.state_dir.clone();
    let mut moved = false;
    let opened = Shared::open(
        kv,
        engine,
        &init.proxies,
        || {
            let saved = dir.as_deref().and_then(legacy);
            moved = saved.is_some();
            saved
        },
        init.read_only,
        now,
    )?;
    if moved
        && !init.read_only
        && let Some(dir) = &init.state_dir
    {
        state::retire(dir);
        eprintln!(
            "moved the saved proxy health into the host's key-value store (the old files in the state directory are renamed *.moved)"
        );
    }
    Ok(opened.shared)
}

impl Backend for Memory {
    fn init(options: &Options) -> Result<Self, PluginError> {
        let init = Init::parse(options)?;
        let now = now_ms();
        let mut engine = Engine::new(init.settings.clone(), init.seed);
        if let Some(bucket) = &init.keyvalue {
            engine.track_changes(true);
            match open_shared(bucket, &init, &mut engine, now) {
                Ok(shared) => {
                    if init.read_only {
                        engine.track_changes(false);
                        return Ok(Memory {
                            engine,
                            keep: Keep::Nothing,
                            warned: false,
                        });
                    }
                    return Ok(Memory {
                        engine,
                        keep: Keep::Shared(Box::new(shared)),
                        warned: false,
                    });
                }
                Err(e) => {
                    // Health is a help, not a gate: run on, from memory.
                    eprintln!(
                        "cannot use the key-value store for proxy health ({e}); health is kept in memory only this run"
                    );
                    engine = Engine::new(init.settings.clone(), init.seed);
                    for (entry, w) in &init.proxies {
                        engine.add(entry, *w, false);
                    }
                    return Ok(Memory {
                        engine,
                        keep: Keep::Nothing,
                        warned: true,
                    });
                }
            }
        }
        let keep = match &init.state_dir {
            Some(dir) => {
                engine.track_changes(true);
                let mut store = Store::new(dir);
                let (saved, warnings) = store.load();
                for w in warnings {
                    eprintln!("{w}");
                }
                let fresh = saved.entries.is_empty();
                let migrated = saved.migrated;
                state::apply(&mut engine, saved, &init.proxies, now);
                if init.read_only {
                    // A query: what it hands out or reads changes nothing.
                    engine.track_changes(false);
                    return Ok(Memory {
                        engine,
                        keep: Keep::Nothing,
                        warned: false,
                    });
                }
                // Compact at start only when the journal has grown or the
                // state was a 0.1 one; a new state (or a changed list) is
                // written by the first save.
                let result = if fresh || migrated || store.journal_lines() > 1024 {
                    store.snapshot(&mut engine, now)
                } else {
                    store.save_changes(&mut engine, now)
                };
                if let Err(e) = result {
                    eprintln!("cannot save proxy health in {dir}: {e}");
                }
                Keep::Journal(store)
            }
            None => {
                for (entry, w) in &init.proxies {
                    engine.add(entry, *w, false);
                }
                Keep::Nothing
            }
        };
        Ok(Memory {
            engine,
            keep,
            warned: false,
        })
    }

    fn get_proxy(&mut self, request: &Request, _options: &Options) -> Result<Proxy, GetProxyError> {
        if let Keep::Shared(shared) = &mut self.keep {
            let now = now_ms();
            match shared.pick(&mut self.engine, now, request) {
                Ok(r) => return r.map_err(Into::into),
                Err(e) if !self.warned => {
                    eprintln!("cannot save proxy health: {e}");
                    self.warned = true;
                }
                Err(_) => {}
            }
            // From this process's view, as `with` does.
            let r = self.engine.next_for(now, request);
            let _ = self.engine.take_dirty();
            return r.map_err(Into::into);
        }
        self.with(
            |e, now| e.next_for(now, request),
            |r| r.as_ref().ok().map(|p| p.id.clone()),
        )
        .map_err(Into::into)
    }

    fn report_success(&mut self, proxy_id: &str, request: &Request, _: &Success, _: &Options) {
        let site = request.site.domain.as_str();
        self.with(
            |e, now| e.success_for(proxy_id, site, now),
            |_| Some(proxy_id.to_string()),
        );
    }

    fn report_failure(&mut self, proxy_id: &str, request: &Request, f: &Failure, _: &Options) {
        let site = request.site.domain.as_str();
        // The URL tells one refused video from a site refusing the proxy;
        // the status and Retry-After say how hard to back off.
        let info = FailureInfo {
            url: &request.url,
            http_status: f.detail.http_status,
            retry_after_ms: f.detail.retry_after_ms,
            certain: f.detail.phase == Some(ytdlp_plugin_sdk::Phase::Preflight),
        };
        self.with(
            |e, now| e.failure_with(proxy_id, f.kind, site, &info, now),
            |_| Some(proxy_id.to_string()),
        );
    }

    fn stats(&mut self, _options: &Options) -> Result<Vec<ProxyStats>, PluginError> {
        Ok(self.with(|e, now| e.stats(now), |_| None))
    }

    fn add_proxies(&mut self, proxies: Vec<ProxyEntry>, _: &Options) -> Result<u32, PluginError> {
        Ok(self.with(
            |e, _| proxies.iter().filter(|p| e.add(p, 1, true)).count() as u32,
            |_| None,
        ))
    }

    fn remove_proxies(&mut self, ids: Vec<String>, _: &Options) -> Result<u32, PluginError> {
        Ok(self.with(
            |e, _| ids.iter().filter(|id| e.remove(id)).count() as u32,
            |_| None,
        ))
    }

    fn describe() -> PluginInfo {
        crate::describe()
    }
}

use ytdlp_plugin_sdk::PluginInfo;

ytdlp_plugin_sdk::export_backend!(Memory);
