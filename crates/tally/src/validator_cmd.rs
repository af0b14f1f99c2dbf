//! `tally validator --config FILE`: one validator node in this process.
//!
//! Settings come from a TOML file, each overridable by an environment variable (`TALLY_…`) and
//! then by a flag; all are validated before anything starts, and an error names the field. The
//! node runs the production validator machine under the tokio driver with its own redb file,
//! DHT node (a persistent libp2p identity in the data directory), HTTP API and chain client.
//! SIGINT or SIGTERM stops it cleanly; a restart (also after `kill -9`) resumes from its
//! database and serves byte-identical signed reports.

use crate::Failure;
use anyhow::{anyhow, Context};
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tally_chain::Chain;
use tally_consensus::WeightMode;
use tally_core::{FamilyId, Hotkey, Keypair, Score};
use tally_net::{system_clock, Dht, DhtConfig};
use tally_node::api::{self, ApiState};
use tally_node::exec_scorer::ExecScorer;
use tally_node::peer::PeerClient;
use tally_node::scorer::{Scorer, SyntheticScorer};
use tally_node::store::NodeStore;
use tally_node::validator::{Driver, DriverConfig, Ports};
use tally_validator::{Actor, Config as MachineConfig, Machine};
use tokio::sync::watch;
use tracing::info;

