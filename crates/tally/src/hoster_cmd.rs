//! `tally hoster --config FILE`: one hoster of miner-hosted mode in this process.
//!
//! A hoster is a registered hotkey without a validator permit that serves inference itself:
//! every epoch it reads the elected validator's challenge (or derives the input from the
//! epoch's seed), runs its model, commits to the output with a salt (`hoster-commit`) and
//! reveals both (`hoster-reveal`) over the DHT in the protocol's windows. Salts and outputs are
//! kept in `data_dir/hoster.redb`, so a restart reveals exactly what was committed.
//!
//! Settings come from a TOML file, each overridable by an environment variable (`TALLY_…`) and
//! then by a flag, with the precedence and error style of `tally validator`; all are validated
//! (the model file loaded) before anything starts. SIGINT or SIGTERM stops it cleanly.
//! [`serve`] takes a function that wraps the honest [`Hoster`], so a devnet can run the same
//! process with an adversarial actor.

use crate::validator_cmd::{
    bootstrap, chain_url, dht_listen, field, hotkey, read_config, required, tick,
};
use crate::Failure;
use anyhow::{anyhow, Context};
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tally_chain::Chain;
use tally_core::Keypair;
use tally_exec::inference::{Inference, Mlp};
use tally_net::system_clock;
use tally_node::hoster::{HosterDriver, HosterDriverConfig, HosterPorts, MlpModel};
use tally_node::hoster_store::HosterStore;
use tally_protocol::Role;
use tally_validator::{Hoster, HosterActor, HosterConfig};
use tokio::sync::watch;
use tracing::{info, warn};

