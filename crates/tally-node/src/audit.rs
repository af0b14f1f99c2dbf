//! The audit: re-derive each run from signed evidence and the chain, and hold the result
//! against the weights validators set on chain.
//!
//! For every run it checks each report's signature and its commitment on chain (made inside the
//! run's commit window), re-checks every equivocation proof and leaves those validators out,
//! recomputes the stake-weighted consensus with DESIGN.md's defaults and the incumbent the chain
//! held then, and compares the resulting weights with those each validator set for that run
//! (in the window between the run's reveal close and the next one's). Any evidence that fails
//! its signature, or any weights that differ, make the run's verdict a mismatch.

use std::collections::{BTreeMap, BTreeSet};
use tally_chain::{Chain, ChainError, WeightsSet};
use tally_consensus::equivocation::Equivocation;
use tally_consensus::{decide_run, Params, RunInput};
use tally_core::{Hotkey, ScoreReport};
use tally_protocol::rules::{
    counting_commitment, incumbent_block, is_eligible, metagraph_block, reveal_close_block,
};
use tally_protocol::{EpochClock, PhaseWindows};
use tally_validator::{check_report, uid_weights, Exclusion, Member};

/// One run's verdict.
#[derive(Clone, Debug)]
pub struct RunVerdict {
    /// The run.
    pub run: u64,
    /// Whether everything held.
    pub ok: bool,
    /// What did not.
    pub problems: Vec<String>,
    /// Reports that counted.
    pub accepted: usize,
    /// `(validator, reason)` left out.
    pub excluded: Vec<(Hotkey, String)>,
    /// The re-derived winner.
    pub winner: Option<Hotkey>,
    /// Whether quorum was met.
    pub quorum_met: bool,
    /// Validators whose weights on chain were checked.
    pub weights_checked: usize,
}

/// Evidence: named report files and named proofs.
#[derive(Default)]
pub struct Evidence {
    /// `(name, wire bytes)` of signed reports.
    pub reports: Vec<(String, Vec<u8>)>,
    /// `(name, bytes)` of equivocation proofs.
    pub proofs: Vec<(String, Vec<u8>)>,
}

