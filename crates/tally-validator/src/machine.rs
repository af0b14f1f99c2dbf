//! The [`Machine`]: state, dispatch of inputs, and the schedule run on every head block.

use crate::config::Config;
use crate::types::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;
use tally_consensus::divergence::DivergenceTracker;
use tally_consensus::equivocation::Equivocation;
use tally_core::hash::Hash32;
use tally_core::{Hotkey, Keypair, ScoreReport};
use tally_protocol::{
    ChainTime, ChainView, CommitBook, EpochClock, Kind, Metagraph, Neuron, PhaseWindows,
};

/// One run's state.
#[derive(Default)]
pub(crate) struct RunState {
    /// The last step done.
    pub step: Option<Step>,
    /// The node's own report.
    pub report: Option<ScoreReport>,
    /// Its wire bytes.
    pub wire: Option<Vec<u8>>,
    /// The metagraph the run is scored and aggregated against.
    pub members: Option<Vec<Member>>,
    /// A score request is out.
    pub scoring: bool,
    /// The run could not be evaluated: no report.
    pub unscorable: Option<String>,
    /// A commitment is being posted.
    pub committing: bool,
    /// What was fetched per validator (first HTTP and first DHT copy kept).
    pub collected: BTreeMap<Hotkey, Fetched>,
    /// SHA-256 of the copy of each validator's report this node serves as held (its HTTP copy,
    /// else its DHT copy).
    pub held_digests: BTreeMap<Hotkey, tally_core::hash::Hash32>,
    /// SHA-256 of every copy of a report seen for the run (what the exchange need not fetch).
    pub known: std::collections::BTreeSet<tally_core::hash::Hash32>,
    /// Equivocation proofs held, by validator.
    pub proofs: BTreeMap<Hotkey, Equivocation>,
    /// A collect request is out.
    pub fetch_req: Option<u64>,
    /// Aggregation in progress.
    pub agg: Option<crate::aggregate::Agg>,
    /// The outcome waiting for the weights call to return.
    pub finishing: Option<crate::outcome::RunOutcome>,
    /// The executed scores, once the scorer answered (held until every part is in).
    pub exec: Option<Vec<(Hotkey, tally_core::Score)>>,
    /// Miner-hosted mode's state.
    pub hosted: crate::hosted::HostedRun,
    /// Read back from the store after a restart, not done: what was collected for it is gone.
    pub restored: bool,
    /// It sits the run out (see `Machine::sits_out`) and said so to peers.
    pub sat_out: bool,
}

/// A validator's state machine. See the crate documentation.
pub struct Machine {
    pub(crate) cfg: Config,
    pub(crate) key: Keypair,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) head: Option<Head>,
    pub(crate) snap: Option<ChainSnapshot>,
    pub(crate) snap_req: Option<u64>,
    /// The first head this machine saw (after a restart: the block it resumed at).
    pub(crate) resumed_at: Option<u64>,
    next_req: u64,
    pub(crate) runs: BTreeMap<u64, RunState>,
    pub(crate) divergence: Option<DivergenceTracker>,
    /// Hoster commit snapshots (miner-hosted mode).
    pub(crate) book: CommitBook,
}

