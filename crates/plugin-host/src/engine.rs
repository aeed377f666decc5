//! The wasmtime engine and its epoch ticker, owned together: a call's
//! deadline is a number of epoch ticks, so the ticker must run for as long
//! as any plugin built on the engine can.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use wasmtime::Engine;

use crate::sandbox::EPOCH_TICK;

/// The engine's settings. They are part of the compile cache key (an
/// artifact only loads into an identically configured engine).
fn new_engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the wasmtime engine")
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // park, not sleep: dropping the ticker unparks it, so
                    // a process does not wait up to a tick to exit.
                    std::thread::park_timeout(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("cannot start the epoch ticker thread")?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The engine with its ticker; cheap to clone, the ticker stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    _ticker: Arc<EpochTicker>,
}

impl PluginEngine {
    pub fn new() -> Result<PluginEngine> {
        let engine = new_engine()?;
        let ticker = EpochTicker::start(&engine)?;
        Ok(PluginEngine {
            engine,
            _ticker: Arc::new(ticker),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
