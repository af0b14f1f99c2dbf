//! The weight-mode decision: which weights a validator sets, given the owner's pick and the
//! consensus outcome.
//!
//! * `owner`: set the owner's pick;
//! * `shadow`: set the owner's pick, and track the divergence between it and the consensus;
//! * `decentralized`: set the consensus result.
//!
//! With no owner pick available in `owner` or `shadow` mode the last weights are held.

use crate::run::{RunOutcome, Weights};
use tally_core::Fraction;

/// How a validator's weights are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// The owner's pick.
    Owner,
    /// The owner's pick, with the consensus computed and divergence tracked.
    Shadow,
    /// The consensus result.
    Decentralized,
}

impl std::str::FromStr for WeightMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "owner" => Ok(WeightMode::Owner),
            "shadow" => Ok(WeightMode::Shadow),
            "decentralized" => Ok(WeightMode::Decentralized),
            _ => Err(format!(
                "unknown weight mode {s:?}: use owner, shadow or decentralized"
            )),
        }
    }
}

/// The decision for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeDecision<K> {
    /// Weights to set.
    pub set: Weights<K>,
    /// Whether to record divergence between the owner's pick and the consensus.
    pub track_divergence: bool,
}

/// Decides what to set under `mode`.
pub fn decide_weights<K: Clone>(
    mode: WeightMode,
    owner_pick: Option<&K>,
    outcome: &RunOutcome<K>,
) -> ModeDecision<K> {
    let owner = || match owner_pick {
        Some(k) => Weights::Set(vec![(k.clone(), Fraction::ONE)]),
        None => Weights::Hold,
    };
    match mode {
        WeightMode::Owner => ModeDecision {
            set: owner(),
            track_divergence: false,
        },
        WeightMode::Shadow => ModeDecision {
            set: owner(),
            track_divergence: true,
        },
        WeightMode::Decentralized => ModeDecision {
            set: outcome.weights.clone(),
            track_divergence: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::Score;

    #[test]
    fn modes() {
        let o = RunOutcome {
            quorum_met: true,
            participating: Fraction::ONE,
            consensus: vec![("a", Score::ONE)],
            winner: Some("a"),
            weights: Weights::Set(vec![("a", Fraction::ONE)]),
        };
        let d = decide_weights(WeightMode::Owner, Some(&"b"), &o);
        assert_eq!(d.set, Weights::Set(vec![("b", Fraction::ONE)]));
        assert!(!d.track_divergence);
        let d = decide_weights(WeightMode::Shadow, Some(&"b"), &o);
        assert_eq!(d.set, Weights::Set(vec![("b", Fraction::ONE)]));
        assert!(d.track_divergence);
        assert_eq!(
            decide_weights(WeightMode::Shadow, None, &o).set,
            Weights::Hold
        );
        let d = decide_weights(WeightMode::Decentralized, Some(&"b"), &o);
        assert_eq!(d.set, Weights::Set(vec![("a", Fraction::ONE)]));
        assert!("bogus".parse::<WeightMode>().is_err());
        assert_eq!("shadow".parse::<WeightMode>(), Ok(WeightMode::Shadow));
    }
}