const AFTER: &str = "\
Config file (TOML), every key optional in the file if given by env or flag:

  chain = \"http://127.0.0.1:9944\"     # the chain (TALLY_CHAIN): http:// embedded, ws(s):// Subtensor, or finney|test|local
  hotkey = \"~/.bittensor/wallets/W/hotkeys/H\"   # Bittensor hotkey file or `tally key new` file
  netuid = 1
  family = \"inference\"                # task family scored
  api_listen = \"0.0.0.0:8091\"         # the HTTP API
  axon = \"203.0.113.7:8091\"           # where peers reach the API; published on chain at start
                                        # when it differs (without it, api_listen unless 0.0.0.0
                                        # is published only where the chain lists no address)
  dht_listen = \"/ip4/0.0.0.0/tcp/4001\"
  bootstrap = [\"/ip4/1.2.3.4/tcp/4001/p2p/12D3…\"]
  data_dir = \"/var/lib/tally\"          # validator.redb and p2p.key live here
  owner_url = \"203.0.113.9:8090\"       # IP:port of the subnet owner (rosters, archives, pick)
  owner_hotkey = \"5…\"                  # the owner's hotkey, pinned: rosters must carry its
                                        # signature, requests to the owner are signed for it
  mode = \"decentralized\"               # owner | shadow | decentralized
  execution = \"validator\"              # validator (run submissions) | hosted (score hosters'
                                        # committed inference) | both (the higher score counts);
                                        # every validator of a subnet must use the same
  scorer = \"exec\"                      # exec (run submissions) | synthetic:SEED (devnets only)
  model_seed = 7                        # the inference family's reference model seed (also the
                                        # reference hosters' outputs are scored against)
  tick_ms = 500                         # how often the chain head is read
  http_timeout_ms = 2000                # per peer request
  chain_timeout_ms = 10000              # per chain read (a write waits for its block, up to a minute)

Each key can be overridden by TALLY_<KEY> (upper case) and by --<key> (dashes).
Stop with SIGINT or SIGTERM.";

/// Flags (and the environment) over the config file.
#[derive(Args, Clone, Debug, Default)]
#[command(after_help = AFTER)]
pub struct ValidatorArgs {
    /// The TOML config file.
    #[arg(long, env = "TALLY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Chain endpoint: `http://HOST:PORT` (the embedded chain), `ws://` or `wss://` (a
    /// Subtensor node), or a network: finney, test, local.
    #[arg(long, env = "TALLY_CHAIN")]
    pub chain: Option<String>,
    /// Hotkey file (Bittensor keyfile layout).
    #[arg(long, env = "TALLY_HOTKEY")]
    pub hotkey: Option<PathBuf>,
    /// The subnet.
    #[arg(long, env = "TALLY_NETUID")]
    pub netuid: Option<u16>,
    /// The task family.
    #[arg(long, env = "TALLY_FAMILY")]
    pub family: Option<String>,
    /// API listen address (`HOST:PORT`).
    #[arg(long, env = "TALLY_API_LISTEN")]
    pub api_listen: Option<String>,
    /// The API's public address (`IP:PORT`), published on chain (`serve_axon`) at start when
    /// the chain lists another one. Without it, api_listen (unless 0.0.0.0 or [::]) is
    /// published only when the chain lists no address for the node.
    #[arg(long, env = "TALLY_AXON")]
    pub axon: Option<String>,
    /// DHT listen multiaddr.
    #[arg(long, env = "TALLY_DHT_LISTEN")]
    pub dht_listen: Option<String>,
    /// DHT bootstrap multiaddrs, comma-separated.
    #[arg(long, env = "TALLY_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Option<Vec<String>>,
    /// Data directory.
    #[arg(long, env = "TALLY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Owner endpoint (`IP:PORT`).
    #[arg(long, env = "TALLY_OWNER_URL")]
    pub owner_url: Option<String>,
    /// Owner hotkey (SS58), pinned.
    #[arg(long, env = "TALLY_OWNER_HOTKEY")]
    pub owner_hotkey: Option<String>,
    /// Weight mode: owner, shadow or decentralized.
    #[arg(long, env = "TALLY_MODE")]
    pub mode: Option<String>,
    /// Execution: validator, hosted or both.
    #[arg(long, env = "TALLY_EXECUTION")]
    pub execution: Option<String>,
    /// Scorer: exec or synthetic:SEED.
    #[arg(long, env = "TALLY_SCORER")]
    pub scorer: Option<String>,
    /// Reference model seed of the inference family.
    #[arg(long, env = "TALLY_MODEL_SEED")]
    pub model_seed: Option<u64>,
    /// Milliseconds between head reads.
    #[arg(long, env = "TALLY_TICK_MS")]
    pub tick_ms: Option<u64>,
    /// Milliseconds per peer request.
    #[arg(long, env = "TALLY_HTTP_TIMEOUT_MS")]
    pub http_timeout_ms: Option<u64>,
    /// Milliseconds per chain read.
    #[arg(long, env = "TALLY_CHAIN_TIMEOUT_MS")]
    pub chain_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    chain: Option<String>,
    hotkey: Option<PathBuf>,
    netuid: Option<u16>,
    family: Option<String>,
    api_listen: Option<String>,
    axon: Option<String>,
    dht_listen: Option<String>,
    bootstrap: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    owner_url: Option<String>,
    owner_hotkey: Option<String>,
    mode: Option<String>,
    execution: Option<String>,
    scorer: Option<String>,
    model_seed: Option<u64>,
    tick_ms: Option<u64>,
    http_timeout_ms: Option<u64>,
    chain_timeout_ms: Option<u64>,
}

/// How the node scores.
#[derive(Clone, Debug, PartialEq)]
pub enum ScorerKind {
    /// Run the owner's roster of submissions in the sandbox.
    Exec,
    /// Hidden qualities from a seed (devnets).
    Synthetic(u64),
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Chain endpoint.
    pub chain: String,
    /// The node's key.
    pub key: Keypair,
    /// The subnet.
    pub netuid: u16,
    /// The family.
    pub family: FamilyId,
    /// API address.
    pub api_listen: SocketAddr,
    /// The address to publish on chain, and whether it was given (`axon`) rather than taken
    /// from `api_listen` (then it is published only where the chain lists none).
    pub axon: Option<(SocketAddr, bool)>,
    /// DHT address.
    pub dht_listen: libp2p::Multiaddr,
    /// DHT bootstrap peers.
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Owner endpoint.
    pub owner_url: Option<String>,
    /// Pinned owner hotkey.
    pub owner_hotkey: Option<Hotkey>,
    /// Weight mode.
    pub mode: WeightMode,
    /// Which miners are scored, and how.
    pub execution: tally_validator::Execution,
    /// Scorer.
    pub scorer: ScorerKind,
    /// Model seed.
    pub model_seed: u64,
    /// Head reads.
    pub tick: Duration,
    /// Peer requests.
    pub http_timeout: Duration,
    /// Chain reads.
    pub chain_timeout: Duration,
}

pub(crate) fn field(name: &str, e: impl std::fmt::Display) -> Failure {
    Failure::input(anyhow!("config: {name}: {e}"))
}

pub(crate) fn required<T>(name: &str, v: Option<T>) -> Result<T, Failure> {
    v.ok_or_else(|| {
        field(
            name,
            format!(
                "missing: set it in the config file, as TALLY_{} or as --{}",
                name.to_uppercase(),
                name.replace('_', "-")
            ),
        )
    })
}

/// Starts the node's DHT on `listen` with the view of `snap` at head `head` (seen now, as the
/// drivers pass heads), store quotas that hold every record an honest publisher of the subnet
/// may store (whatever it grows to within the usual 256 uids and 64 validator permits), and
/// dials the bootstrap peers.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_dht(
    netuid: u16,
    snap: &tally_validator::ChainSnapshot,
    head: u64,
    listen: &libp2p::Multiaddr,
    bootstrap: &[libp2p::Multiaddr],
    key: &Keypair,
    identity: libp2p::identity::Keypair,
) -> Result<Dht, Failure> {
    let view = tally_validator::view_of(
        netuid,
        tally_protocol::PhaseWindows::default(),
        snap,
        tally_validator::Head {
            number: head,
            timestamp_ms: (system_clock())(),
        },
    );
    let limits = tally_net::store::StoreLimits::sized_for(
        snap.members.len().max(tally_net::store::DEFAULT_NEURONS),
        snap.members
            .iter()
            .filter(|m| m.validator_permit)
            .count()
            .max(tally_net::store::DEFAULT_VALIDATORS),
    );
    let dht = Dht::start(
        DhtConfig {
            listen: listen.clone(),
            bootstrap: bootstrap.to_vec(),
            limits,
            ..DhtConfig::default()
        },
        identity,
        key.clone(),
        view,
        system_clock(),
    )
    .await
    .map_err(|e| anyhow!("cannot start the DHT on {listen}: {e}"))?;
    for b in bootstrap {
        if let Err(e) = dht.dial(b.clone()).await {
            tracing::warn!(peer = %b, "cannot dial the bootstrap peer: {e}");
        }
    }
    Ok(dht)
}

