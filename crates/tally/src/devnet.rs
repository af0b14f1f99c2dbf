//! A whole subnet on one machine: the embedded chain (served over HTTP), an owner endpoint, and
//! N validators, each with its own DHT node, HTTP API, database and hotkey, all on 127.0.0.1.
//!
//! [`run`] drives it for K runs and returns a [`Report`]; `tally devnet` prints it and the
//! integration tests assert on it. The last validators get the byzantine strategies asked for;
//! their stake is kept below one half. Honest validators observe each miner's hidden quality
//! with noise of at most 0.02.

use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_chain::{Chain, Genesis, HttpChain, LocalChain, NeuronInfo, SubnetParams};
use tally_consensus::WeightMode;
use tally_core::{sha256, FamilyId, Hotkey, Keypair, Score};
use tally_exec::archive::ArchiveCache;
use tally_exec::builder::{build, Variant};
use tally_exec::inference::Inference;
use tally_exec::runtime::{Limits, WasmRuntime};
use tally_exec::Family;
use tally_net::{system_clock, Dht, DhtConfig};
use tally_node::api::{self, ApiState};
use tally_node::exec_scorer::ExecScorer;
use tally_node::owner;
use tally_node::peer::PeerClient;
use tally_node::scorer::{Scorer, SyntheticScorer};
use tally_node::store::NodeStore;
use tally_node::submissions::{self, upload, Registry};
use tally_node::validator::{Driver, DriverConfig, Ports};
pub use tally_sim::Strategy as Byzantine;
use tally_validator::{Actor, Config as MachineConfig, Machine, RunOutcome};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The devnet's subnet.
pub const NETUID: u16 = 1;

/// What to run.
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    /// Validators (including byzantine and offline ones).
    pub validators: usize,
    /// Miners (at most 9 with the synthetic scorer).
    pub miners: usize,
    /// Runs to complete.
    pub epochs: u64,
    /// Weight mode.
    pub mode: WeightMode,
    /// Seed of keys and qualities.
    pub seed: u64,
    /// Milliseconds per block.
    pub block_ms: u64,
    /// Blocks per epoch.
    pub epoch_length: u64,
    /// Strategies for the last validators, in order.
    pub byzantine: Vec<Byzantine>,
    /// How many of the first honest validators are offline (quorum tests)...
    pub offline: usize,
    /// ...from the start (`None`) or once they have finished this run (`Some(run)`).
    pub offline_after: Option<u64>,
    /// Where to write `summary.json`, `chain.redb`, `evidence/` and the node databases.
    pub out: PathBuf,
    /// Print progress per epoch to stderr.
    pub progress: bool,
    /// Restart validator `i` once it has scored run `r`: `(i, r)`.
    pub restart: Option<(usize, u64)>,
    /// Evenly spaced qualities for any number of miners (benchmarks), instead of 0.1 apart.
    pub dense: bool,
    /// Score with the synthetic scorer (hidden qualities plus noise) instead of running the
    /// miners' submissions.
    pub synthetic: bool,
}

/// The submission variants real-execution miners cycle through.
pub const MINER_VARIANTS: [Variant; 5] = [
    Variant::Faithful,
    Variant::Quantized,
    Variant::Noisy,
    Variant::Slow,
    Variant::Lazy,
];

/// One run's result, as honest validators decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The run.
    pub run: u64,
    /// Winner (SS58).
    pub winner: Option<String>,
    /// Quorum met.
    pub quorum_met: bool,
    /// Consensus scores.
    pub consensus: BTreeMap<String, f64>,
    /// `(validator, reason)` left out.
    pub excluded: Vec<(String, String)>,
}

/// What a devnet run produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per run.
    pub runs: Vec<RunSummary>,
    /// `(hotkey, stake, strategy)`.
    pub validators: Vec<(Hotkey, u64, Option<Byzantine>)>,
    /// `(hotkey, true quality)`.
    pub miners: Vec<(Hotkey, Score)>,
    /// Problems: honest validators that disagreed or whose weights on chain differ from what
    /// they decided.
    pub mismatches: Vec<String>,
    /// Bytes served for `(validator index, run)` before and after a restart, when asked.
    pub restart_bytes: Option<(Vec<u8>, Vec<u8>)>,
    /// The true best miner.
    pub best_miner: Hotkey,
    /// Per honest validator and run: milliseconds from the reveal window's closing block to
    /// the end of its aggregation.
    pub aggregation_ms: Vec<u64>,
}

