//! The seeded world: a virtual clock and an event queue, one RNG, the embedded chain on an
//! in-memory backend producing a block every `block_ms` of virtual time, an in-memory DHT that
//! runs the real predicate on the virtual clock, HTTP links with latency, loss and partitions,
//! and validators (honest [`Machine`]s or [`Byzantine`] wrappers) that crash and restart from
//! what they persisted. With [`SimConfig::hosters`], hosters of miner-hosted mode
//! ([`ByzantineHoster`]s around the honest [`Hoster`], the toy model as their model) read the
//! elected validator's challenge, commit and reveal in the same DHT, and the honest ones crash
//! and restart from their entries too. Nothing reads the wall clock or the OS RNG, so one seed
//! replays the same trace; every effect executed is folded into the trace hash.

use crate::byzantine::{Byzantine, Strategy};
use crate::hoster::{ByzantineHoster, HosterStrategy};
use crate::invariants;
use parity_scale_codec::Encode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use tally_chain::snapshot::read_snapshot;
use tally_chain::{extrinsic, Chain, Genesis, LocalChain, SubnetParams};
use tally_consensus::WeightMode;
use tally_core::hash::Hash32;
use tally_core::{BoundedBytes, FamilyId, Hotkey, Keypair, Score};
use tally_protocol::payload::Payload;
use tally_protocol::predicate::{check, check_without_signature, Mode, Reject};
use tally_protocol::record::{RecordBody, SignedRecord};
use tally_protocol::rules::reveal_close_block;
use tally_protocol::view::challenge_seed;
use tally_protocol::{
    record_key, ChainTime, ChainView, EpochClock, Kind, Metagraph, Neuron, PhaseWindows,
};
use tally_validator::hoster::{
    Hoster, HosterActor, HosterConfig, HosterEffect, HosterEntry, HosterInput,
};
use tally_validator::*;

/// One validator's scores.
type Scores = Vec<(Hotkey, Score)>;

/// The simulated subnet.
pub const NETUID: u16 = 1;

/// Faults injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Per-request loss on HTTP links, in per mille.
    pub loss_permille: u32,
    /// Partitions that cut up to a third of the nodes off for 1 to 3 blocks, then heal.
    pub partitions: bool,
    /// Honest nodes crash and restart from their store 2 to 6 blocks later.
    pub crashes: bool,
    /// Every validator abstains on about a third of the miners each run (a seeded choice per
    /// validator, run and miner): coverage differs per miner.
    pub abstain: bool,
}

impl Faults {
    /// The faults as `tally sim --faults` names them (`none` when there are none).
    pub fn describe(&self) -> String {
        let mut f = Vec::new();
        if self.loss_permille > 0 {
            f.push(format!("loss={}", self.loss_permille));
        }
        for (on, name) in [
            (self.partitions, "partitions"),
            (self.crashes, "crashes"),
            (self.abstain, "abstain"),
        ] {
            if on {
                f.push(name.to_string());
            }
        }
        if f.is_empty() {
            "none".into()
        } else {
            f.join(",")
        }
    }

    /// Parses [`Faults::describe`]'s form.
    pub fn parse(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        if s.is_empty() || s == "none" {
            return Ok(f);
        }
        for part in s.split(',').map(str::trim) {
            match part {
                "partitions" => f.partitions = true,
                "crashes" => f.crashes = true,
                "abstain" => f.abstain = true,
                p if p.starts_with("loss=") => {
                    f.loss_permille = p[5..]
                        .parse::<u32>()
                        .ok()
                        .filter(|x| *x <= 500)
                        .ok_or("faults: loss=N takes 0..=500 per mille")?
                }
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: use loss=PERMILLE, partitions, crashes, abstain or none"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// One simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything follows from it.
    pub seed: u64,
    /// Validators, byzantine ones included.
    pub validators: usize,
    /// Miners.
    pub miners: usize,
    /// Runs to complete.
    pub epochs: u64,
    /// Strategies of the last validators.
    pub byzantine: Vec<Strategy>,
    /// Faults.
    pub faults: Faults,
    /// Blocks per epoch.
    pub epoch_length: u64,
    /// Virtual milliseconds per block.
    pub block_ms: u64,
    /// Test-only: break the rule of which commitment counts (see
    /// `tally_validator::Config::broken_any_commitment`).
    pub broken_rule: bool,
    /// Hosters of miner-hosted mode, one per strategy listed (registered after the miners,
    /// without permit or stake). When there are any, validators run `Execution::Both`: the
    /// miners keep their synthetic scores and the hosters are judged on the epoch's challenge
    /// against the toy model. Empty (the default): validator-hosted mode only, and the trace
    /// is the one this simulator always gave.
    pub hosters: Vec<HosterStrategy>,
    /// Test-only: the in-memory DHT stores the records hosters send raw (past the predicate, as
    /// the `late` and `copycat` strategies do) without checking them, as a store that forgot the
    /// window rule would, so the tests can show invariant 7 catches it.
    pub broken_hoster_store: bool,
}

impl SimConfig {
    /// A small subnet for `seed`.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            validators: 7,
            miners: 6,
            epochs: 4,
            byzantine: Vec::new(),
            faults: Faults::default(),
            epoch_length: 20,
            block_ms: 1_000,
            broken_rule: false,
            hosters: Vec::new(),
            broken_hoster_store: false,
        }
    }
}

/// What one simulation found.
#[derive(Clone, Debug)]
pub struct SimResult {
    /// The seed.
    pub seed: u64,
    /// Invariant violations, each a sentence.
    pub violations: Vec<String>,
    /// SHA-256 over every effect executed and every DHT verdict, in order.
    pub trace: Hash32,
    /// Honest outcomes produced (node, run).
    pub outcomes: usize,
    /// Runs in which every honest node that aggregated met quorum.
    pub quorum_runs: u64,
    /// Exclusions by reason, over honest outcomes.
    pub exclusions: BTreeMap<String, u64>,
    /// Effects executed (hosters' included).
    pub effects: u64,
    /// The hosters, as the honest validators judged them (empty without hosters).
    pub hosters: Vec<HosterSummary>,
}

/// One simulated hoster, as the honest validators judged it over the runs simulated.
#[derive(Clone, Debug)]
pub struct HosterSummary {
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Its strategy.
    pub strategy: HosterStrategy,
    /// Its consensus score in each honest outcome that scored it.
    pub consensus: Vec<f64>,
    /// Honest outcomes that named it the winner.
    pub wins: u64,
    /// Its verdicts in the honest outcomes, by reason (`scored` for a score without one).
    pub reasons: BTreeMap<String, u64>,
    /// Epochs whose `hoster-commit` of it the DHT holds.
    pub commits: u64,
    /// Epochs whose `hoster-reveal` of it the DHT holds.
    pub reveals: u64,
    /// Times it crashed and restarted from its entries.
    pub restarts: u64,
    /// Of those, the times it crashed after its commit and before its reveal.
    pub restarts_before_reveal: u64,
}

/// What a node persisted: enough to restart it.
#[derive(Default)]
pub(crate) struct SimStore {
    runs: BTreeMap<u64, StoredRun>,
    divergence: Option<Vec<u8>>,
    pub evidence: BTreeMap<u64, Vec<Vec<u8>>>,
    pub outcomes: BTreeMap<u64, RunOutcome>,
}

impl SimStore {
    fn apply(&mut self, p: &Persist) {
        match p {
            Persist::OwnReport { run, wire, .. } => {
                let r = self.runs.entry(*run).or_insert_with(|| StoredRun {
                    run: *run,
                    ..Default::default()
                });
                if r.own_report.is_none() {
                    r.own_report = Some(wire.clone());
                    r.step = r.step.max(Some(Step::Scored));
                }
            }
            Persist::Members { run, members } => {
                self.runs
                    .entry(*run)
                    .or_insert_with(|| StoredRun {
                        run: *run,
                        ..Default::default()
                    })
                    .members = Some(members.clone());
            }
            Persist::Step { run, step } => {
                let r = self.runs.entry(*run).or_insert_with(|| StoredRun {
                    run: *run,
                    ..Default::default()
                });
                r.step = r.step.max(Some(*step));
                r.revealed |= *step == Step::Revealed;
            }
            Persist::Evidence { bytes } => {
                if let Ok(e) = tally_consensus::equivocation::Equivocation::from_bytes(bytes) {
                    let v = self.evidence.entry(e.first.body().run).or_default();
                    if !v.contains(bytes) {
                        v.push(bytes.clone());
                    }
                }
            }
            Persist::Divergence { bytes } => self.divergence = Some(bytes.clone()),
            Persist::Finish { outcome } => {
                let r = self.runs.entry(outcome.run).or_insert_with(|| StoredRun {
                    run: outcome.run,
                    ..Default::default()
                });
                r.step = Some(Step::Done);
                self.outcomes.insert(outcome.run, (**outcome).clone());
            }
            Persist::HosterSnapshot { run, commits } => {
                let r = self.runs.entry(*run).or_insert_with(|| StoredRun {
                    run: *run,
                    ..Default::default()
                });
                r.hoster_commits.get_or_insert_with(|| commits.clone());
            }
            Persist::Hosted { run, verdicts } => {
                let r = self.runs.entry(*run).or_insert_with(|| StoredRun {
                    run: *run,
                    ..Default::default()
                });
                r.hosted.get_or_insert_with(|| verdicts.clone());
            }
            Persist::ChallengeSent { run } => {
                self.runs
                    .entry(*run)
                    .or_insert_with(|| StoredRun {
                        run: *run,
                        ..Default::default()
                    })
                    .challenge_sent = true;
            }
            Persist::Snapshot { .. } | Persist::PeerReport { .. } | Persist::Rejected { .. } => {}
        }
    }

