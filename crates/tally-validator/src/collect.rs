//! Step 4, collect: from the configured share of the reveal window until it closes, fetch every
//! eligible validator's report over HTTP and its `validator-reveal` record, for whichever is
//! not in hand yet, with the equivocation proofs it holds (one request out at a time, retried on
//! the next head). The first copy from each source is kept; two different validly signed reports
//! from one validator (across sources or over time) are an equivocation, proven and persisted as
//! soon as they are seen, so honest peers can hand the proof on. Proofs that peers serve are
//! re-checked before they are kept.
//!
//! Split views: the node serves the other validators' reports it holds ([`Effect::ServeHeld`],
//! one per validator, with the SHA-256 of each, and its proofs), and at reveal close its final
//! rounds are an exchange: it asks every eligible peer for the list of what it holds and fetches
//! only the reports whose digests it does not know ([`Effect::FetchReports`]'s `known`). A report
//! a validator showed to some peers only reaches every honest node this way (it is checked
//! against the signer's commitment like any copy), and different reports shown to different
//! peers meet and become a proof. Rounds are one head apart and each asks every peer again (a
//! peer may have learned something since it answered, say first-hand in its own first round
//! after a restart); the exchange ends at the first quiet round — every peer with an API
//! answered and nothing new came in — from the [`MIN_EXCHANGE_ROUNDS`]th on, or after
//! [`MAX_EXCHANGE_ROUNDS`] rounds answered by peers holding a quorum (a node cut off from most
//! peers keeps asking, until [`exchange_deadline_block`]: peers that are offline for good must
//! not keep a quorum miss from being decided). A node that restarted and resumed only at or after the close sits the
//! run out (`Machine::sits_out`). What is exchanged is bounded: at most
//! [`MAX_RELAYED_PER_PEER`] relayed reports and [`MAX_PROOFS_PER_PEER`] proofs from each peer,
//! and in the honest case no report at all, only the lists.

use crate::machine::Machine;
use crate::types::*;
use crate::verify::equivocation;
use tally_consensus::equivocation::Equivocation;
use tally_core::Hotkey;
use tally_protocol::rules::{reveal_close_block, reveal_open_block};

/// Most proofs read from one peer's answer (each costs two signature checks).
pub const MAX_PROOFS_PER_PEER: usize = 64;
/// Most relayed reports read from one peer's answer (one per eligible validator at most).
pub const MAX_RELAYED_PER_PEER: usize = 256;
/// Fewest exchange rounds at reveal close: the first can meet a peer whose own last round of
/// first-hand fetches is still in flight, so a second one, a head later, is always asked.
pub const MIN_EXCHANGE_ROUNDS: u8 = 2;
/// Most exchange rounds at reveal close that peers holding a quorum answered, one head apart:
/// after [`MIN_EXCHANGE_ROUNDS`] the exchange ends at the first quiet round (every peer with an
/// API answered with what it holds and nothing new was learned); peers that do not answer (a
/// silent validator, lost requests, partitions of a few blocks, a restart) keep it going until
/// this many rounds were answered by peers holding, with the node, a quorum of the eligible
/// stake. A round fewer answered does not count: a node cut off from most of its peers waits
/// for them (up to [`EXCHANGE_ROUND_CAP`]) rather than decide on what it alone collected.
pub const MAX_EXCHANGE_ROUNDS: u8 = 6;
/// Most exchange rounds in all, counted or not.
pub const EXCHANGE_ROUND_CAP: u8 = 3 * MAX_EXCHANGE_ROUNDS;

