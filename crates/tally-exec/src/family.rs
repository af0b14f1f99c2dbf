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

/// One submission over a run's tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// Mean task score.
    pub score: Score,
    /// Fuel used over all tasks.
    pub fuel: u64,
    /// Wall time over all tasks.
    pub wall: std::time::Duration,
    /// Tool calls over all tasks, in order.
    pub tool_calls: Vec<crate::runtime::ToolCall>,
    /// The first failure, if any task failed.
    pub error: Option<Failure>,
}

/// Runs `module` on every task under `limits` and scores it against the family's reference;
/// each task's tool calls carry the job id `task-eval={task};deployment={deployment}`.
///
/// `limits.wall` bounds the whole evaluation, not each task: a task runs with what is left of
/// it, and once it is spent the remaining tasks fail with [`Failure::Timeout`] without running.
/// Honest tasks take microseconds of it; a submission that burns wall time with operations that
/// cost little fuel (bulk memory fills, say) holds the validator for at most `limits.wall`.
pub fn evaluate(
    family: &dyn Family,
    runtime: &crate::runtime::WasmRuntime,
    module: &crate::runtime::WasmModule,
    tasks: &[Task],
    limits: &crate::runtime::Limits,
    deployment: &str,
) -> Evaluation {
    let mut e = Evaluation {
        score: Score::ZERO,
        fuel: 0,
        wall: std::time::Duration::ZERO,
        tool_calls: Vec::new(),
        error: None,
    };
    let mut total = 0u64;
    let start = std::time::Instant::now();
    for t in tasks {
        let left = limits.wall.saturating_sub(start.elapsed());
        let r = if left.is_zero() {
            crate::runtime::RunResult {
                output: Err(Failure::Timeout),
                fuel: 0,
                wall: std::time::Duration::ZERO,
                tool_calls: Vec::new(),
            }
        } else {
            runtime.run(
                module,
                &t.input,
                &crate::runtime::Limits {
                    wall: left,
                    ..*limits
                },
                &format!("task-eval={};deployment={deployment}", t.id),
            )
        };
        let s = family.score(t, &family.reference(t), &r);
        total += s.score.units() as u64;
        e.fuel += r.fuel;
        e.wall += r.wall;
        e.tool_calls.extend(r.tool_calls);
        if e.error.is_none() {
            e.error = s.error;
        }
    }
    e.score = Score::saturating_from_units(total.checked_div(tasks.len() as u64).unwrap_or(0));
    e
}
