//! Task families.
//!
//! A family turns the challenge seed into tasks (so no one can pick them after seeing the
//! miners), computes its own reference answer for each (never the owner's), and scores an
//! answer together with what the sandbox measured. Cost enters a score only through fuel,
//! which every validator measures identically; wall time is reported, never scored.

use crate::runtime::{Failure, RunResult};
use tally_core::Score;

/// One task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Its index within the run.
    pub id: u64,
    /// The input bytes given to the submission.
    pub input: Vec<u8>,
}

/// What a run of one task measured.
pub type Measured = RunResult;

/// A score and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scored {
    /// The score.
    pub score: Score,
    /// Accuracy part (fixed point).
    pub accuracy: Score,
    /// Efficiency part (fixed point).
    pub efficiency: Score,
    /// The failure, if the run failed.
    pub error: Option<Failure>,
}

/// A task family.
pub trait Family: Send + Sync {
    /// The family id (as in score reports and rosters).
    fn id(&self) -> &'static str;
    /// Host functions of module `tally` the family offers to submissions.
    fn imports(&self) -> &'static [&'static str];
    /// `count` tasks from the challenge seed.
    fn tasks(&self, seed: &[u8; 32], count: usize) -> Vec<Task>;
    /// The validator's own reference answer.
    fn reference(&self, task: &Task) -> Vec<u8>;
    /// Scores a measured run against the reference.
    fn score(&self, task: &Task, reference: &[u8], measured: &Measured) -> Scored;
}