const AFTER: &str = "\
Config file (TOML), every key optional in the file if given by env or flag:

  chain = \"http://127.0.0.1:9944\"     # the chain (TALLY_CHAIN): http:// embedded, ws(s):// Subtensor, or finney|test|local
  hotkey = \"~/.bittensor/wallets/W/hotkeys/H\"   # Bittensor hotkey file or `tally key new` file; the
                                        # hotkey must be registered on the subnet, without a
                                        # validator permit (on Subtensor: btcli subnet register)
  netuid = 1
  dht_listen = \"/ip4/0.0.0.0/tcp/4002\"  # where the DHT listens (default: any port)
  bootstrap = [\"/ip4/1.2.3.4/tcp/4001/p2p/12D3…\"]   # DHT peers to join, e.g. the validators'
  data_dir = \"/var/lib/tally-hoster\"   # hoster.redb (salts and outputs) and p2p.key live here;
                                        # not shared with a validator (the p2p identity would be)
  model = \"/models/mlp.safetensors\"    # the model served: an MLP in safetensors
                                        # (layers.N.weight [out, in], layers.N.bias [out]), 64
                                        # inputs, 16 outputs ...
  model_seed = 7                        # ... or, without `model`, the inference family's
                                        # reference MLP from this seed (default 7, what
                                        # validators score against by default)
  tick_ms = 500                         # how often the chain head is read
  http = \"203.0.113.7:8092\"            # endpoint announced in heartbeats (optional)
  heartbeat_ms = 30000                  # how often a heartbeat (role hoster) is published
  chain_timeout_ms = 10000              # per chain read

Each key can be overridden by TALLY_<KEY> (upper case) and by --<key> (dashes).
Every epoch the hoster commits in [0.15, 0.50) of the epoch and reveals in [0.50, 0.60).
Stop with SIGINT or SIGTERM.";

/// Flags (and the environment) over the config file.
#[derive(Args, Clone, Debug, Default)]
#[command(after_help = AFTER)]
pub struct HosterArgs {
    /// The TOML config file.
    #[arg(long, env = "TALLY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Chain endpoint: `http://HOST:PORT` (the embedded chain), `ws://` or `wss://` (a
    /// Subtensor node), or a network: finney, test, local.
    #[arg(long, env = "TALLY_CHAIN")]
    pub chain: Option<String>,
    /// Hotkey file (Bittensor keyfile layout), registered on the subnet.
    #[arg(long, env = "TALLY_HOTKEY")]
    pub hotkey: Option<PathBuf>,
    /// The subnet.
    #[arg(long, env = "TALLY_NETUID")]
    pub netuid: Option<u16>,
    /// DHT listen multiaddr.
    #[arg(long, env = "TALLY_DHT_LISTEN")]
    pub dht_listen: Option<String>,
    /// DHT bootstrap multiaddrs, comma-separated.
    #[arg(long, env = "TALLY_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Option<Vec<String>>,
    /// Data directory (hoster.redb, p2p.key).
    #[arg(long, env = "TALLY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The model served: a safetensors MLP file.
    #[arg(long, env = "TALLY_MODEL")]
    pub model: Option<PathBuf>,
    /// Without `model`: the inference family's reference MLP from this seed (default 7).
    #[arg(long, env = "TALLY_MODEL_SEED")]
    pub model_seed: Option<u64>,
    /// Milliseconds between head reads.
    #[arg(long, env = "TALLY_TICK_MS")]
    pub tick_ms: Option<u64>,
    /// HTTP endpoint announced in heartbeats.
    #[arg(long, env = "TALLY_HTTP")]
    pub http: Option<String>,
    /// Milliseconds between heartbeats.
    #[arg(long, env = "TALLY_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
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
    dht_listen: Option<String>,
    bootstrap: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    model: Option<PathBuf>,
    model_seed: Option<u64>,
    tick_ms: Option<u64>,
    http: Option<String>,
    heartbeat_ms: Option<u64>,
    chain_timeout_ms: Option<u64>,
}

/// Largest model file read.
const MAX_MODEL_BYTES: u64 = 256 << 20;

/// Validated settings of a hoster.
#[derive(Clone, Debug)]
pub struct HosterSettings {
    /// Chain endpoint.
    pub chain: String,
    /// The hoster's key.
    pub key: Keypair,
    /// The subnet.
    pub netuid: u16,
    /// DHT address.
    pub dht_listen: libp2p::Multiaddr,
    /// DHT bootstrap peers.
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// The model served.
    pub model: Mlp,
    /// Where the model came from, for the start line.
    pub model_source: String,
    /// Head reads.
    pub tick: Duration,
    /// Endpoint announced in heartbeats (possibly empty).
    pub http: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Chain reads.
    pub chain_timeout: Duration,
}

/// Reads the file, overlays env and flags, validates every field and loads the model.
pub fn settings(a: &HosterArgs) -> Result<HosterSettings, Failure> {
    let f: FileConfig = read_config(a.config.as_deref())?;
    let chain = chain_url(a.chain.clone().or(f.chain))?;
    let key = hotkey(a.hotkey.clone().or(f.hotkey))?;
    let netuid = required("netuid", a.netuid.or(f.netuid))?;
    let dht_listen = dht_listen(
        a.dht_listen.clone().or(f.dht_listen),
        "/ip4/0.0.0.0/tcp/4002",
    )?;
    let bootstrap = bootstrap(a.bootstrap.clone().or(f.bootstrap))?;
    let data_dir = required("data_dir", a.data_dir.clone().or(f.data_dir))?;
    let (model, model_source) = match (a.model.clone().or(f.model), a.model_seed.or(f.model_seed)) {
        (Some(_), Some(_)) => {
            return Err(field(
                "model",
                "give either model (a safetensors file) or model_seed, not both",
            ))
        }
        (Some(p), None) => (load_model(&p)?, format!("{}", p.display())),
        (None, seed) => {
            let seed = seed.unwrap_or(7);
            (Inference::default_mlp(seed), format!("seed {seed}"))
        }
    };
    let shapes = HosterConfig::new(netuid);
    let (want_in, want_out) = (
        shapes.input_shape.iter().product::<u32>() as usize,
        shapes.output_shape.iter().product::<u32>() as usize,
    );
    if model.input() != want_in || model.output() != want_out {
        return Err(field(
            "model",
            format!(
                "{model_source}: the model takes {} inputs and gives {} outputs; the inference \
                 family's inputs are {want_in} wide and its outputs {want_out}",
                model.input(),
                model.output()
            ),
        ));
    }
    let tick = tick(a.tick_ms.or(f.tick_ms))?;
    let http = a.http.clone().or(f.http).unwrap_or_default();
    if http.len() > 128 || http.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(field(
            "http",
            format!("{http:?}: at most 128 characters, no spaces, e.g. 203.0.113.7:8092"),
        ));
    }
    let heartbeat_ms = a.heartbeat_ms.or(f.heartbeat_ms).unwrap_or(30_000);
    if !(1_000..=120_000).contains(&heartbeat_ms) {
        return Err(field("heartbeat_ms", "must be 1000..=120000"));
    }
    let chain_timeout_ms = a.chain_timeout_ms.or(f.chain_timeout_ms).unwrap_or(10_000);
    if !(100..=300_000).contains(&chain_timeout_ms) {
        return Err(field("chain_timeout_ms", "must be 100..=300000"));
    }
    Ok(HosterSettings {
        chain,
        key,
        netuid,
        dht_listen,
        bootstrap,
        data_dir,
        model,
        model_source,
        tick,
        http,
        heartbeat: Duration::from_millis(heartbeat_ms),
        chain_timeout: Duration::from_millis(chain_timeout_ms),
    })
}

