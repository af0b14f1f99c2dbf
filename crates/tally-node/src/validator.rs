//! The validator service.
//!
//! Every tick it reads the chain (head, parameters, metagraph), refreshes what the API and the
//! DHT predicate see, and does whatever the run schedule says is due, recording each step in
//! its database so a restarted node resumes where it was:
//!
//! | when (chain position) | step for run `e` |
//! | --- | --- |
//! | epoch `e`, any time | score the miners, sign the report, store it (the first report is kept for good) |
//! | epoch `e`, p >= 0.6 (validator-commit window) | post `SCALE((e, commitment))` on chain and a `validator-commit` DHT record |
//! | epoch `e+1`, p < 0.5 (reveal window) | publish the `validator-reveal` DHT record; the API now serves the report (425 before) |
//! | epoch `e+1`, p >= 0.5 | collect and verify every eligible validator's report, aggregate, decide weights by mode, set them |
//!
//! Verification of a peer's report ([`verify_report`]): signed by the hotkey the metagraph lists
//! at that address, for this netuid, run and family, and hashing to that hotkey's commitment for
//! the run made on chain inside the commit window. Two different validly signed reports from one
//! hotkey for one run (say one over HTTP and another in the DHT) are an equivocation: the proof
//! is stored and the validator left out.
//!
//! Devnet byzantine strategies ([`Byzantine`]) change only what a dishonest node publishes.

use crate::api::{ApiState, Timing};
use crate::peer::PeerClient;
use crate::scorer::Scorer;
use crate::store::{NodeStore, Step};
use parity_scale_codec::{Decode, Encode};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tally_chain::{extrinsic, Chain, ChainError, Metagraph as ChainMetagraph, SubnetParams};
use tally_consensus::divergence::{DivergenceEntry, DivergenceTracker};
use tally_consensus::equivocation::find_equivocations;
use tally_consensus::{decide_run, decide_weights, Params, RunInput, WeightMode, Weights};
use tally_core::hash::Hash32;
use tally_core::{FamilyId, Hotkey, Keypair, ReportBody, Score, ScoreReport, Signed};
use tally_net::Dht;
use tally_protocol::payload::{Commit, Payload};
use tally_protocol::view::challenge_seed;
use tally_protocol::{ChainTime, ChainView, EpochClock, Kind, Metagraph, Neuron, PhaseWindows};
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// A devnet byzantine strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Boost one miner to 1.0 (committed and revealed consistently).
    Inflate,
    /// Serve one signed report over HTTP and publish a different one in the DHT.
    Equivocate,
    /// Reveal a copy of another validator's scores (re-signed), not what was committed.
    Copy,
    /// Commit, never reveal.
    Withhold,
    /// Serve a report signed by another key.
    Forge,
}

impl std::str::FromStr for Byzantine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inflate" => Ok(Byzantine::Inflate),
            "equivocate" => Ok(Byzantine::Equivocate),
            "copy" => Ok(Byzantine::Copy),
            "withhold" => Ok(Byzantine::Withhold),
            "forge" => Ok(Byzantine::Forge),
            _ => Err(format!("unknown byzantine strategy {s:?}: use inflate, equivocate, copy, withhold or forge")),
        }
    }
}

impl Byzantine {
    /// The strategy's name.
    pub fn name(self) -> &'static str {
        match self {
            Byzantine::Inflate => "inflate",
            Byzantine::Equivocate => "equivocate",
            Byzantine::Copy => "copy",
            Byzantine::Withhold => "withhold",
            Byzantine::Forge => "forge",
        }
    }
}

/// Why a report was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exclusion {
    /// Nothing was revealed (unreachable, withheld).
    NoReport,
    /// Bytes that do not decode.
    Malformed,
    /// The signature does not verify.
    BadSignature,
    /// Signed by a hotkey other than the one at that address.
    WrongSigner,
    /// For another netuid, run or family.
    WrongRun,
    /// No commitment for the run inside the commit window.
    NoCommitment,
    /// The report does not hash to the commitment.
    CommitmentMismatch,
    /// Two different signed reports for the run.
    Equivocation,
}