fn derive_key(seed: u64, role: &str, i: usize) -> Keypair {
    let mut b = seed.to_le_bytes().to_vec();
    b.extend_from_slice(role.as_bytes());
    b.extend_from_slice(&(i as u64).to_le_bytes());
    Keypair::from_seed(&sha256(&b))
}

fn now_ms() -> u64 {
    (system_clock())()
}

struct Node {
    stop: watch::Sender<bool>,
    api_task: tokio::task::JoinHandle<()>,
    loop_task: tokio::task::JoinHandle<()>,
    store: Arc<NodeStore>,
}

/// What a devnet validator runs with.
struct NodeSpec {
    machine: MachineConfig,
    owner: Option<String>,
    byzantine: Option<Byzantine>,
    tick: Duration,
}

#[allow(clippy::too_many_arguments)]
async fn start_node(
    spec: NodeSpec,
    key: Keypair,
    chain_url: &str,
    db: &Path,
    listener: TcpListener,
    dht: Option<Dht>,
    scorer: Arc<dyn Scorer>,
    http_timeout: Duration,
) -> Result<Node, String> {
    let store = Arc::new(NodeStore::open(db).map_err(|e| e.to_string())?);
    let state = Arc::new(ApiState::new(
        store.clone(),
        key.clone(),
        1_000_000,
        system_clock(),
    ));
    let api_task = tokio::spawn({
        let s = state.clone();
        async move {
            let _ = api::serve(s, listener).await;
        }
    });
    let chain: Arc<dyn Chain> = Arc::new(HttpChain::new(chain_url, http_timeout));
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| e.to_string())?;
    let machine = Machine::new(spec.machine.clone(), key.clone(), seed);
    let actor: Box<dyn Actor> = match spec.byzantine {
        Some(b) => Box::new(tally_sim::Byzantine::new(machine, key.clone(), b)),
        None => Box::new(machine),
    };
    let ports = Ports {
        chain,
        store: store.clone(),
        api: state.clone(),
        dht: dht.map(|d| Arc::new(d) as Arc<dyn tally_node::ports::DhtPort>),
        scorer,
        peers: Arc::new(PeerClient::new(key.clone(), http_timeout, system_clock())),
        key,
    };
    let driver = Driver::new(
        actor,
        DriverConfig {
            netuid: spec.machine.netuid,
            owner: spec.owner,
            tick: spec.tick,
            restore_runs: 16,
        },
        ports,
    );
    let (stop, rx) = watch::channel(false);
    let loop_task = tokio::spawn(driver.run(rx));
    Ok(Node {
        stop,
        api_task,
        loop_task,
        store,
    })
}

impl Node {
    async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.loop_task.await;
        self.api_task.abort();
        let _ = self.api_task.await;
        // effects still in flight hold the database; wait (bounded) until they let go, so the
        // file can be reopened (a restart, or a test reading it)
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.store) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn outcome(store: &NodeStore, run: u64) -> Option<RunOutcome> {
    store.run_outcome(run).ok().flatten()
}

