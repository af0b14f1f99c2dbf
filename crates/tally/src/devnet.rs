//! A whole subnet on one machine, every node its own process of this binary on 127.0.0.1: the
//! embedded chain (`tally chain serve`), the owner (`tally owner`) and N validators (`tally
//! devnet-node`, which is `tally validator` plus an optional byzantine actor from `tally-sim`),
//! each validator with its own config file, DHT node, HTTP API, database and hotkey, and, for
//! miner-hosted mode, M hosters (`tally devnet-hoster`, which is `tally hoster` around a
//! hoster strategy from `tally-sim`), each with its own config, DHT node, database and hotkey.
//!
//! [`run`] writes the keys (`OUT/keys/`, throwaway), the genesis and every config, starts the
//! processes, writes `OUT/devnet.json` once they are up, then starts the blocks and watches the
//! validators' APIs until every honest one has aggregated every run. It then stops the
//! validators (SIGTERM), reads their databases, checks the weights on chain and writes
//! `summary.json` and `evidence/`. The last validators get the byzantine strategies asked for;
//! their stake is kept below one half.

use parity_scale_codec::Encode;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_chain::subtensor::SubtensorChain;
use tally_chain::{Chain, Genesis, HttpChain, SubnetParams};
use tally_consensus::WeightMode;
use tally_core::{sha256, FamilyId, Hotkey, Keypair, Score};
use tally_exec::builder::{build, Variant};
use tally_exec::inference::Inference;
use tally_exec::runtime::{Limits, WasmRuntime};
use tally_exec::Family;
use tally_net::system_clock;
use tally_node::peer::{PeerClient, PeerPath};
use tally_node::scorer::SyntheticScorer;
use tally_node::store::NodeStore;
use tally_node::submissions::upload;
use tally_protocol::{rules, EpochClock, PhaseWindows};
pub use tally_sim::HosterStrategy;
pub use tally_sim::Strategy as Byzantine;
use tally_validator::RunOutcome;

/// The devnet's subnet.
pub const NETUID: u16 = 1;

/// What to run.
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    /// The `tally` binary the nodes run as.
    pub binary: PathBuf,
    /// Validators (including byzantine and offline ones).
    pub validators: usize,
    /// Miners (at most 9 with the synthetic scorer unless `dense`).
    pub miners: usize,
    /// Runs to complete; 0 keeps the subnet running until interrupted.
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
    /// Where everything is written.
    pub out: PathBuf,
    /// Print progress per epoch to stderr.
    pub progress: bool,
    /// Kill validator `i` with SIGKILL once it has revealed run `r`, and restart it: `(i, r)`.
    pub restart: Option<(usize, u64)>,
    /// Evenly spaced qualities for any number of miners (benchmarks), instead of 0.1 apart.
    pub dense: bool,
    /// Score with the synthetic scorer (hidden qualities plus noise) instead of running the
    /// miners' submissions.
    pub synthetic: bool,
    /// How many of the last miners submit hostile modules instead of a build, cycling through
    /// [`HOSTILE`] (real execution only).
    pub hostile: usize,
    /// Run on this Subtensor development chain instead of the embedded chain.
    pub subtensor: Option<SubtensorTarget>,
    /// Hosters (miner-hosted mode): processes that commit and reveal inference on each
    /// epoch's challenge. With hosters, validators score them (`execution = "hosted"`, or
    /// `"both"` when there are miners too).
    pub hosters: usize,
    /// The hosters' strategies, cycled over them (empty: [`HosterStrategy::ALL`]).
    pub hoster_strategies: Vec<HosterStrategy>,
    /// Kill hoster `i` with SIGKILL between its commit and its reveal of the first run, and
    /// restart it.
    pub restart_hoster: Option<usize>,
}

/// A running Subtensor development chain to put the devnet's subnet on.
#[derive(Clone, Debug)]
pub struct SubtensorTarget {
    /// Its endpoint (`ws://`).
    pub url: String,
    /// Its sudo key; also the owner's and every neuron's coldkey.
    pub sudo: Keypair,
}

/// The hostile submissions `--hostile-miners` cycles through: the module that costs the most
/// to compile within the compile budget, the one that costs the most to run within it, and the
/// review's 50 KB nested-loop module that the budget refuses.
pub const HOSTILE: [&str; 3] = ["worst-compile", "worst-run", "over-budget"];

/// The bytes of hostile submission `name` (one of [`HOSTILE`]).
pub fn hostile_module(name: &str) -> Option<Vec<u8>> {
    use tally_exec::adversarial::{loop_nest_of_size, worst_within};
    let within = |n: &str| worst_within().into_iter().find(|m| m.0 == n).map(|m| m.1);
    match name {
        "worst-compile" => within("code-and-work"),
        "worst-run" => within("scatter"),
        "over-budget" => Some(loop_nest_of_size(50 << 10, 3000, 1000)),
        _ => None,
    }
}