/// The config file at `path` (TOML, at most 1 MiB), or the defaults without one.
pub(crate) fn read_config<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
) -> Result<T, Failure> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    const MAX_CONFIG: u64 = 1 << 20;
    if std::fs::metadata(p).is_ok_and(|m| m.len() > MAX_CONFIG) {
        return Err(Failure::input(anyhow!(
            "config file {}: over {MAX_CONFIG} bytes; is this the right file?",
            p.display()
        )));
    }
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read the config file {}", p.display()))
        .map_err(Failure::input)?;
    toml::from_str(&text).map_err(|e| Failure::input(anyhow!("config file {}: {e}", p.display())))
}

/// The `chain` key: an endpoint URL, or a network name resolved to one.
pub(crate) fn chain_url(v: Option<String>) -> Result<String, Failure> {
    let chain = required("chain", v)?;
    match crate::chain_cmd::resolve(&chain).map_err(|e| field("chain", e))? {
        crate::chain_cmd::ChainUrl::Embedded(u) | crate::chain_cmd::ChainUrl::Subtensor(u) => {
            Ok(u.to_string())
        }
    }
}

/// The `hotkey` key: a key file (Bittensor keyfile layout).
pub(crate) fn hotkey(v: Option<PathBuf>) -> Result<Keypair, Failure> {
    let path = required("hotkey", v)?;
    let bytes = std::fs::read(&path)
        .map_err(|e| field("hotkey", format!("cannot read {}: {e}", path.display())))?;
    Keypair::from_keyfile_json(&bytes)
        .map_err(|e| field("hotkey", format!("{}: {e}", path.display())))
}