impl Exclusion {
    /// A stable name.
    pub fn name(self) -> &'static str {
        match self {
            Exclusion::NoReport => "no_report",
            Exclusion::Malformed => "malformed",
            Exclusion::BadSignature => "bad_signature",
            Exclusion::WrongSigner => "wrong_signer",
            Exclusion::WrongRun => "wrong_run",
            Exclusion::NoCommitment => "no_commitment",
            Exclusion::CommitmentMismatch => "commitment_mismatch",
            Exclusion::Equivocation => "equivocation",
        }
    }
}

/// Errors of one tick; the loop logs them and tries again next tick.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Settings of a validator.
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    /// The subnet.
    pub netuid: u16,
    /// The task family scored.
    pub family: FamilyId,
    /// Weight mode.
    pub mode: WeightMode,
    /// Aggregation parameters.
    pub params: Params,
    /// The owner's endpoint (`host:port`) for its pick, in owner and shadow modes.
    pub owner: Option<String>,
    /// A byzantine strategy (devnet only).
    pub byzantine: Option<Byzantine>,
    /// Runs kept in the divergence window.
    pub divergence_window: usize,
    /// Tick interval.
    pub tick: Duration,
    /// Timeout of one peer request.
    pub http_timeout: Duration,
}

/// A commitment posted on chain: `SCALE((run, commitment))`.
pub fn commitment_data(run: u64, commitment: &Hash32) -> Vec<u8> {
    (run, *commitment).encode()
}

/// The commitment of `run` among `history`, if one was made inside the run's commit window.
pub fn commitment_for_run(
    history: &[tally_chain::Commitment],
    run: u64,
    clock: &EpochClock,
    windows: &PhaseWindows,
) -> Option<Hash32> {
    let (start, end) = windows.validator_commit.bounds_mb(clock, run);
    let skew = windows.skew_mb as u128;
    history.iter().rev().find_map(|c| {
        let at = c.block as u128 * 1000;
        if at + skew < start || at >= end + skew {
            return None;
        }
        match <(u64, Hash32)>::decode(&mut &c.data[..]) {
            Ok((r, h)) if r == run => Some(h),
            _ => None,
        }
    })
}

/// Checks a fetched report against the hotkey at that address, the run, the family and the
/// commitment; returns it or why it is left out.
pub fn verify_report(
    wire: &[u8],
    expected: &Hotkey,
    netuid: u16,
    run: u64,
    family: &FamilyId,
    commitment: Option<&Hash32>,
) -> Result<ScoreReport, Exclusion> {
    let r = ScoreReport::from_bytes(wire).map_err(|_| Exclusion::Malformed)?;
    check_report(r, expected, netuid, run, family, commitment)
}

/// [`verify_report`] for a report already decoded.
pub fn check_report(
    r: ScoreReport,
    expected: &Hotkey,
    netuid: u16,
    run: u64,
    family: &FamilyId,
    commitment: Option<&Hash32>,
) -> Result<ScoreReport, Exclusion> {
    r.verify().map_err(|_| Exclusion::BadSignature)?;
    let b = r.body();
    if b.validator != *expected {
        return Err(Exclusion::WrongSigner);
    }
    if b.netuid != netuid || b.run != run || b.family_id != *family {
        return Err(Exclusion::WrongRun);
    }
    match commitment {
        None => Err(Exclusion::NoCommitment),
        Some(c) if *c != r.commitment() => Err(Exclusion::CommitmentMismatch),
        Some(_) => Ok(r),
    }
}

/// The protocol's metagraph and view from a chain snapshot.
pub fn chain_view(
    params: &SubnetParams,
    mg: &ChainMetagraph,
    head: &tally_chain::BlockInfo,
    seeds: &[(u64, Hash32)],
) -> ChainView {
    let neurons = mg.neurons.iter().map(|n| {
        (
            n.hotkey,
            Neuron {
                uid: n.uid,
                stake: n.stake,
                validator_permit: n.validator_permit,
            },
        )
    });
    let mut v = ChainView::new(
        params.netuid,
        EpochClock {
            length: params.epoch_length,
            offset: params.epoch_offset,
        },
        PhaseWindows::default(),
        ChainTime {
            block: head.number,
            at_ms: head.timestamp_ms,
            block_ms: params.block_ms,
        },
        Metagraph::new(neurons).unwrap_or_default(),
        params.min_validator_stake,
    );
    for (e, s) in seeds {
        v.set_seed(*e, *s);
    }
    v
}

