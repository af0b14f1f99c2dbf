//! The validator driver: runs a `tally_validator` [`Actor`] (the honest [`Machine`], or in the
//! devnet an adversary wrapping one) under tokio, feeding it inputs and executing its effects
//! against the real ports ([`crate::ports`]).
//!
//! Every tick it reads the chain head and, when it moved, hands the machine `Input::Head`;
//! every effect runs as its own task (chain calls, scoring and peer fetches on the blocking
//! pool) and answers with one input over a bounded channel, so scoring a run never delays the
//! commit, reveal or aggregation of another. Store writes run in order, each one transaction.
//! At start the machine gets the store's recent runs (`Input::Restore`), so a restarted node
//! resumes where it was and serves byte-identical reports.

use crate::api::{ApiState, Timing};
use crate::peer::PeerPath;
use crate::ports::{DhtPort, PeerPort, StorePort};
use crate::scorer::Scorer;
use std::sync::Arc;
use std::time::Duration;
pub use tally_chain::snapshot::members_of;
use tally_chain::snapshot::read_snapshot;
use tally_chain::{extrinsic, Chain};
use tally_core::{Hotkey, Keypair, Score};
use tally_protocol::ChainView;
use tally_validator::*;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Settings of the driver (the machine has its own [`Config`]).
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The subnet.
    pub netuid: u16,
    /// The owner's pinned hotkey and endpoint (`IP:port`) for its pick, in owner and shadow
    /// modes.
    pub owner: Option<(Hotkey, String)>,
    /// How often the head is read.
    pub tick: Duration,
    /// Runs read back from the store at start.
    pub restore_runs: usize,
}

/// The adapters the driver executes effects against.
#[derive(Clone)]
pub struct Ports {
    /// The chain.
    pub chain: Arc<dyn Chain>,
    /// The store.
    pub store: Arc<dyn StorePort>,
    /// The API's shared state (what it serves, its timing, metrics).
    pub api: Arc<ApiState>,
    /// The DHT, if the node runs one.
    pub dht: Option<Arc<dyn DhtPort>>,
    /// The scorer.
    pub scorer: Arc<dyn Scorer>,
    /// The hosted scorer (miner-hosted mode); without one, hosters' outputs cannot be scored
    /// and the node abstains on them.
    pub hosted: Option<Arc<dyn crate::hosted_scorer::HostedScorer>>,
    /// Signed HTTP to peers and the owner.
    pub peers: Arc<dyn PeerPort>,
    /// The node's key (signs chain calls).
    pub key: Keypair,
}

