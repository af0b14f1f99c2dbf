//! `tally chain serve`: the embedded local chain over HTTP, so several processes share one
//! devnet chain. `tally chain info`: what a chain endpoint says about a subnet, to check a
//! setup before starting a node. [`connect`]: one rule for every service's chain URL
//! (`http://` the embedded chain, `ws://`/`wss://` Subtensor, or a network name).

use crate::Failure;
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use tally_chain::{Chain, Genesis, LocalChain};

#[derive(Subcommand)]
pub enum ChainCommand {
    /// Serve a local chain file over HTTP, producing blocks on a timer.
    Serve(ServeArgs),
    /// Print a chain's head, runtime, and a subnet's tempo, validators and miners.
    Info(InfoArgs),
}

/// The networks `--network` (and a chain setting of just the name) selects.
pub const NETWORKS: &str =
    "finney (Bittensor mainnet), test (testnet), local (ws://127.0.0.1:9944)";

/// The chain at `spec`: `http://…` is the embedded chain (`tally chain serve`), `ws://…` or
/// `wss://…` a Subtensor node, and `finney`, `test` or `local` the Bittensor networks. Every
/// call waits at most `timeout`.
pub fn connect(spec: &str, timeout: std::time::Duration) -> anyhow::Result<Arc<dyn Chain>> {
    Ok(match resolve(spec).map_err(|e| anyhow!(e))? {
        ChainUrl::Embedded(url) => Arc::new(tally_chain::HttpChain::new(url, timeout)),
        ChainUrl::Subtensor(url) => Arc::new(subtensor(url, timeout)?),
    })
}

/// Which chain a chain setting names.
pub enum ChainUrl<'a> {
    /// `http://` or `https://`: the embedded chain's server.
    Embedded(&'a str),
    /// `ws://` or `wss://`: a Subtensor node.
    Subtensor(&'a str),
}

/// The one rule for a chain setting: a URL by its scheme, or a network name; an error says
/// what to give instead.
pub fn resolve(spec: &str) -> Result<ChainUrl<'_>, String> {
    let url = tally_chain::network_url(spec).unwrap_or(spec);
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(ChainUrl::Embedded(url))
    } else if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(ChainUrl::Subtensor(url))
    } else {
        Err(format!(
            "chain {spec:?}: give http://HOST:PORT (tally chain serve), ws://HOST:PORT or \
             wss://HOST:PORT (a Subtensor node), or a network: {NETWORKS}"
        ))
    }
}

fn subtensor(
    url: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<tally_chain::subtensor::SubtensorChain> {
    tally_chain::subtensor::SubtensorChain::new(url, timeout, 0).map_err(|e| anyhow!("{url}: {e}"))
}

#[derive(Args)]
#[command(after_help = "\
Examples:
  tally chain info --network finney --netuid 1
  tally chain info --url ws://127.0.0.1:9944 --netuid 2
  tally chain info --url http://127.0.0.1:9933 --netuid 1 --json

Exit status: 0 when the subnet exists and was read; 1 when the endpoint failed; 2 for unusable
arguments.")]
pub struct InfoArgs {
    /// The chain: http://… (tally chain serve), ws://… or wss://… (Subtensor).
    #[arg(long, conflicts_with = "network")]
    url: Option<String>,
    /// A Bittensor network instead of --url: finney, test or local.
    #[arg(long)]
    network: Option<String>,
    /// The subnet.
    #[arg(long)]
    netuid: u16,
    /// Milliseconds to wait for each answer.
    #[arg(long, default_value_t = 20_000)]
    timeout_ms: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn info(a: InfoArgs) -> Result<u8, Failure> {
    let spec = match (&a.url, &a.network) {
        (Some(u), _) => u.clone(),
        (None, Some(n)) => {
            if tally_chain::network_url(n).is_none() {
                return Err(Failure::input(anyhow!(
                    "--network {n}: use one of {NETWORKS}"
                )));
            }
            n.clone()
        }
        (None, None) => return Err(Failure::input(anyhow!("give --url URL or --network NAME"))),
    };
    let timeout = std::time::Duration::from_millis(a.timeout_ms);
    // one connection: a Subtensor endpoint also reports its runtime
    let (chain, runtime): (Arc<dyn Chain>, _) =
        match resolve(&spec).map_err(|e| Failure::input(anyhow!(e)))? {
            ChainUrl::Embedded(url) => (Arc::new(tally_chain::HttpChain::new(url, timeout)), None),
            ChainUrl::Subtensor(url) => {
                let c = subtensor(url, timeout).map_err(Failure::input)?;
                let runtime = c.runtime_version().ok();
                (Arc::new(c), runtime)
            }
        };
    eprintln!("reading subnet {} from {spec}…", a.netuid);
    let fail = |what: &str, e: tally_chain::ChainError| Failure {
        code: 1,
        error: anyhow!("{spec}: cannot read {what}: {e}"),
    };
    let head = chain.head().map_err(|e| fail("the head", e))?;
    let p = chain.params(a.netuid).map_err(|e| fail("the subnet", e))?;
    let mg = chain
        .metagraph(a.netuid)
        .map_err(|e| fail("the metagraph", e))?;
    let neuron = |n: &tally_chain::NeuronInfo| {
        serde_json::json!({"uid": n.uid, "hotkey": n.hotkey.to_ss58(), "stake": n.stake,
            "validator_permit": n.validator_permit, "axon": n.axon})
    };
    let (validators, miners): (Vec<_>, Vec<_>) =
        mg.neurons.iter().partition(|n| n.validator_permit);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "chain": spec, "head": head.number, "head_hash": hex::encode(head.hash),
                "runtime": runtime.as_ref().map(|(n, v)| serde_json::json!({"spec_name": n, "spec_version": v})),
                "netuid": a.netuid, "epoch_length": p.epoch_length, "epoch_offset": p.epoch_offset,
                "tempo": p.epoch_length.saturating_sub(1), "block_ms": p.block_ms,
                "weights_rate_limit": p.weights_rate_limit, "max_uids": p.max_uids,
                "min_validator_stake": p.min_validator_stake,
                "validators": validators.iter().map(|n| neuron(n)).collect::<Vec<_>>(),
                "miners": miners.iter().map(|n| neuron(n)).collect::<Vec<_>>(),
            })
        );
        return Ok(0);
    }
    println!("chain     {spec}");
    println!("head      #{} 0x{}", head.number, hex::encode(head.hash));
    if let Some((name, v)) = &runtime {
        println!("runtime   {name} spec_version {v}");
    }
    println!(
        "subnet    {}: epochs of {} blocks (tempo {}), first at block {}, {} ms blocks, weights every {} blocks, {} of {} uids",
        a.netuid,
        p.epoch_length,
        p.epoch_length.saturating_sub(1),
        p.epoch_offset,
        p.block_ms,
        p.weights_rate_limit,
        mg.neurons.len(),
        p.max_uids
    );
    for (title, list) in [("validators", &validators), ("miners", &miners)] {
        println!("{title} ({}):", list.len());
        for n in list.iter() {
            println!(
                "  uid {:>4}  {}  stake {:>16}  {}",
                n.uid,
                n.hotkey.to_ss58(),
                n.stake,
                if n.axon.is_empty() { "-" } else { &n.axon }
            );
        }
    }
    Ok(0)
}

