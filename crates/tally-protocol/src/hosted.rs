//! Miner-hosted mode's rules, pure: the epoch's input and how a hoster's reveal is judged.
//!
//! * [`fallback_input`]: the input every node derives from the epoch's challenge seed when no
//!   valid `challenge` record appeared in its window, values in `[-1, 1)`.
//! * [`resolve_challenge`]: the epoch's input: the elected validator's challenge if it has the
//!   family's dtype and shape (and passed the payload checks), else the fallback. A challenge of
//!   the wrong shape counts as absent, so the elected validator cannot make the epoch unscorable.
//! * [`judge_reveal`]: whether a hoster's reveal counts: it must exist, hash to the hoster's
//!   commit in the snapshot taken when the commit window closed, and hold an output of the
//!   expected shape; otherwise the hoster scores 0 with a [`HostedMiss`] reason.
//!
//! One definition each, for the hoster, the validator machine, the simulator and the audit.

use crate::commit_book::{CommitBook, RevealError};
use crate::kind::Kind;
use crate::payload::{element_count, hoster_commitment, DType, HosterReveal, Tensor};
use tally_core::hash::tagged_sha256;
use tally_core::{Hash32, Hotkey};

/// Why a hoster scores 0 for an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostedMiss {
    /// No commit of the hoster's in the snapshot taken when the commit window closed.
    NoCommit,
    /// No reveal in the reveal window.
    NoReveal,
    /// A reveal that does not hash to the hoster's commit.
    Mismatch,
    /// A reveal whose output is not of the expected dtype and shape.
    BadOutput,
    /// The judging node took no commit snapshot for the epoch (it was not running when the
    /// commit window closed): it cannot judge, and abstains.
    NoSnapshot,
}

impl HostedMiss {
    /// A stable name, for outcomes and metrics.
    pub fn name(self) -> &'static str {
        match self {
            HostedMiss::NoCommit => "no_commit",
            HostedMiss::NoReveal => "no_reveal",
            HostedMiss::Mismatch => "mismatch",
            HostedMiss::BadOutput => "bad_output",
            HostedMiss::NoSnapshot => "no_snapshot",
        }
    }
}

/// The input every node derives from `seed` when the epoch has no valid challenge: `shape`'s
/// elements, each in `[-1, 1)`, from SHA-256 blocks tagged `tally/challenge-input/v1`.
pub fn fallback_input(seed: &Hash32, shape: &[u32]) -> Result<Tensor, String> {
    // bounded before anything is generated
    let count = element_count(shape)?;
    let mut values = Vec::with_capacity(count);
    let mut block = 0u64;
    while values.len() < count {
        let h = tagged_sha256(
            b"tally/challenge-input/v1",
            &[&seed[..], &block.to_le_bytes()],
        );
        for c in h.chunks_exact(4) {
            if values.len() == count {
                break;
            }
            let u = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            // 24 bits of the word, scaled to [-1, 1): exact in f32
            values.push((u >> 8) as f32 / (1u32 << 23) as f32 - 1.0);
        }
        block += 1;
    }
    Tensor::f32(shape, &values)
}

/// The epoch's input: `found` (the elected validator's challenge) when it is an f32 tensor of
/// `shape` that passes the payload checks, else [`fallback_input`].
pub fn resolve_challenge(
    seed: &Hash32,
    found: Option<&Tensor>,
    shape: &[u32],
) -> Result<Tensor, String> {
    match found {
        Some(t) if t.dtype == DType::F32 && t.shape[..] == *shape && t.check().is_ok() => {
            Ok(t.clone())
        }
        _ => fallback_input(seed, shape),
    }
}

