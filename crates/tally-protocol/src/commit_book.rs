//! Commit snapshots and the reveal check.
//!
//! A DHT cannot prove when a record was first stored, so a consumer snapshots the commits it
//! holds when a commit window closes ([`CommitBook::snapshot`], once per `(kind, epoch)`, first
//! snapshot wins) and accepts a reveal only if it hashes to the publisher's commit in that
//! snapshot, or to the publisher's on-chain commitment when one is given
//! ([`CommitBook::check_reveal`]). A commit that arrives after the snapshot never counts.
//!
//! Bounded: at most `max_epochs` snapshots (oldest dropped) of at most
//! [`crate::view::MAX_NEURONS`] commits each.

use crate::view::{ChainView, MAX_NEURONS};
use crate::Kind;
use std::collections::BTreeMap;
use tally_core::hash::Hash32;
use tally_core::Hotkey;
use thiserror::Error;

/// Why a reveal does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RevealError {
    /// No snapshot for that commit window (it has not closed, or is too old).
    #[error("no commit snapshot for this epoch")]
    NoSnapshot,
    /// The publisher had no commit in the snapshot (nor on chain).
    #[error("the publisher had committed nothing when the commit window closed")]
    NoCommit,
    /// The reveal hashes to something else.
    #[error("the reveal does not hash to the publisher's commit")]
    Mismatch,
}

/// Snapshots of commits, per commit kind and epoch.
#[derive(Clone, Debug)]
pub struct CommitBook {
    snapshots: BTreeMap<(u64, Kind), BTreeMap<Hotkey, Hash32>>,
    max_epochs: usize,
}

impl CommitBook {
    /// A book keeping snapshots for at most `max_epochs` (kind, epoch) pairs.
    pub fn new(max_epochs: usize) -> Self {
        CommitBook {
            snapshots: BTreeMap::new(),
            max_epochs: max_epochs.max(1),
        }
    }

    /// Whether the commit window of `kind` for `epoch` has closed at `now_ms` (past its end
    /// and the skew allowance), so it is time to snapshot.
    pub fn window_closed(view: &ChainView, kind: Kind, epoch: u64, now_ms: u64) -> bool {
        match view.windows.of(kind) {
            Some(w) => {
                let (_, end) = w.bounds_mb(&view.clock, epoch);
                view.time.position_mb(now_ms) >= end + view.windows.skew_mb as u128
            }
            None => false,
        }
    }

    /// Takes the snapshot of `(kind, epoch)` from `commits`; returns false (and changes
    /// nothing) if one was already taken or `kind` is not a commit kind.
    pub fn snapshot(
        &mut self,
        kind: Kind,
        epoch: u64,
        commits: impl IntoIterator<Item = (Hotkey, Hash32)>,
    ) -> bool {
        if !kind.is_commit() || self.snapshots.contains_key(&(epoch, kind)) {
            return false;
        }
        let snap: BTreeMap<Hotkey, Hash32> = commits.into_iter().take(MAX_NEURONS).collect();
        self.snapshots.insert((epoch, kind), snap);
        while self.snapshots.len() > self.max_epochs {
            self.snapshots.pop_first();
        }
        true
    }

    /// Whether `(kind, epoch)` has a snapshot.
    pub fn has_snapshot(&self, kind: Kind, epoch: u64) -> bool {
        self.snapshots.contains_key(&(epoch, kind))
    }

    /// The commits in a snapshot.
    pub fn commits(&self, kind: Kind, epoch: u64) -> Option<&BTreeMap<Hotkey, Hash32>> {
        self.snapshots.get(&(epoch, kind))
    }

    /// Checks a reveal hashing to `revealed` against `publisher`'s commit of `commit_kind` for
    /// `epoch`; `onchain` is the publisher's on-chain commitment for that run, if any.
    pub fn check_reveal(
        &self,
        commit_kind: Kind,
        epoch: u64,
        publisher: &Hotkey,
        revealed: &Hash32,
        onchain: Option<&Hash32>,
    ) -> Result<(), RevealError> {
        if onchain == Some(revealed) {
            return Ok(());
        }
        let snap = self
            .snapshots
            .get(&(epoch, commit_kind))
            .ok_or(RevealError::NoSnapshot)?;
        match snap.get(publisher) {
            None if onchain.is_some() => Err(RevealError::Mismatch),
            None => Err(RevealError::NoCommit),
            Some(c) if c == revealed => Ok(()),
            Some(_) => Err(RevealError::Mismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_once_and_check() {
        let mut b = CommitBook::new(2);
        let p = Hotkey([1; 32]);
        assert!(b.snapshot(Kind::HosterCommit, 5, [(p, [7; 32])]));
        // a later snapshot (say, after a replacement) does not override the first
        assert!(!b.snapshot(Kind::HosterCommit, 5, [(p, [8; 32])]));
        assert_eq!(
            b.check_reveal(Kind::HosterCommit, 5, &p, &[7; 32], None),
            Ok(())
        );
        assert_eq!(
            b.check_reveal(Kind::HosterCommit, 5, &p, &[8; 32], None),
            Err(RevealError::Mismatch)
        );
        assert_eq!(
            b.check_reveal(Kind::HosterCommit, 5, &Hotkey([2; 32]), &[7; 32], None),
            Err(RevealError::NoCommit)
        );
        assert_eq!(
            b.check_reveal(Kind::HosterCommit, 6, &p, &[7; 32], None),
            Err(RevealError::NoSnapshot)
        );
        // the on-chain commitment also counts
        assert_eq!(
            b.check_reveal(Kind::ValidatorCommit, 6, &p, &[9; 32], Some(&[9; 32])),
            Ok(())
        );
        assert!(!b.snapshot(Kind::HosterReveal, 5, []));
        // bounded
        b.snapshot(Kind::ValidatorCommit, 6, []);
        b.snapshot(Kind::ValidatorCommit, 7, []);
        assert!(!b.has_snapshot(Kind::HosterCommit, 5));
    }
}
