//! The key-value import (`wit/keyvalue-0.1.wit`): a plugin's granted
//! buckets over the host's store (`ytdlp-host-store`: SQLite by default,
//! Redis when configured). A bucket is namespaced by the plugin's name, so
//! no plugin reads another's. Without a grant, `open` is `access-denied`.
//!
//! Calls are synchronous host calls (a local file, or Redis with a
//! per-command timeout), so the bundled plugin keeps its fast sync path.

use std::sync::{Arc, Mutex, Weak};

use wasmtime::component::{HasSelf, Linker, Resource};
use ytdlp_host_config::{Grants, HostGrants, StoreConfig};
use ytdlp_host_store::{Engine, Store, StoreError};

use super::PluginState;

mod wit {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue-0.1.wit",
        world: "imports",
        with: {
            "ytdlp:keyvalue/store.bucket": super::BucketRep,
            "ytdlp:keyvalue/atomics.cas": super::CasRep,
        },
    });
}

use wit::ytdlp::keyvalue::{atomics, batch, store};

/// Longest key, largest value and most keys in one batch a plugin may use.
const MAX_KEY: usize = 1024;
const MAX_VALUE: usize = 1 << 20;
const MAX_BATCH: usize = 10_000;

/// What a plugin may reach: the store, and its bucket names.
#[derive(Clone)]
pub struct KvGrant {
    pub store: Arc<dyn Store>,
    pub plugin: String,
    pub buckets: Vec<String>,
}

impl std::fmt::Debug for KvGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvGrant")
            .field("store", &self.store.describe())
            .field("buckets", &self.buckets)
            .finish()
    }
}

/// The buckets `plugin` may open (the user's grants and the host's), over
/// the store the config names; `None` when none is granted, and then no
/// store is opened (no file is created for a plugin that keeps nothing).
pub fn grant(plugin: &str, grants: &Grants, host: &HostGrants) -> anyhow::Result<Option<KvGrant>> {
    let mut buckets: Vec<String> = grants.keyvalue.clone();
    buckets.extend(host.keyvalue.iter().cloned());
    buckets.sort();
    buckets.dedup();
    if buckets.is_empty() {
        return Ok(None);
    }
    let store = open_store(&host.store).map_err(|e| anyhow::anyhow!("keyvalue: {e}"))?;
    Ok(Some(KvGrant {
        store,
        plugin: plugin.to_string(),
        buckets,
    }))
}

fn engine(c: &StoreConfig) -> Engine {
    match (&c.url, &c.path) {
        (Some(url), _) => Engine::Redis(url.clone()),
        (None, Some(p)) => Engine::Sqlite(p.clone()),
        (None, None) => Engine::Sqlite(StoreConfig::default_path()),
    }
}

/// The store `[store]` names, shared in the process: every plugin (and
/// every restart of one) and the service's queue use one connection.
pub fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    let engine = engine(config);
    let engine = &engine;
    static OPEN: Mutex<Vec<(Engine, Weak<dyn Store>)>> = Mutex::new(Vec::new());
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.retain(|(_, w)| w.strong_count() > 0);
    if let Some(s) = open
        .iter()
        .find(|(e, _)| e == engine)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(s);
    }
    let (store, warnings) = ytdlp_host_store::open(engine)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    open.push((engine.clone(), Arc::downgrade(&store)));
    Ok(store)
}

/// An open bucket: its namespace in the store.
pub struct BucketRep {
    ns: String,
}

/// A read a later `swap` is conditional on.
pub struct CasRep {
    ns: String,
    key: String,
    current: Option<Vec<u8>>,
}

pub fn add_to_linker(linker: &mut Linker<PluginState>) -> anyhow::Result<()> {
    wit::Imports::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
}

fn other(e: impl std::fmt::Display) -> store::Error {
    store::Error::Other(e.to_string())
}

fn from_store(e: StoreError) -> store::Error {
    other(e)
}

