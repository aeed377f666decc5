//! Finding plugins, checking that a file is a plugin this host can run, and
//! compiling it (through the compile cache). Every refusal is one line that
//! names the file and says why; one bad file never stops the others.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{InstancePre, Linker};
use ytdlp_contract::text::one_line;
use ytdlp_host_config::BUNDLED_BACKEND;

use crate::bindings::{v01, v02};
use crate::cache::{CacheOutcome, CompileCache};
use crate::engine::PluginEngine;
use crate::sandbox::PluginState;

/// The engine, the linker and the cache a plugin is loaded through (the
/// [`crate::PluginRuntime`] holds one).
pub struct Loader {
    pub(crate) engine: PluginEngine,
    /// For plugins that may block in a host call (async host functions).
    pub(crate) linker: Linker<PluginState>,
    /// For plugins that cannot (sync host functions: the fast path).
    pub(crate) sync_linker: Linker<PluginState>,
    pub(crate) cache: CompileCache,
}

/// The contract package plugins export.
pub const CONTRACT_PACKAGE: &str = "ytdlp:proxy";
/// Contract versions this host runs, oldest first.
pub const ACCEPTED_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// A contract version this host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// `ytdlp:proxy/NAME@VERSION`.
    pub fn interface(self, name: &str) -> String {
        format!("{CONTRACT_PACKAGE}/{name}@{}", self.version())
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.version())
    }
}

/// The bundled `memory` plugin, built from `plugins/memory` by build.rs.
pub static BUNDLED_MEMORY_WASM: &[u8] = include_bytes!(env!("YTDLP_HOST_MEMORY_PLUGIN"));

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Bundled,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bundled => f.write_str("(bundled)"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Why a file is not a usable plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read: {0}")]
    Read(String),
    #[error("empty file")]
    Empty,
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    #[error(
        "a core wasm module, not a component: build for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("not a valid component: {0}")]
    Invalid(String),
    #[error(
        "does not export `{CONTRACT_PACKAGE}/backend` (it exports: {0}); is it built for another world?"
    )]
    NotAPlugin(String),
    #[error(
        "built for contract {found}; this host accepts {}",
        ACCEPTED_VERSIONS.join(", ")
    )]
    Version { found: String },
    #[error("imports that this host does not provide: {0}")]
    MissingImports(String),
    #[error("exports do not match contract {0}: {1}")]
    Exports(Contract, String),
}

/// A plugin that passed every check and is ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    pub name: String,
    pub source: Source,
    /// The contract version it was built for.
    pub contract: Contract,
    /// The same, as text (`0.2.0`).
    pub version: String,
    pub has_stats: bool,
    pub has_admin: bool,
    pub has_describe: bool,
    /// It imports something it could wait on (sockets, HTTP, pollables), so
    /// its calls run async under a wall-clock timer; otherwise they are
    /// plain sync calls under epoch deadlines (the fast path).
    pub may_block: bool,
    pub imports: Vec<String>,
    pub cache: CacheOutcome,
    pub load_time: Duration,
    /// Held (never read) to keep the engine and its epoch ticker alive.
    pub(crate) _engine: PluginEngine,
    pub(crate) pre: InstancePre<PluginState>,
    pub(crate) exports: Exports,
}

/// Where a plugin's exports are, by contract version and call mode.
#[derive(Clone)]
pub(crate) enum Exports {
    V01 {
        backend: v01::exports::ytdlp::proxy::backend::GuestIndices,
        stats: Option<v01::exports::ytdlp::proxy::stats::GuestIndices>,
        admin: Option<v01::exports::ytdlp::proxy::admin::GuestIndices>,
    },
    V02 {
        backend: v02::exports::ytdlp::proxy::backend::GuestIndices,
        stats: Option<v02::exports::ytdlp::proxy::stats::GuestIndices>,
        admin: Option<v02::exports::ytdlp::proxy::admin::GuestIndices>,
        describe: Option<v02::exports::ytdlp::proxy::describe::GuestIndices>,
    },
    V02Sync {
        backend: v02::sync::exports::ytdlp::proxy::backend::GuestIndices,
        stats: Option<v02::sync::exports::ytdlp::proxy::stats::GuestIndices>,
        admin: Option<v02::sync::exports::ytdlp::proxy::admin::GuestIndices>,
        describe: Option<v02::sync::exports::ytdlp::proxy::describe::GuestIndices>,
    },
}

