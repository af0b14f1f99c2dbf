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

/// Most proofs read from one peer's answer (each costs two signature checks).
pub const MAX_PROOFS_PER_PEER: usize = 64;

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
    /// source, asked for the proofs they hold too (while collecting, off the critical path).
    pub(crate) fn targets(&self, run: u64, evidence: bool) -> Vec<Target> {
        self.targets_where(run, evidence, |have_http, have_dht| !have_http || !have_dht)
    }

    /// The final round's targets: validators with no copy at all; with `evidence`, every
    /// other eligible validator, asked for its proofs (and for whatever copy is missing).
    pub(crate) fn final_targets(&self, run: u64, evidence: bool) -> Vec<Target> {
        self.targets_where(run, evidence, |h, d| evidence || (!h && !d))
    }

    fn targets_where(
        &self,
        run: u64,
        evidence: bool,
        want: impl Fn(bool, bool) -> bool,
    ) -> Vec<Target> {
        let me = self.key.hotkey();
        let st = self.runs.get(&run);
        self.eligible(run)
            .into_iter()
            .filter(|n| n.hotkey != me)
            .filter_map(|n| {
                let have = st.and_then(|s| s.collected.get(&n.hotkey));
                let (h, d) = have.map_or((false, false), |f| (f.http.is_some(), f.dht.is_some()));
                want(h, d).then(|| Target {
                    hotkey: n.hotkey,
                    axon: n.axon.clone(),
                    http: !h && !n.axon.is_empty(),
                    dht: !d,
                    evidence,
                })
            })
            .collect()
    }

    /// Whether some eligible peer's report is held from one source only, without a proof: it
    /// could be one side of an equivocation this node never saw, so peers' proofs are wanted.
    pub(crate) fn one_sided(&self, run: u64) -> bool {
        let me = self.key.hotkey();
        let Some(st) = self.runs.get(&run) else {
            return false;
        };
        self.eligible(run).iter().any(|n| {
            n.hotkey != me
                && !st.proofs.contains_key(&n.hotkey)
                && st
                    .collected
                    .get(&n.hotkey)
                    .is_some_and(|f| f.http.is_some() != f.dht.is_some())
        })
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
            // a peer's proofs are re-checked one by one: take a bounded number per answer
            for p in f.evidence.iter().take(MAX_PROOFS_PER_PEER) {
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
            let asked = st.agg.as_ref().is_some_and(|a| a.evidence_asked);
            if !asked && self.one_sided(run) {
                // one more round: every peer's proofs
                let targets = self.final_targets(run, true);
                let req = self.req();
                if let Some(a) = self.runs.get_mut(&run).and_then(|s| s.agg.as_mut()) {
                    a.fetch_req = Some(req);
                    a.evidence_asked = true;
                }
                out.push(Effect::FetchReports { req, run, targets });
                return;
            }
            if let Some(a) = self.runs.get_mut(&run).and_then(|s| s.agg.as_mut()) {
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