/// The `dht_listen` key (default: any address, a free port); `example` shows a good one.
pub(crate) fn dht_listen(v: Option<String>, example: &str) -> Result<libp2p::Multiaddr, Failure> {
    v.unwrap_or_else(|| "/ip4/0.0.0.0/tcp/0".into())
        .parse()
        .map_err(|e| field("dht_listen", format!("{e}: use a multiaddr like {example}")))
}

/// The `bootstrap` key: at most 256 multiaddrs (empty strings skipped).
pub(crate) fn bootstrap(v: Option<Vec<String>>) -> Result<Vec<libp2p::Multiaddr>, Failure> {
    let peers = v
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|e| {
                field(
                    "bootstrap",
                    format!("{s:?}: {e}: use a multiaddr with /p2p/<peer id>"),
                )
            })
        })
        .collect::<Result<Vec<libp2p::Multiaddr>, _>>()?;
    if peers.len() > 256 {
        return Err(field("bootstrap", "at most 256 peers"));
    }
    Ok(peers)
}

/// The `tick_ms` key (default 500).
pub(crate) fn tick(v: Option<u64>) -> Result<Duration, Failure> {
    let ms = v.unwrap_or(500);
    if !(10..=60_000).contains(&ms) {
        return Err(field("tick_ms", "must be 10..=60000"));
    }
    Ok(Duration::from_millis(ms))
}