    fn stored(&self) -> Stored {
        Stored {
            runs: self.runs.values().rev().take(8).cloned().collect(),
            divergence: self.divergence.clone(),
        }
    }
}

pub(crate) struct Node {
    pub key: Keypair,
    pub strategy: Option<Strategy>,
    actor: Option<Box<dyn Actor>>,
    gen: u64,
    pub served: BTreeMap<u64, Vec<u8>>,
    /// Other validators' reports it serves for the exchange, by run.
    pub held: BTreeMap<u64, Vec<tally_validator::HeldReport>>,
    pub store: SimStore,
    /// Every report of this node shown to honest nodes, by run: served (an honest node's),
    /// published in the DHT, or received by an honest node (an adversary's, first-hand or
    /// relayed).
    pub shown: BTreeMap<u64, Vec<Vec<u8>>>,
    /// Of those, the reports of this node made available for invariant 4, by run: published,
    /// served by an honest node, or received by an honest node that still held it after the
    /// run's reveal close (see [`World::lose_memory`]).
    pub available: BTreeMap<u64, Vec<Vec<u8>>>,
    /// Reports of others this honest node received before their run's reveal close, held in
    /// memory only: `(author, run, wire)`. They become available once the close has passed
    /// and are lost if the node crashes first.
    got: Vec<(usize, u64, Vec<u8>)>,
    /// Runs it set weights for.
    pub weights_runs: BTreeSet<u64>,
    /// Down until this block (crashed).
    down_until: Option<u64>,
}

/// A simulated hoster: its actor, what it persisted, and whether it is down.
pub(crate) struct HosterNode {
    pub key: Keypair,
    pub strategy: HosterStrategy,
    actor: Option<Box<dyn HosterActor>>,
    gen: u64,
    /// Persisted entries, the first of each epoch (the last few epochs).
    entries: Vec<HosterEntry>,
    /// Down until this block (crashed).
    down_until: Option<u64>,
    restarts: u64,
    restarts_before_reveal: u64,
}

enum Ev {
    Block,
    Deliver {
        node: usize,
        gen: u64,
        input: Input,
    },
    Call {
        node: usize,
        gen: u64,
        call: Call,
    },
    Restart {
        node: usize,
    },
    HosterDeliver {
        hoster: usize,
        gen: u64,
        input: HosterInput,
    },
    HosterRestart {
        hoster: usize,
    },
}

enum Call {
    Commit { run: u64, data: Vec<u8> },
    Weights { run: u64, weights: Vec<(u16, u16)> },
}

/// The world.
pub struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    pub(crate) chain: LocalChain,
    pub(crate) nodes: Vec<Node>,
    pub(crate) hosters: Vec<HosterNode>,
    pub(crate) dht: BTreeMap<Hash32, SignedRecord>,
    /// Reveals read back this block: `key -> (block, report)`. The read-mode predicate depends
    /// only on the record and the view, which changes once a block.
    dht_reads: BTreeMap<Hash32, (u64, Option<Vec<u8>>)>,
    view: ChainView,
    head: u64,
    partition: Option<(BTreeSet<usize>, u64)>,
    pub(crate) qualities: Vec<(Hotkey, u32)>,
    /// The first block at which an honest node served or published a report, by run.
    pub(crate) first_reveal: BTreeMap<u64, u64>,
    /// Honest nodes' own scores, by run.
    pub(crate) honest_scores: BTreeMap<u64, Vec<(Hotkey, Scores)>>,
    pub(crate) stakes: Vec<u64>,
    trace: Sha256,
    effects: u64,
    family: FamilyId,
    /// Node index by hotkey.
    index: BTreeMap<Hotkey, usize>,
}

