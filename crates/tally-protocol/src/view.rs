//! What the predicate reads about the chain: a snapshot the node refreshes on its own schedule.
//!
//! [`ChainView`] holds the epoch clock, the phase windows, the chain-time snapshot, the
//! metagraph (registered hotkeys with uid, stake and validator permit), the minimum validator
//! stake, and the challenge seeds of recent epochs. The predicate never calls the chain.
//!
//! [`challenge_seed`] derives an epoch's seed from the hash of its first block with the netuid
//! and epoch, so no one can pick tasks after seeing the miners; [`elect`] picks the validator
//! that may publish the epoch's challenge, by stake, from that seed.

use crate::clock::{ChainTime, EpochClock, PhaseWindows};
use parity_scale_codec::Encode;
use std::collections::BTreeMap;
use tally_core::hash::{tagged_sha256, Hash32};
use tally_core::Hotkey;

/// Most neurons a metagraph snapshot holds.
pub const MAX_NEURONS: usize = 65_536;
/// Most epochs whose seeds a view keeps.
pub const MAX_SEEDS: usize = 64;

/// A registered hotkey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neuron {
    /// Its uid on the subnet.
    pub uid: u16,
    /// Its stake, in the chain's smallest unit.
    pub stake: u64,
    /// Whether it holds a validator permit.
    pub validator_permit: bool,
}

/// The registered hotkeys of a subnet at some block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metagraph {
    neurons: BTreeMap<Hotkey, Neuron>,
}

impl Metagraph {
    /// From `(hotkey, neuron)` pairs; refuses more than [`MAX_NEURONS`].
    pub fn new(neurons: impl IntoIterator<Item = (Hotkey, Neuron)>) -> Result<Self, String> {
        let mut m = BTreeMap::new();
        for (k, n) in neurons {
            if m.len() >= MAX_NEURONS {
                return Err(format!("more than {MAX_NEURONS} neurons"));
            }
            m.insert(k, n);
        }
        Ok(Metagraph { neurons: m })
    }
    /// The neuron of `hotkey`, if registered.
    pub fn get(&self, hotkey: &Hotkey) -> Option<&Neuron> {
        self.neurons.get(hotkey)
    }
    /// All neurons, by hotkey.
    pub fn iter(&self) -> impl Iterator<Item = (&Hotkey, &Neuron)> {
        self.neurons.iter()
    }
    /// Validators with a permit and at least `min_stake`, by hotkey.
    pub fn validators(&self, min_stake: u64) -> impl Iterator<Item = (&Hotkey, &Neuron)> {
        self.neurons
            .iter()
            .filter(move |(_, n)| crate::rules::is_eligible(n.validator_permit, n.stake, min_stake))
    }
    /// Number of registered hotkeys.
    pub fn len(&self) -> usize {
        self.neurons.len()
    }
    /// Whether none are registered.
    pub fn is_empty(&self) -> bool {
        self.neurons.is_empty()
    }
}

/// Everything the predicate needs to know about the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainView {
    /// The subnet.
    pub netuid: u16,
    /// Epoch length and offset.
    pub clock: EpochClock,
    /// Phase windows and skew.
    pub windows: PhaseWindows,
    /// The chain-time snapshot.
    pub time: ChainTime,
    /// Registered hotkeys.
    pub metagraph: Metagraph,
    /// Minimum stake for validator kinds.
    pub min_validator_stake: u64,
    /// Challenge seeds of recent epochs (at most [`MAX_SEEDS`], newest kept).
    seeds: BTreeMap<u64, Hash32>,
}

impl ChainView {
    /// A view without seeds.
    pub fn new(
        netuid: u16,
        clock: EpochClock,
        windows: PhaseWindows,
        time: ChainTime,
        metagraph: Metagraph,
        min_validator_stake: u64,
    ) -> Self {
        ChainView {
            netuid,
            clock,
            windows,
            time,
            metagraph,
            min_validator_stake,
            seeds: BTreeMap::new(),
        }
    }

    /// Records the seed of `epoch`, dropping the oldest past [`MAX_SEEDS`].
    pub fn set_seed(&mut self, epoch: u64, seed: Hash32) {
        self.seeds.insert(epoch, seed);
        while self.seeds.len() > MAX_SEEDS {
            self.seeds.pop_first();
        }
    }

    /// The seed of `epoch`, if known.
    pub fn seed(&self, epoch: u64) -> Option<&Hash32> {
        self.seeds.get(&epoch)
    }

    /// The validator elected to publish `epoch`'s challenge, if its seed is known.
    pub fn elected(&self, epoch: u64) -> Option<Hotkey> {
        let seed = self.seed(epoch)?;
        elect(
            seed,
            self.metagraph
                .validators(self.min_validator_stake)
                .map(|(k, n)| (*k, n.stake)),
        )
    }
}

/// The challenge seed of `epoch`: `tagged_sha256("tally/challenge-seed/v1", [first block
/// hash, netuid, epoch])`.
pub fn challenge_seed(first_block_hash: &Hash32, netuid: u16, epoch: u64) -> Hash32 {
    tagged_sha256(
        b"tally/challenge-seed/v1",
        &[first_block_hash, &netuid.encode(), &epoch.encode()],
    )
}

/// Picks one of `validators` (in hotkey order) with probability proportional to stake, from
/// `seed`. `None` when there is no stake.
pub fn elect(seed: &Hash32, validators: impl Iterator<Item = (Hotkey, u64)>) -> Option<Hotkey> {
    let v: Vec<(Hotkey, u64)> = validators.filter(|(_, s)| *s > 0).collect();
    let total: u128 = v.iter().map(|(_, s)| *s as u128).sum();
    if total == 0 {
        return None;
    }
    let d = tagged_sha256(b"tally/elect/v1", &[seed]);
    let mut r = [0u8; 16];
    r.copy_from_slice(&d[..16]);
    let mut point = u128::from_le_bytes(r) % total;
    for (k, s) in v {
        if point < s as u128 {
            return Some(k);
        }
        point -= s as u128;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_is_deterministic_and_stake_weighted() {
        let a = Hotkey([1; 32]);
        let b = Hotkey([2; 32]);
        let mut wins_a = 0;
        for i in 0..400u64 {
            let seed = challenge_seed(&[0; 32], 1, i);
            let w = elect(&seed, [(a, 900), (b, 100)].into_iter()).unwrap();
            assert_eq!(w, elect(&seed, [(a, 900), (b, 100)].into_iter()).unwrap());
            if w == a {
                wins_a += 1;
            }
        }
        assert!((320..=390).contains(&wins_a), "{wins_a}");
        assert_eq!(elect(&[0; 32], [(a, 0)].into_iter()), None);
    }
}