/// Reads the file, overlays env and flags, and validates every field.
pub fn settings(a: &ValidatorArgs) -> Result<Settings, Failure> {
    let f: FileConfig = read_config(a.config.as_deref())?;
    let chain = chain_url(a.chain.clone().or(f.chain))?;
    let key = hotkey(a.hotkey.clone().or(f.hotkey))?;
    let netuid = required("netuid", a.netuid.or(f.netuid))?;
    let family_name = a
        .family
        .clone()
        .or(f.family)
        .unwrap_or_else(|| "inference".into());
    let family = FamilyId::new(&family_name).map_err(|e| field("family", e))?;
    let api_listen: SocketAddr = required("api_listen", a.api_listen.clone().or(f.api_listen))?
        .parse()
        .map_err(|e| {
            field(
                "api_listen",
                format!("{e}: use HOST:PORT, e.g. 0.0.0.0:8091"),
            )
        })?;
    let axon = match a.axon.clone().or(f.axon) {
        Some(x) => Some(
            tally_chain::extrinsic::parse_axon(&x)
                .map(|a| (a, true))
                .map_err(|e| field("axon", format!("{e}: use the public IP:PORT of the API")))?,
        ),
        None => (!api_listen.ip().is_unspecified()).then_some((api_listen, false)),
    };
    let dht_listen = dht_listen(
        a.dht_listen.clone().or(f.dht_listen),
        "/ip4/0.0.0.0/tcp/4001",
    )?;
    let bootstrap = bootstrap(a.bootstrap.clone().or(f.bootstrap))?;
    let data_dir = required("data_dir", a.data_dir.clone().or(f.data_dir))?;
    let owner_url = a.owner_url.clone().or(f.owner_url);
    if let Some(u) = &owner_url {
        tally_chain::extrinsic::parse_axon(u)
            .map_err(|e| field("owner_url", format!("{e}: use IP:PORT")))?;
    }
    let owner_hotkey = a
        .owner_hotkey
        .clone()
        .or(f.owner_hotkey)
        .map(|s| s.parse::<Hotkey>().map_err(|e| field("owner_hotkey", e)))
        .transpose()?;
    if owner_url.is_some() && owner_hotkey.is_none() {
        return Err(field(
            "owner_hotkey",
            "requests to the owner are signed for its hotkey: set owner_hotkey with owner_url",
        ));
    }
    let mode: WeightMode = a
        .mode
        .clone()
        .or(f.mode)
        .unwrap_or_else(|| "decentralized".into())
        .parse()
        .map_err(|e| field("mode", e))?;
    if mode != WeightMode::Decentralized && owner_url.is_none() {
        return Err(field(
            "owner_url",
            "owner and shadow modes need the owner's endpoint",
        ));
    }
    let scorer = match a.scorer.clone().or(f.scorer).as_deref().unwrap_or("exec") {
        "exec" => ScorerKind::Exec,
        s if s.starts_with("synthetic:") => ScorerKind::Synthetic(
            s["synthetic:".len()..]
                .parse()
                .map_err(|e| field("scorer", format!("{s:?}: {e}")))?,
        ),
        s => {
            return Err(field(
                "scorer",
                format!("{s:?}: use exec or synthetic:SEED"),
            ))
        }
    };
    let execution_name = a
        .execution
        .clone()
        .or(f.execution)
        .unwrap_or_else(|| "validator".into());
    let execution = tally_validator::Execution::parse(&execution_name).ok_or_else(|| {
        field(
            "execution",
            format!("{execution_name:?}: use validator, hosted or both"),
        )
    })?;
    if execution.executes()
        && scorer == ScorerKind::Exec
        && (owner_url.is_none() || owner_hotkey.is_none())
    {
        return Err(field(
            "owner_url",
            "the exec scorer fetches the owner's signed roster: set owner_url and owner_hotkey",
        ));
    }
    let tick = tick(a.tick_ms.or(f.tick_ms))?;
    let timeout_ms = a.http_timeout_ms.or(f.http_timeout_ms).unwrap_or(2_000);
    if !(100..=60_000).contains(&timeout_ms) {
        return Err(field("http_timeout_ms", "must be 100..=60000"));
    }
    let chain_timeout_ms = a.chain_timeout_ms.or(f.chain_timeout_ms).unwrap_or(10_000);
    if !(100..=300_000).contains(&chain_timeout_ms) {
        return Err(field("chain_timeout_ms", "must be 100..=300000"));
    }
    Ok(Settings {
        chain,
        key,
        netuid,
        family,
        api_listen,
        axon,
        dht_listen,
        bootstrap,
        data_dir,
        owner_url,
        owner_hotkey,
        mode,
        execution,
        scorer,
        model_seed: a.model_seed.or(f.model_seed).unwrap_or(7),
        tick,
        http_timeout: Duration::from_millis(timeout_ms),
        chain_timeout: Duration::from_millis(chain_timeout_ms),
    })
}

/// Synthetic scores for whatever miners the chain lists (devnets).
struct SeededSynthetic(u64);

impl Scorer for SeededSynthetic {
    fn score(
        &self,
        run: u64,
        seed: &tally_core::Hash32,
        validator: &Hotkey,
        miners: &[Hotkey],
        deadline: std::time::Instant,
    ) -> Vec<(Hotkey, Score)> {
        SyntheticScorer::for_miners(self.0, miners, 0.02)
            .map(|s| s.score(run, seed, validator, miners, deadline))
            .unwrap_or_default()
    }
}

/// The node's libp2p identity, kept in `dir/p2p.key` (created on first start).
pub fn p2p_identity(dir: &Path) -> Result<libp2p::identity::Keypair, Failure> {
    let p = dir.join("p2p.key");
    let mut secret = match std::fs::read(&p) {
        Ok(b) if b.len() == 32 => b,
        Ok(_) => {
            return Err(Failure::input(anyhow!(
                "{} is not a 32-byte ed25519 secret: move it away to make a new identity",
                p.display()
            )))
        }
        Err(_) => {
            let mut b = vec![0u8; 32];
            getrandom::getrandom(&mut b)?;
            std::fs::write(&p, &b).with_context(|| format!("cannot write {}", p.display()))?;
            b
        }
    };
    libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| Failure::input(anyhow!("{}: {e}", p.display())))
}

