//! The hoster's database file (redb): one table `hoster_epochs`, `epoch -> SCALE(HosterEntry)`
//! (salt, output and the records' fixed expiries), so a restarted hoster reveals exactly what it
//! committed and re-publishes byte-identical records.
//!
//! The first entry of an epoch is kept for good: its commitment may already be out, and a
//! second, different one would be an equivocation. Every write is one transaction. A row that
//! does not decode is skipped with a warning when the store is read back.

use parity_scale_codec::Encode;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use tally_core::codec::decode_bounded;
use tally_validator::HosterEntry;
use thiserror::Error;
use tracing::warn;

const EPOCHS: TableDefinition<u64, &[u8]> = TableDefinition::new("hoster_epochs");

/// Largest stored entry: a salt, a tensor at its cap and a few integers.
const MAX_ENTRY_BYTES: usize = tally_protocol::payload::MAX_TENSOR_BYTES + 1024;

/// Most entries [`HosterStore::load`] returns.
pub const MAX_LOAD: usize = 1024;

/// Store errors.
#[derive(Debug, Error)]
pub enum HosterStoreError {
    /// The database could not be opened (missing directory, corrupt file, another process).
    #[error(
        "cannot open the hoster database {path}: {reason} (if the file is corrupt, move it away: \
         the hoster starts afresh and misses at most the reveal of the epoch in progress)"
    )]
    Open {
        /// The file.
        path: String,
        /// What redb said.
        reason: String,
    },
    /// A read or write failed.
    #[error("hoster database: {0}")]
    Db(String),
}

fn db<E: std::fmt::Display>(e: E) -> HosterStoreError {
    HosterStoreError::Db(e.to_string())
}

/// The hoster's database.
pub struct HosterStore {
    db: Database,
}

impl HosterStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<HosterStore, HosterStoreError> {
        let open = |e: String| HosterStoreError::Open {
            path: path.display().to_string(),
            reason: e,
        };
        let d = Database::create(path).map_err(|e| open(e.to_string()))?;
        let tx = d.begin_write().map_err(|e| open(e.to_string()))?;
        tx.open_table(EPOCHS).map_err(|e| open(e.to_string()))?;
        tx.commit().map_err(|e| open(e.to_string()))?;
        Ok(HosterStore { db: d })
    }

    /// Stores `entry` in one transaction, unless its epoch has an entry already: the first one
    /// is kept for good. Returns the entry kept.
    pub fn put(&self, entry: &HosterEntry) -> Result<HosterEntry, HosterStoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let kept = {
            let mut t = tx.open_table(EPOCHS).map_err(db)?;
            let existing = t.get(entry.epoch).map_err(db)?.and_then(|v| {
                decode_bounded::<HosterEntry>(v.value(), MAX_ENTRY_BYTES, "hoster entry").ok()
            });
            match existing {
                // an undecodable row is replaced: it could never be revealed anyway
                Some(e) if e.epoch == entry.epoch => e,
                _ => {
                    t.insert(entry.epoch, &entry.encode()[..]).map_err(db)?;
                    entry.clone()
                }
            }
        };
        tx.commit().map_err(db)?;
        Ok(kept)
    }

    /// The entry of `epoch`, if stored and decodable.
    pub fn get(&self, epoch: u64) -> Result<Option<HosterEntry>, HosterStoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(EPOCHS).map_err(db)?;
        Ok(t.get(epoch)
            .map_err(db)?
            .and_then(|v| decode(epoch, v.value())))
    }

    /// The newest `recent` entries (at most [`MAX_LOAD`]), oldest first; rows that do not
    /// decode are skipped with a warning.
    pub fn load(&self, recent: usize) -> Result<Vec<HosterEntry>, HosterStoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(EPOCHS).map_err(db)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db)?.rev() {
            if out.len() >= recent.min(MAX_LOAD) {
                break;
            }
            let (k, v) = row.map_err(db)?;
            if let Some(e) = decode(k.value(), v.value()) {
                out.push(e);
            }
        }
        out.reverse();
        Ok(out)
    }
}

fn decode(epoch: u64, bytes: &[u8]) -> Option<HosterEntry> {
    match decode_bounded::<HosterEntry>(bytes, MAX_ENTRY_BYTES, "hoster entry") {
        Ok(e) if e.epoch == epoch => Some(e),
        Ok(e) => {
            warn!(
                epoch,
                "hoster database: the row of epoch {epoch} holds epoch {}; skipped", e.epoch
            );
            None
        }
        Err(err) => {
            warn!(
                epoch,
                "hoster database: the row of epoch {epoch} does not decode ({err}); skipped"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_protocol::payload::Tensor;

    fn entry(epoch: u64, v: f32) -> HosterEntry {
        HosterEntry {
            epoch,
            salt: [epoch as u8; 32],
            output: Tensor::f32(&[16], &[v; 16]).unwrap(),
            commit_expires_at_ms: 1_000 + epoch,
            reveal_expires_at_ms: 2_000 + epoch,
        }
    }

    #[test]
    fn the_first_entry_of_an_epoch_stays_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hoster.redb");
        let s = HosterStore::open(&p).unwrap();
        assert!(s.load(4).unwrap().is_empty());
        assert_eq!(s.put(&entry(5, 0.5)).unwrap(), entry(5, 0.5));
        // a second put for the same epoch keeps the first and returns it
        assert_eq!(s.put(&entry(5, 0.75)).unwrap(), entry(5, 0.5));
        for e in [3, 7, 6, 8] {
            s.put(&entry(e, 0.25)).unwrap();
        }
        drop(s);
        let s = HosterStore::open(&p).unwrap();
        assert_eq!(s.get(5).unwrap(), Some(entry(5, 0.5)));
        assert_eq!(s.get(4).unwrap(), None);
        let newest: Vec<u64> = s.load(3).unwrap().iter().map(|e| e.epoch).collect();
        assert_eq!(newest, vec![6, 7, 8]);
        assert_eq!(s.load(100).unwrap().len(), 5);
        assert!(s.load(0).unwrap().is_empty());
    }

    #[test]
    fn undecodable_rows_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hoster.redb");
        let s = HosterStore::open(&p).unwrap();
        s.put(&entry(1, 0.5)).unwrap();
        s.put(&entry(3, 0.5)).unwrap();
        {
            let tx = s.db.begin_write().unwrap();
            {
                let mut t = tx.open_table(EPOCHS).unwrap();
                t.insert(2u64, &b"junk"[..]).unwrap();
                // a row under the wrong key
                t.insert(4u64, &entry(9, 0.5).encode()[..]).unwrap();
            }
            tx.commit().unwrap();
        }
        let epochs: Vec<u64> = s.load(10).unwrap().iter().map(|e| e.epoch).collect();
        assert_eq!(epochs, vec![1, 3]);
        assert_eq!(s.get(2).unwrap(), None);
        // a junk row does not block the epoch's real entry
        assert_eq!(s.put(&entry(2, 0.5)).unwrap(), entry(2, 0.5));
        assert_eq!(s.get(2).unwrap(), Some(entry(2, 0.5)));
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hoster.redb");
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let e = HosterStore::open(&p).err().unwrap().to_string();
        assert!(e.contains("move it away"), "{e}");
        assert!(e.contains("hoster.redb"), "{e}");
    }
}
