//! Scoring: the [`Scorer`] trait a validator measures miners through, and the devnet's
//! [`SyntheticScorer`].
//!
//! The synthetic scorer gives each miner a hidden true quality (spaced at least 0.1 apart) and
//! lets each validator observe it with its own bounded noise (at most ±0.02), deterministic per
//! `(seed, validator, run, miner)` so a restarted node measures the same thing again.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tally_core::{sha256, Hotkey, Score};

/// Measures miners for one run.
pub trait Scorer: Send + Sync {
    /// Scores `miners` for `run` (whose challenge seed is `seed`) as seen by `validator`, in
    /// order, starting no miner after `deadline`; miners it could not measure, or did not reach
    /// by then, are left out.
    fn score(
        &self,
        run: u64,
        seed: &tally_core::Hash32,
        validator: &Hotkey,
        miners: &[Hotkey],
        deadline: std::time::Instant,
    ) -> Vec<(Hotkey, Score)>;
}

/// Hidden qualities plus bounded per-validator noise.
pub struct SyntheticScorer {
    seed: u64,
    quality: BTreeMap<Hotkey, u32>,
    noise_units: u32,
}

impl SyntheticScorer {
    /// Most miners whose qualities fit 0.1 apart inside (0, 1).
    pub const MAX_MINERS: usize = 9;

    /// Qualities for `miners` from `seed`: a shuffled ladder `0.1, 0.2, …, 0.9` (0.1 apart),
    /// so the best miner is clear; noise at most `noise` (0.02 on the devnet). At most
    /// [`Self::MAX_MINERS`] miners.
    pub fn new(seed: u64, miners: &[Hotkey], noise: f64) -> Result<Self, String> {
        if miners.len() > Self::MAX_MINERS {
            return Err(format!(
                "the synthetic scorer spaces qualities 0.1 apart, so it takes at most {} miners",
                Self::MAX_MINERS
            ));
        }
        let ladder: Vec<u32> = (0..miners.len())
            .map(|i| 100_000_000 * (i as u32 + 1))
            .collect();
        Ok(Self::with_ladder(seed, miners, ladder, noise))
    }

    /// Qualities evenly spaced over [0.1, 0.9] for any number of miners (up to 4,096): for
    /// benchmarks with many miners, where 0.1 spacing cannot hold.
    pub fn dense(seed: u64, miners: &[Hotkey], noise: f64) -> Result<Self, String> {
        if miners.is_empty() || miners.len() > 4_096 {
            return Err("the dense synthetic scorer takes 1 to 4,096 miners".into());
        }
        let n = miners.len() as u64;
        let ladder: Vec<u32> = (0..n)
            .map(|i| (100_000_000 + 800_000_000 * i / n.max(2).saturating_sub(1).max(1)) as u32)
            .collect();
        Ok(Self::with_ladder(seed, miners, ladder, noise))
    }

    /// [`Self::new`] for up to [`Self::MAX_MINERS`] miners, [`Self::dense`] beyond: what a
    /// devnet node or owner uses for whatever miners the chain lists.
    pub fn for_miners(seed: u64, miners: &[Hotkey], noise: f64) -> Result<Self, String> {
        if miners.len() <= Self::MAX_MINERS {
            Self::new(seed, miners, noise)
        } else {
            Self::dense(seed, miners, noise)
        }
    }

    /// Assigns the qualities of `ladder`, shuffled by `seed`, to `miners`.
    fn with_ladder(seed: u64, miners: &[Hotkey], mut ladder: Vec<u32>, noise: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for i in (1..ladder.len()).rev() {
            let j = rng.gen_range(0..=i);
            ladder.swap(i, j);
        }
        SyntheticScorer {
            seed,
            quality: miners.iter().copied().zip(ladder).collect(),
            noise_units: (noise.clamp(0.0, 1.0) * 1e9) as u32,
        }
    }

    /// The hidden quality of `miner`.
    pub fn quality(&self, miner: &Hotkey) -> Option<Score> {
        self.quality
            .get(miner)
            .and_then(|q| Score::from_units(*q).ok())
    }

    /// All qualities.
    pub fn qualities(&self) -> Vec<(Hotkey, Score)> {
        self.quality
            .iter()
            .filter_map(|(k, q)| Score::from_units(*q).ok().map(|s| (*k, s)))
            .collect()
    }
}

impl Scorer for SyntheticScorer {
    fn score(
        &self,
        run: u64,
        _seed: &tally_core::Hash32,
        validator: &Hotkey,
        miners: &[Hotkey],
        _deadline: std::time::Instant,
    ) -> Vec<(Hotkey, Score)> {
        // instant: the deadline never cuts it
        miners
            .iter()
            .filter_map(|m| {
                let q = *self.quality.get(m)? as i64;
                let mut seed_bytes = Vec::with_capacity(8 + 8 + 64);
                seed_bytes.extend_from_slice(&self.seed.to_le_bytes());
                seed_bytes.extend_from_slice(&run.to_le_bytes());
                seed_bytes.extend_from_slice(&validator.0);
                seed_bytes.extend_from_slice(&m.0);
                let mut rng = ChaCha8Rng::from_seed(sha256(&seed_bytes));
                let n = self.noise_units as i64;
                let noisy = q + if n > 0 { rng.gen_range(-n..=n) } else { 0 };
                Score::from_units(noisy.clamp(0, 1_000_000_000) as u32)
                    .ok()
                    .map(|s| (*m, s))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_secs(3600)
    }

    #[test]
    fn ladder_spacing_noise_and_determinism() {
        let miners: Vec<Hotkey> = (0..8u8).map(|i| Hotkey([i; 32])).collect();
        let s = SyntheticScorer::new(7, &miners, 0.02).unwrap();
        assert!(SyntheticScorer::new(7, &[Hotkey([0; 32]); 10], 0.02).is_err());
        let mut q: Vec<u32> = s.qualities().iter().map(|x| x.1.units()).collect();
        q.sort_unstable();
        assert!(q.windows(2).all(|w| w[1] - w[0] >= 99_999_999), "{q:?}");
        let v = Hotkey([42; 32]);
        let a = s.score(3, &[0; 32], &v, &miners, far());
        assert_eq!(a, s.score(3, &[0; 32], &v, &miners, far()));
        for (m, x) in &a {
            let t = s.quality(m).unwrap().units() as i64;
            assert!((x.units() as i64 - t).abs() <= 20_000_000);
        }
        assert_ne!(a, s.score(4, &[0; 32], &v, &miners, far()));
    }
}
