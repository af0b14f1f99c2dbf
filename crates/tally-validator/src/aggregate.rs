//! Step 5, aggregate: gather what the decision needs — from the collect block on, the
//! commitments made on chain for the run and the incumbent (both fixed once the reveal window
//! has opened); from the block at which the reveal window has closed, the exchange (after any
//! collect round still out: rounds asking every peer for the reports and proofs it holds, and
//! for its own report when missing, until a quiet round; see [`crate::collect`]), and the
//! incumbent, and in owner or shadow mode the owner's pick — each retried on a later head when
//! its call fails. A node that restarted and resumed at or after the close sits the run out
//! (no outcome, no weights). Then verify every report ([`crate::verify::judge`]) against the
//! commitment that counts, decide the run (`tally_consensus::decide_run`), choose weights by
//! mode, record divergence, and set the weights; the outcome is persisted once the chain answers.

use crate::machine::Machine;
use crate::outcome::{decision, uid_weights, Excluded, RunOutcome};
use crate::types::*;
use crate::verify::{judge, Exclusion};
use std::collections::BTreeMap;
use tally_consensus::divergence::{DivergenceEntry, DivergenceTracker};
use tally_consensus::{decide_run, decide_weights, RunInput, WeightMode};
use tally_core::hash::Hash32;
use tally_core::{Hotkey, ScoreReport};
use tally_protocol::rules::{commitment_blocks, counting_commitment, reveal_close_block};

/// What aggregation of one run is waiting for.
#[derive(Default)]
pub(crate) struct Agg {
    /// The final fetch, while out.
    pub fetch_req: Option<u64>,
    /// The final fetch came back.
    pub fetched: bool,
    /// Exchange rounds done.
    pub exchange_rounds: u8,
    /// Of those, the rounds answered by peers holding a quorum (with the node's own stake).
    pub counted_rounds: u8,
    /// The head of the last exchange round (rounds are one head apart).
    pub round_head: u64,
    /// The peers with an API asked in the last exchange round (those that can answer it).
    pub asked: Vec<Hotkey>,
    /// The commitments read, while out.
    pub commits_req: Option<u64>,
    /// The commitments of the run.
    pub commits: Option<Vec<(Hotkey, u64, Vec<u8>)>>,
    /// The incumbent read, while out.
    pub inc_req: Option<u64>,
    /// The incumbent's uid.
    pub incumbent: Option<Option<u16>>,
    /// The owner asked, while out.
    pub pick_req: Option<u64>,
    /// The owner's pick (`Some(None)`: asked, no answer).
    pub pick: Option<Option<OwnerPick>>,
}

impl Machine {
    fn needs_pick(&self) -> bool {
        self.cfg.mode != WeightMode::Decentralized && self.cfg.has_owner
    }