/// The owner's pick for `run` from `GET /v1/weights?run=`.
pub fn owner_pick(peers: &dyn PeerPort, owner: &Hotkey, addr: &str, run: u64) -> Option<OwnerPick> {
    let (status, body) = peers.get(owner, addr, &PeerPath::owner_pick(run)).ok()?;
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
                .filter_map(|(k, x)| Some((k.parse().ok()?, Score::from_f64(x.as_f64()?).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    scores.sort_by_key(|s| s.0);
    Some(OwnerPick { winner, scores })
}

/// A peer's report for `run` from `GET /v1/consensus/scores/{run}`.
pub fn fetch_report(peers: &dyn PeerPort, to: &Hotkey, addr: &str, run: u64) -> Option<Vec<u8>> {
    let (status, body) = peers.get(to, addr, &PeerPath::scores(run)).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    hex::decode(v.get("wire")?.as_str()?).ok()
}

/// What a peer answered at `GET /v1/runs/{run}/held`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldAnswer {
    /// The equivocation proofs it holds for the run (at most
    /// [`tally_validator::collect::MAX_PROOFS_PER_PEER`]).
    pub proofs: Vec<Vec<u8>>,
    /// The reports it holds that the asker lacked (only when asked to relay).
    pub relayed: Vec<Vec<u8>>,
}

/// One request for what a peer holds for `run`: its proofs and the digests of the other
/// validators' reports; with `relay` (the exchange), then each report whose digest is not in
/// `known` (sorted) and not signed by `me`, at most
/// [`tally_validator::collect::MAX_RELAYED_PER_PEER`], stopping at the first failure or after
/// [`EXCHANGE_BUDGET`] (each report is checked by the machine). `None` when the peer did not
/// answer with its list.
pub fn fetch_held(
    peers: &dyn PeerPort,
    to: &Hotkey,
    addr: &str,
    run: u64,
    relay: Option<(&Hotkey, &[tally_core::hash::Hash32])>,
) -> Option<HeldAnswer> {
    let started = std::time::Instant::now();
    let body = match peers.get(to, addr, &PeerPath::held(run)) {
        Ok((200, body)) => body,
        other => {
            debug!(peer = %to, run, "exchange: no list of held reports: {:?}", other.map(|x| x.0));
            return None;
        }
    };
    let v = serde_json::from_slice::<serde_json::Value>(&body).ok()?;
    if v.get("run").and_then(|r| r.as_u64()) != Some(run) {
        return None;
    }
    let proofs = v
        .get("evidence")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .take(tally_validator::collect::MAX_PROOFS_PER_PEER)
                .filter_map(|x| hex::decode(x.as_str()?).ok())
                .collect()
        })
        .unwrap_or_default();
    let Some((me, known)) = relay else {
        return Some(HeldAnswer {
            proofs,
            relayed: Vec::new(),
        });
    };
    let wanted: Vec<tally_core::hash::Hash32> = v
        .get("held")?
        .as_array()?
        .iter()
        .take(tally_validator::collect::MAX_RELAYED_PER_PEER)
        .filter_map(|x| {
            let signer: Hotkey = x.get("validator")?.as_str()?.parse().ok()?;
            let d = hex::decode(x.get("digest")?.as_str()?).ok()?;
            let d = tally_core::hash::Hash32::try_from(d).ok()?;
            (signer != *me && known.binary_search(&d).is_err()).then_some(d)
        })
        .collect();
    let mut relayed = Vec::new();
    for d in wanted {
        if started.elapsed() > EXCHANGE_BUDGET {
            break;
        }
        let Ok((200, body)) = peers.get(to, addr, &PeerPath::held_report(run, &d)) else {
            break;
        };
        let wire = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| hex::decode(v.get("wire")?.as_str()?).ok());
        match wire {
            Some(w) if tally_core::sha256(&w) == d => relayed.push(w),
            _ => break,
        }
    }
    Some(HeldAnswer { proofs, relayed })
}

/// Most time spent fetching one peer's held reports at an exchange round (a slow peer delays
/// only itself; what it did not hand over by then is asked for at the next round, if any).
pub const EXCHANGE_BUDGET: Duration = Duration::from_secs(5);

/// How long the node's DHT records live: four epochs.
fn record_ttl(view: Option<&ChainView>) -> Duration {
    let v = match view {
        Some(v) => v,
        None => return Duration::from_secs(600),
    };
    Duration::from_millis(
        v.time
            .block_ms
            .saturating_mul(v.clock.length)
            .saturating_mul(4),
    )
}

fn input_name(i: &Input) -> &'static str {
    match i {
        Input::Restore(_) => "restore",
        Input::Head(_) => "head",
        Input::Snapshot { .. } => "snapshot",
        Input::Scored { .. } => "scored",
        Input::Committed { .. } => "committed",
        Input::Reports { .. } => "reports",
        Input::Commitments { .. } => "commitments",
        Input::Incumbent { .. } => "incumbent",
        Input::OwnerPick { .. } => "owner_pick",
        Input::WeightsSet { .. } => "weights_set",
        Input::HosterCommits { .. } => "hoster_commits",
        Input::Hosted { .. } => "hosted",
        Input::HostedScored { .. } => "hosted_scored",
        Input::LateReveal { .. } => "late_reveal",
    }
}