/// Judges `hoster`'s reveal for `epoch` against `book`'s snapshot of hoster commits: `Ok` when
/// it counts (the output is then scored), else why the hoster scores 0.
pub fn judge_reveal(
    book: &CommitBook,
    epoch: u64,
    hoster: &Hotkey,
    reveal: Option<&HosterReveal>,
    output_shape: &[u32],
) -> Result<(), HostedMiss> {
    let Some(r) = reveal else {
        // no reveal: was there a commit at all?
        return match book.check_reveal(Kind::HosterCommit, epoch, hoster, &[0; 32], None) {
            Err(RevealError::NoSnapshot) => Err(HostedMiss::NoSnapshot),
            Err(RevealError::NoCommit) => Err(HostedMiss::NoCommit),
            _ => Err(HostedMiss::NoReveal),
        };
    };
    let revealed = hoster_commitment(hoster, epoch, &r.salt, &r.output);
    match book.check_reveal(Kind::HosterCommit, epoch, hoster, &revealed, None) {
        Err(RevealError::NoSnapshot) => return Err(HostedMiss::NoSnapshot),
        Err(RevealError::NoCommit) => return Err(HostedMiss::NoCommit),
        Err(RevealError::Mismatch) => return Err(HostedMiss::Mismatch),
        Ok(()) => {}
    }
    if r.output.dtype != DType::F32
        || r.output.shape[..] != *output_shape
        || r.output.check().is_err()
    {
        return Err(HostedMiss::BadOutput);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn the_fallback_input_is_the_seeds_and_bounded() {
        let a = fallback_input(&[1; 32], &[64]).unwrap();
        assert_eq!(a, fallback_input(&[1; 32], &[64]).unwrap());
        assert_ne!(a, fallback_input(&[2; 32], &[64]).unwrap());
        let v = values(&a);
        assert_eq!(v.len(), 64);
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        // not constant: the blocks differ
        assert!(v.iter().any(|x| *x != v[0]));
        assert_eq!(values(&fallback_input(&[1; 32], &[2, 3]).unwrap()).len(), 6);
        assert!(fallback_input(&[1; 32], &[0]).is_err());
        // refused before anything is generated
        assert!(fallback_input(&[1; 32], &[u32::MAX, u32::MAX]).is_err());
        assert!(fallback_input(&[1; 32], &[16 * 1024 + 1]).is_err());
    }

    #[test]
    fn a_challenge_of_another_shape_or_dtype_counts_as_absent() {
        let seed = [3; 32];
        let fallback = fallback_input(&seed, &[64]).unwrap();
        let good = Tensor::f32(&[64], &[0.5; 64]).unwrap();
        assert_eq!(resolve_challenge(&seed, Some(&good), &[64]).unwrap(), good);
        assert_eq!(resolve_challenge(&seed, None, &[64]).unwrap(), fallback);
        let short = Tensor::f32(&[63], &[0.5; 63]).unwrap();
        assert_eq!(
            resolve_challenge(&seed, Some(&short), &[64]).unwrap(),
            fallback
        );
        let mut ints = good.clone();
        ints.dtype = DType::I32;
        assert_eq!(
            resolve_challenge(&seed, Some(&ints), &[64]).unwrap(),
            fallback
        );
        let nan = Tensor::f32(&[64], &[f32::NAN; 64]);
        if let Ok(nan) = nan {
            assert_eq!(
                resolve_challenge(&seed, Some(&nan), &[64]).unwrap(),
                fallback
            );
        }
    }

    #[test]
    fn each_way_to_miss_has_its_reason() {
        let (honest, silent, liar, absent) = (
            Hotkey([1; 32]),
            Hotkey([2; 32]),
            Hotkey([3; 32]),
            Hotkey([4; 32]),
        );
        let output = Tensor::f32(&[16], &[0.25; 16]).unwrap();
        let reveal = HosterReveal {
            salt: [9; 32],
            output: output.clone(),
        };
        let mut book = CommitBook::new(4);
        let none = CommitBook::new(4);
        assert_eq!(
            judge_reveal(&none, 7, &honest, Some(&reveal), &[16]),
            Err(HostedMiss::NoSnapshot)
        );
        let c = hoster_commitment(&honest, 7, &reveal.salt, &output);
        book.snapshot(
            Kind::HosterCommit,
            7,
            [(honest, c), (silent, c), (liar, [5; 32])],
        );
        assert_eq!(
            judge_reveal(&book, 7, &honest, Some(&reveal), &[16]),
            Ok(())
        );
        assert_eq!(
            judge_reveal(&book, 7, &silent, None, &[16]),
            Err(HostedMiss::NoReveal)
        );
        // `silent` copied the honest hoster's commit hash in the commit window; revealing the
        // honest salt and output as its own does not match: the commitment binds the hotkey
        assert_eq!(
            judge_reveal(&book, 7, &silent, Some(&reveal), &[16]),
            Err(HostedMiss::Mismatch)
        );
        assert_eq!(
            judge_reveal(&book, 7, &liar, Some(&reveal), &[16]),
            Err(HostedMiss::Mismatch)
        );
        // a copycat revealing another's output never committed
        assert_eq!(
            judge_reveal(&book, 7, &absent, Some(&reveal), &[16]),
            Err(HostedMiss::NoCommit)
        );
        assert_eq!(
            judge_reveal(&book, 7, &absent, None, &[16]),
            Err(HostedMiss::NoCommit)
        );
        // committed to an output of the wrong shape
        assert_eq!(
            judge_reveal(&book, 7, &honest, Some(&reveal), &[8]),
            Err(HostedMiss::BadOutput)
        );
        // another epoch has no snapshot
        assert_eq!(
            judge_reveal(&book, 8, &honest, Some(&reveal), &[16]),
            Err(HostedMiss::NoSnapshot)
        );
        let names: std::collections::BTreeSet<_> = [
            HostedMiss::NoCommit,
            HostedMiss::NoReveal,
            HostedMiss::Mismatch,
            HostedMiss::BadOutput,
            HostedMiss::NoSnapshot,
        ]
        .map(HostedMiss::name)
        .into_iter()
        .collect();
        assert_eq!(names.len(), 5);
    }
}