/// How long this node's DHT records live: four epochs (saturating: the parameters come from
/// the chain).
fn record_ttl(p: &SubnetParams) -> Duration {
    Duration::from_millis(p.block_ms.saturating_mul(p.epoch_length).saturating_mul(4))
}

/// A validator node.
pub struct Validator {
    cfg: ValidatorConfig,
    key: Keypair,
    chain: Arc<dyn Chain>,
    store: Arc<NodeStore>,
    api: Arc<ApiState>,
    dht: Option<Dht>,
    scorer: Arc<dyn Scorer>,
    peers: PeerClient,
    cache: std::sync::Mutex<Option<Snapshot>>,
    /// Reports collected during a run's reveal window: `run -> validator -> (http, dht)`.
    collected: tokio::sync::Mutex<BTreeMap<u64, BTreeMap<Hotkey, Fetched>>>,
}

/// What was fetched for one validator: its report over HTTP and its DHT reveal.
type Fetched = (Option<Vec<u8>>, Option<Vec<u8>>);

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Other(e.to_string()))
}

fn random_salt() -> [u8; 32] {
    let mut s = [0u8; 32];
    if getrandom::getrandom(&mut s).is_err() {
        s = tally_core::sha256(
            &std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                .to_le_bytes(),
        );
    }
    s
}

#[derive(Clone)]
struct Snapshot {
    epoch: u64,
    params: SubnetParams,
    mg: ChainMetagraph,
    seeds: Vec<(u64, Hash32)>,
}

struct Tick {
    params: SubnetParams,
    mg: ChainMetagraph,
    clock: EpochClock,
    windows: PhaseWindows,
    progress_ppb: u32,
    seeds: Vec<(u64, Hash32)>,
}