/// Publishes `axon` as the node's API address on chain (`serve_axon` on Subtensor) unless the
/// chain lists it already, or, when it is only `api_listen` (not `given`), lists any address
/// (a node behind NAT must not replace its public address with a private one); a node that is
/// not registered yet is warned.
async fn publish_axon(
    chain: &Arc<dyn Chain>,
    s: &Settings,
    axon: SocketAddr,
    given: bool,
) -> Result<(), Failure> {
    let me = s.key.hotkey();
    // the metagraph now, not the epoch's snapshot: the node may have registered since
    let (c, netuid) = (chain.clone(), s.netuid);
    let mg = match tokio::task::spawn_blocking(move || c.metagraph(netuid)).await? {
        Ok(mg) => mg,
        Err(e) => {
            tracing::warn!("API address not checked on chain: cannot read the metagraph: {e}");
            return Ok(());
        }
    };
    let Some(m) = mg.neurons.iter().find(|m| m.hotkey == me) else {
        tracing::warn!(
            "hotkey {me} is not registered on subnet {}: its API address is not published, and \
             its reports count only once it is registered (on Subtensor: btcli subnet register \
             --netuid {})",
            s.netuid,
            s.netuid
        );
        return Ok(());
    };
    let want = axon.to_string();
    if m.axon == want || (!given && !m.axon.is_empty()) {
        return Ok(());
    }
    let (c, key, netuid) = (chain.clone(), s.key.clone(), s.netuid);
    let call = tally_chain::extrinsic::serve(&want, "").map_err(|e| anyhow!(e))?;
    match tokio::task::spawn_blocking(move || c.execute(&key, netuid, call)).await? {
        Ok(block) => info!(axon = %want, block, "published the API address on chain"),
        // the node still works for peers that know its address; say what to fix
        Err(e) => tracing::warn!(
            axon = %want,
            "could not publish the API address on chain ({e}); peers read {:?} there",
            m.axon
        ),
    }
    Ok(())
}

