//! Step 1, score: once the run's chain snapshot and challenge seed are known, and before its
//! reveal window opens, ask the scorer for the miners' scores (validator-hosted execution; in
//! miner-hosted mode the hosted verdicts of [`crate::hosted`] come in too, and the report is
//! signed once every part is in: [`Machine::try_sign`]) (by the scoring deadline, the middle
//! of the commitment window: miners it has not reached by then are left out); sign the report with a fresh salt
//! and persist it (the store keeps the first report of a run for good). A scorer that could not
//! evaluate the run yields no report: the node publishes nothing that would count.

use crate::machine::Machine;
use crate::types::*;
use parity_scale_codec::Encode;
use rand::RngCore;
use tally_core::{Hotkey, ReportBody, Score, ScoreReport};

impl Machine {
    pub(crate) fn step_score(&mut self, run: u64, head: u64, out: &mut Vec<Effect>) {
        let Some(clock) = self.clock() else { return };
        if head >= tally_protocol::rules::reveal_open_block(&clock, &self.cfg.windows, run) {
            return;
        }
        let Some(seed) = self.seed(run) else { return };
        let Some(snap) = &self.snap else { return };
        let burn = snap.params.burn_uid;
        let snap_block_ms = snap.params.block_ms;
        let members = snap.members.clone();
        let st = self.runs.entry(run).or_default();
        if st.step.is_some() || st.scoring || st.unscorable.is_some() {
            return;
        }
        let miners: Vec<Hotkey> = members
            .iter()
            .filter(|n| !n.validator_permit && n.uid != burn)
            .map(|n| n.hotkey)
            .collect();
        st.scoring = true;
        if st.members.is_none() {
            st.members = Some(members.clone());
            out.push(Effect::Persist(Persist::Members { run, members }));
        }
        if !self.cfg.execution.executes() {
            // miner-hosted only: the report waits for the hosted verdicts (already in after a
            // restart that came between judging and signing)
            st.exec = Some(Vec::new());
            self.try_sign(run, out);
            return;
        }
        let deadline =
            tally_protocol::rules::scoring_deadline_block(&clock, &self.cfg.windows, run);
        // the deadline block's time as the chain's clock runs: from the last head seen
        let block_ms = snap_block_ms.max(1);
        let deadline_ms = match self.head {
            Some(h) => h
                .timestamp_ms
                .saturating_add(deadline.saturating_sub(h.number).saturating_mul(block_ms)),
            None => 0,
        };
        out.push(Effect::Score {
            run,
            seed,
            miners,
            deadline_ms,
        });
    }

    pub(crate) fn on_scored(
        &mut self,
        run: u64,
        result: Result<Vec<(Hotkey, Score)>, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if !st.scoring || st.step.is_some() || st.exec.is_some() {
            return;
        }
        match result {
            Ok(scores) => st.exec = Some(scores),
            // both families: the hosters can still be scored, so the report goes on without
            // executed scores (its miners are abstained on)
            Err(_) if self.cfg.execution.hosted() => st.exec = Some(Vec::new()),
            Err(e) => {
                st.scoring = false;
                st.unscorable = Some(e);
                return;
            }
        }
        self.try_sign(run, out);
    }

    /// Signs `run`'s report once every part the execution mode needs is in: the executed
    /// scores (validator-hosted) and this node's hosted verdicts (miner-hosted); in `Both` mode
    /// a miner's score is the higher of its two.
    pub(crate) fn try_sign(&mut self, run: u64, out: &mut Vec<Effect>) {
        let execution = self.cfg.execution;
        let expected = self.expected_miners(run);
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if !st.scoring || st.step.is_some() {
            return;
        }
        let hosted = if execution.hosted() {
            match &st.hosted.verdicts {
                Some(v) => v.clone(),
                None => return,
            }
        } else {
            Vec::new()
        };
        let Some(exec) = (if execution.executes() {
            st.exec.clone()
        } else {
            Some(Vec::new())
        }) else {
            return;
        };
        let mut merged: std::collections::BTreeMap<Hotkey, Score> = exec.into_iter().collect();
        for v in hosted {
            // both families: a member that committed nothing is not hosting this epoch; its 0
            // would override an abstention of the executed scorer (a miner it did not reach)
            if execution.executes()
                && v.reason.as_deref() == Some(tally_protocol::hosted::HostedMiss::NoCommit.name())
            {
                continue;
            }
            let e = merged.entry(v.hoster).or_insert(v.score);
            *e = (*e).max(v.score);
        }
        let scores: Vec<(Hotkey, Score)> = merged.into_iter().collect();
        let mut salt = [0u8; 32];
        self.rng.fill_bytes(&mut salt);
        let (netuid, family, me) = (self.cfg.netuid, self.cfg.family.clone(), self.key.hotkey());
        let signed = (|| {
            // a validator that evaluated no miner publishes nothing: an empty report would count
            // toward quorum without having measured anything
            if scores.is_empty() && expected > 0 {
                return Err("no miner could be evaluated".to_string());
            }
            let body = ReportBody::new(netuid, run, family, me, scores.clone())
                .map_err(|e| e.to_string())?;
            ScoreReport::sign(body, salt, &self.key).map_err(|e| e.to_string())
        })();
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        st.scoring = false;
        match signed {
            Ok(r) => {
                let wire = r.to_bytes();
                st.report = Some(r);
                st.wire = Some(wire.clone());
                st.step = Some(Step::Scored);
                out.push(Effect::Persist(Persist::OwnReport {
                    run,
                    wire,
                    scores: scores.encode(),
                }));
            }
            Err(e) => st.unscorable = Some(e),
        }
    }

    /// How many miners `run`'s metagraph lists (members without a permit, but the burn uid).
    fn expected_miners(&self, run: u64) -> usize {
        self.hosters(run).len()
    }
}
