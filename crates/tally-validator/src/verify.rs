//! Verification of a peer's report: one definition, used by the machine and by `tally audit`.
//!
//! A fetched report is kept only if it decodes, its signature verifies, it is signed by the
//! hotkey the metagraph lists at the address it came from, it names the run's netuid, run and
//! family, scores at least one miner (an empty report measured nothing and would only count
//! toward quorum), and it hashes to that hotkey's counting commitment for the run
//! (`tally_protocol::rules::counting_commitment`). Two different validly signed reports from
//! one hotkey for one run are an equivocation: [`judge`] returns the proof and the validator is
//! left out.

use tally_consensus::equivocation::{find_equivocations, Equivocation};
use tally_core::hash::Hash32;
use tally_core::{FamilyId, Hotkey, ScoreReport};

/// Why a report was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exclusion {
    /// Nothing was revealed (unreachable, withheld).
    NoReport,
    /// Bytes that do not decode.
    Malformed,
    /// The signature does not verify.
    BadSignature,
    /// Signed by a hotkey other than the one at that address.
    WrongSigner,
    /// For another netuid, run or family.
    WrongRun,
    /// No counting commitment for the run.
    NoCommitment,
    /// The report does not hash to the commitment.
    CommitmentMismatch,
    /// Two different signed reports for the run.
    Equivocation,
    /// A report that scores no miner: it measured nothing and would only count toward quorum.
    Empty,
}

impl Exclusion {
    /// A stable name.
    pub fn name(self) -> &'static str {
        match self {
            Exclusion::NoReport => "no_report",
            Exclusion::Malformed => "malformed",
            Exclusion::BadSignature => "bad_signature",
            Exclusion::WrongSigner => "wrong_signer",
            Exclusion::WrongRun => "wrong_run",
            Exclusion::NoCommitment => "no_commitment",
            Exclusion::CommitmentMismatch => "commitment_mismatch",
            Exclusion::Equivocation => "equivocation",
            Exclusion::Empty => "empty",
        }
    }
}

/// Decodes `wire` and checks it with [`check_report`].
pub fn verify_report(
    wire: &[u8],
    expected: &Hotkey,
    netuid: u16,
    run: u64,
    family: &FamilyId,
    commitment: Option<&Hash32>,
) -> Result<ScoreReport, Exclusion> {
    let r = ScoreReport::from_bytes(wire).map_err(|_| Exclusion::Malformed)?;
    check_report(r, expected, netuid, run, family, commitment)
}

/// Checks a decoded report: signature, signer, run and commitment.
pub fn check_report(
    r: ScoreReport,
    expected: &Hotkey,
    netuid: u16,
    run: u64,
    family: &FamilyId,
    commitment: Option<&Hash32>,
) -> Result<ScoreReport, Exclusion> {
    let b = r.body();
    if b.validator != *expected {
        return Err(Exclusion::WrongSigner);
    }
    if b.netuid != netuid || b.run != run || b.family_id != *family {
        return Err(Exclusion::WrongRun);
    }
    if b.scores.is_empty() {
        return Err(Exclusion::Empty);
    }
    match commitment {
        None => Err(Exclusion::NoCommitment),
        Some(c) if *c != r.commitment() => Err(Exclusion::CommitmentMismatch),
        Some(_) => {
            r.verify().map_err(|_| Exclusion::BadSignature)?;
            Ok(r)
        }
    }
}

/// The verdict on what was fetched for one validator (over HTTP and from the DHT): the report
/// that counts, or why none does, and an equivocation proof when the two are different validly
/// signed reports for this run. Identical bytes are checked once.
pub fn judge(
    http: Option<&[u8]>,
    dht: Option<&[u8]>,
    expected: &Hotkey,
    netuid: u16,
    run: u64,
    family: &FamilyId,
    commitment: Option<&Hash32>,
) -> (Result<ScoreReport, Exclusion>, Option<Equivocation>) {
    let check = |w: &[u8]| verify_report(w, expected, netuid, run, family, commitment);
    match (http, dht) {
        (Some(a), Some(b)) if a != b => {
            if let Some(p) = equivocation(a, b, expected, run) {
                return (Err(Exclusion::Equivocation), Some(p));
            }
            (check(a).or_else(|_| check(b)), None)
        }
        (Some(a), _) | (None, Some(a)) => (check(a), None),
        (None, None) => (Err(Exclusion::NoReport), None),
    }
}

/// A proof that `a` and `b` are two different reports validly signed by `expected` for `run`.
pub fn equivocation(a: &[u8], b: &[u8], expected: &Hotkey, run: u64) -> Option<Equivocation> {
    let signed: Vec<_> = [a, b]
        .iter()
        .filter_map(|w| ScoreReport::from_bytes(w).ok())
        .map(|r| r.signed)
        .filter(|s| s.body().validator == *expected && s.body().run == run)
        .collect();
    find_equivocations(&signed).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::{Keypair, ReportBody, Score};

    #[test]
    fn an_empty_report_never_counts() {
        let k = Keypair::from_seed(&[7; 32]).deterministic();
        let fam = FamilyId::new("f").unwrap();
        let sign = |scores: Vec<(Hotkey, Score)>| {
            let body = ReportBody::new(1, 4, fam.clone(), k.hotkey(), scores).unwrap();
            ScoreReport::sign(body, [1; 32], &k).unwrap()
        };
        let empty = sign(Vec::new());
        let c = empty.commitment();
        assert_eq!(
            check_report(empty, &k.hotkey(), 1, 4, &fam, Some(&c)).err(),
            Some(Exclusion::Empty)
        );
        let full = sign(vec![(Hotkey([9; 32]), Score::ONE)]);
        let c = full.commitment();
        assert!(check_report(full, &k.hotkey(), 1, 4, &fam, Some(&c)).is_ok());
    }
}
