//! Step 4, collect: from the configured share of the reveal window until it closes, fetch every
//! eligible validator's report over HTTP and its `validator-reveal` record, for whichever is
//! not in hand yet, with the equivocation proofs it holds (one request out at a time, retried on
//! the next head). The first copy from each source is kept; two different validly signed reports
//! from one validator (across sources or over time) are an equivocation, proven and persisted as
//! soon as they are seen, so honest peers can hand the proof on. Proofs that peers serve are
//! re-checked before they are kept.

use crate::machine::Machine;
use crate::types::*;
use crate::verify::equivocation;
use tally_consensus::equivocation::Equivocation;
use tally_core::Hotkey;
use tally_protocol::rules::{reveal_close_block, reveal_open_block};

impl Machine {
    /// The first block at which reports of `run` are collected.
    pub(crate) fn collect_block(&self, run: u64) -> Option<u64> {
        let clock = self.clock()?;
        let w = self.cfg.windows;
        let open = reveal_open_block(&clock, &w, run);
        let close = reveal_close_block(&clock, &w, run);
        let span = close.saturating_sub(open) as u128;
        let off = (span * self.cfg.collect_from.units() as u128).div_ceil(1_000_000_000) as u64;
        Some(open + off)
    }

    /// Targets for `run`: eligible validators other than this node that lack a copy from a
    /// source, asked for the proofs they hold too when `evidence` (while collecting, off the
    /// critical path; the final round at the close asks only for what is missing).
    pub(crate) fn targets(&self, run: u64, evidence: bool) -> Vec<Target> {
        let me = self.key.hotkey();
        let st = self.runs.get(&run);
        // at the close one copy is enough to judge a report: only validators with none are asked
        let final_round = !evidence;
        self.eligible(run)
            .into_iter()
            .filter(|n| n.hotkey != me)
            .filter_map(|n| {
                let have = st.and_then(|s| s.collected.get(&n.hotkey));
                if final_round && have.is_some_and(|f| f.http.is_some() || f.dht.is_some()) {
                    return None;
                }
                let http = have.is_none_or(|f| f.http.is_none()) && !n.axon.is_empty();
                let dht = have.is_none_or(|f| f.dht.is_none());
                (http || dht).then(|| Target {
                    hotkey: n.hotkey,
                    axon: n.axon.clone(),
                    http,
                    dht,
                    evidence,
                })
            })
            .collect()
    }

    pub(crate) fn step_collect(&mut self, run: u64, head: u64, out: &mut Vec<Effect>) {
        let Some(clock) = self.clock() else { return };
        let close = reveal_close_block(&clock, &self.cfg.windows, run);
        let Some(from) = self.collect_block(run) else {
            return;
        };
        if head < from || head >= close {
            return;
        }
        let Some(st) = self.runs.get(&run) else {
            return;
        };
        if st.members.is_none() || st.step == Some(Step::Done) || st.fetch_req.is_some() {
            return;
        }
        let targets = self.targets(run, true);
        if targets.is_empty() {
            return;
        }
        let req = self.req();
        if let Some(st) = self.runs.get_mut(&run) {
            st.fetch_req = Some(req);
        }
        out.push(Effect::FetchReports { req, run, targets });
    }

    pub(crate) fn on_reports(
        &mut self,
        req: u64,
        run: u64,
        fetched: Vec<Fetched>,
        out: &mut Vec<Effect>,
    ) {
        let eligible: std::collections::BTreeSet<Hotkey> =
            self.eligible(run).into_iter().map(|m| m.hotkey).collect();
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        let is_final = st.agg.as_ref().and_then(|a| a.fetch_req) == Some(req);
        if st.fetch_req == Some(req) {
            st.fetch_req = None;
        } else if !is_final {
            return; // not asked for (or already superseded)
        }
        for f in fetched {
            if !eligible.contains(&f.hotkey) {
                continue;
            }
            for p in &f.evidence {
                if let Ok(e) = Equivocation::from_bytes(p) {
                    let v = e.validator();
                    if e.first.body().run == run
                        && e.first.body().netuid == self.cfg.netuid
                        && eligible.contains(&v)
                        && !st.proofs.contains_key(&v)
                    {
                        out.push(Effect::Persist(Persist::Evidence { bytes: p.clone() }));
                        st.proofs.insert(v, e);
                    }
                }
            }
            let entry = st
                .collected
                .entry(f.hotkey)
                .or_insert_with(|| Fetched::empty(f.hotkey));
            let mut seen: Vec<Vec<u8>> = Vec::new();
            for (slot, new) in [(&mut entry.http, f.http), (&mut entry.dht, f.dht)] {
                if let Some(w) = new {
                    match slot {
                        None => *slot = Some(w),
                        Some(old) if *old != w => seen.push(w),
                        Some(_) => {}
                    }
                }
            }
            if st.proofs.contains_key(&f.hotkey) {
                continue;
            }
            // every distinct copy held for this validator, checked pairwise against the first
            let mut copies: Vec<&Vec<u8>> = entry.http.iter().chain(entry.dht.iter()).collect();
            copies.extend(seen.iter());
            copies.dedup();
            if let Some(first) = copies.first() {
                for other in &copies[1..] {
                    if other == first {
                        continue;
                    }
                    if let Some(p) = equivocation(first, other, &f.hotkey, run) {
                        out.push(Effect::Persist(Persist::Evidence {
                            bytes: p.to_bytes(),
                        }));
                        st.proofs.insert(f.hotkey, p);
                        break;
                    }
                }
            }
        }
        if is_final {
            if let Some(a) = st.agg.as_mut() {
                a.fetch_req = None;
                a.fetched = true;
            }
            self.try_decide(run, out);
        } else if st.agg.is_some() {
            // the collect round aggregation was waiting for: ask for what is still missing now
            if let Some(h) = self.head {
                self.step_aggregate(run, h.number, out);
            }
        }
    }
}