impl Plugin {
    /// The contract interfaces it exports: `backend`, then `stats`,
    /// `admin` and `describe` when present.
    pub fn exports(&self) -> Vec<&'static str> {
        let mut e = vec!["backend"];
        if self.has_stats {
            e.push("stats");
        }
        if self.has_admin {
            e.push("admin");
        }
        if self.has_describe {
            e.push("describe");
        }
        e
    }

    /// `sync` (the fast path) or `async`, for `plugins list -v`.
    pub fn call_mode(&self) -> &'static str {
        if self.may_block { "async" } else { "sync" }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("version", &self.version)
            .field("has_stats", &self.has_stats)
            .finish()
    }
}

/// The bundled `memory` plugin through the same checks as a file.
pub(crate) fn load_bundled(rt: &Loader) -> Result<Plugin, LoadError> {
    load_bytes(rt, BUNDLED_BACKEND, Source::Bundled, BUNDLED_MEMORY_WASM)
}

pub(crate) fn load_file(rt: &Loader, name: &str, path: &Path) -> Result<Plugin, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::Read(e.to_string()))?;
    load_bytes(rt, name, Source::File(path.to_path_buf()), &bytes)
}

/// Every check, in the order a user would want to hear about them.
pub(crate) fn load_bytes(
    rt: &Loader,
    name: &str,
    source: Source,
    bytes: &[u8],
) -> Result<Plugin, LoadError> {
    let started = Instant::now();
    let engine = rt.engine.engine();
    check_header(bytes)?;
    let (component, cache) = rt
        .cache
        .load(engine, name, bytes)
        .map_err(|e| LoadError::Invalid(one_line(&e)))?;
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let contract = contract_version(&exports)?;
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    // 0.1 plugins always take the async path: the fast path is 0.2's.
    let may_block = contract == Contract::V0_1 || may_block(&ty, engine);
    let linker = if may_block {
        &rt.linker
    } else {
        &rt.sync_linker
    };
    let pre = linker.instantiate_pre(&component).map_err(|e| {
        let foreign: Vec<&str> = imports
            .iter()
            .map(String::as_str)
            .filter(|i| !i.starts_with("wasi:") && !i.starts_with("ytdlp:proxy/types@"))
            .collect();
        if foreign.is_empty() {
            LoadError::MissingImports(one_line(&e))
        } else {
            LoadError::MissingImports(foreign.join(", "))
        }
    })?;
    let exports_instance = |name: &str| {
        let name = contract.interface(name);
        exports.contains(&name)
            && matches!(
                component.get_export(None, &name).map(|(item, _)| item),
                Some(ComponentItem::ComponentInstance(_))
            )
    };
    let has_stats = exports_instance("stats");
    let has_admin = exports_instance("admin");
    let has_describe = contract == Contract::V0_2 && exports_instance("describe");
    let bad = |e: wasmtime::Error| LoadError::Exports(contract, one_line(&e));
    macro_rules! optional {
        ($has:expr, $indices:ty) => {
            if $has {
                Some(<$indices>::new(&pre).map_err(bad)?)
            } else {
                None
            }
        };
    }
    let indices = match (contract, may_block) {
        (Contract::V0_1, _) => {
            use v01::exports::ytdlp::proxy::{admin, backend, stats};
            Exports::V01 {
                backend: backend::GuestIndices::new(&pre).map_err(bad)?,
                stats: optional!(has_stats, stats::GuestIndices),
                admin: optional!(has_admin, admin::GuestIndices),
            }
        }
        (Contract::V0_2, true) => {
            use v02::exports::ytdlp::proxy::{admin, backend, describe, stats};
            Exports::V02 {
                backend: backend::GuestIndices::new(&pre).map_err(bad)?,
                stats: optional!(has_stats, stats::GuestIndices),
                admin: optional!(has_admin, admin::GuestIndices),
                describe: optional!(has_describe, describe::GuestIndices),
            }
        }
        (Contract::V0_2, false) => {
            use v02::sync::exports::ytdlp::proxy::{admin, backend, describe, stats};
            Exports::V02Sync {
                backend: backend::GuestIndices::new(&pre).map_err(bad)?,
                stats: optional!(has_stats, stats::GuestIndices),
                admin: optional!(has_admin, admin::GuestIndices),
                describe: optional!(has_describe, describe::GuestIndices),
            }
        }
    };
    Ok(Plugin {
        name: name.to_string(),
        source,
        contract,
        version: contract.version().to_string(),
        has_stats,
        has_admin,
        has_describe,
        may_block,
        imports,
        cache,
        load_time: started.elapsed(),
        _engine: rt.engine.clone(),
        pre,
        exports: indices,
    })
}