/// Audits `runs` (all runs the evidence names when `None`).
pub fn audit(
    chain: &dyn Chain,
    netuid: u16,
    ev: &Evidence,
    only: Option<u64>,
) -> Result<Vec<RunVerdict>, ChainError> {
    let params = chain.params(netuid)?;
    let mg = chain.metagraph(netuid)?;
    let head = mg.block;
    let clock = EpochClock {
        length: params.epoch_length,
        offset: params.epoch_offset,
    };
    let windows = PhaseWindows::default();
    let mut problems_any: Vec<String> = Vec::new();

    // reports by run; files that fail their signature are problems in every run they claim
    let mut by_run: BTreeMap<u64, Vec<(String, ScoreReport)>> = BTreeMap::new();
    for (name, bytes) in &ev.reports {
        match ScoreReport::from_bytes(bytes) {
            Ok(r) if r.verify().is_ok() => by_run
                .entry(r.body().run)
                .or_default()
                .push((name.clone(), r)),
            Ok(r) => {
                let msg = format!("{name}: signature does not verify (tampered evidence)");
                by_run.entry(r.body().run).or_default();
                problems_any.push(msg);
            }
            Err(e) => problems_any.push(format!("{name}: not a score report ({e})")),
        }
    }
    let mut equivocators: BTreeMap<u64, BTreeSet<Hotkey>> = BTreeMap::new();
    for (name, bytes) in &ev.proofs {
        match Equivocation::from_bytes(bytes) {
            Ok(p) => {
                equivocators
                    .entry(p.first.body().run)
                    .or_default()
                    .insert(p.validator());
            }
            Err(e) => problems_any.push(format!("{name}: equivocation proof does not hold ({e})")),
        }
    }
    let runs: Vec<u64> = match only {
        Some(r) => vec![r],
        None => by_run.keys().copied().collect(),
    };

    // weights history of every validator
    let mut history: Vec<WeightsSet> = Vec::new();
    for n in mg.neurons.iter().filter(|n| n.validator_permit) {
        history.extend(chain.weights_history(netuid, &n.hotkey)?);
    }

    let mut out = Vec::new();
    for run in runs {
        // the metagraph and incumbent as of the blocks the run fixes: what every honest
        // validator read (tally_protocol::rules)
        let mg = chain.metagraph_at(netuid, metagraph_block(&clock, run).min(head))?;
        let eligible: Vec<_> = mg
            .neurons
            .iter()
            .filter(|n| is_eligible(n.validator_permit, n.stake, params.min_validator_stake))
            .cloned()
            .collect();
        let members: Vec<Member> = crate::validator::members_of(&mg);
        let mut problems = problems_any.clone();
        let mut excluded = Vec::new();
        let mut accepted: BTreeMap<Hotkey, ScoreReport> = BTreeMap::new();
        let eq = equivocators.get(&run).cloned().unwrap_or_default();
        for (name, r) in by_run.get(&run).cloned().unwrap_or_default() {
            let v = r.body().validator;
            if eq.contains(&v) {
                continue;
            }
            let hist = chain.commitments(netuid, &v)?;
            let commitment = counting_commitment(
                hist.iter().map(|c| (c.block, &c.data[..])),
                run,
                &clock,
                &windows,
            );
            let family = r.body().family_id.clone();
            match check_report(r.clone(), &v, netuid, run, &family, commitment.as_ref()) {
                Ok(r) => {
                    if let Some(prev) = accepted.insert(v, r.clone()) {
                        if prev.signed.body_bytes() != r.signed.body_bytes() {
                            problems.push(format!(
                                "{name}: a second, different report by {v} for run {run}"
                            ));
                        }
                    }
                }
                Err(Exclusion::CommitmentMismatch) => problems.push(format!(
                    "{name}: does not hash to {v}'s commitment on chain"
                )),
                Err(Exclusion::NoCommitment) => problems.push(format!(
                    "{name}: {v} has no commitment on chain for run {run}"
                )),
                Err(x) => problems.push(format!("{name}: refused ({})", x.name())),
            }
        }
        for v in &eq {
            excluded.push((*v, Exclusion::Equivocation.name().to_string()));
        }
        for n in &eligible {
            if !accepted.contains_key(&n.hotkey) && !eq.contains(&n.hotkey) {
                excluded.push((n.hotkey, "no_valid_report_in_evidence".to_string()));
            }
        }
        let incumbent = chain
            .winner_at(netuid, incumbent_block(&clock, &windows, run).min(head))?
            .and_then(|u| mg.by_uid(u))
            .map(|n| n.hotkey);
        let cutoff = reveal_close_block(&clock, &windows, run);
        let input = RunInput {
            eligible_stake: eligible.iter().map(|n| n.stake as u128).sum(),
            reports: accepted
                .iter()
                .filter_map(|(v, r)| Some((mg.by_hotkey(v)?.stake, r.body().scores.to_vec())))
                .collect(),
            incumbent,
        };
        let o = decide_run(&input, &Params::default(), 1)
            .map_err(|e| ChainError::Malformed(e.to_string()))?;
        let expected = uid_weights(&o.weights, &members, params.burn_uid);
        // weights set for this run: after its reveal window closed, before the next one's did
        let (lo, hi) = (cutoff, reveal_close_block(&clock, &windows, run + 1));
        let mut checked = 0;
        for w in history.iter().filter(|w| w.block >= lo && w.block < hi) {
            checked += 1;
            match &expected {
                Some(e) if *e == w.weights => {}
                Some(e) => problems.push(format!(
                    "{} set {:?} at block {} for run {run}; the evidence gives {:?}",
                    w.validator, w.weights, w.block, e
                )),
                None => problems.push(format!(
                    "{} set weights at block {} although run {run} missed quorum",
                    w.validator, w.block
                )),
            }
        }
        if expected.is_some() && checked == 0 {
            problems.push(format!("no validator set weights for run {run}"));
        }
        out.push(RunVerdict {
            run,
            ok: problems.is_empty(),
            problems,
            accepted: accepted.len(),
            excluded,
            winner: o.winner,
            quorum_met: o.quorum_met,
            weights_checked: checked,
        });
    }
    Ok(out)
}
