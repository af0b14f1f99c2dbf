//! The invariants every simulated run must keep, checked after the world has run:
//!
//! 1. honest validators that reach quorum for a run set identical weights (and name the same
//!    winner);
//! 2. when byzantine stake is below one third of the eligible stake (DESIGN.md's trust
//!    assumption), every consensus score lies within the lowest and highest honest score for
//!    that miner;
//! 3. no report is accepted unless its author made a matching commitment on chain before the
//!    first block at which any honest node served or published a report for that run (checked
//!    against the chain and the trace, independently of the rule the machine applies);
//! 4. every equivocation (two different reports a validator made available for one run) is
//!    proven and excluded by every honest validator that aggregated the run;
//! 5. a quorum miss holds: no weights, and the incumbent stays the winner;
//! 6. honest validators that aggregated a run accepted the same reports and excluded the same
//!    validators (split views converge at the exchange).

use crate::world::{World, NETUID};
use std::collections::{BTreeMap, BTreeSet};
use tally_chain::Chain;
use tally_core::{Hotkey, ScoreReport};
use tally_protocol::rules::commitment_data;
use tally_validator::RunOutcome;

pub(crate) fn check(w: &World) -> Vec<String> {
    let mut v = Vec::new();
    let epochs = w.config().epochs;
    let honest: Vec<usize> = (0..w.nodes.len())
        .filter(|i| w.nodes[*i].strategy.is_none())
        .collect();
    let total: u128 = w.stakes.iter().map(|s| *s as u128).sum();
    let byz: u128 = (0..w.nodes.len())
        .filter(|i| w.nodes[*i].strategy.is_some())
        .map(|i| w.stakes[i] as u128)
        .sum();
    let trust_holds = byz * 3 < total;
    let hk = |i: usize| w.nodes[i].key.hotkey();

    for run in 0..epochs {
        let outs: Vec<(usize, &RunOutcome)> = honest
            .iter()
            .filter_map(|i| w.nodes[*i].store.outcomes.get(&run).map(|o| (*i, o)))
            .collect();
        // 1. identical weights among those that reached quorum
        let met: Vec<&(usize, &RunOutcome)> = outs.iter().filter(|(_, o)| o.quorum_met).collect();
        if let Some((i0, o0)) = met.first() {
            for (i, o) in &met[1..] {
                if o.uid_weights != o0.uid_weights || o.winner != o0.winner {
                    v.push(format!(
                        "run {run}: honest validators {i0} and {i} reached quorum but decided {:?} and {:?}",
                        o0.uid_weights, o.uid_weights
                    ));
                }
            }
        }
        // 2. consensus within the honest range
        if trust_holds {
            let mut range: BTreeMap<Hotkey, (u32, u32)> = BTreeMap::new();
            for (_, scores) in w
                .honest_scores
                .get(&run)
                .map(|x| x.as_slice())
                .unwrap_or(&[])
            {
                for (m, s) in scores {
                    let e = range.entry(*m).or_insert((u32::MAX, 0));
                    e.0 = e.0.min(s.units());
                    e.1 = e.1.max(s.units());
                }
            }
            for (i, o) in outs.iter().filter(|(_, o)| o.quorum_met) {
                for (m, c) in &o.consensus {
                    let units = (c * 1e9).round() as u32;
                    match range.get(m) {
                        Some((lo, hi)) if units >= *lo && units <= *hi => {}
                        r => v.push(format!(
                            "run {run}: validator {i}'s consensus {c} for miner {m} is outside the honest range {r:?}"
                        )),
                    }
                }
            }
        }
        // 3. every accepted report committed before any honest reveal
        let first = w.first_reveal.get(&run).copied().unwrap_or(u64::MAX);
        let mut checked: BTreeSet<Hotkey> = BTreeSet::new();
        for (i, o) in &outs {
            for a in &o.accepted {
                if !checked.insert(*a) {
                    continue;
                }
                let Some(j) = (0..w.nodes.len()).find(|j| hk(*j) == *a) else {
                    continue;
                };
                let commits = w.chain.commitments(NETUID, a).unwrap_or_default();
                let shown = w.nodes[j].shown.get(&run).cloned().unwrap_or_default();
                let ok = shown.iter().any(|wire| {
                    ScoreReport::from_bytes(wire).is_ok_and(|r| {
                        let data = commitment_data(run, &r.commitment());
                        commits.iter().any(|c| c.data == data && c.block < first)
                    })
                });
                if !ok {
                    v.push(format!(
                        "run {run}: validator {i} accepted {a}'s report, which has no commitment on chain before the first honest reveal (block {first})"
                    ));
                }
            }
        }
        // 4. equivocations proven and excluded by every honest aggregator
        for (j, n) in w.nodes.iter().enumerate() {
            let shown = n.shown.get(&run).map(|s| s.len()).unwrap_or(0);
            if shown < 2 {
                continue;
            }
            let distinct: BTreeSet<Vec<u8>> = n
                .shown
                .get(&run)
                .into_iter()
                .flatten()
                .filter_map(|wire| ScoreReport::from_bytes(wire).ok())
                .filter(|r| r.body().validator == hk(j))
                .map(|r| r.signed.body_bytes().to_vec())
                .collect();
            if distinct.len() < 2 {
                continue;
            }
            for (i, o) in &outs {
                let why = o.excluded_set().get(&hk(j)).cloned();
                if why.as_deref() != Some("equivocation") {
                    v.push(format!(
                        "run {run}: validator {j} equivocated but honest validator {i} gave {why:?}"
                    ));
                }
            }
        }
        // 6. the same accepted set and exclusions
        if let Some((i0, o0)) = outs.first() {
            let key = |o: &RunOutcome| {
                let a: BTreeSet<Hotkey> = o.accepted.iter().copied().collect();
                (a, o.excluded_set())
            };
            let k0 = key(o0);
            for (i, o) in &outs[1..] {
                if key(o) != k0 {
                    v.push(format!(
                        "run {run}: honest validators {i0} and {i} accepted different sets: {:?} / {:?}",
                        k0,
                        key(o)
                    ));
                }
            }
        }
        // 5. a quorum miss holds
        for (i, o) in outs.iter().filter(|(_, o)| !o.quorum_met) {
            if o.uid_weights.is_some() || w.nodes[*i].weights_runs.contains(&run) {
                v.push(format!(
                    "run {run}: validator {i} missed quorum but set weights"
                ));
            }
            if o.winner != o.incumbent {
                v.push(format!(
                    "run {run}: validator {i} missed quorum but did not hold the incumbent"
                ));
            }
        }
    }
    v
}