    pub(crate) fn step_aggregate(&mut self, run: u64, head: u64, out: &mut Vec<Effect>) {
        let Some(clock) = self.clock() else { return };
        let w = self.cfg.windows;
        // the commitments that count and the incumbent are fixed once the reveal window has
        // opened: they are read from the collect block on, off the critical path; the final
        // fetch and the decision wait for the close
        let Some(prefetch) = self.collect_block(run) else {
            return;
        };
        if head < prefetch {
            return;
        }
        let at_close = head >= reveal_close_block(&clock, &w, run);
        let needs_pick = self.needs_pick();
        let Some(st) = self.runs.get(&run) else {
            return;
        };
        if st.members.is_none() || st.step == Some(Step::Done) || st.finishing.is_some() {
            return;
        }
        if self.sits_out(run) {
            // what it collected is gone and peers may have decided without it: it takes no part
            // in the run, and tells peers at the exchange that it holds nothing
            if let Some(st) = self.runs.get_mut(&run) {
                if !st.sat_out {
                    st.sat_out = true;
                    out.push(Effect::ServeHeld {
                        run,
                        reports: Vec::new(),
                        proofs: Vec::new(),
                    });
                }
            }
            return;
        }
        // issue whatever is neither in hand nor out
        let agg = st.agg.as_ref();
        // a collect round still out is waited for: its answer is the bulk of the final fetch;
        // exchange rounds are one head apart
        let want_fetch = at_close
            && st.fetch_req.is_none()
            && agg.is_none_or(|a| {
                !a.fetched
                    && a.fetch_req.is_none()
                    && (a.exchange_rounds == 0 || head > a.round_head)
            });
        let want_commits = agg.is_none_or(|a| a.commits.is_none() && a.commits_req.is_none());
        let want_inc = agg.is_none_or(|a| a.incumbent.is_none() && a.inc_req.is_none());
        let want_pick = needs_pick && agg.is_none_or(|a| a.pick.is_none() && a.pick_req.is_none());
        // the final rounds are the exchange: every peer is asked for the reports and proofs it
        // holds, so split views converge before anything is decided; rounds go on, one head
        // apart, until a quiet one (see `crate::collect::MIN_EXCHANGE_ROUNDS`)
        let targets = if want_fetch {
            self.exchange_targets(run)
        } else {
            Vec::new()
        };
        let (from, _) = commitment_blocks(&clock, &w, run);
        let to = reveal_close_block(&clock, &w, run);
        let mut agg = self
            .runs
            .get_mut(&run)
            .and_then(|s| s.agg.take())
            .unwrap_or_default();
        if want_fetch {
            agg.exchange_rounds += 1;
            agg.round_head = head;
            // a peer with no API on chain cannot answer: it is read from the DHT only
            agg.asked = targets
                .iter()
                .filter(|t| !t.axon.is_empty())
                .map(|t| t.hotkey)
                .collect();
            if targets.is_empty() {
                agg.fetched = true;
            } else {
                let req = self.req();
                agg.fetch_req = Some(req);
                let known = self
                    .runs
                    .get(&run)
                    .map(|s| s.known.iter().copied().collect())
                    .unwrap_or_default();
                out.push(Effect::FetchReports {
                    req,
                    run,
                    targets,
                    known,
                });
            }
        }
        if want_commits {
            let req = self.req();
            agg.commits_req = Some(req);
            out.push(Effect::ReadCommitments { req, run, from, to });
        }
        if want_inc {
            let req = self.req();
            agg.inc_req = Some(req);
            let at_block = tally_protocol::rules::incumbent_block(&clock, &w, run);
            out.push(Effect::ReadIncumbent { req, run, at_block });
        }
        if want_pick {
            let req = self.req();
            agg.pick_req = Some(req);
            out.push(Effect::FetchOwnerPick { req, run });
        }
        if let Some(st) = self.runs.get_mut(&run) {
            st.agg = Some(agg);
        }
        self.try_decide(run, out);
    }

    fn agg_mut(&mut self, run: u64) -> Option<&mut Agg> {
        self.runs.get_mut(&run)?.agg.as_mut()
    }

    pub(crate) fn on_commitments(
        &mut self,
        req: u64,
        run: u64,
        result: Result<Vec<(Hotkey, u64, Vec<u8>)>, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(a) = self.agg_mut(run) else { return };
        if a.commits_req != Some(req) {
            return;
        }
        a.commits_req = None;
        a.commits = result.ok();
        self.try_decide(run, out);
    }

    pub(crate) fn on_incumbent(
        &mut self,
        req: u64,
        run: u64,
        result: Result<Option<u16>, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(a) = self.agg_mut(run) else { return };
        if a.inc_req != Some(req) {
            return;
        }
        a.inc_req = None;
        a.incumbent = result.ok();
        self.try_decide(run, out);
    }

    pub(crate) fn on_owner_pick(
        &mut self,
        req: u64,
        run: u64,
        pick: Option<OwnerPick>,
        out: &mut Vec<Effect>,
    ) {
        let Some(a) = self.agg_mut(run) else { return };
        if a.pick_req != Some(req) {
            return;
        }
        a.pick_req = None;
        a.pick = Some(pick);
        self.try_decide(run, out);
    }