/// The block by which the exchange of `run` ends whatever its rounds gave: three eighths of an
/// epoch after the reveal close (the run is scheduled only until its next epoch ends, an
/// eighth of an epoch later; the decision and the weights call need the rest).
pub fn exchange_deadline_block(
    clock: &tally_protocol::EpochClock,
    windows: &tally_protocol::PhaseWindows,
    run: u64,
) -> u64 {
    reveal_close_block(clock, windows, run) + (clock.length.max(1) * 3 / 8).max(1)
}

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

    /// An exchange round's targets: every other eligible validator, asked for the reports and
    /// proofs it holds (each round asks every peer again: one that answered may have learned
    /// more since), and for whatever copy of its own report is missing.
    pub(crate) fn exchange_targets(&self, run: u64) -> Vec<Target> {
        let mut t = self.targets_where(run, true, |_, _| true);
        for x in &mut t {
            x.relay = true;
        }
        t
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
                    relay: false,
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
        out.push(Effect::FetchReports {
            req,
            run,
            targets,
            known: Vec::new(),
        });
    }

    pub(crate) fn on_reports(
        &mut self,
        req: u64,
        run: u64,
        fetched: Vec<Fetched>,
        out: &mut Vec<Effect>,
    ) {
        let members = self.eligible(run);
        let eligible: std::collections::BTreeSet<Hotkey> =
            members.iter().map(|m| m.hotkey).collect();
        let me = self.key.hotkey();
        // relayed reports become copies of their signer's report (one per signer per answer)
        let mut fetched = fetched;
        // exchange rounds: the peers that answered with the list of what they hold (a missing
        // entry is a peer not reached)
        let answered: std::collections::BTreeSet<Hotkey> = fetched
            .iter()
            .filter(|f| f.exchanged)
            .map(|f| f.hotkey)
            .collect();
        // with its own stake, do the peers that answered hold a quorum of the eligible stake?
        let total: u128 = members.iter().map(|m| m.stake as u128).sum();
        let heard: u128 = members
            .iter()
            .filter(|m| m.hotkey == me || answered.contains(&m.hotkey))
            .map(|m| m.stake as u128)
            .sum();
        let counts = self.cfg.params.quorum.is_met_by(heard, total);
        // however the rounds went, the exchange ends by this block, so the run is decided in the
        // epoch that schedules it (a quorum miss is a decision too: the incumbent holds)
        let out_of_time = match (self.clock(), self.head) {
            (Some(c), Some(h)) => h.number >= exchange_deadline_block(&c, &self.cfg.windows, run),
            _ => false,
        };
        let mut relays: Vec<Fetched> = Vec::new();
        for f in &mut fetched {
            for w in std::mem::take(&mut f.relayed)
                .into_iter()
                .take(MAX_RELAYED_PER_PEER)
            {
                let Ok(r) = tally_core::ScoreReport::from_bytes(&w) else {
                    continue;
                };
                let v = r.body().validator;
                // two distinct copies of one signer are all a proof needs
                let copies = relays.iter().filter(|x| x.hotkey == v);
                if v == me
                    || !eligible.contains(&v)
                    || copies.clone().count() >= 2
                    || copies.clone().any(|x| x.http.as_ref() == Some(&w))
                {
                    continue;
                }
                let mut x = Fetched::empty(v);
                x.http = Some(w);
                relays.push(x);
            }
        }
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        let is_final = st.agg.as_ref().and_then(|a| a.fetch_req) == Some(req);
        if st.fetch_req == Some(req) {
            st.fetch_req = None;
        } else if !is_final {
            return; // not asked for (or already superseded)
        }
        let mut added = false;
        for (relayed, f) in fetched
            .into_iter()
            .map(|f| (false, f))
            .chain(relays.into_iter().map(|f| (true, f)))
        {
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
                        added = true;
                    }
                }
            }
            let entry = st
                .collected
                .entry(f.hotkey)
                .or_insert_with(|| Fetched::empty(f.hotkey));
            let mut seen: Vec<Vec<u8>> = Vec::new();
            // (digest, is it the HTTP slot) of each copy that fills a slot
            let mut filled: Vec<(tally_core::hash::Hash32, bool)> = Vec::new();
            if relayed {
                // a second-hand copy fills an empty slot; otherwise it is only compared
                if let Some(w) = f.http {
                    if entry.http.is_none() && entry.dht.as_ref() != Some(&w) {
                        filled.push((tally_core::sha256(&w), true));
                        entry.http = Some(w);
                        added = true;
                    } else if entry.http.as_ref() != Some(&w) && entry.dht.as_ref() != Some(&w) {
                        seen.push(w);
                    }
                }
            } else {
                // the two copies are usually the same bytes: hashed once then
                let same = f.http.is_some() && f.http == f.dht;
                for (is_http, slot, new) in [
                    (true, &mut entry.http, f.http),
                    (false, &mut entry.dht, f.dht),
                ] {
                    if let Some(w) = new {
                        match slot {
                            None => {
                                let d = match filled.first() {
                                    Some((d, _)) if same => *d,
                                    _ => tally_core::sha256(&w),
                                };
                                filled.push((d, is_http));
                                *slot = Some(w);
                                added = true;
                            }
                            Some(old) if *old != w => seen.push(w),
                            Some(_) => {}
                        }
                    }
                }
            }
            let http_set = entry.http.is_some();
            for (d, is_http) in filled {
                st.known.insert(d);
                // the held copy is the HTTP one when there is one
                if is_http || !http_set {
                    st.held_digests.insert(f.hotkey, d);
                }
            }
            // every copy is hashed once, as it arrives: what the exchange need not fetch again
            for w in &seen {
                st.known.insert(tally_core::sha256(w));
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
                        added = true;
                        break;
                    }
                }
            }
        }
        if added {
            // what this node holds now (reports and proofs), for peers' rounds
            let reports: Vec<HeldReport> = st
                .collected
                .values()
                .filter(|f| !st.proofs.contains_key(&f.hotkey))
                .filter_map(|f| {
                    Some(HeldReport {
                        validator: f.hotkey,
                        digest: *st.held_digests.get(&f.hotkey)?,
                        wire: f.http.clone().or_else(|| f.dht.clone())?,
                    })
                })
                .collect();
            let proofs: Vec<Vec<u8>> = st
                .proofs
                .values()
                .take(MAX_PROOFS_PER_PEER)
                .map(|p| p.to_bytes())
                .collect();
            out.push(Effect::ServeHeld {
                run,
                reports,
                proofs,
            });
        }
        if is_final {
            if let Some(a) = st.agg.as_mut() {
                a.fetch_req = None;
                // quiet: every peer with an API answered and nothing new came in
                let quiet = !added && a.asked.iter().all(|k| answered.contains(k));
                if counts {
                    a.counted_rounds += 1;
                }
                if quiet && a.exchange_rounds >= MIN_EXCHANGE_ROUNDS
                    || a.counted_rounds >= MAX_EXCHANGE_ROUNDS
                    || a.exchange_rounds >= EXCHANGE_ROUND_CAP
                    || out_of_time
                {
                    a.fetched = true;
                } else {
                    // another round, every peer again, on the next head
                    return;
                }
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