/// Whether a devnet aggregation was on time: it ended before the next run's commit window
/// could need the validator, half an epoch after the reveal window closed.
pub fn on_time(aggregation_ms: u64, block_ms: u64, epoch_length: u64) -> bool {
    aggregation_ms <= block_ms * epoch_length / 2
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
    /// Miner-hosted mode: the first honest validator's verdict per hoster (SS58): score and the
    /// reason of a 0.
    pub hosted: BTreeMap<String, (f64, Option<String>)>,
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
    /// Bytes served for `(validator index, run)` before a SIGKILL and after the restart.
    pub restart_bytes: Option<(Vec<u8>, Vec<u8>)>,
    /// The true best miner.
    pub best_miner: Hotkey,
    /// Per honest validator and run: milliseconds from the reveal window's closing block to
    /// the end of its aggregation.
    pub aggregation_ms: Vec<u64>,
    /// Aggregations that were not [`on_time`], one line each.
    pub late: Vec<String>,
    /// The chain's URL and the subnet.
    pub chain: (String, u16),
    /// The first run watched (0 on the embedded chain, whose blocks start with the devnet).
    pub first_run: u64,
    /// On Subtensor, per honest validator and run: milliseconds from the devnet seeing the
    /// reveal window's closing block to it seeing the block its weights extrinsic is in.
    pub weights_ms: Vec<u64>,
    /// On Subtensor: the commitments and weights each honest validator decided, with the
    /// blocks to read them at (`chain-checks.json`, for `scripts/subtensor_readback.py`).
    pub chain_checks: Option<PathBuf>,
    /// Peak resident memory (KiB) of each validator process still running at the end, read
    /// from `/proc` just before it is stopped (empty where `/proc` is not there).
    pub peak_rss_kib: Vec<u64>,
    /// `(hotkey, strategy)` of each hoster.
    pub hosters: Vec<(Hotkey, HosterStrategy)>,
    /// Whether the hoster asked for was killed between its commit and its reveal and
    /// restarted.
    pub hoster_restarted: bool,
}

/// A process's peak resident set size in KiB (`VmHWM` in `/proc/PID/status`).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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