/// Runs the devnet.
pub async fn run(cfg: DevnetConfig) -> Result<Report, String> {
    let n = cfg.validators;
    if !(2..=64).contains(&n) {
        return Err("--validators must be 2..=64".into());
    }
    if cfg.miners == 0 || (cfg.miners > SyntheticScorer::MAX_MINERS && !cfg.dense) {
        return Err(format!(
            "--miners must be 1..={}",
            SyntheticScorer::MAX_MINERS
        ));
    }
    if cfg.byzantine.len() + cfg.offline >= n {
        return Err("too many byzantine or offline validators for the number of validators".into());
    }
    if cfg.epochs == 0 || cfg.epochs > 1000 {
        return Err("--epochs must be 1..=1000".into());
    }
    std::fs::create_dir_all(cfg.out.join("nodes"))
        .map_err(|e| format!("cannot create {}: {e}", cfg.out.display()))?;
    let chain_path = cfg.out.join("chain.redb");
    if chain_path.exists() {
        return Err(format!(
            "{} already holds a devnet; choose an empty --out directory",
            cfg.out.display()
        ));
    }

    // keys and stakes: byzantine stake stays below one half
    let vkeys: Vec<Keypair> = (0..n)
        .map(|i| derive_key(cfg.seed, "validator", i))
        .collect();
    let mkeys: Vec<Keypair> = (0..cfg.miners)
        .map(|i| derive_key(cfg.seed, "miner", i))
        .collect();
    let owner_key = derive_key(cfg.seed, "owner", 0);
    let nb = cfg.byzantine.len();
    let strategy = |i: usize| {
        if i >= n - nb {
            Some(cfg.byzantine[i - (n - nb)])
        } else {
            None
        }
    };
    let stake = |i: usize| {
        if strategy(i).is_some() {
            10_000
        } else {
            20_000 + 1_000 * i as u64
        }
    };
    let total: u64 = (0..n).map(stake).sum();
    let byz: u64 = (0..n).filter(|i| strategy(*i).is_some()).map(stake).sum();
    if byz * 2 >= total {
        return Err("byzantine stake would reach one half; use more validators".into());
    }

    // listeners first, so genesis can carry the addresses
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let owner_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let owner_addr = owner_listener.local_addr().map_err(|e| e.to_string())?;
    let chain_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let chain_url = format!(
        "http://{}",
        chain_listener.local_addr().map_err(|e| e.to_string())?
    );

    let params = SubnetParams {
        netuid: NETUID,
        epoch_length: cfg.epoch_length,
        epoch_offset: 0,
        block_ms: cfg.block_ms,
        weights_rate_limit: 1,
        commitment_max_bytes: 64,
        commitment_bytes_per_epoch: 256,
        max_uids: 256,
        min_validator_stake: 1_000,
        burn_uid: 0,
    };
    let mut neurons = vec![(
        NETUID,
        NeuronInfo {
            uid: 0,
            hotkey: owner_key.hotkey(),
            stake: 0,
            validator_permit: false,
            axon: owner_addr.to_string(),
            peer: String::new(),
        },
    )];
    for (i, k) in vkeys.iter().enumerate() {
        neurons.push((
            NETUID,
            NeuronInfo {
                uid: 0,
                hotkey: k.hotkey(),
                stake: stake(i),
                validator_permit: true,
                axon: addrs[i].to_string(),
                peer: String::new(),
            },
        ));
    }
    for k in &mkeys {
        neurons.push((
            NETUID,
            NeuronInfo {
                uid: 0,
                hotkey: k.hotkey(),
                stake: 0,
                validator_permit: false,
                axon: String::new(),
                peer: String::new(),
            },
        ));
    }
    let genesis = Genesis {
        timestamp_ms: now_ms(),
        subnets: vec![params.clone()],
        neurons,
    };
    let local = Arc::new(LocalChain::open(&chain_path, &genesis).map_err(|e| e.to_string())?);
    let shared: Arc<dyn Chain> = local.clone();
    let chain_task = tokio::spawn(async move {
        let _ = tally_chain::server::serve(shared, chain_listener).await;
    });

    // the miners and what the owner knows of them
    let miners: Vec<Hotkey> = mkeys.iter().map(|k| k.hotkey()).collect();
    let family_name = if cfg.synthetic {
        "synthetic"
    } else {
        "inference"
    };
    let family = FamilyId::new(family_name).map_err(|e| e.to_string())?;
    let registry = Arc::new(Registry::new(owner_key.clone(), NETUID, family.clone()));
    let mlp = Inference::default_mlp(cfg.seed);
    let synthetic = if cfg.synthetic {
        Some(Arc::new(if cfg.dense {
            SyntheticScorer::dense(cfg.seed, &miners, 0.02)?
        } else {
            SyntheticScorer::new(cfg.seed, &miners, 0.02)?
        }))
    } else {
        None
    };
    let qualities: Vec<(Hotkey, Score)> = match &synthetic {
        Some(s) => s.qualities(),
        None => {
            // each miner submits a built variant; its quality is what the family scores it
            let rt = WasmRuntime::new().map_err(|e| e.to_string())?;
            let fam =
                Inference::new(mlp.clone(), &rt, Limits::default()).map_err(|e| e.to_string())?;
            let probe = fam.tasks(&[0; 32], 3);
            let mut q = Vec::new();
            for (i, k) in mkeys.iter().enumerate() {
                let bytes = build(&mlp, MINER_VARIANTS[i % MINER_VARIANTS.len()]);
                if let Ok(mut m) = registry.miners.write() {
                    m.insert(k.hotkey());
                }
                let up = upload(k, NETUID, &family, &bytes, now_ms()).map_err(|e| e.to_string())?;
                registry.accept(&up).map_err(|(_, e)| e)?;
                let module = rt.load(&bytes, fam.imports()).map_err(|e| e.to_string())?;
                let ev =
                    tally_exec::family::evaluate(&fam, &rt, &module, &probe, fam.limits(), "owner");
                q.push((k.hotkey(), ev.score));
            }
            q
        }
    };
    // the best miner (ties to the first listed)
    let best = qualities
        .iter()
        .fold(None::<&(Hotkey, Score)>, |b, q| {
            if b.is_none_or(|b| q.1 > b.1) {
                Some(q)
            } else {
                b
            }
        })
        .map(|q| q.0)
        .ok_or("no miners")?;
    let pick: owner::Pick = {
        let q = qualities.clone();
        Arc::new(move |_run| Some((best, q.clone())))
    };
    let owner_routes = owner::router(pick).merge(submissions::router(registry.clone()));
    let owner_task = tokio::spawn(async move {
        let _ = axum::serve(owner_listener, owner_routes).await;
    });
    let mut scorers: Vec<Arc<dyn Scorer>> = Vec::new();
    for k in &vkeys {
        match &synthetic {
            Some(s) => scorers.push(s.clone()),
            None => {
                let rt = Arc::new(WasmRuntime::new().map_err(|e| e.to_string())?);
                let fam = Arc::new(
                    Inference::new(mlp.clone(), &rt, Limits::default())
                        .map_err(|e| e.to_string())?,
                );
                scorers.push(Arc::new(ExecScorer {
                    owner_addr: owner_addr.to_string(),
                    owner: owner_key.hotkey(),
                    netuid: NETUID,
                    family_id: family.clone(),
                    runtime: rt,
                    family: fam,
                    cache: ArchiveCache::new(64 << 20, 8 << 20),
                    peers: PeerClient::new(k.clone(), Duration::from_secs(2), system_clock()),
                    tasks: 3,
                    ledger: Default::default(),
                }));
            }
        }
    }

    // DHT nodes, fully dialled
    let tmp_view = {
        let head = local.head().map_err(|e| e.to_string())?;
        let snap = tally_chain::snapshot::read_snapshot(local.as_ref(), NETUID, head.number)?;
        tally_validator::view_of(
            NETUID,
            tally_protocol::PhaseWindows::default(),
            &snap,
            tally_validator::Head {
                number: head.number,
                timestamp_ms: head.timestamp_ms,
            },
        )
    };
    let mut dhts = Vec::new();
    for k in vkeys.iter() {
        let d = Dht::start(
            DhtConfig::default(),
            libp2p::identity::Keypair::generate_ed25519(),
            k.clone(),
            tmp_view.clone(),
            system_clock(),
        )
        .await
        .map_err(|e| e.to_string())?;
        dhts.push(d);
    }
    let mut dht_addrs = Vec::new();
    for d in &dhts {
        dht_addrs.push(d.listen_addrs().await.map_err(|e| e.to_string())?[0].clone());
    }
    for d in &dhts {
        for a in &dht_addrs {
            let _ = d.dial(a.clone()).await;
        }
    }

    let http_timeout = Duration::from_millis((cfg.block_ms * 3).clamp(500, 5_000));
    let vcfg = |i: usize| {
        let mut m = MachineConfig::new(NETUID, family.clone(), cfg.mode);
        m.has_owner = true;
        NodeSpec {
            machine: m,
            owner: Some(owner_addr.to_string()),
            byzantine: strategy(i),
            tick: Duration::from_millis((cfg.block_ms / 2).max(20)),
        }
    };
    // starts validator `i` (its database, API on `l`, DHT node and loop)
    let launch = |i: usize, l: TcpListener| {
        let db = cfg.out.join("nodes").join(format!("validator-{i}.redb"));
        let (c, k, d, sc, url) = (
            vcfg(i),
            vkeys[i].clone(),
            dhts[i].clone(),
            scorers[i].clone(),
            chain_url.clone(),
        );
        async move { start_node(c, k, &url, &db, l, Some(d), sc, http_timeout).await }
    };
    let mut nodes: Vec<Option<Node>> = Vec::new();
    let mut listeners: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
    for (i, slot) in listeners.iter_mut().enumerate() {
        if i < cfg.offline && cfg.offline_after.is_none() {
            nodes.push(None);
            continue;
        }
        let l = slot.take().ok_or("listener used twice")?;
        let node = launch(i, l).await?;
        nodes.push(Some(node));
    }

    // blocks start once every node is up, so run 0 is a whole epoch for everyone
    let producer = local.spawn_producer(cfg.block_ms);

    // drive: wait until every online honest validator has finished every run
    let honest: Vec<usize> = (cfg.offline..n)
        .filter(|i| strategy(*i).is_none())
        .collect();
    let epoch_ms = cfg.block_ms * cfg.epoch_length;
    let deadline = Instant::now()
        + Duration::from_millis(epoch_ms * (cfg.epochs + 4))
        + Duration::from_secs(10);
    let mut last_epoch = u64::MAX;
    let mut restart_bytes = None;
    let mut restart = cfg.restart;
    loop {
        let head = local.head().map_err(|e| e.to_string())?;
        let epoch = head.number / cfg.epoch_length.max(1);
        if epoch != last_epoch && cfg.progress {
            let done = (0..cfg.epochs)
                .filter(|r| {
                    honest.iter().all(|i| {
                        nodes[*i]
                            .as_ref()
                            .is_some_and(|nd| outcome(&nd.store, *r).is_some())
                    })
                })
                .count();
            eprintln!(
                "epoch {epoch} (block {}): {done}/{} runs aggregated by every honest validator",
                head.number, cfg.epochs
            );
            last_epoch = epoch;
        }
        if let Some((i, r)) = restart {
            let scored = nodes
                .get(i)
                .and_then(|x| x.as_ref())
                .is_some_and(|nd| nd.store.own_report(r).ok().flatten().is_some());
            if scored {
                let before = nodes[i]
                    .as_ref()
                    .and_then(|nd| nd.store.own_report(r).ok().flatten())
                    .unwrap_or_default();
                if let Some(nd) = nodes[i].take() {
                    nd.shutdown().await;
                }
                // rebind the same address: peers find it where the metagraph says
                let l = TcpListener::bind(addrs[i])
                    .await
                    .map_err(|e| format!("rebind {}: {e}", addrs[i]))?;
                let node = launch(i, l).await?;
                let after = node.store.own_report(r).ok().flatten().unwrap_or_default();
                restart_bytes = Some((before, after));
                nodes[i] = Some(node);
                restart = None;
            }
        }
        if let Some(r0) = cfg.offline_after {
            for (i, slot) in nodes.iter_mut().enumerate().take(cfg.offline) {
                if slot
                    .as_ref()
                    .is_some_and(|nd| outcome(&nd.store, r0).is_some())
                {
                    if let Some(nd) = slot.take() {
                        nd.shutdown().await;
                        if cfg.progress {
                            eprintln!("validator {i} goes offline after run {r0}");
                        }
                    }
                }
            }
        }
        let all_done = (0..cfg.epochs).all(|r| {
            honest.iter().all(|i| {
                nodes[*i]
                    .as_ref()
                    .is_some_and(|nd| outcome(&nd.store, r).is_some())
            })
        });
        if all_done {
            break;
        }
        if Instant::now() > deadline {
            for nd in nodes.into_iter().flatten() {
                nd.shutdown().await;
            }
            return Err(format!(
                "the devnet did not finish {} runs in time (at epoch {epoch})",
                cfg.epochs
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // results
    let mut runs = Vec::new();
    let mut mismatches = Vec::new();
    let mut aggregation_ms = Vec::new();
    let first = honest[0];
    for r in 0..cfg.epochs {
        let base = nodes[first]
            .as_ref()
            .and_then(|nd| outcome(&nd.store, r))
            .ok_or("missing outcome")?;
        for i in &honest {
            let o = nodes[*i]
                .as_ref()
                .and_then(|nd| outcome(&nd.store, r))
                .ok_or("missing outcome")?;
            if o.winner != base.winner
                || o.quorum_met != base.quorum_met
                || o.uid_weights != base.uid_weights
            {
                mismatches.push(format!(
                    "run {r}: validator {i} decided differently from validator {first}"
                ));
            }
            // the weights it decided are the weights on chain at the block it set them
            if let (Some(block), Some(want)) = (o.weights_set_at_block, o.uid_weights.as_ref()) {
                let hist = local
                    .weights_history(NETUID, &vkeys[*i].hotkey())
                    .map_err(|e| e.to_string())?;
                if !hist.iter().any(|h| h.block == block && h.weights == *want) {
                    mismatches.push(format!("run {r}: validator {i}'s weights on chain differ from the consensus it computed"));
                }
            } else if o.quorum_met && o.uid_weights.is_some() {
                mismatches.push(format!("run {r}: validator {i} did not set its weights"));
            }
        }
        for i in &honest {
            if let Some(o) = nodes[*i].as_ref().and_then(|nd| outcome(&nd.store, r)) {
                let closed = local.block(o.reveal_closed_block).ok().flatten();
                if let (Some(c), Some(done)) = (closed, o.aggregated_at_ms) {
                    aggregation_ms.push(done.saturating_sub(c.timestamp_ms));
                }
            }
        }
        runs.push(RunSummary {
            run: r,
            winner: base.winner.map(|w| w.to_ss58()),
            quorum_met: base.quorum_met,
            consensus: base
                .consensus
                .iter()
                .map(|(k, v)| (k.to_ss58(), *v))
                .collect(),
            excluded: base
                .excluded
                .iter()
                .map(|x| (x.validator.to_ss58(), x.reason.clone()))
                .collect(),
        });
    }

    // evidence: every accepted signed report and every proof, a file each
    let ev_dir = cfg.out.join("evidence");
    std::fs::create_dir_all(&ev_dir).map_err(|e| e.to_string())?;
    // what the honest validators accepted is the run's evidence; byzantine stores are not
    for nd in honest.iter().filter_map(|i| nodes[*i].as_ref()) {
        for r in 0..cfg.epochs {
            for (v, wire) in nd.store.peer_reports(r).map_err(|e| e.to_string())? {
                std::fs::write(
                    ev_dir.join(format!("report-run{r}-{}.bin", v.to_ss58())),
                    wire,
                )
                .map_err(|e| e.to_string())?;
            }
        }
        for (id, proof) in nd.store.evidence().map_err(|e| e.to_string())? {
            std::fs::write(
                ev_dir.join(format!("equivocation-{}.bin", hex::encode(&id[..8]))),
                proof,
            )
            .map_err(|e| e.to_string())?;
        }
    }

    let validators: Vec<(Hotkey, u64, Option<Byzantine>)> = (0..n)
        .map(|i| (vkeys[i].hotkey(), stake(i), strategy(i)))
        .collect();
    let summary = json!({
        "runs": runs.iter().map(|r| json!({"run": r.run, "winner": r.winner, "quorum_met": r.quorum_met, "consensus": r.consensus,
            "excluded": r.excluded.iter().map(|(v, why)| json!({"validator": v, "reason": why})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "validators": validators.iter().map(|(k, s, b)| json!({"hotkey": k.to_ss58(), "stake": s, "byzantine": b.map(|b| b.name())})).collect::<Vec<_>>(),
        "miners": qualities.iter().map(|(k, q)| json!({"hotkey": k.to_ss58(), "true_quality": q.to_f64()})).collect::<Vec<_>>(),
    });
    std::fs::write(
        cfg.out.join("summary.json"),
        serde_json::to_vec_pretty(&summary).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;

    for nd in nodes.into_iter().flatten() {
        nd.shutdown().await;
    }
    drop(producer);
    chain_task.abort();
    owner_task.abort();
    Ok(Report {
        runs,
        validators,
        miners: qualities,
        mismatches,
        restart_bytes,
        best_miner: best,
        aggregation_ms,
    })
}