#[derive(Args)]
#[command(after_help = "\
A new --db file needs --genesis: JSON {\"timestamp_ms\": …, \"subnets\": [SubnetParams…],
\"neurons\": [[netuid, NeuronInfo]…]} (see crates/tally-chain). An existing file is served as it
is; --genesis is then ignored. Clients: tally_chain::HttpChain, or
`tally audit --chain http://ADDR`.")]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:9944.
    #[arg(long)]
    listen: String,
    /// The chain file (redb).
    #[arg(long)]
    db: PathBuf,
    /// Genesis JSON, for a new file.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Milliseconds per block.
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// Produce no block until this file exists (a devnet starts its blocks once every node is
    /// up).
    #[arg(long)]
    start_file: Option<PathBuf>,
}

pub fn run(c: ChainCommand) -> Result<u8, Failure> {
    let a = match c {
        ChainCommand::Serve(a) => a,
        ChainCommand::Info(a) => return info(a),
    };
    let genesis = match (&a.genesis, a.db.exists()) {
        (_, true) => Genesis {
            timestamp_ms: 0,
            subnets: vec![],
            neurons: vec![],
        },
        (Some(g), false) => {
            let text = std::fs::read(g)
                .with_context(|| format!("cannot read {}", g.display()))
                .map_err(Failure::input)?;
            serde_json::from_slice(&text)
                .map_err(|e| Failure::input(anyhow!("--genesis {}: {e}", g.display())))?
        }
        (None, false) => {
            return Err(Failure::input(anyhow!(
                "{} does not exist: give --genesis FILE to create it",
                a.db.display()
            )))
        }
    };
    if !(10..=600_000).contains(&a.block_ms) {
        return Err(Failure::input(anyhow!("--block-ms must be 10..=600000")));
    }
    let chain =
        Arc::new(LocalChain::open(&a.db, &genesis).map_err(|e| Failure::input(anyhow!(e)))?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))
            .map_err(Failure::input)?;
        // the producer starts once the start file exists; the task's output (the producer)
        // lives in this handle until the server stops, and dropping it stops the blocks
        let _producer = {
            let (c, f, ms) = (chain.clone(), a.start_file.clone(), a.block_ms);
            tokio::task::spawn_blocking(move || {
                while f.as_ref().is_some_and(|f| !f.exists()) {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                c.spawn_producer(ms)
            })
        };
        eprintln!(
            "serving {} on http://{} (head {}), a block every {} ms; Ctrl-C to stop",
            a.db.display(),
            listener.local_addr()?,
            chain.head()?.number,
            a.block_ms
        );
        let shared: Arc<dyn Chain> = chain.clone();
        tokio::select! {
            r = tally_chain::server::serve(shared, listener) => r?,
            _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        }
        Ok::<u8, Failure>(0)
    })
}
