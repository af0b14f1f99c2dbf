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
//!    proven and excluded by every honest validator that aggregated the run. A report is made
//!    available when it is published in the DHT, or an honest validator received it (from its
//!    author or relayed) and still held it after the run's reveal close: one served only to
//!    byzantine peers, or held only by an honest node that crashed before the close (the
//!    machine keeps no collected report across a restart), could not be proven by anyone;
//! 5. a quorum miss holds: no weights, and the incumbent stays the winner;
//! 6. honest validators that aggregated a run accepted the same reports and excluded the same
//!    validators (split views converge at the exchange);
//! 7. miner-hosted mode: no hoster whose strategy must score 0
//!    ([`crate::HosterStrategy::scores_zero`]) gets a score above 0 in any honest validator's
//!    report, and the DHT holds no `hoster-commit` of a copycat nor a `hoster-reveal` of a late
//!    hoster (the records every store must refuse never entered);
//! 8. miner-hosted mode: each hoster's score is the same in every honest report of a run that
//!    scores it, and an honest hoster's is exactly 1.0.

use crate::hoster::HosterStrategy;
use crate::world::{World, NETUID};
use std::collections::{BTreeMap, BTreeSet};
use tally_chain::Chain;
use tally_core::{Hotkey, Score, ScoreReport};
use tally_protocol::rules::commitment_data;
use tally_protocol::Kind;
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
            let shown = n.available.get(&run).map(|s| s.len()).unwrap_or(0);
            if shown < 2 {
                continue;
            }
            let distinct: BTreeSet<Vec<u8>> = n
                .available
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
        hosted(w, run, &mut v);
    }
    refused_records(w, &mut v);
    v
}

/// Invariants 7 (scores) and 8 over the honest reports of `run`.
fn hosted(w: &World, run: u64, v: &mut Vec<String>) {
    let reports = w
        .honest_scores
        .get(&run)
        .map(|x| x.as_slice())
        .unwrap_or(&[]);
    for (j, h) in w.hosters.iter().enumerate() {
        let hk = h.key.hotkey();
        let name = h.strategy.name();
        let scores: Vec<(Hotkey, Score)> = reports
            .iter()
            .filter_map(|(validator, scores)| {
                scores
                    .iter()
                    .find(|(m, _)| *m == hk)
                    .map(|(_, s)| (*validator, *s))
            })
            .collect();
        // 7. the strategies that must score 0 do
        if h.strategy.scores_zero() {
            for (validator, s) in scores.iter().filter(|(_, s)| *s > Score::ZERO) {
                v.push(format!(
                    "run {run}: honest validator {validator} scored {name} hoster {j} ({hk}) {s:?}, above 0"
                ));
            }
        }
        // 8. one score per hoster and run; 1.0 for an honest one
        let distinct: BTreeSet<Score> = scores.iter().map(|(_, s)| *s).collect();
        if distinct.len() > 1 {
            v.push(format!(
                "run {run}: honest validators gave {name} hoster {j} ({hk}) different scores: {scores:?}"
            ));
        }
        if h.strategy == HosterStrategy::Honest {
            for (validator, s) in scores.iter().filter(|(_, s)| *s != Score::ONE) {
                v.push(format!(
                    "run {run}: honest validator {validator} scored honest hoster {j} ({hk}) {s:?}, not 1.0"
                ));
            }
        }
    }
}

/// Invariant 7 (records): no copycat's commit and no late hoster's reveal in the DHT.
fn refused_records(w: &World, v: &mut Vec<String>) {
    for (j, h) in w.hosters.iter().enumerate() {
        let kind = match h.strategy {
            HosterStrategy::Copycat => Kind::HosterCommit,
            HosterStrategy::Late => Kind::HosterReveal,
            _ => continue,
        };
        let hk = h.key.hotkey();
        for r in w.dht.values() {
            let b = r.body();
            if b.kind == kind && b.publisher == hk {
                v.push(format!(
                    "the DHT holds a {} of {} hoster {j} ({hk}) for epoch {}: it should have been refused",
                    kind.name(),
                    h.strategy.name(),
                    b.epoch
                ));
            }
        }
    }
}
