//! Tally's aggregation core: pure functions from signed, verified reports to a run's outcome.
//!
//! No I/O, no clocks, no randomness: the node, the simulator and the fuzzers feed the same
//! inputs and get the same decisions. Every comparison that decides a winner is in fixed point
//! (scores and fractions are `u32` with 1.0 = 1_000_000_000, stakes are integer `u64`, sums
//! `u128`).
//!
//! * [`median`]: the kappa-weighted median per miner with the `abstain` / `zero` missing-score
//!   policies and the coverage rule, over dense miner indices; fast enough for 256 validators x
//!   4,096 miners in a few milliseconds.
//! * [`run`]: quorum, winner-take-all with hysteresis, proportional weights and burn, for keyed
//!   input ([`run::decide_run`]).
//! * [`mode`]: the weight-mode decision (owner / shadow / decentralized).
//! * [`divergence`]: top-1 agreement, Spearman rank correlation, top-k overlap and the windowed
//!   tracker persisted as bytes.
//! * [`equivocation`]: self-contained proofs that one hotkey signed two different reports for one
//!   run.
#![forbid(unsafe_code)]

pub mod divergence;
pub mod equivocation;
pub mod median;
pub mod mode;
pub mod run;

pub use median::{consensus_scores, MinerIdx, MissingPolicy, ValidatorScores};
pub use mode::{decide_weights, ModeDecision, WeightMode};
pub use run::{decide_run, winner_take_all, Params, RunInput, RunOutcome, WeightPolicy, Weights};

use thiserror::Error;

/// Errors of the aggregation core: all of them are caller mistakes in the input's shape.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConsensusError {
    /// A validator's score list is not strictly ascending by miner index.
    #[error("scores of validator #{validator} are not sorted by miner or repeat a miner")]
    UnsortedScores { validator: usize },
    /// A miner index at or beyond the number of miners.
    #[error(
        "validator #{validator} scores miner index {miner}, but there are only {n_miners} miners"
    )]
    MinerOutOfRange {
        validator: usize,
        miner: u32,
        n_miners: usize,
    },
    /// A parameter outside its range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam { name: &'static str, reason: String },
    /// Persisted bytes that do not decode.
    #[error("corrupt persisted state: {0}")]
    Corrupt(String),
}
