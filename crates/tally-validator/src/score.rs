//! Step 1, score: once the run's chain snapshot and challenge seed are known, and before its
//! reveal window opens, ask the scorer for the miners' scores (by the scoring deadline, the middle
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
        let mut salt = [0u8; 32];
        self.rng.fill_bytes(&mut salt);
        let (netuid, family, me) = (self.cfg.netuid, self.cfg.family.clone(), self.key.hotkey());
        let burn = self.snap.as_ref().map(|s| s.params.burn_uid);
        let expected = self
            .runs
            .get(&run)
            .and_then(|st| st.members.as_ref())
            .map(|m| {
                m.iter()
                    .filter(|n| !n.validator_permit && Some(n.uid) != burn)
                    .count()
            })
            .unwrap_or(0);
        let signed = result.and_then(|scores| {
            // a validator that evaluated no miner publishes nothing: an empty report would count
            // toward quorum without having measured anything
            if scores.is_empty() && expected > 0 {
                return Err("no miner could be evaluated".to_string());
            }
            let body = ReportBody::new(netuid, run, family, me, scores.clone())
                .map_err(|e| e.to_string())?;
            let r = ScoreReport::sign(body, salt, &self.key).map_err(|e| e.to_string())?;
            Ok((r, scores))
        });
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if !st.scoring || st.step.is_some() {
            return;
        }
        st.scoring = false;
        match signed {
            Ok((r, scores)) => {
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
}
