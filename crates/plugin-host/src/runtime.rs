//! The runtime every plugin shares: the engine (with its epoch ticker,
//! [`crate::engine`]), the sandbox's linker and the compile cache, and the
//! calls that load plugins through them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use wasmtime::Engine;

use crate::cache::CompileCache;
use crate::engine::PluginEngine;
use crate::loading::{self, CatalogEntry, LoadError, Loader, Plugin, Source};
use crate::sandbox;

/// The plugin runtime: load plugins with it, then start backends from
/// them. Cheap to clone; every loaded [`Plugin`] keeps the engine (and its
/// ticker) alive, so deadlines fire for as long as any plugin can run.
#[derive(Clone)]
pub struct PluginRuntime {
    loader: Arc<Loader>,
}

impl PluginRuntime {
    /// A runtime compiling through `cache`.
    pub fn new(cache: CompileCache) -> Result<PluginRuntime> {
        let engine = PluginEngine::new()?;
        let linker = sandbox::linker(engine.engine())?;
        let sync_linker = sandbox::sync_linker(engine.engine())?;
        Ok(PluginRuntime {
            loader: Arc::new(Loader {
                engine,
                linker,
                sync_linker,
                cache,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        self.loader.engine.engine()
    }

    /// The bundled `memory` plugin, through the same checks as a file.
    pub fn load_bundled(&self) -> Result<Plugin, LoadError> {
        loading::load_bundled(&self.loader)
    }

    /// A plugin file, named `name`.
    pub fn load_file(&self, name: &str, path: &Path) -> Result<Plugin, LoadError> {
        loading::load_file(&self.loader, name, path)
    }

    /// A plugin from its bytes (every load-time check).
    pub fn load_bytes(
        &self,
        name: &str,
        source: Source,
        bytes: &[u8],
    ) -> Result<Plugin, LoadError> {
        loading::load_bytes(&self.loader, name, source, bytes)
    }

    /// The plugin called `name`: the bundled one, or `dir/NAME.wasm`.
    pub fn find(&self, dir: &Path, name: &str) -> Result<Plugin> {
        loading::find(&self.loader, dir, name)
    }

    /// The bundled plugin and every file in `dir`, loaded or not.
    pub fn catalog(&self, dir: &Path) -> Vec<CatalogEntry> {
        loading::catalog(&self.loader, dir)
    }
}
