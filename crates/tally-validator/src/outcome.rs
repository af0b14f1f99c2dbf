//! A run's typed outcome, and the one definition of how decided weights become uid weights.

use crate::types::Member;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tally_consensus::Weights;
use tally_core::Hotkey;

/// Weights as decided, by hotkey.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsDecision {
    /// These shares (fractions of one).
    Set(BTreeMap<Hotkey, f64>),
    /// All weight to the burn uid.
    Burn,
    /// The weights on chain stay.
    Hold,
}

/// A validator left out of a run, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// The validator.
    pub validator: Hotkey,
    /// [`crate::Exclusion::name`].
    pub reason: String,
}

/// What one run decided, as stored, served at `GET /v1/runs/{run}` and compared by the devnet,
/// the simulator and the audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The run.
    pub run: u64,
    /// Whether accepted stake reached the quorum.
    pub quorum_met: bool,
    /// Accepted stake over eligible stake.
    pub participating_stake: f64,
    /// Consensus score of every scored miner.
    pub consensus: BTreeMap<Hotkey, f64>,
    /// The consensus winner (on a quorum miss, the incumbent held).
    pub winner: Option<Hotkey>,
    /// The winner on chain when the run was aggregated.
    pub incumbent: Option<Hotkey>,
    /// The weight mode.
    pub mode: String,
    /// The owner's pick, when asked.
    pub owner_pick: Option<Hotkey>,
    /// The weights decided by the mode.
    pub weights: WeightsDecision,
    /// The weights as `(uid, u16 share)`; `None` when held.
    pub uid_weights: Option<Vec<(u16, u16)>>,
    /// The block the weights were included in, when set.
    pub weights_set_at_block: Option<u64>,
    /// Why setting weights failed, when it did.
    pub weights_error: Option<String>,
    /// Validators whose reports counted.
    pub accepted: Vec<Hotkey>,
    /// Validators left out, with reasons.
    pub excluded: Vec<Excluded>,
    /// The first block at which the run's reveal window had closed.
    pub reveal_closed_block: u64,
    /// The head block when the run was aggregated.
    pub aggregated_at_block: u64,
    /// Unix milliseconds when the driver stored the outcome (drivers stamp it; the machine has
    /// no clock).
    pub aggregated_at_ms: Option<u64>,
    /// Miner-hosted mode: this node's own verdict on each hoster it judged (hosters it abstained
    /// on are absent).
    #[serde(default)]
    pub hosters: BTreeMap<Hotkey, HosterResult>,
}

/// A validator's verdict on one hoster, as the outcome shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HosterResult {
    /// Its score.
    pub score: f64,
    /// Why it scores 0 (`no_commit`, `no_reveal`, `late_reveal`, `mismatch`, `bad_output`,
    /// `inaccurate`), if it does.
    pub reason: Option<String>,
}

impl RunOutcome {
    /// JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json_bytes(self)
    }
    /// From JSON bytes.
    pub fn from_json(b: &[u8]) -> Result<RunOutcome, String> {
        serde_json_from(b)
    }
    /// The hotkeys excluded, with reasons.
    pub fn excluded_set(&self) -> BTreeMap<Hotkey, String> {
        self.excluded
            .iter()
            .map(|e| (e.validator, e.reason.clone()))
            .collect()
    }
}

fn serde_json_bytes(o: &RunOutcome) -> Vec<u8> {
    serde_json::to_vec(o).unwrap_or_default()
}
fn serde_json_from(b: &[u8]) -> Result<RunOutcome, String> {
    serde_json::from_slice(b).map_err(|e| format!("run outcome: {e}"))
}

/// The one definition of weights as the chain takes them: each share times `u16::MAX`,
/// rounded down, on the target's uid (targets not in `members` are dropped); burn puts all on
/// `burn_uid`; hold sets nothing (`None`).
pub fn uid_weights(
    weights: &Weights<Hotkey>,
    members: &[Member],
    burn_uid: u16,
) -> Option<Vec<(u16, u16)>> {
    match weights {
        Weights::Set(w) => {
            let uids: HashMap<&Hotkey, u16> = members.iter().map(|m| (&m.hotkey, m.uid)).collect();
            Some(
                w.iter()
                    .filter_map(|(k, f)| {
                        let uid = *uids.get(k)?;
                        Some((
                            uid,
                            ((f.units() as u64 * u16::MAX as u64) / 1_000_000_000) as u16,
                        ))
                    })
                    .collect(),
            )
        }
        Weights::Burn => Some(vec![(burn_uid, u16::MAX)]),
        Weights::Hold => None,
    }
}

/// The decided weights by hotkey, for the outcome.
pub fn decision(weights: &Weights<Hotkey>) -> WeightsDecision {
    match weights {
        Weights::Set(w) => WeightsDecision::Set(w.iter().map(|(k, f)| (*k, f.to_f64())).collect()),
        Weights::Burn => WeightsDecision::Burn,
        Weights::Hold => WeightsDecision::Hold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::Fraction;

    #[test]
    fn uid_weights_round_down_and_drop_unknown_targets() {
        let a = Hotkey([1; 32]);
        let b = Hotkey([2; 32]);
        let members = vec![Member {
            uid: 7,
            hotkey: a,
            stake: 0,
            validator_permit: false,
            axon: String::new(),
        }];
        let w = Weights::Set(vec![
            (a, Fraction::saturating_from_units(500_000_000)),
            (b, Fraction::ONE),
        ]);
        assert_eq!(uid_weights(&w, &members, 0), Some(vec![(7, 32767)]));
        assert_eq!(
            uid_weights(&Weights::Burn, &members, 3),
            Some(vec![(3, u16::MAX)])
        );
        assert_eq!(uid_weights(&Weights::Hold, &members, 3), None);
    }
}
