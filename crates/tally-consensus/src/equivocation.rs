//! Equivocation: one hotkey validly signing two different reports for the same run.
//!
//! An [`Equivocation`] holds both signed reports and is a self-contained proof: anyone can
//! re-check it with [`Equivocation::verify`] without trusting whoever found it.
//! [`find_equivocations`] scans a set of signed reports (skipping ones whose signature fails,
//! since they prove nothing about their claimed signer) and returns one proof per equivocating
//! `(validator, netuid, run, family)`, choosing the two smallest distinct bodies so the proof is
//! the same whoever finds it.

use crate::ConsensusError;
use parity_scale_codec::{Decode, Encode};
use std::collections::BTreeMap;
use tally_core::codec::decode_bounded;
use tally_core::signed::Signable;
use tally_core::{BoundedBytes, Hotkey, ReportBody, Signed};

const MAX_SIGNED_REPORT: usize = <ReportBody as Signable>::MAX_BODY_BYTES + 64;

/// Two different, validly signed reports by one validator for one run and family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// The report with the smaller body bytes.
    pub first: Signed<ReportBody>,
    /// The other report.
    pub second: Signed<ReportBody>,
}

#[derive(Encode, Decode)]
struct Wire {
    first: BoundedBytes<MAX_SIGNED_REPORT>,
    second: BoundedBytes<MAX_SIGNED_REPORT>,
}

impl Equivocation {
    /// The equivocating validator.
    pub fn validator(&self) -> Hotkey {
        self.first.body().validator
    }

    /// Re-checks the proof: both signatures valid, same signer, netuid, run and family,
    /// different bodies.
    pub fn verify(&self) -> Result<(), ConsensusError> {
        let bad = |r: &str| Err(ConsensusError::Corrupt(format!("equivocation proof: {r}")));
        let (a, b) = (self.first.body(), self.second.body());
        if a.validator != b.validator
            || a.netuid != b.netuid
            || a.run != b.run
            || a.family_id != b.family_id
        {
            return bad("the reports are for different validators, runs or families");
        }
        if self.first.body_bytes() == self.second.body_bytes() {
            return bad("the two reports are identical");
        }
        if self.first.verify().is_err() || self.second.verify().is_err() {
            return bad("a signature does not verify");
        }
        Ok(())
    }

    /// Persisted / served form.
    pub fn to_bytes(&self) -> Vec<u8> {
        // both parts are within their caps: they decoded or were signed under the same caps
        Wire {
            first: BoundedBytes::new(self.first.to_bytes()).unwrap_or_default(),
            second: BoundedBytes::new(self.second.to_bytes()).unwrap_or_default(),
        }
        .encode()
    }

    /// Decodes and re-verifies a proof.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConsensusError> {
        let w: Wire = decode_bounded(bytes, 2 * (MAX_SIGNED_REPORT + 5), "equivocation")
            .map_err(|e| ConsensusError::Corrupt(e.to_string()))?;
        let parse = |b: &[u8]| {
            Signed::<ReportBody>::from_bytes(b).map_err(|e| ConsensusError::Corrupt(e.to_string()))
        };
        let e = Equivocation {
            first: parse(&w.first)?,
            second: parse(&w.second)?,
        };
        e.verify()?;
        Ok(e)
    }
}

/// `(validator, netuid, run, family)`: where one validator may sign one report.
type RunSlot = (Hotkey, u16, u64, Vec<u8>);

/// One proof per equivocating `(validator, netuid, run, family)` among `reports`.
pub fn find_equivocations(reports: &[Signed<ReportBody>]) -> Vec<Equivocation> {
    let mut groups: BTreeMap<RunSlot, Vec<&Signed<ReportBody>>> = BTreeMap::new();
    for r in reports {
        if r.verify().is_err() {
            continue;
        }
        let b = r.body();
        groups
            .entry((
                b.validator,
                b.netuid,
                b.run,
                b.family_id.as_str().as_bytes().to_vec(),
            ))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for mut g in groups.into_values() {
        g.sort_by(|a, b| a.body_bytes().cmp(b.body_bytes()));
        g.dedup_by(|a, b| a.body_bytes() == b.body_bytes());
        if g.len() >= 2 {
            out.push(Equivocation {
                first: g[0].clone(),
                second: g[1].clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::{FamilyId, Keypair, Score};

    fn rep(kp: &Keypair, run: u64, x: u32) -> Signed<ReportBody> {
        let miner = Hotkey([7; 32]);
        let body = ReportBody::new(
            1,
            run,
            FamilyId::new("inference").unwrap(),
            kp.hotkey(),
            vec![(miner, Score::from_units(x).unwrap())],
        )
        .unwrap();
        Signed::sign(body, kp).unwrap()
    }

    #[test]
    fn finds_and_proves_equivocation() {
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        let reports = vec![
            rep(&a, 5, 10),
            rep(&a, 5, 10), // replication, not equivocation
            rep(&b, 5, 10),
            rep(&b, 6, 20), // other run
            rep(&a, 5, 11), // equivocation
        ];
        let found = find_equivocations(&reports);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].validator(), a.hotkey());
        found[0].verify().unwrap();
        let back = Equivocation::from_bytes(&found[0].to_bytes()).unwrap();
        assert_eq!(back, found[0]);
    }

    #[test]
    fn forged_reports_prove_nothing() {
        let a = Keypair::from_seed(&[1; 32]);
        let other = Keypair::from_seed(&[3; 32]);
        let real = rep(&a, 5, 10);
        let fake_body = rep(&a, 5, 99).body().clone();
        let forged = Signed::from_parts(fake_body, other.sign(b"whatever"));
        assert!(find_equivocations(&[real.clone(), forged.clone()]).is_empty());
        let e = Equivocation {
            first: real,
            second: forged,
        };
        assert!(e.verify().is_err());
        assert!(Equivocation::from_bytes(&e.to_bytes()).is_err());
    }
}
