//! Miner-hosted mode, the validator's side (epoch `e` = run `e`):
//!
//! 1. **Challenge.** The validator elected for `e` (`ChainView::elected`, from the chain-derived
//!    seed, by stake) publishes a random input tensor once, inside the challenge window, and
//!    persists that it did before publishing: a restarted node does not publish a second,
//!    conflicting record.
//! 2. **Commit snapshot.** From the block at which the hoster-commit window has closed for
//!    everyone (its end plus the skew allowance), the node reads every hoster's commit once and
//!    snapshots them in its [`tally_protocol::CommitBook`]; a commit that reaches it later never
//!    counts. A node that was not running then (no snapshot by the reveal window's close) abstains
//!    on every hoster for the run.
//! 3. **Judging.** From the block at which the hoster-reveal window has closed, it reads the
//!    challenge and the reveals, derives the epoch's input
//!    ([`tally_protocol::hosted::resolve_challenge`]), judges each reveal against the snapshot
//!    ([`tally_protocol::hosted::judge_reveal`]) and asks the hosted scorer to score the outputs
//!    that count against its own reference. A miss scores 0 with its reason; an output whose
//!    accuracy is 0 scores 0 as `inaccurate`.
//!
//! The verdicts become this node's report for the run (merged with the executed scores in
//! `Both` mode: the higher of the two per miner), signed, committed, revealed and aggregated as
//! in validator-hosted mode.

use crate::machine::Machine;
use crate::types::*;
use parity_scale_codec::Encode;
use rand::RngCore;
use std::collections::BTreeSet;
use tally_core::hash::Hash32;
use tally_core::{Hotkey, Score};
use tally_protocol::hosted::{judge_reveal, resolve_challenge, HostedMiss};
use tally_protocol::payload::{HosterReveal, Tensor};
use tally_protocol::rules::window_closed_block;
use tally_protocol::Kind;

/// The reason a hoster whose reveal counted scores 0: its output is too far from the reference.
pub const INACCURATE: &str = "inaccurate";
/// The reason a hoster scores 0 when this node's DHT refused its reveal as outside the window.
pub const LATE_REVEAL: &str = "late_reveal";

/// One run's miner-hosted state.
#[derive(Default)]
pub(crate) struct HostedRun {
    /// A commit read is out.
    pub commits_req: Option<u64>,
    /// A challenge and reveals read is out.
    pub reveals_req: Option<u64>,
    /// A hosted scoring request is out; the misses judged so far wait here.
    pub scoring: Option<Vec<HostedVerdict>>,
    /// This node's verdicts (done; abstentions are absent).
    pub verdicts: Option<Vec<HostedVerdict>>,
    /// Hosters whose reveal this node's DHT refused as late.
    pub late: BTreeSet<Hotkey>,
    /// The run's challenge was published by this node.
    pub challenge_sent: bool,
}

/// The input a refusal by this node's DHT makes, if it names a late hoster reveal: a
/// `hoster-reveal` refused as outside its window or of the wrong epoch. The one rule the tokio
/// driver and the simulator apply to what their DHT refused.
pub fn late_reveal(
    kind: Option<Kind>,
    publisher: Option<Hotkey>,
    epoch: Option<u64>,
    reason: tally_protocol::Reject,
) -> Option<Input> {
    use tally_protocol::Reject;
    match (kind, publisher, epoch, reason) {
        (
            Some(Kind::HosterReveal),
            Some(hoster),
            Some(run),
            Reject::OutsideWindow | Reject::WrongEpoch,
        ) => Some(Input::LateReveal { run, hoster }),
        _ => None,
    }
}