/// Runs a validator until SIGINT or SIGTERM; `byzantine` wraps the machine (devnet only).
pub fn serve(s: Settings, byzantine: Option<tally_sim::Strategy>) -> Result<u8, Failure> {
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("cannot create the data directory {}", s.data_dir.display()))
        .map_err(Failure::input)?;
    let store = Arc::new(
        NodeStore::open(&s.data_dir.join("validator.redb"))
            .map_err(|e| Failure::input(anyhow!(e)))?,
    );
    let identity = p2p_identity(&s.data_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let chain: Arc<dyn Chain> = crate::chain_cmd::connect(&s.chain, s.chain_timeout)?;
        // a subnet whose first epoch has not started yet is waited for
        let mut waited = false;
        let snap = loop {
            let c = chain.clone();
            let netuid = s.netuid;
            let r = tokio::task::spawn_blocking(move || {
                let h = c.head().map_err(|e| e.to_string())?;
                tally_chain::snapshot::read_snapshot(c.as_ref(), netuid, h.number)
                    .map(|snap| (snap, h))
            })
            .await?;
            match r {
                Ok(x) => break x,
                Err(e) if e.contains(tally_chain::snapshot::NOT_STARTED) => {
                    if !waited {
                        info!("subnet {netuid}: {e}; waiting for its first epoch");
                        waited = true;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(
                        anyhow!("cannot read subnet {} from {}: {e}", s.netuid, s.chain).into(),
                    )
                }
            }
        };
        if let Some((axon, given)) = s.axon {
            publish_axon(&chain, &s, axon, given).await?;
        }
        let dht = start_dht(
            s.netuid,
            &snap.0,
            snap.1.number,
            &s.dht_listen,
            &s.bootstrap,
            &s.key,
            identity,
        )
        .await?;
        let state = Arc::new(ApiState::new(
            store.clone(),
            s.key.clone(),
            1_000_000,
            system_clock(),
        ));
        let listener = tokio::net::TcpListener::bind(s.api_listen)
            .await
            .with_context(|| format!("config: api_listen: cannot listen on {}", s.api_listen))
            .map_err(Failure::input)?;
        let api_task = tokio::spawn({
            let st = state.clone();
            async move {
                let _ = api::serve(st, listener).await;
            }
        });
        let scorer: Arc<dyn Scorer> = match s.scorer {
            ScorerKind::Synthetic(seed) => Arc::new(SeededSynthetic(seed)),
            ScorerKind::Exec => {
                let rt = Arc::new(
                    tally_exec::runtime::WasmRuntime::new().map_err(|e| anyhow!(e.to_string()))?,
                );
                let mlp = tally_exec::inference::Inference::default_mlp(s.model_seed);
                let fam = Arc::new(
                    tally_exec::inference::Inference::new(
                        mlp,
                        &rt,
                        tally_exec::runtime::Limits::default(),
                    )
                    .map_err(|e| anyhow!(e.to_string()))?,
                );
                Arc::new(ExecScorer {
                    owner_addr: s.owner_url.clone().unwrap_or_default(),
                    owner: s.owner_hotkey.unwrap_or(Hotkey([0; 32])),
                    netuid: s.netuid,
                    family_id: s.family.clone(),
                    runtime: rt,
                    family: fam,
                    cache: tally_exec::archive::ArchiveCache::new(64 << 20, 8 << 20),
                    peers: PeerClient::new(s.key.clone(), s.http_timeout, system_clock()),
                    tasks: 3,
                    ledger: Default::default(),
                })
            }
        };
        let mut mcfg = MachineConfig::new(s.netuid, s.family.clone(), s.mode);
        mcfg.has_owner = s.owner_url.is_some();
        mcfg.execution = s.execution;
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)?;
        let machine = Machine::new(mcfg, s.key.clone(), seed);
        let actor: Box<dyn Actor> = match byzantine {
            Some(b) => Box::new(tally_sim::Byzantine::new(machine, s.key.clone(), b)),
            None => Box::new(machine),
        };
        let ports = Ports {
            chain,
            store: store.clone(),
            api: state,
            dht: Some(Arc::new(dht)),
            scorer,
            hosted: s.execution.hosted().then(|| {
                Arc::new(tally_node::hosted_scorer::MlpHostedScorer::new(
                    tally_exec::inference::Inference::default_mlp(s.model_seed),
                )) as Arc<dyn tally_node::hosted_scorer::HostedScorer>
            }),
            peers: Arc::new(PeerClient::new(
                s.key.clone(),
                s.http_timeout,
                system_clock(),
            )),
            key: s.key.clone(),
        };
        let driver = Driver::new(
            actor,
            DriverConfig {
                netuid: s.netuid,
                owner: s.owner_url.clone().zip(s.owner_hotkey).map(|(u, k)| (k, u)),
                tick: s.tick,
                restore_runs: 16,
            },
            ports,
        );
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(driver.run(rx));
        println!(
            "validator {} up: api http://{} dht {} data {}",
            s.key.hotkey(),
            s.api_listen,
            s.dht_listen,
            s.data_dir.display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("stopping");
        let _ = stop.send(true);
        let _ = task.await;
        api_task.abort();
        eprintln!("validator {} stopped", s.key.hotkey());
        Ok::<u8, Failure>(0)
    })
}

pub fn run(a: ValidatorArgs) -> Result<u8, Failure> {
    let s = settings(&a)?;
    serve(s, None)
}

/// `tally devnet-node`: a validator with a byzantine strategy, for devnets only.
#[derive(Args, Clone, Debug)]
pub struct DevnetNodeArgs {
    #[command(flatten)]
    pub v: ValidatorArgs,
    /// The strategy (inflate, equivocate, copy, withhold, forge); none for an honest node.
    #[arg(long)]
    pub byzantine: Option<tally_sim::Strategy>,
}

pub fn run_devnet_node(a: DevnetNodeArgs) -> Result<u8, Failure> {
    let s = settings(&a.v)?;
    serve(s, a.byzantine)
}