/// The next late hoster reveal the node's DHT refused, as an input (`None` for any other
/// refusal; pending forever without a stream).
async fn next_refusal(
    rx: &mut Option<tokio::sync::broadcast::Receiver<tally_net::dht::Rejection>>,
) -> Option<Input> {
    let Some(r) = rx.as_mut() else {
        return std::future::pending().await;
    };
    match r.recv().await {
        Ok(x) => tally_validator::hosted::late_reveal(x.kind, x.publisher, x.epoch, x.reason),
        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
            *rx = None;
            None
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Signs and submits `call`, one chain write of this node at a time (two concurrent writes
/// would read the same nonce), retrying up to `attempts` times a block apart.
fn submit(
    chain: &dyn Chain,
    key: &Keypair,
    netuid: u16,
    writes: &std::sync::Mutex<()>,
    call: impl Fn() -> Result<tally_chain::Call, tally_chain::ChainError>,
    attempts: u32,
    pause: Duration,
) -> Result<u64, String> {
    let mut last = String::new();
    for i in 0..attempts.max(1) {
        if i > 0 {
            std::thread::sleep(pause);
        }
        let r = {
            let _one = writes.lock().unwrap_or_else(|e| e.into_inner());
            call().and_then(|c| tally_chain::submit_call(chain, key, netuid, c))
        };
        match r {
            Ok(b) => return Ok(b),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// A bounded metrics label for a chain write error: the runtime's error name when the chain
/// gave one (`SubtensorModule::SettingWeightsTooFast`), else the error's kind.
pub fn error_label(e: &str) -> String {
    let named = e.split_whitespace().find_map(|w| {
        let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != ':' && c != '_');
        let (pallet, variant) = w.split_once("::")?;
        let ok =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        (ok(pallet) && ok(variant) && w.len() <= 80).then(|| w.to_string())
    });
    named.unwrap_or_else(|| {
        e.split(':')
            .next()
            .unwrap_or("other")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
            .take(40)
            .collect::<String>()
            .trim()
            .replace(' ', "_")
    })
}

/// The driver.
pub struct Driver {
    actor: Box<dyn Actor>,
    writes: Arc<std::sync::Mutex<()>>,
    cfg: DriverConfig,
    ports: Ports,
    view: Option<ChainView>,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
}

impl Driver {
    /// A driver for `actor`.
    pub fn new(actor: Box<dyn Actor>, cfg: DriverConfig, ports: Ports) -> Driver {
        // every effect answers with one input; this bound is far above what one head asks for
        let (tx, rx) = mpsc::channel(4096);
        Driver {
            actor,
            writes: Arc::new(std::sync::Mutex::new(())),
            cfg,
            ports,
            view: None,
            tx,
            rx,
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let me = self.ports.key.hotkey();
        let store = self.ports.store.clone();
        let limit = self.cfg.restore_runs;
        match blocking(move || store.load(limit)).await {
            Some(Ok(s)) => {
                let n = s.runs.len();
                self.feed(Input::Restore(s)).await;
                if n > 0 {
                    info!(validator = %me, runs = n, "resumed from the store");
                }
            }
            Some(Err(e)) => warn!(validator = %me, "store not read back: {e}"),
            None => {}
        }
        let mut interval = tokio::time::interval(self.cfg.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        let mut refused = self.ports.dht.as_ref().and_then(|d| d.rejections());
        loop {
            tokio::select! {
                r = next_refusal(&mut refused) => {
                    if let Some(i) = r {
                        self.feed(i).await;
                    }
                }
                _ = interval.tick() => {
                    let chain = self.ports.chain.clone();
                    match blocking(move || chain.head()).await {
                        Some(Ok(h)) if last != Some(h.number) => {
                            last = Some(h.number);
                            let seen = (self.ports.api.now_ms)();
                            self.feed(Input::Head(Head { number: h.number, timestamp_ms: seen })).await;
                        }
                        Some(Err(e)) => warn!(validator = %me, "head not read: {e}"),
                        _ => {}
                    }
                }
                Some(i) = self.rx.recv() => self.feed(i).await,
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        debug!(validator = %me, "validator stopped");
    }

    async fn feed(&mut self, input: Input) {
        let effects = self.actor.handle(input);
        for e in effects {
            self.execute(e).await;
        }
    }

    fn answer(&self, f: impl std::future::Future<Output = Input> + Send + 'static) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let input = f.await;
            debug!(elapsed = ?t.elapsed(), "answered {}", input_name(&input));
            let _ = tx.send(input).await;
        });
    }

    /// A chain read on the blocking pool; every error (the chain's, or an aborted task) as text.
    fn chain_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Chain) -> Result<T, String> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, String>> + Send + 'static {
        let c = self.ports.chain.clone();
        async move {
            blocking(move || f(c.as_ref()))
                .await
                .unwrap_or_else(|| Err("chain call aborted".into()))
        }
    }

    /// A chain write of this node (see [`submit`]) on the blocking pool.
    fn chain_write(
        &self,
        call: impl Fn() -> Result<tally_chain::Call, tally_chain::ChainError> + Send + 'static,
        attempts: u32,
    ) -> impl std::future::Future<Output = Result<u64, String>> + Send + 'static {
        let (writes, pause, key, netuid) = (
            self.writes.clone(),
            self.pause(),
            self.ports.key.clone(),
            self.cfg.netuid,
        );
        self.chain_read(move |c| submit(c, &key, netuid, &writes, call, attempts, pause))
    }

    /// A block, as far as the driver knows (retries wait this long).
    fn pause(&self) -> Duration {
        Duration::from_millis(
            self.view
                .as_ref()
                .map_or(1_000, |v| v.time.block_ms)
                .clamp(10, 12_000),
        )
    }

    fn set_timing(&self) {
        if let (Some(v), Ok(mut t)) = (&self.view, self.ports.api.timing.write()) {
            *t = Some(Timing {
                clock: v.clock,
                windows: v.windows,
                time: v.time,
            });
        }
    }

    async fn execute(&mut self, e: Effect) {
        let netuid = self.cfg.netuid;
        let p = self.ports.clone();
        match e {
            Effect::ReadChain { req, at_block } => {
                let read = self.chain_read(move |c| read_snapshot(c, netuid, at_block));
                self.answer(async move {
                    Input::Snapshot {
                        req,
                        result: read.await,
                    }
                })
            }
            Effect::View(v) => {
                if let Ok(mut k) = p.api.known.write() {
                    k.clear();
                    k.extend(v.metagraph.iter().map(|(h, _)| *h));
                }
                if let Some(d) = &p.dht {
                    d.set_view((*v).clone());
                }
                self.view = Some(*v);
                self.set_timing();
            }
            Effect::Time(t) => {
                if let Some(v) = self.view.as_mut() {
                    v.time = t;
                    if let Some(d) = &p.dht {
                        d.set_view(v.clone());
                    }
                }
                self.set_timing();
            }
            Effect::Score {
                run,
                seed,
                miners,
                deadline_ms,
            } => self.answer(async move {
                let me = p.key.hotkey();
                let s = p.scorer.clone();
                // the chain's clock to this machine's: the time left until the deadline
                let left = deadline_ms.saturating_sub((p.api.now_ms)());
                let deadline = std::time::Instant::now() + Duration::from_millis(left);
                let result =
                    match blocking(move || s.score(run, &seed, &me, &miners, deadline)).await {
                        Some(v) => Ok(v),
                        None => Err("scorer panicked".into()),
                    };
                if let Err(e) = &result {
                    warn!(validator = %me, run, "no report for this run: {e}");
                }
                Input::Scored { run, result }
            }),
            Effect::Persist(x) => {
                if let Persist::Rejected { reason, .. } = &x {
                    p.api.metrics.inc(
                        "tally_reports_rejected_total",
                        &format!("reason=\"{reason}\""),
                    );
                }
                if let Persist::Hosted { run, verdicts } = &x {
                    for v in verdicts {
                        let reason = v.reason.as_deref().unwrap_or("scored");
                        p.api.metrics.inc(
                            "tally_hosters_scored_total",
                            &format!("reason=\"{reason}\""),
                        );
                    }
                    info!(validator = %p.key.hotkey(), run, hosters = verdicts.len(), "hosters judged");
                }
                if let Persist::Finish { outcome } = &x {
                    p.api
                        .metrics
                        .runs
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if !outcome.quorum_met {
                        p.api
                            .metrics
                            .quorum_misses
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    info!(validator = %p.key.hotkey(), run = outcome.run, quorum = outcome.quorum_met,
                        winner = ?outcome.winner.map(|w| w.to_ss58()),
                        reveal_closed = outcome.reveal_closed_block, decided_at = outcome.aggregated_at_block,
                        weights_at = ?outcome.weights_set_at_block, "run aggregated");
                }
                let now = (p.api.now_ms)();
                let store = p.store.clone();
                match blocking(move || store.apply(&x, now)).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => warn!("store write failed: {e}"),
                    None => warn!("store write aborted"),
                }
            }
            Effect::PostCommitment { run, data } => {
                let write = self.chain_write(move || extrinsic::commit(data.clone()), 1);
                self.answer(async move {
                    let result = write.await;
                    match &result {
                        Ok(b) => info!(validator = %p.key.hotkey(), run, block = b, "committed"),
                        Err(e) => {
                            warn!(validator = %p.key.hotkey(), run, "commitment not posted: {e}");
                            p.api.metrics.inc(
                                "tally_chain_write_errors_total",
                                &format!("call=\"commit\",error=\"{}\"", error_label(e)),
                            );
                        }
                    }
                    Input::Committed { run, result }
                })
            }
            Effect::Publish { kind, run, payload } => {
                if let Some(d) = p.dht.clone() {
                    let ttl = record_ttl(self.view.as_ref());
                    tokio::spawn(async move {
                        if let Err(e) = d.publish(kind, run, payload, ttl).await {
                            warn!("{} record not published: {e}", kind.name());
                        }
                    });
                }
            }
            Effect::Serve { run, wire } => {
                p.api.serve(run, wire);
                info!(validator = %p.key.hotkey(), run, "revealed");
            }
            Effect::ServeHeld {
                run,
                reports,
                proofs,
            } => p.api.serve_held(run, &reports, &proofs),
            Effect::FetchReports {
                req,
                run,
                targets,
                known,
            } => self.answer(async move {
                let known = Arc::new(known);
                let fetches = targets.into_iter().map(|t| {
                    let p = p.clone();
                    let known = known.clone();
                    async move {
                        let http = if t.http || t.evidence || t.relay {
                            let (peers, addr, to) = (p.peers.clone(), t.axon.clone(), t.hotkey);
                            let (want, ev, relay) = (t.http, t.evidence, t.relay);
                            let peers_me = p.key.hotkey();
                            blocking(move || {
                                let r = if want {
                                    fetch_report(peers.as_ref(), &to, &addr, run)
                                } else {
                                    None
                                };
                                // proofs and the exchange come in one answer
                                let me = peers_me;
                                let h = if ev || relay {
                                    let relay = relay.then_some((&me, known.as_slice()));
                                    fetch_held(peers.as_ref(), &to, &addr, run, relay)
                                } else {
                                    None
                                };
                                let e = h.as_ref().map(|h| h.proofs.clone()).unwrap_or_default();
                                let exchanged = relay && h.is_some();
                                (r, e, h.map(|h| h.relayed).filter(|_| exchanged))
                            })
                            .await
                            .unwrap_or_default()
                        } else {
                            (None, Vec::new(), None)
                        };
                        let dht = match (&p.dht, t.dht) {
                            (Some(d), true) => d.reveal(run, t.hotkey).await,
                            _ => None,
                        };
                        Fetched {
                            hotkey: t.hotkey,
                            http: http.0,
                            dht,
                            evidence: http.1,
                            exchanged: http.2.is_some(),
                            relayed: http.2.unwrap_or_default(),
                        }
                    }
                });
                let started = std::time::Instant::now();
                let fetched = futures::future::join_all(fetches).await;
                debug!(
                    run,
                    peers = fetched.len(),
                    http = fetched.iter().filter(|f| f.http.is_some()).count(),
                    dht = fetched.iter().filter(|f| f.dht.is_some()).count(),
                    exchanged = fetched.iter().filter(|f| f.exchanged).count(),
                    handed_over = fetched.iter().map(|f| f.relayed.len()).sum::<usize>(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "fetch round"
                );
                Input::Reports { req, run, fetched }
            }),
            Effect::ReadCommitments { req, run, from, to } => {
                let read = self.chain_read(move |c| {
                    c.commitments_in(netuid, from, to)
                        .map(|v| v.into_iter().map(|(k, c)| (k, c.block, c.data)).collect())
                        .map_err(|e| e.to_string())
                });
                self.answer(async move {
                    Input::Commitments {
                        req,
                        run,
                        result: read.await,
                    }
                })
            }
            Effect::ReadIncumbent { req, run, at_block } => {
                let read = self
                    .chain_read(move |c| c.winner_at(netuid, at_block).map_err(|e| e.to_string()));
                self.answer(async move {
                    Input::Incumbent {
                        req,
                        run,
                        result: read.await,
                    }
                })
            }
            Effect::FetchOwnerPick { req, run } => {
                let owner = self.cfg.owner.clone();
                self.answer(async move {
                    let pick = match owner {
                        Some((owner, addr)) => {
                            let peers = p.peers.clone();
                            blocking(move || owner_pick(peers.as_ref(), &owner, &addr, run))
                                .await
                                .flatten()
                        }
                        None => None,
                    };
                    Input::OwnerPick { req, run, pick }
                })
            }
            Effect::ReadHosterCommits { req, run, hosters } => self.answer(async move {
                let result = match &p.dht {
                    Some(d) => Ok(d.hoster_commits(run, hosters).await),
                    None => Err("no DHT".to_string()),
                };
                Input::HosterCommits { req, run, result }
            }),
            Effect::ReadHosted {
                req,
                run,
                elected,
                hosters,
            } => self.answer(async move {
                let (challenge, reveals) = match &p.dht {
                    Some(d) => d.hosted(run, elected, hosters).await,
                    None => (None, Vec::new()),
                };
                Input::Hosted {
                    req,
                    run,
                    challenge,
                    reveals,
                }
            }),
            Effect::ScoreHosted {
                run,
                input,
                outputs,
            } => self.answer(async move {
                let result = match p.hosted.clone() {
                    Some(s) => blocking(move || s.score(run, &input, &outputs))
                        .await
                        .unwrap_or_else(|| Err("hosted scorer panicked".into())),
                    None => Err("no hosted scorer configured".into()),
                };
                if let Err(e) = &result {
                    warn!(validator = %p.key.hotkey(), run, "hosters not scored: {e}");
                }
                Input::HostedScored { run, result }
            }),
            Effect::SetWeights { run, weights } => {
                let write = self.chain_write(move || extrinsic::set_weights(weights.clone()), 3);
                self.answer(async move {
                    let result = write.await;
                    if let Err(e) = &result {
                        warn!(validator = %p.key.hotkey(), run, "weights not set: {e}");
                        p.api.metrics.inc(
                            "tally_chain_write_errors_total",
                            &format!("call=\"set_weights\",error=\"{}\"", error_label(e)),
                        );
                    }
                    Input::WeightsSet { run, result }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_label;

    #[test]
    fn chain_errors_become_bounded_metric_labels() {
        assert_eq!(
            error_label("malformed: dispatch error SubtensorModule::SettingWeightsTooFast"),
            "SubtensorModule::SettingWeightsTooFast"
        );
        assert_eq!(
            error_label("chain transport: timeout: global"),
            "chain_transport"
        );
        assert_eq!(error_label("x\"}{y"), "xy");
        assert!(error_label(&"a".repeat(10_000)).len() <= 40);
    }
}