impl Validator {
    /// A validator; `api` is the state its HTTP server serves.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: ValidatorConfig,
        key: Keypair,
        chain: Arc<dyn Chain>,
        store: Arc<NodeStore>,
        api: Arc<ApiState>,
        dht: Option<Dht>,
        scorer: Arc<dyn Scorer>,
    ) -> Self {
        let peers = PeerClient::new(key.clone(), cfg.http_timeout, api.now_ms.clone());
        Validator {
            cfg,
            key,
            chain,
            store,
            api,
            dht,
            scorer,
            peers,
            cache: std::sync::Mutex::new(None),
            collected: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(self.cfg.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    if let Err(e) = self.tick().await {
                        warn!(validator = %self.key.hotkey(), "tick failed: {e}");
                    }
                }
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        debug!(validator = %self.key.hotkey(), "validator stopped");
    }

    async fn chain<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Chain) -> Result<T, ChainError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let c = self.chain.clone();
        Ok(blocking(move || f(c.as_ref())).await??)
    }

    /// One pass of the schedule.
    pub async fn tick(&self) -> Result<(), NodeError> {
        let netuid = self.cfg.netuid;
        let head = self.chain(|c| c.head()).await?;
        // parameters, metagraph and seeds change at most once an epoch here: refresh them when
        // the head enters a new epoch (or an epoch has passed), not every tick
        let cached = self.cache.lock().ok().and_then(|c| c.clone());
        let fresh = match &cached {
            Some(c) => {
                let len = c.params.epoch_length.max(1);
                head.number.saturating_sub(c.params.epoch_offset) / len != c.epoch
            }
            None => true,
        };
        let snap = if fresh {
            let (params, mg) = self
                .chain(move |c| Ok((c.params(netuid)?, c.metagraph(netuid)?)))
                .await?;
            let clock = EpochClock {
                length: params.epoch_length,
                offset: params.epoch_offset,
            };
            let epoch = clock.epoch_of(head.number).unwrap_or(0);
            let mut seeds = Vec::new();
            for e in [epoch.saturating_sub(1), epoch] {
                let start = clock.start_of(e);
                if let Some(b) = self.chain(move |c| c.block(start)).await? {
                    seeds.push((e, challenge_seed(&b.hash, netuid, e)));
                }
            }
            if let Ok(mut k) = self.api.known.write() {
                k.clear();
                k.extend(mg.neurons.iter().map(|n| n.hotkey));
            }
            let snap = Snapshot {
                epoch,
                params,
                mg,
                seeds,
            };
            if let Ok(mut c) = self.cache.lock() {
                *c = Some(snap.clone());
            }
            snap
        } else {
            cached.ok_or_else(|| NodeError::Other("no chain snapshot".into()))?
        };
        let Snapshot {
            params, mg, seeds, ..
        } = snap;
        let clock = EpochClock {
            length: params.epoch_length,
            offset: params.epoch_offset,
        };
        let windows = PhaseWindows::default();
        let time = ChainTime {
            block: head.number,
            at_ms: head.timestamp_ms,
            block_ms: params.block_ms,
        };
        if let Ok(mut t) = self.api.timing.write() {
            *t = Some(Timing {
                clock,
                windows,
                time,
            });
        }
        let Some(epoch) = clock.epoch_of(head.number) else {
            return Ok(());
        };
        if let Some(dht) = &self.dht {
            dht.set_view(chain_view(&params, &mg, &head, &seeds));
        }
        // the node's own steps follow the head block, not wall-clock estimates: the chain stamps
        // a commitment with its head, so a step taken by the head is inside its window
        let into = head.number.saturating_sub(clock.start_of(epoch)) as u128;
        let progress_ppb =
            (into * 1_000_000_000 / clock.length.max(1) as u128).min(999_999_999) as u32;
        let t = Tick {
            params,
            mg,
            clock,
            windows,
            progress_ppb,
            seeds,
        };

        // run `epoch`: score, then commit in the commit window
        let p = self.store.progress(epoch)?;
        if p.is_none() {
            self.score(&t, epoch).await?;
        }
        if self.store.progress(epoch)? == Some(Step::Scored) && t.progress_ppb >= 600_000_000 {
            self.commit(&t, epoch).await?;
        }
        // run `epoch - 1`: reveal in the first half, aggregate after it
        if epoch >= 1 {
            let run = epoch - 1;
            let p = self.store.progress(run)?;
            if p == Some(Step::Committed) && t.progress_ppb < 500_000_000 {
                self.reveal(&t, run).await?;
            }
            let p = self.store.progress(run)?;
            // collect peers' reports while the reveal window is still open, so aggregation can
            // start the moment it closes
            if p.is_some()
                && p < Some(Step::Done)
                && (300_000_000..500_000_000).contains(&t.progress_ppb)
            {
                self.collect(&t, run).await;
            }
            if p.is_some() && p < Some(Step::Done) && t.progress_ppb >= 500_000_000 {
                self.aggregate(&t, run).await?;
            }
        }
        Ok(())
    }

    /// The miners: registered hotkeys without a validator permit, except the burn uid.
    fn miners(mg: &ChainMetagraph, burn_uid: u16) -> Vec<Hotkey> {
        mg.neurons
            .iter()
            .filter(|n| !n.validator_permit && n.uid != burn_uid)
            .map(|n| n.hotkey)
            .collect()
    }

    fn sign_report(
        &self,
        key: &Keypair,
        run: u64,
        scores: Vec<(Hotkey, Score)>,
    ) -> Result<ScoreReport, NodeError> {
        let body = ReportBody::new(
            self.cfg.netuid,
            run,
            self.cfg.family.clone(),
            key.hotkey(),
            scores,
        )
        .map_err(|e| NodeError::Other(e.to_string()))?;
        ScoreReport::sign(body, random_salt(), key).map_err(|e| NodeError::Other(e.to_string()))
    }

    async fn score(&self, t: &Tick, run: u64) -> Result<(), NodeError> {
        let miners = Self::miners(&t.mg, t.params.burn_uid);
        // the run's challenge seed: from the hash of its first block, so no one picks the tasks
        let seed = t
            .seeds
            .iter()
            .find(|(e, _)| *e == run)
            .map(|x| x.1)
            .ok_or_else(|| NodeError::Other(format!("no challenge seed for run {run} yet")))?;
        // scoring may run submissions: keep it off the async workers
        let (scorer, me, ms) = (self.scorer.clone(), self.key.hotkey(), miners.clone());
        let mut scores = blocking(move || scorer.score(run, &seed, &me, &ms)).await?;
        if self.cfg.byzantine == Some(Byzantine::Inflate) {
            // boost the miner it measured lowest
            if let Some(low) = scores.iter_mut().min_by_key(|s| s.1) {
                low.1 = Score::ONE;
            }
        }
        let report = self.sign_report(&self.key, run, scores)?;
        let mg_json = serde_json::to_vec(&t.mg).map_err(|e| NodeError::Other(e.to_string()))?;
        self.store.put_meta(&format!("metagraph:{run}"), &mg_json)?;
        let kept = self.store.put_own_report(
            run,
            &report.to_bytes(),
            &report.body().scores.to_vec().encode(),
        )?;
        info!(validator = %self.key.hotkey(), run, miners = miners.len(), "scored; report {}", hex::encode(&tally_core::sha256(&kept)[..6]));
        Ok(())
    }

    async fn commit(&self, t: &Tick, run: u64) -> Result<(), NodeError> {
        let wire = self
            .store
            .own_report(run)?
            .ok_or_else(|| NodeError::Other("no report to commit".into()))?;
        let report = ScoreReport::from_bytes(&wire).map_err(|e| NodeError::Other(e.to_string()))?;
        let h = report.commitment();
        let key = self.key.clone();
        let netuid = self.cfg.netuid;
        let data = commitment_data(run, &h);
        self.chain(move |c| {
            let call = extrinsic::commit(data)?;
            tally_chain::submit_call(c, &key, netuid, call)
        })
        .await?;
        if let Some(dht) = &self.dht {
            let ttl = record_ttl(&t.params);
            if let Err(e) = dht
                .publish(Kind::ValidatorCommit, run, Commit(h).encode(), ttl)
                .await
            {
                warn!("validator-commit record not published: {e}");
            }
        }
        self.store.mark(run, Step::Committed)?;
        info!(validator = %self.key.hotkey(), run, "committed {}", hex::encode(&h[..6]));
        Ok(())
    }

    async fn fetch_peer_wire(&self, addr: String, run: u64) -> Option<Vec<u8>> {
        let peers = self.peers.clone();
        let path = format!("/v1/consensus/scores/{run}");
        let (status, body) = blocking(move || peers.get(&addr, &path)).await.ok()?.ok()?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        hex::decode(v.get("wire")?.as_str()?).ok()
    }

    async fn reveal(&self, t: &Tick, run: u64) -> Result<(), NodeError> {
        let wire = self
            .store
            .own_report(run)?
            .ok_or_else(|| NodeError::Other("no report to reveal".into()))?;
        let ttl = record_ttl(&t.params);
        let mut dht_wire = Some(wire.clone());
        match self.cfg.byzantine {
            Some(Byzantine::Withhold) => {
                self.set_override(run, None);
                dht_wire = None;
            }
            Some(Byzantine::Equivocate) => {
                // HTTP serves the committed report; the DHT gets a different one
                let r =
                    ScoreReport::from_bytes(&wire).map_err(|e| NodeError::Other(e.to_string()))?;
                let shifted: Vec<(Hotkey, Score)> = r
                    .body()
                    .scores
                    .iter()
                    .map(|(k, s)| {
                        (
                            *k,
                            Score::saturating_from_units(1_000_000_000 - s.units() as u64),
                        )
                    })
                    .collect();
                dht_wire = Some(self.sign_report(&self.key, run, shifted)?.to_bytes());
            }
            Some(Byzantine::Copy) => {
                // re-sign another validator's revealed scores
                let mut copied = None;
                for n in
                    t.mg.neurons
                        .iter()
                        .filter(|n| n.validator_permit && n.hotkey != self.key.hotkey())
                {
                    if let Some(w) = self.fetch_peer_wire(n.axon.clone(), run).await {
                        if let Ok(r) = ScoreReport::from_bytes(&w) {
                            copied = Some(r.body().scores.to_vec());
                            break;
                        }
                    }
                }
                match copied {
                    Some(scores) => {
                        let fake = self.sign_report(&self.key, run, scores)?.to_bytes();
                        self.set_override(run, Some(fake.clone()));
                        dht_wire = Some(fake);
                    }
                    // nobody serves yet: wait for the next tick rather than reveal honestly
                    None => {
                        self.set_override(run, None);
                        return Ok(());
                    }
                }
            }
            Some(Byzantine::Forge) => {
                let other = Keypair::generate().map_err(|e| NodeError::Other(e.to_string()))?;
                let r =
                    ScoreReport::from_bytes(&wire).map_err(|e| NodeError::Other(e.to_string()))?;
                let forged = self
                    .sign_report(&other, run, r.body().scores.to_vec())?
                    .to_bytes();
                self.set_override(run, Some(forged));
                dht_wire = None;
            }
            Some(Byzantine::Inflate) | None => {}
        }
        if let (Some(dht), Some(w)) = (&self.dht, dht_wire) {
            if let Err(e) = dht.publish(Kind::ValidatorReveal, run, w, ttl).await {
                warn!("validator-reveal record not published: {e}");
            }
        }
        self.store.mark(run, Step::Revealed)?;
        info!(validator = %self.key.hotkey(), run, "revealed");
        Ok(())
    }

    fn set_override(&self, run: u64, wire: Option<Vec<u8>>) {
        if let Ok(mut o) = self.api.overrides.write() {
            o.insert(run, wire);
            while o.len() > 64 {
                o.pop_first();
            }
        }
    }

    async fn owner_pick(&self, run: u64) -> Option<(Hotkey, Vec<(Hotkey, Score)>)> {
        let addr = self.cfg.owner.clone()?;
        let peers = self.peers.clone();
        let path = format!("/v1/weights?run={run}");
        let (status, body) = blocking(move || peers.get(&addr, &path)).await.ok()?.ok()?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let winner: Hotkey = v.get("winner")?.as_str()?.parse().ok()?;
        let mut scores: Vec<(Hotkey, Score)> = v
            .get("scores")
            .and_then(|s| s.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, x)| {
                        Some((k.parse().ok()?, Score::from_f64(x.as_f64()?).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        scores.sort_by_key(|s| s.0);
        Some((winner, scores))
    }

    /// Fetches, concurrently, every eligible validator's report over HTTP and its DHT reveal
    /// that is not in hand yet for `run`.
    async fn collect(&self, t: &Tick, run: u64) {
        let min = t.params.min_validator_stake;
        let have = self
            .collected
            .lock()
            .await
            .get(&run)
            .cloned()
            .unwrap_or_default();
        let todo: Vec<tally_chain::NeuronInfo> =
            t.mg.neurons
                .iter()
                .filter(|n| n.validator_permit && n.stake >= min)
                .filter(|n| !matches!(have.get(&n.hotkey), Some((Some(_), Some(_)))))
                .cloned()
                .collect();
        let fetches = todo.into_iter().map(|n| {
            let me = n.hotkey == self.key.hotkey();
            let prev = have.get(&n.hotkey).cloned().unwrap_or((None, None));
            async move {
                let http = match prev.0 {
                    Some(h) => Some(h),
                    None if me => self.store.own_report(run).ok().flatten(),
                    None => self.fetch_peer_wire(n.axon.clone(), run).await,
                };
                let dht = match (prev.1, &self.dht) {
                    (Some(d), _) => Some(d),
                    (None, Some(d)) if !me => {
                        match d.get(Kind::ValidatorReveal, run, &n.hotkey).await {
                            Ok(Some(v)) => match v.payload {
                                Payload::ValidatorReveal(r) => Some(r.to_bytes()),
                                _ => None,
                            },
                            _ => None,
                        }
                    }
                    _ => None,
                };
                (n.hotkey, (http, dht))
            }
        });
        let results = futures::future::join_all(fetches).await;
        let mut c = self.collected.lock().await;
        let entry = c.entry(run).or_default();
        for (k, v) in results {
            entry.insert(k, v);
        }
        // keep the last few runs only
        while c.len() > 4 {
            c.pop_first();
        }
    }

    async fn aggregate(&self, t: &Tick, run: u64) -> Result<(), NodeError> {
        let netuid = self.cfg.netuid;
        let t0 = std::time::Instant::now();
        // the metagraph at the start of the run
        let mg: ChainMetagraph = match self.store.meta(&format!("metagraph:{run}"))? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| NodeError::Other(e.to_string()))?,
            None => t.mg.clone(),
        };
        let eligible: Vec<_> = mg
            .neurons
            .iter()
            .filter(|n| n.validator_permit && n.stake >= t.params.min_validator_stake)
            .cloned()
            .collect();
        // the commitments made on chain inside the run's commit window: the snapshot
        // one call for every commitment made around the run's commit window
        let (from, to) = {
            let (a, b) = t.windows.validator_commit.bounds_mb(&t.clock, run);
            ((a / 1000) as u64, (b / 1000) as u64 + 2)
        };
        let all = self
            .chain(move |c| c.commitments_in(netuid, from.saturating_sub(1), to))
            .await?;
        let mut by_validator: BTreeMap<Hotkey, Vec<tally_chain::Commitment>> = BTreeMap::new();
        for (hk, c) in all {
            by_validator.entry(hk).or_default().push(c);
        }
        let mut snapshot: Vec<(Hotkey, Hash32)> = Vec::new();
        for n in &eligible {
            let hk = n.hotkey;
            let hist = by_validator.remove(&hk).unwrap_or_default();
            match commitment_for_run(&hist, run, &t.clock, &t.windows) {
                Some(h) => snapshot.push((hk, h)),
                None => {
                    debug!(run, validator = %hk, blocks = ?hist.iter().map(|c| c.block).collect::<Vec<_>>(), "no commitment inside the commit window")
                }
            }
        }
        self.store.put_snapshot(run, &snapshot)?;
        let snapshot: BTreeMap<Hotkey, Hash32> = self
            .store
            .snapshot(run)?
            .unwrap_or_default()
            .into_iter()
            .collect();

        // reports collected during the reveal window, completed now for whoever was missing
        self.collect(t, run).await;
        let t_commit = t0.elapsed();
        let got = self
            .collected
            .lock()
            .await
            .get(&run)
            .cloned()
            .unwrap_or_default();
        let fetched: Vec<(tally_chain::NeuronInfo, Fetched)> = eligible
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    got.get(&n.hotkey).cloned().unwrap_or((None, None)),
                )
            })
            .collect();
        let t_fetch = t0.elapsed();

        let mut accepted: Vec<(tally_chain::NeuronInfo, ScoreReport)> = Vec::new();
        let mut excluded: Vec<(Hotkey, Exclusion)> = Vec::new();
        for (n, (http, dht)) in fetched {
            let commitment = snapshot.get(&n.hotkey);
            let check =
                |w: &[u8]| verify_report(w, &n.hotkey, netuid, run, &self.cfg.family, commitment);
            let verdict = match (&http, &dht) {
                (Some(a), Some(b)) => {
                    // two different reports validly signed by this hotkey for this run:
                    // equivocation, whatever else holds
                    let signed: Vec<Signed<ReportBody>> = [a, b]
                        .iter()
                        .filter_map(|w| ScoreReport::from_bytes(w).ok())
                        .map(|r| r.signed)
                        .filter(|s| s.body().validator == n.hotkey && s.body().run == run)
                        .collect();
                    match find_equivocations(&signed).into_iter().next() {
                        Some(proof) => {
                            self.store.put_evidence(&proof.to_bytes())?;
                            Err(Exclusion::Equivocation)
                        }
                        None => check(a).or_else(|_| check(b)),
                    }
                }
                (Some(a), None) => check(a),
                (None, Some(b)) => check(b),
                (None, None) => Err(Exclusion::NoReport),
            };
            match verdict {
                Ok(r) => {
                    self.store.put_peer_report(run, &n.hotkey, &r.to_bytes())?;
                    accepted.push((n, r));
                }
                Err(x) => {
                    self.store.put_rejected(run, &n.hotkey, x.name())?;
                    self.api.metrics.inc(
                        "tally_reports_rejected_total",
                        &format!("reason=\"{}\"", x.name()),
                    );
                    excluded.push((n.hotkey, x));
                }
            }
        }

        let t_verify = t0.elapsed();
        let incumbent_uid = self.chain(move |c| c.winner(netuid)).await?;
        let incumbent = incumbent_uid.and_then(|u| mg.by_uid(u)).map(|n| n.hotkey);
        let input = RunInput {
            eligible_stake: eligible.iter().map(|n| n.stake as u128).sum(),
            reports: accepted
                .iter()
                .map(|(n, r)| (n.stake, r.body().scores.to_vec()))
                .collect(),
            incumbent,
        };
        let outcome =
            decide_run(&input, &self.cfg.params, 1).map_err(|e| NodeError::Other(e.to_string()))?;
        let pick = match self.cfg.mode {
            WeightMode::Decentralized => None,
            WeightMode::Owner | WeightMode::Shadow => self.owner_pick(run).await,
        };
        let decision = decide_weights(self.cfg.mode, pick.as_ref().map(|p| &p.0), &outcome);
        if decision.track_divergence {
            let mut tracker = match self.store.meta("divergence")? {
                Some(b) => DivergenceTracker::from_bytes(&b)
                    .map_err(|e| NodeError::Other(e.to_string()))?,
                None => DivergenceTracker::new(self.cfg.divergence_window)
                    .map_err(|e| NodeError::Other(e.to_string()))?,
            };
            let owner_scores = pick.as_ref().map(|p| p.1.clone()).unwrap_or_default();
            tracker.record(DivergenceEntry::compute(
                run,
                pick.as_ref().map(|p| &p.0),
                outcome.winner.as_ref(),
                &owner_scores,
                &outcome.consensus,
                3,
            ));
            self.store.put_meta("divergence", &tracker.to_bytes())?;
        }
        let uid_weights: Option<Vec<(u16, u16)>> = match &decision.set {
            Weights::Set(w) => Some(
                w.iter()
                    .filter_map(|(k, f)| {
                        let uid = mg.by_hotkey(k)?.uid;
                        Some((
                            uid,
                            ((f.units() as u64 * u16::MAX as u64) / 1_000_000_000) as u16,
                        ))
                    })
                    .collect(),
            ),
            Weights::Burn => Some(vec![(t.params.burn_uid, u16::MAX)]),
            Weights::Hold => None,
        };
        let mut set_at = None;
        if let Some(w) = uid_weights.clone() {
            let key = self.key.clone();
            let res = self
                .chain(move |c| {
                    tally_chain::submit_call(c, &key, netuid, extrinsic::set_weights(w)?)
                })
                .await;
            match res {
                Ok(b) => set_at = Some(b),
                Err(e) => warn!(validator = %self.key.hotkey(), run, "weights not set: {e}"),
            }
        }
        debug!(run, ?t_commit, ?t_fetch, ?t_verify, total = ?t0.elapsed(), "aggregation timings");
        self.api
            .metrics
            .runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !outcome.quorum_met {
            self.api
                .metrics
                .quorum_misses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let consensus: BTreeMap<String, f64> = outcome
            .consensus
            .iter()
            .map(|(k, s)| (k.to_ss58(), s.to_f64()))
            .collect();
        let weights_json = match &decision.set {
            Weights::Set(w) => json!(w
                .iter()
                .map(|(k, f)| (k.to_ss58(), f.to_f64()))
                .collect::<BTreeMap<_, _>>()),
            Weights::Burn => json!("burn"),
            Weights::Hold => json!("hold"),
        };
        let out = json!({
            "run": run,
            "quorum_met": outcome.quorum_met,
            "participating_stake": outcome.participating.to_f64(),
            "consensus": consensus,
            "winner": outcome.winner.map(|w| w.to_ss58()),
            "incumbent": incumbent.map(|w| w.to_ss58()),
            "mode": format!("{:?}", self.cfg.mode).to_lowercase(),
            "owner_pick": pick.as_ref().map(|p| p.0.to_ss58()),
            "weights": weights_json,
            "uid_weights": uid_weights,
            "weights_set_at_block": set_at,
            "accepted": accepted.iter().map(|(n, _)| n.hotkey.to_ss58()).collect::<Vec<_>>(),
            "reveal_closed_block": t.clock.start_of(run + 1) + t.clock.length / 2,
            "aggregated_at_ms": (self.api.now_ms)(),
            "excluded": excluded.iter().map(|(k, x)| json!({"validator": k.to_ss58(), "reason": x.name()})).collect::<Vec<_>>(),
        });
        let out_bytes = serde_json::to_vec(&out).map_err(|e| NodeError::Other(e.to_string()))?;
        self.store
            .finish_run(run, &out_bytes, &uid_weights.unwrap_or_default().encode())?;
        info!(validator = %self.key.hotkey(), run, quorum = outcome.quorum_met, winner = ?outcome.winner.map(|w| w.to_ss58()), "run aggregated");
        Ok(())
    }
}

/// Hotkeys of the validators excluded in a stored outcome.
pub fn excluded_of(outcome: &serde_json::Value) -> HashSet<String> {
    outcome
        .get("excluded")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("validator")?.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
