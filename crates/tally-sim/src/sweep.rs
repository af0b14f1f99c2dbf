//! Many seeds: each seed's subnet mixes byzantine strategies (below the stated stake threshold)
//! and faults unless they are fixed, runs, and is checked; one hash covers every seed's trace.
//! With `hosters`, every subnet also runs that many hosters of miner-hosted mode, cycling
//! through [`HosterStrategy::ALL`].

use crate::byzantine::Strategy;
use crate::hoster::HosterStrategy;
use crate::world::{Faults, SimConfig, SimResult, World};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tally_core::hash::Hash32;

/// A sweep.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Seeds to run.
    pub seeds: u64,
    /// The first seed.
    pub first_seed: u64,
    /// Validators per subnet.
    pub validators: usize,
    /// Miners per subnet.
    pub miners: usize,
    /// Runs per subnet.
    pub epochs: u64,
    /// Fixed strategies for the last validators; `None` mixes every strategy per seed.
    pub byzantine: Option<Vec<Strategy>>,
    /// Fixed faults; `None` mixes loss, partitions and crashes per seed.
    pub faults: Option<Faults>,
    /// Hosters per subnet, their strategies cycling through [`HosterStrategy::ALL`] (honest,
    /// noisy, lazy, copycat, no-reveal, mismatch, late, honest, ...); 0 for validator-hosted
    /// mode only.
    pub hosters: usize,
}

/// `n` hosters' strategies: [`HosterStrategy::ALL`], cycled.
pub fn hoster_strategies(n: usize) -> Vec<HosterStrategy> {
    HosterStrategy::ALL
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// The configuration seed `seed` of a sweep runs.
pub fn seed_config(c: &SweepConfig, seed: u64) -> SimConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a11_7a11);
    let mut s = SimConfig::new(seed);
    s.validators = c.validators;
    s.miners = c.miners;
    s.epochs = c.epochs;
    s.byzantine = match &c.byzantine {
        Some(b) => b.clone(),
        None => {
            let n = rng.gen_range(0..=(c.validators.saturating_sub(1) / 3).max(1));
            (0..n)
                .map(|_| Strategy::ALL[rng.gen_range(0..Strategy::ALL.len())])
                .collect()
        }
    };
    s.faults = c.faults.unwrap_or_else(|| Faults {
        loss_permille: [0, 0, 50, 100][rng.gen_range(0..4)],
        partitions: rng.gen_bool(0.5),
        crashes: rng.gen_bool(0.5),
        abstain: rng.gen_bool(0.5),
    });
    s.hosters = hoster_strategies(c.hosters);
    s
}

/// The command that replays one seed of a sweep (`--hosters N` when it has hosters: a sweep's
/// hosters always cycle through [`HosterStrategy::ALL`]).
pub fn replay_command(s: &SimConfig) -> String {
    let byz: Vec<&str> = s.byzantine.iter().map(|b| b.name()).collect();
    let hosters = if s.hosters.is_empty() {
        String::new()
    } else {
        format!(" --hosters {}", s.hosters.len())
    };
    format!(
        "tally sim --seeds 1 --first-seed {} --validators {} --miners {} --epochs {} --byzantine '{}' --faults '{}'{hosters}",
        s.seed,
        s.validators,
        s.miners,
        s.epochs,
        byz.join(","),
        s.faults.describe()
    )
}

/// What a sweep found.
#[derive(Clone, Debug)]
pub struct SweepResult {
    /// Per seed: its configuration and result.
    pub runs: Vec<(SimConfig, SimResult)>,
    /// SHA-256 over every seed's trace hash, in seed order.
    pub trace: Hash32,
}

impl SweepResult {
    /// Violations over all seeds.
    pub fn violations(&self) -> usize {
        self.runs.iter().map(|(_, r)| r.violations.len()).sum()
    }
}

/// Runs every seed; `progress` is called after each.
pub fn sweep(
    c: &SweepConfig,
    mut progress: impl FnMut(&SimConfig, &SimResult),
) -> Result<SweepResult, String> {
    let mut h = Sha256::new();
    let mut runs = Vec::new();
    for seed in c.first_seed..c.first_seed.saturating_add(c.seeds) {
        let s = seed_config(c, seed);
        let r = World::new(s.clone())?.run();
        h.update(r.trace);
        progress(&s, &r);
        runs.push((s, r));
    }
    Ok(SweepResult {
        runs,
        trace: h.finalize().into(),
    })
}