/// Reads a safetensors MLP, bounded.
fn load_model(p: &std::path::Path) -> Result<Mlp, Failure> {
    let meta = std::fs::metadata(p)
        .map_err(|e| field("model", format!("cannot read {}: {e}", p.display())))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(field(
            "model",
            format!(
                "{}: {} bytes, over the {MAX_MODEL_BYTES}-byte cap; is this the right file?",
                p.display(),
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(p)
        .map_err(|e| field("model", format!("cannot read {}: {e}", p.display())))?;
    tally_exec::safetensors::load_mlp(&bytes).map_err(|e| {
        field(
            "model",
            format!(
                "{}: {e} (expected safetensors with layers.N.weight [out, in] and \
                 layers.N.bias [out] in f32)",
                p.display()
            ),
        )
    })
}

/// Wraps the honest hoster in the actor the process runs (the identity for `tally hoster`; an
/// adversary in a devnet).
pub type WrapHoster = Box<dyn FnOnce(Hoster) -> Box<dyn HosterActor> + Send>;

/// How long a heartbeat lives: three intervals, within the kind's five-minute cap.
fn heartbeat_ttl(interval: Duration) -> Duration {
    (interval * 3).min(Duration::from_secs(290))
}

/// Runs a hoster until `stop` turns true: opens its store and p2p identity in the data
/// directory, waits for the subnet's first epoch, starts the DHT and the heartbeats, and runs
/// `wrap(Hoster)` under the driver.
pub async fn run_hoster_with(
    s: HosterSettings,
    wrap: WrapHoster,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Failure> {
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("cannot create the data directory {}", s.data_dir.display()))
        .map_err(Failure::input)?;
    let store = Arc::new(
        HosterStore::open(&s.data_dir.join("hoster.redb"))
            .map_err(|e| Failure::input(anyhow!(e)))?,
    );
    let identity = crate::validator_cmd::p2p_identity(&s.data_dir)?;
    let chain: Arc<dyn Chain> = crate::chain_cmd::connect(&s.chain, s.chain_timeout)?;
    let me = s.key.hotkey();
    // a subnet whose first epoch has not started yet is waited for
    let mut waited = false;
    let (snap, head) = loop {
        let (c, netuid) = (chain.clone(), s.netuid);
        let r = tokio::task::spawn_blocking(move || {
            let h = c.head().map_err(|e| e.to_string())?;
            tally_chain::snapshot::read_snapshot(c.as_ref(), netuid, h.number).map(|x| (x, h))
        })
        .await?;
        match r {
            Ok(x) => break x,
            Err(e) if e.contains(tally_chain::snapshot::NOT_STARTED) => {
                if !waited {
                    info!("subnet {}: {e}; waiting for its first epoch", s.netuid);
                    waited = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => return Ok(()),
                }
            }
            Err(e) => {
                return Err(anyhow!("cannot read subnet {} from {}: {e}", s.netuid, s.chain).into())
            }
        }
    };
    match snap.members.iter().find(|m| m.hotkey == me) {
        None => warn!(
            "hotkey {me} is not registered on subnet {}: peers refuse its records until it is \
             (on Subtensor: btcli subnet register --netuid {})",
            s.netuid, s.netuid
        ),
        Some(m) if m.validator_permit => warn!(
            "hotkey {me} holds a validator permit on subnet {}: validators score hosters among \
             the hotkeys without one, so this hoster is not scored",
            s.netuid
        ),
        Some(_) => {}
    }
    let dht = crate::validator_cmd::start_dht(
        s.netuid,
        &snap,
        head.number,
        &s.dht_listen,
        &s.bootstrap,
        &s.key,
        identity,
    )
    .await?;
    let heartbeats = tally_net::heartbeat::spawn_heartbeats(
        dht.clone(),
        Role::Hoster,
        s.http.clone(),
        s.heartbeat,
        heartbeat_ttl(s.heartbeat),
    );
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    let actor = wrap(Hoster::new(
        HosterConfig::new(s.netuid),
        s.key.clone(),
        seed,
    ));
    let driver = HosterDriver::new(
        actor,
        HosterDriverConfig {
            netuid: s.netuid,
            tick: s.tick,
        },
        HosterPorts {
            chain,
            dht: dht.clone(),
            store,
            model: Arc::new(MlpModel(s.model.clone())),
            key: s.key.clone(),
            now_ms: system_clock(),
        },
    );
    let addrs = dht.listen_addrs().await.unwrap_or_default();
    println!(
        "hoster {me} up: subnet {} dht {} model {} data {}",
        s.netuid,
        addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(","),
        s.model_source,
        s.data_dir.display()
    );
    driver.run(stop).await;
    heartbeats.abort();
    Ok(())
}

/// Runs a hoster until SIGINT or SIGTERM; `wrap` makes the actor from the honest hoster.
pub fn serve(s: HosterSettings, wrap: WrapHoster) -> Result<u8, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let me = s.key.hotkey();
        let (stop, rx) = watch::channel(false);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let run = run_hoster_with(s, wrap, rx);
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => return r.map(|_| 0),
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("stopping");
        let _ = stop.send(true);
        run.await?;
        eprintln!("hoster {me} stopped");
        Ok::<u8, Failure>(0)
    })
}

/// `tally hoster`.
pub fn run(a: HosterArgs) -> Result<u8, Failure> {
    let s = settings(&a)?;
    serve(s, Box::new(|h| Box::new(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_live_three_intervals_within_the_cap() {
        assert_eq!(
            heartbeat_ttl(Duration::from_secs(30)),
            Duration::from_secs(90)
        );
        assert_eq!(
            heartbeat_ttl(Duration::from_secs(120)),
            Duration::from_secs(290)
        );
    }
}

/// `tally devnet-hoster`: a devnet's hoster process, around a hoster strategy from `tally-sim`.
#[derive(clap::Args, Clone, Debug)]
pub struct DevnetHosterArgs {
    #[command(flatten)]
    pub h: HosterArgs,
    /// The strategy: honest, noisy, lazy, copycat, no-reveal, mismatch or late.
    #[arg(long, default_value = "honest")]
    pub strategy: tally_sim::HosterStrategy,
}

pub fn run_devnet_hoster(a: DevnetHosterArgs) -> Result<u8, Failure> {
    let s = settings(&a.h)?;
    let strategy = a.strategy;
    serve(
        s,
        Box::new(move |h| Box::new(tally_sim::ByzantineHoster::new(h, strategy))),
    )
}