/// Can a call into this component wait in a host call? It can if it
/// imports sockets, HTTP or pollables (`wasi:io/poll`, the clocks'
/// `subscribe-*`): a deadline must then be able to cut a call that waits,
/// which only an async call under a timer can. Files are read and written
/// synchronously (local state, bounded) and stderr goes to the host's log
/// without waiting, so neither counts.
fn may_block(ty: &wasmtime::component::types::Component, engine: &wasmtime::Engine) -> bool {
    ty.imports(engine).any(|(name, item)| {
        let interface = name.split('@').next().unwrap_or(name);
        match interface {
            i if i.starts_with("wasi:sockets/") || i.starts_with("wasi:http/") => true,
            "wasi:io/poll" => true,
            "wasi:clocks/monotonic-clock" => match item.ty {
                ComponentItem::ComponentInstance(inst) => inst
                    .exports(engine)
                    .any(|(f, _)| f.starts_with("subscribe")),
                _ => true,
            },
            _ => false,
        }
    })
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8: version 1, layer 0 for core modules; layer 1 for components.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// The contract version of the `backend` interface the component exports.
fn contract_version(exports: &[String]) -> Result<Contract, LoadError> {
    let prefix = format!("{CONTRACT_PACKAGE}/backend");
    let Some(found) = exports.iter().find(|e| e.starts_with(&prefix)) else {
        let list = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(LoadError::NotAPlugin(list));
    };
    let version = found
        .split_once('@')
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "(unversioned)".to_string());
    match version.as_str() {
        "0.1.0" => Ok(Contract::V0_1),
        "0.2.0" => Ok(Contract::V0_2),
        _ => Err(LoadError::Version { found: version }),
    }
}

/// `*.wasm` files in `dir`, named by their file stem, sorted by name.
/// A missing directory is simply empty.
pub fn discover(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            Some((stem, p))
        })
        .collect();
    found.sort();
    found
}

/// One row of `plugins list`: a plugin or the reason it is not one.
pub struct CatalogEntry {
    pub name: String,
    pub source: Source,
    pub result: Result<Plugin, LoadError>,
}

/// The bundled plugin and every file in `dir`. A file named like the bundled
/// plugin is refused rather than silently shadowing it.
pub(crate) fn catalog(rt: &Loader, dir: &Path) -> Vec<CatalogEntry> {
    let mut out = vec![CatalogEntry {
        name: BUNDLED_BACKEND.to_string(),
        source: Source::Bundled,
        result: load_bundled(rt),
    }];
    for (name, path) in discover(dir) {
        let result = if name == BUNDLED_BACKEND {
            Err(LoadError::Invalid(format!(
                "the name `{BUNDLED_BACKEND}` is the bundled plugin's; rename the file"
            )))
        } else {
            load_file(rt, &name, &path)
        };
        out.push(CatalogEntry {
            name,
            source: Source::File(path),
            result,
        });
    }
    out
}

/// Finds and loads the plugin called `name`.
pub(crate) fn find(rt: &Loader, dir: &Path, name: &str) -> anyhow::Result<Plugin> {
    if name == BUNDLED_BACKEND {
        return load_bundled(rt).map_err(|e| anyhow::anyhow!("bundled plugin `{name}`: {e}"));
    }
    let path = dir.join(format!("{name}.wasm"));
    if !path.is_file() {
        let known: Vec<String> = std::iter::once(BUNDLED_BACKEND.to_string())
            .chain(discover(dir).into_iter().map(|(n, _)| n))
            .collect();
        anyhow::bail!(
            "no plugin `{name}`: {} does not exist (plugins: {})",
            path.display(),
            known.join(", ")
        );
    }
    load_file(rt, name, &path).map_err(|e| anyhow::anyhow!("plugin {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_before_compiling() {
        assert!(matches!(check_header(b""), Err(LoadError::Empty)));
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadError::NotWasm)
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn versions_are_named_both_ways() {
        let e = contract_version(&["ytdlp:proxy/backend@0.3.0".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "built for contract 0.3.0; this host accepts 0.1.0, 0.2.0"
        );
        assert_eq!(
            contract_version(&["ytdlp:proxy/backend@0.2.0".into()]).unwrap(),
            Contract::V0_2
        );
        let e = contract_version(&["wasi:http/incoming-handler@0.2.0".into()]).unwrap_err();
        assert!(e.to_string().contains("wasi:http/incoming-handler"), "{e}");
        assert_eq!(
            contract_version(&["ytdlp:proxy/backend@0.1.0".into()]).unwrap(),
            Contract::V0_1
        );
    }
}