    /// The commitment that counts for each validator, from the commitments read.
    fn counting(&self, run: u64, commits: &[(Hotkey, u64, Vec<u8>)]) -> BTreeMap<Hotkey, Hash32> {
        let Some(clock) = self.clock() else {
            return BTreeMap::new();
        };
        let mut by: BTreeMap<Hotkey, Vec<(u64, &[u8])>> = BTreeMap::new();
        for (k, b, d) in commits {
            by.entry(*k).or_default().push((*b, d));
        }
        by.into_iter()
            .filter_map(|(k, hist)| {
                #[cfg(feature = "test-switches")]
                if self.cfg.broken_any_commitment {
                    // the hole the first version had: the latest commitment, at any block
                    let latest = hist
                        .iter()
                        .filter_map(|(b, d)| {
                            let (r, h) = tally_protocol::rules::decode_commitment(d)?;
                            (r == run).then_some((*b, h))
                        })
                        .max_by_key(|x| x.0);
                    return latest.map(|(_, h)| (k, h));
                }
                counting_commitment(hist, run, &clock, &self.cfg.windows).map(|h| (k, h))
            })
            .collect()
    }

    pub(crate) fn try_decide(&mut self, run: u64, out: &mut Vec<Effect>) {
        let needs_pick = self.needs_pick();
        let ready = self
            .runs
            .get(&run)
            .and_then(|s| s.agg.as_ref())
            .is_some_and(|a| {
                a.fetched
                    && a.commits.is_some()
                    && a.incumbent.is_some()
                    && (!needs_pick || a.pick.is_some())
            });
        if !ready {
            return;
        }
        let Some(snap) = self.snap.clone() else {
            return;
        };
        let Some(clock) = self.clock() else { return };
        let eligible = self.eligible(run);
        let me = self.key.hotkey();
        let (netuid, family) = (self.cfg.netuid, self.cfg.family.clone());
        let hosters = self.hosted_results(run);
        let Some(mut st) = self.runs.remove(&run) else {
            return;
        };
        let Some(agg) = st.agg.take() else {
            self.runs.insert(run, st);
            return;
        };
        let commits = self.counting(run, agg.commits.as_deref().unwrap_or_default());
        out.push(Effect::Persist(Persist::Snapshot {
            run,
            commits: commits.iter().map(|(k, h)| (*k, *h)).collect(),
        }));

        let mut accepted: Vec<(Member, ScoreReport)> = Vec::new();
        let mut excluded: Vec<(Hotkey, Exclusion)> = Vec::new();
        for n in &eligible {
            // the copies fetched are moved out: the accepted one is persisted without a copy
            // its own report counts only if it was revealed: peers cannot see it otherwise,
            // and every honest node must judge the same reports
            let (http, dht) = if n.hotkey == me {
                let revealed = st.step >= Some(Step::Revealed);
                (st.wire.clone().filter(|_| revealed), None)
            } else {
                st.collected
                    .remove(&n.hotkey)
                    .map(|f| (f.http, f.dht))
                    .unwrap_or_default()
            };
            let verdict = if st.proofs.contains_key(&n.hotkey) {
                Err(Exclusion::Equivocation)
            } else {
                let (v, proof) = judge(
                    http.as_deref(),
                    dht.as_deref(),
                    &n.hotkey,
                    netuid,
                    run,
                    &family,
                    commits.get(&n.hotkey),
                );
                if let Some(p) = proof {
                    out.push(Effect::Persist(Persist::Evidence {
                        bytes: p.to_bytes(),
                    }));
                    st.proofs.entry(n.hotkey).or_insert(p);
                }
                v
            };
            match verdict {
                Ok(r) => {
                    // `judge` checks the HTTP copy first; identical copies are one report
                    let wire = match (http, dht) {
                        (Some(h), None) | (None, Some(h)) => h,
                        (Some(h), Some(d)) if h == d => h,
                        _ => r.to_bytes(),
                    };
                    out.push(Effect::Persist(Persist::PeerReport {
                        run,
                        validator: n.hotkey,
                        wire,
                    }));
                    accepted.push((n.clone(), r));
                }
                Err(x) => {
                    out.push(Effect::Persist(Persist::Rejected {
                        run,
                        validator: n.hotkey,
                        reason: x.name(),
                    }));
                    excluded.push((n.hotkey, x));
                }
            }
        }

        let members = st.members.clone().unwrap_or_default();
        let incumbent = agg
            .incumbent
            .flatten()
            .and_then(|u| members.iter().find(|m| m.uid == u).map(|m| m.hotkey));
        let input = RunInput {
            eligible_stake: eligible.iter().map(|n| n.stake as u128).sum(),
            reports: accepted
                .iter()
                .map(|(n, r)| (n.stake, r.body().scores.to_vec()))
                .collect(),
            incumbent,
        };
        let outcome = match decide_run(&input, &self.cfg.params, 1) {
            Ok(o) => o,
            Err(_) => {
                // parameters out of range: nothing to decide; hold
                tally_consensus::RunOutcome {
                    quorum_met: false,
                    participating: tally_core::Fraction::ZERO,
                    consensus: Vec::new(),
                    winner: incumbent,
                    weights: tally_consensus::Weights::Hold,
                }
            }
        };
        let pick = agg.pick.flatten();
        let d = decide_weights(self.cfg.mode, pick.as_ref().map(|p| &p.winner), &outcome);
        if d.track_divergence {
            let mut t = self
                .divergence
                .take()
                .or_else(|| DivergenceTracker::new(self.cfg.divergence_window.max(1)).ok());
            if let Some(t) = t.as_mut() {
                let owner_scores = pick.as_ref().map(|p| p.scores.clone()).unwrap_or_default();
                t.record(DivergenceEntry::compute(
                    run,
                    pick.as_ref().map(|p| &p.winner),
                    outcome.winner.as_ref(),
                    &owner_scores,
                    &outcome.consensus,
                    3,
                ));
                out.push(Effect::Persist(Persist::Divergence {
                    bytes: t.to_bytes(),
                }));
            }
            self.divergence = t;
        }
        let uid_w = uid_weights(&d.set, &members, snap.params.burn_uid);
        let result = RunOutcome {
            run,
            quorum_met: outcome.quorum_met,
            participating_stake: outcome.participating.to_f64(),
            consensus: outcome
                .consensus
                .iter()
                .map(|(k, s)| (*k, s.to_f64()))
                .collect(),
            winner: outcome.winner,
            incumbent,
            mode: match self.cfg.mode {
                WeightMode::Owner => "owner",
                WeightMode::Shadow => "shadow",
                WeightMode::Decentralized => "decentralized",
            }
            .to_string(),
            owner_pick: pick.as_ref().map(|p| p.winner),
            weights: decision(&d.set),
            uid_weights: uid_w.clone(),
            weights_set_at_block: None,
            weights_error: None,
            accepted: accepted.iter().map(|(n, _)| n.hotkey).collect(),
            excluded: excluded
                .iter()
                .map(|(k, x)| Excluded {
                    validator: *k,
                    reason: x.name().to_string(),
                })
                .collect(),
            reveal_closed_block: reveal_close_block(&clock, &self.cfg.windows, run),
            aggregated_at_block: self.head.map(|h| h.number).unwrap_or(0),
            aggregated_at_ms: None,
            hosters: hosters
                .into_iter()
                .map(|v| {
                    (
                        v.hoster,
                        crate::outcome::HosterResult {
                            score: v.score.to_f64(),
                            reason: v.reason,
                        },
                    )
                })
                .collect(),
        };
        match uid_w {
            Some(weights) => {
                st.finishing = Some(result);
                out.push(Effect::SetWeights { run, weights });
            }
            None => {
                st.step = Some(Step::Done);
                out.push(Effect::Persist(Persist::Finish {
                    outcome: Box::new(result),
                }));
            }
        }
        self.runs.insert(run, st);
    }

    pub(crate) fn on_weights_set(
        &mut self,
        run: u64,
        result: Result<u64, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        let Some(mut o) = st.finishing.take() else {
            return;
        };
        match result {
            Ok(b) => o.weights_set_at_block = Some(b),
            Err(e) => o.weights_error = Some(e),
        }
        st.step = Some(Step::Done);
        out.push(Effect::Persist(Persist::Finish {
            outcome: Box::new(o),
        }));
    }
}