impl Machine {
    /// The hosters of `run`: its members without a validator permit, but the burn uid.
    pub(crate) fn hosters(&self, run: u64) -> Vec<Hotkey> {
        let burn = self.snap.as_ref().map(|s| s.params.burn_uid);
        self.runs
            .get(&run)
            .and_then(|r| r.members.as_ref())
            .map(|m| {
                m.iter()
                    .filter(|n| !n.validator_permit && Some(n.uid) != burn)
                    .map(|n| n.hotkey)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn step_hosted(&mut self, run: u64, head: u64, out: &mut Vec<Effect>) {
        if !self.cfg.execution.hosted() {
            return;
        }
        let Some(clock) = self.clock() else { return };
        let w = self.cfg.windows;
        let me = self.key.hotkey();
        // 1. the challenge, by the elected validator only, once
        let challenge_open = head >= w.challenge.first_block(&clock, run)
            && head < w.challenge.end_block(&clock, run);
        if challenge_open
            && self
                .runs
                .get(&run)
                .is_some_and(|r| !r.hosted.challenge_sent)
            && self.view().elected(run) == Some(me)
        {
            if let Some(t) = self.random_input() {
                if let Some(st) = self.runs.get_mut(&run) {
                    st.hosted.challenge_sent = true;
                }
                out.push(Effect::Persist(Persist::ChallengeSent { run }));
                out.push(Effect::Publish {
                    kind: Kind::Challenge,
                    run,
                    payload: t.encode(),
                });
            }
        }
        let hosters = self.hosters(run);
        let commit_closed = window_closed_block(&w.hoster_commit, &clock, w.skew_mb, run);
        let reveal_closed = window_closed_block(&w.hoster_reveal, &clock, w.skew_mb, run);
        let has_snapshot = self.book.has_snapshot(Kind::HosterCommit, run);
        // 2. the commit snapshot: at the commit window's close, and never once reveals count
        if !has_snapshot && head >= commit_closed && head < reveal_closed {
            let req = self.req();
            let Some(st) = self.runs.get_mut(&run) else {
                return;
            };
            if st.members.is_none() || st.hosted.commits_req.is_some() {
                return;
            }
            st.hosted.commits_req = Some(req);
            out.push(Effect::ReadHosterCommits { req, run, hosters });
            return;
        }
        // 3. judging, once the reveal window has closed
        if head < reveal_closed {
            return;
        }
        let elected = self.view().elected(run);
        let req = self.req();
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if st.members.is_none()
            || st.step.is_some()
            || st.hosted.verdicts.is_some()
            || st.hosted.reveals_req.is_some()
            || st.hosted.scoring.is_some()
        {
            return;
        }
        if !has_snapshot && st.hosted.commits_req.is_some() {
            return; // the commit read (asked for at the close) is still out: wait for it
        }
        if !has_snapshot {
            // not running when the commit window closed: abstain on every hoster
            st.hosted.verdicts = Some(Vec::new());
            self.try_sign(run, out);
            return;
        }
        st.hosted.reveals_req = Some(req);
        out.push(Effect::ReadHosted {
            req,
            run,
            elected,
            hosters,
        });
    }

    /// A fresh input of the configured shape, values in `[-1, 1)`, from the machine's RNG.
    fn random_input(&mut self) -> Option<Tensor> {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        tally_protocol::hosted::fallback_input(&seed, &self.cfg.hosted_input_shape).ok()
    }

    pub(crate) fn on_hoster_commits(
        &mut self,
        req: u64,
        run: u64,
        result: Result<Vec<(Hotkey, Hash32)>, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if st.hosted.commits_req != Some(req) {
            return;
        }
        st.hosted.commits_req = None;
        let Ok(commits) = result else {
            return; // retried on the next head, while the snapshot may still be taken
        };
        let allowed: BTreeSet<Hotkey> = self.hosters(run).into_iter().collect();
        let commits: Vec<(Hotkey, Hash32)> = commits
            .into_iter()
            .filter(|(h, _)| allowed.contains(h))
            .collect();
        if self
            .book
            .snapshot(Kind::HosterCommit, run, commits.iter().copied())
        {
            out.push(Effect::Persist(Persist::HosterSnapshot { run, commits }));
        }
    }

    pub(crate) fn on_hosted(
        &mut self,
        req: u64,
        run: u64,
        challenge: Option<Tensor>,
        reveals: Vec<(Hotkey, HosterReveal)>,
        out: &mut Vec<Effect>,
    ) {
        if self
            .runs
            .get(&run)
            .is_none_or(|st| st.hosted.reveals_req != Some(req))
        {
            return;
        }
        let hosters = self.hosters(run);
        let seed = self.seed(run);
        let (in_shape, out_shape) = (
            self.cfg.hosted_input_shape.clone(),
            self.cfg.hosted_output_shape.clone(),
        );
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        st.hosted.reveals_req = None;
        let input = seed.and_then(|s| resolve_challenge(&s, challenge.as_ref(), &in_shape).ok());
        let Some(input) = input else {
            // the seed is unknown to this node: it cannot derive the input, so it abstains
            st.hosted.verdicts = Some(Vec::new());
            self.try_sign(run, out);
            return;
        };
        let mut misses = Vec::new();
        let mut outputs = Vec::new();
        for h in hosters {
            let reveal = reveals.iter().find(|(k, _)| *k == h).map(|(_, r)| r);
            match judge_reveal(&self.book, run, &h, reveal, &out_shape) {
                Ok(()) => {
                    if let Some(r) = reveal {
                        outputs.push((h, r.output.clone()));
                    }
                }
                Err(HostedMiss::NoSnapshot) => {} // abstain
                Err(m) => misses.push(HostedVerdict {
                    hoster: h,
                    score: Score::ZERO,
                    reason: Some(m.name().to_string()),
                }),
            }
        }
        if outputs.is_empty() {
            self.finish_hosted(run, misses, out);
            return;
        }
        st.hosted.scoring = Some(misses);
        out.push(Effect::ScoreHosted {
            run,
            input,
            outputs,
        });
    }

    pub(crate) fn on_hosted_scored(
        &mut self,
        run: u64,
        result: Result<Vec<(Hotkey, Score)>, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        let Some(mut verdicts) = st.hosted.scoring.take() else {
            return;
        };
        // an error: the reference could not be computed, so the scored hosters are abstained on
        for (hoster, score) in result.unwrap_or_default() {
            if verdicts.iter().any(|v| v.hoster == hoster) {
                continue;
            }
            verdicts.push(HostedVerdict {
                hoster,
                score,
                reason: (score == Score::ZERO).then(|| INACCURATE.to_string()),
            });
        }
        self.finish_hosted(run, verdicts, out);
    }

    fn finish_hosted(&mut self, run: u64, mut verdicts: Vec<HostedVerdict>, out: &mut Vec<Effect>) {
        verdicts.sort_by_key(|v| v.hoster);
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        st.hosted.verdicts = Some(verdicts.clone());
        out.push(Effect::Persist(Persist::Hosted { run, verdicts }));
        self.try_sign(run, out);
    }

    pub(crate) fn on_late_reveal(&mut self, run: u64, hoster: Hotkey) {
        if !self.hosters(run).contains(&hoster) {
            return; // only hosters of a run this node holds: bounded by its metagraph
        }
        if let Some(st) = self.runs.get_mut(&run) {
            st.hosted.late.insert(hoster);
        }
    }

    /// This node's verdicts on `run`'s hosters as the outcome shows them (a refused late reveal
    /// named as such).
    pub(crate) fn hosted_results(&self, run: u64) -> Vec<HostedVerdict> {
        let Some(st) = self.runs.get(&run) else {
            return Vec::new();
        };
        let mut v = st.hosted.verdicts.clone().unwrap_or_default();
        for x in &mut v {
            if x.reason.as_deref() == Some(HostedMiss::NoReveal.name())
                && st.hosted.late.contains(&x.hoster)
            {
                x.reason = Some(LATE_REVEAL.to_string());
            }
        }
        v
    }
}
