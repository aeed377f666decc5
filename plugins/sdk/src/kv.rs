//! The host's durable key-value store (`wit/keyvalue-0.1.wit`), for state
//! that must survive restarts and be shared by every host process using
//! the same store: a SQLite file on one machine, or Redis for many.
//!
//! The plugin needs a grant (`[plugins.NAME.grants] keyvalue = ["BUCKET"]`);
//! without one, [`Bucket::open`] answers [`KvError::AccessDenied`].
//! Read-modify-write goes through [`Bucket::compare_and_swap`]: read,
//! compute, swap if nobody wrote meanwhile, else read again.
//!
//! [`KeyValue`] is the same calls as a trait, so a plugin's logic can be
//! tested natively against an in-memory map.

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The plugin was granted no key-value store.
    AccessDenied,
    /// No bucket of that name was granted.
    NoSuchBucket,
    /// The store cannot be used now (its file, a full disk, Redis down).
    Other(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::AccessDenied => f.write_str("no key-value store was granted to this plugin"),
            KvError::NoSuchBucket => f.write_str("that key-value bucket was not granted"),
            KvError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for KvError {}

pub type KvResult<T> = Result<T, KvError>;

/// One bucket's calls.
pub trait KeyValue {
    fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>>;
    fn set(&self, key: &str, value: &[u8]) -> KvResult<()>;
    fn delete(&self, key: &str) -> KvResult<()>;
    /// Each key's value (`None`: absent), in order, read at one moment.
    fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>>;
    /// All or nothing.
    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> KvResult<()>;
    fn increment(&self, key: &str, delta: i64) -> KvResult<i64>;
    /// Writes `new` if the key still holds `expected` (`None`: absent);
    /// `Ok(false)` if it does not (nothing written).
    fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> KvResult<bool>;
}

#[cfg(target_family = "wasm")]
mod wit {
    wit_bindgen::generate!({
        path: "../../wit/keyvalue-0.1.wit",
        world: "imports",
    });
}

/// A granted bucket of the host's store.
#[cfg(target_family = "wasm")]
pub struct Bucket(wit::ytdlp::keyvalue::store::Bucket);

#[cfg(target_family = "wasm")]
mod imp {
    use super::wit::ytdlp::keyvalue::{atomics, batch, store};
    use super::{Bucket, KeyValue, KvError, KvResult};

    fn err(e: store::Error) -> KvError {
        match e {
            store::Error::AccessDenied => KvError::AccessDenied,
            store::Error::NoSuchStore => KvError::NoSuchBucket,
            store::Error::Other(m) => KvError::Other(m),
        }
    }

    impl Bucket {
        /// Opens the granted bucket `name`.
        pub fn open(name: &str) -> KvResult<Bucket> {
            store::open(name).map(Bucket).map_err(err)
        }
    }

    impl KeyValue for Bucket {
        fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
            self.0.get(key).map_err(err)
        }
        fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
            self.0.set(key, value).map_err(err)
        }
        fn delete(&self, key: &str) -> KvResult<()> {
            self.0.delete(key).map_err(err)
        }
        fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
            let got = batch::get_many(&self.0, keys).map_err(err)?;
            Ok(got.into_iter().map(|(_, v)| v).collect())
        }
        fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> KvResult<()> {
            batch::set_many(&self.0, pairs).map_err(err)
        }
        fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
            atomics::increment(&self.0, key, delta).map_err(err)
        }
        fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            new: &[u8],
        ) -> KvResult<bool> {
            let cas = atomics::Cas::new(&self.0, key).map_err(err)?;
            if cas.current().map_err(err)?.as_deref() != expected {
                return Ok(false);
            }
            match atomics::swap(cas, new) {
                Ok(()) => Ok(true),
                Err(atomics::CasError::CasFailed(_)) => Ok(false),
                Err(atomics::CasError::StoreError(e)) => Err(err(e)),
            }
        }
    }
}

/// An in-memory bucket, for native tests of a plugin's logic (a fake of
/// the host's store: one process, no durability).
#[derive(Default)]
pub struct MemoryBucket {
    map: std::cell::RefCell<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl KeyValue for MemoryBucket {
    fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        Ok(self.map.borrow().get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        self.map
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> KvResult<()> {
        self.map.borrow_mut().remove(key);
        Ok(())
    }
    fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        let m = self.map.borrow();
        Ok(keys.iter().map(|k| m.get(k).cloned()).collect())
    }
    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> KvResult<()> {
        let mut m = self.map.borrow_mut();
        for (k, v) in pairs {
            m.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        let mut m = self.map.borrow_mut();
        let old = m
            .get(key)
            .map(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| KvError::Other(format!("`{key}` is not a counter")))
            })
            .transpose()?
            .unwrap_or(0);
        let new = old.saturating_add(delta);
        m.insert(key.to_string(), new.to_string().into_bytes());
        Ok(new)
    }
    fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> KvResult<bool> {
        let mut m = self.map.borrow_mut();
        if m.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        m.insert(key.to_string(), new.to_vec());
        Ok(true)
    }
}

/// One bucket shared by several users in one process (tests: two plugin
/// instances on one store).
impl<T: KeyValue> KeyValue for std::rc::Rc<T> {
    fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        (**self).set(key, value)
    }
    fn delete(&self, key: &str) -> KvResult<()> {
        (**self).delete(key)
    }
    fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        (**self).get_many(keys)
    }
    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> KvResult<()> {
        (**self).set_many(pairs)
    }
    fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        (**self).increment(key, delta)
    }
    fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> KvResult<bool> {
        (**self).compare_and_swap(key, expected, new)
    }
}