impl Machine {
    /// A machine for `key`; salts come from an RNG seeded with `seed` (the driver passes OS
    /// randomness, the simulator its own RNG).
    pub fn new(cfg: Config, key: Keypair, seed: [u8; 32]) -> Machine {
        Machine {
            book: CommitBook::new(cfg.keep_runs.max(2)),
            cfg,
            key,
            rng: ChaCha20Rng::from_seed(seed),
            head: None,
            snap: None,
            snap_req: None,
            resumed_at: None,
            next_req: 1,
            runs: BTreeMap::new(),
            divergence: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The last step done for `run`, as far as the machine knows.
    pub fn step(&self, run: u64) -> Option<Step> {
        self.runs.get(&run).and_then(|r| r.step)
    }

    pub(crate) fn req(&mut self) -> u64 {
        let r = self.next_req;
        self.next_req += 1;
        r
    }

    pub(crate) fn clock(&self) -> Option<EpochClock> {
        self.snap.as_ref().map(ChainSnapshot::clock)
    }

    /// Eligible validators of `run` (its metagraph, the current minimum stake).
    pub(crate) fn eligible(&self, run: u64) -> Vec<Member> {
        let min = self
            .snap
            .as_ref()
            .map(|s| s.params.min_validator_stake)
            .unwrap_or(u64::MAX);
        self.runs
            .get(&run)
            .and_then(|r| r.members.as_ref())
            .map(|m| {
                m.iter()
                    .filter(|n| {
                        tally_protocol::rules::is_eligible(n.validator_permit, n.stake, min)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this node sits `run` out: it restarted and resumed (saw its first head) at or
    /// after the run's reveal-close block. The reports it collected lived in memory and are
    /// gone, and peers may have finished the exchange without it: what it would fetch now,
    /// first-hand, could differ from what they decided on, and its own report would count for it
    /// alone if no peer had fetched it in time. It neither exchanges nor aggregates the run (no
    /// outcome, no weights for it: the last weights hold), and tells peers it holds nothing.
    pub(crate) fn sits_out(&self, run: u64) -> bool {
        let (Some(clock), Some(at)) = (self.clock(), self.resumed_at) else {
            return false;
        };
        let close = tally_protocol::rules::reveal_close_block(&clock, &self.cfg.windows, run);
        self.runs.get(&run).is_some_and(|s| s.restored) && at >= close
    }

    /// Handles one input.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Restore(s) => self.on_restore(s, &mut out),
            Input::Head(h) => self.on_head(h, &mut out),
            Input::Snapshot { req, result } => {
                if self.snap_req == Some(req) {
                    self.snap_req = None;
                    if let Ok(s) = result {
                        self.snap = Some(s);
                        out.push(Effect::View(Box::new(self.view())));
                        if let Some(h) = self.head {
                            self.schedule(h, &mut out);
                        }
                    }
                }
            }
            Input::Scored { run, result } => self.on_scored(run, result, &mut out),
            Input::Committed { run, result } => self.on_committed(run, result, &mut out),
            Input::Reports { req, run, fetched } => self.on_reports(req, run, fetched, &mut out),
            Input::Commitments { req, run, result } => {
                self.on_commitments(req, run, result, &mut out)
            }
            Input::Incumbent { req, run, result } => self.on_incumbent(req, run, result, &mut out),
            Input::OwnerPick { req, run, pick } => self.on_owner_pick(req, run, pick, &mut out),
            Input::WeightsSet { run, result } => self.on_weights_set(run, result, &mut out),
            Input::HosterCommits { req, run, result } => {
                self.on_hoster_commits(req, run, result, &mut out)
            }
            Input::Hosted {
                req,
                run,
                challenge,
                reveals,
            } => self.on_hosted(req, run, challenge, reveals, &mut out),
            Input::HostedScored { run, result } => self.on_hosted_scored(run, result, &mut out),
            Input::LateReveal { run, hoster } => self.on_late_reveal(run, hoster),
        }
        out
    }

    fn on_restore(&mut self, s: Stored, out: &mut Vec<Effect>) {
        for r in s.runs {
            let report = r
                .own_report
                .as_deref()
                .and_then(|w| ScoreReport::from_bytes(w).ok());
            let st = self.runs.entry(r.run).or_default();
            st.step = r.step;
            st.wire = report.as_ref().and(r.own_report.clone());
            st.report = report;
            st.members = r.members;
            st.restored = st.step != Some(Step::Done);
            st.hosted.challenge_sent = r.challenge_sent;
            st.hosted.verdicts = r.hosted;
            if let Some(c) = r.hoster_commits {
                self.book.snapshot(Kind::HosterCommit, r.run, c);
            }
            // serve again only what was revealed: a run aggregated without a commitment of
            // this node's is done, and its report must stay unseen
            if st.step == Some(Step::Revealed) || (st.step == Some(Step::Done) && r.revealed) {
                if let Some(w) = &st.wire {
                    out.push(Effect::Serve {
                        run: r.run,
                        wire: w.clone(),
                    });
                }
            }
        }
        self.divergence = s
            .divergence
            .and_then(|b| DivergenceTracker::from_bytes(&b).ok());
        self.prune();
    }

    fn on_head(&mut self, h: Head, out: &mut Vec<Effect>) {
        if self.head.is_some_and(|old| old.number > h.number) {
            return; // a stale head (reordered answers): ignore
        }
        self.head = Some(h);
        self.resumed_at.get_or_insert(h.number);
        if let Some(s) = &self.snap {
            out.push(Effect::Time(ChainTime {
                block: h.number,
                at_ms: h.timestamp_ms,
                block_ms: s.params.block_ms,
            }));
        }
        let fresh = self.snap.as_ref().is_some_and(|s| s.covers(h.number));
        if !fresh {
            if self.snap_req.is_none() {
                let req = self.req();
                self.snap_req = Some(req);
                out.push(Effect::ReadChain {
                    req,
                    at_block: h.number,
                });
            }
            return;
        }
        self.schedule(h, out);
    }

    /// Whatever the schedule says is due at head `h`.
    fn schedule(&mut self, h: Head, out: &mut Vec<Effect>) {
        let Some(clock) = self.clock() else { return };
        let Some(epoch) = clock.epoch_of(h.number) else {
            return;
        };
        if self.snap.as_ref().is_none_or(|s| s.epoch != epoch) {
            return;
        }
        self.step_score(epoch, h.number, out);
        self.step_hosted(epoch, h.number, out);
        self.step_commit(epoch, h.number, out);
        if epoch >= 1 {
            let run = epoch - 1;
            self.step_reveal(run, h.number, out);
            self.step_collect(run, h.number, out);
            self.step_aggregate(run, h.number, out);
        }
        self.prune();
    }

    fn prune(&mut self) {
        let Some(newest) = self.runs.keys().next_back().copied() else {
            return;
        };
        let keep = self.cfg.keep_runs.max(2) as u64;
        while let Some((&oldest, st)) = self.runs.first_key_value() {
            // a run still waiting for its weights call is kept until the answer comes
            if oldest + keep > newest || st.finishing.is_some() && oldest + 2 * keep > newest {
                break;
            }
            self.runs.pop_first();
        }
    }

    /// The chain view for the DHT predicate and the API.
    pub(crate) fn view(&self) -> ChainView {
        let h = self.head.unwrap_or(Head {
            number: 0,
            timestamp_ms: 0,
        });
        match &self.snap {
            Some(s) => view_of(self.cfg.netuid, self.cfg.windows, s, h),
            None => ChainView::new(
                self.cfg.netuid,
                EpochClock {
                    length: 1,
                    offset: 0,
                },
                self.cfg.windows,
                ChainTime {
                    block: 0,
                    at_ms: 0,
                    block_ms: 1,
                },
                Metagraph::default(),
                u64::MAX,
            ),
        }
    }

    /// The seed of `epoch` in the current snapshot.
    pub(crate) fn seed(&self, epoch: u64) -> Option<Hash32> {
        self.snap.as_ref()?.seed(epoch)
    }
}

/// The protocol's view of a chain snapshot at head `h`, as the DHT predicate reads it.
pub fn view_of(netuid: u16, windows: PhaseWindows, s: &ChainSnapshot, h: Head) -> ChainView {
    let neurons = s.members.iter().map(|m| {
        (
            m.hotkey,
            Neuron {
                uid: m.uid,
                stake: m.stake,
                validator_permit: m.validator_permit,
            },
        )
    });
    let mut v = ChainView::new(
        netuid,
        s.clock(),
        windows,
        ChainTime {
            block: h.number,
            at_ms: h.timestamp_ms,
            block_ms: s.params.block_ms,
        },
        Metagraph::new(neurons).unwrap_or_default(),
        s.params.min_validator_stake,
    );
    for (e, seed) in &s.seeds {
        v.set_seed(*e, *seed);
    }
    v
}

impl Actor for Machine {
    fn handle(&mut self, input: Input) -> Vec<Effect> {
        Machine::handle(self, input)
    }
}
