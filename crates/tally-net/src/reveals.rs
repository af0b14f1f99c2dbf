//! The consumer side of commit-reveal over the DHT.
//!
//! When a commit window closes, [`snapshot_commits`] reads every listed publisher's commit
//! (each passing the predicate in read mode) into the [`CommitBook`], once. Later,
//! [`fetch_reveals`] reads the reveals and keeps only those that hash to the publisher's commit
//! in that snapshot (or to its on-chain commitment, when given).

use crate::dht::{Dht, DhtError};
use std::collections::BTreeMap;
use tally_core::hash::Hash32;
use tally_core::Hotkey;
use tally_protocol::payload::Payload;
use tally_protocol::{CommitBook, Kind, RevealError};
use thiserror::Error;

/// Why a publisher's reveal is not usable.
#[derive(Debug, Error)]
pub enum RevealFailure {
    /// No valid reveal record was found.
    #[error("no valid reveal found")]
    NotFound,
    /// The DHT failed.
    #[error(transparent)]
    Dht(#[from] DhtError),
    /// The reveal does not match the snapshot commit.
    #[error(transparent)]
    Commit(#[from] RevealError),
}

/// The commit kind a reveal kind answers to.
pub fn commit_kind_of(reveal: Kind) -> Option<Kind> {
    match reveal {
        Kind::HosterReveal => Some(Kind::HosterCommit),
        Kind::ValidatorReveal => Some(Kind::ValidatorCommit),
        _ => None,
    }
}

/// Snapshots the commits of `kind` for `epoch` by `publishers` into `book` (once per
/// `(kind, epoch)`); returns how many commits it holds, or `None` if a snapshot existed.
pub async fn snapshot_commits(
    dht: &Dht,
    book: &mut CommitBook,
    kind: Kind,
    epoch: u64,
    publishers: &[Hotkey],
) -> Option<usize> {
    if book.has_snapshot(kind, epoch) {
        return None;
    }
    let mut commits = Vec::new();
    for (p, res) in dht.get_many(kind, epoch, publishers).await {
        if let Ok(Some(v)) = res {
            if let Payload::Commit(h) = v.payload {
                commits.push((p, h));
            }
        }
    }
    let n = commits.len();
    book.snapshot(kind, epoch, commits).then_some(n)
}

/// The reveals of `kind` for `epoch` by `publishers`, each checked against the snapshot;
/// `onchain` holds publishers' on-chain commitments for the run, where known.
pub async fn fetch_reveals(
    dht: &Dht,
    book: &CommitBook,
    kind: Kind,
    epoch: u64,
    publishers: &[Hotkey],
    onchain: &BTreeMap<Hotkey, Hash32>,
) -> Vec<(Hotkey, Result<Payload, RevealFailure>)> {
    let Some(commit_kind) = commit_kind_of(kind) else {
        return publishers
            .iter()
            .map(|p| (*p, Err(RevealFailure::NotFound)))
            .collect();
    };
    let mut out = Vec::with_capacity(publishers.len());
    for (p, res) in dht.get_many(kind, epoch, publishers).await {
        let r = match res {
            Err(e) => Err(RevealFailure::Dht(e)),
            Ok(None) => Err(RevealFailure::NotFound),
            Ok(Some(v)) => match v.payload.reveal_commitment(&p, epoch) {
                None => Err(RevealFailure::NotFound),
                Some(h) => book
                    .check_reveal(commit_kind, epoch, &p, &h, onchain.get(&p))
                    .map(|_| v.payload)
                    .map_err(RevealFailure::from),
            },
        };
        out.push((p, r));
    }
    out
}