fn check_key(key: &str) -> Result<(), store::Error> {
    if key.len() > MAX_KEY {
        return Err(other(format!(
            "a key is at most {MAX_KEY} bytes; this one is {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), store::Error> {
    if value.len() > MAX_VALUE {
        return Err(other(format!(
            "a value is at most {MAX_VALUE} bytes; this one is {}",
            value.len()
        )));
    }
    Ok(())
}

fn check_batch(n: usize) -> Result<(), store::Error> {
    if n > MAX_BATCH {
        return Err(other(format!(
            "a batch is at most {MAX_BATCH} keys; this one has {n}"
        )));
    }
    Ok(())
}

impl PluginState {
    fn kv(&self) -> Result<&Arc<dyn Store>, store::Error> {
        self.kv
            .as_ref()
            .map(|g| &g.store)
            .ok_or(store::Error::AccessDenied)
    }

    fn ns(&self, b: &Resource<BucketRep>) -> Result<String, store::Error> {
        self.table.get(b).map(|r| r.ns.clone()).map_err(other)
    }
}

impl store::Host for PluginState {
    fn open(&mut self, identifier: String) -> Result<Resource<BucketRep>, store::Error> {
        let Some(grant) = &self.kv else {
            return Err(store::Error::AccessDenied);
        };
        if !grant.buckets.contains(&identifier) {
            return Err(store::Error::NoSuchStore);
        }
        let ns = format!("{}/{identifier}", grant.plugin);
        self.table.push(BucketRep { ns }).map_err(other)
    }
}

impl store::HostBucket for PluginState {
    fn get(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        check_key(&key)?;
        let ns = self.ns(&b)?;
        self.kv()?.get(&ns, &key).map_err(from_store)
    }

    fn set(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        check_key(&key)?;
        check_value(&value)?;
        let ns = self.ns(&b)?;
        self.kv()?.set(&ns, &key, &value).map_err(from_store)
    }

    fn delete(&mut self, b: Resource<BucketRep>, key: String) -> Result<(), store::Error> {
        check_key(&key)?;
        let ns = self.ns(&b)?;
        self.kv()?.delete(&ns, &key).map_err(from_store)
    }

    fn exists(&mut self, b: Resource<BucketRep>, key: String) -> Result<bool, store::Error> {
        check_key(&key)?;
        let ns = self.ns(&b)?;
        self.kv()?.exists(&ns, &key).map_err(from_store)
    }

    fn list_keys(
        &mut self,
        b: Resource<BucketRep>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        let ns = self.ns(&b)?;
        let (keys, cursor) = self
            .kv()?
            .list_keys(&ns, cursor.as_deref())
            .map_err(from_store)?;
        Ok(store::KeyResponse { keys, cursor })
    }

    fn drop(&mut self, b: Resource<BucketRep>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for PluginState {
    fn increment(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        check_key(&key)?;
        let ns = self.ns(&b)?;
        self.kv()?.increment(&ns, &key, delta).map_err(from_store)
    }

    fn swap(&mut self, cas: Resource<CasRep>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let store_err = atomics::CasError::StoreError;
        check_value(&value).map_err(store_err)?;
        let rep = self.table.delete(cas).map_err(|e| store_err(other(e)))?;
        let store = self.kv().map_err(store_err)?.clone();
        let swapped = store
            .compare_and_swap(&rep.ns, &rep.key, rep.current.as_deref(), &value)
            .map_err(|e| store_err(from_store(e)))?;
        if swapped {
            return Ok(());
        }
        // The contract: hand back a handle on the value that won.
        let current = store
            .get(&rep.ns, &rep.key)
            .map_err(|e| store_err(from_store(e)))?;
        let fresh = self
            .table
            .push(CasRep { current, ..rep })
            .map_err(|e| store_err(other(e)))?;
        Err(atomics::CasError::CasFailed(fresh))
    }
}

impl atomics::HostCas for PluginState {
    fn new(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
    ) -> Result<Resource<CasRep>, store::Error> {
        check_key(&key)?;
        let ns = self.ns(&b)?;
        let current = self.kv()?.get(&ns, &key).map_err(from_store)?;
        self.table.push(CasRep { ns, key, current }).map_err(other)
    }

    fn current(&mut self, cas: Resource<CasRep>) -> Result<Option<Vec<u8>>, store::Error> {
        self.table
            .get(&cas)
            .map(|r| r.current.clone())
            .map_err(other)
    }

    fn drop(&mut self, cas: Resource<CasRep>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for PluginState {
    fn get_many(
        &mut self,
        b: Resource<BucketRep>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, store::Error> {
        check_batch(keys.len())?;
        keys.iter().try_for_each(|k| check_key(k))?;
        let ns = self.ns(&b)?;
        let values = self.kv()?.get_many(&ns, &keys).map_err(from_store)?;
        Ok(keys.into_iter().zip(values).collect())
    }

    fn set_many(
        &mut self,
        b: Resource<BucketRep>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        check_batch(pairs.len())?;
        for (k, v) in &pairs {
            check_key(k)?;
            check_value(v)?;
        }
        let ns = self.ns(&b)?;
        self.kv()?.set_many(&ns, &pairs).map_err(from_store)
    }

    fn delete_many(
        &mut self,
        b: Resource<BucketRep>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        check_batch(keys.len())?;
        keys.iter().try_for_each(|k| check_key(k))?;
        let ns = self.ns(&b)?;
        self.kv()?.delete_many(&ns, &keys).map_err(from_store)
    }
}