/// The body of `key`'s record of `kind` for `epoch`, or `None` for an oversized payload.
fn record_body(
    key: &Keypair,
    kind: Kind,
    epoch: u64,
    payload: Vec<u8>,
    expires_at_ms: u64,
) -> Option<RecordBody> {
    Some(RecordBody {
        kind,
        netuid: NETUID,
        epoch,
        publisher: key.hotkey(),
        payload: BoundedBytes::new(payload).ok()?,
        expires_at_ms,
    })
}

fn key_for(seed: u64, role: &str, i: usize) -> Keypair {
    Keypair::from_seed(&tally_core::sha256(&(seed, role, i as u64).encode())).deterministic()
}

impl World {
    /// A world for `cfg`.
    pub fn new(cfg: SimConfig) -> Result<World, String> {
        let n = cfg.validators;
        if !(2..=256).contains(&n) || cfg.miners == 0 || cfg.miners > 4096 {
            return Err("validators must be 2..=256 and miners 1..=4096".into());
        }
        if cfg.byzantine.len() >= n {
            return Err("too many byzantine validators for the number of validators".into());
        }
        if cfg.epoch_length < 10 {
            return Err("epochs must be at least 10 blocks".into());
        }
        if cfg.hosters.len() > 256 {
            return Err("hosters must be 0..=256".into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let nb = cfg.byzantine.len();
        let mut stakes: Vec<u64> = (0..n - nb).map(|_| rng.gen_range(20_000..30_000)).collect();
        // byzantine stake stays below one third of the eligible stake
        let honest: u64 = stakes.iter().sum();
        let each = if nb > 0 {
            ((honest / 2).saturating_sub(1) / nb as u64).clamp(1_000, 30_000)
        } else {
            0
        };
        stakes.extend(std::iter::repeat_n(each, nb));
        let owner = key_for(cfg.seed, "owner", 0);
        let keys: Vec<Keypair> = (0..n).map(|i| key_for(cfg.seed, "validator", i)).collect();
        let miners: Vec<Keypair> = (0..cfg.miners)
            .map(|i| key_for(cfg.seed, "miner", i))
            .collect();
        // a best miner (0.9), a runner-up inside the hysteresis margin (0.87: which of the two
        // wins depends on the incumbent), the others spread over [0.1, 0.7]
        let best = rng.gen_range(0..cfg.miners);
        let runner_up = (best + 1) % cfg.miners.max(1);
        let qualities: Vec<(Hotkey, u32)> = miners
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let q = if i == best {
                    900_000_000
                } else if i == runner_up {
                    870_000_000
                } else {
                    100_000_000 + (600_000_000u64 * i as u64 / cfg.miners.max(2) as u64) as u32
                };
                (k.hotkey(), q)
            })
            .collect();
        let params = SubnetParams {
            netuid: NETUID,
            epoch_length: cfg.epoch_length,
            epoch_offset: 0,
            block_ms: cfg.block_ms,
            weights_rate_limit: 1,
            commitment_max_bytes: 64,
            commitment_bytes_per_epoch: 1024,
            max_uids: 8192,
            min_validator_stake: 1_000,
            burn_uid: 0,
        };
        let neuron = |k: &Keypair, stake: u64, permit: bool, axon: String| {
            Genesis::neuron(NETUID, k.hotkey(), stake, permit, axon)
        };
        let mut neurons = vec![neuron(&owner, 0, false, String::new())];
        for (i, k) in keys.iter().enumerate() {
            neurons.push(neuron(k, stakes[i], true, format!("sim:{i}")));
        }
        for k in &miners {
            neurons.push(neuron(k, 0, false, String::new()));
        }
        let hoster_keys: Vec<Keypair> = (0..cfg.hosters.len())
            .map(|i| key_for(cfg.seed, "hoster", i))
            .collect();
        for k in &hoster_keys {
            neurons.push(neuron(k, 0, false, String::new()));
        }
        let chain = LocalChain::in_memory(&Genesis {
            timestamp_ms: 0,
            subnets: vec![params],
            neurons,
        })
        .map_err(|e| e.to_string())?;
        let family = FamilyId::new("synthetic").map_err(|e| e.to_string())?;
        let mut nodes = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let strategy = (i >= n - nb).then(|| cfg.byzantine[i - (n - nb)]);
            let mut node = Node {
                key: k.clone(),
                strategy,
                actor: None,
                gen: 0,
                served: BTreeMap::new(),
                held: BTreeMap::new(),
                store: SimStore::default(),
                shown: BTreeMap::new(),
                available: BTreeMap::new(),
                got: Vec::new(),
                weights_runs: BTreeSet::new(),
                down_until: None,
            };
            node.actor = Some(Self::actor(&cfg, &family, &node, rng.gen()));
            nodes.push(node);
        }
        let mut hosters = Vec::new();
        for (key, strategy) in hoster_keys.iter().zip(&cfg.hosters) {
            let mut h = HosterNode {
                key: key.clone(),
                strategy: *strategy,
                actor: None,
                gen: 0,
                entries: Vec::new(),
                down_until: None,
                restarts: 0,
                restarts_before_reveal: 0,
            };
            h.actor = Some(Self::hoster_actor(&h, rng.gen()));
            hosters.push(h);
        }
        // the predicate's metagraph: the validators, and the hosters (uids after the miners)
        let first_hoster_uid = 1 + n + cfg.miners;
        let registered = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.hotkey(),
                    Neuron {
                        uid: i as u16 + 1,
                        stake: stakes[i],
                        validator_permit: true,
                    },
                )
            })
            .chain(hoster_keys.iter().enumerate().map(|(j, k)| {
                (
                    k.hotkey(),
                    Neuron {
                        uid: (first_hoster_uid + j) as u16,
                        stake: 0,
                        validator_permit: false,
                    },
                )
            }));
        let view = ChainView::new(
            NETUID,
            EpochClock {
                length: cfg.epoch_length,
                offset: 0,
            },
            PhaseWindows::default(),
            ChainTime {
                block: 0,
                at_ms: 0,
                block_ms: cfg.block_ms,
            },
            Metagraph::new(registered)?,
            1_000,
        );
        let mut w = World {
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            chain,
            nodes,
            hosters,
            dht: BTreeMap::new(),
            dht_reads: BTreeMap::new(),
            view,
            head: 0,
            partition: None,
            qualities,
            first_reveal: BTreeMap::new(),
            honest_scores: BTreeMap::new(),
            stakes,
            trace: Sha256::new(),
            effects: 0,
            family,
            index: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.hotkey(), i))
                .collect(),
        };
        for i in 0..w.nodes.len() {
            let input = Input::Restore(Stored::default());
            w.push(
                0,
                Ev::Deliver {
                    node: i,
                    gen: 0,
                    input,
                },
            );
        }
        w.push(w.cfg.block_ms, Ev::Block);
        for j in 0..w.hosters.len() {
            let input = HosterInput::Restore(Vec::new());
            w.push(
                0,
                Ev::HosterDeliver {
                    hoster: j,
                    gen: 0,
                    input,
                },
            );
        }
        w.learn_seeds(0);
        Ok(w)
    }

    fn hoster_actor(h: &HosterNode, seed: [u8; 32]) -> Box<dyn HosterActor> {
        let inner = Hoster::new(HosterConfig::new(NETUID), h.key.clone(), seed);
        Box::new(ByzantineHoster::new(inner, h.strategy))
    }

    /// Gives the predicate's view the challenge seeds of `head`'s epoch and the one before,
    /// derived as `read_snapshot` derives them (from each epoch's first block), so the view's
    /// `elected()` agrees with the machines'.
    fn learn_seeds(&mut self, head: u64) {
        let clock = self.view.clock;
        let Some(epoch) = clock.epoch_of(head) else {
            return;
        };
        for e in [epoch.saturating_sub(1), epoch] {
            if self.view.seed(e).is_some() {
                continue;
            }
            if let Ok(Some(b)) = self.chain.block(clock.start_of(e)) {
                self.view.set_seed(e, challenge_seed(&b.hash, NETUID, e));
            }
        }
    }

    fn actor(cfg: &SimConfig, family: &FamilyId, node: &Node, seed: [u8; 32]) -> Box<dyn Actor> {
        let mut c = Config::new(NETUID, family.clone(), WeightMode::Decentralized);
        c.broken_any_commitment = cfg.broken_rule;
        if !cfg.hosters.is_empty() {
            c.execution = Execution::Both;
        }
        let m = Machine::new(c, node.key.clone(), seed);
        match node.strategy {
            Some(s) => Box::new(Byzantine::new(m, node.key.clone(), s)),
            None => Box::new(m),
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn latency(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.gen_range(lo..=hi)
    }

    fn link_ok(&mut self, a: usize, b: usize) -> bool {
        if let Some((cut, _)) = &self.partition {
            if cut.contains(&a) != cut.contains(&b) {
                return false;
            }
        }
        if self.nodes[b].down_until.is_some() {
            return false;
        }
        self.cfg.faults.loss_permille == 0
            || self.rng.gen_range(0..1000) >= self.cfg.faults.loss_permille
    }

    /// The last block the simulation runs to: the last run's reveal window closed, plus slack.
    fn last_block(&self) -> u64 {
        let l = self.cfg.epoch_length;
        (self.cfg.epochs + 1) * l + l / 2 + 6
    }

    /// Runs the world to its end and checks the invariants.
    pub fn run(mut self) -> SimResult {
        while let Some(((at, _), ev)) = self.queue.pop_first() {
            self.now = at;
            match ev {
                Ev::Block => self.block(),
                Ev::Deliver { node, gen, input } => self.deliver(node, gen, input),
                Ev::Call { node, gen, call } => self.call(node, gen, call),
                Ev::Restart { node } => self.restart(node),
                Ev::HosterDeliver { hoster, gen, input } => self.hoster_deliver(hoster, gen, input),
                Ev::HosterRestart { hoster } => self.hoster_restart(hoster),
            }
        }
        for i in 0..self.nodes.len() {
            self.lose_memory(i, u64::MAX);
        }
        let violations = invariants::check(&self);
        let mut exclusions = BTreeMap::new();
        let mut outcomes = 0;
        for n in self.nodes.iter().filter(|n| n.strategy.is_none()) {
            for o in n
                .store
                .outcomes
                .values()
                .filter(|o| o.run < self.cfg.epochs)
            {
                outcomes += 1;
                for x in &o.excluded {
                    *exclusions.entry(x.reason.clone()).or_insert(0) += 1;
                }
            }
        }
        let quorum_runs = (0..self.cfg.epochs)
            .filter(|r| {
                let os: Vec<&RunOutcome> = self
                    .nodes
                    .iter()
                    .filter(|n| n.strategy.is_none())
                    .filter_map(|n| n.store.outcomes.get(r))
                    .collect();
                !os.is_empty() && os.iter().all(|o| o.quorum_met)
            })
            .count() as u64;
        let hosters = self.hoster_summaries();
        SimResult {
            seed: self.cfg.seed,
            violations,
            trace: self.trace.finalize().into(),
            outcomes,
            quorum_runs,
            exclusions,
            effects: self.effects,
            hosters,
        }
    }

    fn hoster_summaries(&self) -> Vec<HosterSummary> {
        let outcomes: Vec<&RunOutcome> = self
            .nodes
            .iter()
            .filter(|n| n.strategy.is_none())
            .flat_map(|n| n.store.outcomes.values())
            .filter(|o| o.run < self.cfg.epochs)
            .collect();
        self.hosters
            .iter()
            .map(|h| {
                let hk = h.key.hotkey();
                let mut reasons = BTreeMap::new();
                for o in &outcomes {
                    if let Some(r) = o.hosters.get(&hk) {
                        let why = r.reason.clone().unwrap_or_else(|| "scored".into());
                        *reasons.entry(why).or_insert(0) += 1;
                    }
                }
                let held = |kind| {
                    (0..self.cfg.epochs)
                        .filter(|e| self.dht.contains_key(&record_key(NETUID, kind, *e, &hk)))
                        .count() as u64
                };
                HosterSummary {
                    hotkey: hk,
                    strategy: h.strategy,
                    consensus: outcomes
                        .iter()
                        .filter_map(|o| o.consensus.get(&hk).copied())
                        .collect(),
                    wins: outcomes.iter().filter(|o| o.winner == Some(hk)).count() as u64,
                    reasons,
                    commits: held(Kind::HosterCommit),
                    reveals: held(Kind::HosterReveal),
                    restarts: h.restarts,
                    restarts_before_reveal: h.restarts_before_reveal,
                }
            })
            .collect()
    }

    pub(crate) fn config(&self) -> &SimConfig {
        &self.cfg
    }

    fn block(&mut self) {
        let b = match self.chain.produce_block(self.now) {
            Ok(b) => b,
            Err(_) => return,
        };
        self.head = b.number;
        self.view.time = ChainTime {
            block: b.number,
            at_ms: b.timestamp_ms,
            block_ms: self.cfg.block_ms,
        };
        self.trace.update(b.hash);
        self.learn_seeds(b.number);
        // faults
        if let Some((_, until)) = &self.partition {
            if *until <= b.number {
                self.partition = None;
            }
        }
        let n = self.nodes.len();
        if self.cfg.faults.partitions && self.partition.is_none() && self.rng.gen_range(0..10) == 0
        {
            let size = self.rng.gen_range(1..=(n / 3).max(1));
            let mut cut = BTreeSet::new();
            while cut.len() < size {
                cut.insert(self.rng.gen_range(0..n));
            }
            let len = self.rng.gen_range(1..=3);
            self.partition = Some((cut, b.number + len));
        }
        if self.cfg.faults.crashes && self.rng.gen_range(0..12) == 0 {
            let i = self.rng.gen_range(0..n);
            if self.nodes[i].strategy.is_none() && self.nodes[i].down_until.is_none() {
                let back = b.number + self.rng.gen_range(2..=6);
                let node = &mut self.nodes[i];
                node.actor = None;
                node.gen += 1;
                node.served.clear();
                // the lists it served for the exchange were in memory too
                node.held.clear();
                node.down_until = Some(back);
                self.lose_memory(i, b.number);
                let at = self.now + (back - b.number) * self.cfg.block_ms + 10;
                self.push(at, Ev::Restart { node: i });
            }
        }
        for i in 0..n {
            if self.nodes[i].down_until.is_some() {
                continue;
            }
            let at = self.now + self.latency(0, 50);
            let gen = self.nodes[i].gen;
            self.push(
                at,
                Ev::Deliver {
                    node: i,
                    gen,
                    input: Input::Head(Head {
                        number: b.number,
                        timestamp_ms: b.timestamp_ms,
                    }),
                },
            );
        }
        if !self.hosters.is_empty() {
            self.hoster_block(b.number, b.timestamp_ms);
        }
        if b.number < self.last_block() {
            let next = self.now + self.cfg.block_ms;
            self.push(next, Ev::Block);
        }
    }

    /// The hosters' share of a block: an honest hoster may crash (see [`World::hoster_crash`]),
    /// and every hoster that is up gets the head, after a latency.
    fn hoster_block(&mut self, number: u64, timestamp_ms: u64) {
        if self.cfg.faults.crashes && self.rng.gen_range(0..4) == 0 {
            let honest: Vec<usize> = (0..self.hosters.len())
                .filter(|j| self.hosters[*j].strategy == HosterStrategy::Honest)
                .collect();
            if !honest.is_empty() {
                let j = honest[self.rng.gen_range(0..honest.len())];
                self.hoster_crash(j, number);
            }
        }
        for j in 0..self.hosters.len() {
            if self.hosters[j].down_until.is_some() {
                continue;
            }
            let at = self.now + self.latency(0, 50);
            let gen = self.hosters[j].gen;
            self.push(
                at,
                Ev::HosterDeliver {
                    hoster: j,
                    gen,
                    input: HosterInput::Head(Head {
                        number,
                        timestamp_ms,
                    }),
                },
            );
        }
    }

    /// Crashes honest hoster `j` at block `b` if that cannot cost it its score, and schedules
    /// its restart from its entries: between its commit and its reveal (it comes back in time to
    /// reveal inside the window: the first head it sees is the one after its restart), or once
    /// its reveal is out (it comes back before the next epoch starts, in time to read the next
    /// challenge).
    fn hoster_crash(&mut self, j: usize, b: u64) {
        if self.hosters[j].down_until.is_some() {
            return;
        }
        let clock = self.view.clock;
        let w = self.view.windows;
        let Some(e) = clock.epoch_of(b) else { return };
        let hk = self.hosters[j].key.hotkey();
        let held = |kind| self.dht.contains_key(&record_key(NETUID, kind, e, &hk));
        let revealed = held(Kind::HosterReveal);
        let last = if revealed {
            clock.start_of(e + 1).saturating_sub(1)
        } else if held(Kind::HosterCommit) {
            w.hoster_reveal.end_block(&clock, e).saturating_sub(2)
        } else {
            return;
        };
        if b + 1 > last {
            return;
        }
        let back = self.rng.gen_range(b + 1..=last);
        let h = &mut self.hosters[j];
        if !revealed {
            h.restarts_before_reveal += 1;
        }
        h.actor = None;
        h.gen += 1;
        h.down_until = Some(back);
        let at = self.now + (back - b) * self.cfg.block_ms + 10;
        self.trace.update(format!("hcrash {j} {b} {back}"));
        self.push(at, Ev::HosterRestart { hoster: j });
    }

    fn hoster_restart(&mut self, j: usize) {
        let seed: [u8; 32] = self.rng.gen();
        let h = &mut self.hosters[j];
        h.down_until = None;
        h.gen += 1;
        h.restarts += 1;
        h.actor = Some(Self::hoster_actor(h, seed));
        let entries = h.entries.clone();
        let gen = h.gen;
        self.trace.update(format!("hrestart {j}"));
        self.hoster_deliver(j, gen, HosterInput::Restore(entries));
    }

    fn hoster_deliver(&mut self, j: usize, gen: u64, input: HosterInput) {
        if self.hosters[j].gen != gen {
            return;
        }
        let Some(actor) = self.hosters[j].actor.as_mut() else {
            return;
        };
        let effects = actor.handle(input);
        for e in effects {
            self.hoster_execute(j, e);
        }
    }

    fn hoster_answer(&mut self, j: usize, delay: u64, input: HosterInput) {
        let gen = self.hosters[j].gen;
        self.push(
            self.now + delay,
            Ev::HosterDeliver {
                hoster: j,
                gen,
                input,
            },
        );
    }

    fn hoster_digest(&mut self, j: usize, e: &HosterEffect) {
        self.effects += 1;
        let t = &mut self.trace;
        t.update(self.now.to_le_bytes());
        t.update(b"hoster");
        t.update((j as u64).to_le_bytes());
        match e {
            HosterEffect::ReadChain { req, at_block } => t.update((0u8, req, at_block).encode()),
            HosterEffect::View(_) => t.update([1u8]),
            HosterEffect::Time(c) => t.update((2u8, c.block).encode()),
            HosterEffect::ReadChallenge { epoch, elected } => {
                t.update((3u8, epoch, elected).encode())
            }
            HosterEffect::Infer { epoch, input } => t.update((4u8, epoch, input).encode()),
            HosterEffect::Persist(entry) => t.update((5u8, entry).encode()),
            HosterEffect::Publish {
                kind,
                epoch,
                payload,
                expires_at_ms,
                raw,
            } => t.update((6u8, kind.name(), epoch, payload, expires_at_ms, raw).encode()),
            HosterEffect::ReadReveals { epoch, hosters } => {
                t.update((7u8, epoch, hosters).encode())
            }
        }
    }

    fn hoster_execute(&mut self, j: usize, e: HosterEffect) {
        self.hoster_digest(j, &e);
        match e {
            HosterEffect::ReadChain { req, at_block } => {
                let result = read_snapshot(&self.chain, NETUID, at_block);
                let d = self.latency(5, 100);
                self.hoster_answer(j, d, HosterInput::Snapshot { req, result });
            }
            HosterEffect::View(_) | HosterEffect::Time(_) => {}
            HosterEffect::ReadChallenge { epoch, elected } => {
                let found = match self.dht_payload(Kind::Challenge, epoch, &elected) {
                    Some(Payload::Challenge(t)) => Some(t),
                    _ => None,
                };
                let d = self.latency(10, 300);
                self.hoster_answer(j, d, HosterInput::Challenge { epoch, found });
            }
            HosterEffect::Infer { epoch, input } => {
                let result = crate::toy_model::reference(&input);
                let d = self.latency(20, 300);
                self.hoster_answer(j, d, HosterInput::Inferred { epoch, result });
            }
            HosterEffect::Persist(entry) => {
                let entries = &mut self.hosters[j].entries;
                if !entries.iter().any(|x| x.epoch == entry.epoch) {
                    entries.push(entry);
                    entries.sort_by_key(|x| x.epoch);
                    while entries.len() > 8 {
                        entries.remove(0);
                    }
                }
            }
            HosterEffect::Publish {
                kind,
                epoch,
                payload,
                expires_at_ms,
                raw,
            } => {
                // raw or not: the in-memory DHT is one store, every record passes its predicate
                let key = self.hosters[j].key.clone();
                let unchecked = raw && self.cfg.broken_hoster_store;
                let body = record_body(&key, kind, epoch, payload, expires_at_ms);
                let verdict = self.publish_as(&format!("h{j}"), &key, body, unchecked);
                let late = match verdict {
                    Some(Err(reason)) => tally_validator::hosted::late_reveal(
                        Some(kind),
                        Some(key.hotkey()),
                        Some(epoch),
                        reason,
                    ),
                    _ => None,
                };
                if let Some(input) = late {
                    // every validator's DHT refused it as late: its driver tells the machine
                    for i in 0..self.nodes.len() {
                        if self.nodes[i].down_until.is_some() {
                            continue;
                        }
                        let d = self.latency(10, 300);
                        self.answer(i, d, input.clone());
                    }
                }
            }
            HosterEffect::ReadReveals { epoch, hosters } => {
                let reveals = hosters
                    .iter()
                    .filter_map(|h| match self.dht_payload(Kind::HosterReveal, epoch, h) {
                        Some(Payload::HosterReveal(r)) => Some((*h, r)),
                        _ => None,
                    })
                    .collect();
                let d = self.latency(10, 300);
                self.hoster_answer(j, d, HosterInput::Reveals { epoch, reveals });
            }
        }
    }

    fn restart(&mut self, i: usize) {
        let family = self.family.clone();
        let seed: [u8; 32] = self.rng.gen();
        let node = &mut self.nodes[i];
        node.down_until = None;
        node.gen += 1;
        node.actor = Some(Self::actor(&self.cfg, &family, node, seed));
        let stored = node.store.stored();
        let gen = node.gen;
        self.trace.update(b"restart");
        self.trace.update((i as u64).to_le_bytes());
        self.deliver(i, gen, Input::Restore(stored));
    }

    fn deliver(&mut self, i: usize, gen: u64, input: Input) {
        if self.nodes[i].gen != gen {
            return;
        }
        let Some(actor) = self.nodes[i].actor.as_mut() else {
            return;
        };
        let effects = actor.handle(input);
        for e in effects {
            self.execute(i, e);
        }
    }

    fn answer(&mut self, i: usize, delay: u64, input: Input) {
        let gen = self.nodes[i].gen;
        self.push(
            self.now + delay,
            Ev::Deliver {
                node: i,
                gen,
                input,
            },
        );
    }

    fn call(&mut self, i: usize, gen: u64, call: Call) {
        if self.nodes[i].gen != gen {
            return;
        }
        let key = self.nodes[i].key.clone();
        match call {
            Call::Commit { run, data } => {
                let result = extrinsic::commit(data)
                    .and_then(|c| tally_chain::submit_call(&self.chain, &key, NETUID, c))
                    .map_err(|e| e.to_string());
                self.trace.update(format!("commit {i} {run} {result:?}"));
                self.deliver(i, gen, Input::Committed { run, result });
            }
            Call::Weights { run, weights } => {
                let result = extrinsic::set_weights(weights)
                    .and_then(|c| tally_chain::submit_call(&self.chain, &key, NETUID, c))
                    .map_err(|e| e.to_string());
                if result.is_ok() {
                    self.nodes[i].weights_runs.insert(run);
                }
                self.trace.update(format!("weights {i} {run} {result:?}"));
                self.deliver(i, gen, Input::WeightsSet { run, result });
            }
        }
    }

    fn digest(&mut self, i: usize, e: &Effect) {
        self.effects += 1;
        let t = &mut self.trace;
        t.update(self.now.to_le_bytes());
        t.update((i as u64).to_le_bytes());
        match e {
            Effect::ReadChain { req, at_block } => t.update((0u8, req, at_block).encode()),
            Effect::View(_) => t.update([1u8]),
            Effect::Time(c) => t.update((2u8, c.block).encode()),
            Effect::Score {
                run, seed, miners, ..
            } => t.update((3u8, run, seed, miners.len() as u64).encode()),
            Effect::Persist(p) => {
                let tag: u8 = match p {
                    Persist::OwnReport { wire, .. } => {
                        t.update(wire);
                        0
                    }
                    Persist::Members { .. } => 1,
                    Persist::Step { run, step } => {
                        t.update((run, *step as u8).encode());
                        2
                    }
                    Persist::Snapshot { commits, .. } => {
                        t.update(commits.encode());
                        3
                    }
                    Persist::PeerReport { run, validator, .. } => {
                        t.update((run, validator).encode());
                        4
                    }
                    Persist::Rejected {
                        run,
                        validator,
                        reason,
                    } => {
                        t.update((run, validator, reason.as_bytes()).encode());
                        5
                    }
                    Persist::Evidence { bytes } => {
                        t.update(bytes);
                        6
                    }
                    Persist::Divergence { .. } => 7,
                    Persist::HosterSnapshot { commits, .. } => {
                        t.update(commits.encode());
                        9
                    }
                    Persist::Hosted { verdicts, .. } => {
                        t.update(verdicts.encode());
                        10
                    }
                    Persist::ChallengeSent { run } => {
                        t.update(run.encode());
                        11
                    }
                    Persist::Finish { outcome } => {
                        let o = outcome;
                        t.update(
                            (
                                o.run,
                                o.quorum_met,
                                &o.uid_weights,
                                o.winner,
                                &o.accepted,
                                o.excluded
                                    .iter()
                                    .map(|x| (x.validator, x.reason.as_bytes()))
                                    .collect::<Vec<_>>(),
                            )
                                .encode(),
                        );
                        8
                    }
                };
                t.update([4u8, tag]);
            }
            Effect::PostCommitment { run, data } => t.update((5u8, run, data).encode()),
            Effect::Publish { kind, run, payload } => {
                t.update((6u8, kind.name(), run).encode());
                t.update(payload);
            }
            Effect::Serve { run, wire } => {
                t.update((7u8, run).encode());
                t.update(wire);
            }
            Effect::FetchReports {
                req, run, targets, ..
            } => t.update((8u8, req, run, targets.len() as u64).encode()),
            Effect::ServeHeld { run, reports, .. } => {
                t.update((13u8, run, reports.len() as u64).encode())
            }
            Effect::ReadCommitments { req, run, from, to } => {
                t.update((9u8, req, run, from, to).encode())
            }
            Effect::ReadIncumbent { req, run, at_block } => {
                t.update((10u8, req, run, at_block).encode())
            }
            Effect::FetchOwnerPick { req, run } => t.update((11u8, req, run).encode()),
            Effect::ReadHosterCommits { req, run, hosters } => {
                t.update((14u8, req, run, hosters).encode())
            }
            Effect::ReadHosted {
                req,
                run,
                elected,
                hosters,
            } => t.update((15u8, req, run, elected, hosters).encode()),
            Effect::ScoreHosted {
                run,
                input,
                outputs,
            } => t.update((16u8, run, input, outputs).encode()),
            Effect::SetWeights { run, weights } => t.update((12u8, run, weights).encode()),
        }
    }

    fn score(&self, validator: &Hotkey, run: u64, miners: &[Hotkey]) -> Vec<(Hotkey, Score)> {
        let q: BTreeMap<&Hotkey, u32> = self.qualities.iter().map(|(k, q)| (k, *q)).collect();
        miners
            .iter()
            .filter_map(|m| {
                let base = *q.get(m)? as i64;
                let mut r = ChaCha8Rng::from_seed(tally_core::sha256(
                    &(self.cfg.seed, run, validator, m).encode(),
                ));
                if self.cfg.faults.abstain && r.gen_range(0..3) == 0 {
                    return None;
                }
                let noisy = base + r.gen_range(-20_000_000i64..=20_000_000);
                Score::from_units(noisy.clamp(0, 1_000_000_000) as u32)
                    .ok()
                    .map(|s| (*m, s))
            })
            .collect()
    }

    /// Validator `i` publishes a record that lives four epochs.
    fn publish(&mut self, i: usize, kind: Kind, run: u64, payload: Vec<u8>) {
        let key = self.nodes[i].key.clone();
        let ttl = (self.cfg.block_ms * self.cfg.epoch_length * 4).min(kind.max_ttl_ms());
        let expires_at_ms = self.now + ttl;
        let body = record_body(&key, kind, run, payload, expires_at_ms);
        self.publish_as(&i.to_string(), &key, body, false);
    }

    /// `key` signs `body` and stores the record in the DHT if the predicate takes it (or into an
    /// empty slot unchecked, for [`SimConfig::broken_hoster_store`]); `who` names the publisher
    /// in the trace. The verdict (`Ok(replica)`), or `None` when the record could not be made.
    fn publish_as(
        &mut self,
        who: &str,
        key: &Keypair,
        body: Option<RecordBody>,
        unchecked: bool,
    ) -> Option<Result<bool, Reject>> {
        let body = body?;
        let (kind, run) = (body.kind, body.epoch);
        let rec = SignedRecord::sign(body, key).ok()?;
        let k = rec.key();
        let bytes = rec.to_bytes();
        let verdict = match check(
            &k,
            &bytes,
            self.now,
            &self.view,
            self.dht.get(&k),
            Mode::Store,
        ) {
            Err(_) if unchecked && !self.dht.contains_key(&k) => Ok(false),
            v => v.map(|v| v.replica),
        };
        self.trace.update(
            format!(
                "dht {who} {} {run} {:?}",
                kind.name(),
                verdict.map_err(|r| r.name())
            )
            .as_bytes(),
        );
        if verdict.is_ok() {
            self.dht.insert(k, rec);
        }
        Some(verdict)
    }

    /// `publisher`'s record of `kind` for `run`, if it passes the predicate in read mode now.
    pub(crate) fn dht_payload(&self, kind: Kind, run: u64, publisher: &Hotkey) -> Option<Payload> {
        let k = record_key(NETUID, kind, run, publisher);
        let rec = self.dht.get(&k)?;
        // the signature was checked when the record was stored
        check_without_signature(&k, &rec.to_bytes(), self.now, &self.view, None, Mode::Read)
            .ok()
            .map(|v| v.payload)
    }

    fn dht_reveal(&mut self, run: u64, publisher: &Hotkey) -> Option<Vec<u8>> {
        let k = record_key(NETUID, Kind::ValidatorReveal, run, publisher);
        if let Some((b, r)) = self.dht_reads.get(&k) {
            if *b == self.head {
                return r.clone();
            }
        }
        let rec = self.dht.get(&k)?;
        // the signature was checked when the record was stored
        let r =
            check_without_signature(&k, &rec.to_bytes(), self.now, &self.view, None, Mode::Read)
                .ok()
                .and_then(|v| match v.payload {
                    Payload::ValidatorReveal(r) => Some(r.to_bytes()),
                    _ => None,
                });
        self.dht_reads.insert(k, (self.head, r.clone()));
        r
    }

    fn execute(&mut self, i: usize, e: Effect) {
        self.digest(i, &e);
        let honest = self.nodes[i].strategy.is_none();
        match e {
            Effect::ReadChain { req, at_block } => {
                let result = read_snapshot(&self.chain, NETUID, at_block);
                let d = self.latency(5, 100);
                self.answer(i, d, Input::Snapshot { req, result });
            }
            Effect::View(_) | Effect::Time(_) => {}
            Effect::Score { run, miners, .. } => {
                let me = self.nodes[i].key.hotkey();
                let scores = self.score(&me, run, &miners);
                let d = self.latency(50, 2_000);
                self.answer(
                    i,
                    d,
                    Input::Scored {
                        run,
                        result: Ok(scores),
                    },
                );
            }
            Effect::Persist(p) => {
                if let (true, Persist::OwnReport { run, wire, .. }) = (honest, &p) {
                    if let Ok(r) = tally_core::ScoreReport::from_bytes(wire) {
                        let me = self.nodes[i].key.hotkey();
                        self.honest_scores
                            .entry(*run)
                            .or_default()
                            .push((me, r.body().scores.to_vec()));
                    }
                }
                self.nodes[i].store.apply(&p);
            }
            Effect::PostCommitment { run, data } => self.chain_call(i, Call::Commit { run, data }),
            Effect::Publish { kind, run, payload } => {
                if kind == Kind::ValidatorReveal {
                    self.shown(i, run, &payload);
                    self.available(i, run, &payload);
                }
                self.publish(i, kind, run, payload);
            }
            Effect::Serve { run, wire } => {
                // an honest node's report is out once served; an adversary's counts as made
                // available once an honest node got it (see `FetchReports`)
                if honest {
                    self.shown(i, run, &wire);
                    self.available(i, run, &wire);
                }
                self.nodes[i].served.insert(run, wire);
            }
            Effect::ServeHeld { run, reports, .. } => {
                let held = &mut self.nodes[i].held;
                held.insert(run, reports);
                while held.len() > 8 {
                    held.pop_first();
                }
            }
            Effect::FetchReports {
                req,
                run,
                targets,
                known,
            } => {
                let me = self.nodes[i].key.hotkey();
                let mut fetched = Vec::with_capacity(targets.len());
                // the reports an honest node got here, first-hand or relayed, by signer
                let mut delivered: Vec<(usize, Vec<u8>)> = Vec::new();
                for t in targets {
                    let Some(&j) = self.index.get(&t.hotkey) else {
                        continue;
                    };
                    let reachable = (t.http || t.evidence || t.relay) && self.link_ok(i, j);
                    let peer = &self.nodes[j];
                    let shows = peer.actor.as_ref().is_some_and(|a| a.serves_to(run, &me));
                    let http = (reachable && t.http && shows)
                        .then(|| {
                            let alt = peer.actor.as_ref().and_then(|a| a.shown_to(run, &me));
                            alt.or_else(|| peer.served.get(&run).cloned())
                        })
                        .flatten();
                    if let (true, Some(w)) = (honest, &http) {
                        delivered.push((j, w.clone()));
                    }
                    let evidence = if reachable && t.evidence {
                        peer.store.evidence.get(&run).cloned().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    // the exchange: the peer's list of digests, then the reports not known (a
                    // peer that serves no list for the run, say one just restarted, answers
                    // 404 and was not reached)
                    let exchanged = reachable && t.relay && shows && peer.held.contains_key(&run);
                    let relayed = if exchanged {
                        peer.held
                            .get(&run)
                            .map(|h| {
                                h.iter()
                                    .filter(|x| {
                                        x.validator != me && known.binary_search(&x.digest).is_err()
                                    })
                                    .take(tally_validator::collect::MAX_RELAYED_PER_PEER)
                                    .map(|x| x.wire.clone())
                                    .collect()
                            })
                            .unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    let dht = if t.dht {
                        self.dht_reveal(run, &t.hotkey)
                    } else {
                        None
                    };
                    fetched.push(Fetched {
                        hotkey: t.hotkey,
                        http,
                        dht,
                        evidence,
                        relayed,
                        exchanged,
                    });
                }
                if honest {
                    for f in &fetched {
                        for w in &f.relayed {
                            let signer = tally_core::ScoreReport::from_bytes(w)
                                .ok()
                                .filter(|r| r.verify().is_ok())
                                .and_then(|r| self.index.get(&r.body().validator).copied());
                            if let Some(j) = signer {
                                delivered.push((j, w.clone()));
                            }
                        }
                    }
                }
                let close = reveal_close_block(&self.view.clock, &self.view.windows, run);
                for (j, w) in delivered {
                    self.shown(j, run, &w);
                    if self.head <= close {
                        self.nodes[i].got.push((j, run, w));
                    } else {
                        self.available(j, run, &w);
                    }
                }
                let d = self.latency(10, 500);
                self.answer(i, d, Input::Reports { req, run, fetched });
            }
            Effect::ReadCommitments { req, run, from, to } => {
                let result = self
                    .chain
                    .commitments_in(NETUID, from, to)
                    .map(|v| v.into_iter().map(|(k, c)| (k, c.block, c.data)).collect())
                    .map_err(|e| e.to_string());
                let d = self.latency(5, 100);
                self.answer(i, d, Input::Commitments { req, run, result });
            }
            Effect::ReadIncumbent { req, run, at_block } => {
                let result = self
                    .chain
                    .winner_at(NETUID, at_block)
                    .map_err(|e| e.to_string());
                let d = self.latency(5, 100);
                self.answer(i, d, Input::Incumbent { req, run, result });
            }
            Effect::FetchOwnerPick { req, run } => {
                self.answer(
                    i,
                    10,
                    Input::OwnerPick {
                        req,
                        run,
                        pick: None,
                    },
                );
            }
            Effect::SetWeights { run, weights } => {
                self.chain_call(i, Call::Weights { run, weights })
            }
            Effect::ReadHosterCommits { req, run, hosters } => {
                let result = Ok(hosters
                    .iter()
                    .filter_map(|h| match self.dht_payload(Kind::HosterCommit, run, h) {
                        Some(Payload::Commit(c)) => Some((*h, c)),
                        _ => None,
                    })
                    .collect());
                let d = self.latency(10, 300);
                self.answer(i, d, Input::HosterCommits { req, run, result });
            }
            Effect::ReadHosted {
                req,
                run,
                elected,
                hosters,
            } => {
                let challenge =
                    elected.and_then(|e| match self.dht_payload(Kind::Challenge, run, &e) {
                        Some(Payload::Challenge(t)) => Some(t),
                        _ => None,
                    });
                let reveals = hosters
                    .iter()
                    .filter_map(|h| match self.dht_payload(Kind::HosterReveal, run, h) {
                        Some(Payload::HosterReveal(r)) => Some((*h, r)),
                        _ => None,
                    })
                    .collect();
                let d = self.latency(10, 300);
                self.answer(
                    i,
                    d,
                    Input::Hosted {
                        req,
                        run,
                        challenge,
                        reveals,
                    },
                );
            }
            Effect::ScoreHosted {
                run,
                input,
                outputs,
            } => {
                let result = crate::toy_model::score_all(&input, &outputs);
                let d = self.latency(10, 200);
                self.answer(i, d, Input::HostedScored { run, result });
            }
        }
    }

    /// A chain write of node `i`, included after a network delay.
    fn chain_call(&mut self, i: usize, call: Call) {
        let d = self.latency(20, 400);
        let gen = self.nodes[i].gen;
        self.push(self.now + d, Ev::Call { node: i, gen, call });
    }

    /// Node `i` crashes at block `b` (`u64::MAX`: the simulation ended): the reports it got
    /// before a reveal close at or after `b` are lost with its memory (the machine keeps no
    /// collected report across a restart, and it was down for the exchange); the others were
    /// held past their close, in time for the exchange, and count as made available.
    fn lose_memory(&mut self, i: usize, b: u64) {
        for (j, run, w) in std::mem::take(&mut self.nodes[i].got) {
            if reveal_close_block(&self.view.clock, &self.view.windows, run) < b {
                self.available(j, run, &w);
            }
        }
    }

    fn available(&mut self, i: usize, run: u64, wire: &[u8]) {
        let v = self.nodes[i].available.entry(run).or_default();
        if !v.iter().any(|w| w == wire) {
            v.push(wire.to_vec());
        }
    }

    fn shown(&mut self, i: usize, run: u64, wire: &[u8]) {
        if self.nodes[i].strategy.is_none() {
            let h = self.head;
            let e = self.first_reveal.entry(run).or_insert(h);
            *e = (*e).min(h);
        }
        let v = self.nodes[i].shown.entry(run).or_default();
        if !v.iter().any(|w| w == wire) {
            v.push(wire.to_vec());
        }
    }
}
