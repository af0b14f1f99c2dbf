//! A bounded Kademlia record store.
//!
//! Wraps libp2p's `MemoryStore` and adds a cap on the total bytes held, so a flood of large
//! records cannot exhaust memory: at most `max_records` records, each value at most
//! `max_value_bytes`, all values together at most `max_total_bytes`. When full, expired records
//! are purged before a put is refused. Provider records are not used by Tally and are refused.

use libp2p::kad::store::{Error, MemoryStore, MemoryStoreConfig, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::PeerId;
use std::borrow::Cow;
use std::time::Instant;

/// Caps of a [`BoundedStore`].
#[derive(Clone, Copy, Debug)]
pub struct StoreLimits {
    /// Most records.
    pub max_records: usize,
    /// Largest value.
    pub max_value_bytes: usize,
    /// Most bytes of all values together.
    pub max_total_bytes: usize,
}

/// The record store.
pub struct BoundedStore {
    inner: MemoryStore,
    limits: StoreLimits,
    total_bytes: usize,
}

impl BoundedStore {
    /// An empty store for `local`.
    pub fn new(local: PeerId, limits: StoreLimits) -> Self {
        let cfg = MemoryStoreConfig {
            max_records: limits.max_records,
            // MemoryStore refuses values of `max_value_bytes` or more; ours is inclusive
            max_value_bytes: limits.max_value_bytes.saturating_add(1),
            max_providers_per_key: 0,
            max_provided_keys: 0,
        };
        BoundedStore {
            inner: MemoryStore::with_config(local, cfg),
            limits,
            total_bytes: 0,
        }
    }

    /// Removes every expired record; returns how many went.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let expired: Vec<RecordKey> = self
            .inner
            .records()
            .filter(|r| r.is_expired(now))
            .map(|r| r.key.clone())
            .collect();
        for k in &expired {
            self.remove(k);
        }
        expired.len()
    }

    /// Bytes of all values held.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.inner.records().count()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.inner.records().next().is_none()
    }
}

impl RecordStore for BoundedStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        if r.value.len() > self.limits.max_value_bytes {
            return Err(Error::ValueTooLarge);
        }
        let old = self.inner.get(&r.key).map(|o| o.value.len()).unwrap_or(0);
        let after = self.total_bytes - old + r.value.len();
        if after > self.limits.max_total_bytes {
            self.purge_expired(Instant::now());
            let old = self.inner.get(&r.key).map(|o| o.value.len()).unwrap_or(0);
            if self.total_bytes - old + r.value.len() > self.limits.max_total_bytes {
                return Err(Error::MaxRecords);
            }
        }
        let old = self.inner.get(&r.key).map(|o| o.value.len()).unwrap_or(0);
        let len = r.value.len();
        self.inner.put(r)?;
        self.total_bytes = self.total_bytes - old + len;
        Ok(())
    }

    fn remove(&mut self, k: &RecordKey) {
        if let Some(old) = self.inner.get(k).map(|o| o.value.len()) {
            self.total_bytes -= old;
        }
        self.inner.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, _record: ProviderRecord) -> Result<()> {
        Err(Error::MaxProvidedKeys)
    }

    fn providers(&self, _key: &RecordKey) -> Vec<ProviderRecord> {
        Vec::new()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.inner.remove_provider(k, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: u8, n: usize) -> Record {
        Record::new(RecordKey::new(&[k]), vec![0; n])
    }

    #[test]
    fn caps_records_bytes_and_values() {
        let limits = StoreLimits {
            max_records: 3,
            max_value_bytes: 100,
            max_total_bytes: 150,
        };
        let mut s = BoundedStore::new(PeerId::random(), limits);
        assert!(s.put(rec(1, 101)).is_err());
        s.put(rec(1, 100)).unwrap();
        assert!(s.put(rec(2, 60)).is_err()); // 160 > 150
        s.put(rec(2, 50)).unwrap();
        assert_eq!(s.total_bytes(), 150);
        s.put(rec(1, 10)).unwrap(); // replacing frees bytes
        assert_eq!(s.total_bytes(), 60);
        s.put(rec(3, 10)).unwrap();
        assert!(s.put(rec(4, 1)).is_err()); // record cap
        s.remove(&RecordKey::new(&[2]));
        assert_eq!(s.total_bytes(), 20);
        // expired records are purged to make room
        let mut old = rec(5, 100);
        old.expires = Some(Instant::now());
        s.put(old).unwrap();
        assert_eq!(
            s.purge_expired(Instant::now() + std::time::Duration::from_millis(1)),
            1
        );
        assert_eq!(s.total_bytes(), 20);
    }
}
