//! The machine's settings.

use tally_consensus::{Params, WeightMode};
use tally_core::{FamilyId, Fraction};
use tally_protocol::PhaseWindows;

/// Which miners a subnet scores, and how (a per-subnet setting every validator shares).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Execution {
    /// Validator-hosted: the validator executes miners' submissions itself.
    #[default]
    Validator,
    /// Miner-hosted: hosters commit and reveal inference on the epoch's challenge; the
    /// validator scores what was revealed against its own reference.
    Hosted,
    /// Both families side by side: a miner's score is the higher of the two.
    Both,
}

impl Execution {
    /// Whether the validator executes submissions.
    pub fn executes(self) -> bool {
        matches!(self, Execution::Validator | Execution::Both)
    }
    /// Whether the validator scores hosters.
    pub fn hosted(self) -> bool {
        matches!(self, Execution::Hosted | Execution::Both)
    }
    /// From its config name (`validator`, `hosted`, `both`).
    pub fn parse(s: &str) -> Option<Execution> {
        match s {
            "validator" => Some(Execution::Validator),
            "hosted" => Some(Execution::Hosted),
            "both" => Some(Execution::Both),
            _ => None,
        }
    }
}

/// Settings of one validator.
#[derive(Clone, Debug)]
pub struct Config {
    /// The subnet.
    pub netuid: u16,
    /// The task family scored.
    pub family: FamilyId,
    /// Weight mode.
    pub mode: WeightMode,
    /// Aggregation parameters.
    pub params: Params,
    /// Phase windows of the network.
    pub windows: PhaseWindows,
    /// Runs kept in the divergence window (shadow mode).
    pub divergence_window: usize,
    /// Whether an owner is configured to ask for its pick (owner and shadow modes).
    pub has_owner: bool,
    /// From which share of the reveal window peers' reports are collected (default 0.3: late
    /// enough that peers have revealed, early enough to retry before the window closes).
    pub collect_from: Fraction,
    /// Runs kept in memory (older ones are finished or abandoned).
    pub keep_runs: usize,
    /// Test-only: accept the latest commitment a hotkey made for a run at any block, as the
    /// first version did (the late-commitment hole), so the simulator's invariants can be shown
    /// to catch a broken rule. Honoured only in builds with the `test-switches` feature (tests);
    /// a shipped binary ignores it.
    pub broken_any_commitment: bool,
    /// Which miners are scored, and how.
    pub execution: Execution,
    /// Miner-hosted mode: the shape of the epoch's input (the reference model's input).
    pub hosted_input_shape: Vec<u32>,
    /// Miner-hosted mode: the shape of a hoster's output (the reference model's output).
    pub hosted_output_shape: Vec<u32>,
}

impl Config {
    /// DESIGN.md's defaults for `netuid` and `family`.
    pub fn new(netuid: u16, family: FamilyId, mode: WeightMode) -> Config {
        Config {
            netuid,
            family,
            mode,
            params: Params::default(),
            windows: PhaseWindows::default(),
            divergence_window: 100,
            has_owner: false,
            collect_from: Fraction::saturating_from_units(300_000_000),
            keep_runs: 4,
            broken_any_commitment: false,
            execution: Execution::Validator,
            hosted_input_shape: vec![64],
            hosted_output_shape: vec![16],
        }
    }
}
