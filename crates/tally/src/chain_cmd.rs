//! `tally chain serve`: the embedded local chain over HTTP, so several processes share one
//! devnet chain.

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
    let ChainCommand::Serve(a) = c;
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