/// A port free now, below Linux's ephemeral range (32768 and up), so the outgoing connections
/// of nodes already running cannot take it before the node it is meant for binds it.
fn free_port() -> Result<u16, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() as u64)
        .wrapping_mul(7919)
        .wrapping_add(now_ms()) as u32;
    for _ in 0..12_000 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (start.wrapping_add(i.wrapping_mul(37)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port in 20000..32000 on 127.0.0.1".into())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The processes of a devnet; all are killed when this is dropped.
struct Procs {
    bin: PathBuf,
    logs: PathBuf,
    chain: Option<Child>,
    owner: Option<Child>,
    nodes: Vec<Option<Child>>,
    /// `devnet-node` arguments per validator.
    args: Vec<Vec<String>>,
    hosters: Vec<Option<Child>>,
    /// `devnet-hoster` arguments per hoster.
    hoster_args: Vec<Vec<String>>,
}

impl Procs {
    fn spawn(&self, name: &str, args: &[String]) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {} {name}: {e}", self.bin.display()))
    }

    fn start_node(&mut self, i: usize) -> Result<(), String> {
        let c = self.spawn(&format!("validator-{i}"), &self.args[i].clone())?;
        self.nodes[i] = Some(c);
        Ok(())
    }

    fn start_hoster(&mut self, i: usize) -> Result<(), String> {
        let c = self.spawn(&format!("hoster-{i}"), &self.hoster_args[i].clone())?;
        self.hosters[i] = Some(c);
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(child: &mut Child, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn stop_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            Self::stop(&mut c, Duration::from_secs(10));
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in self
            .nodes
            .iter_mut()
            .chain(self.hosters.iter_mut())
            .flatten()
        {
            Self::stop(c, Duration::from_secs(5));
        }
        for c in [self.owner.as_mut(), self.chain.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_healthy(
    peers: &PeerClient,
    to: &Hotkey,
    addr: &str,
    within: Duration,
) -> Result<(), String> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok((200, _)) = peers.get(to, addr, &PeerPath::healthz()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{addr} did not answer /healthz within {within:?}"))
}

fn fetch_outcome(peers: &PeerClient, to: &Hotkey, addr: &str, run: u64) -> Option<RunOutcome> {
    match peers.get(to, addr, &PeerPath::outcome(run)) {
        Ok((200, b)) => RunOutcome::from_json(&b).ok(),
        _ => None,
    }
}

/// A flag set on SIGINT or SIGTERM, so the devnet stops its processes before it exits.
fn interrupt_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            f.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    flag
}

/// The embedded chain's genesis (`OUT/genesis.json`): the owner, the validators with their stakes
/// and permits, the miners.
#[allow(clippy::too_many_arguments)]
fn write_genesis(
    cfg: &DevnetConfig,
    out: &Path,
    owner_key: &Keypair,
    owner_addr: &str,
    vkeys: &[Keypair],
    mkeys: &[Keypair],
    api: &[String],
    stake: &dyn Fn(usize) -> u64,
) -> Result<(), String> {
    let params = SubnetParams {
        netuid: NETUID,
        epoch_length: cfg.epoch_length,
        epoch_offset: 0,
        block_ms: cfg.block_ms,
        weights_rate_limit: 1,
        commitment_max_bytes: 64,
        commitment_bytes_per_epoch: 256,
        max_uids: 4096,
        min_validator_stake: 1_000,
        burn_uid: 0,
    };
    let neuron = |k: &Keypair, stake: u64, permit: bool, axon: String| {
        Genesis::neuron(NETUID, k.hotkey(), stake, permit, axon)
    };
    let mut neurons = vec![neuron(owner_key, 0, false, owner_addr.to_string())];
    for (i, k) in vkeys.iter().enumerate() {
        neurons.push(neuron(k, stake(i), true, api[i].clone()));
    }
    for k in mkeys {
        neurons.push(neuron(k, 0, false, String::new()));
    }
    let genesis = Genesis {
        timestamp_ms: now_ms(),
        subnets: vec![params],
        neurons,
    };
    write(
        &out.join("genesis.json"),
        &serde_json::to_vec_pretty(&genesis).map_err(|e| e.to_string())?,
    )?;
    Ok(())
}

/// Runs the devnet (blocking: call it from a plain thread or `spawn_blocking`).
pub fn run(cfg: DevnetConfig) -> Result<Report, String> {
    let n = cfg.validators;
    if !(2..=64).contains(&n) {
        return Err("--validators must be 2..=64".into());
    }
    if (cfg.miners == 0 && cfg.hosters == 0)
        || (cfg.miners > SyntheticScorer::MAX_MINERS && !cfg.dense)
    {
        return Err(format!(
            "--miners must be 1..={} (0 only with --hosters)",
            SyntheticScorer::MAX_MINERS
        ));
    }
    if cfg.hosters > 64 {
        return Err("--hosters must be 0..=64".into());
    }
    if cfg.hosters > 0 && cfg.synthetic && cfg.miners > 0 {
        // the synthetic scorer scores every miner the chain lists, hosters included
        return Err(
            "--hosters with --synthetic needs --miners 0 (or real execution for miners)".into(),
        );
    }
    let hoster_strategy = |i: usize| {
        let list: &[HosterStrategy] = if cfg.hoster_strategies.is_empty() {
            &HosterStrategy::ALL
        } else {
            &cfg.hoster_strategies
        };
        list[i % list.len()]
    };
    if let Some(i) = cfg.restart_hoster {
        if i >= cfg.hosters || hoster_strategy(i) != HosterStrategy::Honest {
            return Err(
                "--restart-hoster must name an honest hoster (whose score shows the reveal survived)"
                    .into(),
            );
        }
    }
    if cfg.byzantine.len() + cfg.offline >= n {
        return Err("too many byzantine or offline validators for the number of validators".into());
    }
    if cfg.epochs > 1000 {
        return Err("--epochs must be 0..=1000".into());
    }
    if cfg.hostile > 0 && (cfg.synthetic || cfg.hostile >= cfg.miners) {
        return Err(
            "--hostile-miners needs real execution (no --synthetic) and at least one other miner"
                .into(),
        );
    }
    if let Some(b) = cfg
        .byzantine
        .iter()
        .find(|b| !Byzantine::DEVNET.contains(b))
    {
        return Err(format!(
            "--byzantine {} is a simulator strategy (tally sim); the devnet offers {}",
            b.name(),
            Byzantine::DEVNET.map(|b| b.name()).join(", ")
        ));
    }
    let out = cfg.out.clone();
    if out.join("chain.redb").exists() {
        return Err(format!(
            "{} already holds a devnet; choose an empty --out directory",
            out.display()
        ));
    }
    for d in ["nodes", "keys", "logs"] {
        std::fs::create_dir_all(out.join(d))
            .map_err(|e| format!("cannot create {}: {e}", out.join(d).display()))?;
    }

    // keys and stakes: byzantine stake stays below one half
    let vkeys: Vec<Keypair> = (0..n)
        .map(|i| derive_key(cfg.seed, "validator", i))
        .collect();
    let mkeys: Vec<Keypair> = (0..cfg.miners)
        .map(|i| derive_key(cfg.seed, "miner", i))
        .collect();
    let hkeys: Vec<Keypair> = (0..cfg.hosters)
        .map(|i| derive_key(cfg.seed, "hoster", i))
        .collect();
    let owner_key = derive_key(cfg.seed, "owner", 0);
    let nb = cfg.byzantine.len();
    let strategy = |i: usize| (i >= n - nb).then(|| cfg.byzantine[i - (n - nb)]);
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
    let key_file = |name: &str, k: &Keypair| -> Result<PathBuf, String> {
        let p = out.join("keys").join(format!("{name}.json"));
        write(
            &p,
            k.to_keyfile_json().map_err(|e| e.to_string())?.as_bytes(),
        )?;
        Ok(p)
    };
    let owner_file = key_file("owner", &owner_key)?;
    let vfiles: Vec<PathBuf> = vkeys
        .iter()
        .enumerate()
        .map(|(i, k)| key_file(&format!("validator-{i}"), k))
        .collect::<Result<_, _>>()?;
    for (i, k) in mkeys.iter().enumerate() {
        key_file(&format!("miner-{i}"), k)?;
    }
    let hfiles: Vec<PathBuf> = hkeys
        .iter()
        .enumerate()
        .map(|(i, k)| key_file(&format!("hoster-{i}"), k))
        .collect::<Result<_, _>>()?;

    // addresses, fixed up front so genesis and every config can name them; Subtensor refuses
    // 127.0.0.1 as an axon, so its nodes listen on 127.0.0.2 (loopback too)
    let host = if cfg.subtensor.is_some() {
        "127.0.0.2"
    } else {
        "127.0.0.1"
    };
    let chain_addr = format!("127.0.0.1:{}", free_port()?);
    let chain_url = match &cfg.subtensor {
        Some(t) => t.url.clone(),
        None => format!("http://{chain_addr}"),
    };
    let owner_addr = format!("{host}:{}", free_port()?);
    let api: Vec<String> = (0..n)
        .map(|_| free_port().map(|p| format!("{host}:{p}")))
        .collect::<Result<_, _>>()?;
    let mut dht = Vec::new();
    for i in 0..n {
        let dir = out.join("nodes").join(format!("validator-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut secret = sha256(&(cfg.seed, "p2p", i as u64).encode()).to_vec();
        write(&dir.join("p2p.key"), &secret)?;
        let id = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| e.to_string())?;
        dht.push(format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
            free_port()?,
            id.public().to_peer_id()
        ));
    }

    // the chain: a genesis for the embedded one, a new subnet on Subtensor
    let (netuid, sub_chain) = match &cfg.subtensor {
        Some(t) => {
            let sc = SubtensorChain::new(&t.url, Duration::from_secs(30), 0)
                .map_err(|e| e.to_string())?;
            let tempo = cfg
                .epoch_length
                .checked_sub(1)
                .and_then(|t| u16::try_from(t).ok())
                .filter(|t| *t > 0)
                .ok_or("--epoch-length must be 2..=65536 on Subtensor")?;
            let staked: Vec<(Hotkey, u64)> = (0..n)
                .map(|i| {
                    (
                        vkeys[i].hotkey(),
                        stake(i) * crate::subtensor_setup::TAO / 20,
                    )
                })
                .collect();
            // hosters register like miners
            let miner_keys: Vec<Hotkey> = mkeys.iter().chain(&hkeys).map(|k| k.hotkey()).collect();
            let netuid = crate::subtensor_setup::create_subnet(
                &sc,
                &t.sudo,
                &crate::subtensor_setup::Plan {
                    owner: &owner_key.hotkey(),
                    validators: &staked,
                    miners: &miner_keys,
                    tempo,
                },
                cfg.progress,
            )?;
            (netuid, Some(Arc::new(sc)))
        }
        None => {
            let neurons: Vec<Keypair> = mkeys.iter().chain(&hkeys).cloned().collect();
            write_genesis(
                &cfg,
                &out,
                &owner_key,
                &owner_addr,
                &vkeys,
                &neurons,
                &api,
                &stake,
            )?;
            (NETUID, None)
        }
    };
    let chain: Arc<dyn Chain> = match &sub_chain {
        Some(sc) => sc.clone(),
        None => Arc::new(HttpChain::new(&chain_url, Duration::from_secs(3))),
    };

    // the miners' qualities (the owner's own measurement, or the hidden synthetic values)
    let miners: Vec<Hotkey> = mkeys.iter().map(|k| k.hotkey()).collect();
    let family = FamilyId::new(if cfg.synthetic {
        "synthetic"
    } else {
        "inference"
    })
    .map_err(|e| e.to_string())?;
    let mlp = Inference::default_mlp(cfg.seed);
    let mut uploads = Vec::new();
    let qualities: Vec<(Hotkey, Score)> = if cfg.synthetic {
        // the rule every validator and the owner apply to the miners the chain lists
        SyntheticScorer::for_miners(cfg.seed, &miners, 0.02)?.qualities()
    } else {
        let rt = WasmRuntime::new().map_err(|e| e.to_string())?;
        let fam = Inference::new(mlp.clone(), &rt, Limits::default()).map_err(|e| e.to_string())?;
        let probe = fam.tasks(&[0; 32], 3);
        let mut q = Vec::new();
        let first_hostile = cfg.miners - cfg.hostile;
        for (i, k) in mkeys.iter().enumerate() {
            if i >= first_hostile {
                let name = HOSTILE[(i - first_hostile) % HOSTILE.len()];
                let bytes = hostile_module(name).ok_or("unknown hostile module")?;
                uploads
                    .push(upload(k, netuid, &family, &bytes, now_ms()).map_err(|e| e.to_string())?);
                // none returns an output: worth nothing, and not compiled here
                q.push((k.hotkey(), Score::ZERO));
                continue;
            }
            let bytes = build(&mlp, MINER_VARIANTS[i % MINER_VARIANTS.len()]);
            uploads.push(upload(k, netuid, &family, &bytes, now_ms()).map_err(|e| e.to_string())?);
            let module = rt.load(&bytes, fam.imports()).map_err(|e| e.to_string())?;
            let ev =
                tally_exec::family::evaluate(&fam, &rt, &module, &probe, fam.limits(), "owner");
            q.push((k.hotkey(), ev.score));
        }
        q
    };
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
        // without miners, an honest hoster (it scores 1.0)
        .or_else(|| {
            (0..cfg.hosters)
                .find(|i| hoster_strategy(*i) == HosterStrategy::Honest)
                .map(|i| hkeys[i].hotkey())
        })
        .ok_or("no miners and no honest hoster")?;
    let execution = match (cfg.hosters > 0, cfg.miners > 0) {
        (false, _) => "validator",
        (true, false) => "hosted",
        (true, true) => "both",
    };

    // configs
    let owner_cfg = json!({
        "listen": owner_addr, "netuid": netuid, "family": family.as_str(),
        "owner_key": owner_file, "miners": miners.iter().map(|m| m.to_ss58()).collect::<Vec<_>>(),
        "model_seed": cfg.seed, "synthetic_seed": cfg.synthetic.then_some(cfg.seed),
        "chain": chain_url, "db": out.join("owner.redb"),
    });
    write(
        &out.join("owner.json"),
        &serde_json::to_vec_pretty(&owner_cfg).map_err(|e| e.to_string())?,
    )?;
    let http_timeout = (cfg.block_ms * 3).clamp(500, 5_000);
    // a Subtensor development chain answers reads in tens of milliseconds, but a loaded one
    // can take seconds
    let chain_timeout = if sub_chain.is_some() {
        20_000
    } else {
        http_timeout
    };
    let tick_ms = if sub_chain.is_some() {
        500
    } else {
        (cfg.block_ms / 4).max(20)
    };
    let mut args = Vec::new();
    for i in 0..n {
        let toml = format!(
            "chain = {chain_url:?}\nhotkey = {:?}\nnetuid = {netuid}\nfamily = {:?}\napi_listen = {:?}\n\
             dht_listen = {:?}\nbootstrap = [{}]\ndata_dir = {:?}\nowner_url = {owner_addr:?}\n\
             owner_hotkey = {:?}\nmode = {:?}\nscorer = {:?}\nmodel_seed = {}\ntick_ms = {tick_ms}\nhttp_timeout_ms = {http_timeout}\n\
             chain_timeout_ms = {chain_timeout}\nexecution = {execution:?}\n",
            vfiles[i].display().to_string(),
            family.as_str(),
            api[i],
            dht[i].rsplit_once("/p2p/").map(|x| x.0).unwrap_or_default(),
            dht.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            out.join("nodes").join(format!("validator-{i}")).display().to_string(),
            owner_key.hotkey().to_ss58(),
            match cfg.mode {
                WeightMode::Owner => "owner",
                WeightMode::Shadow => "shadow",
                WeightMode::Decentralized => "decentralized",
            },
            if cfg.synthetic {
                format!("synthetic:{}", cfg.seed)
            } else {
                "exec".to_string()
            },
            cfg.seed,
        );
        let path = out.join("nodes").join(format!("validator-{i}.toml"));
        write(&path, toml.as_bytes())?;
        let mut a = vec![
            "devnet-node".to_string(),
            "--config".into(),
            path.display().to_string(),
        ];
        if let Some(b) = strategy(i) {
            a.push("--byzantine".into());
            a.push(b.name().into());
        }
        args.push(a);
    }
    // hosters: bootstrapped from every validator's DHT address
    let mut hoster_args = Vec::new();
    for (i, hfile) in hfiles.iter().enumerate() {
        let dir = out.join("nodes").join(format!("hoster-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let toml = format!(
            "chain = {chain_url:?}\nhotkey = {:?}\nnetuid = {netuid}\ndht_listen = \"/ip4/127.0.0.1/tcp/{}\"\n\
             bootstrap = [{}]\ndata_dir = {:?}\nmodel_seed = {}\ntick_ms = {tick_ms}\n\
             chain_timeout_ms = {chain_timeout}\n",
            hfile.display().to_string(),
            free_port()?,
            dht.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            dir.display().to_string(),
            cfg.seed,
        );
        let path = out.join("nodes").join(format!("hoster-{i}.toml"));
        write(&path, toml.as_bytes())?;
        hoster_args.push(vec![
            "devnet-hoster".to_string(),
            "--config".into(),
            path.display().to_string(),
            "--strategy".into(),
            hoster_strategy(i).name().into(),
        ]);
    }

    // processes
    let mut procs = Procs {
        bin: cfg.binary.clone(),
        logs: out.join("logs"),
        chain: None,
        owner: None,
        nodes: (0..n).map(|_| None).collect(),
        args,
        hosters: (0..cfg.hosters).map(|_| None).collect(),
        hoster_args,
    };
    let start_file = out.join("start");
    if sub_chain.is_none() {
        procs.chain = Some(procs.spawn(
            "chain",
            &[
                "chain".into(),
                "serve".into(),
                "--listen".into(),
                chain_addr.clone(),
                "--db".into(),
                out.join("chain.redb").display().to_string(),
                "--genesis".into(),
                out.join("genesis.json").display().to_string(),
                "--block-ms".into(),
                cfg.block_ms.to_string(),
                "--start-file".into(),
                start_file.display().to_string(),
            ],
        )?);
    }
    procs.owner = Some(procs.spawn(
        "owner",
        &[
            "owner".into(),
            "--config".into(),
            out.join("owner.json").display().to_string(),
        ],
    )?);
    let client = PeerClient::new(owner_key.clone(), Duration::from_secs(3), system_clock());
    wait_healthy(
        &client,
        &owner_key.hotkey(),
        &owner_addr,
        Duration::from_secs(60),
    )?;
    for (k, up) in mkeys.iter().zip(&uploads) {
        let c = PeerClient::new(k.clone(), Duration::from_secs(5), system_clock());
        match c.post(
            &owner_key.hotkey(),
            &owner_addr,
            &PeerPath::submissions(),
            up,
        ) {
            Ok((201, _)) => {}
            other => return Err(format!("the owner refused a submission: {other:?}")),
        }
    }
    let t = Instant::now();
    while chain.head().is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("the chain at {chain_url} did not come up"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..n {
        if i < cfg.offline && cfg.offline_after.is_none() {
            continue;
        }
        procs.start_node(i)?;
    }
    for ((node, addr), k) in procs.nodes.iter().zip(&api).zip(&vkeys) {
        if node.is_some() {
            wait_healthy(&client, &k.hotkey(), addr, Duration::from_secs(60))?;
        }
    }
    for i in 0..cfg.hosters {
        procs.start_hoster(i)?;
    }
    let params = chain.params(netuid).map_err(|e| e.to_string())?;
    let clock = EpochClock {
        length: params.epoch_length,
        offset: params.epoch_offset,
    };
    let windows = PhaseWindows::default();
    let pid = |c: &Option<Child>| c.as_ref().map(|c| c.id());
    let devnet = json!({
        "chain": chain_url, "owner": format!("http://{owner_addr}"),
        "netuid": netuid, "epoch_length": clock.length, "block_ms": cfg.block_ms,
        "nodes": std::iter::once(json!({"role": "chain", "api": chain_url, "pid": pid(&procs.chain)}))
            .chain(std::iter::once(json!({"role": "owner", "hotkey": owner_key.hotkey().to_ss58(),
                "api": format!("http://{owner_addr}"), "pid": pid(&procs.owner), "key_file": owner_file})))
            .chain((0..n).map(|i| json!({"role": "validator", "hotkey": vkeys[i].hotkey().to_ss58(),
                "byzantine": strategy(i).map(|b| b.name()), "api": format!("http://{}", api[i]),
                "dht": dht[i], "pid": pid(&procs.nodes[i]), "key_file": vfiles[i],
                "config": out.join("nodes").join(format!("validator-{i}.toml"))})))
            .collect::<Vec<_>>(),
        "miners": mkeys.iter().enumerate().map(|(i, k)| json!({"hotkey": k.hotkey().to_ss58(),
            "key_file": out.join("keys").join(format!("miner-{i}.json"))})).collect::<Vec<_>>(),
        "hosters": hkeys.iter().enumerate().map(|(i, k)| json!({"hotkey": k.hotkey().to_ss58(),
            "strategy": hoster_strategy(i).name(), "pid": pid(&procs.hosters[i]),
            "key_file": hfiles[i], "config": out.join("nodes").join(format!("hoster-{i}.toml"))})).collect::<Vec<_>>(),
    });
    write(
        &out.join("devnet.json"),
        &serde_json::to_vec_pretty(&devnet).map_err(|e| e.to_string())?,
    )?;
    // the embedded chain's blocks start once every node is up, so run 0 is a whole epoch for
    // everyone; on Subtensor the first whole epoch after now is
    let first_run = if sub_chain.is_none() {
        write(&start_file, b"")?;
        0
    } else {
        let h = chain.head().map_err(|e| e.to_string())?.number;
        clock.epoch_of(h).map_or(0, |e| e + 1)
    };
    let runs_watched = first_run..first_run.saturating_add(cfg.epochs);
    if cfg.progress {
        eprintln!(
            "devnet up: chain {chain_url} subnet {netuid}, owner http://{owner_addr}, {n} validators, \
             runs of {} blocks from run {first_run}; see {}",
            clock.length,
            out.join("devnet.json").display()
        );
    }

    // watch
    let honest: Vec<usize> = (cfg.offline..n)
        .filter(|i| strategy(*i).is_none())
        .collect();
    // the embedded chain keeps its block time; a development Subtensor is slower when loaded
    let block_ms = if sub_chain.is_some() {
        params.block_ms.max(1) * 3
    } else {
        cfg.block_ms
    };
    let epoch_ms = block_ms * clock.length;
    let deadline = Instant::now()
        + Duration::from_millis(epoch_ms * (cfg.epochs + 4))
        + Duration::from_secs(20);
    let mut outcomes: BTreeMap<(usize, u64), RunOutcome> = BTreeMap::new();
    // on Subtensor, each validator's own report per run (what it committed to)
    let mut own_reports: BTreeMap<(usize, u64), Vec<u8>> = BTreeMap::new();
    // when the devnet first saw each block (Subtensor: a development chain's block timestamps
    // are not wall-clock time); older blocks are dropped as runs finish
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    // per (validator, run): when the devnet saw the reveal window close and the weights block
    let mut seen_times: BTreeMap<(usize, u64), (Option<u64>, Option<u64>)> = BTreeMap::new();
    let mut last_epoch = u64::MAX;
    let mut restart_bytes = None;
    let mut hoster_restarted = false;
    let mut restart = cfg.restart.map(|(i, k)| (i, first_run + k));
    let offline_after = cfg.offline_after.map(|k| first_run + k);
    let mut offline_done = false;
    let interrupted = interrupt_flag();
    let served_wire = |i: usize, r: u64| -> Option<Vec<u8>> {
        let (status, body) = client
            .get(&vkeys[i].hotkey(), &api[i], &PeerPath::scores(r))
            .ok()?;
        if status != 200 {
            return None;
        }
        let v = serde_json::from_slice::<serde_json::Value>(&body).ok()?;
        hex::decode(v["wire"].as_str()?).ok()
    };
    loop {
        if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            if cfg.progress {
                eprintln!("interrupted: stopping the devnet");
            }
            if cfg.epochs == 0 {
                return Err("interrupted".into());
            }
            return Err("interrupted before every run was aggregated".into());
        }
        let head = chain.head().map_err(|e| e.to_string())?;
        if sub_chain.is_some() {
            let from = seen.last_key_value().map_or(head.number, |(b, _)| b + 1);
            for b in from..=head.number {
                seen.insert(b, now_ms());
            }
        }
        let epoch = clock.epoch_of(head.number).unwrap_or(0);
        // a run can be done only once its reveal window has closed (in the next epoch)
        let closed = |r: u64| head.number >= rules::reveal_close_block(&clock, &windows, r);
        for i in (0..n).filter(|i| procs.nodes[*i].is_some()) {
            for r in first_run..epoch {
                if (cfg.epochs > 0 && !runs_watched.contains(&r)) || !closed(r) {
                    break;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = outcomes.entry((i, r)) {
                    if let Some(o) = fetch_outcome(&client, &vkeys[i].hotkey(), &api[i], r) {
                        // the devnet's own clock at the blocks that matter, while they are held
                        let at = |b: Option<u64>| b.and_then(|b| seen.get(&b).copied());
                        seen_times.insert(
                            (i, r),
                            (at(Some(o.reveal_closed_block)), at(o.weights_set_at_block)),
                        );
                        e.insert(o);
                    }
                }
                if sub_chain.is_some() && honest.contains(&i) && !own_reports.contains_key(&(i, r))
                {
                    if let Some(w) = served_wire(i, r) {
                        own_reports.insert((i, r), w);
                    }
                }
            }
        }
        if sub_chain.is_some() && epoch > first_run + 2 {
            let keep = clock.start_of(epoch - 2);
            seen = seen.split_off(&keep);
        }
        if epoch != last_epoch && cfg.progress {
            let done = (first_run..epoch)
                .filter(|r| honest.iter().all(|i| outcomes.contains_key(&(*i, *r))))
                .count();
            eprintln!(
                "epoch {epoch} (block {}): {done} runs aggregated by every honest validator",
                head.number
            );
            last_epoch = epoch;
        }
        // the hoster restart: SIGKILL two blocks before the first run's reveal window opens
        // (its commit went out when the commit window opened), then start it again
        if let (Some(i), false) = (cfg.restart_hoster, hoster_restarted) {
            let at = windows.hoster_reveal.first_block(&clock, first_run);
            if head.number + 2 >= at && head.number < at {
                if let Some(mut c) = procs.hosters[i].take() {
                    let _ = c.kill(); // SIGKILL
                    let _ = c.wait();
                }
                procs.start_hoster(i)?;
                hoster_restarted = true;
                if cfg.progress {
                    eprintln!(
                        "hoster {i} killed (SIGKILL) at block {} between its commit and its reveal, and restarted",
                        head.number
                    );
                }
            }
        }
        if let Some((i, r)) = restart {
            if let Some(before) = served_wire(i, r) {
                if let Some(mut c) = procs.nodes[i].take() {
                    let _ = c.kill(); // SIGKILL
                    let _ = c.wait();
                }
                procs.start_node(i)?;
                wait_healthy(
                    &client,
                    &vkeys[i].hotkey(),
                    &api[i],
                    Duration::from_secs(60),
                )?;
                let t = Instant::now();
                let mut after = served_wire(i, r);
                while after.is_none() && t.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(50));
                    after = served_wire(i, r);
                }
                restart_bytes = Some((before, after.unwrap_or_default()));
                if cfg.progress {
                    eprintln!(
                        "validator {i} killed (SIGKILL) after revealing run {r} and restarted"
                    );
                }
                restart = None;
            }
        }
        if let (Some(r0), false) = (offline_after, offline_done) {
            if (0..cfg.offline).all(|i| outcomes.contains_key(&(i, r0))) {
                for i in 0..cfg.offline {
                    procs.stop_node(i);
                    if cfg.progress {
                        eprintln!("validator {i} goes offline after run {r0}");
                    }
                }
                offline_done = true;
            }
        }
        // done when every honest validator has aggregated every run (and, on Subtensor, its own
        // report for each was fetched: the commitment check needs it)
        if cfg.epochs > 0
            && runs_watched.clone().all(|r| {
                honest.iter().all(|i| {
                    outcomes.contains_key(&(*i, r))
                        && (sub_chain.is_none() || own_reports.contains_key(&(*i, r)))
                })
            })
        {
            break;
        }
        if cfg.epochs > 0 && Instant::now() > deadline {
            return Err(format!(
                "the devnet did not finish {} runs in time (at epoch {epoch}); logs in {}",
                cfg.epochs,
                out.join("logs").display()
            ));
        }
        if let Some(i) = (0..cfg.hosters).find(|i| {
            procs.hosters[*i]
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
        }) {
            return Err(format!(
                "hoster {i} exited; see {}",
                out.join("logs").join(format!("hoster-{i}.log")).display()
            ));
        }
        if let Some(i) = (0..n).find(|i| {
            procs.nodes[*i]
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
        }) {
            return Err(format!(
                "validator {i} exited; see {}",
                out.join("logs")
                    .join(format!("validator-{i}.log"))
                    .display()
            ));
        }
        // a development Subtensor serves every node from one thread: poll it gently
        std::thread::sleep(Duration::from_millis(if sub_chain.is_some() {
            500
        } else {
            100
        }));
    }

    // stop the validators so their databases can be read
    let peak_rss: Vec<u64> = procs
        .nodes
        .iter()
        .flatten()
        .filter_map(|c| peak_rss_kib(c.id()))
        .collect();
    for i in 0..n {
        procs.stop_node(i);
    }
    for c in procs.hosters.iter_mut() {
        if let Some(mut c) = c.take() {
            Procs::stop(&mut c, Duration::from_secs(5));
        }
    }
    let mut runs = Vec::new();
    let mut mismatches = Vec::new();
    let mut aggregation_ms = Vec::new();
    let mut weights_ms = Vec::new();
    let mut late = Vec::new();
    let mut checks_commit = Vec::new();
    let mut checks_weights = Vec::new();
    let first = honest[0];
    // validators' uids, read once: the devnet's registrations do not change while it runs
    let uid_of: std::collections::HashMap<Hotkey, u16> = match &sub_chain {
        Some(_) => chain
            .metagraph(netuid)
            .map_err(|e| e.to_string())?
            .neurons
            .iter()
            .map(|m| (m.hotkey, m.uid))
            .collect(),
        None => Default::default(),
    };
    for r in runs_watched.clone() {
        let base = outcomes.get(&(first, r)).ok_or("missing outcome")?.clone();
        for i in &honest {
            let o = outcomes.get(&(*i, r)).ok_or("missing outcome")?;
            let me = vkeys[*i].hotkey();
            if o.winner != base.winner
                || o.quorum_met != base.quorum_met
                || o.uid_weights != base.uid_weights
            {
                mismatches.push(format!(
                    "run {r}: validator {i} decided differently from validator {first}"
                ));
            }
            // every honest validator gives every hoster the same score
            let scores = |o: &RunOutcome| -> BTreeMap<Hotkey, f64> {
                o.hosters.iter().map(|(k, v)| (*k, v.score)).collect()
            };
            if scores(o) != scores(&base) {
                mismatches.push(format!(
                    "run {r}: validator {i} scored the hosters differently from validator {first}"
                ));
            }
            // the weights it decided are the weights on chain at the block it set them
            if let (Some(block), Some(want)) = (o.weights_set_at_block, o.uid_weights.as_ref()) {
                let ok = match &sub_chain {
                    Some(sc) => {
                        // Subtensor keeps the latest row, max-upscaled as it was submitted
                        let (uids, values) = tally_chain::subtensor::weights_for_chain(want);
                        let want: Vec<(u16, u16)> = uids.into_iter().zip(values).collect();
                        let rows = sc.weights_at(netuid, block).map_err(|e| e.to_string())?;
                        let row = rows.iter().find(|w| w.validator == me);
                        if let Some(uid) = uid_of.get(&me) {
                            checks_weights.push(json!({"run": r, "validator": me.to_ss58(),
                                "uid": uid, "at_block": block, "weights": want}));
                        }
                        row.is_some_and(|w| w.block == block && w.weights == want)
                    }
                    None => chain
                        .weights_history(netuid, &me)
                        .map_err(|e| e.to_string())?
                        .iter()
                        .any(|h| h.block == block && h.weights == *want),
                };
                if !ok {
                    mismatches.push(format!("run {r}: validator {i}'s weights on chain differ from the consensus it computed"));
                }
                if let Some((Some(c), Some(w))) = seen_times.get(&(*i, r)) {
                    weights_ms.push(w.saturating_sub(*c));
                }
            } else if o.quorum_met && o.uid_weights.is_some() {
                mismatches.push(format!("run {r}: validator {i} did not set its weights"));
            }
            // its commitment on chain is the one to the report it served
            if sub_chain.is_some() {
                let (from, to) = rules::commitment_blocks(&clock, &windows, r);
                let want = own_reports
                    .get(&(*i, r))
                    .and_then(|w| tally_core::ScoreReport::from_bytes(w).ok())
                    .map(|rep| rules::commitment_data(r, &rep.commitment()));
                let on_chain = chain
                    .commitments_in(netuid, from, to)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|(k, _)| *k == me)
                    .map(|x| x.1);
                match (want, on_chain) {
                    (Some(want), Some(c)) if c.data == want => {
                        checks_commit.push(json!({"run": r, "validator": me.to_ss58(),
                            "at_block": to - 1, "block": c.block, "data": hex::encode(&want)}));
                    }
                    (want, c) => {
                        mismatches.push(format!(
                        "run {r}: validator {i}'s commitment on chain ({}) is not the one to the \
                         report it served ({})",
                        c.map_or("none".into(), |c| format!("block {}", c.block)),
                        if want.is_some() { "fetched" } else { "not fetched" }
                    ))
                    }
                }
            }
            let closed_at = match &sub_chain {
                Some(_) => seen_times.get(&(*i, r)).and_then(|t| t.0),
                None => chain
                    .block(o.reveal_closed_block)
                    .ok()
                    .flatten()
                    .map(|b| b.timestamp_ms),
            };
            if let (Some(c), Some(done)) = (closed_at, o.aggregated_at_ms) {
                let ms = done.saturating_sub(c);
                aggregation_ms.push(ms);
                if !on_time(ms, block_ms, clock.length) {
                    late.push(format!(
                        "run {r}: validator {i} aggregated {ms} ms after the reveal window closed"
                    ));
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
            hosted: base
                .hosters
                .iter()
                .map(|(k, v)| (k.to_ss58(), (v.score, v.reason.clone())))
                .collect(),
        });
    }
    let chain_checks = if sub_chain.is_some() {
        let p = out.join("chain-checks.json");
        let checks = json!({"url": chain_url, "netuid": netuid,
            "commitments": checks_commit, "weights": checks_weights});
        write(
            &p,
            &serde_json::to_vec_pretty(&checks).map_err(|e| e.to_string())?,
        )?;
        Some(p)
    } else {
        None
    };

    // evidence: every report the honest validators accepted and every proof, a file each
    let ev_dir = out.join("evidence");
    std::fs::create_dir_all(&ev_dir).map_err(|e| e.to_string())?;
    for i in &honest {
        let db = out
            .join("nodes")
            .join(format!("validator-{i}"))
            .join("validator.redb");
        let store = NodeStore::open(&db).map_err(|e| e.to_string())?;
        for r in runs_watched.clone() {
            for (v, wire) in store.peer_reports(r).map_err(|e| e.to_string())? {
                write(
                    &ev_dir.join(format!("report-run{r}-{}.bin", v.to_ss58())),
                    &wire,
                )?;
            }
        }
        for (id, proof) in store.evidence().map_err(|e| e.to_string())? {
            write(
                &ev_dir.join(format!("equivocation-{}.bin", hex::encode(&id[..8]))),
                &proof,
            )?;
        }
    }
    // stakes as the chain holds them at the last run (alpha on Subtensor)
    let last_mg = chain
        .metagraph_at(netuid, clock.start_of(runs_watched.end.saturating_sub(1)))
        .ok();
    let stake_of = |i: usize| {
        last_mg
            .as_ref()
            .and_then(|m| m.neurons.iter().find(|x| x.hotkey == vkeys[i].hotkey()))
            .map_or(stake(i), |x| x.stake)
    };
    let validators: Vec<(Hotkey, u64, Option<Byzantine>)> = (0..n)
        .map(|i| (vkeys[i].hotkey(), stake_of(i), strategy(i)))
        .collect();
    let summary = json!({
        "chain": chain_url, "netuid": netuid,
        "hosters": hkeys.iter().enumerate().map(|(i, k)| json!({"hotkey": k.hotkey().to_ss58(), "strategy": hoster_strategy(i).name()})).collect::<Vec<_>>(),
        "runs": runs.iter().map(|r| json!({"run": r.run, "winner": r.winner, "quorum_met": r.quorum_met, "consensus": r.consensus,
            "hosted": r.hosted.iter().map(|(k, (s, why))| (k.clone(), json!({"score": s, "reason": why}))).collect::<serde_json::Map<_, _>>(),
            "excluded": r.excluded.iter().map(|(v, why)| json!({"validator": v, "reason": why})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "validators": validators.iter().map(|(k, s, b)| json!({"hotkey": k.to_ss58(), "stake": s, "byzantine": b.map(|b| b.name())})).collect::<Vec<_>>(),
        "miners": qualities.iter().map(|(k, q)| json!({"hotkey": k.to_ss58(), "true_quality": q.to_f64()})).collect::<Vec<_>>(),
        "aggregation_ms": aggregation_ms, "weights_included_ms": weights_ms,
        "validator_peak_rss_kib": peak_rss,
    });
    write(
        &out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary).map_err(|e| e.to_string())?,
    )?;
    drop(procs);
    Ok(Report {
        runs,
        validators,
        miners: qualities,
        mismatches,
        restart_bytes,
        best_miner: best,
        aggregation_ms,
        late,
        chain: (chain_url, netuid),
        first_run,
        weights_ms,
        chain_checks,
        peak_rss_kib: peak_rss,
        hosters: hkeys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.hotkey(), hoster_strategy(i)))
            .collect(),
        hoster_restarted,
    })
}
