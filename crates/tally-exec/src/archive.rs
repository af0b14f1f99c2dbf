//! The content-addressed archive cache.
//!
//! Archives are kept by the SHA-256 the owner's roster pins. [`ArchiveCache::get_or_fetch`]
//! returns a cached archive, or fetches it and checks its bytes hash to the pinned value before
//! keeping or using a byte of it (a tampered archive is refused and not cached). The cache is
//! bounded in total bytes and evicts the least recently used archives first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tally_core::hash::Hash32;
use thiserror::Error;

/// Why an archive is not usable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ArchiveError {
    /// The bytes do not hash to the pinned value.
    #[error("archive hashes to {got}, the roster pins {want}: refused")]
    HashMismatch { want: String, got: String },
    /// Larger than the cache could ever hold.
    #[error("archive of {len} bytes is over the {cap}-byte cap")]
    TooLarge { len: usize, cap: usize },
    /// Fetching failed.
    #[error("fetch: {0}")]
    Fetch(String),
}

struct Inner {
    map: BTreeMap<Hash32, Arc<Vec<u8>>>,
    order: VecDeque<Hash32>,
    bytes: usize,
}

/// A bounded cache of verified archives.
pub struct ArchiveCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
    max_archive: usize,
}

impl ArchiveCache {
    /// A cache of at most `max_bytes` in all, each archive at most `max_archive` bytes.
    pub fn new(max_bytes: usize, max_archive: usize) -> Self {
        ArchiveCache {
            inner: Mutex::new(Inner {
                map: BTreeMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            max_bytes,
            max_archive: max_archive.min(max_bytes),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }

    /// The archive pinned by `sha256`, fetched with `fetch` when not cached.
    pub fn get_or_fetch(
        &self,
        sha256: &Hash32,
        fetch: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<Arc<Vec<u8>>, ArchiveError> {
        if let Ok(mut i) = self.inner.lock() {
            if let Some(a) = i.map.get(sha256).cloned() {
                i.order.retain(|k| k != sha256);
                i.order.push_back(*sha256);
                return Ok(a);
            }
        }
        let bytes = fetch().map_err(ArchiveError::Fetch)?;
        if bytes.len() > self.max_archive {
            return Err(ArchiveError::TooLarge {
                len: bytes.len(),
                cap: self.max_archive,
            });
        }
        let got = tally_core::sha256(&bytes);
        if got != *sha256 {
            return Err(ArchiveError::HashMismatch {
                want: hex::encode(sha256),
                got: hex::encode(got),
            });
        }
        let a = Arc::new(bytes);
        if let Ok(mut i) = self.inner.lock() {
            i.bytes += a.len();
            i.map.insert(*sha256, a.clone());
            i.order.push_back(*sha256);
            while i.bytes > self.max_bytes {
                let Some(old) = i.order.pop_front() else {
                    break;
                };
                if let Some(x) = i.map.remove(&old) {
                    i.bytes -= x.len();
                }
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_caches_and_evicts() {
        let c = ArchiveCache::new(100, 60);
        let a = vec![1u8; 50];
        let ha = tally_core::sha256(&a);
        assert_eq!(*c.get_or_fetch(&ha, || Ok(a.clone())).unwrap(), a);
        // cached: the fetcher is not called again
        assert_eq!(
            *c.get_or_fetch(&ha, || Err("not called".into())).unwrap(),
            a
        );
        // a tampered archive is refused and not cached
        let mut t = a.clone();
        t[0] ^= 1;
        let hb = tally_core::sha256(&[2u8; 40]);
        assert!(matches!(
            c.get_or_fetch(&hb, || Ok(t)),
            Err(ArchiveError::HashMismatch { .. })
        ));
        assert_eq!(c.bytes(), 50);
        // bounded: a third archive evicts the least recently used
        let b = vec![2u8; 40];
        c.get_or_fetch(&hb, || Ok(b.clone())).unwrap();
        let d = vec![3u8; 30];
        let hd = tally_core::sha256(&d);
        c.get_or_fetch(&hd, || Ok(d.clone())).unwrap();
        assert!(c.bytes() <= 100);
        assert!(c.get_or_fetch(&ha, || Err("evicted".into())).is_err());
        assert!(matches!(
            c.get_or_fetch(&[0; 32], || Ok(vec![0; 61])),
            Err(ArchiveError::TooLarge { .. })
        ));
    }
}
